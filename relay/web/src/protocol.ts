// Generated from relay/src/ws/protocol.rs and shared/edge/src/error.rs by
// relay/tests/contract_copies.rs. Do not edit: change the Rust definitions and run
// UPDATE_GENERATED=1 cargo test -p relay --test contract_copies.

/** Terminal WebSocket close codes and what they mean to the user. */
export const CLOSE_REASONS: Record<number, string> = {
  1000: 'session ended',
  1001: 'the relay is shutting down',
  1009: 'message too large',
  4001: 'ticket invalid or expired',
  4002: 'ticket already used',
  4003: 'ticket belongs to another user',
  4004: 'SSH connection closed',
  4008: 'idle timeout',
  4009: 'connection unresponsive',
  4011: 'routing unavailable',
  4012: 'session no longer exists',
  4013: 'terminal opened in another window',
  4014: 'share link invalid or expired',
  4015: 'this share is for other users',
  4016: 'the owner stopped sharing',
  4017: 'too far behind the shared terminal',
  4018: 'too many viewers',
  4020: 'recording failed',
  4021: 'organization access removed',
};

/** Close codes by name. */
export const Close = {
  Normal: 1000,
  GoingAway: 1001,
  MessageTooBig: 1009,
  TicketInvalid: 4001,
  TicketUsed: 4002,
  TicketNotYours: 4003,
  SshClosed: 4004,
  IdleTimeout: 4008,
  ClientUnresponsive: 4009,
  RoutingUnavailable: 4011,
  SessionGone: 4012,
  TakenOver: 4013,
  ShareInvalid: 4014,
  ShareNotForYou: 4015,
  ShareEnded: 4016,
  ViewerTooSlow: 4017,
  ShareFull: 4018,
  RecordingFailed: 4020,
  AccessRevoked: 4021,
} as const;

/** Text frames the relay sends. */
export type ServerEvent =
  | { type: 'exit'; code: number | null; signal?: string }
  | { type: 'error'; message: string }
  | { type: 'shutdown'; message: string; grace_secs: number }
  | { type: 'session'; id: string; secret: string; grace_secs: number; persistent: string | null }
  | { type: 'resumed'; offset: number; dropped: number; input_offset: number }
  | { type: 'pong'; id: number }
  | { type: 'share_created'; id: string; secret: string; mode: 'view' | 'control'; emails: string[]; expires_in_secs: number }
  | { type: 'share_ended'; id: string; reason: string }
  | { type: 'viewers'; viewers: Array<{ id: number; share: string; who: string; mode: 'view' | 'control'; control: boolean }> }
  | { type: 'joined'; viewer: number; mode: 'view' | 'control'; cols: number; rows: number }
  | { type: 'control'; granted: boolean }
  | { type: 'size'; cols: number; rows: number };

/** Text frames the relay accepts. */
export type ClientEvent =
  | { type: 'data'; data: string }
  | { type: 'input'; data: string }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'heartbeat' }
  | { type: 'ack'; offset: number }
  | { type: 'resume'; secret: string; offset: number }
  | { type: 'ping'; id: number }
  | { type: 'share_create'; mode: 'view' | 'control'; emails?: string[]; expires_in_secs?: number; screen?: string; offset?: number }
  | { type: 'share_revoke'; id: string }
  | { type: 'control_grant'; viewer: number }
  | { type: 'control_revoke'; viewer: number }
  | { type: 'join'; secret: string };

/** The `code` of an error envelope. */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'invalid_master_password'
  | 'sign_in_failed'
  | 'session_expired'
  | 'forbidden'
  | 'org_key_not_granted'
  | 'cross_site_request'
  | 'origin_not_allowed'
  | 'target_not_allowed'
  | 'email_unverified'
  | 'remote_permission_denied'
  | 'not_found'
  | 'machine_not_found'
  | 'org_not_found'
  | 'member_not_found'
  | 'invitation_not_found'
  | 'recording_not_found'
  | 'share_not_found'
  | 'session_not_found'
  | 'files_disabled'
  | 'remote_path_not_found'
  | 'method_not_allowed'
  | 'master_password_required'
  | 'master_password_not_set'
  | 'member_master_password_not_set'
  | 'machine_limit_reached'
  | 'host_key_changed'
  | 'conflict'
  | 'org_slug_taken'
  | 'last_owner'
  | 'org_limit_reached'
  | 'remote_exists'
  | 'remote_failed'
  | 'payload_too_large'
  | 'recording_too_large'
  | 'file_too_large'
  | 'unsupported_media_type'
  | 'host_not_allowed'
  | 'too_many_attempts'
  | 'user_limit_reached'
  | 'transfer_limit_reached'
  | 'internal'
  | 'recording_damaged'
  | 'ssh_failed'
  | 'provider_unavailable'
  | 'sftp_unavailable'
  | 'unavailable'
  | 'recording_unavailable'
  | 'busy'
  | 'ssh_timeout';
