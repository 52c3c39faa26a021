// The machine list's filter (src/filter.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { machineMatches } from '../src/filter.ts';

const web = {
  id: 1, name: 'web-prod', username: 'deploy', hostname: 'web1.example.com', port: '2222',
  organization: 'Platform', host_key_fingerprint: null, persistent_shell: false,
  recording: true, record_input: false,
};

test('every word must match somewhere, in any case', () => {
  assert.ok(machineMatches(web, ''));
  assert.ok(machineMatches(web, '  '));
  assert.ok(machineMatches(web, 'PROD'));
  assert.ok(machineMatches(web, 'platform deploy'));
  assert.ok(machineMatches(web, 'deploy@web1'));
  assert.ok(machineMatches(web, ':2222'));
  assert.ok(!machineMatches(web, 'prod staging'));
  assert.ok(!machineMatches({ ...web, organization: null }, 'platform'));
});
