// The file panel's pure helpers (src/files.ts): remote paths, sizes, and the route URLs whose
// query carries any name safely.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filesUrl, humanSize, joinPath, parentPath } from '../src/files.ts';

test('paths join and climb as POSIX paths', () => {
  assert.equal(joinPath('/home/u', 'a.txt'), '/home/u/a.txt');
  assert.equal(joinPath('/', 'etc'), '/etc');
  assert.equal(parentPath('/home/u/dir'), '/home/u');
  assert.equal(parentPath('/home/u/dir/'), '/home/u');
  assert.equal(parentPath('/home'), '/');
  assert.equal(parentPath('/'), '/');
});

test('sizes read as people write them', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1536), '1.5 KiB');
  assert.equal(humanSize(100 * 1024 * 1024), '100 MiB');
});

test('a name with &, #, spaces or ? stays inside its query parameter', () => {
  const url = filesUrl('00000000-0000-4000-8000-000000000000', 'download',
    { path: '/home/u/a & b #1?.txt' });
  const parsed = new URL(url, 'https://x.test');
  assert.equal(parsed.pathname, '/files/00000000-0000-4000-8000-000000000000/download');
  assert.equal(parsed.searchParams.get('path'), '/home/u/a & b #1?.txt');
  assert.equal(filesUrl('s', '', { path: 'p' }), '/files/s?path=p');
});
