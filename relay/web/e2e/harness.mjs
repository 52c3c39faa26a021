// Starting what the browser test drives: the `sushi` binary (path in SUSHI_BIN, built by
// run.sh) on a free loopback port with a throwaway DATA_DIR, and Debian's chromium through
// playwright-core with a fresh profile. Each is stopped by its own handle (pid / browser
// context) when the test ends.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export async function startSushi(extraEnv = {}) {
  const bin = process.env.SUSHI_BIN;
  if (!bin) throw new Error('SUSHI_BIN is not set: run relay/web/e2e/run.sh');
  const dataDir = await mkdtemp(join(tmpdir(), 'sushi-e2e-data-'));
  const child = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      DATA_DIR: dataDir,
      SSH_ALLOW_LOOPBACK: 'true',
      RUST_LOG: 'info',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = [];
  child.stderr.on('data', (chunk) => output.push(String(chunk)));
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sushi did not start:\n${output.join('')}`)), 60_000);
    let buffer = '';
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      output.push(String(chunk));
      const match = buffer.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sushi exited with ${code}:\n${output.join('')}`));
    });
  });
  return {
    baseUrl,
    output: () => output.join(''),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Chromium with a fresh profile; `options` go to the context (e.g. hasTouch, isMobile). */
export async function startBrowser(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'sushi-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1200, height: 800 },
    ...options,
    args: [
      '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
