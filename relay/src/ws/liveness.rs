//! When is a browser gone? The keepalive, silence, idle and send-stall rules, written once and
//! used by both the terminal pump and the forwarding hop.
//!
//! * Ping every `keepalive` interval.
//! * A client is *gone* when it has sent nothing (no frame, no pong) for three intervals **and**
//!   no output frame has been delivered to it for three intervals. Output delivered counts
//!   because a client busy downloading output is alive even if it says nothing, and its pong may
//!   be queued behind that output. Our own pings do not count: the kernel's socket buffer
//!   accepts them from a client that stopped reading, so they prove nothing.
//! * A terminal is *idle* when neither a keystroke nor output has passed for the idle timeout.
//! * A send that the client does not accept within [`SEND_STALL`] means the client is gone;
//!   every send on the terminal path is bounded by it.
//!
//! The clock is shared between the task that writes to the socket (which marks deliveries) and
//! the control loop (which reads the socket and asks for a verdict each tick), so the instants
//! are atomics of milliseconds since a common base. `tokio::time::Instant` lets the unit tests
//! run the rules under `tokio::time::pause()`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A peer that accepts nothing for this long is treated as gone.
pub const SEND_STALL: Duration = Duration::from_secs(60);

/// How many silent keepalive intervals make a client gone.
const SILENT_INTERVALS: u32 = 3;

/// What the control loop should do on this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Alive,
    /// Send a ping now.
    Ping,
    /// Close with 4009: the client stopped answering.
    Gone,
    /// Close with 4008: no keystroke and no output for the idle timeout.
    Idle,
}

/// The clock of one terminal (or one forwarded socket).
pub struct Liveness {
    base: Instant,
    keepalive: Duration,
    idle_timeout: Option<Duration>,
    heard_ms: AtomicU64,
    delivered_ms: AtomicU64,
    active_ms: AtomicU64,
    pinged_ms: AtomicU64,
}

impl Liveness {
    /// `idle_timeout: None` for a hop that has no idle rule of its own (the owner relay has).
    pub fn new(keepalive: Duration, idle_timeout: Option<Duration>) -> Self {
        Self {
            base: Instant::now(),
            keepalive,
            idle_timeout,
            heard_ms: AtomicU64::new(0),
            delivered_ms: AtomicU64::new(0),
            active_ms: AtomicU64::new(0),
            pinged_ms: AtomicU64::new(0),
        }
    }

    /// How often the control loop should ask for a verdict.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_secs(1).min(self.keepalive)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn since(&self, mark: &AtomicU64) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(mark.load(Ordering::Relaxed)))
    }

    /// Any frame (data, control, pong) arrived from the client.
    pub fn heard(&self) {
        self.heard_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The client's socket accepted an output frame (not a ping).
    pub fn delivered(&self) {
        self.delivered_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A keystroke or output passed: resets the idle clock.
    pub fn active(&self) {
        self.active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The verdict now; a `Ping` verdict also records that the ping is being sent.
    pub fn check(&self) -> Verdict {
        if self
            .idle_timeout
            .is_some_and(|limit| self.since(&self.active_ms) >= limit)
        {
            return Verdict::Idle;
        }
        let silent_for = self.keepalive * SILENT_INTERVALS;
        if self.since(&self.heard_ms) >= silent_for && self.since(&self.delivered_ms) >= silent_for
        {
            return Verdict::Gone;
        }
        let now = self.now_ms();
        let keepalive_ms = u64::try_from(self.keepalive.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let since_ping = now.saturating_sub(self.pinged_ms.load(Ordering::Relaxed));
        if since_ping >= keepalive_ms {
            // Keep to the schedule (one ping per interval since the start), not to when this
            // tick happened to run: a late tick must not push the next ping a whole interval
            // later, or a busy relay would ping half as often as configured.
            self.pinged_ms
                .store(now - since_ping % keepalive_ms, Ordering::Relaxed);
            return Verdict::Ping;
        }
        Verdict::Alive
    }
}

/// `send` bounded by [`SEND_STALL`]: `None` when the client did not accept it in time.
pub async fn within_stall<F: Future>(send: F) -> Option<F::Output> {
    tokio::time::timeout(SEND_STALL, send).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(20);

    async fn advance(secs: u64) {
        tokio::time::advance(Duration::from_secs(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn pings_once_per_interval() {
        let live = Liveness::new(KEEPALIVE, None);
        assert_eq!(live.check(), Verdict::Alive);
        advance(20).await;
        assert_eq!(live.check(), Verdict::Ping);
        assert_eq!(live.check(), Verdict::Alive);
        live.heard();
        advance(20).await;
        assert_eq!(live.check(), Verdict::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_tick_does_not_delay_the_next_ping() {
        let live = Liveness::new(Duration::from_secs(1), None);
        tokio::time::advance(Duration::from_millis(1300)).await;
        assert_eq!(live.check(), Verdict::Ping, "late first tick");
        tokio::time::advance(Duration::from_millis(750)).await;
        assert_eq!(live.check(), Verdict::Ping, "second interval began at 2 s");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(live.check(), Verdict::Alive);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_for_three_intervals_is_gone() {
        let live = Liveness::new(KEEPALIVE, None);
        advance(59).await;
        assert_ne!(live.check(), Verdict::Gone);
        advance(1).await;
        assert_eq!(live.check(), Verdict::Gone);
    }

    #[tokio::test(start_paused = true)]
    async fn answering_keeps_a_client_alive() {
        let live = Liveness::new(KEEPALIVE, None);
        for _ in 0..10 {
            advance(30).await;
            live.heard();
            assert_ne!(live.check(), Verdict::Gone);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_receiving_output_is_alive_until_delivery_stops() {
        let live = Liveness::new(KEEPALIVE, None);
        for _ in 0..10 {
            advance(10).await;
            live.delivered();
            assert_ne!(live.check(), Verdict::Gone);
        }
        advance(60).await;
        assert_eq!(live.check(), Verdict::Gone);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_needs_neither_keystrokes_nor_output() {
        let live = Liveness::new(KEEPALIVE, Some(Duration::from_secs(100)));
        advance(90).await;
        live.active();
        live.heard();
        advance(90).await;
        live.heard();
        assert_ne!(live.check(), Verdict::Idle);
        advance(10).await;
        live.heard();
        assert_eq!(live.check(), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_send_gives_up_after_the_stall_limit() {
        let stalled = within_stall(std::future::pending::<()>());
        assert_eq!(stalled.await, None);
        assert_eq!(within_stall(async { 5 }).await, Some(5));
    }
}
