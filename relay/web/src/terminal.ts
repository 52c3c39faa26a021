// One terminal tab: an xterm.js screen bound to one relay WebSocket (protocol:
// docs/websocket-protocol.md). Output arrives as binary frames and is written to xterm as
// bytes, never decoded as text here; keystrokes leave as binary frames; resizes and
// heartbeats are JSON text frames. When the socket drops, the tab shows why and offers
// Reconnect, which asks the API for a fresh ticket (tickets are single use).

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { CLOSE_REASONS, type ServerEvent } from './protocol';

export type State = 'connecting' | 'connected' | 'closed';

/** Why the socket closed, by close code: the relay's codes (generated from its protocol
 * definition) plus 1006, which only the browser reports (the connection dropped). */
function closeReason(code: number): string | undefined {
  return code === 1006 ? 'connection lost' : CLOSE_REASONS[code];
}

const HEARTBEAT_MS = 25_000;

/** The WebSocket URL for `ticket`, on this page's own origin (wss when the page is https). */
export function socketUrl(ticket: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ssh?uuid=${encodeURIComponent(ticket)}`;
}

export class TerminalSession {
  readonly term: Terminal;
  private fit = new FitAddon();
  private socket: WebSocket | null = null;
  private heartbeat: number | undefined;
  private resizeObserver: ResizeObserver;
  private encoder = new TextEncoder();
  private disposed = false;

  constructor(
    private host: HTMLElement,
    private onState: (state: State, detail: string) => void,
  ) {
    this.term = new Terminal({
      cursorBlink: true,
      convertEol: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      scrollback: 5000,
      screenReaderMode: false,
    });
    this.term.loadAddon(this.fit);
    this.term.open(host);
    this.term.onData((data) => this.send(this.encoder.encode(data)));
    this.term.onBinary((data) => {
      const bytes = Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff);
      this.send(bytes);
    });
    this.term.onResize(({ cols, rows }) => this.sendJson({ type: 'resize', cols, rows }));
    // Copy/paste: the browser's own shortcuts work on the selection; Ctrl+Shift+C/V too,
    // since Ctrl+C/V belong to the shell.
    this.term.attachCustomKeyEventHandler((event) => {
      if (event.type !== 'keydown' || !event.ctrlKey || !event.shiftKey) return true;
      if (event.code === 'KeyC' && this.term.hasSelection()) {
        void navigator.clipboard?.writeText(this.term.getSelection());
        return false;
      }
      if (event.code === 'KeyV') {
        void navigator.clipboard?.readText().then((text) => this.term.paste(text));
        return false;
      }
      return true;
    });
    this.resizeObserver = new ResizeObserver(() => this.refit());
    this.resizeObserver.observe(host);
  }

  /** Fit the terminal to its box; xterm's onResize then tells the relay. */
  refit(): void {
    if (this.disposed || this.host.offsetParent === null) return;
    try {
      this.fit.fit();
    } catch {
      // Not laid out yet (hidden tab); the observer fires again when it is.
    }
  }

  /** Open the terminal WebSocket with a fresh `ticket`. */
  attach(ticket: string): void {
    this.detach();
    this.onState('connecting', 'connecting…');
    const socket = new WebSocket(socketUrl(ticket));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      this.onState('connected', 'connected');
      this.refit();
      this.sendJson({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
      this.heartbeat = window.setInterval(() => this.sendJson({ type: 'heartbeat' }), HEARTBEAT_MS);
      this.term.focus();
    };
    socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        this.term.write(new Uint8Array(event.data));
        return;
      }
      this.control(String(event.data));
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      window.clearInterval(this.heartbeat);
      this.socket = null;
      const reason = closeReason(event.code) ?? (event.reason || `closed (${event.code})`);
      this.onState('closed', `disconnected: ${reason}`);
    };
  }

  private control(text: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(text) as ServerEvent;
    } catch {
      return;
    }
    if (event.type === 'exit') {
      const status = event.signal ? `signal ${event.signal}` : `status ${event.code ?? '?'}`;
      this.term.write(`\r\n\x1b[2m[remote shell exited with ${status}]\x1b[0m\r\n`);
    } else if (event.type === 'error' && event.message) {
      this.term.write(`\r\n\x1b[31m[${event.message}]\x1b[0m\r\n`);
    }
  }

  private send(bytes: Uint8Array): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  private sendJson(value: unknown): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(value));
  }

  /** Close the socket (the relay then ends the SSH session). */
  detach(): void {
    window.clearInterval(this.heartbeat);
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'closed by user');
  }

  dispose(): void {
    this.disposed = true;
    this.detach();
    this.resizeObserver.disconnect();
    this.term.dispose();
  }
}
