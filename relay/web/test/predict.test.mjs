// Predictive echo decisions (src/predict.ts) on a fake screen: shown only after an echo has
// confirmed a guess on the line, removed when the echo arrives or contradicts it, off in the
// alternate screen and after an unconfirmed guess (a password prompt) until the next Enter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Predictor } from '../src/predict.ts';

/** A one-line-at-a-time screen: `type` writes like a shell's echo would. */
function screen(cols = 20) {
  const cells = new Map();
  const s = {
    cursorX: 0, cursorY: 0, cols, alternate: false,
    cellAt: (x, y) => cells.get(`${x},${y}`) ?? '',
    echo(text) {
      for (const ch of text) {
        if (ch !== ' ') cells.set(`${s.cursorX},${s.cursorY}`, ch);
        s.cursorX += 1;
      }
    },
    newline() { s.cursorX = 0; s.cursorY += 1; },
  };
  return s;
}

const chars = (changes) => changes.map((p) => p.char).join('');

test('the first keystroke of a line is not shown; once its echo confirms, the next ones are', () => {
  const s = screen();
  const p = new Predictor(1000);
  assert.equal(chars(p.input('l', s, 0).show), '', 'untrusted: tracked, not drawn');
  s.echo('l');
  assert.deepEqual(p.output(s), { show: [], hide: [] });
  assert.equal(p.isTrusted, true);
  const shown = p.input('s', s, 10).show;
  assert.equal(chars(shown), 's');
  assert.deepEqual([shown[0].x, shown[0].y], [1, 0]);
  assert.equal(chars(p.input(' ', s, 20).show), ' ');
  // A partial echo confirms the first guess only.
  s.echo('s');
  const partial = p.output(s);
  assert.equal(chars(partial.hide), 's');
  assert.equal(p.predictions.length, 1);
  s.echo(' ');
  assert.equal(chars(p.output(s).hide), ' ', 'an echoed space (a blank cell passed) confirms');
  assert.equal(p.predictions.length, 0);
});

test('a different echo rolls every guess back and ends the trust', () => {
  const s = screen();
  const p = new Predictor(1000);
  p.input('a', s, 0);
  s.echo('a');
  p.output(s);
  p.input('b', s, 1);
  p.input('c', s, 2);
  s.echo('X');
  const changes = p.output(s);
  assert.equal(chars(changes.hide), 'bc');
  assert.equal(p.predictions.length, 0);
  assert.equal(p.isTrusted, false);
  assert.equal(chars(p.input('d', s, 3).show), '', 'untrusted again');
});

test('the cursor leaving the line (a redraw) rolls back', () => {
  const s = screen();
  const p = new Predictor(1000);
  p.input('a', s, 0);
  s.echo('a');
  p.output(s);
  p.input('b', s, 1);
  s.newline();
  assert.equal(chars(p.output(s).hide), 'b');
});

test('no echo within the timeout (a password prompt) turns predicting off until Enter', () => {
  const s = screen();
  const p = new Predictor(1000);
  p.input('a', s, 0);
  s.echo('a');
  p.output(s);
  p.input('s', s, 100);
  assert.deepEqual(p.tick(900), { show: [], hide: [] }, 'not yet');
  assert.equal(chars(p.tick(1100).hide), 's');
  assert.equal(p.isSuspended, true);
  assert.deepEqual(p.input('e', s, 1200), { show: [], hide: [] });
  assert.equal(p.predictions.length, 0, 'suspended: nothing tracked either');
  p.input('\r', s, 1300);
  assert.equal(p.isSuspended, false);
  s.newline();
  p.input('x', s, 1400);
  assert.equal(p.predictions.length, 1, 'predicting again on the next line');
});

test('control keys end the epoch; backspace keeps it; Enter never predicts', () => {
  const s = screen();
  const p = new Predictor(1000);
  p.input('a', s, 0);
  s.echo('a');
  p.output(s);
  assert.equal(chars(p.input('b', s, 1).show), 'b');
  assert.equal(chars(p.input('\x7f', s, 2).hide), 'b');
  assert.equal(p.isTrusted, true, 'backspace keeps the trust');
  assert.equal(chars(p.input('c', s, 3).show), 'c');
  assert.equal(chars(p.input('\x1b[D', s, 4).hide), 'c', 'an arrow drops the guesses');
  assert.equal(p.isTrusted, false);
  assert.deepEqual(p.input('\r', s, 5), { show: [], hide: [] });
  assert.equal(p.input('ab', s, 6).show.length, 0, 'a paste is not predicted');
});

test('not in the alternate screen, not mid-line, not into the last column, not when off', () => {
  const s = screen(5);
  const p = new Predictor(1000);
  s.alternate = true;
  p.input('a', s, 0);
  assert.equal(p.predictions.length, 0, 'alternate screen');
  s.alternate = false;
  s.echo('abc');
  s.cursorX = 1;
  p.input('x', s, 0);
  assert.equal(p.predictions.length, 0, 'text right of the cursor');
  s.cursorX = 4;
  p.input('x', s, 0);
  assert.equal(p.predictions.length, 0, 'last column');
  s.cursorX = 3;
  p.enabled = false;
  p.input('x', s, 0);
  assert.equal(p.predictions.length, 0, 'setting off');
  p.enabled = true;
  p.input('x', s, 0);
  assert.equal(p.predictions.length, 1);
});

test('guesses made before the trust are shown once an earlier one is confirmed', () => {
  const s = screen();
  const p = new Predictor(1000);
  p.input('a', s, 0);
  p.input('b', s, 1);
  s.echo('a');
  const changes = p.output(s);
  assert.equal(chars(changes.show), 'b');
});
