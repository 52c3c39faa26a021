//! Ending a removed member's access to organization machines on this relay: their terminals
//! (attached or parked, and with them the terminals' shares) and the tickets they have not
//! opened yet.
//!
//! Why the relay re-checks the store: a member is removed by the API, which in the cloud is
//! another process (api-fn on Lambda) with no channel to the relays. It does not speak to Redis
//! (the relays' ticket table), and it could not reach a relay's in-memory terminals if it did;
//! a push channel would also need to be reliable, or a lost message would keep a terminal open
//! for good. What the API and every relay do share is the store, where the membership is. So
//! each relay re-reads it for its own terminals, the same code in the cloud and in the
//! all-in-one `sushi` (where an in-process call would have worked, but would leave the cloud
//! unprotected and be a second path to keep right):
//! * when a ticket is opened and when a terminal is resumed, before the socket gets the
//!   terminal; a store error refuses (4011: the client may retry, the terminal stays parked);
//! * every `ORG_ACCESS_CHECK_SECS` (5) for every terminal and every unopened ticket this relay
//!   holds on an organization machine ([`sweep`]): one `role_of` read per distinct
//!   (organization, member) pair, at most [`CONCURRENT_READS`] at a time, so the cost is
//!   bounded by the relay's sessions (`MAX_SESSIONS`) and does not grow with one member's
//!   number of terminals. A store error keeps the terminals (an outage must not end every
//!   organization terminal on the relay) and is retried next period.
//!
//! A member who may no longer connect (removed, left, or made an auditor:
//! `Machines::may_still_connect`) loses the terminal with 4021; the pump ends it as any other
//! ending (its share viewers get the same close, the audit's `session_ended` carries the code).
//! An unopened ticket's SSH session is closed. So "at once" is at most one period plus one
//! store read after the removal is written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use domain::{Identity, Machines};
use futures_util::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::sessions::Sessions;
use crate::ssh;

/// Store reads one sweep runs at a time.
pub const CONCURRENT_READS: usize = 16;

/// Who a terminal on an organization machine belongs to, and how to end it.
struct Watched {
    /// The machine's owner id, `org:<slug>`.
    org: String,
    member: String,
    revoke: watch::Sender<bool>,
}

/// This relay's live terminals on organization machines.
#[derive(Default)]
pub struct OrgTerminals {
    entries: Mutex<HashMap<Uuid, Watched>>,
}

/// A terminal's registration, held by its pump: it tells the pump when access is revoked, and
/// unregisters the terminal when dropped.
pub struct Watch {
    terminals: Arc<OrgTerminals>,
    id: Uuid,
    revoked: watch::Receiver<bool>,
}

impl Watch {
    /// Resolves once the terminal's user may no longer use it; never for a terminal whose
    /// access stands.
    pub async fn revoked(&mut self) {
        if self.revoked.wait_for(|revoked| *revoked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.terminals.entries.lock() {
            entries.remove(&self.id);
        }
    }
}

/// What a terminal without a registration waits on: nothing ever comes.
pub async fn revoked(watch: &mut Option<Watch>) {
    match watch {
        Some(watch) => watch.revoked().await,
        None => std::future::pending().await,
    }
}

impl OrgTerminals {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Watch terminal `id`, opened by `member` on a machine owned by `org` (`org:<slug>`).
    pub fn watch(self: &Arc<Self>, id: Uuid, org: &str, member: &str) -> Watch {
        let (revoke, revoked) = watch::channel(false);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                id,
                Watched {
                    org: org.to_owned(),
                    member: member.to_owned(),
                    revoke,
                },
            );
        }
        Watch {
            terminals: Arc::clone(self),
            id,
            revoked,
        }
    }

    /// End terminal `id` for lack of access (a resume found it so).
    pub fn revoke(&self, id: Uuid) {
        if let Ok(entries) = self.entries.lock() {
            if let Some(watched) = entries.get(&id) {
                watched.revoke.send_replace(true);
            }
        }
    }

    /// The distinct (organization, member) pairs of the terminals watched.
    fn pairs(&self) -> HashSet<(String, String)> {
        self.entries.lock().map_or_else(
            |_| HashSet::new(),
            |entries| {
                entries
                    .values()
                    .map(|w| (w.org.clone(), w.member.clone()))
                    .collect()
            },
        )
    }

    /// End every terminal of `member` on `org`'s machines; how many there were.
    fn revoke_pair(&self, org: &str, member: &str) -> usize {
        let Ok(entries) = self.entries.lock() else {
            return 0;
        };
        let mut ended = 0;
        for watched in entries.values() {
            if watched.org == org && watched.member == member {
                watched.revoke.send_replace(true);
                ended += 1;
            }
        }
        ended
    }
}

/// Why an access check did not say yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The user no longer belongs to the organization with a role that connects.
    Revoked,
    /// The store could not be read.
    Unknown,
}

/// Whether `member` may still use a terminal on a machine owned by `org`.
pub async fn check(machines: &Machines, member: &str, org: &str) -> Result<(), Denied> {
    match machines
        .may_still_connect(&Identity(member.to_owned()), org)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Denied::Revoked),
        Err(err) => {
            tracing::warn!(error = %err, org, "organization membership could not be read");
            Err(Denied::Unknown)
        }
    }
}

/// Start the relay-wide sweep: every `period`, end the terminals and unopened tickets of users
/// who lost access. The task holds the registry weakly and ends with the relay.
pub fn spawn_sweep(
    machines: Arc<Machines>,
    sessions: Arc<Sessions>,
    terminals: &Arc<OrgTerminals>,
    period: Duration,
) {
    let terminals = Arc::downgrade(terminals);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no runtime: organization access is checked only at open and resume");
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.reset();
        loop {
            every.tick().await;
            if !sweep(&machines, &sessions, &terminals).await {
                return;
            }
        }
    });
}

/// One period's checks; `false` once the relay is gone.
async fn sweep(machines: &Machines, sessions: &Sessions, terminals: &Weak<OrgTerminals>) -> bool {
    let Some(live) = terminals.upgrade().map(|t| t.pairs()) else {
        return false;
    };
    let pending = sessions.pending_org_tickets();
    let mut pairs = live;
    pairs.extend(
        pending
            .iter()
            .map(|(_, org, member)| (org.clone(), member.clone())),
    );
    if pairs.is_empty() {
        return true;
    }
    let revoked: HashSet<(String, String)> = futures_util::stream::iter(pairs)
        .map(|(org, member)| async move {
            let denied = check(machines, &member, &org).await == Err(Denied::Revoked);
            denied.then_some((org, member))
        })
        .buffer_unordered(CONCURRENT_READS)
        .filter_map(|pair| async move { pair })
        .collect()
        .await;
    let Some(terminals) = terminals.upgrade() else {
        return false;
    };
    for (org, member) in &revoked {
        let ended = terminals.revoke_pair(org, member);
        if ended > 0 {
            tracing::info!(org, ended, "organization access removed; ending terminals");
        }
    }
    for (ticket, org, member) in pending {
        if !revoked.contains(&(org, member)) {
            continue;
        }
        if let Some(session) = sessions.take(ticket) {
            tracing::info!(
                machine_id = session.machine_id,
                "organization access removed; closing an unopened ticket's ssh"
            );
            ssh::disconnect(&session.handle).await;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoking_a_pair_ends_its_terminals_only() {
        let terminals = OrgTerminals::new();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut bobs = terminals.watch(a, "org:team", "bob");
        let mut bobs_second = terminals.watch(b, "org:team", "bob");
        let carols = terminals.watch(c, "org:team", "carol");
        assert_eq!(terminals.pairs().len(), 2);
        assert_eq!(terminals.revoke_pair("org:team", "bob"), 2);
        tokio::time::timeout(Duration::from_secs(1), bobs.revoked())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), bobs_second.revoked())
            .await
            .unwrap();
        assert!(!*carols.revoked.borrow());
        drop((bobs, bobs_second));
        assert_eq!(terminals.pairs().len(), 1, "a dropped watch unregisters");
    }
}
