// TEMPORARY local copy of the resume protocol's events and close codes until the generated
// protocol.ts carries them (it is generated from relay/src/ws/protocol.rs; never hand-edited).
import type { ClientEvent as BaseClient, ServerEvent as BaseServer } from './protocol';

export type ServerEvent =
  | BaseServer
  | { type: 'session'; id: string; secret: string; grace_secs: number; persistent: string | null }
  | { type: 'resumed'; offset: number; dropped: number; input_offset: number }
  | { type: 'pong'; id: number };

export type ClientEvent =
  | BaseClient
  | { type: 'ack'; offset: number }
  | { type: 'resume'; secret: string; offset: number }
  | { type: 'ping'; id: number };

export const ResumeClose = { SessionGone: 4012, TakenOver: 4013 } as const;
export const RESUME_CLOSE_REASONS: Record<number, string> = {
  4012: 'session no longer exists',
  4013: 'terminal opened in another window',
};
