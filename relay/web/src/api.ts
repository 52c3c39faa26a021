// The API client: every call goes to the page's own origin with the HttpOnly `jwt` cookie,
// and every answer is the envelope {status, message, data}, plus `code` on errors. The page
// shows the message as is and decides what to do by `code`, never by the message text.

import type { ErrorCode } from './protocol';
import { fetchWindows, type CastWindow } from './cast';

export interface Envelope<T> {
  status: string;
  message: string;
  data: T;
  code?: ErrorCode;
}

export class ApiError extends Error {
  constructor(public status: number, message: string, public code?: ErrorCode) {
    super(message);
  }
}

export interface Machine {
  id: number;
  name: string;
  username: string;
  hostname: string;
  port: string;
  /** The owning user's identity, or the owning organization's slug. */
  owner_id: string;
  owner_type: 'user' | 'organization';
  organization: string | null;
  host_key_fingerprint: string | null;
  persistent_shell: boolean;
  recording: boolean;
  record_input: boolean;
}

export type OrgRole = 'owner' | 'admin' | 'member' | 'auditor';

/** One of the caller's organizations. */
export interface OrgSummary {
  slug: string;
  name: string;
  role: OrgRole;
  since: number;
}

export interface OrgInvitation {
  slug: string;
  org_name: string;
  email: string;
  role: OrgRole;
  invited_by: string;
  expires_at: number;
}

/** An organization as a member sees it (`invitations` only for owners and admins). */
export interface OrgDetails {
  slug: string;
  name: string;
  role: OrgRole;
  created_at: number;
  members: { member: string; role: OrgRole; since: number }[];
  invitations: OrgInvitation[] | null;
}

/** Who holds an organization's key (owners and admins see it). */
/** One audit log entry (`GET /api/v1/orgs/{slug}/audit`; `actor` on an organization's log). */
export interface AuditEntry {
  seq: number;
  at: number;
  kind: string;
  actor?: string;
  details: Record<string, unknown>;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  next_cursor: number | null;
}

export interface AuditVerification {
  ok: boolean;
  entries: number;
  broken_seq?: number;
  reason?: string;
}

export interface OrgKeyStatus {
  generation: number | null;
  holders: string[];
  rotation_pending: boolean;
}

/** What a rotation of an organization's key did (`generation` null: nothing rotated). */
export interface OrgKeyRotation {
  generation: number | null;
  resealed: number;
  copies: number;
  unopenable: number[];
}

/** One row of `GET /api/v1/recordings` (times in Unix ms). */
export interface Recording {
  id: string;
  machine_id: number;
  machine_name: string;
  started_at: number;
  ended_at: number | null;
  duration_secs: number | null;
  bytes: number;
  exit_status: number | null;
  gaps: number;
  record_input: boolean;
  /** Who opened the session (for an organization's recording, the member); `null` when
   * damaged or made before this was kept. */
  user: string | null;
  /** Why the recording's metadata did not verify (the other fields are then zero); `null`
   * for a sound one. */
  damaged: string | null;
}

export interface Providers {
  providers: { id: string; name: string }[];
  dev: boolean;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: {} };
  // Every write says it is JSON, body or not: the server refuses a cookie-authenticated write
  // of any other type (what a cross-site form would send).
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers = { 'Content-Type': 'application/json' };
  }
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'The server could not be reached; check your connection.');
  }
  let envelope: Envelope<T> | null = null;
  try {
    envelope = (await response.json()) as Envelope<T>;
  } catch {
    envelope = null;
  }
  if (!response.ok) {
    const message = envelope?.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, envelope?.code);
  }
  if (!envelope) throw new ApiError(response.status, 'The server sent an unreadable answer.');
  return envelope.data;
}

/** One window of a recording (`?from_chunk=`): asciicast text, not an envelope on success,
 * one on failure; the next window's start in `X-Recording-Next-Chunk`. */
async function fetchRecordingWindow(id: string, from: number): Promise<CastWindow> {
  let response: Response;
  try {
    response = await fetch(
      `/api/v1/recording/${encodeURIComponent(id)}?from_chunk=${from}`,
      { credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'The server could not be reached; check your connection.');
  }
  if (response.ok) {
    const next = response.headers.get('X-Recording-Next-Chunk');
    return { text: await response.text(), next: next === null ? null : Number(next) };
  }
  let envelope: Envelope<unknown> | null = null;
  try {
    envelope = (await response.json()) as Envelope<unknown>;
  } catch {
    envelope = null;
  }
  throw new ApiError(response.status,
    envelope?.message || `${response.status} ${response.statusText}`, envelope?.code);
}

/** A whole recording's asciicast text, fetched window by window (each at most 5 MiB); only a
 * recording whose every window verified is returned. */
function fetchRecording(id: string): Promise<string> {
  return fetchWindows((from) => fetchRecordingWindow(id, from));
}

export const api = {
  providers: () => call<Providers>('GET', '/api/v1/auth/providers'),
  me: () => call<{ email: string }>('GET', '/api/v1/auth/me'),
  devSignIn: (email: string) => call<{ email: string }>('POST', '/api/v1/auth/dev', { email }),
  signInUrl: (to: string) =>
    call<{ url: string }>('GET', `/api/v1/auth/url?to=${encodeURIComponent(to)}&return_to=%2F`),
  logout: () => call<null>('POST', '/api/v1/auth/logout'),
  machines: () => call<Machine[]>('GET', '/api/v1/machines'),
  addMachine: (m: Record<string, string | boolean>) => call<Machine>('POST', '/api/v1/machine', m),
  /** Change only the fields in `changes` (see the edit dialog). */
  updateMachine: (id: number, changes: Record<string, string | boolean | null>) =>
    call<Machine>('PATCH', `/api/v1/machine/${id}`, changes),
  deleteMachine: (id: number) => call<null>('DELETE', `/api/v1/machine/${id}`),
  setMasterPassword: (password: string, current?: string) =>
    call<unknown>('PUT', '/api/v1/master-password',
      current ? { password, current_password: current } : { password }),
  orgs: () => call<OrgSummary[]>('GET', '/api/v1/orgs'),
  createOrg: (slug: string, name: string) =>
    call<OrgSummary>('POST', '/api/v1/orgs', { slug, name }),
  org: (slug: string) => call<OrgDetails>('GET', `/api/v1/orgs/${encodeURIComponent(slug)}`),
  invite: (slug: string, email: string, role: OrgRole) =>
    call<OrgInvitation>('POST', `/api/v1/orgs/${encodeURIComponent(slug)}/invitations`,
      { email, role }),
  withdrawInvitation: (slug: string, email: string) =>
    call<null>('DELETE',
      `/api/v1/orgs/${encodeURIComponent(slug)}/invitations/${encodeURIComponent(email)}`),
  setRole: (slug: string, member: string, role: OrgRole) =>
    call<null>('PUT',
      `/api/v1/orgs/${encodeURIComponent(slug)}/members/${encodeURIComponent(member)}`, { role }),
  /** Remove (or leave); removing a holder of the organization's key takes the caller's
   * master password and rotates the key. */
  removeMember: (slug: string, member: string, password?: string) =>
    call<OrgKeyRotation>('DELETE',
      `/api/v1/orgs/${encodeURIComponent(slug)}/members/${encodeURIComponent(member)}`,
      password ? { password } : undefined),
  orgKey: (slug: string) =>
    call<OrgKeyStatus>('GET', `/api/v1/orgs/${encodeURIComponent(slug)}/key`),
  grantOrgKey: (slug: string, member: string, password: string) =>
    call<OrgKeyStatus>('POST',
      `/api/v1/orgs/${encodeURIComponent(slug)}/members/${encodeURIComponent(member)}/key`,
      { password }),
  rotateOrgKey: (slug: string, password: string) =>
    call<OrgKeyRotation>('POST', `/api/v1/orgs/${encodeURIComponent(slug)}/key/rotate`,
      { password }),
  /** A page of the organization's audit log, newest first (owners, admins, auditors). */
  orgAudit: (slug: string, cursor?: number) =>
    call<AuditPage>('GET', `/api/v1/orgs/${encodeURIComponent(slug)}/audit`
      + (cursor === undefined ? '' : `?cursor=${cursor}`)),
  verifyOrgAudit: (slug: string) =>
    call<AuditVerification>('GET', `/api/v1/orgs/${encodeURIComponent(slug)}/audit/verify`),
  myInvitations: () => call<OrgInvitation[]>('GET', '/api/v1/invitations'),
  acceptInvitation: (slug: string) =>
    call<OrgSummary>('POST', `/api/v1/invitations/${encodeURIComponent(slug)}/accept`),
  recordings: () => call<Recording[]>('GET', '/api/v1/recordings'),
  recording: fetchRecording,
  deleteRecording: (id: string) =>
    call<null>('DELETE', `/api/v1/recording/${encodeURIComponent(id)}`),
  /** A ticket for a new terminal; with `reattach`, one that re-attaches that persistent (tmux)
   * shell instead of starting a new one. */
  connect: (id: number, password: string, reattach?: string) =>
    call<string>('POST', `/api/v1/machine/${id}/connect`,
      reattach ? { password, reattach } : { password }),
};
