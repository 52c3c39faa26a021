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
  4020: 'recording failed',
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
  RecordingFailed: 4020,
} as const;

/** Text frames the relay sends. */
export type ServerEvent =
  | { type: 'exit'; code: number | null; signal?: string }
  | { type: 'error'; message: string }
  | { type: 'shutdown'; message: string; grace_secs: number }
  | { type: 'session'; id: string; secret: string; grace_secs: number; persistent: string | null }
  | { type: 'resumed'; offset: number; dropped: number; input_offset: number }
  | { type: 'pong'; id: number };

/** Text frames the relay accepts. */
export type ClientEvent =
  | { type: 'data'; data: string }
  | { type: 'input'; data: string }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'heartbeat' }
  | { type: 'ack'; offset: number }
  | { type: 'resume'; secret: string; offset: number }
  | { type: 'ping'; id: number };

/** The `code` of an error envelope. */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'invalid_master_password'
  | 'sign_in_failed'
  | 'session_expired'
  | 'forbidden'
  | 'cross_site_request'
  | 'origin_not_allowed'
  | 'target_not_allowed'
  | 'email_unverified'
  | 'not_found'
  | 'machine_not_found'
  | 'recording_not_found'
  | 'method_not_allowed'
  | 'master_password_required'
  | 'master_password_not_set'
  | 'machine_limit_reached'
  | 'host_key_changed'
  | 'conflict'
  | 'payload_too_large'
  | 'recording_too_large'
  | 'unsupported_media_type'
  | 'host_not_allowed'
  | 'too_many_attempts'
  | 'user_limit_reached'
  | 'internal'
  | 'recording_damaged'
  | 'ssh_failed'
  | 'provider_unavailable'
  | 'unavailable'
  | 'recording_unavailable'
  | 'busy'
  | 'ssh_timeout';
