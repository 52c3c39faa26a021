// A session recording as the player needs it (docs/recording.md, Player): asciicast v2 parsed
// into a header and timed events, the steps that rebuild the screen at any time, and a text
// index for search. Pure (no DOM, no xterm) so node's test runner checks it as it is.
//
// Why a search index over the whole recording and not per event: output arrives in whatever
// pieces SSH read, so a word (or an escape sequence) can be split across events. The index is
// the concatenation of every output event with escape sequences and control characters removed,
// plus where each event starts in it; a match is mapped back to the event holding its last
// character, the first moment the whole word is on screen.

export interface CastHeader {
  width: number;
  height: number;
  /** Unix seconds when recording began, when the header says. */
  timestamp?: number;
}

/** `o` output, `r` resize (`COLSxROWS`), `i` input (not drawn), `m` marker (a gap, or who types
 *  from there). */
export interface CastEvent {
  time: number;
  code: string;
  data: string;
}

export interface Cast {
  header: CastHeader;
  /** In time order (a later event never sorts before an earlier one). */
  events: CastEvent[];
  /** The last event's time (0 when there is none). */
  duration: number;
}

/** What the player does to its terminal, in order: runs of output joined into one write. */
export type Step = { kind: 'write'; data: string } | { kind: 'resize'; cols: number; rows: number };

export class CastError extends Error {}

const MAX_DIMENSION = 1000;

/** Parse asciicast v2 text. A bad header is an error; a bad event line is skipped (the reader
 * verified the recording, so one would be a format change, not damage worth refusing over). */
export function parseCast(text: string): Cast {
  const lines = text.split('\n');
  let header: unknown;
  try {
    header = JSON.parse(lines[0] ?? '');
  } catch {
    throw new CastError('The recording does not start with an asciicast header.');
  }
  const h = header as Record<string, unknown>;
  if (typeof header !== 'object' || header === null || h.version !== 2) {
    throw new CastError('The recording is not asciicast version 2.');
  }
  const width = dimension(h.width);
  const height = dimension(h.height);
  if (width === null || height === null) throw new CastError('The recording has no terminal size.');
  const events: CastEvent[] = [];
  let last = 0;
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (!Array.isArray(value) || value.length < 3) continue;
    const [time, code, data] = value as unknown[];
    if (typeof time !== 'number' || !Number.isFinite(time) || typeof code !== 'string'
      || typeof data !== 'string') continue;
    last = Math.max(last, time);
    events.push({ time: last, code, data });
  }
  const timestamp = typeof h.timestamp === 'number' ? h.timestamp : undefined;
  return { header: { width, height, timestamp }, events, duration: last };
}

function dimension(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_DIMENSION
    ? value : null;
}

/** `COLSxROWS` as a resize, or null. */
export function parseSize(data: string): { cols: number; rows: number } | null {
  const match = /^(\d{1,4})x(\d{1,4})$/.exec(data);
  if (!match) return null;
  const cols = dimension(Number(match[1]));
  const rows = dimension(Number(match[2]));
  return cols === null || rows === null ? null : { cols, rows };
}

/** How many events happen at or before `time`: events[0..n) are on screen at `time`. */
export function eventsUntil(cast: Cast, time: number): number {
  let lo = 0;
  let hi = cast.events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cast.events[mid].time <= time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The steps that play events[from..to): output joined, resizes kept, input and markers left
 * out. From 0 on a reset terminal, this is a seek: the screen as it was at events[to - 1]. */
export function steps(cast: Cast, from: number, to: number): Step[] {
  const out: Step[] = [];
  let pending = '';
  for (let i = from; i < to && i < cast.events.length; i += 1) {
    const event = cast.events[i];
    if (event.code === 'o') {
      pending += event.data;
    } else if (event.code === 'r') {
      const size = parseSize(event.data);
      if (!size) continue;
      if (pending) out.push({ kind: 'write', data: pending });
      pending = '';
      out.push({ kind: 'resize', ...size });
    }
  }
  if (pending) out.push({ kind: 'write', data: pending });
  return out;
}

/** The markers (gaps, and who types from there in a shared terminal), for the timeline. */
export function markers(cast: Cast): CastEvent[] {
  return cast.events.filter((e) => e.code === 'm');
}

/** What a marker is, for its label: a gap (`gap: why`), a change of typist in a shared
 *  terminal (`input: who`, written by the relay when someone else starts typing), or another
 *  marker (asciinema's own, for instance), shown as it is. */
export type MarkerLabel =
  | { kind: 'gap'; text: string }
  | { kind: 'typist'; who: string }
  | { kind: 'other'; text: string };

export function markerLabel(marker: CastEvent): MarkerLabel {
  if (marker.data.startsWith('input: ')) return { kind: 'typist', who: marker.data.slice(7) };
  if (marker.data.startsWith('gap: ')) return { kind: 'gap', text: marker.data.slice(5) };
  return { kind: 'other', text: marker.data };
}

/** The searchable text of a recording's output. */
export interface TextIndex {
  /** Output without escape sequences or control characters (newlines kept), lower-cased. */
  text: string;
  /** For each output event, in order: where its text starts in `text`. */
  starts: number[];
  /** The time of each of those events. */
  times: number[];
}

/** Escape-sequence stripper states: text, after ESC, in a CSI, in a string (OSC, DCS, …),
 * in a string just after an ESC (maybe its terminator), after ESC and an intermediate byte. */
type Strip = 'text' | 'esc' | 'csi' | 'str' | 'strEsc' | 'escInter';

export function buildIndex(cast: Cast): TextIndex {
  const parts: string[] = [];
  const starts: number[] = [];
  const times: number[] = [];
  let length = 0;
  let state: Strip = 'text';
  for (const event of cast.events) {
    if (event.code !== 'o') continue;
    starts.push(length);
    times.push(event.time);
    let kept = '';
    for (const c of event.data) {
      const code = c.charCodeAt(0);
      switch (state) {
        case 'text':
          if (c === '\x1b') state = 'esc';
          else if (code === 0x9b) state = 'csi';
          else if (c === '\n' || c === '\t' || code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code < 0xa0)) {
            kept += c.length === 1 && c.toLowerCase().length === 1 ? c.toLowerCase() : c;
          }
          break;
        case 'esc':
          if (c === '[') state = 'csi';
          else if (c === ']' || c === 'P' || c === 'X' || c === '^' || c === '_') state = 'str';
          else if (code >= 0x20 && code <= 0x2f) state = 'escInter';
          else state = 'text';
          break;
        case 'escInter':
          if (!(code >= 0x20 && code <= 0x2f)) state = 'text';
          break;
        case 'csi':
          if (code >= 0x40 && code <= 0x7e) state = 'text';
          break;
        case 'str':
          if (c === '\x07') state = 'text';
          else if (c === '\x1b') state = 'strEsc';
          break;
        case 'strEsc':
          state = c === '\\' ? 'text' : 'str';
          break;
      }
    }
    parts.push(kept);
    length += kept.length;
  }
  return { text: parts.join(''), starts, times };
}

/** The first match of `word` (case-insensitive) that is whole on screen at or after `from`
 * seconds, skipping matches that start before text offset `after` (to find the next one from
 * where the last search landed). Its time is that of the event holding its last character. */
export function search(index: TextIndex, word: string, from: number, after = -1):
  { time: number; offset: number } | null {
  const needle = word.toLowerCase();
  if (needle === '') return null;
  let at = index.text.indexOf(needle, Math.max(0, after + 1));
  while (at >= 0) {
    const time = index.times[eventAt(index, at + needle.length - 1)];
    if (time >= from) return { time, offset: at };
    at = index.text.indexOf(needle, at + 1);
  }
  return null;
}

/** The output event whose text holds offset `at`: the last one starting at or before it
 * (events whose text was all escapes start where the next one does, and are passed over). */
function eventAt(index: TextIndex, at: number): number {
  let lo = 0;
  let hi = index.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (index.starts[mid] <= at) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo - 1);
}

/** `m:ss.t`, for the time display. */
export function formatTime(seconds: number): string {
  const tenths = Math.max(0, Math.floor(seconds * 10));
  const m = Math.floor(tenths / 600);
  const s = Math.floor((tenths % 600) / 10);
  return `${m}:${String(s).padStart(2, '0')}.${tenths % 10}`;
}

/** One window of a recording as the API answers `?from_chunk=N`: its text, and the chunk the
 * next window starts at (`null` on the window that ends the recording). */
export interface CastWindow {
  text: string;
  next: number | null;
}

/** Most windows one recording is fetched in (5 MiB each: 500 MiB, far past what a browser
 * tab should hold). */
export const MAX_WINDOWS = 100;

/** A whole recording from its windows (docs/recording.md, API): fetched in order from chunk 0
 * until a window without `next`. Windows hold whole chunks, and chunks whole events, so the
 * texts join as they are. A cursor that does not move forward, or too many windows, is an
 * error rather than a loop. */
export async function fetchWindows(fetchWindow: (from: number) => Promise<CastWindow>): Promise<string> {
  const parts: string[] = [];
  let from = 0;
  for (let n = 0; n < MAX_WINDOWS; n++) {
    const window = await fetchWindow(from);
    parts.push(window.text);
    if (window.next === null) return parts.join('');
    if (!Number.isSafeInteger(window.next) || window.next <= from) {
      throw new CastError(`the server's next window (${window.next}) does not follow chunk ${from}`);
    }
    from = window.next;
  }
  throw new CastError(`the recording is longer than ${MAX_WINDOWS} windows`);
}
