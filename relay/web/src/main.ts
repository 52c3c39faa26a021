// suSHi web app: sign-in, the machine list, add/delete, the master password, terminals in
// tabs, and the recordings list with its player (src/player.ts). Plain DOM on purpose (a few
// screens do not need a framework): every piece of user or server data reaches the page
// through textContent / value / attributes, never innerHTML.

import { api, ApiError, Machine, type OrgSummary, type Recording } from './api';
import { formatTime, parseCast } from './cast';
import { el } from './dom';
import { machineMatches } from './filter';
import { KeyBar } from './keybar';
import { OrgsView } from './orgs';
import { loadSaved, type SavedTerminal, storeSaved } from './resume';
import { Player } from './player';
import { FilePanel } from './files';
import { parseShareFragment, SharePanel, ShareViewer } from './share';
import { State, TerminalSession } from './terminal';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

// ---- notices -------------------------------------------------------------------------------

function notify(message: string, kind: 'error' | 'info' = 'error'): void {
  const notice = $('notice');
  notice.textContent = message;
  notice.classList.toggle('info', kind === 'info');
  notice.hidden = false;
}

function clearNotice(): void {
  $('notice').hidden = true;
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A 401 that means the session is gone (not, say, a wrong master password, also 401). */
function sessionEnded(err: unknown): boolean {
  return err instanceof ApiError && err.code === 'unauthorized';
}

/** Run `work` with `button` disabled; show the API's message on failure. */
async function busy(button: HTMLButtonElement | null, work: () => Promise<void>): Promise<void> {
  if (button) button.disabled = true;
  clearNotice();
  try {
    await work();
  } catch (err) {
    if (sessionEnded(err) && !inSignIn) {
      await showSignIn(errorText(err));
      return;
    }
    notify(errorText(err));
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- views ---------------------------------------------------------------------------------

let inSignIn = false;

function show(view: 'loading' | 'signin' | 'app' | 'share'): void {
  for (const name of ['loading', 'signin', 'app', 'share']) $(`view-${name}`).hidden = name !== view;
  inSignIn = view === 'signin';
}

async function showSignIn(message?: string): Promise<void> {
  closeAllTerminals();
  closePlayer();
  $('whoami').hidden = true;
  $('signout').hidden = true;
  $('settings').hidden = true;
  show('signin');
  if (message) notify(message);
  const providers = $('providers');
  providers.replaceChildren();
  try {
    const options = await api.providers();
    for (const provider of options.providers) {
      const button = el('button', { type: 'button', 'data-provider': provider.id },
        `Sign in with ${provider.name}`);
      button.addEventListener('click', () =>
        busy(button, async () => {
          const { url } = await api.signInUrl(provider.id);
          location.assign(url);
        }));
      providers.append(button);
    }
    $('dev-form').hidden = !options.dev;
    $('no-providers').hidden = options.providers.length > 0 || options.dev;
  } catch (err) {
    notify(errorText(err));
  }
}

async function showApp(email: string): Promise<void> {
  const who = $('whoami');
  who.textContent = email;
  who.hidden = false;
  $('signout').hidden = false;
  show('app');
  $('settings').hidden = false;
  selectTab('machines');
  await refreshMachines();
  restoreTerminals();
}

// ---- machines ------------------------------------------------------------------------------

let machines: Machine[] = [];

async function refreshMachines(): Promise<void> {
  const [listed, orgs] = await Promise.all([api.machines(), api.orgs()]);
  machines = listed;
  renderMachines();
  fillOwners(orgs);
}

/** The create form's Owner choices: the caller, and each organization they manage (the
 * server decides; members and auditors would be refused). */
function fillOwners(orgs: OrgSummary[]): void {
  const select = $<HTMLSelectElement>('m-owner');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'me'));
  for (const org of orgs) {
    if (org.role !== 'owner' && org.role !== 'admin') continue;
    const option = el('option', { value: org.slug }, `${org.name} (organization)`);
    option.selected = org.slug === chosen;
    select.append(option);
  }
}

/** The machine table, as filtered: people with hundreds of machines search, not scroll. */
function renderMachines(): void {
  const filter = $<HTMLInputElement>('machine-filter').value.trim();
  const shown = filter ? machines.filter((m) => machineMatches(m, filter)) : machines;
  const rows = $('machine-rows');
  rows.replaceChildren();
  for (const machine of shown) {
    const row = el('tr', { 'data-machine-id': String(machine.id) });
    row.append(
      el('td', {}, machine.name),
      el('td', {}, `${machine.username}@${machine.hostname}:${machine.port}`),
      el('td', {}, machine.organization ?? '—'),
      el('td', { class: 'fp' }, machine.host_key_fingerprint ?? 'not pinned yet'),
    );
    const actions = el('td');
    const connect = el('button', { type: 'button', class: 'small',
      'aria-label': `Connect to ${machine.name}` }, 'Connect');
    connect.addEventListener('click', () => void askConnect(machine));
    const remove = el('button', { type: 'button', class: 'small secondary',
      'aria-label': `Delete ${machine.name}` }, 'Delete');
    remove.addEventListener('click', () => askDelete(machine, remove));
    const edit = el('button', { type: 'button', class: 'small secondary',
      'aria-label': `Edit ${machine.name}` }, 'Edit');
    edit.addEventListener('click', () => askEdit(machine, edit));
    actions.append(connect, edit, remove);
    row.append(actions);
    rows.append(row);
  }
  $('no-machines').hidden = machines.length > 0;
  $('no-matches').hidden = machines.length === 0 || shown.length > 0;
  $('machine-count').textContent = filter ? `${shown.length} of ${machines.length}` : '';
}

function setupMachineFilter(): void {
  $<HTMLInputElement>('machine-filter').addEventListener('input', renderMachines);
}

/** The edit dialog, filled with `machine`; on Save only the fields that differ are sent, so an
 * edit made meanwhile in another tab to another field is kept (the API writes field by field). */
function askEdit(machine: Machine, button: HTMLButtonElement): void {
  const dialog = $<HTMLDialogElement>('edit-dialog');
  const form = $<HTMLFormElement>('edit-form');
  form.reset();
  const text: Record<string, string> = {
    name: machine.name, hostname: machine.hostname, port: String(machine.port),
    username: machine.username, organization: machine.organization ?? '',
  };
  for (const [field, value] of Object.entries(text)) {
    (form.elements.namedItem(field) as HTMLInputElement).value = value;
  }
  const flags: Record<string, boolean> = {
    persistent_shell: machine.persistent_shell, recording: machine.recording,
    record_input: machine.record_input,
  };
  for (const [field, value] of Object.entries(flags)) {
    (form.elements.namedItem(field) as HTMLInputElement).checked = value;
  }
  const masterRow = $('e-master-row');
  const moves = (): boolean => machine.host_key_fingerprint !== null
    && ($<HTMLInputElement>('e-hostname').value.trim() !== machine.hostname
      || $<HTMLInputElement>('e-port').value.trim() !== String(machine.port));
  const updateMaster = (): void => {
    masterRow.hidden = !moves();
    $<HTMLInputElement>('e-master').required = moves();
  };
  form.oninput = updateMaster;
  updateMaster();
  dialog.onclose = () => {
    const data = new FormData(form);
    form.reset();
    if (dialog.returnValue !== 'save') return;
    const changes: Record<string, string | boolean | null> = {};
    for (const [field, value] of Object.entries(text)) {
      const now = String(data.get(field) ?? '').trim();
      if (now !== value) changes[field] = field === 'organization' && now === '' ? null : now;
    }
    for (const [field, value] of Object.entries(flags)) {
      const now = data.get(field) !== null;
      if (now !== value) changes[field] = now;
    }
    for (const field of ['password', 'private_key', 'passphrase', 'master_password']) {
      const value = String(data.get(field) ?? '');
      if (value !== '') changes[field] = value;
    }
    const { master_password: _, ...edits } = changes;
    if (Object.keys(edits).length === 0) return;
    void busy(button, async () => {
      const updated = await api.updateMachine(machine.id, changes);
      await refreshMachines();
      notify(`Machine "${updated.name}" updated.`, 'info');
    });
  };
  dialog.returnValue = '';
  dialog.showModal();
}

function readFile(input: HTMLInputElement): Promise<string | null> {
  const file = input.files?.[0];
  if (!file) return Promise.resolve(null);
  if (file.size > 32 * 1024) return Promise.reject(new Error('The private key file is too large.'));
  return file.text();
}

function setupAddForm(): void {
  const form = $<HTMLFormElement>('add-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
    void busy(submit, async () => {
      const data = new FormData(form);
      const body: Record<string, string | boolean> = {};
      for (const field of ['name', 'hostname', 'port', 'username', 'password', 'passphrase',
        'organization', 'private_key']) {
        const value = String(data.get(field) ?? '');
        if (value.trim() !== '') body[field] = field === 'password' || field === 'passphrase'
          || field === 'private_key' ? value : value.trim();
      }
      const fromFile = await readFile($<HTMLInputElement>('m-key'));
      if (fromFile) body.private_key = fromFile;
      if (data.get('persistent_shell') !== null) body.persistent_shell = true;
      body.recording = data.get('recording') !== null;
      if (data.get('record_input') !== null) body.record_input = true;
      const owner = String(data.get('owner') ?? '');
      if (owner !== '') {
        body.owner_type = 'organization';
        body.organization = owner;
      }
      const created = await api.addMachine(body);
      form.reset();
      await refreshMachines();
      notify(`Machine "${created.name}" added.`, 'info');
    });
  });
}

function setupMasterForm(): void {
  const form = $<HTMLFormElement>('master-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
    void busy(submit, async () => {
      const password = $<HTMLInputElement>('mp-new').value;
      const current = $<HTMLInputElement>('mp-current').value;
      await api.setMasterPassword(password, current || undefined);
      form.reset();
      notify(current ? 'Master password changed.' : 'Master password set.', 'info');
    });
  });
}

function askDelete(machine: Machine, button: HTMLButtonElement): void {
  confirmDelete('Delete machine?',
    `${machine.name} (${machine.username}@${machine.hostname}:${machine.port}) will be deleted with its saved credentials.`,
    button, async () => {
      await api.deleteMachine(machine.id);
      await refreshMachines();
      notify(`Machine "${machine.name}" deleted.`, 'info');
    });
}

/** The delete dialog: `work` runs (with `button` busy) only when the user confirms. */
function confirmDelete(title: string, target: string, button: HTMLButtonElement,
  work: () => Promise<void>): void {
  const dialog = $<HTMLDialogElement>('delete-dialog');
  $('delete-title').textContent = title;
  $('delete-target').textContent = target;
  dialog.onclose = () => {
    if (dialog.returnValue !== 'delete') return;
    void busy(button, work);
  };
  dialog.returnValue = '';
  dialog.showModal();
}

// ---- recordings ----------------------------------------------------------------------------

let player: Player | null = null;
/** The recording the player shows: deleting it closes the player. */
let playing: string | null = null;

function closePlayer(): void {
  player?.dispose();
  player = null;
  playing = null;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function recordingLabel(recording: Recording): string {
  return `${recording.machine_name} ${new Date(recording.started_at).toLocaleString()}`;
}

async function refreshRecordings(): Promise<void> {
  const recordings = await api.recordings();
  const rows = $('recording-rows');
  rows.replaceChildren();
  for (const recording of recordings) {
    const row = el('tr', { 'data-recording-id': recording.id });
    if (recording.damaged !== null) {
      // Its metadata did not verify: say so, offer only Delete.
      const label = `recording ${recording.id}`;
      const remove = el('button', { type: 'button', class: 'small secondary',
        'aria-label': `Delete ${label}` }, 'Delete');
      remove.addEventListener('click', () => confirmDelete('Delete recording?',
        `The damaged ${label} will be deleted.`, remove, async () => {
          await api.deleteRecording(recording.id);
          await refreshRecordings();
          notify('Recording deleted.', 'info');
        }));
      const actions = el('td');
      actions.append(remove);
      row.append(el('td', { colspan: '5', class: 'damaged' },
        `Damaged: ${recording.damaged}`), actions);
      rows.append(row);
      continue;
    }
    const label = recordingLabel(recording);
    row.append(
      el('td', {}, recording.machine_name),
      el('td', {}, new Date(recording.started_at).toLocaleString()),
      el('td', {}, recording.duration_secs === null ? 'in progress'
        : formatTime(recording.duration_secs)),
      el('td', {}, formatBytes(recording.bytes)),
      el('td', {}, recording.exit_status === null ? '—' : String(recording.exit_status)),
    );
    const actions = el('td');
    const play = el('button', { type: 'button', class: 'small', 'aria-label': `Play ${label}` },
      'Play');
    play.addEventListener('click', () => void busy(play, async () => {
      const cast = parseCast(await api.recording(recording.id));
      closePlayer();
      player = new Player(cast, label);
      playing = recording.id;
      $('player-host').append(player.element);
      player.play();
    }));
    const remove = el('button', { type: 'button', class: 'small secondary',
      'aria-label': `Delete ${label}` }, 'Delete');
    remove.addEventListener('click', () => confirmDelete('Delete recording?',
      `The recording of ${label} will be deleted.`, remove, async () => {
        await api.deleteRecording(recording.id);
        if (playing === recording.id) closePlayer();
        await refreshRecordings();
        notify('Recording deleted.', 'info');
      }));
    actions.append(play, remove);
    row.append(actions);
    rows.append(row);
  }
  $('no-recordings').hidden = recordings.length > 0;
}

// ---- connect and terminal tabs ------------------------------------------------------------

interface Tab {
  id: string;
  machine: Machine;
  button: HTMLButtonElement;
  wrap: HTMLElement;
  panel: HTMLElement;
  session: TerminalSession;
  /** Kept in memory only, so Reconnect / Re-attach can ask for a new ticket without asking the
   * user again; dropped with the tab, and absent after a reload (then asked for). */
  masterPassword: string | null;
}

const tabs = new Map<string, Tab>();
let tabCounter = 0;

/** Ask for the master password with the connect dialog; null when cancelled. */
function askPassword(machine: Machine, action = 'Connect'): Promise<string | null> {
  const dialog = $<HTMLDialogElement>('connect-dialog');
  const input = $<HTMLInputElement>('connect-password');
  $('connect-title').textContent = action;
  $('connect-target').textContent =
    `${machine.name}: ${machine.username}@${machine.hostname}:${machine.port}`;
  input.value = '';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.onclose = () => {
      const password = input.value;
      input.value = '';
      resolve(dialog.returnValue === 'connect' && password ? password : null);
    };
    dialog.showModal();
    input.focus();
  });
}

async function askConnect(machine: Machine): Promise<void> {
  const password = await askPassword(machine);
  if (!password) return;
  await busy(null, async () => {
    const ticket = await api.connect(machine.id, password);
    openTab(machine, password).session.attach(ticket);
    // The first connect pins the host key: show its fingerprint in the list.
    await refreshMachines();
  });
}

// ---- settings ------------------------------------------------------------------------------

const PREDICT_KEY = 'sushi.predictiveEcho';

/** The predictive echo setting, remembered in localStorage (a preference, no secret). */
function predictEnabled(): boolean {
  return localStorage.getItem(PREDICT_KEY) !== 'off';
}

function setupSettings(): void {
  const box = $<HTMLInputElement>('predict-setting');
  box.checked = predictEnabled();
  box.addEventListener('change', () => {
    localStorage.setItem(PREDICT_KEY, box.checked ? 'on' : 'off');
    for (const tab of tabs.values()) tab.session.predictions.enabled = box.checked;
  });
}

// ---- saved terminals (reload) --------------------------------------------------------------

/** Write every live tab's session to sessionStorage (screen included), for a reload. */
function saveTerminals(): void {
  const entries: SavedTerminal[] = [];
  for (const tab of tabs.values()) {
    const snapshot = tab.session.snapshot();
    if (snapshot) entries.push({ ...snapshot, machineId: tab.machine.id });
  }
  storeSaved(sessionStorage, entries);
}

/** Reopen the tabs this browser tab had before a reload. */
function restoreTerminals(): void {
  const saved = loadSaved(sessionStorage);
  for (const entry of saved) {
    const machine = machines.find((m) => m.id === entry.machineId);
    if (!machine || [...tabs.values()].some((t) => t.session.sessionId === entry.id)) continue;
    openTab(machine, null).session.restore(entry, DEFAULT_GRACE_SECS);
  }
}

const DEFAULT_GRACE_SECS = 300;

function openTab(machine: Machine, masterPassword: string | null): Tab {
  tabCounter += 1;
  const id = `term-${tabCounter}`;
  const button = el('button', { type: 'button', role: 'tab', id: `tab-${id}`,
    'aria-controls': `panel-${id}`, 'aria-selected': 'false' });
  button.textContent = machine.name;
  const rtt = el('span', { class: 'rtt', title: 'Round-trip time to the relay',
    'aria-label': `Round-trip time ${machine.name}` }, '');
  // The close button sits beside its tab, not inside it: a button may not contain another.
  const close = el('button', { type: 'button', class: 'tab-close',
    'aria-label': `Close terminal ${machine.name}`, title: 'Close (Delete on the tab)' }, '×');
  const wrap = el('span', { class: 'tab-wrap', role: 'presentation' });
  wrap.append(button, rtt, close);
  const panel = el('div', { id: `panel-${id}`, role: 'tabpanel', 'aria-labelledby': `tab-${id}`,
    class: 'term-panel', hidden: '' });
  const status = el('div', { class: 'term-status' });
  const state = el('span', { class: 'state', 'data-state': 'connecting', role: 'status',
    'aria-live': 'polite' }, 'connecting…');
  const reconnect = el('button', { type: 'button', class: 'secondary', hidden: '' }, 'Reconnect');
  const reattach = el('button', { type: 'button', class: 'secondary', hidden: '' }, 'Re-attach');
  // Beside the terminal, not in it: tmux clears the screen when it redraws, which would wipe a
  // notice written into the terminal before its output arrives.
  const note = el('span', { class: 'term-note', role: 'status', 'aria-live': 'polite', hidden: '' },
    'Re-attached to the persistent shell: the screen is redrawn by its tmux (or screen) session.');
  const keys = el('button', { type: 'button', class: 'secondary keys-toggle',
    'aria-pressed': 'false', title: 'Show the key bar (Esc, Tab, Ctrl, arrows)' }, 'Keys');
  const shareToggle = el('button', { type: 'button', class: 'secondary share-toggle',
    'aria-pressed': 'false', title: 'Share this terminal: a link to watch it, or to type in it' },
  'Share');
  const filesToggle = el('button', { type: 'button', class: 'secondary files-toggle',
    'aria-pressed': 'false', title: 'Files on this machine: browse, upload, download' }, 'Files');
  status.append(el('strong', {}, `${machine.username}@${machine.hostname}:${machine.port}`),
    state, reconnect, reattach, note, shareToggle, filesToggle, keys);
  const host = el('div', { class: 'term-host', 'data-terminal': id });
  panel.append(status, host);
  $('terminal-panels').append(panel);
  $('tabs').append(wrap);

  let persistent: string | null = null;
  let keybar: KeyBar | null = null;
  const session = new TerminalSession(host, {
    onState: (value: State, detail: string) => {
      state.dataset.state = value;
      state.textContent = detail;
      reconnect.hidden = value !== 'closed';
      if (value !== 'closed') reattach.hidden = true;
      if (value === 'closed' || value === 'reconnecting') note.hidden = true;
    },
    onSession: (info) => {
      if (info) persistent = info.persistent;
      saveTerminals();
    },
    onRtt: (ms) => {
      rtt.textContent = ms === null ? '' : `${ms} ms`;
    },
    onGone: (shell) => {
      // A tab restored after a reload never saw a `session` event: the name comes from here.
      persistent = shell ?? persistent;
      reattach.hidden = persistent === null;
    },
    transformInput: (data) => keybar?.transform(data) ?? data,
    onShare: (event) => sharePanel?.handle(event),
  });
  let sharePanel: SharePanel | null = new SharePanel(session);
  panel.insertBefore(sharePanel.element, host);
  shareToggle.addEventListener('click', () => {
    shareToggle.setAttribute('aria-pressed', String(sharePanel?.toggle() ?? false));
    session.refit();
  });
  const filePanel = new FilePanel(() => session.sessionId);
  panel.insertBefore(filePanel.element, host);
  filesToggle.addEventListener('click', () => {
    filesToggle.setAttribute('aria-pressed', String(filePanel.toggle()));
    session.refit();
  });
  session.predictions.enabled = predictEnabled();
  keybar = new KeyBar((data) => session.sendKeys(data),
    () => session.term.modes.applicationCursorKeysMode);
  keybar.element.hidden = !coarsePointer();
  keys.setAttribute('aria-pressed', String(!keybar.element.hidden));
  panel.append(keybar.element);
  const tab: Tab = { id, machine, button, wrap, panel, session, masterPassword };
  tabs.set(id, tab);

  button.addEventListener('click', () => selectTab(id));
  button.addEventListener('keydown', (event) => {
    if (event.key === 'Delete') closeTab(id);
  });
  close.addEventListener('click', () => closeTab(id));
  keys.addEventListener('click', () => {
    if (!keybar) return;
    keybar.element.hidden = !keybar.element.hidden;
    keys.setAttribute('aria-pressed', String(!keybar.element.hidden));
    session.refit();
  });
  const fresh = (button: HTMLButtonElement, shell: string | undefined) =>
    busy(button, async () => {
      const password = tab.masterPassword ?? await askPassword(machine, shell ? 'Re-attach' : 'Reconnect');
      if (!password) return;
      const ticket = await api.connect(machine.id, password, shell);
      tab.masterPassword = password;
      // tmux repaints the whole screen; what is there belongs to the dead client (its alternate
      // screen and modes), so start from a clean terminal and let the redraw fill it.
      if (shell) session.term.reset();
      session.attach(ticket);
      note.hidden = !shell;
    });
  reconnect.addEventListener('click', () => fresh(reconnect, undefined));
  reattach.addEventListener('click', () => fresh(reattach, persistent ?? undefined));
  selectTab(id);
  return tab;
}

/** A touch screen without a fine pointer: show the key bar by default. */
function coarsePointer(): boolean {
  return window.matchMedia?.('(pointer: coarse)').matches ?? false;
}

function selectTab(id: string): void {
  for (const fixed of ['machines', 'recordings', 'orgs']) {
    $(`tab-${fixed}`).setAttribute('aria-selected', String(id === fixed));
    $(`panel-${fixed}`).hidden = id !== fixed;
  }
  $('terminal-panels').hidden = id === 'machines' || id === 'recordings' || id === 'orgs';
  if (id !== 'recordings') player?.pause();
  for (const tab of tabs.values()) {
    const selected = tab.id === id;
    tab.button.setAttribute('aria-selected', String(selected));
    tab.panel.hidden = !selected;
    if (selected) {
      requestAnimationFrame(() => {
        tab.session.refit();
        tab.session.term.focus();
      });
    }
  }
}

function closeTab(id: string): void {
  const tab = tabs.get(id);
  if (!tab) return;
  tabs.delete(id);
  // Close code 1000: the relay ends the session at once (no resume).
  tab.session.dispose();
  tab.wrap.remove();
  tab.panel.remove();
  tab.masterPassword = null;
  saveTerminals();
  const next = [...tabs.keys()].pop();
  selectTab(next ?? 'machines');
}

function closeAllTerminals(): void {
  for (const id of [...tabs.keys()]) closeTab(id);
}

/** Left/Right arrows move between tabs (WAI-ARIA tabs pattern). */
function setupTabKeys(): void {
  $('tabs').addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    const all = [...$('tabs').querySelectorAll<HTMLButtonElement>('[role=tab]')];
    const index = all.findIndex((b) => b === document.activeElement);
    if (index < 0) return;
    const next = all[(index + (event.key === 'ArrowRight' ? 1 : all.length - 1)) % all.length];
    next.focus();
    next.click();
  });
  // Read again on every visit: an organization joined or created in the Organizations tab (its
  // machines, the Owner choices) or a machine another member saved shows without a reload.
  $('tab-machines').addEventListener('click', () => {
    selectTab('machines');
    void busy(null, refreshMachines);
  });
  $('tab-recordings').addEventListener('click', () => {
    selectTab('recordings');
    void busy(null, refreshRecordings);
  });
  const orgs = new OrgsView($('panel-orgs'), busy, notify, () => $('whoami').textContent);
  orgs.mount();
  $('tab-orgs').addEventListener('click', () => {
    selectTab('orgs');
    void busy(null, () => orgs.refresh());
  });
  $('recordings-refresh').addEventListener('click', () =>
    void busy($<HTMLButtonElement>('recordings-refresh'), refreshRecordings));
}

// ---- start ---------------------------------------------------------------------------------

function setupSignIn(): void {
  const form = $<HTMLFormElement>('dev-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
    void busy(submit, async () => {
      const { email } = await api.devSignIn($<HTMLInputElement>('dev-email').value);
      await showApp(email);
    });
  });
  $('signout').addEventListener('click', () =>
    busy($<HTMLButtonElement>('signout'), async () => {
      await api.logout();
      await showSignIn();
    }));
  $('connect-cancel').addEventListener('click', () => $<HTMLDialogElement>('connect-dialog').close());
}

/** A share link (`/#share=<id>.<secret>`): the viewer's page, signed in or not. The secret
 * leaves the address bar at once (history, screenshots) and goes only into the socket. */
function startViewer(id: string, secret: string): void {
  history.replaceState(null, '', location.pathname);
  show('share');
  const viewer = new ShareViewer($('share-host'), $('share-state'));
  viewer.open(id, secret);
}

async function start(): Promise<void> {
  const shared = parseShareFragment(location.hash);
  if (shared) {
    startViewer(shared.id, shared.secret);
    return;
  }
  setupSignIn();
  setupAddForm();
  setupMachineFilter();
  setupMasterForm();
  setupTabKeys();
  setupSettings();
  // A reload or navigation: keep each live terminal's session and screen for the next page.
  window.addEventListener('pagehide', saveTerminals);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') saveTerminals();
  });
  try {
    const me = await api.me();
    await showApp(me.email);
  } catch (err) {
    await showSignIn(err instanceof ApiError && err.status !== 401 ? errorText(err) : undefined);
  }
}

void start();
