//! The output a terminal keeps for a resume: every byte the client has not acknowledged, up to
//! a bound, addressed by its offset in the session's output.
//!
//! A resumed client says how many output bytes it received; the relay replays from there. So
//! the ring holds output from the last acknowledged offset to the end, as the same reference-
//! counted [`Bytes`] frames the pump sends (no copy: a frame in flight and in the ring is one
//! allocation). Acknowledged bytes are released at once, so a terminal whose client acks costs
//! nothing while idle.
//!
//! For a client that acknowledges (a resume-aware client: its first `ack` makes the ring
//! *windowed*), `per_session` is a flow-control window: once that much is unacknowledged the
//! pump stops reading the shell's output ([`Ring::full`]) until an ack makes room, attached or
//! parked. So a parked terminal loses nothing; its shell waits, as it would behind a stalled
//! SSH connection. A client that never acks gets no window (its output is never held back);
//! its ring just keeps the last `per_session` bytes.
//!
//! All rings together are bounded by the shared [`Budget`]: over it, a ring keeps only
//! [`FLOOR`] bytes, windowed or not. What a bound drops is counted, never skipped silently: a
//! resume from before the ring's start is told exactly how many bytes it lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// What a ring keeps even when the relay-wide budget is exhausted: about a screenful or two.
pub const FLOOR: usize = 64 * 1024;

/// The bytes held by every ring on this relay, against a limit.
pub struct Budget {
    held: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held by all rings now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.held() > self.limit
    }
}

/// Where a resume starts, and the frames to replay from there.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    /// The offset the first replayed byte has (the client's offset, unless bytes were dropped).
    pub from: u64,
    /// Bytes between the client's offset and `from` that the ring no longer had.
    pub dropped: u64,
    pub frames: Vec<Bytes>,
}

/// The client claims to have received bytes the session never produced.
#[derive(Debug, PartialEq, Eq)]
pub struct BeyondEnd;

pub struct Ring {
    frames: VecDeque<Bytes>,
    /// Offset of the first byte of `frames[0]` (= `end` when empty).
    start: u64,
    /// Total output of the session so far: the offset the next byte will have.
    end: u64,
    per_session: usize,
    budget: Arc<Budget>,
    /// The client acknowledges: `per_session` is its window, not a rolling bound.
    windowed: bool,
}

impl Ring {
    pub fn new(per_session: usize, budget: Arc<Budget>) -> Self {
        Self {
            frames: VecDeque::new(),
            start: 0,
            end: 0,
            per_session,
            budget,
            windowed: false,
        }
    }

    /// Whether the client's window is full: the pump must wait for an ack before reading
    /// more output.
    pub fn full(&self) -> bool {
        self.windowed && self.held() >= self.per_session
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        usize::try_from(self.end - self.start).unwrap_or(usize::MAX)
    }

    /// Total output so far.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Append one output frame, then drop from the front what the bounds do not allow.
    pub fn push(&mut self, frame: Bytes) {
        let len = frame.len();
        if len == 0 {
            return;
        }
        self.end += len as u64;
        self.budget.held.fetch_add(len, Ordering::Relaxed);
        self.frames.push_back(frame);
        let keep = if self.budget.over() {
            FLOOR.min(self.per_session)
        } else if self.windowed {
            // The pump stops at a full window; the frame that crossed it is kept whole.
            usize::MAX
        } else {
            self.per_session
        };
        if self.held() > keep {
            self.forget_before(self.end - keep as u64);
        }
    }

    /// The client has everything before `offset`: release it. From now on the ring is a
    /// window.
    pub fn ack(&mut self, offset: u64) {
        self.windowed = true;
        self.forget_before(offset.min(self.end));
    }

    /// The frames a client that received `offset` bytes is missing.
    pub fn replay_from(&self, offset: u64) -> Result<Replay, BeyondEnd> {
        if offset > self.end {
            return Err(BeyondEnd);
        }
        let from = offset.max(self.start);
        let mut frames = Vec::with_capacity(self.frames.len());
        let mut at = self.start;
        for frame in &self.frames {
            let frame_end = at + frame.len() as u64;
            if frame_end > from {
                let skip = usize::try_from(from.saturating_sub(at)).unwrap_or(0);
                frames.push(frame.slice(skip..));
            }
            at = frame_end;
        }
        Ok(Replay {
            from,
            dropped: from - offset,
            frames,
        })
    }

    fn forget_before(&mut self, offset: u64) {
        while self.start < offset {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            let want = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
            let released = if front.len() <= want {
                let len = front.len();
                self.frames.pop_front();
                len
            } else {
                *front = front.slice(want..);
                want
            };
            self.start += released as u64;
            self.budget.held.fetch_sub(released, Ordering::Relaxed);
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.held(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(per_session: usize, budget: usize) -> (Ring, Arc<Budget>) {
        let budget = Budget::new(budget);
        (Ring::new(per_session, Arc::clone(&budget)), budget)
    }

    fn joined(replay: &Replay) -> Vec<u8> {
        replay.frames.iter().flat_map(|f| f.to_vec()).collect()
    }

    #[test]
    fn replays_exactly_what_the_client_is_missing() {
        let (mut ring, _) = ring(1024, 1 << 20);
        ring.push(Bytes::from_static(b"hello "));
        ring.push(Bytes::from_static(b"world"));
        let replay = ring.replay_from(3).unwrap();
        assert_eq!((replay.from, replay.dropped), (3, 0));
        assert_eq!(joined(&replay), b"lo world");
        assert_eq!(joined(&ring.replay_from(11).unwrap()), b"");
        assert_eq!(ring.replay_from(12), Err(BeyondEnd));
    }

    #[test]
    fn acks_release_bytes_and_the_budget() {
        let (mut ring, budget) = ring(1024, 1 << 20);
        ring.push(Bytes::from_static(b"0123456789"));
        ring.ack(4);
        assert_eq!((ring.held(), budget.held()), (6, 6));
        assert_eq!(joined(&ring.replay_from(4).unwrap()), b"456789");
        ring.ack(100);
        assert_eq!((ring.held(), budget.held()), (0, 0));
        drop(ring);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn overflow_drops_the_oldest_and_a_resume_is_told_how_many() {
        let (mut ring, _) = ring(8, 1 << 20);
        for chunk in [&b"abcd"[..], b"efgh", b"ijkl"] {
            ring.push(Bytes::copy_from_slice(chunk));
        }
        assert_eq!(ring.held(), 8);
        let replay = ring.replay_from(1).unwrap();
        assert_eq!((replay.from, replay.dropped), (4, 3));
        assert_eq!(joined(&replay), b"efghijkl");
    }

    #[test]
    fn once_the_client_acks_the_bound_is_a_window_that_drops_nothing() {
        let (mut ring, _) = ring(8, 1 << 20);
        ring.ack(0);
        ring.push(Bytes::from_static(b"abcd"));
        assert!(!ring.full());
        ring.push(Bytes::from_static(b"efghij"));
        assert!(ring.full(), "10 unacknowledged bytes fill an 8-byte window");
        let replay = ring.replay_from(0).unwrap();
        assert_eq!((replay.from, replay.dropped), (0, 0));
        ring.ack(6);
        assert!(!ring.full());
    }

    #[test]
    fn over_the_shared_budget_a_ring_keeps_only_the_floor() {
        let budget = Budget::new(FLOOR);
        let mut first = Ring::new(1 << 20, Arc::clone(&budget));
        let mut second = Ring::new(1 << 20, Arc::clone(&budget));
        first.push(Bytes::from(vec![0u8; FLOOR]));
        second.push(Bytes::from(vec![0u8; 2 * FLOOR]));
        assert_eq!(second.held(), FLOOR);
        assert_eq!(budget.held(), 2 * FLOOR);
        drop(first);
        drop(second);
        assert_eq!(budget.held(), 0);
    }
}
