// Bundles the web app into static files with esbuild (from npm; nothing fetched at run time):
//   <out>/index.html, <out>/assets/app-<hash>.js, <out>/assets/style-<hash>.css (xterm.js CSS
//   included).
// <out> is ./dist, or SUSHI_WEB_OUT (relay/build.rs points it into Cargo's OUT_DIR so the
// relay binary embeds the result; infra/deploy.sh points it at the directory it uploads to the
// CloudFront bucket). No inline scripts or styles: the pages run under a
// Content-Security-Policy of script-src 'self'.
//
// Why content-hashed asset names: a CDN may then cache `/assets/*` for a year (a new build has
// new names), and only `index.html`, which names them, must be revalidated on every visit.
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.SUSHI_WEB_OUT || join(here, 'dist'));

await rm(out, { recursive: true, force: true });
await mkdir(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: { app: join(here, 'src/main.ts'), style: join(here, 'src/app.css') },
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2022'],
  legalComments: 'none',
  logLevel: 'warning',
});

// The hashed name of each entry point (`app`, `style`), from esbuild's own record of its output.
const hashed = {};
for (const file of Object.keys(result.metafile.outputs)) {
  const name = basename(file);
  const entry = /^(app|style)-[A-Za-z0-9]+\.(js|css)$/.exec(name);
  if (entry) hashed[entry[1]] = name;
}
if (!hashed.app || !hashed.style) throw new Error(`esbuild produced no hashed app/style: ${JSON.stringify(hashed)}`);
const page = (await readFile(join(here, 'src/index.html'), 'utf8'))
  .replace('/assets/app.js', `/assets/${hashed.app}`)
  .replace('/assets/style.css', `/assets/${hashed.style}`);
if (page.includes('/assets/app.js') || page.includes('/assets/style.css')) throw new Error('index.html still names unhashed assets');
await writeFile(join(out, 'index.html'), page);
console.log(`web app built into ${out} (${hashed.app}, ${hashed.style})`);
