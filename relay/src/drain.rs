//! Shutting down without cutting people off: what a relay does between SIGTERM (or SIGINT)
//! and exiting.
//!
//! One `watch` channel carries the relay's phase to every handler and every terminal pump:
//! `Running`, then on SIGTERM `Draining` (connect and new WebSockets answer 503, open terminals
//! get a `{"type":"shutdown"}` notice and keep working), then after the grace period `Closing`
//! (terminals are closed with 1001 Going Away). `watch` is the right shape because late
//! subscribers must see the current phase, not only future changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Relay;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    Draining { grace_secs: u64 },
    Closing,
}

/// Drive the phases; returns once every session has ended (or been given up on).
pub async fn drain(relay: &Arc<Relay>) {
    let grace = relay.config.drain_grace;
    tracing::info!(
        live = relay.sessions.live(),
        grace_secs = grace.as_secs(),
        "draining: refusing new sessions"
    );
    relay.phase.send_replace(Phase::Draining {
        grace_secs: grace.as_secs(),
    });
    relay.sessions.close_pending().await;
    if !relay.sessions.wait_empty(grace).await {
        tracing::info!(
            live = relay.sessions.live(),
            "grace over: closing open terminals"
        );
        relay.phase.send_replace(Phase::Closing);
        relay.sessions.wait_empty(Duration::from_secs(3)).await;
    }
    tracing::info!(live = relay.sessions.live(), "drained");
}

pub fn channel() -> (watch::Sender<Phase>, watch::Receiver<Phase>) {
    watch::channel(Phase::Running)
}
