// The key bar for touch devices: the keys a phone's keyboard lacks (Esc, Tab, Ctrl, Alt,
// arrows, and | ~ / which hide on a second symbol page). Ctrl and Alt are sticky: tapped once
// they apply to the next key, from the bar or from the on-screen keyboard. `keyBytes` and
// `withModifiers` are pure (checked by test/keybar.test.mjs); `KeyBar` is the DOM.
//
// Why touchstart and not click: a tap must not move focus out of the terminal (that would close
// the on-screen keyboard), so the touch is consumed where it starts; mouse and keyboard users
// get the ordinary click.

export type BarKey = 'Esc' | 'Tab' | 'Ctrl' | 'Alt' | 'Left' | 'Up' | 'Down' | 'Right' | '|' | '~' | '/';

export const BAR_KEYS: { key: BarKey; label: string; name: string }[] = [
  { key: 'Esc', label: 'Esc', name: 'Escape' },
  { key: 'Tab', label: 'Tab', name: 'Tab' },
  { key: 'Ctrl', label: 'Ctrl', name: 'Control (applies to the next key)' },
  { key: 'Alt', label: 'Alt', name: 'Alt (applies to the next key)' },
  { key: 'Left', label: '←', name: 'Left arrow' },
  { key: 'Up', label: '↑', name: 'Up arrow' },
  { key: 'Down', label: '↓', name: 'Down arrow' },
  { key: 'Right', label: '→', name: 'Right arrow' },
  { key: '|', label: '|', name: 'Pipe' },
  { key: '~', label: '~', name: 'Tilde' },
  { key: '/', label: '/', name: 'Slash' },
];

const ARROWS: Record<string, string> = { Up: 'A', Down: 'B', Right: 'C', Left: 'D' };

/** The bytes a (non-modifier) bar key sends; arrows follow the terminal's cursor-key mode
 * (SS3 in application mode, which full-screen apps switch on, CSI otherwise). */
export function keyBytes(key: BarKey, applicationCursor: boolean): string {
  if (key === 'Esc') return '\x1b';
  if (key === 'Tab') return '\t';
  const arrow = ARROWS[key];
  if (arrow) return `${applicationCursor ? '\x1bO' : '\x1b['}${arrow}`;
  return key === 'Ctrl' || key === 'Alt' ? '' : key;
}

/** Apply sticky Ctrl/Alt to typed `data` (one key). Ctrl maps a letter or @[\]^_ to its control
 * byte, ? to DEL and space to NUL; Alt prefixes ESC (what xterm sends for Meta). */
export function withModifiers(data: string, ctrl: boolean, alt: boolean): string {
  let out = data;
  if (ctrl && data.length === 1) {
    const code = data.toUpperCase().charCodeAt(0);
    if (code >= 0x40 && code <= 0x5f) out = String.fromCharCode(code & 0x1f);
    else if (data === '?') out = '\x7f';
    else if (data === ' ') out = '\x00';
  }
  return alt ? `\x1b${out}` : out;
}

export class KeyBar {
  readonly element: HTMLElement;
  private ctrl = false;
  private alt = false;
  private buttons = new Map<BarKey, HTMLButtonElement>();

  constructor(
    private readonly send: (data: string) => void,
    private readonly applicationCursor: () => boolean,
  ) {
    this.element = document.createElement('div');
    this.element.className = 'keybar';
    this.element.setAttribute('role', 'toolbar');
    this.element.setAttribute('aria-label', 'Terminal keys');
    for (const { key, label, name } of BAR_KEYS) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = label;
      button.dataset.key = key;
      button.setAttribute('aria-label', name);
      if (key === 'Ctrl' || key === 'Alt') button.setAttribute('aria-pressed', 'false');
      button.addEventListener('touchstart', (event) => {
        event.preventDefault();
        this.press(key);
      }, { passive: false });
      button.addEventListener('mousedown', (event) => event.preventDefault());
      button.addEventListener('click', () => this.press(key));
      this.buttons.set(key, button);
      this.element.append(button);
    }
  }

  /** Typed input passes through here so a sticky modifier applies to it, then is released. */
  transform(data: string): string {
    if (!this.ctrl && !this.alt) return data;
    const out = withModifiers(data, this.ctrl, this.alt);
    this.setSticky(false, false);
    return out;
  }

  private press(key: BarKey): void {
    if (key === 'Ctrl') return this.setSticky(!this.ctrl, this.alt);
    if (key === 'Alt') return this.setSticky(this.ctrl, !this.alt);
    const bytes = keyBytes(key, this.applicationCursor());
    // Modifiers apply to the printable bar keys; Esc/Tab/arrows go as they are.
    this.send(bytes.length === 1 && bytes >= ' ' ? this.transform(bytes) : bytes);
  }

  private setSticky(ctrl: boolean, alt: boolean): void {
    this.ctrl = ctrl;
    this.alt = alt;
    this.buttons.get('Ctrl')?.setAttribute('aria-pressed', String(ctrl));
    this.buttons.get('Alt')?.setAttribute('aria-pressed', String(alt));
  }
}
