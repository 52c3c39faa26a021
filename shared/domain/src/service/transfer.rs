//! Moving a machine to another owner (`PATCH` with `owner_type`): from the caller's own
//! machines into an organization, back, or from one organization to another.
//!
//! A machine's secrets are bound to their owner: the outer layer is sealed to the owner's vault
//! key and both layers take `owner || id` as associated data (and the key provider's encryption
//! context), so a move cannot re-wrap the outer layer the way a rotation does. It opens the
//! secrets with the source's key (the caller's vault, or their copy of the source
//! organization's key: their master password either way, one guess from their budget) and
//! seals them as a create does, to the destination's public key; the destination organization's
//! key is made here if this is its first machine, as create makes it.
//!
//! The caller must manage every organization involved (owner or admin); a member or auditor of
//! one gets 403, someone outside it the 404 of a missing machine or organization. Everything
//! is checked (roles, quota, password, that the secrets open) before the one write, which
//! replaces the record only while it is exactly as read and the destination's vault is at the
//! generation the secrets were sealed to: a concurrent edit answers 409 rather than being
//! lost, a concurrent rotation of the destination's key seals again. The id, the fields and
//! the host-key pin move with the machine; recordings stay with the owner they were made for.

use std::borrow::Cow;

use serde_json::json;

use super::{Access, CREATE_ATTEMPTS, Machines, patched};
use crate::audit::{AuditContext, AuditKind};
use crate::error::DomainError;
use crate::identity::Identity;
use crate::machine::{Machine, MachineSummary, MachineView};
use crate::orgs::Slug;
use crate::requests::{MachinePatch, NewOwner};
use crate::secret::MachineSecrets;
use crate::store::StoreError;
use crate::vault::{self, org_owner_id};

/// Where a move takes a machine: its owner id, and the organization's slug if it is one.
struct Destination {
    owner_id: String,
    org: Option<Slug>,
}

impl Destination {
    fn of(caller: &Identity, owner: &NewOwner) -> Self {
        match owner {
            NewOwner::Caller => Self {
                owner_id: caller.0.clone(),
                org: None,
            },
            NewOwner::Organization(slug) => Self {
                owner_id: org_owner_id(slug.as_str()),
                org: Some(slug.clone()),
            },
        }
    }
}

/// How an owner reads in the audit log: the user's identity, or the organization's slug.
fn owner_label(owner_id: &str) -> &str {
    vault::org_slug_of(owner_id).unwrap_or(owner_id)
}

/// The record after the move, before its secrets are sealed: the patch's fields applied, the
/// label following the owner (an organization machine's label is its slug; one moved back to
/// the caller keeps only a label the patch names), the pin kept unless the patch sends the
/// machine to another host or port (then cleared, as an edit clears it).
fn moved_record(machine: &Machine, patch: &MachinePatch, to: &Destination) -> MachineSummary {
    let current = MachineSummary::from(machine.clone());
    let mut moved = patched(&current, patch);
    moved.owner_id.clone_from(&to.owner_id);
    moved.organization = match (&to.org, &patch.organization) {
        (Some(slug), _) => Some(slug.as_str().to_owned()),
        (None, Some(label)) => label.clone(),
        (None, None) if vault::org_slug_of(&machine.owner_id).is_some() => None,
        (None, None) => current.organization.clone(),
    };
    if moved.hostname != current.hostname || moved.port != current.port {
        moved.host_key_fingerprint = None;
    }
    moved
}

impl Machines {
    /// Whether `patch` moves `machine` to another owner (naming its current owner does not).
    pub(super) fn moves_owner(caller: &Identity, machine: &Machine, patch: &MachinePatch) -> bool {
        patch
            .owner
            .as_ref()
            .is_some_and(|owner| Destination::of(caller, owner).owner_id != machine.owner_id)
    }

    /// Move `machine` (reached with `access`, already checked to manage it) to the owner
    /// `patch.owner` names, applying the patch's other fields in the same write.
    pub(super) async fn transfer(
        &self,
        caller: &Identity,
        context: &AuditContext,
        machine: Machine,
        access: Access,
        mut patch: MachinePatch,
    ) -> Result<MachineView, DomainError> {
        let Some(owner) = &patch.owner else {
            return Err(DomainError::invalid("owner_type names no new owner"));
        };
        let to = Destination::of(caller, owner);
        if patch.secrets.is_some() {
            return Err(DomainError::invalid(
                "A move cannot also replace the credentials: move the machine, then replace them",
            ));
        }
        if let Some(slug) = &to.org {
            let role = self.org_service()?.role_of_caller(caller, slug).await?;
            Access::Org {
                slug: slug.clone(),
                role,
            }
            .require_manager("move machines into")?;
        }
        let Some(password) = patch.master_password.take() else {
            return Err(DomainError::invalid(
                "master_password is required to move a machine to another owner: its secrets \
                 are opened and sealed again to the new owner's key",
            ));
        };
        if self.store.count_machines(&to.owner_id).await? >= self.max_per_user {
            return Err(DomainError::MachineLimit {
                limit: self.max_per_user,
            });
        }
        let source = match &access {
            Access::Own => {
                let vault = self
                    .store
                    .get_vault(&caller.0)
                    .await?
                    .ok_or(DomainError::MasterPasswordNotSet)?;
                self.unlock(caller, &vault, password).await?
            }
            Access::Org { .. } => {
                self.open_org_key(caller, &machine.owner_id, password)
                    .await?
            }
        };
        let secrets = source
            .open(self.keys.as_ref(), machine.id, &machine.sealed)
            .await?;
        if let Some(slug) = &to.org {
            self.ensure_org_key(caller, context, slug).await?;
        }
        let moved = moved_record(&machine, &patch, &to);
        self.write_move(caller, context, &machine, moved, &to, &secrets)
            .await
    }

    /// Seal `secrets` to the destination's key and write the move, sealing again if the
    /// destination's key rotated meanwhile; then record it in every log concerned.
    async fn write_move(
        &self,
        caller: &Identity,
        context: &AuditContext,
        read: &Machine,
        moved: MachineSummary,
        to: &Destination,
        secrets: &MachineSecrets,
    ) -> Result<MachineView, DomainError> {
        let id = read.id;
        for _ in 0..CREATE_ATTEMPTS {
            let vault = self
                .store
                .get_vault(&to.owner_id)
                .await?
                .ok_or(DomainError::MasterPasswordRequired)?;
            let sealed = vault::seal(self.keys.as_ref(), &vault, id, secrets).await?;
            let record = Machine {
                id,
                owner_id: moved.owner_id.clone(),
                name: moved.name.clone(),
                hostname: moved.hostname.clone(),
                port: moved.port,
                username: moved.username.clone(),
                organization: moved.organization.clone(),
                host_key_fingerprint: moved.host_key_fingerprint.clone(),
                persistent_shell: moved.persistent_shell,
                recording: moved.recording,
                record_input: moved.record_input,
                sealed,
                created_at: read.created_at,
            };
            match self.store.move_machine(read, &record).await {
                Ok(true) => {
                    self.record_move(caller, context, read, &moved).await;
                    return Ok(MachineView::from(record));
                }
                Ok(false) => return Err(DomainError::MachineNotFound),
                Err(StoreError::Conflict)
                    if self.vault_moved(&to.owner_id, Some(&record.sealed)).await? =>
                {
                    tracing::info!(machine_id = id, "key rotated during a move; sealing again");
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
            "The new owner's key was rotated concurrently; retry",
        )))
    }

    /// `machine_updated` with `owner` among its fields, in the caller's log and in the log of
    /// each organization the machine left or joined.
    async fn record_move(
        &self,
        caller: &Identity,
        context: &AuditContext,
        read: &Machine,
        moved: &MachineSummary,
    ) {
        let mut fields: Vec<&str> = MachineSummary::from(read.clone())
            .changes_to(moved)
            .iter()
            .map(|c| c.field)
            .collect();
        fields.push("owner");
        let from = owner_label(&read.owner_id);
        let to = owner_label(&moved.owner_id);
        tracing::info!(
            machine_id = read.id,
            ?fields,
            "machine moved to another owner"
        );
        let details = json!({
            "machine_id": read.id,
            "fields": fields,
            "owner": { "from": from, "to": to },
            "secrets_replaced": false,
        });
        let orgs: Vec<&str> = [&read.owner_id, &moved.owner_id]
            .into_iter()
            .filter_map(|owner| vault::org_slug_of(owner))
            .collect();
        self.audit
            .record_in_each(caller, &orgs, context, AuditKind::MachineUpdated, details)
            .await;
    }
}
