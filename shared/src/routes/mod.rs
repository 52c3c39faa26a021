//! The ticket route table: which relay holds the SSH session behind a connect ticket
//! (DESIGN.md section 4, `docs/tickets-and-routing.md`).
//!
//! A ticket is a random v4 uuid handed out by `connect`. It is registered as
//! `uuid → {relay, owner}` in a *minute bucket*: it expires at the end of the bucket after the
//! one it was issued in, so it lives between one and two bucket widths (60–120 s by default),
//! and Redis drops it by itself (`EXAT`), with no sweeper. Consuming is atomic and single use:
//! the first consume flips the entry to "used" (keeping its expiry) so that a second open can be
//! told apart from an unknown or expired ticket and refused with its own close code.
//!
//! Two implementations behind one small trait, chosen by configuration like the store and the
//! key provider: Redis (`REDIS_URL`, any number of relays) and an in-process map (the embedded,
//! single-replica default).

pub mod memory;
pub mod redis;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::InProcessRoutes;
pub use redis::RedisRoutes;

/// Where a ticket's session lives and whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The advertised base URL of the relay holding the session (`RELAY_ADVERTISE_URL`).
    pub relay: String,
    /// The identity (`owner_id`) the ticket was issued to.
    pub owner: String,
}

/// What the table knows about a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Never issued, or its bucket has expired.
    Missing,
    /// Issued and not yet opened.
    Open(Route),
    /// Already opened once.
    Used(Route),
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route table unavailable: {0}")]
    Unavailable(String),
    #[error("route table is full")]
    Full,
}

impl From<RouteError> for crate::ApiError {
    fn from(err: RouteError) -> Self {
        tracing::error!(error = %err, "route table error");
        crate::ApiError::Unavailable(match err {
            RouteError::Unavailable(_) => {
                "Session routing (Redis) is unavailable; try again shortly".into()
            }
            RouteError::Full => "Too many pending sessions; try again shortly".into(),
        })
    }
}

#[async_trait]
pub trait RouteTable: Send + Sync {
    /// Register a fresh ticket in `bucket` (see [`TicketClock`]).
    async fn register(&self, ticket: Uuid, route: &Route, bucket: Bucket)
    -> Result<(), RouteError>;
    /// Where the ticket lives, without consuming it (used to forward a WebSocket).
    async fn lookup(&self, ticket: Uuid, now: Bucket) -> Result<Lookup, RouteError>;
    /// Atomically consume: `Open` the first time (and the entry becomes used), then `Used`.
    async fn consume(&self, ticket: Uuid, now: Bucket) -> Result<Lookup, RouteError>;
    /// One line for the start-up log.
    fn describe(&self) -> String;
}

/// A bucket number: seconds since the epoch divided by the bucket width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub index: u64,
    pub width_secs: u64,
}

impl Bucket {
    /// The moment a ticket issued in this bucket stops being valid: the end of the next bucket.
    pub fn expires_at_secs(&self) -> u64 {
        self.index.saturating_add(2).saturating_mul(self.width_secs)
    }

    pub fn previous(&self) -> Self {
        Self {
            index: self.index.saturating_sub(1),
            width_secs: self.width_secs,
        }
    }

    /// Time left until a ticket issued in this bucket expires.
    pub fn remaining(&self) -> Duration {
        let now = TicketClock::now_secs_f64();
        Duration::from_secs_f64((self.expires_at_secs() as f64 - now).max(0.0))
    }
}

/// Turns wall-clock time into buckets. Width 60 s in production; tests shorten it.
#[derive(Clone, Copy, Debug)]
pub struct TicketClock {
    pub width_secs: u64,
}

impl Default for TicketClock {
    fn default() -> Self {
        Self { width_secs: 60 }
    }
}

impl TicketClock {
    pub fn new(width_secs: u64) -> Self {
        Self {
            width_secs: width_secs.max(1),
        }
    }

    pub fn now(&self) -> Bucket {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Bucket {
            index: secs / self.width_secs,
            width_secs: self.width_secs,
        }
    }

    fn now_secs_f64() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_lives_between_one_and_two_buckets() {
        let clock = TicketClock::new(60);
        let bucket = clock.now();
        let left = bucket.remaining().as_secs_f64();
        assert!(left > 59.0 && left <= 120.0, "{left}");
        assert_eq!(bucket.previous().index + 1, bucket.index);
    }
}
