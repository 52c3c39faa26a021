// The player's pure logic (src/cast.ts): asciicast v2 parsing, the steps a seek replays, and
// search over output split across events and wrapped in escape sequences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildIndex, CastError, eventsUntil, fetchWindows, formatTime, markerLabel, markers, parseCast,
  search, steps,
} from '../src/cast.ts';

const cast = (events, header = { version: 2, width: 80, height: 24, timestamp: 1764650000 }) =>
  [JSON.stringify(header), ...events.map((e) => JSON.stringify(e))].join('\n') + '\n';

const sample = parseCast(cast([
  [0.4, 'o', 'Welcome\r\n$ '],
  [1.7, 'r', '120x40'],
  [2.1, 'i', 'ls\r'],
  [2.11, 'o', 'ls\r\nREADME.md\r\n$ '],
  [3.0, 'o', '\x1b[1;31mnee'],
  [3.5, 'o', 'dle\x1b[0m\r\n'],
  [9.3, 'm', 'gap: 12 events (524288 bytes) not recorded'],
  [10.0, 'o', 'needle again\x1b]0;title with needle\x07\r\n'],
]));

test('parse: header, events in order, duration; bad lines skipped, bad headers refused', () => {
  assert.deepEqual(sample.header, { width: 80, height: 24, timestamp: 1764650000 });
  assert.equal(sample.events.length, 8);
  assert.equal(sample.duration, 10);
  const odd = parseCast(cast([[1, 'o', 'a'], 'not an event', [0.5, 'o', 'b'], [2, 'o']]) + '{broken');
  assert.deepEqual(odd.events.map((e) => [e.time, e.data]), [[1, 'a'], [1, 'b']],
    'a time going backwards is held at the last one, so the events stay sorted');
  assert.throws(() => parseCast(''), CastError);
  assert.throws(() => parseCast(cast([], { version: 1, width: 80, height: 24 })), CastError);
  assert.throws(() => parseCast(cast([], { version: 2, width: 0, height: 24 })), CastError);
});

test('a seek replays output and resizes up to the time, without input or markers', () => {
  assert.equal(eventsUntil(sample, 0), 0);
  assert.equal(eventsUntil(sample, 2.11), 4, 'an event at the time itself is on screen');
  assert.equal(eventsUntil(sample, 99), 8);
  assert.deepEqual(steps(sample, 0, eventsUntil(sample, 3)), [
    { kind: 'write', data: 'Welcome\r\n$ ' },
    { kind: 'resize', cols: 120, rows: 40 },
    { kind: 'write', data: 'ls\r\nREADME.md\r\n$ \x1b[1;31mnee' },
  ]);
  assert.deepEqual(steps(sample, 5, 8), [{ kind: 'write', data: 'dle\x1b[0m\r\nneedle again\x1b]0;title with needle\x07\r\n' }]);
  assert.deepEqual(markers(sample).map((m) => m.time), [9.3]);
});

test('search: escapes stripped, a word split across events found at its last piece', () => {
  const index = buildIndex(sample);
  assert.ok(!index.text.includes('title'), 'an OSC title is not screen text');
  assert.deepEqual(search(index, 'needle', 0), { time: 3.5, offset: index.text.indexOf('needle') });
  assert.equal(search(index, 'NEEDLE', 0)?.time, 3.5, 'case-insensitive');
  assert.equal(search(index, 'needle', 3.6)?.time, 10, 'at or after the position');
  const first = search(index, 'needle', 0);
  assert.equal(search(index, 'needle', 3.5, first.offset)?.time, 10, 'the next one after the last found');
  assert.equal(search(index, 'needle', 10.5), null);
  assert.equal(search(index, 'readme', 0)?.time, 2.11);
  assert.equal(search(index, 'me.md\n$', 0)?.time, 2.11, 'carriage returns dropped, newlines kept');
  assert.equal(search(index, '', 0), null);
});

test('an escape sequence split across events is still stripped', () => {
  const split = parseCast(cast([[1, 'o', 'a\x1b['], [2, 'o', '31mb\x1b]0;x'], [3, 'o', 'y\x1b\\c']]));
  assert.equal(buildIndex(split).text, 'abc');
  assert.equal(search(buildIndex(split), 'bc', 0)?.time, 3);
});

test('time display', () => {
  assert.deepEqual([0, 3.56, 61.04, 600].map(formatTime), ['0:00.0', '0:03.5', '1:01.0', '10:00.0']);
});

test('markers are labelled: a gap, who types from there, or anything else as it is', () => {
  const shared = parseCast(cast([
    [1, 'o', '$ '],
    [2, 'm', 'input: bob@example.com'],
    [2, 'i', 'uptime\r'],
    [5, 'm', 'gap: 3 events (12 bytes) not recorded'],
    [7, 'm', 'input: alice@example.com'],
    [8, 'm', 'chapter 2'],
  ]));
  assert.deepEqual(markers(shared).map(markerLabel), [
    { kind: 'typist', who: 'bob@example.com' },
    { kind: 'gap', text: '3 events (12 bytes) not recorded' },
    { kind: 'typist', who: 'alice@example.com' },
    { kind: 'other', text: 'chapter 2' },
  ]);
});

test('a recording fetched in windows is their texts joined, in order', async () => {
  const text = cast([[0.1, 'o', 'a'], [0.2, 'o', 'b'], [0.3, 'o', 'c']]);
  const lines = text.split(/(?<=\n)/);
  // Windows of whole lines, starting at chunks 0, 2 and 3.
  const windows = new Map([[0, { text: lines[0] + lines[1], next: 2 }],
    [2, { text: lines[2], next: 3 }], [3, { text: lines[3], next: null }]]);
  const asked = [];
  const whole = await fetchWindows(async (from) => { asked.push(from); return windows.get(from); });
  assert.equal(whole, text);
  assert.deepEqual(asked, [0, 2, 3]);
  assert.equal(parseCast(whole).events.length, 3);
});

test('a window cursor that does not move forward is refused, not followed forever', async () => {
  await assert.rejects(fetchWindows(async () => ({ text: '', next: 0 })), CastError);
  let n = 0;
  await assert.rejects(fetchWindows(async () => ({ text: '', next: ++n })), /longer than/);
});
