//! The Machines domain operations: what a request *means*, independent of HTTP and of which
//! store or key provider is configured. api-fn's handlers and the relay's connect call these
//! and only map the result.
//!
//! Writes are ordered so that nothing is ever half-written: create validates, checks the vault,
//! seals (the KMS call) and only then performs its single conditional insert; a failure before
//! that leaves at most an unused id behind. The insert is conditional on the vault still being
//! at the generation the secrets were sealed to, so a create racing a master-password change
//! either lands before the change lists the machines (and is re-sealed with them) or is sealed
//! again to the new key; no machine is ever left on a key that no longer exists.
//!
//! Every key derivation (Argon2id, and decrypting an uploaded private key) runs through the
//! [`KdfGate`]: off the runtime, within the process's memory budget. Every master-password check
//! first reserves an attempt from the user's guess budget ([`AttemptLimiter`]).
//!
//! Every change to an account (machine created or deleted, master password set or changed,
//! host key pinned or changed) is recorded in the audit log here, after it took effect, so every
//! entry point (the API, the relay, the local binary) records it the same way; the caller passes
//! where the request came from ([`AuditContext`]). A change to an organization's machine is also
//! recorded in the organization's log ([`Auditor::record_in`]), naming who made it.
//!
//! Organization machines (owner `org:<slug>`, see `vault::org_owner_id`) go through the same
//! operations: [`Machines::resolve`] finds a machine among the caller's own and then among
//! their organizations', and says with which role; someone who is neither owner nor member
//! gets the 404 of a missing machine. The organization's key (create, grant, rotation) lives
//! in [`org_keys`]; who reads an organization machine's recordings in [`org_recordings`], and
//! its audit log in [`org_audit`]. Moving a machine between its owners (the caller and
//! organizations they manage) is in [`transfer`].
//!
//! Errors are [`DomainError`]s; which HTTP status and code each becomes is the edge's business.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use serde_json::json;

use crate::audit::{AuditContext, AuditKind, Auditor};
use crate::error::DomainError;
use crate::identity::Identity;
use crate::kdf::KdfGate;
use crate::keys::KeyProvider;
use crate::limiter::{AttemptLimiter, Reservation};
use crate::machine::{Machine, MachineSummary, MachineView};
use crate::orgs::{OrgStore, Organizations, Role, Slug};
use crate::recording::Recordings;
use crate::requests::{MachinePatch, MasterPasswordChange, NewMachine};
use crate::secret::MachineSecrets;
use crate::sshkey;
use crate::store::{Store, StoreError, VaultPrecondition};
use crate::vault::{self, UnlockedVault, VaultError, VaultRecord, org_owner_id};

mod org_audit;
mod org_keys;
mod org_recordings;
mod transfer;
pub use org_keys::{OrgKeyRotation, OrgKeyStatus};
pub use org_recordings::RecordingUse;

/// How the caller reaches a machine: their own, or through an organization with a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Own,
    Org { slug: Slug, role: Role },
}

impl Access {
    /// Whether the caller may edit, delete or re-pin the machine (owners and admins of an
    /// organization; always for one's own).
    fn manages(&self) -> bool {
        match self {
            Access::Own => true,
            Access::Org { role, .. } => role.manages_members(),
        }
    }

    fn require_manager(&self, what: &str) -> Result<(), DomainError> {
        match self {
            Access::Org { role, .. } if !self.manages() => {
                Err(DomainError::Forbidden(Cow::Owned(format!(
                    "An organization {} may not {what} its machines",
                    role.as_str()
                ))))
            }
            _ => Ok(()),
        }
    }
}

pub struct Machines {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyProvider>,
    limiter: Arc<dyn AttemptLimiter>,
    kdf: Arc<KdfGate>,
    audit: Arc<Auditor>,
    max_per_user: usize,
    /// Session recordings (see `recording`), when the deployment wired them.
    recordings: Option<Arc<Recordings>>,
    /// Organizations (see `orgs`), when the deployment wired them.
    orgs: Option<Arc<Organizations>>,
}

/// How many times create seals again when the vault rotated under it before giving up (409).
const CREATE_ATTEMPTS: usize = 4;
/// How many passes a master-password change makes over the machines still on the old key.
const RESEAL_PASSES: usize = 5;
/// How long an attempt waits for slots held by attempts in flight (an Argon2id each, tens of
/// milliseconds) before answering 429, and its polling pauses.
const SATURATED_WAIT: Duration = Duration::from_secs(5);
const SATURATED_FIRST_PAUSE: Duration = Duration::from_millis(25);
const SATURATED_MAX_PAUSE: Duration = Duration::from_millis(400);

/// What `PUT /api/v1/master-password` did.
#[derive(Debug, Serialize)]
pub struct MasterPasswordOutcome {
    #[serde(skip)]
    pub changed: bool,
    /// Machines whose secrets were re-sealed to the new key pair.
    pub resealed: usize,
    /// Machines whose secrets did not open with the old key (a corrupt or tampered record):
    /// reported rather than aborting the change, so one bad record cannot block it forever.
    pub unopenable: Vec<u64>,
}

/// `current` with the patch's fields applied (the pin is the caller's business).
fn patched(current: &MachineSummary, patch: &MachinePatch) -> MachineSummary {
    let mut updated = current.clone();
    if let Some(name) = &patch.name {
        updated.name.clone_from(name);
    }
    if let Some(hostname) = &patch.hostname {
        updated.hostname.clone_from(hostname);
    }
    if let Some(port) = patch.port {
        updated.port = port;
    }
    if let Some(username) = &patch.username {
        updated.username.clone_from(username);
    }
    if let Some(organization) = &patch.organization {
        updated.organization.clone_from(organization);
    }
    if let Some(persistent_shell) = patch.persistent_shell {
        updated.persistent_shell = persistent_shell;
    }
    if let Some(recording) = patch.recording {
        updated.recording = recording;
    }
    if let Some(record_input) = patch.record_input {
        updated.record_input = record_input;
    }
    updated
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Machines {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<dyn KeyProvider>,
        limiter: Arc<dyn AttemptLimiter>,
        kdf: Arc<KdfGate>,
        audit: Arc<Auditor>,
        max_per_user: usize,
    ) -> Self {
        Self {
            store,
            keys,
            limiter,
            kdf,
            audit,
            max_per_user,
            recordings: None,
            orgs: None,
        }
    }

    /// The same service with session recordings.
    pub fn with_recordings(mut self, recordings: Arc<Recordings>) -> Self {
        self.recordings = Some(recordings);
        self
    }

    /// Session recordings: the relay writes them, the API lists, fetches and deletes them.
    /// Organizations on `store`, writing to this service's audit log.
    pub fn with_orgs(mut self, store: Arc<dyn OrgStore>) -> Self {
        self.orgs = Some(Arc::new(Organizations::new(store, Arc::clone(&self.audit))));
        self
    }

    pub fn orgs(&self) -> Option<&Arc<Organizations>> {
        self.orgs.as_ref()
    }

    pub fn recordings(&self) -> Option<&Arc<Recordings>> {
        self.recordings.as_ref()
    }

    /// The audit log, for events outside this service (sign-in, connect, terminal sessions).
    pub fn audit(&self) -> &Arc<Auditor> {
        &self.audit
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key provider (KMS or the local key file) machine secrets are sealed with.
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.keys
    }

    /// The process's key-derivation gate, for KDFs outside the vault (the relay decrypting a
    /// stored private key at connect).
    pub fn kdf(&self) -> &Arc<KdfGate> {
        &self.kdf
    }

    /// Run vault work (Argon2id) through the gate, weighted by the memory its KDF asks for.
    async fn vault_work<T: Send + 'static>(
        &self,
        memory_mib: u32,
        work: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
    ) -> Result<T, DomainError> {
        self.kdf
            .run(memory_mib, work)
            .await?
            .map_err(DomainError::from)
    }

    /// Refuse a private key that does not decode, or whose passphrase does not decrypt it,
    /// with 400: decoding may run its KDF (bounded by `sshkey`), so it runs through the gate.
    async fn check_private_key(&self, secrets: &MachineSecrets) -> Result<(), DomainError> {
        let Some(key) = &secrets.private_key else {
            return Ok(());
        };
        let key = SecretString::from(key.expose_secret().to_owned());
        let passphrase = secrets
            .passphrase
            .as_ref()
            .map(|p| SecretString::from(p.expose_secret().to_owned()));
        let weight = sshkey::kdf_memory_mib(key.expose_secret());
        self.kdf
            .run(weight, move || {
                sshkey::parse_private_key(
                    key.expose_secret(),
                    passphrase.as_ref().map(|p| p.expose_secret()),
                )
            })
            .await?
            .map_err(|problem| DomainError::invalid(problem.to_string()))
    }

    pub async fn create(
        &self,
        owner: &Identity,
        context: &AuditContext,
        new: NewMachine,
    ) -> Result<MachineView, DomainError> {
        let key = match &new.owner_org {
            None => {
                if self.store.get_vault(&owner.0).await?.is_none() {
                    return Err(DomainError::MasterPasswordRequired);
                }
                owner.0.clone()
            }
            Some(slug) => {
                let role = self.org_service()?.role_of_caller(owner, slug).await?;
                Access::Org {
                    slug: slug.clone(),
                    role,
                }
                .require_manager("create")?;
                self.ensure_org_key(owner, context, slug).await?;
                org_owner_id(slug.as_str())
            }
        };
        if self.store.count_machines(&key).await? >= self.max_per_user {
            return Err(DomainError::MachineLimit {
                limit: self.max_per_user,
            });
        }
        self.check_private_key(&new.secrets).await?;
        for _ in 0..CREATE_ATTEMPTS {
            let vault = self
                .store
                .get_vault(&key)
                .await?
                .ok_or(DomainError::MasterPasswordRequired)?;
            let id = self.store.next_machine_id().await?;
            let sealed = vault::seal(self.keys.as_ref(), &vault, id, &new.secrets).await?;
            let machine = Machine {
                id,
                owner_id: key.clone(),
                name: new.name.clone(),
                hostname: new.hostname.clone(),
                port: new.port,
                username: new.username.clone(),
                organization: new.organization.clone(),
                host_key_fingerprint: new.host_key_fingerprint.clone(),
                persistent_shell: new.persistent_shell,
                recording: new.recording,
                record_input: new.record_input,
                sealed,
                created_at: now_secs(),
            };
            match self.store.insert_machine(&machine).await {
                Ok(()) => {
                    tracing::info!(machine_id = id, "machine created");
                    let details = json!({
                        "machine_id": id,
                        "name": machine.name,
                        "hostname": machine.hostname,
                        "port": machine.port,
                        "username": machine.username,
                        "org": new.owner_org,
                    });
                    self.audit
                        .record_in(
                            owner,
                            new.owner_org.as_ref().map(Slug::as_str),
                            context,
                            AuditKind::MachineCreated,
                            details,
                        )
                        .await;
                    return Ok(MachineView::from(machine));
                }
                // The vault rotated while we sealed: seal again, to the new key.
                Err(StoreError::Conflict) => {
                    tracing::info!(
                        machine_id = id,
                        "vault rotated during create; sealing again"
                    );
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(DomainError::Conflict(Cow::Borrowed(
            "The master password was changed concurrently; retry",
        )))
    }

    /// The caller's machines, then those of each of their organizations (by slug); with
    /// `organization`, only that organization's (404 `org_not_found` for a non-member).
    pub async fn list(
        &self,
        owner: &Identity,
        organization: Option<&Slug>,
    ) -> Result<Vec<MachineView>, DomainError> {
        let mut owners = Vec::new();
        match organization {
            Some(slug) => {
                self.org_service()?.role_of_caller(owner, slug).await?;
                owners.push(org_owner_id(slug.as_str()));
            }
            None => {
                owners.push(owner.0.clone());
                if let Some(orgs) = &self.orgs {
                    for membership in orgs.store().memberships_of(&owner.0).await? {
                        owners.push(org_owner_id(membership.slug.as_str()));
                    }
                }
            }
        }
        let mut views = Vec::new();
        for key in owners {
            let machines = self.store.list_summaries(&key).await?;
            views.extend(machines.into_iter().map(MachineView::from));
        }
        Ok(views)
    }

    pub async fn get(&self, owner: &Identity, id: u64) -> Result<MachineView, DomainError> {
        self.load(owner, id).await.map(MachineView::from)
    }

    /// The stored machine, or the same 404 whether it is missing or someone else's.
    pub async fn load(&self, owner: &Identity, id: u64) -> Result<Machine, DomainError> {
        self.resolve(owner, id).await.map(|(machine, _)| machine)
    }

    /// The machine `id` as the caller reaches it: their own first, then each of their
    /// organizations' (at most the per-user organization bound, one read each). A machine
    /// that is neither is the same 404 as a missing one, so ids cannot be probed.
    pub async fn resolve(
        &self,
        caller: &Identity,
        id: u64,
    ) -> Result<(Machine, Access), DomainError> {
        if let Some(machine) = self.store.get_machine(&caller.0, id).await? {
            return Ok((machine, Access::Own));
        }
        if let Some(orgs) = &self.orgs {
            for membership in orgs.store().memberships_of(&caller.0).await? {
                let key = org_owner_id(membership.slug.as_str());
                if let Some(machine) = self.store.get_machine(&key, id).await? {
                    let access = Access::Org {
                        slug: membership.slug,
                        role: membership.role,
                    };
                    return Ok((machine, access));
                }
            }
        }
        Err(DomainError::MachineNotFound)
    }

    /// Whether `member` may still use a terminal opened on a machine owned by `machine_owner`:
    /// on their own machine, always; on an organization's, while they belong to it with a role
    /// that connects (one store read). The relay asks this for as long as a terminal lives,
    /// since removing a member happens in the API, another process.
    pub async fn may_still_connect(
        &self,
        member: &Identity,
        machine_owner: &str,
    ) -> Result<bool, DomainError> {
        let Some(slug) = vault::org_slug_of(machine_owner) else {
            return Ok(machine_owner == member.0);
        };
        let Some(orgs) = &self.orgs else {
            return Ok(false);
        };
        let role = orgs.store().role_of(&Slug::parse(slug)?, &member.0).await?;
        Ok(role.is_some_and(Role::connects))
    }

    /// The organizations service, or the 404 of an organization when none is wired.
    fn org_service(&self) -> Result<&Arc<Organizations>, DomainError> {
        self.orgs.as_ref().ok_or(DomainError::OrgNotFound)
    }

    /// `PATCH`: change some of a machine's fields. Only the fields that differ are written,
    /// each on the condition that it still holds what this edit read, so a concurrent edit of
    /// another field is kept and one of the same field answers 409 instead of being lost.
    /// Moving a machine whose host key is pinned (hostname or port) clears the pin and needs
    /// the master password, as clearing a pin does; new secrets are sealed as a create seals
    /// them, to the vault generation the write is conditioned on. Naming another owner
    /// (`owner_type`) moves the machine to it instead ([`transfer`]).
    pub async fn update(
        &self,
        owner: &Identity,
        context: &AuditContext,
        id: u64,
        patch: MachinePatch,
    ) -> Result<MachineView, DomainError> {
        let (machine, access) = self.resolve(owner, id).await?;
        access.require_manager("edit")?;
        if Self::moves_owner(owner, &machine, &patch) {
            return self.transfer(owner, context, machine, access, patch).await;
        }
        if matches!(access, Access::Org { .. })
            && patch
                .organization
                .as_ref()
                .is_some_and(|label| *label != machine.organization)
        {
            return Err(DomainError::invalid(
                "organization names the organization that owns this machine; it cannot change",
            ));
        }
        let key = machine.owner_id.clone();
        let current = MachineSummary::from(machine);
        let mut updated = patched(&current, &patch);
        let moves = updated.hostname != current.hostname || updated.port != current.port;
        if moves && current.host_key_fingerprint.is_some() {
            let password = patch.master_password.ok_or_else(|| {
                DomainError::invalid(
                    "master_password is required to move a machine with a pinned host key \
                     to another hostname or port (the pin is cleared)",
                )
            })?;
            let vault = self
                .store
                .get_vault(&owner.0)
                .await?
                .ok_or(DomainError::MasterPasswordNotSet)?;
            self.unlock(owner, &vault, password).await?;
            updated.host_key_fingerprint = None;
        }
        if let Some(secrets) = &patch.secrets {
            self.check_private_key(secrets).await?;
        }
        let changes = current.changes_to(&updated);
        for _ in 0..CREATE_ATTEMPTS {
            let sealed = match &patch.secrets {
                Some(secrets) => {
                    let vault = self
                        .store
                        .get_vault(&key)
                        .await?
                        .ok_or(DomainError::MasterPasswordNotSet)?;
                    Some(vault::seal(self.keys.as_ref(), &vault, id, secrets).await?)
                }
                None => None,
            };
            let written = self
                .store
                .update_machine(&key, id, &changes, sealed.as_ref())
                .await;
            match written {
                Ok(true) => {
                    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
                    tracing::info!(machine_id = id, ?fields, "machine updated");
                    let details = json!({
                        "machine_id": id,
                        "fields": fields,
                        "secrets_replaced": sealed.is_some(),
                    });
                    self.audit
                        .record_in(
                            owner,
                            vault::org_slug_of(&key),
                            context,
                            AuditKind::MachineUpdated,
                            details,
                        )
                        .await;
                    // Read back: a concurrent edit of other fields is part of the answer.
                    return self.get(owner, id).await;
                }
                Ok(false) => return Err(DomainError::MachineNotFound),
                // The vault rotated while we sealed: seal again, to the new key.
                Err(StoreError::Conflict) if self.vault_moved(&key, sealed.as_ref()).await? => {
                    tracing::info!(machine_id = id, "vault rotated during edit; sealing again");
                }
                Err(StoreError::Conflict) => {
                    return Err(DomainError::Conflict(Cow::Borrowed(
                        "The machine was changed concurrently; reload it and retry",
                    )));
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(DomainError::Conflict(Cow::Borrowed(
            "The master password was changed concurrently; retry",
        )))
    }

    /// Whether the owner's vault is no longer at the generation `sealed` was sealed to.
    async fn vault_moved(
        &self,
        key: &str,
        sealed: Option<&crate::machine::SealedSecrets>,
    ) -> Result<bool, DomainError> {
        let Some(sealed) = sealed else {
            return Ok(false);
        };
        let vault = self.store.get_vault(key).await?;
        Ok(vault.is_none_or(|vault| vault.generation != sealed.vault_gen))
    }

    pub async fn delete(
        &self,
        owner: &Identity,
        context: &AuditContext,
        id: u64,
    ) -> Result<(), DomainError> {
        let (machine, access) = self.resolve(owner, id).await?;
        access.require_manager("delete")?;
        if self.store.delete_machine(&machine.owner_id, id).await? {
            tracing::info!(machine_id = id, "machine deleted");
            self.audit
                .record_in(
                    owner,
                    vault::org_slug_of(&machine.owner_id),
                    context,
                    AuditKind::MachineDeleted,
                    json!({ "machine_id": id }),
                )
                .await;
            Ok(())
        } else {
            Err(DomainError::MachineNotFound)
        }
    }

    /// Set the master password, or change it (which re-seals every machine of the user).
    pub async fn set_master_password(
        &self,
        owner: &Identity,
        context: &AuditContext,
        change: MasterPasswordChange,
    ) -> Result<MasterPasswordOutcome, DomainError> {
        let MasterPasswordChange { password, current } = change;
        let Some(stored) = self.store.get_vault(&owner.0).await? else {
            let owner_id = owner.0.clone();
            let created = self
                .vault_work(vault::FRESH_MEMORY_MIB, move || {
                    VaultRecord::create(&owner_id, &password)
                })
                .await?;
            return match self
                .store
                .put_vault(&created, VaultPrecondition::Absent)
                .await
            {
                Ok(()) => {
                    self.audit
                        .record(owner, context, AuditKind::MasterPasswordSet, json!({}))
                        .await;
                    Ok(MasterPasswordOutcome {
                        changed: false,
                        resealed: 0,
                        unopenable: Vec::new(),
                    })
                }
                Err(StoreError::Conflict) => Err(DomainError::Conflict(Cow::Borrowed(
                    "A master password was set concurrently; retry with current_password",
                ))),
                Err(other) => Err(other.into()),
            };
        };
        let current = current.ok_or_else(|| {
            DomainError::invalid("current_password is required to change the master password")
        })?;
        let unlocked = self.unlock(owner, &stored, current).await?;
        // An earlier change may have stopped half-way: finish it before starting another.
        let stored = self.finish_rotation(owner, &stored, &unlocked).await?;
        let rotated = {
            let (stored, unlocked_ref) = (stored.clone(), Arc::clone(&unlocked));
            self.vault_work(vault::FRESH_MEMORY_MIB, move || {
                stored.rotate(&unlocked_ref, &password)
            })
            .await?
        };
        self.store
            .put_vault(&rotated, VaultPrecondition::matching(&stored))
            .await
            .map_err(|err| match err {
                StoreError::Conflict => DomainError::Conflict(Cow::Borrowed(
                    "The master password was changed concurrently; retry",
                )),
                other => other.into(),
            })?;
        let (resealed, unopenable) = self.reseal_all(&owner.0, &unlocked, &rotated).await?;
        self.reseal_org_copies(owner, &unlocked, &rotated).await?;
        self.store
            .put_vault(
                &rotated.without_previous(),
                VaultPrecondition::matching(&rotated),
            )
            .await?;
        tracing::info!(
            resealed,
            unopenable = unopenable.len(),
            generation = rotated.generation,
            "master password changed"
        );
        let details = json!({ "resealed": resealed, "unopenable": unopenable.len() });
        self.audit
            .record(owner, context, AuditKind::MasterPasswordChanged, details)
            .await;
        Ok(MasterPasswordOutcome {
            changed: true,
            resealed,
            unopenable,
        })
    }

    /// Re-seal every machine not yet on `target`'s generation and drop `target.previous`.
    async fn finish_rotation(
        &self,
        owner: &Identity,
        target: &VaultRecord,
        unlocked: &UnlockedVault,
    ) -> Result<VaultRecord, DomainError> {
        if target.previous.is_none() {
            return Ok(target.clone());
        }
        self.reseal_all(&owner.0, unlocked, target).await?;
        self.reseal_org_copies(owner, unlocked, target).await?;
        let finished = target.without_previous();
        self.store
            .put_vault(&finished, VaultPrecondition::matching(target))
            .await?;
        Ok(finished)
    }

    /// Re-seal every machine not on `target`'s generation, listing again until a pass finds
    /// none left (a create that committed before the rotation may appear after the first
    /// listing was read). Machines whose secrets do not open are reported, not fatal.
    async fn reseal_all(
        &self,
        owner: &str,
        unlocked: &UnlockedVault,
        target: &VaultRecord,
    ) -> Result<(usize, Vec<u64>), DomainError> {
        let mut resealed = 0;
        let mut unopenable = Vec::new();
        for _ in 0..RESEAL_PASSES {
            let behind: Vec<Machine> = self
                .store
                .list_machines(owner)
                .await?
                .into_iter()
                .filter(|m| m.sealed.vault_gen != target.generation)
                .filter(|m| !unopenable.contains(&m.id))
                .collect();
            if behind.is_empty() {
                return Ok((resealed, unopenable));
            }
            for machine in behind {
                let sealed = match unlocked.reseal(machine.id, &machine.sealed, target) {
                    Ok(sealed) => sealed,
                    Err(err) => {
                        tracing::error!(machine_id = machine.id, error = %err, "machine secrets do not open; left on the old key");
                        unopenable.push(machine.id);
                        continue;
                    }
                };
                if self
                    .store
                    .replace_sealed(owner, machine.id, machine.sealed.vault_gen, &sealed)
                    .await?
                {
                    resealed += 1;
                }
            }
        }
        Err(DomainError::Conflict(Cow::Borrowed(
            "Machines kept appearing on the old key; retry the change",
        )))
    }

    /// Take one attempt from the owner's guess budget before a master password is checked.
    /// While every slot is held by attempts still being checked (several terminals opened at
    /// once), wait for them to resolve, briefly; only spent failures answer 429 at once.
    async fn reserve_attempt(&self, owner: &Identity) -> Result<(), DomainError> {
        let mut pause = SATURATED_FIRST_PAUSE;
        let deadline = tokio::time::Instant::now() + SATURATED_WAIT;
        loop {
            match self.limiter.reserve(&owner.0).await? {
                Reservation::Granted => return Ok(()),
                Reservation::Refused { retry_after } => {
                    tracing::warn!(
                        retry_after_secs = retry_after.as_secs(),
                        "master-password guess budget spent"
                    );
                    return Err(DomainError::TooManyAttempts {
                        retry_after_secs: retry_after.as_secs().max(1),
                    });
                }
                Reservation::Saturated if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SATURATED_MAX_PAUSE);
                }
                Reservation::Saturated => {
                    return Err(DomainError::TooManyAttempts {
                        retry_after_secs: 1,
                    });
                }
            }
        }
    }

    /// Unlock `vault` with `password`: one attempt is reserved first (so parallel guesses
    /// cannot all be evaluated); a correct password clears the owner's window, a wrong one
    /// counts as a failure, and one that could not be checked gives its slot back.
    async fn unlock(
        &self,
        owner: &Identity,
        vault: &VaultRecord,
        password: SecretString,
    ) -> Result<Arc<UnlockedVault>, DomainError> {
        self.reserve_attempt(owner).await?;
        let record = vault.clone();
        match self
            .vault_work(vault.kdf_memory_mib(), move || record.unlock(&password))
            .await
        {
            Ok(unlocked) => {
                self.limiter.clear(&owner.0).await;
                Ok(Arc::new(unlocked))
            }
            Err(DomainError::InvalidMasterPassword) => {
                tracing::warn!("wrong master password");
                self.limiter.record_failure(&owner.0).await;
                Err(DomainError::InvalidMasterPassword)
            }
            Err(other) => {
                self.limiter.release(&owner.0).await;
                Err(other)
            }
        }
    }

    /// Everything connect needs: the machine and its opened secrets. The master password is
    /// checked (GCM tag) before the key provider is called and long before any SSH attempt.
    pub async fn open(
        &self,
        owner: &Identity,
        id: u64,
        master_password: SecretString,
    ) -> Result<(Machine, MachineSecrets), DomainError> {
        let (machine, access) = self.resolve(owner, id).await?;
        let unlocked = match &access {
            Access::Own => {
                let vault = self
                    .store
                    .get_vault(&owner.0)
                    .await?
                    .ok_or(DomainError::MasterPasswordNotSet)?;
                self.unlock(owner, &vault, master_password).await?
            }
            Access::Org { role, .. } if !role.connects() => {
                return Err(DomainError::Forbidden(Cow::Borrowed(
                    "An organization auditor may not connect to its machines",
                )));
            }
            Access::Org { .. } => {
                self.open_org_key(owner, &machine.owner_id, master_password)
                    .await?
            }
        };
        let secrets = unlocked
            .open(self.keys.as_ref(), machine.id, &machine.sealed)
            .await?;
        Ok((machine, secrets))
    }

    /// `PUT host-key`: pin, re-pin or clear (`new = None`) a machine's host key. Pinning a
    /// machine that has no pin needs only the session; replacing or clearing a pin needs the
    /// master password (one guess from the budget), because that is what a stolen session would
    /// do to send the user's credentials to another host.
    pub async fn change_host_key(
        &self,
        owner: &Identity,
        context: &AuditContext,
        id: u64,
        new: Option<&str>,
        master_password: Option<SecretString>,
    ) -> Result<MachineView, DomainError> {
        let (machine, access) = self.resolve(owner, id).await?;
        access.require_manager("re-pin host keys of")?;
        let current = machine.host_key_fingerprint.as_deref();
        if current == new {
            return Ok(MachineView::from(machine));
        }
        if current.is_some() {
            let password = master_password.ok_or_else(|| {
                DomainError::invalid(
                    "master_password is required to replace or clear a pinned host key",
                )
            })?;
            let vault = self
                .store
                .get_vault(&owner.0)
                .await?
                .ok_or(DomainError::MasterPasswordNotSet)?;
            self.unlock(owner, &vault, password).await?;
        }
        self.set_host_key(owner, context, id, current, new).await?;
        tracing::info!(
            machine_id = id,
            pinned = new.is_some(),
            replaced = current.is_some(),
            "host key pin set"
        );
        self.get(owner, id).await
    }

    /// Compare-and-set the host key pin (trust on first use at connect, and `change_host_key`),
    /// recorded as `host_key_pinned` (no pin before) or `host_key_changed` (replaced, cleared).
    pub async fn set_host_key(
        &self,
        owner: &Identity,
        context: &AuditContext,
        id: u64,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), DomainError> {
        let (machine, _) = self.resolve(owner, id).await?;
        match self
            .store
            .set_host_key(&machine.owner_id, id, expected, new)
            .await
        {
            Ok(true) => {
                let kind = if expected.is_none() {
                    AuditKind::HostKeyPinned
                } else {
                    AuditKind::HostKeyChanged
                };
                let details = json!({ "machine_id": id, "previous": expected, "fingerprint": new });
                let org = vault::org_slug_of(&machine.owner_id);
                self.audit
                    .record_in(owner, org, context, kind, details)
                    .await;
                Ok(())
            }
            Ok(false) => Err(DomainError::MachineNotFound),
            Err(StoreError::Conflict) => Err(DomainError::Conflict(Cow::Borrowed(
                "The host key pin was changed concurrently; retry",
            ))),
            Err(other) => Err(other.into()),
        }
    }
}
