//! SSH sessions this relay holds, between `connect` and the WebSocket that opens them, and the
//! count of every session alive (pending or open) for the capacity limit and for draining.
//!
//! A pending session sits in a map under its ticket. Exactly one of two things takes it out:
//! the WebSocket that consumes the ticket, or the reaper task spawned with it, which wakes when
//! the ticket's bucket expires and closes the SSH connection, so an unopened ticket never leaves
//! a shell behind. The map lock is a `std` mutex because it is never held across an `.await`.
//!
//! Capacity is a counter of [`Slot`]s: a slot is taken before dialling SSH and released when
//! the session's last owner drops it, so "live sessions" is exact however a session ends.

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
    pub handle: Handle<HostKeyCheck>,
    pub channel: Channel<Msg>,
    pub slot: Slot,
}

/// One unit of capacity; released on drop.
pub struct Slot {
    counter: Arc<Counter>,
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

pub struct Sessions {
    pending: Mutex<HashMap<Uuid, Session>>,
    counter: Arc<Counter>,
    max: usize,
}

impl Sessions {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(HashMap::new()),
            counter: Arc::new(Counter {
                live: AtomicUsize::new(0),
                changed: Notify::new(),
            }),
            max,
        })
    }

    /// A slot, or `None` when the relay is at `MAX_SESSIONS`.
    pub fn reserve(&self) -> Option<Slot> {
        self.counter
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.max).then_some(live + 1)
            })
            .ok()
            .map(|_| Slot {
                counter: Arc::clone(&self.counter),
            })
    }

    pub fn live(&self) -> usize {
        self.counter.live.load(Ordering::Acquire)
    }

    /// Park `session` under `ticket` and close it after `ttl` unless a WebSocket took it.
    pub fn park(self: &Arc<Self>, ticket: Uuid, session: Session, ttl: Duration) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(ticket, session);
        }
        let sessions = Arc::clone(self);
        // The reaper owns nothing but a reference to the map; it ends after one sleep.
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let Some(session) = sessions.take(ticket) {
                tracing::info!(
                    machine_id = session.machine_id,
                    "ticket expired unopened; closing ssh"
                );
                ssh::disconnect(&session.handle).await;
            }
        });
    }

    pub fn take(&self, ticket: Uuid) -> Option<Session> {
        self.pending.lock().ok()?.remove(&ticket)
    }

    /// Close every session still waiting for its WebSocket (used when draining).
    pub async fn close_pending(&self) {
        let drained: Vec<Session> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().map(|(_, s)| s).collect(),
            Err(_) => Vec::new(),
        };
        for session in drained {
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
