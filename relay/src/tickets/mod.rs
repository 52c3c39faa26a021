//! The ticket table: which relay holds the SSH session behind a connect ticket, and the one
//! atomic step that opens a ticket (`docs/tickets-and-routing.md`).
//!
//! A ticket is a random v4 uuid handed out by `connect`. It is registered as
//! `uuid → {relay, owner}` in a *minute bucket*: it expires at the end of the bucket after the
//! one it was issued in, so it lives between one and two bucket widths (60–120 s by default),
//! and Redis drops it by itself (`EXAT`), with no sweeper. Opening is atomic, single use and one
//! round trip: [`TicketTable::open`] consumes the ticket only if this relay holds it and it was
//! issued to the caller, and otherwise says why not (used, unknown, someone else's, or held by
//! another relay, which is where the socket is forwarded). The first open flips the entry to
//! "used" (keeping its expiry) so that a second open can be told apart from an unknown or
//! expired ticket and refused with its own close code.
//!
//! Resumable sessions are routed the same way: `session id → {relay, owner}` in the same
//! minute buckets, published when the terminal opens and again every bucket while it lives
//! (attached or parked), deleted when it ends, so a relay that dies leaves nothing behind for
//! longer than two buckets.
//!
//! A shared terminal's shares are routed the same way again (`share id → {relay, owner}`,
//! published while the share lives), so a viewer's socket reaches the relay holding the
//! terminal from any replica. The share's secret and audience never leave that relay.
//!
//! Each live share is also listed under its owner with what `GET /api/v1/shares` shows
//! ([`ShareListing`]), published and forgotten with its route, so the listing answers from any
//! replica without asking the relays; an entry whose route lapsed (its relay died) is left out.
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

pub use memory::InProcessTickets;
pub use redis::RedisTickets;

/// Where a ticket's session lives and whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The advertised base URL of the relay holding the session (`RELAY_ADVERTISE_URL`).
    pub relay: String,
    /// The identity (`owner_id`) the ticket was issued to.
    pub owner: String,
}

/// What a listing of the caller's live shares says about one (`GET /api/v1/shares`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareListing {
    pub id: String,
    /// The shared terminal's session id.
    pub session: String,
    /// `view` or `control`.
    pub mode: String,
    /// The users it is for (empty: anyone with the link).
    pub emails: Vec<String>,
    /// When it expires, in Unix seconds.
    pub expires_at: u64,
}

/// The most shares one listing returns.
pub const MAX_LISTED_SHARES: usize = 256;

/// The outcome of [`TicketTable::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Consumed: this relay holds the session and the caller may have it.
    Opened(Route),
    /// Never issued, or its bucket has expired.
    Missing,
    /// Already opened once.
    Used,
    /// Issued to someone other than the caller; not consumed.
    NotYours,
    /// Held by another relay; not consumed (the socket is forwarded there).
    Elsewhere(Route),
}

impl Opening {
    /// The decision for an open entry, shared by both implementations so they cannot disagree.
    fn decide(route: Route, here: &str, caller: Option<&str>) -> (Self, bool) {
        if caller.is_some_and(|caller| caller != route.owner) {
            (Self::NotYours, false)
        } else if route.relay != here {
            (Self::Elsewhere(route), false)
        } else {
            (Self::Opened(route), true)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket table unavailable: {0}")]
    Unavailable(String),
    #[error("ticket table is full")]
    Full,
}

impl From<TicketError> for edge::ApiError {
    fn from(err: TicketError) -> Self {
        tracing::error!(error = %err, "ticket table error");
        edge::ApiError::unavailable(match err {
            TicketError::Unavailable(_) => {
                "Session routing (Redis) is unavailable; try again shortly"
            }
            TicketError::Full => "Too many pending sessions; try again shortly",
        })
    }
}

/// The secret relays sign forwarded hops with (`ws::hop`). Zeroized on drop.
pub type HopKey = zeroize::Zeroizing<[u8; 32]>;

#[async_trait]
pub trait TicketTable: Send + Sync {
    /// Register a fresh ticket in `bucket` (see [`TicketClock`]).
    async fn register(
        &self,
        ticket: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError>;
    /// In one atomic step: consume the ticket if relay `here` holds it and (when `caller` is
    /// known) it was issued to `caller`; otherwise say why not, leaving it unconsumed.
    async fn open(
        &self,
        ticket: Uuid,
        now: Bucket,
        here: &str,
        caller: Option<&str>,
    ) -> Result<Opening, TicketError>;
    /// Say that relay `route.relay` holds resumable session `id` until the end of the bucket
    /// after `bucket`; called again each bucket while the session lives (replaces the entry).
    async fn publish_session(
        &self,
        id: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError>;
    /// Where session `id` lives, if any relay still says it holds it.
    async fn find_session(&self, id: Uuid, now: Bucket) -> Result<Option<Route>, TicketError>;
    /// The session ended: forget its route at once.
    async fn forget_session(&self, id: Uuid, now: Bucket) -> Result<(), TicketError>;
    /// Say that relay `route.relay` holds the terminal share `id` belongs to, until the end of
    /// the bucket after `bucket`, and list it under `route.owner`; refreshed each bucket while
    /// the share lives.
    async fn publish_share(
        &self,
        id: Uuid,
        route: &Route,
        listing: &ShareListing,
        bucket: Bucket,
    ) -> Result<(), TicketError>;
    /// Where share `id`'s terminal lives, if any relay still says it holds it.
    async fn find_share(&self, id: Uuid, now: Bucket) -> Result<Option<Route>, TicketError>;
    /// The share ended: forget its route and its listing under `owner` at once.
    async fn forget_share(&self, id: Uuid, owner: &str, now: Bucket) -> Result<(), TicketError>;
    /// `owner`'s live shares on every relay (at most [`MAX_LISTED_SHARES`]), those whose route
    /// still stands.
    async fn list_shares(&self, owner: &str, now: Bucket)
    -> Result<Vec<ShareListing>, TicketError>;
    /// The key every relay sharing this table signs forwarded hops with.
    async fn hop_key(&self) -> Result<HopKey, TicketError>;
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
