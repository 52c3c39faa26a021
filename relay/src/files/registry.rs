//! The terminals whose files can be reached on this relay: for each live terminal, its owner,
//! a weak reference to its SSH connection (the pump owns the connection; a file request never
//! keeps it alive), the recorder tap its transfers are marked on, its SFTP channel once one was
//! opened, and the count of its transfers in progress.
//!
//! An entry is registered when a terminal opens and removed by the guard ([`Registration`])
//! dropped when its pump returns, so a file request for a terminal that ended finds nothing
//! (404, like another user's terminal). The map lock is a `std` mutex never held across an
//! `.await`; the SFTP channel sits behind a `tokio` mutex because opening it awaits the target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use russh::client::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::remote::{self, Sftp, SftpError};
use crate::recording::Tap;
use crate::ssh::HostKeyCheck;

/// Transfers one terminal may run at once (each holds a few SFTP windows of memory).
pub const MAX_TRANSFERS_PER_TERMINAL: usize = 4;

/// One terminal's file access.
pub struct Entry {
    pub owner: String,
    /// The organization (slug) whose machine it is: its audit log also records transfers.
    pub org: Option<String>,
    pub machine_id: u64,
    connection: Weak<Handle<HostKeyCheck>>,
    /// Transfers are marked on the terminal's recording through this.
    pub tap: Tap,
    sftp: tokio::sync::Mutex<Option<Arc<Sftp>>>,
    transfers: Arc<Semaphore>,
}

impl Entry {
    /// The terminal's SFTP channel, opened on its SSH connection on first use and reused by
    /// every later request (SFTP multiplexes requests by id).
    pub async fn sftp(&self) -> Result<Arc<Sftp>, SftpError> {
        let mut slot = self.sftp.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(Arc::clone(session));
        }
        let connection = self.connection.upgrade().ok_or(SftpError::Closed)?;
        let session = Arc::new(remote::open(&connection).await?);
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forget a channel that failed, so the next request opens a fresh one.
    pub async fn reset(&self) {
        if let Some(session) = self.sftp.lock().await.take() {
            session.close();
        }
    }

    /// A transfer slot, or `None` when [`MAX_TRANSFERS_PER_TERMINAL`] are running.
    pub fn transfer(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.transfers).try_acquire_owned().ok()
    }
}

/// This relay's terminals, by session id.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<Uuid, Arc<Entry>>>,
}

/// Removes its terminal from the registry when dropped (the pump returned).
pub struct Registration {
    registry: Arc<Registry>,
    id: Uuid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let gone = self
            .registry
            .entries
            .lock()
            .ok()
            .and_then(|mut entries| entries.remove(&self.id));
        if let Some(entry) = gone {
            // Close the SFTP channel now rather than when the last transfer lets go of it.
            tokio::spawn(async move { entry.reset().await });
        }
    }
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Make terminal `id` of `owner` reachable until the returned guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        id: Uuid,
        owner: &str,
        org: Option<&str>,
        machine_id: u64,
        connection: &Arc<Handle<HostKeyCheck>>,
        tap: Tap,
    ) -> Registration {
        let entry = Arc::new(Entry {
            owner: owner.to_owned(),
            org: org.map(str::to_owned),
            machine_id,
            connection: Arc::downgrade(connection),
            tap,
            sftp: tokio::sync::Mutex::new(None),
            transfers: Arc::new(Semaphore::new(MAX_TRANSFERS_PER_TERMINAL)),
        });
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, entry);
        }
        Registration {
            registry: Arc::clone(self),
            id,
        }
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Entry>> {
        self.entries.lock().ok()?.get(&id).cloned()
    }
}
