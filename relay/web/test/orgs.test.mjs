// What the Organizations tab offers each role (src/orgs.ts); the server enforces the same rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignableRoles, auditRow, grantable, readsAuditLog } from '../src/orgs.ts';

test('owners assign any role; admins never ownership; others nothing', () => {
  assert.deepEqual(assignableRoles('owner', 'owner'), ['owner', 'admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', 'member'), ['admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', null), ['admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', 'owner'), []);
  assert.deepEqual(assignableRoles('member', 'auditor'), []);
  assert.deepEqual(assignableRoles('auditor', null), []);
});

test('the key is offered to members and admins without a copy, never to auditors', () => {
  const org = { slug: 'p', name: 'P', role: 'owner', created_at: 0, invitations: [],
    members: [{ member: 'a@x', role: 'owner', since: 0 }, { member: 'b@x', role: 'member', since: 0 },
      { member: 'c@x', role: 'auditor', since: 0 }, { member: 'd@x', role: 'admin', since: 0 }] };
  const key = { generation: 1, holders: ['a@x'], rotation_pending: false };
  assert.deepEqual(grantable(org, key), ['b@x', 'd@x']);
  assert.deepEqual(grantable(org, { ...key, generation: null, holders: [] }), []);
  assert.deepEqual(grantable(org, null), []);
});

test('owners, admins and auditors read the audit log; members do not', () => {
  assert.deepEqual(['owner', 'admin', 'member', 'auditor'].map(readsAuditLog),
    [true, true, false, true]);
});

test('an audit entry shows who acted, what and from where', () => {
  const entry = { seq: 3, at: 1700000000000, kind: 'session_started', actor: 'b@x',
    details: { machine_id: 7 }, ip: '10.0.0.1', user_agent: null, request_id: null,
    prev_hash: '', hash: '' };
  assert.deepEqual(auditRow(entry),
    ['2023-11-14 22:13:20', 'b@x', 'session_started', '{"machine_id":7}', '10.0.0.1']);
  assert.deepEqual(auditRow({ ...entry, actor: undefined, ip: null }).slice(1),
    ['', 'session_started', '{"machine_id":7}', '']);
});
