// Terminals on bad links and small screens, in a real browser against the real `sushi` binary
// and the test sshd: predictive echo on a 200 ms round trip (through e2e/slow-proxy.mjs), the
// touch key bar, a page reload that comes back to the same shell with its screen, and a network
// drop (the proxy cuts its connections) after which the tab reconnects to the same shell, and a
// relay loss (sushi killed and restarted) after which Re-attach brings back a persistent shell,
// and a share link opened in a second browser that shows the owner's screen and typing live.
// And a recording: the closed terminal's session played in the Recordings view, searched for a word.
// And the file panel: files uploaded through the file input and by drag and drop, downloaded with
// the browser's own download byte-exact, renamed and deleted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runRemote, startBrowser, startSushi } from './harness.mjs';
import { startProxy } from './slow-proxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = resolve(process.env.SUSHI_E2E_ARTIFACTS ?? join(here, '..', 'test-results'));
const [sshHost, sshPort] = (process.env.SUSHI_TEST_SSHD_ADDR ?? '127.0.0.1:2222').split(':');
const sshUser = process.env.SUSHI_TEST_SSH_USER ?? 'sushitest';
const sshPassword = process.env.SUSHI_TEST_SSH_PASSWORD ?? 'sushi-test-password';
const MASTER = 'correct horse battery staple';

let sushi;
let sushiAddr;

before(async () => {
  await mkdir(artifacts, { recursive: true });
  sushi = await startSushi();
  const url = new URL(sushi.baseUrl);
  sushiAddr = { host: url.hostname, port: Number(url.port) };
});

after(async () => {
  await sushi?.stop();
});

const STATE = '.term-panel:not([hidden]) .state';

async function screenLines(page) {
  return page.locator('.term-panel:not([hidden]) .xterm-rows > div').evaluateAll((rows) =>
    rows.map((row) => (row.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));
}

async function waitForLine(page, predicate, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let lines = [];
  while (Date.now() < deadline) {
    lines = await screenLines(page);
    const found = lines.find(predicate);
    if (found !== undefined) return found;
    await page.waitForTimeout(50);
  }
  throw new Error(`timed out waiting for ${what}; screen:\n${lines.join('\n')}`);
}

async function waitForState(page, state, timeout = 20_000) {
  await page.waitForFunction((s) =>
    document.querySelector('.term-panel:not([hidden]) .state')?.getAttribute('data-state') === s,
  state, { timeout });
}

/** Sign in as a new user at `baseUrl`, set the master password, add the test sshd (with a
 * persistent tmux shell when `persistent`), connect. */
async function openTerminal(page, baseUrl, { persistent = false } = {}) {
  await page.goto(baseUrl);
  await page.getByLabel('Email', { exact: true }).fill(`u${Date.now()}${Math.random()}@example.com`.replace('0.', ''));
  await page.getByRole('button', { name: 'Sign in (development)' }).click();
  await page.getByRole('heading', { name: 'Machines' }).waitFor();
  await page.getByLabel('New master password').fill(MASTER);
  await page.getByRole('button', { name: 'Save master password' }).click();
  await page.getByRole('alert').getByText('Master password set.').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('test-sshd');
  await page.getByLabel('Hostname or IP', { exact: true }).fill(sshHost);
  await page.getByLabel('Port', { exact: true }).fill(sshPort);
  await page.getByLabel('Username', { exact: true }).fill(sshUser);
  await page.getByLabel('Password', { exact: true }).fill(sshPassword);
  if (persistent) await page.getByLabel('Persistent shell (tmux)').check();
  await page.getByRole('button', { name: 'Add machine' }).click();
  await page.getByRole('alert').getByText('Machine "test-sshd" added.').waitFor();
  await page.getByRole('button', { name: 'Connect to test-sshd' }).click();
  await page.getByRole('dialog').getByLabel('Master password').fill(MASTER);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await waitForState(page, 'connected');
  await page.locator('.term-panel:not([hidden]) .term-host').click();
}

/** Run `command`; the first line after it matching `pattern`. `type` types (keyboard default). */
async function run(page, command, pattern, what) {
  const marker = `m${Math.random().toString(36).slice(2, 8)}`;
  await page.keyboard.type(`${command}; echo ${marker}-done\n`);
  await waitForLine(page, (l) => l === `${marker}-done`, `${what} (marker)`);
  const lines = await screenLines(page);
  const end = lines.lastIndexOf(`${marker}-done`);
  const found = lines.slice(0, end).reverse().find((l) => pattern.test(l));
  assert.ok(found, `${what}: no line matching ${pattern} in\n${lines.join('\n')}`);
  return found;
}

async function withBrowser(options, body) {
  const browser = await startBrowser(options);
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(String(err)));
  try {
    await body(page, browser);
    assert.deepEqual(problems, [], 'no script errors');
  } catch (err) {
    await page.screenshot({ path: join(artifacts, `failure-${Date.now()}.png`), fullPage: true })
      .catch(() => {});
    throw err;
  } finally {
    await browser.close();
  }
}

test('predictive echo draws a keystroke at once on a 200 ms round trip, underlined, until the echo',
  { timeout: 120_000 }, async (t) => {
    const proxy = await startProxy({ ...sushiAddr, delayMs: 100 });
    try {
      await withBrowser({}, async (page) => {
        await openTerminal(page, proxy.url);
        await run(page, 'true', /.*/, 'prompt');
        // The first keystroke of a line is only drawn by the echo: it earns the trust.
        await page.keyboard.type('e');
        await waitForLine(page, (l) => l.endsWith('$ e') || l.endsWith('# e'), 'first echo');
        await page.waitForTimeout(300);
        // Now a keystroke is on screen before its echo can have come back (200 ms).
        const watching = page.evaluate(async () => {
          const rows = () => [...document.querySelectorAll(
            '.term-panel:not([hidden]) .xterm-rows > div')].map((r) => r.textContent ?? '');
          const t0 = performance.now();
          document.querySelector('.term-panel:not([hidden]) .xterm-helper-textarea')?.focus();
          return new Promise((resolve) => {
            const look = () => {
              const el = [...document.querySelectorAll('.term-panel:not([hidden]) .predicted')]
                .find((e) => e.textContent === 'c');
              if (el) {
                resolve({
                  ms: performance.now() - t0,
                  underline: getComputedStyle(el).textDecorationLine,
                  echoed: rows().some((r) => r.replace(/\u00a0/g, ' ').trimEnd().endsWith(' ec')),
                });
              } else if (performance.now() - t0 > 2000) {
                resolve(null);
              } else {
                requestAnimationFrame(look);
              }
            };
            window.setTimeout(look, 0);
          });
        });
        await page.keyboard.type('c');
        const seen = await watching;
        assert.ok(seen, 'the predicted character was drawn');
        t.diagnostic(`keystroke drawn after ${seen.ms.toFixed(1)} ms (round trip 200 ms)`);
        assert.equal(seen.echoed, false, 'drawn before the echo arrived');
        assert.ok(seen.ms < 150, `drawn at once (${seen.ms.toFixed(0)} ms), not after the round trip`);
        assert.match(seen.underline, /underline/);
        // The echo replaces the guess: the text is in the terminal, the overlay is gone.
        await waitForLine(page, (l) => l.endsWith(' ec'), 'the echo');
        await page.waitForFunction(() => document.querySelectorAll('.predicted').length === 0);
        await page.screenshot({ path: join(artifacts, 'predictive-echo.png') });
        // With the setting off, nothing is drawn ahead of the echo.
        await page.getByLabel('Predictive echo').uncheck();
        assert.equal(await page.evaluate(() => localStorage.getItem('sushi.predictiveEcho')), 'off');
        await page.locator('.term-panel:not([hidden]) .term-host').click();
        await page.keyboard.type('h');
        await page.waitForTimeout(50);
        assert.equal(await page.locator('.predicted').count(), 0, 'setting off: no prediction');
        await waitForLine(page, (l) => l.endsWith(' ech'), 'echo with the setting off');
      });
    } finally {
      await proxy.close();
    }
  });

test('the key bar on a touch screen sends Tab, Ctrl-C, Esc, arrows, | ~ /', { timeout: 120_000 },
  async () => {
    await withBrowser({ hasTouch: true, isMobile: true, viewport: { width: 800, height: 700 } },
      async (page) => {
        await openTerminal(page, sushi.baseUrl);
        const bar = page.locator('.term-panel:not([hidden]) .keybar');
        assert.equal(await bar.isVisible(), true, 'shown on a coarse pointer without asking');
        const key = (name) => bar.getByRole('button', { name, exact: true });
        await run(page, 'true', /.*/, 'prompt');

        // Tab completes: `ech` + Tab is `echo `.
        await page.keyboard.type('ech');
        await key('Tab').tap();
        await page.keyboard.type('tabbed-ok\n');
        await waitForLine(page, (l) => l === 'tabbed-ok', 'Tab completion');

        // Sticky Ctrl, then c from the keyboard: SIGINT ends `sleep`.
        await page.keyboard.type('sleep 30\n');
        await page.waitForTimeout(300);
        await key('Control (applies to the next key)').tap();
        assert.equal(await key('Control (applies to the next key)').getAttribute('aria-pressed'), 'true');
        await page.keyboard.type('c');
        assert.equal(await key('Control (applies to the next key)').getAttribute('aria-pressed'), 'false',
          'released after one key');
        await run(page, 'echo after-interrupt', /^after-interrupt$/, 'Ctrl-C interrupted sleep');

        // | ~ / from the bar.
        await page.keyboard.type('echo abc ');
        await key('Pipe').tap();
        await page.keyboard.type(' tr a-z A-Z; echo ');
        await key('Tilde').tap();
        await key('Slash').tap();
        await page.keyboard.type('\n');
        await waitForLine(page, (l) => l === 'ABC', 'pipe');
        await waitForLine(page, (l) => /^\/\S*\/$/.test(l), 'tilde expanded to the home directory');

        // Up arrow recalls the last command; Esc . inserts its last word (readline).
        await page.keyboard.type('echo up-arrow\n');
        await waitForLine(page, (l) => l === 'up-arrow', 'first run');
        const count = async () => (await screenLines(page)).filter((l) => l === 'up-arrow').length;
        await key('Up arrow').tap();
        await page.keyboard.type('\n');
        for (let i = 0; i < 50 && (await count()) < 2; i += 1) await page.waitForTimeout(100);
        assert.equal(await count(), 2, 'Up arrow ran the command again');
        await page.keyboard.type('echo x');
        await key('Escape').tap();
        await page.keyboard.type('.\n');
        await waitForLine(page, (l) => l === 'xup-arrow', 'Esc . (readline yank-last-arg)');
        await page.screenshot({ path: join(artifacts, 'key-bar.png') });
      });
  });

test('a reload comes back to the same shell, with its screen', { timeout: 120_000 }, async () => {
  await withBrowser({}, async (page) => {
    await openTerminal(page, sushi.baseUrl);
    const pid = await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'shell pid');
    await page.keyboard.type('echo before-reload\n');
    await waitForLine(page, (l) => l === 'before-reload', 'output before the reload');
    await page.reload();
    await waitForState(page, 'connected', 10_000);
    // The earlier output is on screen again (restored from sessionStorage, not re-run).
    await waitForLine(page, (l) => l === 'before-reload', 'earlier output after the reload');
    await page.locator('.term-panel:not([hidden]) .term-host').click();
    assert.equal(await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'pid after reload'), pid,
      'the same shell');
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }));
    assert.equal(stored.includes(MASTER), false, 'the master password is never stored');
    assert.equal(await page.evaluate(() => localStorage.getItem('sushi.terminals')), null);
  });
});

test('a network drop: the tab says reconnecting, then continues the same shell', { timeout: 120_000 },
  async (t) => {
    const proxy = await startProxy({ ...sushiAddr });
    try {
      await withBrowser({}, async (page) => {
        await openTerminal(page, proxy.url);
        const pid = await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'shell pid');
        const cutAt = Date.now();
        const cut = proxy.cut();
        assert.ok(cut > 0, 'connections cut');
        await waitForState(page, 'reconnecting', 5_000);
        assert.equal(await page.locator(STATE).textContent(), 'reconnecting…');
        // Typed while away: kept, and sent once the session is resumed.
        await page.keyboard.type('echo typed-while-away\n');
        // The first retry is 0.5 s after the drop: back well within 10 s.
        await waitForState(page, 'connected', 10_000);
        t.diagnostic(`connected again ${Date.now() - cutAt} ms after the drop`);
        await waitForLine(page, (l) => l === 'typed-while-away', 'keystrokes typed during the drop');
        assert.equal(await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'pid after the drop'), pid,
          'the same shell');
        // The scrollback from before the drop is still there.
        assert.ok((await screenLines(page)).filter((l) => l === pid).length >= 2);
      });
    } finally {
      await proxy.close();
    }
  });

test('a relay loss: the tab offers Re-attach, which brings back the same tmux shell',
  { timeout: 180_000 }, async (t) => {
    // A sushi of its own: this test kills it.
    const own = await startSushi();
    let tmuxName = null;
    try {
      await withBrowser({}, async (page) => {
        await openTerminal(page, own.baseUrl, { persistent: true });
        tmuxName = (await run(page, "tmux display-message -p 'TMUX=#S'", /^TMUX=sushi-[0-9a-f]+$/,
          'tmux session name')).slice('TMUX='.length);
        const saved = await page.evaluate(() => sessionStorage.getItem('sushi.terminals'));
        assert.equal(JSON.parse(saved ?? '[]')[0]?.persistent, tmuxName,
          'the session event named the tmux session');
        const pid = await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'shell pid');
        await run(page, 'echo before-relay-loss', /^before-relay-loss$/, 'output before the loss');

        const lostAt = Date.now();
        await own.restart();
        // The resume attempts fail (refused while it is down, then 4012: the new process never
        // had the session); the tab ends and offers Re-attach, not just Reconnect.
        await waitForState(page, 'closed', 60_000);
        t.diagnostic(`tab closed ${Date.now() - lostAt} ms after the relay was killed`);
        const reattach = page.locator('.term-panel:not([hidden])').getByRole('button', { name: 'Re-attach' });
        await reattach.waitFor({ state: 'visible', timeout: 5_000 });
        await page.screenshot({ path: join(artifacts, 'reattach-offered.png') });

        await reattach.click();
        // The password is still in the tab's memory; should it not be, the dialog asks for it.
        const dialog = page.getByRole('dialog');
        if (await dialog.isVisible()) {
          await dialog.getByLabel('Master password').fill(MASTER);
          await page.getByRole('button', { name: 'Connect', exact: true }).click();
        }
        await waitForState(page, 'connected', 20_000);
        // The notice sits beside the terminal (tmux clears the screen it would be written on).
        const note = page.locator('.term-panel:not([hidden]) .term-note');
        await note.waitFor({ state: 'visible', timeout: 5_000 });
        assert.match(await note.textContent() ?? '', /redrawn by its tmux \(or screen\) session/);
        // The tab starts from a clean screen; tmux redraws the pane, the old output included.
        await waitForLine(page, (l) => l === 'before-relay-loss', 'the old output, redrawn by tmux');
        await page.screenshot({ path: join(artifacts, 'reattached.png') });
        await page.locator('.term-panel:not([hidden]) .term-host').click();
        assert.equal(await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'pid after re-attach'), pid,
          'the same shell');

        // Again, with a reload while the relay is down: the reloaded tab resumes from
        // sessionStorage, learns the session is gone, and Re-attach asks for the master
        // password (it is never stored) before bringing back the same shell.
        await own.restart();
        await page.reload();
        await waitForState(page, 'closed', 60_000);
        await reattach.waitFor({ state: 'visible', timeout: 5_000 });
        await reattach.click();
        await dialog.waitFor({ state: 'visible', timeout: 5_000 });
        assert.equal(await page.locator('#connect-title').textContent(), 'Re-attach');
        await dialog.getByLabel('Master password').fill(MASTER);
        await page.getByRole('button', { name: 'Connect', exact: true }).click();
        await waitForState(page, 'connected', 20_000);
        await note.waitFor({ state: 'visible', timeout: 5_000 });
        await waitForLine(page, (l) => l === 'before-relay-loss', 'the old output after the reload');
        await page.locator('.term-panel:not([hidden]) .term-host').click();
        assert.equal(await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'pid after reload and re-attach'),
          pid, 'the same shell after a reload');

        // Clean up through the shell itself: ending the tmux session ends the terminal.
        await page.keyboard.type(`tmux kill-session -t ${tmuxName}\n`);
        await waitForState(page, 'closed', 10_000);
      });
    } finally {
      // Whatever happened above, leave no tmux session behind on the test sshd.
      if (tmuxName) await runRemote(`tmux kill-session -t ${tmuxName} 2>/dev/null; true`);
      await own.stop();
    }
  });

/** The viewer page's screen lines. */
async function viewerLines(page) {
  return page.locator('#share-host .xterm-rows > div').evaluateAll((rows) =>
    rows.map((row) => (row.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));
}

async function waitForViewerLine(page, predicate, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let lines = [];
  while (Date.now() < deadline) {
    lines = await viewerLines(page);
    if (lines.some(predicate)) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`viewer: timed out waiting for ${what}; screen:\n${lines.join('\n')}`);
}

test('a share link opened in another browser shows the screen, then the owner typing live, until revoked',
  { timeout: 120_000 }, async () => {
    await withBrowser({}, async (page) => {
      await openTerminal(page, sushi.baseUrl);
      await run(page, 'echo before-$((6*7))', /^before-42$/, 'output before sharing');
      await page.locator('.term-panel:not([hidden]) .share-toggle').click();
      await page.getByRole('button', { name: 'Create link' }).click();
      const field = page.locator('.term-panel:not([hidden]) .share-link').first();
      await field.waitFor();
      const link = await field.inputValue();
      assert.match(link, /\/#share=[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);

      // Another browser (its own profile: not signed in) opens the link.
      const other = await startBrowser();
      try {
        const viewer = await other.context.newPage();
        const problems = [];
        viewer.on('pageerror', (err) => problems.push(String(err)));
        await viewer.goto(link);
        await viewer.waitForFunction(() =>
          document.getElementById('share-state')?.getAttribute('data-state') === 'connected');
        assert.ok(!viewer.url().includes('share='), 'the secret left the address bar');
        // The screen as it was before the viewer came.
        await waitForViewerLine(viewer, (l) => l === 'before-42', 'the screen before the join');
        // The owner sees who watches, and types: the viewer sees it live.
        await page.locator('.share-viewers li', { hasText: 'anonymous (view)' }).waitFor();
        await page.locator('.term-panel:not([hidden]) .term-host').click();
        await page.keyboard.type('echo live-$((7*7))\n');
        await waitForViewerLine(viewer, (l) => l === 'live-49', 'the owner typing');
        // The viewer's keystrokes go nowhere (a view link).
        await viewer.locator('#share-host').click();
        await viewer.keyboard.type('echo viewer-$((3*3))\n');
        await page.waitForTimeout(300);
        assert.ok(!(await screenLines(page)).some((l) => l.includes('viewer-9')));
        // Revoked: the viewer is disconnected and told why.
        await page.getByRole('button', { name: 'Revoke' }).click();
        await viewer.waitForFunction(() =>
          document.getElementById('share-state')?.getAttribute('data-state') === 'closed');
        assert.match(await viewer.locator('#share-state').textContent(), /stopped sharing/);
        assert.deepEqual(problems, [], 'no script errors on the viewer page');
      } finally {
        await other.close();
      }
    });
  });

/** The time of the first output event by which the recording's output, escapes removed, holds
 * `word`: computed here independently of src/cast.ts, as the oracle for the player's search. */
function firstOutputTime(castText, word) {
  const strip = (s) => s
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[ -/]*[0-~]/g, '')
    .replace(/[\x00-\x09\x0b-\x1f\x7f]/g, '');
  let output = '';
  for (const line of castText.split('\n').slice(1)) {
    if (!line) continue;
    const [time, code, data] = JSON.parse(line);
    if (code !== 'o') continue;
    output += data;
    if (strip(output).includes(word)) return time;
  }
  throw new Error(`${word} is not in the recording`);
}

test('a closed terminal\'s recording plays in the Recordings view, and search jumps to a word',
  { timeout: 120_000 }, async () => {
    await withBrowser({}, async (page) => {
      await openTerminal(page, sushi.baseUrl);
      await run(page, 'echo before-$((6*7))', /^before-42$/, 'output before the word');
      await page.waitForTimeout(1500);
      const word = `needle-${Math.random().toString(36).slice(2, 8)}`;
      await run(page, `echo ${word}`, new RegExp(`^${word}$`), 'the word');
      await run(page, 'seq 1 40', /^40$/, 'output after the word');
      await page.getByRole('button', { name: 'Close terminal test-sshd' }).click();

      // The final chunk is written when the relay ends the session: wait until it reads back.
      let castText = null;
      const deadline = Date.now() + 20_000;
      while (castText === null && Date.now() < deadline) {
        castText = await page.evaluate(async () => {
          const list = await (await fetch('/api/v1/recordings')).json();
          const id = list.data[0]?.id;
          if (!id) return null;
          const answer = await fetch(`/api/v1/recording/${id}`);
          return answer.ok ? answer.text() : null;
        });
        if (castText === null) await page.waitForTimeout(250);
      }
      assert.ok(castText, 'the recording reads back after the terminal closed');
      const expected = firstOutputTime(castText, word);
      assert.ok(expected > 1, `the word comes after the pause (${expected} s)`);

      await page.getByRole('tab', { name: 'Recordings' }).click();
      const row = page.locator('#recording-rows tr');
      await row.first().waitFor();
      assert.equal(await row.count(), 1);
      assert.match(await row.first().textContent(), /test-sshd/);
      await page.getByRole('button', { name: /^Play test-sshd/ }).click();
      const player = page.locator('.player');
      await player.waitFor();
      // Playing; paused and taken back to the start with the slider, so that the search
      // starts before the word however far the playback got.
      await page.getByRole('button', { name: 'Pause' }).click();
      await player.getByLabel('Position').fill('0');
      await page.waitForFunction(() =>
        document.querySelector('.player-time')?.getAttribute('data-time') === '0');

      await page.getByLabel('Search the recording').fill(word);
      await page.getByRole('button', { name: 'Find' }).click();
      await player.getByText(/^found at /).waitFor();
      const time = Number(await player.locator('.player-time').getAttribute('data-time'));
      assert.equal(time, expected, 'the player is at the event that completes the word');
      assert.equal(await page.getByRole('button', { name: 'Play', exact: true }).count(), 1, 'paused');
      const playerLines = () => player.locator('.xterm-rows > div').evaluateAll((rows) =>
        rows.map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));
      let lines = [];
      for (let i = 0; i < 100 && !lines.some((l) => l.includes(`echo ${word}`)); i += 1) {
        if (i > 0) await page.waitForTimeout(50);
        lines = await playerLines();
      }
      assert.ok(lines.some((l) => l.includes(`echo ${word}`)),
        `the player's screen shows the word:\n${lines.join('\n')}`);
      assert.ok(!lines.some((l) => l === '40'), 'and not the output that came after it');
      await page.screenshot({ path: join(artifacts, 'player-found.png'), fullPage: true });
    });
  });

test('the file panel uploads by the file input and by drag and drop, and downloads the same bytes',
  { timeout: 120_000 }, async () => {
    const dir = `e2e-files-${Date.now()}`;
    try {
      await withBrowser({ acceptDownloads: true }, async (page) => {
        await openTerminal(page, sushi.baseUrl);
        const panel = page.locator('.term-panel:not([hidden]) .file-panel');
        await page.locator('.term-panel:not([hidden]) .files-toggle').click();
        await panel.getByLabel('Current directory').getByText(`/home/${sshUser}`).waitFor();

        // A new folder (its name asked for in a prompt), then into it.
        page.once('dialog', (dialog) => dialog.accept(dir));
        await panel.getByRole('button', { name: 'New folder' }).click();
        await panel.getByRole('button', { name: `${dir}/` }).click();
        await panel.getByLabel('Current directory').getByText(`/home/${sshUser}/${dir}`).waitFor();

        // Through the file input: two files at once, each with its progress.
        const big = randomBytes(3 * 1024 * 1024);
        const small = Buffer.from('hello from the file input\n');
        await panel.getByLabel('Upload files').setInputFiles([
          { name: 'big.bin', mimeType: 'application/octet-stream', buffer: big },
          { name: 'note.txt', mimeType: 'text/plain', buffer: small },
        ]);
        await panel.locator('li[data-upload="big.bin"][data-state="done"]').waitFor();
        await panel.locator('li[data-upload="note.txt"][data-state="done"]').waitFor();

        // By drag and drop onto the panel.
        const dropped = randomBytes(512 * 1024);
        const transfer = await page.evaluateHandle((bytes) => {
          const data = new DataTransfer();
          data.items.add(new File([new Uint8Array(bytes)], 'dropped.bin'));
          return data;
        }, [...dropped]);
        await panel.dispatchEvent('drop', { dataTransfer: transfer });
        await panel.locator('li[data-upload="dropped.bin"][data-state="done"]').waitFor();
        await panel.locator('tr[data-name="dropped.bin"]').waitFor();

        // The browser's own download of each: the same bytes.
        for (const [name, bytes] of [['big.bin', big], ['dropped.bin', dropped], ['note.txt', small]]) {
          const [download] = await Promise.all([
            page.waitForEvent('download'),
            panel.getByLabel(`Download ${name}`).click(),
          ]);
          assert.equal(download.suggestedFilename(), name);
          const got = await readFile(await download.path());
          assert.equal(createHash('sha256').update(got).digest('hex'),
            createHash('sha256').update(bytes).digest('hex'), `${name} downloaded byte-exact`);
        }

        // Rename (a prompt), then delete (a confirmation).
        page.once('dialog', (dialog) => dialog.accept('renamed.txt'));
        await panel.getByRole('button', { name: 'Rename note.txt' }).click();
        await panel.locator('tr[data-name="renamed.txt"]').waitFor();
        page.once('dialog', (dialog) => dialog.accept());
        await panel.getByRole('button', { name: 'Delete renamed.txt' }).click();
        await panel.locator('tr[data-name="renamed.txt"]').waitFor({ state: 'detached' });
        await page.screenshot({ path: join(artifacts, 'file-panel.png') });
      });
    } finally {
      await runRemote(`rm -rf ~/${dir}`).catch(() => {});
    }
  });
