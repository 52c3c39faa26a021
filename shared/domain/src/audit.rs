//! The audit log: an append-only, tamper-evident record of who did what, when and from where,
//! one hash chain per user.
//!
//! Each entry carries the SHA-256 of the previous entry of the same user (`prev_hash`) and its
//! own hash over a canonical encoding of every field, `prev_hash` included ([`entry_hash`]), so
//! changing, removing or reordering a stored entry breaks the chain at that entry and
//! [`Verifier`] names the first broken sequence number. Sequence numbers start at 1 and have no
//! gaps: an append is a conditional write that succeeds only if the sequence number is still
//! free ([`AuditLog::append`] answers `Conflict` otherwise), so appends racing from several
//! processes (Lambdas, relays) stay one linear chain; the loser reads the new tail and retries.
//!
//! Recording never fails the action it records ([`Auditor::record`]): a sign-in or a connect
//! that happened must not be refused after the fact because the log was unreachable. A failed
//! write is logged at error level and counted ([`Auditor::failures`], exported as a metric),
//! so an operator sees a gap in accountability instead of the user seeing an error.
//!
//! An organization has a chain of its own (owner `org:<slug>`, `crate::vault::org_owner_id`):
//! every event about the organization or one of its machines goes to the acting user's chain,
//! as any event does, and a copy to the organization's, naming the acting user in `actor`
//! ([`Auditor::record_in`]). The copy is a second append, not a reference to the user's entry,
//! so the organization's auditors read its chain without reading any user's, and the user's
//! chain stays complete on its own. An entry without an actor hashes exactly as before actors
//! existed ([`entry_hash`]), so chains written earlier still verify.
//!
//! The chain proves integrity against someone who can edit the store but not recompute hashes
//! from the start of a user's chain without being noticed by an earlier export; it is not a
//! signature. Keeping exports (or the table's point-in-time backups) is what anchors it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::Rng;
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::DomainError;
use crate::identity::Identity;
use crate::store::StoreError;
use crate::vault::org_owner_id;

/// Longest stored client address (an IPv6 address with a zone is under 64).
pub const MAX_IP_LEN: usize = 64;
/// Longest stored user agent; longer ones are cut at a character boundary.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// Longest stored request id (the edge accepts incoming ids up to 128 bytes).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Largest details object, as JSON text; a larger one is replaced by `{"truncated":true}`.
pub const MAX_DETAILS_LEN: usize = 1024;
/// Most entries one page may hold, and the default page.
pub const MAX_PAGE: usize = 200;
pub const DEFAULT_PAGE: usize = 50;
/// Most entries verify and export read for one user (about 1 KiB each); a longer chain is
/// reported as such rather than read without bound.
pub const MAX_CHAIN: usize = 100_000;
/// Entries read per store call while walking a chain.
pub const CHAIN_CHUNK: usize = 500;
/// The hash of "no previous entry": 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Attempts an append makes when another process took the sequence number first, and the
/// pause before each retry (randomised, so racing writers spread out).
const APPEND_ATTEMPTS: usize = 12;
const RETRY_PAUSE_MS: u64 = 15;

/// What happened. The names are the wire and storage form (`snake_case`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    SignIn,
    Logout,
    MachineCreated,
    MachineUpdated,
    MachineDeleted,
    MasterPasswordSet,
    MasterPasswordChanged,
    HostKeyPinned,
    HostKeyChanged,
    ConnectSucceeded,
    ConnectWrongPassword,
    ConnectRateLimited,
    ConnectRefused,
    SessionStarted,
    SessionResumed,
    SessionEnded,
    ShareCreated,
    ShareJoined,
    ShareRevoked,
    ControlGranted,
    ControlRevoked,
    RecordingStarted,
    RecordingFailed,
    OrgCreated,
    OrgInvited,
    OrgInvitationWithdrawn,
    OrgJoined,
    OrgRoleChanged,
    OrgMemberRemoved,
    OrgKeyCreated,
    OrgKeyGranted,
    OrgKeyRotated,
    FileTransferred,
    FileChanged,
}

impl AuditKind {
    pub const ALL: &'static [AuditKind] = &[
        Self::SignIn,
        Self::Logout,
        Self::MachineCreated,
        Self::MachineUpdated,
        Self::MachineDeleted,
        Self::MasterPasswordSet,
        Self::MasterPasswordChanged,
        Self::HostKeyPinned,
        Self::HostKeyChanged,
        Self::ConnectSucceeded,
        Self::ConnectWrongPassword,
        Self::ConnectRateLimited,
        Self::ConnectRefused,
        Self::SessionStarted,
        Self::SessionResumed,
        Self::SessionEnded,
        Self::ShareCreated,
        Self::ShareJoined,
        Self::ShareRevoked,
        Self::ControlGranted,
        Self::ControlRevoked,
        Self::RecordingStarted,
        Self::RecordingFailed,
        Self::OrgCreated,
        Self::OrgInvited,
        Self::OrgInvitationWithdrawn,
        Self::OrgJoined,
        Self::OrgRoleChanged,
        Self::OrgMemberRemoved,
        Self::OrgKeyCreated,
        Self::OrgKeyGranted,
        Self::OrgKeyRotated,
        Self::FileTransferred,
        Self::FileChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::Logout => "logout",
            Self::MachineCreated => "machine_created",
            Self::MachineUpdated => "machine_updated",
            Self::MachineDeleted => "machine_deleted",
            Self::MasterPasswordSet => "master_password_set",
            Self::MasterPasswordChanged => "master_password_changed",
            Self::HostKeyPinned => "host_key_pinned",
            Self::HostKeyChanged => "host_key_changed",
            Self::ConnectSucceeded => "connect_succeeded",
            Self::ConnectWrongPassword => "connect_wrong_password",
            Self::ConnectRateLimited => "connect_rate_limited",
            Self::ConnectRefused => "connect_refused",
            Self::SessionStarted => "session_started",
            Self::SessionResumed => "session_resumed",
            Self::SessionEnded => "session_ended",
            Self::ShareCreated => "share_created",
            Self::ShareJoined => "share_joined",
            Self::ShareRevoked => "share_revoked",
            Self::ControlGranted => "control_granted",
            Self::ControlRevoked => "control_revoked",
            Self::RecordingStarted => "recording_started",
            Self::RecordingFailed => "recording_failed",
            Self::OrgCreated => "org_created",
            Self::OrgInvited => "org_invited",
            Self::OrgInvitationWithdrawn => "org_invitation_withdrawn",
            Self::OrgJoined => "org_joined",
            Self::OrgRoleChanged => "org_role_changed",
            Self::OrgMemberRemoved => "org_member_removed",
            Self::OrgKeyCreated => "org_key_created",
            Self::OrgKeyGranted => "org_key_granted",
            Self::OrgKeyRotated => "org_key_rotated",
            Self::FileTransferred => "file_transferred",
            Self::FileChanged => "file_changed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == raw)
    }
}

/// Where a request came from, as the edge saw it; every field bounded on construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl AuditContext {
    pub fn new(ip: Option<&str>, user_agent: Option<&str>, request_id: Option<&str>) -> Self {
        Self {
            ip: ip.map(|v| bounded(v, MAX_IP_LEN)),
            user_agent: user_agent.map(|v| bounded(v, MAX_USER_AGENT_LEN)),
            request_id: request_id.map(|v| bounded(v, MAX_REQUEST_ID_LEN)),
        }
    }
}

/// `value` without control characters, cut to at most `max` bytes at a character boundary.
fn bounded(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// One stored entry. `details` is kept as the exact JSON text that was hashed, so a round trip
/// through a store can never change what the hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    #[serde(skip)]
    pub owner_id: String,
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: AuditKind,
    /// Who acted, on an organization's chain (their identity); absent on a user's own chain,
    /// whose owner is the actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(serialize_with = "details_as_json")]
    pub details: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

fn details_as_json<S: Serializer>(details: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<Value>(details) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(details),
    }
}

/// The canonical encoding: a version tag, then every field as an 8-byte big-endian length and
/// its bytes (absent optional fields as length `u64::MAX`), so no two different entries encode
/// alike whatever their fields contain.
///
/// An entry with an actor is tagged `sushi-audit-v2` and has the actor right after the owner;
/// one without is the `v1` encoding, byte for byte, so entries written before actors existed
/// keep their hashes. Adding, removing or changing an actor changes the tag or the field, so
/// the hash covers it either way.
pub fn entry_hash(entry: &AuditEntry) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(bytes) => {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        }
        None => hasher.update(u64::MAX.to_be_bytes()),
    };
    match &entry.actor {
        None => {
            field(Some(b"sushi-audit-v1"));
            field(Some(entry.owner_id.as_bytes()));
        }
        Some(actor) => {
            field(Some(b"sushi-audit-v2"));
            field(Some(entry.owner_id.as_bytes()));
            field(Some(actor.as_bytes()));
        }
    }
    field(Some(entry.seq.to_string().as_bytes()));
    field(Some(entry.at.to_string().as_bytes()));
    field(Some(entry.kind.as_str().as_bytes()));
    field(Some(entry.details.as_bytes()));
    field(entry.ip.as_deref().map(str::as_bytes));
    field(entry.user_agent.as_deref().map(str::as_bytes));
    field(entry.request_id.as_deref().map(str::as_bytes));
    field(Some(entry.prev_hash.as_bytes()));
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The entry that follows `previous` (or starts the chain), hashed; `actor` on an
/// organization's chain.
pub fn next_entry(
    previous: Option<&AuditEntry>,
    owner_id: &str,
    actor: Option<&str>,
    at: i64,
    kind: AuditKind,
    details: &Value,
    context: &AuditContext,
) -> AuditEntry {
    let mut details = details.to_string();
    if details.len() > MAX_DETAILS_LEN {
        details = r#"{"truncated":true}"#.to_owned();
    }
    let mut entry = AuditEntry {
        owner_id: owner_id.to_owned(),
        seq: previous.map_or(1, |p| p.seq + 1),
        at,
        kind,
        actor: actor.map(str::to_owned),
        details,
        ip: context.ip.clone(),
        user_agent: context.user_agent.clone(),
        request_id: context.request_id.clone(),
        prev_hash: previous.map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone()),
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    entry
}

/// The result of walking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Entries checked (up to and including the broken one).
    pub entries: u64,
    /// The first sequence number whose link does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_seq: Option<u64>,
    /// Why it does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Walks a chain oldest first, entry by entry, so a long chain is checked without holding it.
#[derive(Debug, Default)]
pub struct Verifier {
    entries: u64,
    previous: Option<(u64, String)>,
    broken: Option<(u64, &'static str)>,
}

impl Verifier {
    /// Check the next entry; once a link is broken, later entries are ignored.
    pub fn feed(&mut self, entry: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        self.entries += 1;
        let (expected_seq, expected_prev) = match &self.previous {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS),
        };
        let problem = if entry.seq != expected_seq {
            Some("sequence gap")
        } else if entry.prev_hash != expected_prev {
            Some("prev_hash does not match the previous entry")
        } else if entry_hash(entry) != entry.hash {
            Some("hash does not match the entry")
        } else {
            None
        };
        match problem {
            Some(reason) => self.broken = Some((expected_seq.min(entry.seq), reason)),
            None => self.previous = Some((entry.seq, entry.hash.clone())),
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    pub fn finish(self) -> Verification {
        Verification {
            ok: self.broken.is_none(),
            entries: self.entries,
            broken_seq: self.broken.map(|(seq, _)| seq),
            reason: self.broken.map(|(_, reason)| reason),
        }
    }
}

/// Verify a whole chain held in memory, oldest first.
pub fn verify(chain: &[AuditEntry]) -> Verification {
    let mut verifier = Verifier::default();
    for entry in chain {
        verifier.feed(entry);
    }
    verifier.finish()
}

/// The audit log's storage port: one chain per owner, keyed by sequence number.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Store `entry` if its owner has no entry with its `seq` yet; `Conflict` otherwise.
    /// Never overwrites.
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The owner's newest entry.
    async fn last(&self, owner_id: &str) -> Result<Option<AuditEntry>, StoreError>;
    /// Up to `limit` entries with `seq < before` (all, without `before`), newest first.
    async fn page(
        &self,
        owner_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// Up to `limit` entries with `seq > after`, oldest first (verify and export).
    async fn after(
        &self,
        owner_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    fn describe(&self) -> String;
}

/// Records events and reads them back; what every entry point holds.
pub struct Auditor {
    log: Option<Arc<dyn AuditLog>>,
    failures: AtomicU64,
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Auditor {
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self {
            log: Some(log),
            failures: AtomicU64::new(0),
        }
    }

    /// No audit log configured: nothing is recorded and reading answers 503.
    pub fn disabled() -> Self {
        Self {
            log: None,
            failures: AtomicU64::new(0),
        }
    }

    pub fn describe(&self) -> String {
        self.log
            .as_ref()
            .map_or_else(|| "off".to_owned(), |log| log.describe())
    }

    /// Writes that failed since start (a metric: each one is an action with no entry).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Append an event to `owner`'s chain. Never fails the caller: a failure is logged and
    /// counted (see the module doc).
    pub async fn record(
        &self,
        owner: &Identity,
        context: &AuditContext,
        kind: AuditKind,
        details: Value,
    ) {
        self.record_in(owner, None, context, kind, details).await;
    }

    /// Append an event to `actor`'s chain and, when it is about organization `org` (the
    /// organization itself or one of its machines, by slug), a copy to the organization's
    /// chain that names `actor`. Each write fails alone and as [`Auditor::record`]'s does:
    /// logged, counted, never the caller's error.
    pub async fn record_in(
        &self,
        actor: &Identity,
        org: Option<&str>,
        context: &AuditContext,
        kind: AuditKind,
        details: Value,
    ) {
        self.record_in_each(actor, org.as_slice(), context, kind, details)
            .await;
    }

    /// [`Auditor::record_in`] for an event about several organizations (a machine moved from
    /// one to another): one entry in `actor`'s chain, a copy in each organization's.
    pub async fn record_in_each(
        &self,
        actor: &Identity,
        orgs: &[&str],
        context: &AuditContext,
        kind: AuditKind,
        details: Value,
    ) {
        let Some(log) = &self.log else { return };
        self.write(log.as_ref(), &actor.0, None, context, kind, &details)
            .await;
        for slug in orgs {
            let owner = org_owner_id(slug);
            self.write(
                log.as_ref(),
                &owner,
                Some(&actor.0),
                context,
                kind,
                &details,
            )
            .await;
        }
    }

    async fn write(
        &self,
        log: &dyn AuditLog,
        owner_id: &str,
        actor: Option<&str>,
        context: &AuditContext,
        kind: AuditKind,
        details: &Value,
    ) {
        match append(log, owner_id, actor, context, kind, details).await {
            Ok(seq) => tracing::debug!(kind = kind.as_str(), seq, "audit entry written"),
            Err(err) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    kind = kind.as_str(),
                    organization = actor.is_some(),
                    error = %err,
                    "audit entry NOT written"
                );
            }
        }
    }

    fn log(&self) -> Result<&Arc<dyn AuditLog>, DomainError> {
        self.log
            .as_ref()
            .ok_or(DomainError::Store(StoreError::Unavailable(
                "no audit log is configured (AUDIT_TABLE)".to_owned(),
            )))
    }

    /// A page of `owner`'s entries, newest first, before `cursor` (a sequence number).
    pub async fn page(
        &self,
        owner: &Identity,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, DomainError> {
        let limit = limit.clamp(1, MAX_PAGE);
        Ok(self.log()?.page(&owner.0, cursor, limit).await?)
    }

    /// The next chunk of `owner`'s chain after `after`, oldest first (export).
    pub async fn chunk(
        &self,
        owner: &Identity,
        after: u64,
    ) -> Result<Vec<AuditEntry>, DomainError> {
        Ok(self.log()?.after(&owner.0, after, CHAIN_CHUNK).await?)
    }

    /// Walk `owner`'s whole chain (at most [`MAX_CHAIN`] entries) and report the first break.
    pub async fn verify(&self, owner: &Identity) -> Result<Verification, DomainError> {
        let log = self.log()?;
        let mut verifier = Verifier::default();
        let mut after = 0;
        let mut read = 0;
        while read < MAX_CHAIN && !verifier.is_broken() {
            let chunk = log.after(&owner.0, after, CHAIN_CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = last.seq;
            read += chunk.len();
            chunk.iter().for_each(|entry| verifier.feed(entry));
        }
        Ok(verifier.finish())
    }
}

/// Read the tail, build the next entry, write it conditionally; on a lost race, again.
async fn append(
    log: &dyn AuditLog,
    owner_id: &str,
    actor: Option<&str>,
    context: &AuditContext,
    kind: AuditKind,
    details: &Value,
) -> Result<u64, StoreError> {
    for _ in 0..APPEND_ATTEMPTS {
        let last = log.last(owner_id).await?;
        let entry = next_entry(
            last.as_ref(),
            owner_id,
            actor,
            now_millis(),
            kind,
            details,
            context,
        );
        match log.append(&entry).await {
            Ok(()) => return Ok(entry.seq),
            Err(StoreError::Conflict) => {
                let pause = rand::thread_rng().gen_range(1..=RETRY_PAUSE_MS * 2);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Unavailable(format!(
        "audit chain still contended after {APPEND_ATTEMPTS} attempts"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let context = AuditContext::new(Some("127.0.0.1"), Some("test"), Some("req-1"));
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let entry = next_entry(
                out.last(),
                "alice@example.com",
                None,
                1_700_000_000_000 + i as i64,
                AuditKind::MachineCreated,
                &serde_json::json!({"machine_id": i}),
                &context,
            );
            out.push(entry);
        }
        out
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let verification = verify(&chain(5));
        assert!(verification.ok);
        assert_eq!(verification.entries, 5);
        assert_eq!(verification.broken_seq, None);
        assert!(verify(&[]).ok);
    }

    #[test]
    fn a_changed_field_breaks_the_chain_at_that_entry() {
        let mut entries = chain(5);
        entries[2].details = r#"{"machine_id":99}"#.to_owned();
        let verification = verify(&entries);
        assert!(!verification.ok);
        assert_eq!(verification.broken_seq, Some(3));
        assert_eq!(verification.reason, Some("hash does not match the entry"));
    }

    #[test]
    fn a_rehashed_entry_breaks_the_next_link() {
        let mut entries = chain(5);
        entries[1].ip = Some("10.0.0.1".to_owned());
        entries[1].hash = entry_hash(&entries[1]);
        let verification = verify(&entries);
        assert_eq!(verification.broken_seq, Some(3));
        assert_eq!(
            verification.reason,
            Some("prev_hash does not match the previous entry")
        );
    }

    #[test]
    fn a_removed_entry_is_a_gap() {
        let mut entries = chain(5);
        entries.remove(3);
        let verification = verify(&entries);
        assert_eq!(verification.broken_seq, Some(4));
        assert_eq!(verification.reason, Some("sequence gap"));
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut entries = chain(1);
        let with_none = entry_hash(&entries[0]);
        entries[0].user_agent = None;
        let absent = entry_hash(&entries[0]);
        entries[0].user_agent = Some(String::new());
        assert_ne!(with_none, absent);
        assert_ne!(absent, entry_hash(&entries[0]));
    }

    #[test]
    fn context_and_details_are_bounded() {
        let long = "a".repeat(1000);
        let context = AuditContext::new(Some(&long), Some(&format!("ua\n{long}")), Some(&long));
        assert_eq!(context.ip.as_deref().map(str::len), Some(MAX_IP_LEN));
        assert_eq!(
            context.user_agent.as_deref().map(str::len),
            Some(MAX_USER_AGENT_LEN)
        );
        assert!(!context.user_agent.unwrap_or_default().contains('\n'));
        let entry = next_entry(
            None,
            "alice@example.com",
            None,
            0,
            AuditKind::SignIn,
            &serde_json::json!({ "big": long.repeat(2) }),
            &AuditContext::default(),
        );
        assert_eq!(entry.details, r#"{"truncated":true}"#);
        assert_eq!(entry.prev_hash, GENESIS);
    }

    fn first_entry(owner: &str, actor: Option<&str>) -> AuditEntry {
        next_entry(
            None,
            owner,
            actor,
            1_700_000_000_000,
            AuditKind::MachineCreated,
            &serde_json::json!({"machine_id": 1}),
            &AuditContext::new(Some("127.0.0.1"), Some("test"), Some("req-1")),
        )
    }

    /// The hashes were computed outside this code, from the encoding docs/audit.md states: an
    /// entry without an actor hashes as entries did before actors existed, so old chains
    /// still verify; one with an actor has its own tag and covers the actor.
    #[test]
    fn an_entry_without_actor_hashes_as_before_and_one_with_actor_as_v2() {
        let user = first_entry("alice@example.com", None);
        assert_eq!(
            user.hash,
            "c2c275dfc07e0bd631319631413c68fa0047e803be29b1e2a954cb404006eddc"
        );
        let org = first_entry("org:platform", Some("alice@example.com"));
        assert_eq!(
            org.hash,
            "84eca71d62d4a998bb51bf1e2af135f98d81dba645680475b359cfc8ab85811a"
        );
    }

    #[test]
    fn the_actor_is_covered_by_the_hash() {
        let entry = first_entry("org:platform", Some("alice@example.com"));
        assert!(verify(std::slice::from_ref(&entry)).ok);
        let mut changed = entry.clone();
        changed.actor = Some("mallory@example.com".to_owned());
        assert_eq!(verify(&[changed]).broken_seq, Some(1));
        let mut removed = entry.clone();
        removed.actor = None;
        assert_eq!(verify(&[removed]).broken_seq, Some(1));
        let mut added = first_entry("org:platform", None);
        added.actor = Some("alice@example.com".to_owned());
        assert_eq!(verify(&[added]).broken_seq, Some(1));
    }

    #[test]
    fn a_chain_mixing_entries_with_and_without_actor_verifies() {
        let context = AuditContext::default();
        let mut entries: Vec<AuditEntry> = Vec::new();
        for (i, actor) in [
            None,
            Some("bob@example.com"),
            None,
            Some("carol@example.com"),
        ]
        .into_iter()
        .enumerate()
        {
            let entry = next_entry(
                entries.last(),
                "org:platform",
                actor,
                i as i64,
                AuditKind::OrgJoined,
                &serde_json::json!({}),
                &context,
            );
            entries.push(entry);
        }
        assert!(verify(&entries).ok);
        let listed = serde_json::to_value(&entries[1]).unwrap_or_default();
        assert_eq!(listed["actor"], "bob@example.com");
        let listed = serde_json::to_value(&entries[0]).unwrap_or_default();
        assert!(listed.get("actor").is_none());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(Value::String(kind.as_str().to_owned()))
            );
        }
    }
}
