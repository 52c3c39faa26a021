//! SSH sessions this relay holds, between `connect` and the WebSocket that opens them, and the
//! count of every session alive (pending or open) for the capacity limit and for draining.
//!
//! A pending session sits in a map under its ticket. Exactly one of two things takes it out:
//! the WebSocket that consumes the ticket, or the reaper task spawned with it, which wakes when
//! the ticket's bucket expires and closes the SSH connection, so an unopened ticket never leaves
//! a shell behind. A WebSocket that takes the session aborts the reaper, whose task (and timer)
//! would otherwise live on beside the terminal until the ticket's time is up. The map lock is a `std` mutex because it is never held across an `.await`.
//!
//! Capacity is a counter of [`Slot`]s: a slot is taken before the vault is opened (so a burst
//! of connects cannot each run a 19 MiB Argon2id first) and released when the session's last
//! owner drops it, so "live sessions" is exact however a session ends. Beside the relay-wide
//! `MAX_SESSIONS`, each user has a cap on sessions (`MAX_SESSIONS_PER_USER`) and on connects in
//! progress (`MAX_CONNECTS_PER_USER`), so one account cannot take the whole relay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Channel;
use russh::client::{Handle, Msg};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::ssh::{self, HostKeyCheck};

/// An authenticated SSH connection with its shell, waiting for (or serving) a WebSocket.
pub struct Session {
    pub owner: String,
    pub machine_id: u64,
    /// The machine's owner id (`org:<slug>`) when it is an organization's: the owner's access
    /// is then re-checked for as long as the session lives (`crate::org_access`), and the
    /// organization's audit log also records the terminal's events ([`Session::org_slug`]).
    pub org: Option<String>,
    /// Shared (weakly) with the terminal's file access, which opens SFTP channels on it.
    pub handle: Arc<Handle<HostKeyCheck>>,
    pub channel: Channel<Msg>,
    pub slot: Slot,
    /// The tmux session the shell runs in (a persistent-shell machine), for the client to
    /// re-attach to after the relay is lost.
    pub persistent: Option<String>,
    /// The terminal's recording (already begun: its header is written), or off.
    pub recorder: crate::recording::Recorder,
}

impl Session {
    /// The organization's slug, for its audit log; `None` for the owner's own machine.
    pub fn org_slug(&self) -> Option<String> {
        self.org
            .as_deref()
            .and_then(domain::vault::org_slug_of)
            .map(str::to_owned)
    }
}

/// One unit of capacity, relay-wide and of its user; released on drop.
pub struct Slot {
    counter: Arc<Counter>,
    _user: UserUnit,
}

/// Why a slot or a connect was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The relay holds `MAX_SESSIONS` sessions.
    Relay,
    /// This user holds their per-user limit.
    User { limit: usize },
}

/// Live counts per user with a cap: what one user holds of something.
pub struct PerUser {
    cap: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// One unit of a user's count; given back on drop.
pub struct UserUnit {
    table: Arc<PerUser>,
    user: String,
}

impl PerUser {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// One more for `user`, or `Full::User` at the cap.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<UserUnit, Full> {
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| Full::User { limit: self.cap })?;
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= self.cap {
            return Err(Full::User { limit: self.cap });
        }
        *count += 1;
        Ok(UserUnit {
            table: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    pub fn held_by(&self, user: &str) -> usize {
        self.counts
            .lock()
            .map(|counts| counts.get(user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for UserUnit {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.table.counts.lock() {
            if let Some(count) = counts.get_mut(&self.user) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.user);
                }
            }
        }
    }
}

struct Counter {
    live: AtomicUsize,
    changed: Notify,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter.live.fetch_sub(1, Ordering::AcqRel);
        self.counter.changed.notify_waiters();
    }
}

/// Values parked under a ticket until taken or until their time is up, each with the task
/// (its reaper) that expires it. Generic so that its bookkeeping is tested without an SSH
/// session; the relay parks [`Session`]s in it.
struct Parking<T> {
    pending: Mutex<HashMap<Uuid, Parked<T>>>,
}

struct Parked<T> {
    value: T,
    reaper: tokio::task::AbortHandle,
}

impl<T: Send + 'static> Parking<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Park `value` under `ticket`; after `ttl`, unless taken, it goes to `expire`.
    fn park<F, Fut>(self: &Arc<Self>, ticket: Uuid, value: T, ttl: Duration, expire: F)
    where
        F: FnOnce(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let parking = Arc::clone(self);
        // The reaper owns nothing but a reference to the map; it ends after one sleep, or is
        // aborted by `take`. Spawned under the map's lock, so even a zero `ttl` finds the
        // value inserted.
        let reaper = tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let expired = parking
                .pending
                .lock()
                .ok()
                .and_then(|mut pending| pending.remove(&ticket));
            if let Some(Parked { value, .. }) = expired {
                expire(value).await;
            }
        })
        .abort_handle();
        pending.insert(ticket, Parked { value, reaper });
    }

    /// The value parked under `ticket`, now the caller's; its reaper is stopped.
    fn take(&self, ticket: Uuid) -> Option<T> {
        let Parked { value, reaper } = self.pending.lock().ok()?.remove(&ticket)?;
        reaper.abort();
        Some(value)
    }

    /// Every parked value, now the caller's; their reapers are stopped.
    fn drain(&self) -> Vec<T> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .drain()
            .map(|(_, Parked { value, reaper })| {
                reaper.abort();
                value
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.pending.lock().map_or(0, |pending| pending.len())
    }

    /// What `pick` finds in each parked value.
    fn collect<R>(&self, mut pick: impl FnMut(Uuid, &T) -> Option<R>) -> Vec<R> {
        let Ok(pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .iter()
            .filter_map(|(ticket, parked)| pick(*ticket, &parked.value))
            .collect()
    }
}

pub struct Sessions {
    pending: Arc<Parking<Session>>,
    counter: Arc<Counter>,
    max: usize,
    per_user: Arc<PerUser>,
}

impl Sessions {
    /// Room for `max` sessions on the relay, `max_per_user` of them one user's.
    pub fn new(max: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            pending: Parking::new(),
            counter: Arc::new(Counter {
                live: AtomicUsize::new(0),
                changed: Notify::new(),
            }),
            max,
            per_user: PerUser::new(max_per_user),
        })
    }

    /// A slot for one of `owner`'s sessions, or why there is none.
    pub fn reserve(&self, owner: &str) -> Result<Slot, Full> {
        let user = self.per_user.take(owner)?;
        self.counter
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.max).then_some(live + 1)
            })
            .map_err(|_| Full::Relay)?;
        Ok(Slot {
            counter: Arc::clone(&self.counter),
            _user: user,
        })
    }

    /// Sessions `owner` holds on this relay (pending or open).
    pub fn held_by(&self, owner: &str) -> usize {
        self.per_user.held_by(owner)
    }

    pub fn live(&self) -> usize {
        self.counter.live.load(Ordering::Acquire)
    }

    /// Sessions parked: connected, waiting for their WebSocket.
    pub fn parked(&self) -> usize {
        self.pending.len()
    }

    /// Park `session` under `ticket` and close it after `ttl` unless a WebSocket took it.
    pub fn park(&self, ticket: Uuid, session: Session, ttl: Duration) {
        self.pending
            .park(ticket, session, ttl, |session| async move {
                tracing::info!(
                    machine_id = session.machine_id,
                    "ticket expired unopened; closing ssh"
                );
                ssh::disconnect(&session.handle).await;
            });
    }

    /// The unopened tickets on organization machines: (ticket, organization owner id, user).
    pub fn pending_org_tickets(&self) -> Vec<(Uuid, String, String)> {
        self.pending.collect(|ticket, session| {
            let org = session.org.clone()?;
            Some((ticket, org, session.owner.clone()))
        })
    }

    /// The session parked under `ticket`, now the caller's to serve or close.
    pub fn take(&self, ticket: Uuid) -> Option<Session> {
        self.pending.take(ticket)
    }

    /// Close every session still waiting for its WebSocket (used when draining).
    pub async fn close_pending(&self) {
        for session in self.pending.drain() {
            ssh::disconnect(&session.handle).await;
        }
    }

    /// Resolve when no session is alive, or after `limit`.
    pub async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.counter.changed.notified();
            if self.live() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.live() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_and_relay_caps_both_hold_and_drops_give_back() {
        let sessions = Sessions::new(3, 2);
        let a1 = sessions.reserve("a").unwrap();
        let _a2 = sessions.reserve("a").unwrap();
        assert_eq!(sessions.reserve("a").err(), Some(Full::User { limit: 2 }));
        let _b1 = sessions.reserve("b").unwrap();
        assert_eq!(sessions.reserve("c").err(), Some(Full::Relay));
        assert_eq!(
            sessions.held_by("c"),
            0,
            "a refused reservation holds nothing"
        );
        drop(a1);
        assert_eq!(sessions.live(), 2);
        let _c1 = sessions.reserve("c").unwrap();
    }

    /// Waits, a bounded number of scheduler turns, for the reapers to let go of `parking`.
    async fn held_only_here<T>(parking: &Arc<Parking<T>>) -> bool {
        for _ in 0..100 {
            if Arc::strong_count(parking) == 1 {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    #[tokio::test]
    async fn taking_a_parked_value_stops_its_reaper() {
        let parking = Parking::new();
        let (ticket, other) = (Uuid::new_v4(), Uuid::new_v4());
        let hour = Duration::from_secs(3600);
        parking.park(ticket, 1, hour, |_| async {});
        parking.park(other, 2, hour, |_| async {});
        assert_eq!(Arc::strong_count(&parking), 3, "each reaper holds the map");
        assert_eq!(parking.take(ticket), Some(1));
        assert_eq!(parking.take(ticket), None, "taken once");
        assert_eq!(parking.drain(), vec![2]);
        assert!(
            held_only_here(&parking).await,
            "the reapers of taken values still run (and hold the map)"
        );
        assert_eq!(parking.len(), 0);
    }

    #[tokio::test]
    async fn an_untaken_value_expires_to_its_handler() {
        let parking = Parking::new();
        let (expired_tx, expired) = tokio::sync::oneshot::channel();
        parking.park(
            Uuid::new_v4(),
            "value",
            Duration::ZERO,
            |value| async move {
                let _ = expired_tx.send(value);
            },
        );
        let value = tokio::time::timeout(Duration::from_secs(5), expired).await;
        assert_eq!(value.ok().and_then(Result::ok), Some("value"));
        assert_eq!(parking.len(), 0);
        assert!(held_only_here(&parking).await, "the reaper ended");
    }
}
