//! The Machines domain operations: what a request *means*, independent of HTTP and of which
//! store or key provider is configured. api-fn's handlers and the relay's connect call these
//! and only map the result.
//!
//! Writes are ordered so that nothing is ever half-written: create validates, checks the vault,
//! seals (the KMS call) and only then performs its single conditional insert; a failure before
//! that leaves at most an unused id behind. Argon2id runs on the blocking pool.
//!
//! Errors are [`DomainError`]s; which HTTP status and code each becomes is the edge's business.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::Serialize;

use crate::error::DomainError;
use crate::identity::Identity;
use crate::keys::KeyProvider;
use crate::limiter::AttemptLimiter;
use crate::machine::{Machine, MachineView};
use crate::requests::{MasterPasswordChange, NewMachine};
use crate::secret::MachineSecrets;
use crate::store::{Store, StoreError, VaultPrecondition};
use crate::vault::{self, UnlockedVault, VaultError, VaultRecord};

pub struct Machines {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyProvider>,
    limiter: Arc<dyn AttemptLimiter>,
    max_per_user: usize,
}

/// What `PUT /api/v1/master-password` did.
#[derive(Debug, Serialize)]
pub struct MasterPasswordOutcome {
    #[serde(skip)]
    pub changed: bool,
    /// Machines whose secrets were re-sealed to the new key pair.
    pub resealed: usize,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Run Argon2id work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, DomainError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "vault task failed");
            DomainError::Internal("vault task failed")
        })?
        .map_err(DomainError::from)
}

impl Machines {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<dyn KeyProvider>,
        limiter: Arc<dyn AttemptLimiter>,
        max_per_user: usize,
    ) -> Self {
        Self {
            store,
            keys,
            limiter,
            max_per_user,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn create(
        &self,
        owner: &Identity,
        new: NewMachine,
    ) -> Result<MachineView, DomainError> {
        let vault = self
            .store
            .get_vault(&owner.0)
            .await?
            .ok_or(DomainError::MasterPasswordRequired)?;
        if self.store.count_machines(&owner.0).await? >= self.max_per_user {
            return Err(DomainError::MachineLimit {
                limit: self.max_per_user,
            });
        }
        let id = self.store.next_machine_id().await?;
        let sealed = vault::seal(self.keys.as_ref(), &vault, id, &new.secrets).await?;
        let machine = Machine {
            id,
            owner_id: owner.0.clone(),
            name: new.name,
            hostname: new.hostname,
            port: new.port,
            username: new.username,
            organization: new.organization,
            host_key_fingerprint: new.host_key_fingerprint,
            sealed,
            created_at: now_secs(),
        };
        self.store.insert_machine(&machine).await?;
        tracing::info!(machine_id = id, "machine created");
        Ok(MachineView::from(machine))
    }

    pub async fn list(&self, owner: &Identity) -> Result<Vec<MachineView>, DomainError> {
        let machines = self.store.list_summaries(&owner.0).await?;
        Ok(machines.into_iter().map(MachineView::from).collect())
    }

    pub async fn get(&self, owner: &Identity, id: u64) -> Result<MachineView, DomainError> {
        self.load(owner, id).await.map(MachineView::from)
    }

    /// The stored machine, or the same 404 whether it is missing or someone else's.
    pub async fn load(&self, owner: &Identity, id: u64) -> Result<Machine, DomainError> {
        self.store
            .get_machine(&owner.0, id)
            .await?
            .ok_or(DomainError::MachineNotFound)
    }

    pub async fn delete(&self, owner: &Identity, id: u64) -> Result<(), DomainError> {
        if self.store.delete_machine(&owner.0, id).await? {
            tracing::info!(machine_id = id, "machine deleted");
            Ok(())
        } else {
            Err(DomainError::MachineNotFound)
        }
    }

    /// Set the master password, or change it (which re-seals every machine of the user).
    pub async fn set_master_password(
        &self,
        owner: &Identity,
        change: MasterPasswordChange,
    ) -> Result<MasterPasswordOutcome, DomainError> {
        let MasterPasswordChange { password, current } = change;
        self.check_limit(owner).await?;
        let Some(stored) = self.store.get_vault(&owner.0).await? else {
            let owner_id = owner.0.clone();
            let created = blocking(move || VaultRecord::create(&owner_id, &password)).await?;
            return match self
                .store
                .put_vault(&created, VaultPrecondition::Absent)
                .await
            {
                Ok(()) => Ok(MasterPasswordOutcome {
                    changed: false,
                    resealed: 0,
                }),
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
            blocking(move || stored.rotate(&unlocked_ref, &password)).await?
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
        let resealed = self.reseal_all(owner, &unlocked, &rotated).await?;
        self.store
            .put_vault(
                &rotated.without_previous(),
                VaultPrecondition::matching(&rotated),
            )
            .await?;
        tracing::info!(
            resealed,
            generation = rotated.generation,
            "master password changed"
        );
        Ok(MasterPasswordOutcome {
            changed: true,
            resealed,
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
        self.reseal_all(owner, unlocked, target).await?;
        let finished = target.without_previous();
        self.store
            .put_vault(&finished, VaultPrecondition::matching(target))
            .await?;
        Ok(finished)
    }

    async fn reseal_all(
        &self,
        owner: &Identity,
        unlocked: &UnlockedVault,
        target: &VaultRecord,
    ) -> Result<usize, DomainError> {
        let mut resealed = 0;
        for machine in self.store.list_machines(&owner.0).await? {
            if machine.sealed.vault_gen == target.generation {
                continue;
            }
            let sealed = unlocked.reseal(machine.id, &machine.sealed, target)?;
            if self
                .store
                .replace_sealed(&owner.0, machine.id, machine.sealed.vault_gen, &sealed)
                .await?
            {
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    async fn check_limit(&self, owner: &Identity) -> Result<(), DomainError> {
        self.limiter
            .check(&owner.0)
            .await
            .map_err(|retry_after| DomainError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            })
    }

    /// Unlock `vault` with `password`, counting failures against the owner's limit.
    async fn unlock(
        &self,
        owner: &Identity,
        vault: &VaultRecord,
        password: SecretString,
    ) -> Result<Arc<UnlockedVault>, DomainError> {
        let record = vault.clone();
        match blocking(move || record.unlock(&password)).await {
            Ok(unlocked) => {
                self.limiter.reset(&owner.0).await;
                Ok(Arc::new(unlocked))
            }
            Err(DomainError::InvalidMasterPassword) => {
                tracing::warn!("wrong master password");
                self.limiter.record_failure(&owner.0).await;
                Err(DomainError::InvalidMasterPassword)
            }
            Err(other) => Err(other),
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
        self.check_limit(owner).await?;
        let machine = self.load(owner, id).await?;
        let vault = self
            .store
            .get_vault(&owner.0)
            .await?
            .ok_or(DomainError::MasterPasswordNotSet)?;
        let unlocked = self.unlock(owner, &vault, master_password).await?;
        let secrets = unlocked
            .open(self.keys.as_ref(), machine.id, &machine.sealed)
            .await?;
        Ok((machine, secrets))
    }

    /// Pin, re-pin or clear (`new = None`) a machine's host key, if it is still `expected`.
    pub async fn set_host_key(
        &self,
        owner: &Identity,
        id: u64,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), DomainError> {
        match self.store.set_host_key(&owner.0, id, expected, new).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DomainError::MachineNotFound),
            Err(StoreError::Conflict) => Err(DomainError::Conflict(Cow::Borrowed(
                "The host key pin was changed concurrently; retry",
            ))),
            Err(other) => Err(other.into()),
        }
    }
}
