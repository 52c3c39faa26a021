// Bundles the web app into static files with esbuild (from npm; nothing fetched at run time):
//   <out>/index.html, <out>/assets/app.js, <out>/assets/app.css (xterm.js CSS included).
// <out> is ./dist, or SUSHI_WEB_OUT (relay/build.rs points it into Cargo's OUT_DIR so the
// relay binary embeds the result). No inline scripts or styles: the pages run under a
// Content-Security-Policy of script-src 'self'.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.SUSHI_WEB_OUT || join(here, 'dist'));

await rm(out, { recursive: true, force: true });
await mkdir(join(out, 'assets'), { recursive: true });
await build({
  entryPoints: { app: join(here, 'src/main.ts'), style: join(here, 'src/app.css') },
  outdir: join(out, 'assets'),
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2022'],
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(join(here, 'src/index.html'), join(out, 'index.html'));
console.log(`web app built into ${out}`);
