// One terminal tab: an xterm.js screen bound to a relay session (protocol:
// docs/websocket-protocol.md). Output arrives as binary frames and is written to xterm as
// bytes, never decoded as text here; keystrokes leave as binary frames; resizes, acks, pings and
// heartbeats are JSON text frames.
//
// A session outlives its socket: the relay's first event names the session and its secret, and
// when the socket drops without an explicit end (network loss, a page reload) the tab resumes it
// with backoff — output continues from the last byte the screen holds, keystrokes the relay never
// took are sent again, and xterm's buffer (scrollback included) is kept. Only closing the tab
// (close code 1000) ends the session. A relay without resume (no `session` event) gets none of
// the new frames, and a drop then just ends the tab as before.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { SerializeAddon } from '@xterm/addon-serialize';
import { CLOSE_REASONS, Close, type ClientEvent, type ServerEvent } from './protocol';
import { AckState, backoffMs, InputLog, type SavedTerminal } from './resume';
import { PredictionView } from './predict-view';

export type State = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** What a resume needs, as the relay's `session` event gave it. */
export interface SessionInfo {
  id: string;
  secret: string;
  persistent: string | null;
  graceSecs: number;
}

export interface TerminalHooks {
  onState(state: State, detail: string): void;
  /** The session became resumable (its info), or stopped being so (null): persist or forget. */
  onSession(info: SessionInfo | null): void;
  /** A measured round-trip time, in milliseconds (null: not measured, e.g. disconnected). */
  onRtt(ms: number | null): void;
  /** The relay no longer has the session (4012); `persistent` names a re-attachable shell. */
  onGone(persistent: string | null): void;
  /** Keystrokes pass through here first (the key bar's sticky modifiers). */
  transformInput?(data: string): string;
  /** Sharing events for the owner: a share created or ended, who is watching. */
  onShare?(event: ShareEvent): void;
}

/** The server events about this terminal's shares (docs/websocket-protocol.md, Sharing). */
export type ShareEvent = Extract<ServerEvent, { type: 'share_created' | 'share_ended' | 'viewers' }>;

/** Largest screen sent to seed a share's viewers (the relay takes messages up to 64 KiB). */
const SHARE_SCREEN_LIMIT = 48_000;

/** Why the socket closed, by close code: the relay's codes (generated from its protocol
 * definition) plus 1006, which only the browser reports (the connection dropped). */
function closeReason(code: number): string | undefined {
  return code === 1006 ? 'connection lost' : CLOSE_REASONS[code];
}

/** Close codes after which the session is over for good (or, 4013, belongs to another window):
 * everything else (1006 drop, 1001, 4009 unresponsive, 4011 routing) is worth a resume. */
const FINAL_CLOSES = new Set<number>([Close.Normal, Close.MessageTooBig, Close.TicketInvalid,
  Close.TicketUsed, Close.TicketNotYours, Close.SshClosed, Close.IdleTimeout, Close.SessionGone,
  Close.TakenOver, Close.RecordingFailed, Close.AccessRevoked]);

const HEARTBEAT_MS = 25_000;
const PING_MS = 5_000;
/** No pong for this long: the link is dead even if TCP has not noticed; drop and resume. */
const PONG_DEADLINE_MS = 20_000;
const ACK_MS = 1_000;
/** 4011 on a resume this many times in a row: the relay holding the session is gone. */
const ROUTING_RETRIES = 4;
/** Bound on a saved screen (characters of serialized escape sequences). */
const SCREEN_LIMIT = 400_000;

function scheme(): string {
  return location.protocol === 'https:' ? 'wss:' : 'ws:';
}

/** The WebSocket URL for `ticket`, on this page's own origin (wss when the page is https). */
export function socketUrl(ticket: string): string {
  return `${scheme()}//${location.host}/ssh?uuid=${encodeURIComponent(ticket)}`;
}

/** The WebSocket URL that resumes session `id`. */
export function resumeUrl(id: string): string {
  return `${scheme()}//${location.host}/ssh?session=${encodeURIComponent(id)}`;
}

export class TerminalSession {
  readonly term: Terminal;
  readonly predictions: PredictionView;
  private fit = new FitAddon();
  private serializer = new SerializeAddon();
  private socket: WebSocket | null = null;
  private resizeObserver: ResizeObserver;
  private encoder = new TextEncoder();
  private disposed = false;

  private session: SessionInfo | null = null;
  private ack = new AckState();
  private input = new InputLog();
  /** The socket is a resume still waiting for `resumed`: no keystrokes yet. */
  private awaitingResumed = false;
  /** The shell exited or the user closed the tab: a drop now is no reason to resume. */
  private ended = false;
  private retry = { attempt: 0, since: 0, routing: 0, timer: undefined as number | undefined };
  private timers: number[] = [];
  private pings = new Map<number, number>();
  private pingId = 0;
  private lastPong = 0;

  constructor(private host: HTMLElement, private hooks: TerminalHooks) {
    this.term = new Terminal({
      cursorBlink: true,
      convertEol: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      scrollback: 5000,
      screenReaderMode: false,
      // For decorations (the predictive echo's overlays), still marked experimental.
      allowProposedApi: true,
    });
    this.term.loadAddon(this.fit);
    this.term.loadAddon(this.serializer);
    this.term.open(host);
    this.predictions = new PredictionView(this.term);
    this.term.onData((data) => this.typed(data));
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

  /** Open a fresh terminal with `ticket` (single use): a new session. */
  attach(ticket: string): void {
    this.stopRetry();
    this.detachSocket();
    this.session = null;
    this.ended = false;
    this.ack = new AckState();
    this.input = new InputLog();
    this.open(socketUrl(ticket), false);
  }

  /** Resume a session a reloaded page found in sessionStorage: its screen first, then the
   * output that followed it. */
  restore(saved: SavedTerminal, graceSecs: number): void {
    this.refit();
    if (saved.screen) this.term.write(saved.screen);
    this.session = { id: saved.id, secret: saved.secret, persistent: saved.persistent, graceSecs };
    this.ack = new AckState(saved.offset);
    this.input = new InputLog(undefined, saved.input);
    this.ended = false;
    this.retry.since = Date.now();
    this.open(resumeUrl(saved.id), true);
  }

  /** The resumable session's id, if there is one. */
  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  /** What a reload needs to come back to this tab; null when there is no live session. */
  snapshot(): Omit<SavedTerminal, 'machineId'> | null {
    const session = this.session;
    if (!session || this.ended) return null;
    let screen = this.serializer.serialize({ scrollback: 1000 });
    if (screen.length > SCREEN_LIMIT) screen = this.serializer.serialize({ scrollback: 0 });
    if (screen.length > SCREEN_LIMIT) screen = '';
    return { id: session.id, secret: session.secret, offset: this.ack.received,
      input: this.input.total, persistent: session.persistent, screen };
  }

  private open(url: string, resuming: boolean): void {
    this.onState(resuming ? 'reconnecting' : 'connecting', resuming ? 'reconnecting…' : 'connecting…');
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.awaitingResumed = resuming;
    socket.onopen = () => {
      if (resuming) {
        // The offset must be what the screen holds: let xterm finish writing what it has.
        this.term.write(new Uint8Array(0), () => {
          const secret = this.session?.secret ?? '';
          this.sendJson({ type: 'resume', secret, offset: this.ack.received }, true);
        });
        return;
      }
      this.connected();
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      if (event.data instanceof ArrayBuffer) this.output(new Uint8Array(event.data));
      else this.control(String(event.data));
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopTimers();
      this.predictions.clear();
      this.hooks.onRtt(null);
      this.closed(event.code, event.reason);
    };
  }

  private connected(): void {
    this.awaitingResumed = false;
    this.onState('connected', 'connected');
    this.refit();
    this.sendJson({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
    this.stopTimers();
    this.timers.push(window.setInterval(() => this.sendJson({ type: 'heartbeat' }), HEARTBEAT_MS));
    if (this.session) this.startResumeTimers();
    if (!this.disposed && this.host.offsetParent !== null) this.term.focus();
  }

  /** Acks and pings exist only with a relay that speaks the resume protocol. */
  private startResumeTimers(): void {
    this.lastPong = Date.now();
    this.timers.push(window.setInterval(() => this.sendAck(), ACK_MS));
    this.timers.push(window.setInterval(() => this.ping(), PING_MS));
    this.ping();
  }

  private output(bytes: Uint8Array): void {
    const ack = this.ack;
    this.term.write(bytes, () => {
      // Counted once xterm has processed them, so a saved screen and its offset agree.
      if (ack.add(bytes.length) && ack === this.ack) this.sendAck();
      this.predictions.output();
    });
  }

  private control(text: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(text) as ServerEvent;
    } catch {
      return;
    }
    switch (event.type) {
      case 'session':
        this.session = { id: event.id, secret: event.secret, persistent: event.persistent,
          graceSecs: event.grace_secs };
        this.hooks.onSession(this.session);
        this.startResumeTimers();
        break;
      case 'resumed':
        this.resumed(event.offset, event.dropped, event.input_offset);
        break;
      case 'pong': {
        const sent = this.pings.get(event.id);
        this.pings.delete(event.id);
        this.lastPong = Date.now();
        if (sent !== undefined) this.hooks.onRtt(Math.round(performance.now() - sent));
        break;
      }
      case 'exit': {
        this.ended = true;
        const status = event.signal ? `signal ${event.signal}` : `status ${event.code ?? '?'}`;
        this.notice(`remote shell exited with ${status}`);
        break;
      }
      case 'error':
        if (event.message) this.term.write(`\r\n\x1b[31m[${event.message}]\x1b[0m\r\n`);
        break;
      case 'share_created':
      case 'share_ended':
      case 'viewers':
        this.hooks.onShare?.(event);
        break;
      default:
        break;
    }
  }

  /** Share this terminal: the relay answers `share_created` (through `onShare`). The screen
   * as it is now goes along, so viewers start from it when the relay no longer holds the
   * session's early output. */
  share(mode: 'view' | 'control', emails: string[], expiresInSecs: number): void {
    this.term.write(new Uint8Array(0), () => {
      const screen = this.serializer.serialize({ scrollback: 0 });
      const seed = screen.length <= SHARE_SCREEN_LIMIT
        ? { screen, offset: this.ack.received } : {};
      this.sendJson({ type: 'share_create', mode, emails, expires_in_secs: expiresInSecs, ...seed });
    });
  }

  /** End a share now: its viewers are disconnected. */
  revokeShare(id: string): void {
    this.sendJson({ type: 'share_revoke', id });
  }

  /** Let a viewer of a control share type, or take it back. */
  setControl(viewer: number, granted: boolean): void {
    this.sendJson({ type: granted ? 'control_grant' : 'control_revoke', viewer });
  }

  private resumed(offset: number, dropped: number, inputOffset: number): void {
    this.ack.restart(offset);
    this.retry = { attempt: 0, since: 0, routing: 0, timer: undefined };
    if (dropped > 0) this.notice(`${dropped} bytes lost`);
    this.connected();
    const again = this.input.since(inputOffset);
    if (again === null) this.notice('some keystrokes were lost');
    else if (again.length > 0) this.socket?.send(again);
    if (this.session) this.hooks.onSession(this.session);
  }

  private closed(code: number, reason: string): void {
    if (this.disposed) return;
    const session = this.session;
    const why = closeReason(code) ?? (reason || `closed (${code})`);
    if (session && !this.ended && code === Close.SessionGone) {
      this.forget();
      this.onState('closed', `disconnected: ${why}`);
      this.hooks.onGone(session.persistent);
      return;
    }
    if (session && !this.ended && !FINAL_CLOSES.has(code)) {
      this.retry.routing = code === Close.RoutingUnavailable && this.awaitingResumed ? this.retry.routing + 1 : 0;
      if (this.retry.routing >= ROUTING_RETRIES) {
        this.forget();
        this.onState('closed', `disconnected: ${why}`);
        this.hooks.onGone(session.persistent);
        return;
      }
      this.scheduleResume(session);
      return;
    }
    this.forget();
    this.onState('closed', `disconnected: ${why}`);
  }

  private scheduleResume(session: SessionInfo): void {
    const now = Date.now();
    if (this.retry.since === 0) this.retry.since = now;
    if (now - this.retry.since > session.graceSecs * 1000) {
      this.forget();
      this.onState('closed', 'disconnected: could not reconnect in time');
      this.hooks.onGone(session.persistent);
      return;
    }
    const delay = backoffMs(this.retry.attempt);
    this.retry.attempt += 1;
    this.onState('reconnecting', 'reconnecting…');
    this.retry.timer = window.setTimeout(() => {
      this.retry.timer = undefined;
      if (!this.disposed && this.session === session) this.open(resumeUrl(session.id), true);
    }, delay);
  }

  /** The session cannot be resumed any more: say so to whoever stored it. */
  private forget(): void {
    this.stopRetry();
    if (this.session) {
      this.session = null;
      this.hooks.onSession(null);
    }
  }

  private typed(data: string): void {
    const input = this.hooks.transformInput ? this.hooks.transformInput(data) : data;
    if (this.socket?.readyState === WebSocket.OPEN && !this.awaitingResumed) {
      this.predictions.input(input);
    }
    this.send(this.encoder.encode(input));
  }

  /** Keys from outside xterm (the key bar): sent as if typed, modifiers already applied. */
  sendKeys(data: string): void {
    this.send(this.encoder.encode(data));
  }

  /** Keystrokes: logged when the session is resumable (so a resume can resend them), sent
   * when the socket is open and past any resume handshake. */
  private send(bytes: Uint8Array): void {
    if (this.session && !this.ended) this.input.push(bytes);
    if (this.socket?.readyState === WebSocket.OPEN && !this.awaitingResumed) this.socket.send(bytes);
  }

  private sendJson(value: ClientEvent, evenWhileResuming = false): void {
    if (this.awaitingResumed && !evenWhileResuming) return;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(value));
  }

  private sendAck(): void {
    if (this.awaitingResumed || this.socket?.readyState !== WebSocket.OPEN) return;
    const offset = this.ack.take();
    if (offset !== null) this.sendJson({ type: 'ack', offset });
  }

  private ping(): void {
    if (Date.now() - this.lastPong > PONG_DEADLINE_MS) {
      // Half-open link: close it (not 1000, so the relay parks the session) and resume.
      this.socket?.close(4000, 'no pong');
      return;
    }
    this.pingId += 1;
    this.pings.set(this.pingId, performance.now());
    for (const id of this.pings.keys()) if (id < this.pingId - 10) this.pings.delete(id);
    this.sendJson({ type: 'ping', id: this.pingId });
  }

  private notice(text: string): void {
    this.term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);
  }

  private onState(state: State, detail: string): void {
    if (!this.disposed) this.hooks.onState(state, detail);
  }

  private stopTimers(): void {
    for (const timer of this.timers) window.clearInterval(timer);
    this.timers = [];
    this.pings.clear();
  }

  private stopRetry(): void {
    window.clearTimeout(this.retry.timer);
    this.retry = { attempt: 0, since: 0, routing: 0, timer: undefined };
  }

  /** Close the socket with 1000: an explicit end, the relay ends the SSH session. */
  private detachSocket(): void {
    this.stopTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'closed by user');
  }

  /** The user closed the tab: end the session (close 1000) and free the terminal. */
  dispose(): void {
    this.ended = true;
    this.forget();
    this.disposed = true;
    this.detachSocket();
    this.predictions.dispose();
    this.resizeObserver.disconnect();
    this.term.dispose();
  }
}
