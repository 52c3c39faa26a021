//! In-process route table: the embedded default, for a single relay (no `REDIS_URL`).
//!
//! A plain `std::sync::Mutex` around a map: every operation is a few map calls with no
//! `.await` inside, so a sync lock is cheaper than an async one and cannot be held across a
//! suspension point. The map is bounded: expired entries are swept on insert, and past
//! `MAX_ENTRIES` live tickets a new registration is refused (503) rather than grow memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Bucket, Lookup, Route, RouteError, RouteTable};

const MAX_ENTRIES: usize = 100_000;

struct Entry {
    route: Route,
    used: bool,
    expires_at_secs: u64,
}

#[derive(Default)]
pub struct InProcessRoutes {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

impl InProcessRoutes {
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

fn poisoned() -> RouteError {
    RouteError::Unavailable("in-process route table lock poisoned".to_owned())
}

#[async_trait]
impl RouteTable for InProcessRoutes {
    async fn register(
        &self,
        ticket: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), RouteError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        if entries.len() >= MAX_ENTRIES {
            let now = now_secs();
            entries.retain(|_, entry| entry.expires_at_secs > now);
            if entries.len() >= MAX_ENTRIES {
                return Err(RouteError::Full);
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

    async fn lookup(&self, ticket: Uuid, _now: Bucket) -> Result<Lookup, RouteError> {
        let entries = self.entries.lock().map_err(|_| poisoned())?;
        Ok(match entries.get(&ticket) {
            Some(entry) if entry.expires_at_secs > now_secs() => {
                if entry.used {
                    Lookup::Used(entry.route.clone())
                } else {
                    Lookup::Open(entry.route.clone())
                }
            }
            _ => Lookup::Missing,
        })
    }

    async fn consume(&self, ticket: Uuid, _now: Bucket) -> Result<Lookup, RouteError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        let now = now_secs();
        Ok(match entries.get_mut(&ticket) {
            Some(entry) if entry.expires_at_secs > now => {
                if entry.used {
                    Lookup::Used(entry.route.clone())
                } else {
                    entry.used = true;
                    Lookup::Open(entry.route.clone())
                }
            }
            Some(_) => {
                entries.remove(&ticket);
                Lookup::Missing
            }
            None => Lookup::Missing,
        })
    }

    fn describe(&self) -> String {
        "in-process (single relay)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::TicketClock;

    #[tokio::test]
    async fn a_ticket_opens_once() {
        let table = InProcessRoutes::new();
        let clock = TicketClock::default();
        let route = Route {
            relay: "http://a".into(),
            owner: "u".into(),
        };
        let ticket = Uuid::new_v4();
        table.register(ticket, &route, clock.now()).await.unwrap();
        assert_eq!(
            table.lookup(ticket, clock.now()).await.unwrap(),
            Lookup::Open(route.clone())
        );
        assert_eq!(
            table.consume(ticket, clock.now()).await.unwrap(),
            Lookup::Open(route.clone())
        );
        assert_eq!(
            table.consume(ticket, clock.now()).await.unwrap(),
            Lookup::Used(route)
        );
        assert_eq!(
            table.consume(Uuid::new_v4(), clock.now()).await.unwrap(),
            Lookup::Missing
        );
    }
}
