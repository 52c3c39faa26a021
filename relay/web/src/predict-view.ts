// Draws the predictor's guesses (predict.ts) over an xterm.js terminal as decorations: DOM
// overlays on cells, never writes into the terminal's buffer. Why overlays: the buffer then only
// ever holds what the shell sent, so a wrong guess needs no repair of the screen (and a saved or
// resumed screen never contains a guess); removing a guess is removing its element.

import type { IDecoration, IMarker, Terminal } from '@xterm/xterm';
import { Changes, Prediction, Predictor, ScreenView } from './predict';

const TICK_MS = 200;

export class PredictionView {
  readonly predictor = new Predictor();
  private drawn = new Map<Prediction, { marker: IMarker; decoration: IDecoration }>();
  private timer: number;

  constructor(private readonly term: Terminal) {
    this.timer = window.setInterval(() => this.apply(this.predictor.tick(performance.now())), TICK_MS);
  }

  set enabled(value: boolean) {
    this.predictor.enabled = value;
    if (!value) this.apply(this.predictor.clear());
  }

  /** The user typed `data`, about to be sent. */
  input(data: string): void {
    this.apply(this.predictor.input(data, this.screen(), performance.now()));
  }

  /** Shell output has been written to the terminal. */
  output(): void {
    if (this.drawn.size === 0 && this.predictor.predictions.length === 0) return;
    this.apply(this.predictor.output(this.screen()));
  }

  /** Forget every guess (the connection changed under them). */
  clear(): void {
    this.apply(this.predictor.clear());
  }

  dispose(): void {
    window.clearInterval(this.timer);
    this.clear();
  }

  private screen(): ScreenView {
    const buffer = this.term.buffer.active;
    return {
      cursorX: buffer.cursorX,
      cursorY: buffer.baseY + buffer.cursorY,
      cols: this.term.cols,
      alternate: buffer.type === 'alternate',
      cellAt: (x, y) => buffer.getLine(y)?.getCell(x)?.getChars() ?? '',
    };
  }

  private apply(changes: Changes): void {
    for (const p of changes.hide) {
      const drawn = this.drawn.get(p);
      drawn?.decoration.dispose();
      drawn?.marker.dispose();
      this.drawn.delete(p);
    }
    for (const p of changes.show) this.draw(p);
  }

  private draw(p: Prediction): void {
    const buffer = this.term.buffer.active;
    const marker = this.term.registerMarker(p.y - (buffer.baseY + buffer.cursorY));
    const decoration = this.term.registerDecoration({ marker, x: p.x, width: 1 });
    if (!decoration) {
      marker.dispose();
      return;
    }
    decoration.onRender((element) => {
      element.classList.add('predicted');
      element.textContent = p.char;
      element.style.fontFamily = this.term.options.fontFamily ?? 'monospace';
      element.style.fontSize = `${this.term.options.fontSize ?? 14}px`;
      element.style.lineHeight = element.style.height;
    });
    this.drawn.set(p, { marker, decoration });
  }
}
