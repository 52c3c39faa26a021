// The key bar's bytes (src/keybar.ts): Esc, Tab, arrows in both cursor-key modes, and the
// sticky Ctrl/Alt applied to the next key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyBytes, withModifiers } from '../src/keybar.ts';

test('bar keys send what a keyboard would', () => {
  assert.equal(keyBytes('Esc', false), '\x1b');
  assert.equal(keyBytes('Tab', false), '\t');
  assert.equal(keyBytes('Up', false), '\x1b[A');
  assert.equal(keyBytes('Left', true), '\x1bOD', 'application cursor mode');
  assert.equal(keyBytes('|', false), '|');
  assert.equal(keyBytes('~', false), '~');
  assert.equal(keyBytes('/', false), '/');
});

test('Ctrl and Alt modify the next key', () => {
  assert.equal(withModifiers('c', true, false), '\x03');
  assert.equal(withModifiers('C', true, false), '\x03');
  assert.equal(withModifiers('[', true, false), '\x1b');
  assert.equal(withModifiers('?', true, false), '\x7f');
  assert.equal(withModifiers(' ', true, false), '\x00');
  assert.equal(withModifiers('1', true, false), '1', 'no control byte for a digit');
  assert.equal(withModifiers('b', false, true), '\x1bb');
  assert.equal(withModifiers('x', true, true), '\x1b\x18');
  assert.equal(withModifiers('ab', true, false), 'ab', 'a paste is left alone');
});
