// The recording player (docs/recording.md, Player): a fetched asciicast drawn on the same
// xterm.js renderer as live terminals, with play/pause, speed, a seek slider with the markers
// (gaps, who types from there) on it, the time, and search. The recording's logic (parse, seek
// steps, search) lives in cast.ts; this is only the DOM and the clock around it.
//
// A seek resets the terminal and writes everything up to the new time in one go (output runs
// joined into a single write; resets and resizes go through xterm's write queue, so they
// happen in order with the output): a terminal cannot be run backwards, and xterm parses megabytes
// of output in well under a second.

import { Terminal } from '@xterm/xterm';
import {
  buildIndex, type Cast, eventsUntil, formatTime, markerLabel, markers, search, steps, type TextIndex,
} from './cast';
import { el } from './dom';

const SPEEDS = ['0.5', '1', '2', '4'];

export class Player {
  readonly element: HTMLElement;
  private term: Terminal;
  private index: TextIndex;
  /** Seconds into the recording; events[0..applied) are on screen. */
  private position = 0;
  private applied = 0;
  private playing = false;
  private speed = 1;
  private frame = 0;
  private lastTick = 0;
  private pendingSeek: number | null = null;
  private lastFound: { word: string; offset: number; time: number } | null = null;
  private playButton: HTMLButtonElement;
  private slider: HTMLInputElement;
  private time: HTMLOutputElement;
  private found: HTMLElement;

  constructor(private cast: Cast, title: string) {
    this.index = buildIndex(cast);
    this.element = el('section', { class: 'player card', 'aria-label': `Recording ${title}` });
    const controls = el('div', { class: 'player-controls' });
    this.playButton = el('button', { type: 'button' }, 'Play');
    this.playButton.addEventListener('click', () => (this.playing ? this.pause() : this.play()));
    const speed = el('select', { 'aria-label': 'Speed' });
    for (const s of SPEEDS) speed.append(el('option', { value: s }, `${s}×`));
    speed.value = '1';
    speed.addEventListener('change', () => {
      this.speed = Number(speed.value);
    });
    const timeline = `timeline-${Math.random().toString(36).slice(2)}`;
    this.slider = el('input', { type: 'range', min: '0', max: String(cast.duration), step: 'any',
      value: '0', 'aria-label': 'Position', list: timeline });
    this.slider.addEventListener('input', () => this.requestSeek(Number(this.slider.value)));
    // Markers (gaps, who types from there) as ticks on the slider (a datalist) and as a list
    // that seeks to them.
    const ticks = el('datalist', { id: timeline });
    const gaps = el('ul', { class: 'player-gaps', 'aria-label': 'Markers in the recording' });
    for (const marker of markers(cast)) {
      const label = markerLabel(marker);
      const at = formatTime(marker.time);
      ticks.append(el('option', { value: String(marker.time), label: label.kind === 'typist'
        ? label.who : label.kind }));
      const item = el('li', { 'data-marker': label.kind });
      const go = el('button', { type: 'button', class: 'small secondary', title: marker.data },
        label.kind === 'gap' ? `gap at ${at}` : label.kind === 'typist' ? `typing at ${at}` : at);
      go.addEventListener('click', () => this.seek(marker.time));
      item.append(go, ` ${label.kind === 'typist' ? `${label.who} types` : label.text}`);
      gaps.append(item);
    }
    this.time = el('output', { class: 'player-time', 'aria-label': 'Time', 'data-time': '0' });
    const form = el('form', { class: 'player-search', role: 'search' });
    const word = el('input', { type: 'search', 'aria-label': 'Search the recording',
      placeholder: 'find text' });
    this.found = el('span', { class: 'player-found', role: 'status', 'aria-live': 'polite' });
    form.append(word, el('button', { type: 'submit', class: 'secondary' }, 'Find'), this.found);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.find(word.value);
    });
    controls.append(this.playButton, speed, this.slider, ticks, this.time);
    const host = el('div', { class: 'term-host player-host' });
    this.element.append(controls, form, gaps, host);
    gaps.hidden = gaps.childElementCount === 0;
    this.term = new Terminal({
      cursorBlink: false,
      disableStdin: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 14,
      scrollback: 5000,
      cols: cast.header.width,
      rows: cast.header.height,
    });
    this.term.open(host);
    this.seek(0);
  }

  play(): void {
    if (this.playing) return;
    if (this.position >= this.cast.duration) this.seek(0);
    this.playing = true;
    this.playButton.textContent = 'Pause';
    this.lastTick = performance.now();
    this.frame = requestAnimationFrame(this.tick);
  }

  pause(): void {
    if (this.pendingSeek !== null) {
      this.seek(this.pendingSeek);
      this.pendingSeek = null;
    }
    this.playing = false;
    this.playButton.textContent = 'Play';
    cancelAnimationFrame(this.frame);
  }

  /** Reset the terminal and draw everything up to `time`. */
  seek(time: number): void {
    this.position = Math.min(Math.max(0, time), this.cast.duration);
    // Through the write queue, not term.reset(): output written before and not parsed yet
    // must not land on the fresh screen. ESC c is a full reset.
    this.term.write('\x1bc');
    this.resize(this.cast.header.width, this.cast.header.height);
    this.applied = 0;
    this.advanceTo(this.position);
  }

  /** The first match of `word` at or after the current position (the next one when the last
   * search for it landed here): seek there and pause. */
  find(word: string): void {
    const trimmed = word.trim();
    if (trimmed === '') return;
    const again = this.lastFound && this.lastFound.word === trimmed
      && this.lastFound.time === this.position ? this.lastFound.offset : -1;
    const hit = search(this.index, trimmed, this.position, again);
    if (!hit) {
      this.found.textContent = `"${trimmed}" not found after ${formatTime(this.position)}`;
      return;
    }
    this.pause();
    this.seek(hit.time);
    this.lastFound = { word: trimmed, offset: hit.offset, time: this.position };
    this.found.textContent = `found at ${formatTime(hit.time)}`;
  }

  dispose(): void {
    this.pause();
    this.term.dispose();
    this.element.remove();
  }

  private tick = (now: number): void => {
    if (!this.playing) return;
    if (this.pendingSeek !== null) {
      this.seek(this.pendingSeek);
      this.pendingSeek = null;
    } else {
      this.advanceTo(this.position + ((now - this.lastTick) / 1000) * this.speed);
    }
    this.lastTick = now;
    if (this.position >= this.cast.duration) {
      this.pause();
      return;
    }
    this.frame = requestAnimationFrame(this.tick);
  };

  /** A slider drag fires many inputs: seek at most once a frame. */
  private requestSeek(time: number): void {
    if (this.playing) {
      this.pendingSeek = time;
      return;
    }
    const first = this.pendingSeek === null;
    this.pendingSeek = time;
    if (!first) return;
    requestAnimationFrame(() => {
      if (this.pendingSeek === null) return;
      this.seek(this.pendingSeek);
      this.pendingSeek = null;
    });
  }

  /** A resize in order with the writes around it (term.resize alone would happen at once). */
  private resize(cols: number, rows: number): void {
    this.term.write('', () => this.term.resize(cols, rows));
  }

  private advanceTo(time: number): void {
    this.position = Math.min(time, this.cast.duration);
    const until = eventsUntil(this.cast, this.position);
    for (const step of steps(this.cast, this.applied, until)) {
      if (step.kind === 'write') this.term.write(step.data);
      else this.resize(step.cols, step.rows);
    }
    this.applied = until;
    this.slider.value = String(this.position);
    this.time.textContent = `${formatTime(this.position)} / ${formatTime(this.cast.duration)}`;
    this.time.dataset.time = String(this.position);
  }
}
