// The file panel beside a terminal (docs/files.md): browse the machine's directories from the
// login directory, upload files (several at once, from the file input or dropped on the panel,
// each with its progress and a Cancel), download with the browser's own download (a plain link
// to a streamed GET, never assembled in page memory), make a directory, rename, delete with a
// confirmation. Everything goes over the terminal's own SSH connection, keyed by its session id,
// with the page's `jwt` cookie. Names from the machine reach the page through textContent and
// attribute values only, never innerHTML.

import { ApiError, call, type Envelope } from './api';
import { el } from './dom';

/** One entry of `GET /files/{session}/list`. */
export interface RemoteEntry {
  name: string;
  kind: 'file' | 'dir' | 'link' | 'other';
  size: number;
  modified: number | null;
  mode: string;
}

interface Listing {
  path: string;
  entries: RemoteEntry[];
  truncated: boolean;
}

/** `dir` joined with `name` (POSIX, as SFTP paths are). */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/** The parent of an absolute path (`/` stays `/`). */
export function parentPath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const at = trimmed.lastIndexOf('/');
  return at <= 0 ? '/' : trimmed.slice(0, at);
}

/** A size for people: bytes, KiB, MiB, GiB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A route of session `session`'s files with `params` in its query. */
export function filesUrl(session: string, op: string, params: Record<string, string>): string {
  const base = `/files/${encodeURIComponent(session)}${op ? `/${op}` : ''}`;
  const query = new URLSearchParams(params).toString();
  return query ? `${base}?${query}` : base;
}

/** The file panel of one terminal tab. */
export class FilePanel {
  readonly element: HTMLElement;
  private pathLabel: HTMLElement;
  private list: HTMLElement;
  private uploads: HTMLElement;
  private message: HTMLElement;
  private input: HTMLInputElement;
  private cwd: string | null = null;

  constructor(private sessionId: () => string | null) {
    this.element = el('div', { class: 'file-panel', hidden: '', 'aria-label': 'Files' });
    const bar = el('div', { class: 'file-bar' });
    const up = el('button', { type: 'button', class: 'small secondary' }, 'Up');
    up.addEventListener('click', () => void this.open(this.cwd ? parentPath(this.cwd) : ''));
    const refresh = el('button', { type: 'button', class: 'small secondary' }, 'Refresh');
    refresh.addEventListener('click', () => void this.open(this.cwd ?? ''));
    const mkdir = el('button', { type: 'button', class: 'small secondary' }, 'New folder');
    mkdir.addEventListener('click', () => void this.makeDirectory());
    this.input = el('input', { type: 'file', multiple: '', 'aria-label': 'Upload files' });
    this.input.addEventListener('change', () => {
      const files = Array.from(this.input.files ?? []);
      this.input.value = '';
      this.uploadAll(files);
    });
    this.pathLabel = el('code', { class: 'file-path', 'aria-label': 'Current directory' });
    bar.append(up, refresh, mkdir, this.input, this.pathLabel);
    this.message = el('p', { class: 'file-message', role: 'status', 'aria-live': 'polite' });
    this.uploads = el('ul', { class: 'file-uploads', 'aria-label': 'Uploads' });
    this.list = el('table', { class: 'file-list', 'aria-label': 'Directory' });
    this.element.append(bar, this.message, this.uploads, this.list);
    this.element.addEventListener('dragover', (event) => {
      event.preventDefault();
      this.element.classList.add('dropping');
    });
    this.element.addEventListener('dragleave', () => this.element.classList.remove('dropping'));
    this.element.addEventListener('drop', (event) => {
      event.preventDefault();
      this.element.classList.remove('dropping');
      this.uploadAll(Array.from(event.dataTransfer?.files ?? []));
    });
  }

  /** Show or hide; the first show lists the login directory. */
  toggle(): boolean {
    this.element.hidden = !this.element.hidden;
    if (!this.element.hidden) void this.open(this.cwd ?? '');
    return !this.element.hidden;
  }

  private say(text: string, error = false): void {
    this.message.textContent = text;
    this.message.dataset.error = String(error);
  }

  private fail(err: unknown): void {
    this.say(err instanceof ApiError ? err.message : String(err), true);
  }

  /** List `path` ('' is the login directory). */
  async open(path: string): Promise<void> {
    const session = this.sessionId();
    if (!session) {
      this.say('The terminal is not connected yet.', true);
      return;
    }
    try {
      const listing = await call<Listing>('GET', filesUrl(session, 'list', { path }));
      this.cwd = listing.path;
      this.pathLabel.textContent = listing.path;
      this.render(session, listing);
      this.say(listing.truncated ? 'Only the first 5,000 entries are shown.' : '');
    } catch (err) {
      this.fail(err);
    }
  }

  private render(session: string, listing: Listing): void {
    this.list.replaceChildren();
    const head = el('tr');
    for (const title of ['Name', 'Size', 'Modified', '']) head.append(el('th', {}, title));
    this.list.append(head);
    for (const entry of listing.entries) {
      const path = joinPath(listing.path, entry.name);
      const row = el('tr', { 'data-name': entry.name, 'data-kind': entry.kind });
      const name = el('td');
      if (entry.kind === 'dir') {
        const open = el('button', { type: 'button', class: 'link' }, `${entry.name}/`);
        open.addEventListener('click', () => void this.open(path));
        name.append(open);
      } else {
        // The browser's own download: a streamed GET it saves, with the cookie.
        name.append(el('a', { href: filesUrl(session, 'download', { path }), download: entry.name,
          'aria-label': `Download ${entry.name}` }, entry.name));
      }
      const modified = entry.modified ? new Date(entry.modified * 1000).toLocaleString() : '';
      const actions = el('td');
      const rename = el('button', { type: 'button', class: 'small secondary',
        'aria-label': `Rename ${entry.name}` }, 'Rename');
      rename.addEventListener('click', () => void this.rename(path, entry.name));
      const remove = el('button', { type: 'button', class: 'small secondary',
        'aria-label': `Delete ${entry.name}` }, 'Delete');
      remove.addEventListener('click', () => void this.remove(path, entry));
      actions.append(rename, remove);
      row.append(name, el('td', {}, entry.kind === 'dir' ? '' : humanSize(entry.size)),
        el('td', {}, modified), actions);
      this.list.append(row);
    }
  }

  private async makeDirectory(): Promise<void> {
    const session = this.sessionId();
    const name = window.prompt('New folder name');
    if (!session || !name || this.cwd === null) return;
    try {
      await call<unknown>('POST', filesUrl(session, 'mkdir', { path: joinPath(this.cwd, name) }));
      await this.open(this.cwd);
    } catch (err) {
      this.fail(err);
    }
  }

  private async rename(path: string, name: string): Promise<void> {
    const session = this.sessionId();
    const next = window.prompt(`Rename ${name} to`, name);
    if (!session || !next || next === name || this.cwd === null) return;
    try {
      await call<unknown>('POST', filesUrl(session, 'rename',
        { from: path, to: joinPath(this.cwd, next) }));
      await this.open(this.cwd);
    } catch (err) {
      this.fail(err);
    }
  }

  private async remove(path: string, entry: RemoteEntry): Promise<void> {
    const session = this.sessionId();
    const what = entry.kind === 'dir' ? `the folder ${entry.name} (it must be empty)` : entry.name;
    if (!session || !window.confirm(`Delete ${what}?`) || this.cwd === null) return;
    try {
      await call<unknown>('DELETE', filesUrl(session, '', { path }));
      await this.open(this.cwd);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Upload `files` into the current directory, each with its own progress and Cancel. */
  uploadAll(files: File[]): void {
    const session = this.sessionId();
    if (!session || this.cwd === null) {
      this.say('Open the file panel of a connected terminal first.', true);
      return;
    }
    for (const file of files) void this.upload(session, this.cwd, file);
  }

  private async upload(session: string, dir: string, file: File, overwrite = false): Promise<void> {
    const item = el('li', { 'data-upload': file.name });
    const progress = el('progress', { max: String(Math.max(file.size, 1)), value: '0',
      'aria-label': `Upload of ${file.name}` });
    const label = el('span', {}, `${file.name} (${humanSize(file.size)}) `);
    const cancel = el('button', { type: 'button', class: 'small secondary' }, 'Cancel');
    item.append(label, progress, cancel);
    this.uploads.append(item);
    const params: Record<string, string> = { path: joinPath(dir, file.name) };
    if (overwrite) params.overwrite = 'true';
    // XMLHttpRequest rather than fetch: it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', filesUrl(session, 'upload', params));
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (event) => {
      progress.value = event.loaded;
    };
    cancel.addEventListener('click', () => xhr.abort());
    const outcome = await new Promise<'done' | 'aborted' | 'error'>((resolve) => {
      xhr.onload = () => resolve('done');
      xhr.onabort = () => resolve('aborted');
      xhr.onerror = () => resolve('error');
      xhr.send(file);
    });
    cancel.remove();
    if (outcome === 'aborted') {
      item.dataset.state = 'cancelled';
      label.textContent = `${file.name}: cancelled`;
      return;
    }
    if (outcome === 'error') {
      item.dataset.state = 'failed';
      label.textContent = `${file.name}: the connection failed`;
      return;
    }
    let envelope: Envelope<unknown> | null = null;
    try {
      envelope = JSON.parse(xhr.responseText) as Envelope<unknown>;
    } catch {
      envelope = null;
    }
    if (xhr.status === 200) {
      item.dataset.state = 'done';
      progress.value = Math.max(file.size, 1);
      label.textContent = `${file.name}: uploaded `;
      if (this.cwd === dir) await this.open(dir);
      return;
    }
    if (envelope?.code === 'remote_exists' && !overwrite &&
        window.confirm(`${file.name} exists. Replace it?`)) {
      item.remove();
      await this.upload(session, dir, file, true);
      return;
    }
    item.dataset.state = 'failed';
    label.textContent = `${file.name}: ${envelope?.message ?? `failed (${xhr.status})`}`;
  }
}
