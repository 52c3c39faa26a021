//! Storage of machines and vaults, behind one small trait with two implementations chosen by
//! configuration, in the `backends` crate: DynamoDB and an embedded SQLite file.
//!
//! Every read and write names the owner: there is no "get machine by id" without an owner, so
//! cross-user access cannot be written by accident, and another user's machine is simply
//! absent (404), never "forbidden" (which would confirm that the id exists). Writes that race
//! (vault rotation, host key pinning) are compare-and-set and report [`StoreError::Conflict`].
//!
//! The store also keeps the deny-list of signed-out session tokens: it is the one piece of
//! shared state every deployment already has (api-fn's Lambdas and the relays alike), so a
//! sign-out is seen by every process without another service.

use async_trait::async_trait;

use crate::machine::{FieldChange, Machine, MachineSummary, SealedSecrets};
use crate::vault::{OrgKeyCopy, VaultRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Backend unreachable, timed out or throttled: retryable, 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write lost a race.
    #[error("conditional write failed")]
    Conflict,
    /// A stored item could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// What a compare-and-set on a vault expects to find.
#[derive(Clone, Copy, Debug)]
pub enum VaultPrecondition {
    /// Create: the user has no vault yet.
    Absent,
    /// Update: the stored vault is at this generation, with or without a `previous` key.
    At { generation: u32, has_previous: bool },
}

impl VaultPrecondition {
    pub fn matching(vault: &VaultRecord) -> Self {
        Self::At {
            generation: vault.generation,
            has_previous: vault.previous.is_some(),
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// A new machine id, unique in the deployment (an atomic counter). Gaps are fine.
    async fn next_machine_id(&self) -> Result<u64, StoreError>;
    /// Insert a new machine, atomically with a check that the owner's vault is still at the
    /// generation its secrets are sealed to (`machine.sealed.vault_gen`). `Conflict` if the
    /// vault moved on (a master-password change started: seal again) or the id is taken.
    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError>;
    async fn get_machine(&self, owner_id: &str, id: u64) -> Result<Option<Machine>, StoreError>;
    /// The owner's machines with their sealed secrets, sorted by id (re-sealing reads this).
    async fn list_machines(&self, owner_id: &str) -> Result<Vec<Machine>, StoreError>;
    /// The owner's machines without their sealed secrets, sorted by id (what a listing shows).
    async fn list_summaries(&self, owner_id: &str) -> Result<Vec<MachineSummary>, StoreError>;
    /// How many machines the owner has (the create quota), without reading them.
    async fn count_machines(&self, owner_id: &str) -> Result<usize, StoreError>;
    /// An edit, in one atomic step: write each of `changes` only while the field still holds
    /// the value it was read with, and with `sealed`, replace the secrets only while the owner's
    /// vault is at `sealed.vault_gen` (the create rule). Fields not in `changes` are not
    /// written, so concurrent edits of different fields both land. `Ok(false)` when the owner
    /// has no machine with that id, `Err(Conflict)` when a field or the vault moved.
    async fn update_machine(
        &self,
        owner_id: &str,
        id: u64,
        changes: &[FieldChange],
        sealed: Option<&SealedSecrets>,
    ) -> Result<bool, StoreError>;
    /// A change of owner, in one atomic step: machine `read.id` leaves `read.owner_id` and
    /// becomes `moved` (the same id under `moved.owner_id`, its secrets sealed to that owner's
    /// vault), only while every field still holds what `read` holds, its secrets are still
    /// `read.sealed` (generation and ciphertext), and the new owner's vault is at
    /// `moved.sealed.vault_gen`. `Ok(false)` when `read.owner_id` has no machine with that id,
    /// `Err(Conflict)` when anything moved.
    async fn move_machine(&self, read: &Machine, moved: &Machine) -> Result<bool, StoreError>;
    /// `false` when the owner has no machine with that id.
    async fn delete_machine(&self, owner_id: &str, id: u64) -> Result<bool, StoreError>;
    /// Replace the sealed secrets of a machine still sealed to `expected_gen`.
    /// `false` when the machine is gone or was already re-sealed.
    async fn replace_sealed(
        &self,
        owner_id: &str,
        id: u64,
        expected_gen: u32,
        sealed: &SealedSecrets,
    ) -> Result<bool, StoreError>;
    /// Compare-and-set the host key pin: succeeds only if the stored pin equals `expected`.
    /// `Ok(false)` when the machine does not exist, `Err(Conflict)` when the pin differs.
    async fn set_host_key(
        &self,
        owner_id: &str,
        id: u64,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn get_vault(&self, owner_id: &str) -> Result<Option<VaultRecord>, StoreError>;
    async fn put_vault(
        &self,
        vault: &VaultRecord,
        precondition: VaultPrecondition,
    ) -> Result<(), StoreError>;
    /// Write (or replace) a member's copy of an organization's key.
    async fn put_org_key_copy(&self, copy: &OrgKeyCopy) -> Result<(), StoreError>;
    async fn get_org_key_copy(
        &self,
        org_owner: &str,
        member: &str,
    ) -> Result<Option<OrgKeyCopy>, StoreError>;
    /// Every copy of the organization's key, sorted by member (bounded by the member limit).
    async fn list_org_key_copies(&self, org_owner: &str) -> Result<Vec<OrgKeyCopy>, StoreError>;
    /// `false` when there was none.
    async fn delete_org_key_copy(&self, org_owner: &str, member: &str) -> Result<bool, StoreError>;
    /// Deny the session token `jti` until `expires_at` (Unix seconds, the token's `exp`):
    /// signing out. Idempotent. Entries may be dropped once `expires_at` has passed, since the
    /// token is refused for its expiry from then on (DynamoDB's TTL does exactly that).
    async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError>;
    /// Whether `jti` was revoked (asked on every authenticated request).
    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// One line for the start-up log.
    fn describe(&self) -> String;
}
