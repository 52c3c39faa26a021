// The resume protocol's client pieces (src/resume.ts): which keystrokes can be resent from the
// relay's input_offset, when an ack is due, the reconnect backoff, and what sessionStorage
// gives back after a reload (validated, bounded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckState, backoffMs, InputLog, loadSaved, STORAGE_KEY, storeSaved } from '../src/resume.ts';

const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => (b === null ? null : new TextDecoder().decode(b));

test('InputLog resends from any kept offset and refuses offsets it no longer holds', () => {
  const log = new InputLog(8, 100);
  log.push(bytes('abc'));
  log.push(bytes('def'));
  assert.equal(log.total, 106);
  assert.equal(text(log.since(100)), 'abcdef');
  assert.equal(text(log.since(104)), 'ef');
  assert.equal(text(log.since(106)), '');
  log.push(bytes('ghijk'));
  assert.equal(log.total, 111);
  assert.equal(text(log.since(103)), 'defghijk', 'the newest 8 bytes are kept');
  assert.equal(log.since(102), null, 'older bytes are gone');
  assert.equal(text(log.since(111)), '');
});

test('AckState: due at the threshold, otherwise taken by the 1 s timer; restart on resume', () => {
  const ack = new AckState(10, 100);
  assert.equal(ack.take(), null, 'nothing new');
  assert.equal(ack.add(60), false);
  assert.equal(ack.add(40), true, '100 unacked: at once');
  assert.equal(ack.take(), 110);
  assert.equal(ack.unacked, 0);
  ack.add(5);
  assert.equal(ack.take(), 115);
  ack.restart(200);
  assert.equal(ack.received, 200);
  assert.equal(ack.take(), null);
});

test('backoff: 0.5 s doubling to 8 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(backoffMs), [500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

function memoryStorage(quota = Infinity) {
  const items = new Map();
  return {
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => {
      if (v.length > quota) throw new Error('QuotaExceededError');
      items.set(k, v);
    },
    removeItem: (k) => items.delete(k),
    items,
  };
}

const entry = {
  id: '0f8fad5b-d9cb-469f-a165-70867728950e', secret: 'x'.repeat(43), machineId: 3,
  offset: 1234, input: 56, persistent: null, screen: 'hello',
};

test('saved terminals round-trip; garbage and bad entries are dropped', () => {
  const storage = memoryStorage();
  storeSaved(storage, [entry]);
  assert.deepEqual(loadSaved(storage), [entry]);
  storage.setItem(STORAGE_KEY, JSON.stringify([entry, { ...entry, id: 'no' },
    { ...entry, offset: -0.5 }, null, 'x']));
  assert.deepEqual(loadSaved(storage), [entry]);
  storage.setItem(STORAGE_KEY, '{not json');
  assert.deepEqual(loadSaved(storage), []);
  storeSaved(storage, []);
  assert.equal(storage.items.has(STORAGE_KEY), false, 'no tabs: nothing stored');
});

test('a full storage keeps the sessions without their screens', () => {
  const storage = memoryStorage(400);
  storeSaved(storage, [{ ...entry, screen: 'y'.repeat(1000) }]);
  assert.deepEqual(loadSaved(storage), [{ ...entry, screen: '' }]);
});
