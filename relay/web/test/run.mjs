// Unit tests of the web app's pure modules (src/predict.ts, src/resume.ts, src/keybar.ts):
// esbuild bundles each test/*.test.mjs with the TypeScript it imports into a temporary
// directory, then `node --test` runs them. Why bundle: node 20 cannot import .ts itself, and
// esbuild is already what builds the app, so the tests run the same compiled code.
// usage: node test/run.mjs   (npm test; also run by e2e/run.sh)
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tests = (await readdir(here)).filter((f) => f.endsWith('.test.mjs'));
const out = await mkdtemp(join(tmpdir(), 'sushi-web-unit-'));
try {
  await build({
    entryPoints: tests.map((f) => join(here, f)),
    outdir: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: ['node20'],
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  const files = (await readdir(out)).map((f) => join(out, f));
  const result = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit' });
  process.exitCode = result.status ?? 1;
} finally {
  await rm(out, { recursive: true, force: true });
}
