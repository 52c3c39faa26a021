// Live sharing (docs/websocket-protocol.md, Sharing): the owner's share panel beside a terminal
// (create a view or control link, see who watches, grant or take back control, revoke) and the
// viewer's page, which a share link opens.
//
// A link is `<origin>/#share=<id>.<secret>`: the secret lives in the fragment, which the browser
// never sends to a server; the viewer's page reads it, removes it from the address bar, and sends
// it only as the WebSocket's first frame (`join`). All text from the relay or the user reaches
// the page through textContent / value, never innerHTML.

import { Terminal } from '@xterm/xterm';
import { CLOSE_REASONS, type ServerEvent } from './protocol';
import type { ShareEvent, TerminalSession } from './terminal';
import { el } from './dom';

type Mode = 'view' | 'control';
type ViewerList = Extract<ServerEvent, { type: 'viewers' }>['viewers'];

/** The link that opens share `id` with its `secret`, on this page's origin. */
export function shareLink(id: string, secret: string): string {
  return `${location.origin}/#share=${encodeURIComponent(id)}.${encodeURIComponent(secret)}`;
}

/** The share id and secret in a `#share=<id>.<secret>` fragment, if that is what it is. */
export function parseShareFragment(hash: string): { id: string; secret: string } | null {
  const match = /^#share=([0-9a-fA-F-]{36})\.([A-Za-z0-9_-]{16,128})$/.exec(hash);
  return match ? { id: match[1], secret: match[2] } : null;
}

/** The owner's share panel for one terminal tab. */
export class SharePanel {
  readonly element: HTMLElement;
  private shares: HTMLElement;
  private viewers: HTMLElement;
  private links = new Map<string, HTMLElement>();

  constructor(private session: TerminalSession) {
    this.element = el('div', { class: 'share-panel', hidden: '' });
    const form = el('form', { class: 'share-form' });
    const mode = el('select', { 'aria-label': 'Share mode' });
    mode.append(el('option', { value: 'view' }, 'View only'),
      el('option', { value: 'control' }, 'View and control (named users)'));
    const emails = el('input', { type: 'text', 'aria-label': 'Invite emails',
      placeholder: 'emails, comma-separated (empty: anyone with the link)' });
    const expiry = el('select', { 'aria-label': 'Share expiry' });
    for (const [secs, label] of [['900', '15 minutes'], ['3600', '1 hour'], ['28800', '8 hours'],
      ['86400', '24 hours']]) {
      expiry.append(el('option', { value: secs }, label));
    }
    expiry.value = '3600';
    const create = el('button', { type: 'submit' }, 'Create link');
    form.append(mode, emails, expiry, create);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const list = emails.value.split(',').map((e) => e.trim()).filter((e) => e !== '');
      this.session.share(mode.value as Mode, list, Number(expiry.value));
    });
    this.shares = el('ul', { class: 'share-links', 'aria-label': 'Share links' });
    this.viewers = el('ul', { class: 'share-viewers', 'aria-label': 'Viewers' });
    this.element.append(form, this.shares, el('h3', {}, 'Watching'), this.viewers);
    this.showViewers([]);
  }

  toggle(): boolean {
    this.element.hidden = !this.element.hidden;
    return !this.element.hidden;
  }

  handle(event: ShareEvent): void {
    switch (event.type) {
      case 'share_created': {
        const link = shareLink(event.id, event.secret);
        const item = el('li', { 'data-share': event.id });
        const who = event.emails.length ? event.emails.join(', ') : 'anyone with the link';
        const field = el('input', { type: 'text', readonly: '', class: 'share-link',
          'aria-label': `Share link (${event.mode})` });
        field.value = link;
        const copy = el('button', { type: 'button', class: 'small secondary' }, 'Copy');
        copy.addEventListener('click', () => void navigator.clipboard?.writeText(link));
        const revoke = el('button', { type: 'button', class: 'small secondary' }, 'Revoke');
        revoke.addEventListener('click', () => this.session.revokeShare(event.id));
        item.append(el('span', {}, `${event.mode === 'view' ? 'View' : 'Control'}: ${who} `),
          field, copy, revoke);
        this.links.set(event.id, item);
        this.shares.append(item);
        break;
      }
      case 'share_ended':
        this.links.get(event.id)?.remove();
        this.links.delete(event.id);
        break;
      case 'viewers':
        this.showViewers(event.viewers);
        break;
      default:
        break;
    }
  }

  private showViewers(viewers: ViewerList): void {
    this.viewers.replaceChildren();
    if (viewers.length === 0) {
      this.viewers.append(el('li', { class: 'muted' }, 'nobody'));
      return;
    }
    for (const viewer of viewers) {
      const item = el('li', { 'data-viewer': String(viewer.id) },
        `${viewer.who} (${viewer.mode}${viewer.control ? ', typing' : ''}) `);
      if (viewer.mode === 'control') {
        const button = el('button', { type: 'button', class: 'small' },
          viewer.control ? 'Take back control' : 'Give control');
        button.addEventListener('click', () => this.session.setControl(viewer.id, !viewer.control));
        item.append(button);
      }
      this.viewers.append(item);
    }
  }
}

/** The viewer's side: a read-only (or, once granted, typing) xterm on a share. */
export class ShareViewer {
  readonly term: Terminal;
  private socket: WebSocket | null = null;
  private granted = false;
  private encoder = new TextEncoder();

  constructor(host: HTMLElement, private status: HTMLElement) {
    this.term = new Terminal({
      cursorBlink: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      scrollback: 5000,
    });
    this.term.open(host);
    this.term.onData((data) => {
      if (this.granted && this.socket?.readyState === WebSocket.OPEN) {
        this.socket.send(this.encoder.encode(data));
      }
    });
  }

  open(id: string, secret: string): void {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ssh?share=${encodeURIComponent(id)}`);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.setStatus('connecting', 'joining…');
    socket.onopen = () => socket.send(JSON.stringify({ type: 'join', secret }));
    socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.term.write(new Uint8Array(event.data));
      else this.control(String(event.data));
    };
    socket.onclose = (event) => {
      this.granted = false;
      const why = event.code === 1006 ? 'connection lost'
        : CLOSE_REASONS[event.code] ?? (event.reason || `closed (${event.code})`);
      this.setStatus('closed', `disconnected: ${why}`);
    };
  }

  private control(text: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(text) as ServerEvent;
    } catch {
      return;
    }
    switch (event.type) {
      case 'joined':
        this.term.resize(event.cols, event.rows);
        this.setStatus('connected', event.mode === 'view' ? 'watching (view only)'
          : 'watching; the owner can give you control');
        break;
      case 'size':
        this.term.resize(event.cols, event.rows);
        break;
      case 'control':
        this.granted = event.granted;
        this.setStatus('connected', event.granted ? 'you have control: type away'
          : 'watching; the owner has control');
        if (event.granted) this.term.focus();
        break;
      case 'exit':
        this.term.write('\r\n\x1b[2m[the shared terminal ended]\x1b[0m\r\n');
        break;
      case 'error':
        if (event.message) this.term.write(`\r\n\x1b[31m[${event.message}]\x1b[0m\r\n`);
        break;
      default:
        break;
    }
  }

  private setStatus(state: string, text: string): void {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }
}
