//! In-process ticket table: the embedded default, for a single relay (no `REDIS_URL`). The hop
//! key is random per process: with one relay nothing is ever forwarded.
//!
//! A plain `std::sync::Mutex` around a map: every operation is a few map calls with no
//! `.await` inside, so a sync lock is cheaper than an async one and cannot be held across a
//! suspension point. The map is bounded: expired entries are swept on insert, and past
//! `MAX_ENTRIES` live tickets a new registration is refused (503) rather than grow memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::RngCore;
use uuid::Uuid;

use super::{
    Bucket, HopKey, MAX_LISTED_SHARES, Opening, Route, ShareListing, TicketError, TicketTable,
};

const MAX_ENTRIES: usize = 100_000;

struct Entry {
    route: Route,
    used: bool,
    expires_at_secs: u64,
}

pub struct InProcessTickets {
    entries: Mutex<HashMap<Uuid, Entry>>,
    /// Resumable sessions (one relay: only ever this one's, but kept for the same answers).
    sessions: Mutex<HashMap<Uuid, (Route, u64)>>,
    /// Share routes, the same way.
    shares: Mutex<HashMap<Uuid, (Route, u64)>>,
    /// What the owners' listings show, per share (removed with the route).
    listings: Mutex<HashMap<Uuid, ShareListing>>,
    hop_key: HopKey,
}

type Routes = Mutex<HashMap<Uuid, (Route, u64)>>;

fn publish_route(
    routes: &Routes,
    id: Uuid,
    route: &Route,
    bucket: Bucket,
) -> Result<(), TicketError> {
    let mut routes = routes.lock().map_err(|_| poisoned())?;
    if routes.len() >= MAX_ENTRIES && !routes.contains_key(&id) {
        let now = now_secs();
        routes.retain(|_, (_, expires)| *expires > now);
        if routes.len() >= MAX_ENTRIES {
            return Err(TicketError::Full);
        }
    }
    routes.insert(id, (route.clone(), bucket.expires_at_secs()));
    Ok(())
}

fn find_route(routes: &Routes, id: Uuid) -> Result<Option<Route>, TicketError> {
    let routes = routes.lock().map_err(|_| poisoned())?;
    let now = now_secs();
    Ok(routes
        .get(&id)
        .filter(|(_, expires)| *expires > now)
        .map(|(route, _)| route.clone()))
}

impl Default for InProcessTickets {
    fn default() -> Self {
        let mut hop_key = HopKey::default();
        rand::rngs::OsRng.fill_bytes(hop_key.as_mut_slice());
        Self {
            entries: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            hop_key,
        }
    }
}

impl InProcessTickets {
    pub fn new() -> Self {
        Self::default()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn poisoned() -> TicketError {
    TicketError::Unavailable("in-process ticket table lock poisoned".to_owned())
}

#[async_trait]
impl TicketTable for InProcessTickets {
    async fn register(
        &self,
        ticket: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        if entries.len() >= MAX_ENTRIES {
            let now = now_secs();
            entries.retain(|_, entry| entry.expires_at_secs > now);
            if entries.len() >= MAX_ENTRIES {
                return Err(TicketError::Full);
            }
        }
        entries.insert(
            ticket,
            Entry {
                route: route.clone(),
                used: false,
                expires_at_secs: bucket.expires_at_secs(),
            },
        );
        Ok(())
    }

    async fn open(
        &self,
        ticket: Uuid,
        _now: Bucket,
        here: &str,
        caller: Option<&str>,
    ) -> Result<Opening, TicketError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        let now = now_secs();
        Ok(match entries.get_mut(&ticket) {
            Some(entry) if entry.expires_at_secs > now => {
                if entry.used {
                    Opening::Used
                } else {
                    let (opening, consume) = Opening::decide(entry.route.clone(), here, caller);
                    entry.used = consume;
                    opening
                }
            }
            Some(_) => {
                entries.remove(&ticket);
                Opening::Missing
            }
            None => Opening::Missing,
        })
    }

    async fn publish_session(
        &self,
        id: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        publish_route(&self.sessions, id, route, bucket)
    }

    async fn find_session(&self, id: Uuid, _now: Bucket) -> Result<Option<Route>, TicketError> {
        find_route(&self.sessions, id)
    }

    async fn forget_session(&self, id: Uuid, _now: Bucket) -> Result<(), TicketError> {
        self.sessions.lock().map_err(|_| poisoned())?.remove(&id);
        Ok(())
    }

    async fn publish_share(
        &self,
        id: Uuid,
        route: &Route,
        listing: &ShareListing,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        publish_route(&self.shares, id, route, bucket)?;
        let mut listings = self.listings.lock().map_err(|_| poisoned())?;
        if listings.len() >= MAX_ENTRIES && !listings.contains_key(&id) {
            let shares = self.shares.lock().map_err(|_| poisoned())?;
            listings.retain(|id, _| shares.contains_key(id));
        }
        listings.insert(id, listing.clone());
        Ok(())
    }

    async fn find_share(&self, id: Uuid, _now: Bucket) -> Result<Option<Route>, TicketError> {
        find_route(&self.shares, id)
    }

    async fn forget_share(&self, id: Uuid, _owner: &str, _now: Bucket) -> Result<(), TicketError> {
        self.shares.lock().map_err(|_| poisoned())?.remove(&id);
        self.listings.lock().map_err(|_| poisoned())?.remove(&id);
        Ok(())
    }

    async fn list_shares(
        &self,
        owner: &str,
        _now: Bucket,
    ) -> Result<Vec<ShareListing>, TicketError> {
        let listings = self.listings.lock().map_err(|_| poisoned())?;
        let mut mine = Vec::new();
        for (id, listing) in listings.iter() {
            if mine.len() >= MAX_LISTED_SHARES {
                break;
            }
            if find_route(&self.shares, *id)?.is_some_and(|route| route.owner == owner) {
                mine.push(listing.clone());
            }
        }
        Ok(mine)
    }

    async fn hop_key(&self) -> Result<HopKey, TicketError> {
        Ok(self.hop_key.clone())
    }

    fn describe(&self) -> String {
        "in-process (single relay)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::TicketClock;

    #[tokio::test]
    async fn a_ticket_opens_once_on_its_relay_for_its_owner() {
        let table = InProcessTickets::new();
        let clock = TicketClock::default();
        let route = Route {
            relay: "http://a".into(),
            owner: "u".into(),
        };
        let ticket = Uuid::new_v4();
        table.register(ticket, &route, clock.now()).await.unwrap();
        let open = |here, caller| table.open(ticket, clock.now(), here, caller);
        assert_eq!(
            open("http://a", Some("v")).await.unwrap(),
            Opening::NotYours
        );
        assert_eq!(
            open("http://b", Some("u")).await.unwrap(),
            Opening::Elsewhere(route.clone())
        );
        assert_eq!(
            open("http://a", Some("u")).await.unwrap(),
            Opening::Opened(route.clone())
        );
        assert_eq!(open("http://a", None).await.unwrap(), Opening::Used);
        assert_eq!(
            table
                .open(Uuid::new_v4(), clock.now(), "http://a", None)
                .await
                .unwrap(),
            Opening::Missing
        );
    }
}
