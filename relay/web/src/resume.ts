// The client half of the terminal resume protocol (docs/websocket-protocol.md, "Resuming"),
// as pure pieces `node --test` can check (test/resume.test.mjs); terminal.ts wires them to the
// socket. Kept apart from the socket code because each piece is a small contract of its own:
// which keystrokes can still be resent, when to ack, how long to wait before the next try, and
// what a reloaded page finds in sessionStorage.

/** Keystrokes sent in this session, the newest `limit` bytes kept so a resume can resend what
 * the relay never took. Offsets count every byte ever sent (the relay's `input_offset`). */
export class InputLog {
  private chunks: Uint8Array[] = [];
  private kept = 0;
  /** Offset of the first byte still kept. */
  private start: number;

  constructor(private readonly limit = 64 * 1024, sentBefore = 0) {
    this.start = sentBefore;
  }

  /** Total bytes sent in the session. */
  get total(): number {
    return this.start + this.kept;
  }

  push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.kept += bytes.length;
    while (this.kept > this.limit && this.chunks.length > 0) {
      const first = this.chunks[0];
      const excess = this.kept - this.limit;
      if (first.length <= excess) {
        this.chunks.shift();
        this.kept -= first.length;
        this.start += first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.kept -= excess;
        this.start += excess;
      }
    }
  }

  /** The bytes from `offset` on, or null when some of them are no longer kept. */
  since(offset: number): Uint8Array | null {
    if (offset < this.start) return null;
    const skip = Math.min(offset - this.start, this.kept);
    const out = new Uint8Array(this.kept - skip);
    let at = 0;
    let skipped = 0;
    for (const chunk of this.chunks) {
      const from = Math.max(0, Math.min(chunk.length, skip - skipped));
      skipped += chunk.length;
      out.set(chunk.subarray(from), at);
      at += chunk.length - from;
    }
    return out;
  }
}

/** Output bytes received and acknowledged. The contract: ack when 64 KiB are unacked, and
 * within 1 s whenever anything is. `received` counts bytes the terminal has *processed*, so a
 * saved screen and its offset always agree. */
export class AckState {
  received = 0;
  private acked = 0;

  constructor(received = 0, readonly threshold = 64 * 1024) {
    this.received = received;
    this.acked = received;
  }

  /** Count `n` processed bytes; true when an ack is due at once. */
  add(n: number): boolean {
    this.received += n;
    return this.received - this.acked >= this.threshold;
  }

  get unacked(): number {
    return this.received - this.acked;
  }

  /** The offset to send in an ack, or null when there is nothing new. */
  take(): number | null {
    if (this.received === this.acked) return null;
    this.acked = this.received;
    return this.received;
  }

  /** After `resumed`: output continues at `offset`, and the relay holds nothing before it. */
  restart(offset: number): void {
    this.received = offset;
    this.acked = offset;
  }
}

/** Delay before reconnect attempt `attempt` (0-based): 0.5 s doubling to 8 s. */
export function backoffMs(attempt: number): number {
  return Math.min(8000, 500 * 2 ** Math.min(attempt, 5));
}

/** A terminal tab as a reload finds it again: in sessionStorage (this browser tab only, gone
 * when it closes), never localStorage, and never the master password. */
export interface SavedTerminal {
  id: string;
  secret: string;
  machineId: number;
  /** Output bytes the saved screen holds. */
  offset: number;
  /** Keystroke bytes sent in the session. */
  input: number;
  persistent: string | null;
  /** The screen as xterm.js's serialize addon wrote it (bounded; may be ''). */
  screen: string;
}

export const STORAGE_KEY = 'sushi.terminals';

/** Only what a resume needs, validated: storage is input like any other. */
function valid(entry: unknown): entry is SavedTerminal {
  if (typeof entry !== 'object' || entry === null) return false;
  const e = entry as Record<string, unknown>;
  return typeof e.id === 'string' && /^[0-9a-f-]{36}$/i.test(e.id)
    && typeof e.secret === 'string' && e.secret.length <= 128
    && Number.isSafeInteger(e.machineId) && Number.isSafeInteger(e.offset)
    && Number.isSafeInteger(e.input)
    && (e.persistent === null || typeof e.persistent === 'string')
    && typeof e.screen === 'string';
}

export function loadSaved(storage: Pick<Storage, 'getItem'>): SavedTerminal[] {
  try {
    const parsed: unknown = JSON.parse(storage.getItem(STORAGE_KEY) ?? '[]');
    return Array.isArray(parsed) ? parsed.filter(valid) : [];
  } catch {
    return [];
  }
}

/** Save `entries`; when storage is full, save them without screens (resume still works). */
export function storeSaved(storage: Pick<Storage, 'setItem' | 'removeItem'>,
  entries: SavedTerminal[]): void {
  if (entries.length === 0) {
    storage.removeItem(STORAGE_KEY);
    return;
  }
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(entries));
  } catch {
    try {
      storage.setItem(STORAGE_KEY, JSON.stringify(entries.map((e) => ({ ...e, screen: '' }))));
    } catch {
      storage.removeItem(STORAGE_KEY);
    }
  }
}
