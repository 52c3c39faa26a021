// Predictive local echo (the idea of mosh's): a printable keystroke is drawn at once, underlined,
// where the shell's echo will put it, and the drawing is removed when the real echo arrives.
// This module is the decision logic only, pure and DOM-free so `node --test` can check it
// (test/predict.test.mjs); `predict-view.ts` draws its predictions as xterm.js decorations.
//
// Why so conservative: a wrong prediction is worse than none. So a prediction is only *shown*
// once an earlier one in the same epoch (the run of plain typing since the last Enter, arrow or
// control key) has been confirmed by the shell's echo; it is only made at the end of the line
// (every cell from the cursor on blank, no wrap), never in the alternate screen (full-screen
// apps), and a prediction that is neither confirmed nor contradicted within `timeoutMs`
// (a password prompt: the shell does not echo) turns predicting off until the next Enter.

/** What the predictor needs to know of the screen (the active buffer, absolute line numbers). */
export interface ScreenView {
  cursorX: number;
  /** Absolute line of the cursor (scrollback included), so predictions survive scrolling. */
  cursorY: number;
  cols: number;
  /** True in the alternate screen buffer (vim, less, htop...). */
  alternate: boolean;
  /** The character in a cell, '' when the cell is blank. */
  cellAt(x: number, y: number): string;
}

export interface Prediction {
  readonly char: string;
  readonly x: number;
  readonly y: number;
  readonly at: number;
  /** Drawn on screen (a trusted epoch), or only tracked (tentative). */
  shown: boolean;
}

/** What the view must change: predictions to draw, and predictions to remove. */
export interface Changes {
  show: Prediction[];
  hide: Prediction[];
}

const none = (): Changes => ({ show: [], hide: [] });

/** One printable character of width 1 (ASCII and Latin-1 printables; wide or combining
 * characters are not predicted, their cell width is not knowable here). */
function printable(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  return ch.length === 1 && ((code >= 0x20 && code < 0x7f) || (code >= 0xa0 && code <= 0xff));
}

export class Predictor {
  /** The user's setting; when false nothing is predicted. */
  enabled = true;
  private pending: Prediction[] = [];
  /** An echo confirmed a prediction in this epoch: new predictions are shown. */
  private trusted = false;
  /** A prediction went unconfirmed (no echo): off until the next Enter. */
  private suspended = false;

  constructor(private readonly timeoutMs = 1000) {}

  /** Predictions being tracked (for tests and the view). */
  get predictions(): readonly Prediction[] {
    return this.pending;
  }

  get isTrusted(): boolean {
    return this.trusted;
  }

  get isSuspended(): boolean {
    return this.suspended;
  }

  /** The user typed `data` (what xterm's onData gave, before it is sent). */
  input(data: string, screen: ScreenView, now: number): Changes {
    if (!this.enabled || screen.alternate) return this.reset(false);
    if (data.length !== 1 || !printable(data)) return this.control(data);
    if (this.suspended) return none();
    const last = this.pending[this.pending.length - 1];
    const x = last ? last.x + 1 : screen.cursorX;
    const y = last ? last.y : screen.cursorY;
    // Only at the end of the line, and not into the last column (the shell may wrap there).
    if (y !== screen.cursorY || x >= screen.cols - 1 || !this.blankFrom(screen, x, y)) {
      return this.reset(false);
    }
    const prediction: Prediction = { char: data, x, y, at: now, shown: this.trusted };
    this.pending.push(prediction);
    return prediction.shown ? { show: [prediction], hide: [] } : none();
  }

  /** The terminal has written output from the shell: confirm or contradict predictions. */
  output(screen: ScreenView): Changes {
    const changes = none();
    if (screen.alternate) return this.reset(false);
    while (this.pending.length > 0) {
      const p = this.pending[0];
      const cell = screen.cellAt(p.x, p.y);
      // A blank cell reads as '', so an echoed space is a blank cell the cursor has passed.
      const want = p.char === ' ' ? '' : p.char;
      const passed = screen.cursorY > p.y || (screen.cursorY === p.y && screen.cursorX > p.x);
      if (cell === want && passed) {
        this.pending.shift();
        this.trusted = true;
        if (p.shown) changes.hide.push(p);
        continue;
      }
      if (cell !== '' || screen.cursorY !== p.y || screen.cursorX > p.x) {
        // Something else is where the echo should be, or the cursor went elsewhere: roll back.
        const rolled = this.reset(false);
        changes.hide.push(...rolled.hide);
      }
      break;
    }
    // Predictions made while untrusted become visible once the epoch is trusted.
    if (this.trusted) {
      for (const p of this.pending) {
        if (!p.shown) {
          p.shown = true;
          changes.show.push(p);
        }
      }
    }
    return changes;
  }

  /** Called on a timer: a prediction older than the timeout means the shell is not echoing. */
  tick(now: number): Changes {
    const first = this.pending[0];
    if (!first || now - first.at < this.timeoutMs) return none();
    const changes = this.reset(false);
    this.suspended = true;
    return changes;
  }

  /** A non-printable keystroke: Enter starts a new line (and lifts a suspension); any control
   * key ends the epoch. Backspace only drops the drawings (the echo will show the truth). */
  private control(data: string): Changes {
    if (data === '\x7f' || data === '\b') return this.reset(this.trusted);
    const changes = this.reset(false);
    if (data.includes('\r') || data.includes('\n') || data === '\x03') this.suspended = false;
    return changes;
  }

  /** Forget every prediction (all shown ones are to be removed). */
  private reset(keepTrust: boolean): Changes {
    const hide = this.pending.filter((p) => p.shown);
    this.pending = [];
    this.trusted = keepTrust;
    return { show: [], hide };
  }

  /** Drop everything, e.g. when the setting is turned off or the socket is replaced. */
  clear(): Changes {
    this.suspended = false;
    return this.reset(false);
  }

  private blankFrom(screen: ScreenView, x: number, y: number): boolean {
    for (let col = x; col < screen.cols; col += 1) {
      if (screen.cellAt(col, y) !== '') return false;
    }
    return true;
  }
}
