//! Resuming a terminal: the registry of this relay's resumable terminals, the credentials a
//! terminal is born with, and the handshake that hands a new WebSocket to a live terminal.
//!
//! A terminal gets a random id and a 256-bit secret when it opens (sent once, in its `session`
//! event). The id is not secret — it travels in the URL, `GET /ssh?session=<id>`, so any
//! replica can route the socket — but the secret never does: it is the socket's first frame,
//! `{"type":"resume","secret":…,"offset":…}`, read within [`RESUME_FRAME_WAIT`]. The registry
//! keeps only the secret's SHA-256 and compares in constant time. Whoever presents the id and
//! the secret gets the terminal, with the same identity rule as tickets: a browser must also
//! send the owner's `jwt` cookie, and any cookie sent must name the owner.
//!
//! Which relay holds a terminal is in the ticket table (`TicketTable::publish_session`): a
//! resume that lands elsewhere is forwarded there with a session hop proof, before its first
//! frame is read, so the secret goes straight through to the relay that checks it. Every
//! refusal of an existing session's resume looks the same as an unknown session (4012): the
//! secret is the only thing that tells them apart.
//!
//! A terminal on an organization machine is resumed only while its owner still belongs to the
//! organization (read in the store after the secret matched, `crate::org_access`): a removed
//! member gets 4021 and the terminal ends.
//!
//! The terminal itself (its pump) stays the only owner of its socket and SSH channel; the
//! registry holds a bounded channel into it, and the handshake's last step is to send the
//! socket down that channel ([`Attach`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::protocol::{ClientEvent, Close, refuse};
use crate::Relay;
use crate::org_access;
use crate::tickets::{Route, TicketClock, TicketTable};
use domain::Identity;
use domain::audit::{AuditContext, AuditKind};

/// How long a resuming socket may take to send its `resume` frame.
pub const RESUME_FRAME_WAIT: Duration = Duration::from_secs(10);

/// Largest `resume` frame read (the secret is 43 characters).
const MAX_RESUME_FRAME: usize = 512;

/// A socket handed to a live terminal, and the output offset its client has reached.
pub struct Attach {
    pub socket: Box<WebSocket>,
    pub offset: u64,
}

/// What a fresh terminal tells its client once: its id and secret.
pub struct Credentials {
    pub id: Uuid,
    pub secret: Zeroizing<String>,
}

struct Entry {
    owner: String,
    /// The machine's owner id when it is an organization's (membership re-checked on resume).
    org: Option<String>,
    secret_digest: [u8; 32],
    attach: mpsc::Sender<Attach>,
}

/// This relay's live terminals that a resume can reach.
#[derive(Default)]
pub struct Terminals {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Terminals {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Register a new terminal of `owner` (on organization `org`'s machine, if any): its
    /// credentials, and the channel its pump receives resuming sockets on.
    pub fn register(
        &self,
        owner: &str,
        org: Option<&str>,
    ) -> (Credentials, mpsc::Receiver<Attach>) {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut_slice());
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()));
        let id = Uuid::new_v4();
        let (attach, receiver) = mpsc::channel(1);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                id,
                Entry {
                    owner: owner.to_owned(),
                    org: org.map(str::to_owned),
                    secret_digest: digest(&secret),
                    attach,
                },
            );
        }
        (Credentials { id, secret }, receiver)
    }

    /// The terminal ended: no resume reaches it any more.
    pub fn remove(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    pub fn holds(&self, id: Uuid) -> bool {
        self.entries
            .lock()
            .is_ok_and(|entries| entries.contains_key(&id))
    }

    /// The terminal's owner, organization and attach channel, if `secret` is its secret.
    fn unlock(&self, id: Uuid, secret: &str) -> Option<Unlocked> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&id)?;
        let matches: bool = entry.secret_digest.ct_eq(&digest(secret)).into();
        matches.then(|| Unlocked {
            owner: entry.owner.clone(),
            org: entry.org.clone(),
            attach: entry.attach.clone(),
        })
    }
}

/// A terminal whose secret a resume presented.
struct Unlocked {
    owner: String,
    org: Option<String>,
    attach: mpsc::Sender<Attach>,
}

/// Keeps a terminal's route in the ticket table: published at open, refreshed every bucket,
/// forgotten at the end.
#[derive(Clone)]
pub struct RouteKeeper {
    pub tickets: Arc<dyn TicketTable>,
    pub clock: TicketClock,
    pub route: Route,
    pub id: Uuid,
}

impl RouteKeeper {
    /// How often [`RouteKeeper::publish`] must run for the route never to lapse.
    pub fn refresh_every(&self) -> Duration {
        Duration::from_secs(self.clock.width_secs)
    }

    /// Publish (or refresh) the route. Failure is logged: the terminal still resumes on this
    /// relay, only not through another one.
    pub async fn publish(&self) {
        if let Err(err) = self
            .tickets
            .publish_session(self.id, &self.route, self.clock.now())
            .await
        {
            tracing::warn!(error = %err, "could not publish the session route");
        }
    }

    pub async fn forget(&self) {
        if let Err(err) = self.tickets.forget_session(self.id, self.clock.now()).await {
            tracing::warn!(error = %err, "could not delete the session route");
        }
    }
}

/// Where a resume goes, decided before its first frame is read.
pub enum Destination {
    /// This relay holds the terminal.
    Here,
    /// Another relay does (route from the ticket table).
    Elsewhere(Route),
    /// Nobody does.
    Gone,
    /// The table could not be asked.
    Unknown,
}

/// Find the relay holding session `id`, refusing early a caller who is not its owner.
pub async fn locate(relay: &Relay, id: Uuid, caller: Option<&str>) -> Destination {
    if relay.terminals.holds(id) {
        return Destination::Here;
    }
    match relay.tickets.find_session(id, relay.clock.now()).await {
        Ok(Some(route)) if caller.is_some_and(|caller| caller != route.owner) => Destination::Gone,
        Ok(Some(route)) if route.relay != relay.advertise => Destination::Elsewhere(route),
        // A route naming this relay for a terminal it does not hold: it ended a moment ago.
        Ok(_) => Destination::Gone,
        Err(err) => {
            tracing::error!(error = %err, "session route lookup failed");
            Destination::Unknown
        }
    }
}

/// Read the `resume` frame, check the secret and the caller, and hand the socket to the
/// terminal. `caller` is the verified identity (cookie or hop proof), if any.
pub async fn attach_here(
    relay: &Relay,
    mut socket: WebSocket,
    id: Uuid,
    caller: Option<&str>,
    client: &AuditContext,
) {
    let Some((secret, offset)) = resume_frame(&mut socket).await else {
        return refuse(socket, Close::SessionGone, "expected a resume frame").await;
    };
    let Some(Unlocked { owner, org, attach }) = relay.terminals.unlock(id, &secret) else {
        tracing::warn!(session = %id, "resume refused: unknown session or wrong secret");
        return refuse(socket, Close::SessionGone, "session no longer exists").await;
    };
    if caller.is_some_and(|caller| caller != owner) {
        tracing::warn!(session = %id, "resume refused: another user's session");
        return refuse(socket, Close::SessionGone, "session no longer exists").await;
    }
    // Past the secret, so telling why is safe: a member removed from the organization since
    // the terminal opened does not get it back, and the terminal ends now.
    if let Some(org) = &org {
        if let Err(denied) = org_access::check(&relay.machines, &owner, org).await {
            if denied == org_access::Denied::Revoked {
                relay.org_terminals.revoke(id);
            }
            return super::refuse_denied(socket, denied).await;
        }
    }
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        attach.send(Attach {
            socket: Box::new(socket),
            offset,
        }),
    )
    .await;
    match sent {
        Ok(Ok(())) => {
            relay
                .machines
                .audit()
                .record(
                    &Identity(owner),
                    client,
                    AuditKind::SessionResumed,
                    serde_json::json!({ "session": id.to_string(), "offset": offset }),
                )
                .await;
        }
        Ok(Err(mpsc::error::SendError(Attach { socket, .. }))) => {
            refuse(*socket, Close::SessionGone, "session no longer exists").await;
        }
        // The terminal is busy taking another socket: the client retries.
        Err(_) => tracing::warn!(session = %id, "resume dropped: terminal busy"),
    }
}

/// The secret and offset of a valid first frame, within [`RESUME_FRAME_WAIT`].
async fn resume_frame(socket: &mut WebSocket) -> Option<(Zeroizing<String>, u64)> {
    let message = tokio::time::timeout(RESUME_FRAME_WAIT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = message else {
        return None;
    };
    if text.len() > MAX_RESUME_FRAME {
        return None;
    }
    match serde_json::from_str::<ClientEvent>(text.as_str()).ok()? {
        ClientEvent::Resume { secret, offset } => Some((Zeroizing::new(secret), offset)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_unlocks_a_terminal() {
        let terminals = Terminals::new();
        let (credentials, _receiver) = terminals.register("alice", None);
        assert_eq!(credentials.secret.len(), 43);
        assert!(terminals.unlock(credentials.id, "wrong").is_none());
        assert!(
            terminals
                .unlock(Uuid::new_v4(), &credentials.secret)
                .is_none()
        );
        let unlocked = terminals
            .unlock(credentials.id, &credentials.secret)
            .unwrap();
        assert_eq!(unlocked.owner, "alice");
        terminals.remove(credentials.id);
        assert!(
            terminals
                .unlock(credentials.id, &credentials.secret)
                .is_none()
        );
    }
}
