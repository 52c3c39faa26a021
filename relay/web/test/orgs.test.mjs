// What the Organizations tab offers each role (src/orgs.ts); the server enforces the same rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignableRoles } from '../src/orgs.ts';

test('owners assign any role; admins never ownership; others nothing', () => {
  assert.deepEqual(assignableRoles('owner', 'owner'), ['owner', 'admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', 'member'), ['admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', null), ['admin', 'member', 'auditor']);
  assert.deepEqual(assignableRoles('admin', 'owner'), []);
  assert.deepEqual(assignableRoles('member', 'auditor'), []);
  assert.deepEqual(assignableRoles('auditor', null), []);
});
