// Starting what the browser test drives: the `sushi` binary (path in SUSHI_BIN, built by
// run.sh) on a free loopback port with a throwaway DATA_DIR, and Debian's chromium through
// playwright-core with a fresh profile. Each is stopped by its own handle (pid / browser
// context) when the test ends. `restart()` kills sushi and starts it again on the same port
// and DATA_DIR: a relay lost under a page that keeps running.
import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export async function startSushi(extraEnv = {}) {
  const bin = process.env.SUSHI_BIN;
  if (!bin) throw new Error('SUSHI_BIN is not set: run relay/web/e2e/run.sh');
  const dataDir = await mkdtemp(join(tmpdir(), 'sushi-e2e-data-'));
  let current = await spawnSushi(bin, { PORT: '0', DATA_DIR: dataDir, ...extraEnv });
  const baseUrl = current.baseUrl;
  return {
    baseUrl,
    output: () => current.output(),
    /** A relay loss: SIGKILL (no drain, no goodbye to any socket), then the same binary again
     * on the same port and DATA_DIR, as a supervisor would restart it. */
    async restart() {
      await current.kill('SIGKILL');
      const port = new URL(baseUrl).port;
      current = await spawnSushi(bin, { DATA_DIR: dataDir, ...extraEnv, PORT: port });
      if (current.baseUrl !== baseUrl) throw new Error(`restarted on ${current.baseUrl}, not ${baseUrl}`);
    },
    async stop() {
      await current.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** One `sushi` process; resolves once it says where it listens. */
async function spawnSushi(bin, env) {
  const child = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      SSH_ALLOW_LOOPBACK: 'true',
      RUST_LOG: 'info',
      ...env,
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
    /** Stop it with `signal` (SIGTERM: SIGKILL after 5 s) and wait for the exit. */
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
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

/** Run `command` on the test sshd as its user with OpenSSH's client, not through sushi: for
 * clean-up a failed test must not leave behind (a tmux session). A throwaway key is appended to
 * the sshd's authorized_keys (SUSHI_TEST_SSH_AUTHORIZED_KEYS) once per process, as the Rust
 * tests' `testkit::ssh::run_remote` does; BatchMode and ConnectTimeout bound it. */
export async function runRemote(command) {
  remoteKey ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sushi-e2e-key-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const key = join(dir, 'id_ed25519');
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'sushi-e2e', '-f', key]);
    const keys = process.env.SUSHI_TEST_SSH_AUTHORIZED_KEYS;
    if (!keys) throw new Error('SUSHI_TEST_SSH_AUTHORIZED_KEYS is not set: run relay/web/e2e/run.sh');
    await appendFile(keys, await readFile(`${key}.pub`, 'utf8'));
    return key;
  })();
  const key = await remoteKey;
  const [host, port] = (process.env.SUSHI_TEST_SSHD_ADDR ?? '127.0.0.1:2222').split(':');
  const user = process.env.SUSHI_TEST_SSH_USER ?? 'sushitest';
  return execFileP('ssh', ['-i', key, '-p', port, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
    `${user}@${host}`, command], { timeout: 15_000 });
}
let remoteKey;
