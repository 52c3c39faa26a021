// The product's promises, in a real browser (Debian chromium driven by playwright-core):
// sign in (development and OIDC against a fake provider), set and change the master password, add a
// machine pointing at the test sshd, connect, type and read back, resize and see `stty size`
// follow, reconnect after the shell exits, and close the tab and see the remote shell end.
// Organizations with two browsers: the owner creates one and invites; the invitee accepts and
// sets their own master password; the owner saves a machine the organization owns (the Owner
// select) and grants the invitee the organization's key (the key panel's Grant access), after
// which the invitee, refused before with `org_key_not_granted`, connects with their own master
// password and types in a working terminal.
// Screenshots of the list and the terminal are saved under SUSHI_E2E_ARTIFACTS
// (default relay/web/test-results/).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBrowser, startSushi } from './harness.mjs';
import { startFakeOidc } from './fake-oidc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = resolve(process.env.SUSHI_E2E_ARTIFACTS ?? join(here, '..', 'test-results'));
const [sshHost, sshPort] = (process.env.SUSHI_TEST_SSHD_ADDR ?? '127.0.0.1:2222').split(':');
const sshUser = process.env.SUSHI_TEST_SSH_USER ?? 'sushitest';
const sshPassword = process.env.SUSHI_TEST_SSH_PASSWORD ?? 'sushi-test-password';
const MASTER = 'correct horse battery staple';
const MASTER2 = 'a new master password';
const INVITEE_MASTER = 'the invitee\'s own master password';

let sushi;
let oidc;

before(async () => {
  await mkdir(artifacts, { recursive: true });
  oidc = await startFakeOidc({
    clientId: 'e2e-client',
    clientSecret: 'e2e-secret',
    user: { sub: 'e2e-user-1', email: 'oidc-user@example.com' },
  });
  sushi = await startSushi({
    OIDC_ISSUER_URL: oidc.issuer,
    OIDC_CLIENT_ID: 'e2e-client',
    OIDC_CLIENT_SECRET: 'e2e-secret',
    OIDC_NAME: 'Fake OIDC',
  });
});

after(async () => {
  await sushi?.stop();
  await oidc?.close();
});

/** Lines currently on the terminal screen of the selected tab, spaces normalised. */
async function screenLines(page) {
  return page.locator('.term-panel:not([hidden]) .xterm-rows > div').evaluateAll((rows) =>
    rows.map((row) => (row.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));
}

/** Wait until a screen line satisfies `predicate`; return it. */
async function waitForLine(page, predicate, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let lines = [];
  while (Date.now() < deadline) {
    lines = await screenLines(page);
    const found = lines.find(predicate);
    if (found !== undefined) return found;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for ${what}; screen:\n${lines.join('\n')}`);
}

/** Run `command` in the terminal and return the first line matching `pattern` after it. */
async function run(page, command, pattern, what) {
  const marker = `m${Math.random().toString(36).slice(2, 8)}`;
  // The marker's echo proves the output belongs to this command, not an earlier one.
  await page.keyboard.type(`${command}; echo ${marker}-done\n`);
  await waitForLine(page, (l) => l === `${marker}-done`, `${what} (marker)`);
  const lines = await screenLines(page);
  const end = lines.lastIndexOf(`${marker}-done`);
  const found = lines.slice(0, end).reverse().find((l) => pattern.test(l));
  assert.ok(found, `${what}: no line matching ${pattern} in\n${lines.join('\n')}`);
  return found;
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

test('dev sign-in, master password, add machine, terminal round trip, resize, reconnect, close',
  { timeout: 180_000 }, async () => {
    const browser = await startBrowser();
    try {
      const page = await browser.context.newPage();
      const problems = [];
      page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
      page.on('pageerror', (err) => problems.push(String(err)));

      const response = await page.goto(sushi.baseUrl);
      const csp = response.headers()['content-security-policy'] ?? '';
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);

      // Development sign-in, clearly marked.
      await page.getByText('Development sign-in.').waitFor();
      await page.getByLabel('Email', { exact: true }).fill('browser-user@example.com');
      await page.getByRole('button', { name: 'Sign in (development)' }).click();
      await page.getByRole('heading', { name: 'Machines' }).waitFor();
      assert.equal(await page.locator('#whoami').textContent(), 'browser-user@example.com');

      // Adding a machine before the master password exists shows the API's own message.
      await page.getByLabel('Name', { exact: true }).fill('test-sshd');
      await page.getByLabel('Hostname or IP', { exact: true }).fill(sshHost);
      await page.getByLabel('Port', { exact: true }).fill(sshPort);
      await page.getByLabel('Username', { exact: true }).fill(sshUser);
      await page.getByLabel('Password', { exact: true }).fill(sshPassword);
      await page.getByRole('button', { name: 'Add machine' }).click();
      await page.getByRole('alert').getByText('Set a master password first').waitFor();

      // Set the master password, then add the machine.
      await page.getByLabel('New master password').fill(MASTER);
      await page.getByRole('button', { name: 'Save master password' }).click();
      await page.getByRole('alert').getByText('Master password set.').waitFor();
      await page.getByRole('button', { name: 'Add machine' }).click();
      await page.getByRole('alert').getByText('Machine "test-sshd" added.').waitFor();
      const row = page.locator('#machine-rows tr', { hasText: 'test-sshd' });
      await row.getByText(`${sshUser}@${sshHost}:${sshPort}`).waitFor();

      // Change the master password (the machine is re-sealed); the old one stops working.
      await page.getByLabel('Current master password').fill(MASTER);
      await page.getByLabel('New master password').fill(MASTER2);
      await page.getByRole('button', { name: 'Save master password' }).click();
      await page.getByRole('alert').getByText('Master password changed.').waitFor();

      // A wrong (here: the old) master password is refused with the API's message, no tab.
      await page.getByRole('button', { name: 'Connect to test-sshd' }).click();
      await page.getByRole('dialog').getByLabel('Master password').fill(MASTER);
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      await page.getByRole('alert').getByText('Invalid master password').waitFor();
      assert.equal(await page.locator('.term-panel').count(), 0);

      // Connect for real.
      await page.getByRole('button', { name: 'Connect to test-sshd' }).click();
      await page.getByRole('dialog').getByLabel('Master password').fill(MASTER2);
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      const state = page.locator('.term-panel:not([hidden]) .state');
      await page.waitForFunction(() =>
        document.querySelector('.term-panel:not([hidden]) .state')?.getAttribute('data-state') === 'connected');
      await page.locator('.term-panel:not([hidden]) .term-host').click();

      await page.keyboard.type('echo hello-from-browser\n');
      await waitForLine(page, (l) => l === 'hello-from-browser', 'echo output');

      // The machine list now shows the pinned host key.
      await page.locator('#tab-machines').click();
      await row.getByText(/^SHA256:/).waitFor();
      await page.screenshot({ path: join(artifacts, 'machine-list.png'), fullPage: true });
      await page.locator('[role=tab]', { hasText: 'test-sshd' }).first().click();
      await page.locator('.term-panel:not([hidden]) .term-host').click();

      // Resize the window: xterm refits, the relay resizes the pty, `stty size` follows.
      const before = await run(page, 'stty size', /^\d+ \d+$/, 'stty size before');
      await page.setViewportSize({ width: 800, height: 500 });
      let afterSize = before;
      for (let i = 0; i < 20 && afterSize === before; i += 1) {
        await page.waitForTimeout(150);
        afterSize = await run(page, 'stty size', /^\d+ \d+$/, 'stty size after');
      }
      assert.notEqual(afterSize, before, 'stty size should change with the window');
      const [rows, cols] = afterSize.split(' ').map(Number);
      assert.ok(rows > 5 && cols > 20, `plausible size ${afterSize}`);

      await page.screenshot({ path: join(artifacts, 'terminal.png'), fullPage: true });

      // The shell exits: the tab says so and offers Reconnect, which gets a new ticket.
      await page.keyboard.type('exit\n');
      await page.waitForFunction(() =>
        document.querySelector('.term-panel:not([hidden]) .state')?.getAttribute('data-state') === 'closed');
      await page.getByRole('button', { name: 'Reconnect' }).click();
      await page.waitForFunction(() =>
        document.querySelector('.term-panel:not([hidden]) .state')?.getAttribute('data-state') === 'connected');
      await page.locator('.term-panel:not([hidden]) .term-host').click();
      const pidLine = await run(page, 'echo SHELLPID=$$', /^SHELLPID=\d+$/, 'shell pid');
      const pid = Number(pidLine.split('=')[1]);
      assert.ok(processAlive(pid), 'the remote shell runs');
      assert.equal(await state.textContent(), 'connected');

      // Close the tab: the WebSocket closes, the relay ends the SSH session, the shell ends.
      await page.getByRole('button', { name: 'Close terminal test-sshd' }).click();
      const deadline = Date.now() + 10_000;
      while (processAlive(pid) && Date.now() < deadline) await page.waitForTimeout(100);
      assert.equal(processAlive(pid), false, `remote shell ${pid} should have ended`);
      assert.equal(await page.locator('.term-panel').count(), 0);

      // Delete, with confirmation.
      await page.getByRole('button', { name: 'Delete test-sshd' }).click();
      await page.locator('#delete-confirm').click();
      await page.getByRole('alert').getByText('Machine "test-sshd" deleted.').waitFor();
      assert.equal(await page.locator('#machine-rows tr').count(), 0);

      // Sign out clears the session.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
      assert.equal(me, 401);

      // Refused API calls (409, 401) are expected above; anything else (a script error, a
      // "Refused to ..." CSP violation) is a failure.
      assert.deepEqual(problems.filter((p) => !p.startsWith('Failed to load resource')), [],
        'no script errors or CSP violations');
    } catch (err) {
      const [page] = browser.context.pages();
      await page?.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await browser.close();
    }
  });

test('sign-in through an OpenID Connect provider', { timeout: 60_000 }, async () => {
  const browser = await startBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(sushi.baseUrl);
    await page.getByRole('button', { name: 'Sign in with Fake OIDC' }).click();
    // Provider round trip: authorize, back to /api/v1/auth/callback, then 303 to /.
    await page.getByRole('heading', { name: 'Machines' }).waitFor();
    assert.equal(await page.locator('#whoami').textContent(), 'oidc-user@example.com');
    const cookies = await browser.context.cookies(sushi.baseUrl);
    const jwt = cookies.find((c) => c.name === 'jwt');
    assert.ok(jwt, 'session cookie set');
    assert.equal(jwt.httpOnly, true);
    assert.equal(jwt.sameSite, 'Lax');
    assert.equal(await page.evaluate(() => document.cookie.includes('jwt=')), false,
      'page scripts cannot read the session');
  } finally {
    await browser.close();
  }
});

test('filter the machine list and edit a machine; moving a pinned one asks for the master password',
  { timeout: 90_000 }, async () => {
    const browser = await startBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(sushi.baseUrl);
      await page.getByLabel('Email', { exact: true }).fill('editor@example.com');
      await page.getByRole('button', { name: 'Sign in (development)' }).click();
      await page.getByRole('heading', { name: 'Machines' }).waitFor();
      await page.getByLabel('New master password').fill(MASTER);
      await page.getByRole('button', { name: 'Save master password' }).click();
      await page.getByRole('alert').getByText('Master password set.').waitFor();
      // Two machines through the API from the page (same origin, the session cookie), one pinned.
      const pin = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
      await page.evaluate(async (pin) => {
        for (const [name, extra] of [['alpha-db', { host_key_fingerprint: pin }], ['beta-web', {}]]) {
          const response = await fetch('/api/v1/machine', {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name, hostname: `${name}.example.com`, port: '22',
              username: 'ops', password: 'pw', organization: 'platform', ...extra }),
          });
          if (!response.ok) throw new Error(await response.text());
        }
      }, pin);
      await page.reload();
      const rows = page.locator('#machine-rows tr');
      await rows.nth(1).waitFor();

      // The filter matches every word, anywhere in name, target or organization.
      await page.getByLabel('Filter machines').fill('platform beta');
      await page.locator('#machine-count').getByText('1 of 2').waitFor();
      assert.equal(await rows.count(), 1);
      await page.getByLabel('Filter machines').fill('nothing-like-this');
      await page.getByText('No machine matches the filter.').waitFor();
      await page.getByLabel('Filter machines').fill('');
      await rows.nth(1).waitFor();

      // Renaming needs nothing more; the pin stays.
      await page.getByRole('button', { name: 'Edit alpha-db' }).click();
      const dialog = page.getByRole('dialog');
      assert.equal(await dialog.getByLabel('Master password (to clear the pin)').isVisible(), false);
      await dialog.getByLabel('Machine name').fill('alpha-primary');
      await dialog.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('alert').getByText('Machine "alpha-primary" updated.').waitFor();
      const alpha = page.locator('#machine-rows tr', { hasText: 'alpha-primary' });
      await alpha.getByText(pin).waitFor();

      // Moving it to another port clears the pin: the dialog asks for the master password.
      await page.getByRole('button', { name: 'Edit alpha-primary' }).click();
      await dialog.getByLabel('SSH port').fill('2200');
      await dialog.getByLabel('Master password (to clear the pin)').waitFor();
      await dialog.getByLabel('Master password (to clear the pin)').fill(MASTER);
      await dialog.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('alert').getByText('Machine "alpha-primary" updated.').waitFor();
      await alpha.getByText('ops@alpha-db.example.com:2200').waitFor();
      await alpha.getByText('not pinned yet').waitFor();
      await page.screenshot({ path: join(artifacts, 'machine-edit.png'), fullPage: true });
    } catch (err) {
      const [page] = browser.context.pages();
      await page?.screenshot({ path: join(artifacts, 'edit-failure.png'), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await browser.close();
    }
  });

test('organizations: create, invite a second user who accepts in their own browser, grant them the key; they connect to an organization machine with their own master password; change a role',
  { timeout: 180_000 }, async () => {
    const owner = await startBrowser();
    const invitee = await startBrowser();
    const problems = [];
    /** Sign `page` in as `email` (development sign-in) and open the Organizations tab. */
    const signIn = async (page, email) => {
      page.on('pageerror', (err) => problems.push(`${email}: ${err}`));
      await page.goto(sushi.baseUrl);
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByRole('button', { name: 'Sign in (development)' }).click();
      await page.getByRole('heading', { name: 'Machines' }).waitFor();
      await page.getByRole('tab', { name: 'Organizations' }).click();
      await page.getByRole('heading', { name: 'Organizations' }).waitFor();
    };
    /** Set the signed-in user's first master password in the Machines tab. */
    const setMaster = async (page, password) => {
      await page.getByRole('tab', { name: 'Machines', exact: true }).click();
      await page.getByLabel('New master password').fill(password);
      await page.getByRole('button', { name: 'Save master password' }).click();
      await page.getByRole('alert').getByText('Master password set.').waitFor();
    };
    /** Open the connect dialog of `machine` and send `password`; the connect request's answer. */
    const connect = async (page, machine, password) => {
      await page.getByRole('button', { name: `Connect to ${machine}` }).click();
      await page.getByRole('dialog').getByLabel('Master password').fill(password);
      const [answer] = await Promise.all([
        page.waitForResponse((r) => /^\/api\/v1\/machine\/\d+\/connect$/.test(new URL(r.url()).pathname)),
        page.getByRole('button', { name: 'Connect', exact: true }).click(),
      ]);
      return answer;
    };
    try {
      const alice = await owner.context.newPage();
      await signIn(alice, 'org-owner@example.com');
      await alice.getByText('You belong to no organization yet.').waitFor();
      await alice.getByLabel('Slug (3 to 40 of a-z, 0-9 and -)').fill('e2e-platform');
      await alice.getByLabel('Display name').fill('E2E Platform');
      await alice.getByRole('button', { name: 'Create organization' }).click();
      await alice.getByRole('alert').getByText('Organization "E2E Platform" created.').waitFor();
      await alice.getByRole('heading', { name: 'E2E Platform' }).waitFor();
      await alice.getByLabel('Email to invite').fill('Org-Member@example.com');
      await alice.getByRole('button', { name: 'Invite', exact: true }).click();
      await alice.getByRole('alert').getByText('Invitation sent to org-member@example.com').waitFor();
      await alice.locator('.org-invitations li', { hasText: 'org-member@example.com as member' })
        .waitFor();

      // The invitee, in another browser, sees the invitation and accepts it.
      const bob = await invitee.context.newPage();
      await signIn(bob, 'org-member@example.com');
      await bob.getByRole('button', { name: 'Accept the invitation to E2E Platform' }).click();
      await bob.getByRole('alert').getByText('You joined "E2E Platform" as member.').waitFor();
      const members = bob.getByRole('table', { name: 'Members' });
      await members.getByText('org-owner@example.com').waitFor();
      assert.equal(await bob.getByLabel('Email to invite').count(), 0, 'members invite no one');
      // The invitee sets a master password of their own: the organization's key is sealed to it.
      await setMaster(bob, INVITEE_MASTER);

      // The owner sets theirs and saves a machine the organization owns, at the test sshd: the
      // Owner select offers the organization just created (the first such machine makes the key).
      await setMaster(alice, MASTER);
      await alice.getByLabel('Name', { exact: true }).fill('org-sshd');
      await alice.getByLabel('Hostname or IP', { exact: true }).fill(sshHost);
      await alice.getByLabel('Port', { exact: true }).fill(sshPort);
      await alice.getByLabel('Username', { exact: true }).fill(sshUser);
      await alice.getByLabel('Password', { exact: true }).fill(sshPassword);
      await alice.getByLabel('Owner', { exact: true }).selectOption({ label: 'E2E Platform (organization)' });
      await alice.getByRole('button', { name: 'Add machine' }).click();
      await alice.getByRole('alert').getByText('Machine "org-sshd" added.').waitFor();
      await alice.locator('#machine-rows tr', { hasText: 'org-sshd' })
        .getByText(`${sshUser}@${sshHost}:${sshPort}`).waitFor();

      // The member sees it in their list (the Machines tab reads it again) but, not granted the
      // key yet, is refused with the clear message after their password was checked; no tab.
      await bob.getByRole('tab', { name: 'Machines', exact: true }).click();
      const bobRow = bob.locator('#machine-rows tr', { hasText: 'org-sshd' });
      await bobRow.getByText(`${sshUser}@${sshHost}:${sshPort}`).waitFor();
      const refused = await connect(bob, 'org-sshd', INVITEE_MASTER);
      assert.equal(refused.status(), 403);
      assert.equal((await refused.json()).code, 'org_key_not_granted');
      await bob.getByRole('alert').getByText('You hold no copy of this organization\'s key').waitFor();
      assert.equal(await bob.locator('.term-panel').count(), 0);
      await bob.screenshot({ path: join(artifacts, 'org-not-granted.png'), fullPage: true });

      // The owner grants the key from the key panel, with their own master password.
      await alice.getByRole('tab', { name: 'Organizations' }).click();
      const keyPanel = alice.locator('.org-key');
      await keyPanel.getByText(/held by org-owner@example\.com\./).waitFor();
      await alice.getByLabel('Your master password (to grant, to remove a key holder, to rotate)')
        .fill(MASTER);
      await alice.getByRole('button', { name: 'Grant access to org-member@example.com' }).click();
      await alice.getByRole('alert')
        .getByText('org-member@example.com can now connect to the organization\'s machines.').waitFor();
      await keyPanel.getByText(/held by .*org-member@example\.com/).waitFor();
      assert.equal(await alice.getByRole('button', { name: 'Grant access to org-member@example.com' })
        .count(), 0, 'granted once');

      // Now the member connects with THEIR master password and gets a working terminal.
      const granted = await connect(bob, 'org-sshd', INVITEE_MASTER);
      assert.equal(granted.status(), 200);
      await bob.waitForFunction(() =>
        document.querySelector('.term-panel:not([hidden]) .state')?.getAttribute('data-state') === 'connected');
      await bob.locator('.term-panel:not([hidden]) .term-host').click();
      await bob.keyboard.type('echo e2e-org-$((6*7))\n');
      await waitForLine(bob, (l) => l === 'e2e-org-42', 'the member\'s command output');
      await bob.screenshot({ path: join(artifacts, 'org-member-terminal.png'), fullPage: true });

      // The owner sees the new member and makes them an admin.
      await alice.getByRole('button', { name: 'Open E2E Platform' }).click();
      const aliceMembers = alice.getByRole('table', { name: 'Members' });
      await aliceMembers.getByText('org-member@example.com').waitFor();
      await alice.getByLabel('Role of org-member@example.com').selectOption('admin');
      await alice.getByRole('alert').getByText('org-member@example.com is now admin.').waitFor();
      await bob.getByRole('tab', { name: 'Organizations' }).click();
      await bob.getByRole('button', { name: 'Open E2E Platform' }).click();
      await bob.getByText('your role: admin').waitFor();
      await bob.getByLabel('Email to invite').waitFor();
      await alice.screenshot({ path: join(artifacts, 'organizations.png'), fullPage: true });
      assert.deepEqual(problems, [], 'no script errors');
    } catch (err) {
      for (const browser of [owner, invitee]) {
        const [page] = browser.context.pages();
        await page?.screenshot({ path: join(artifacts, `orgs-failure-${browser === owner ? 'owner' : 'invitee'}.png`),
          fullPage: true }).catch(() => {});
      }
      throw err;
    } finally {
      await owner.close();
      await invitee.close();
    }
  });
