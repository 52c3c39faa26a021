//! An organization's vault key: when it is made, how a member gets a copy, how it is rotated
//! when someone leaves, and how a member's copies follow their master-password change (the
//! construction is in `vault`, the decisions in docs/organizations.md and docs/vault.md).
//!
//! * **Made** at the organization's first machine, by its creator (an owner or admin with a
//!   vault): a fresh key pair whose seed is sealed to the creator's own vault public key. No
//!   password: like any create, sealing needs only public keys.
//! * **Granted** by an owner or admin with their master password (it opens their copy), to a
//!   member who has a vault. Joining cannot grant by itself: the invitee's acceptance carries
//!   no admin's password, and the server never holds the organization's seed at rest.
//! * **Rotated** when a member holding a copy is removed (the remover's password opens their
//!   copy), or explicitly (`rotate_org_key`) after someone left on their own: a new key pair,
//!   the new seed sealed to every remaining holder, every machine's outer layer re-sealed (no
//!   KMS call), copies of people no longer members deleted. The same no-loss order as a
//!   master-password change: the organization's record keeps `previous` until every machine is
//!   re-sealed, and the copies carry both seeds meanwhile, so an interrupted rotation leaves
//!   every machine openable and is finished by the next one.

use std::borrow::Cow;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::{Machines, RESEAL_PASSES};
use crate::audit::{AuditContext, AuditKind};
use crate::error::DomainError;
use crate::identity::Identity;
use crate::orgs::{Role, Slug};
use crate::store::{StoreError, VaultPrecondition};
use crate::vault::{UnlockedVault, VaultError, VaultRecord, org_owner_id};

/// What a rotation did (the answer of a removal that rotated, and of an explicit rotation).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct OrgKeyRotation {
    /// The organization key's generation after the rotation (absent when nothing rotated).
    pub generation: Option<u32>,
    /// Machines whose outer layer was re-sealed to the new key.
    pub resealed: usize,
    /// Members who received a copy of the new key.
    pub copies: usize,
    /// Machines whose secrets did not open with the old key (reported, left as they were).
    pub unopenable: Vec<u64>,
}

/// Who holds the organization's key: what owners and admins see to decide whom to grant.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrgKeyStatus {
    /// `None` until the organization's first machine makes the key.
    pub generation: Option<u32>,
    /// Members holding a copy, sorted.
    pub holders: Vec<String>,
    /// Someone who is no longer a member still holds a copy (they left): rotate.
    pub rotation_pending: bool,
}

impl Machines {
    /// Make the organization's key if it has none, sealed to `creator`'s vault. The record is
    /// written first, on the condition that there is none (two first creates at once: one
    /// wins, the other finds it); the creator's copy right after. A crash between the two
    /// leaves a key nobody holds; the window is one write, and the first machine is sealed
    /// only after this returns.
    pub(super) async fn ensure_org_key(
        &self,
        creator: &Identity,
        context: &AuditContext,
        slug: &Slug,
    ) -> Result<(), DomainError> {
        let org_owner = org_owner_id(slug.as_str());
        if self.store.get_vault(&org_owner).await?.is_some() {
            return Ok(());
        }
        let creator_vault = self
            .store
            .get_vault(&creator.0)
            .await?
            .ok_or(DomainError::MasterPasswordRequired)?;
        let (record, unlocked) = VaultRecord::new_organization(&org_owner);
        let copy = unlocked.seal_copy(&creator_vault)?;
        match self
            .store
            .put_vault(&record, VaultPrecondition::Absent)
            .await
        {
            Ok(()) => {}
            // Another first create made it: that one is the organization's key.
            Err(StoreError::Conflict) => return Ok(()),
            Err(other) => return Err(other.into()),
        }
        self.store.put_org_key_copy(&copy).await?;
        tracing::info!(org = slug.as_str(), "organization key created");
        self.audit
            .record_in(
                creator,
                Some(slug.as_str()),
                context,
                AuditKind::OrgKeyCreated,
                json!({ "org": slug, "generation": record.generation }),
            )
            .await;
        Ok(())
    }

    /// The organization's opened key, through the caller's own vault: their master password
    /// (one guess from their budget) opens their seed, which opens their copy.
    pub(super) async fn open_org_key(
        &self,
        caller: &Identity,
        org_owner: &str,
        password: SecretString,
    ) -> Result<Arc<UnlockedVault>, DomainError> {
        let vault = self
            .store
            .get_vault(&caller.0)
            .await?
            .ok_or(DomainError::MasterPasswordNotSet)?;
        let unlocked = self.unlock(caller, &vault, password).await?;
        let copy = self
            .store
            .get_org_key_copy(org_owner, &caller.0)
            .await?
            .ok_or(DomainError::OrgKeyNotGranted)?;
        match unlocked.open_copy(&copy) {
            Ok(org) => Ok(Arc::new(org)),
            // Sealed to a vault generation the member no longer holds (a password change that
            // could not re-seal it): as good as no copy.
            Err(VaultError::UnknownGeneration(_)) => Err(DomainError::OrgKeyNotGranted),
            Err(other) => Err(other.into()),
        }
    }

    /// The caller's role in `slug`, refused unless they are an owner or admin.
    async fn manager_role(&self, caller: &Identity, slug: &Slug) -> Result<Role, DomainError> {
        let role = self.org_service()?.role_of_caller(caller, slug).await?;
        if !role.manages_members() {
            return Err(DomainError::Forbidden(Cow::Owned(format!(
                "An organization {} may not manage its key",
                role.as_str()
            ))));
        }
        Ok(role)
    }

    /// Who holds the organization's key (owners and admins).
    pub async fn org_key_status(
        &self,
        caller: &Identity,
        slug: &Slug,
    ) -> Result<OrgKeyStatus, DomainError> {
        self.manager_role(caller, slug).await?;
        let org_owner = org_owner_id(slug.as_str());
        let generation = self
            .store
            .get_vault(&org_owner)
            .await?
            .map(|v| v.generation);
        let members = self.org_service()?.store().members(slug).await?;
        let mut holders = Vec::new();
        let mut rotation_pending = false;
        for copy in self.store.list_org_key_copies(&org_owner).await? {
            if members.iter().any(|m| m.member == copy.member) {
                holders.push(copy.member);
            } else {
                rotation_pending = true;
            }
        }
        Ok(OrgKeyStatus {
            generation,
            holders,
            rotation_pending,
        })
    }

    /// `POST /orgs/{slug}/members/{member}/key`: seal the organization's key to `member`'s
    /// vault, opened with the caller's (an owner's or admin's) master password.
    pub async fn grant_org_key(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        member: &str,
        password: SecretString,
    ) -> Result<OrgKeyStatus, DomainError> {
        self.manager_role(caller, slug).await?;
        let member_role = self
            .org_service()?
            .store()
            .role_of(slug, member)
            .await?
            .ok_or(DomainError::MemberNotFound)?;
        if member_role == Role::Auditor {
            return Err(DomainError::invalid(
                "Auditors do not connect, so they are not granted the organization's key",
            ));
        }
        let org_owner = org_owner_id(slug.as_str());
        if self.store.get_vault(&org_owner).await?.is_none() {
            return Err(DomainError::Conflict(Cow::Borrowed(
                "The organization has no key yet: its first machine makes it",
            )));
        }
        let member_vault = self
            .store
            .get_vault(member)
            .await?
            .ok_or(DomainError::MemberMasterPasswordNotSet)?;
        let org = self.open_org_key(caller, &org_owner, password).await?;
        let copy = org.seal_copy(&member_vault)?;
        self.store.put_org_key_copy(&copy).await?;
        tracing::info!(org = slug.as_str(), "organization key granted");
        let details = json!({ "org": slug, "member": member, "generation": copy.org_gen });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgKeyGranted,
                details,
            )
            .await;
        self.org_key_status(caller, slug).await
    }

    /// `POST /orgs/{slug}/key/rotate`: rotate now (after a member left on their own).
    pub async fn rotate_org_key(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        password: SecretString,
    ) -> Result<OrgKeyRotation, DomainError> {
        self.manager_role(caller, slug).await?;
        let org_owner = org_owner_id(slug.as_str());
        if self.store.get_vault(&org_owner).await?.is_none() {
            return Ok(OrgKeyRotation::default());
        }
        let org = self.open_org_key(caller, &org_owner, password).await?;
        self.rotate(caller, context, slug, &org).await
    }

    /// `DELETE /orgs/{slug}/members/{member}`: remove (or leave). Removing someone who holds a
    /// copy of the key needs the remover's master password and rotates the key in the same
    /// request; the password is checked before anything changes. Leaving never rotates (the
    /// leaver would learn the new key); it leaves `rotation_pending` for an owner or admin.
    pub async fn remove_org_member(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        member: &str,
        password: Option<SecretString>,
    ) -> Result<OrgKeyRotation, DomainError> {
        let orgs = self.org_service()?;
        let role = orgs.role_of_caller(caller, slug).await?;
        let leaving = caller.0 == member;
        let org_owner = org_owner_id(slug.as_str());
        let holds_copy = !leaving
            && role.manages_members()
            && self
                .store
                .get_org_key_copy(&org_owner, member)
                .await?
                .is_some();
        let org = match (holds_copy, password) {
            (false, _) => None,
            (true, Some(password)) => Some(self.open_org_key(caller, &org_owner, password).await?),
            (true, None) => {
                return Err(DomainError::invalid(
                    "password (your master password) is required to remove a member who holds \
                     the organization's key: the key is rotated so their copy opens nothing",
                ));
            }
        };
        orgs.remove(caller, context, slug, member).await?;
        match org {
            Some(org) => self.rotate(caller, context, slug, &org).await,
            None => Ok(OrgKeyRotation::default()),
        }
    }

    /// Rotate the organization's key with its opened seeds `org` (see the module comment).
    async fn rotate(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        org: &UnlockedVault,
    ) -> Result<OrgKeyRotation, DomainError> {
        let org_owner = org_owner_id(slug.as_str());
        let stored = self
            .store
            .get_vault(&org_owner)
            .await?
            .ok_or(DomainError::OrgKeyNotGranted)?;
        // An earlier rotation stopped half-way: finish it first (re-seal what is behind).
        let stored = match stored.previous.is_some() {
            true => {
                self.reseal_all(&org_owner, org, &stored).await?;
                let finished = stored.without_previous();
                self.store
                    .put_vault(&finished, VaultPrecondition::matching(&stored))
                    .await
                    .map_err(rotation_conflict)?;
                finished
            }
            false => stored,
        };
        let (rotated, opened) = match org.rotate_org(&stored) {
            Ok(pair) => pair,
            // The caller's copy predates the current key (granted during a rotation).
            Err(VaultError::UnknownGeneration(_)) => return Err(DomainError::OrgKeyNotGranted),
            Err(other) => return Err(other.into()),
        };
        self.store
            .put_vault(&rotated, VaultPrecondition::matching(&stored))
            .await
            .map_err(rotation_conflict)?;
        // Copies first (carrying both seeds), then machines: whoever holds a copy can open
        // every machine at every step.
        let members = self.org_service()?.store().members(slug).await?;
        let mut copies = 0;
        for copy in self.store.list_org_key_copies(&org_owner).await? {
            let still_member = members.iter().any(|m| m.member == copy.member);
            let vault = match still_member {
                true => self.store.get_vault(&copy.member).await?,
                false => None,
            };
            match vault {
                Some(vault) => {
                    self.store
                        .put_org_key_copy(&opened.seal_copy(&vault)?)
                        .await?;
                    copies += 1;
                }
                None => {
                    self.store
                        .delete_org_key_copy(&org_owner, &copy.member)
                        .await?;
                }
            }
        }
        let (resealed, unopenable) = self.reseal_all(&org_owner, &opened, &rotated).await?;
        self.store
            .put_vault(
                &rotated.without_previous(),
                VaultPrecondition::matching(&rotated),
            )
            .await
            .map_err(rotation_conflict)?;
        tracing::info!(
            org = slug.as_str(),
            generation = rotated.generation,
            resealed,
            copies,
            "organization key rotated"
        );
        let details = json!({
            "org": slug,
            "generation": rotated.generation,
            "resealed": resealed,
            "copies": copies,
            "unopenable": unopenable.len(),
        });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgKeyRotated,
                details,
            )
            .await;
        Ok(OrgKeyRotation {
            generation: Some(rotated.generation),
            resealed,
            copies,
            unopenable,
        })
    }

    /// A master-password change: re-seal the member's copies of their organizations' keys
    /// to their new vault key pair (`target`), before the old one is dropped. A copy that does
    /// not open is left (the member asks for a new grant); it is logged.
    pub(super) async fn reseal_org_copies(
        &self,
        owner: &Identity,
        unlocked: &UnlockedVault,
        target: &VaultRecord,
    ) -> Result<(), DomainError> {
        let Some(orgs) = &self.orgs else {
            return Ok(());
        };
        for membership in orgs.store().memberships_of(&owner.0).await? {
            let org_owner = org_owner_id(membership.slug.as_str());
            for _ in 0..RESEAL_PASSES {
                let Some(copy) = self.store.get_org_key_copy(&org_owner, &owner.0).await? else {
                    break;
                };
                if copy.member_gen == target.generation {
                    break;
                }
                let resealed = match unlocked.open_copy(&copy) {
                    Ok(org) => org.seal_copy(target)?,
                    Err(err) => {
                        tracing::error!(org = membership.slug.as_str(), error = %err, "organization key copy does not open; left as it was");
                        break;
                    }
                };
                self.store.put_org_key_copy(&resealed).await?;
            }
        }
        Ok(())
    }
}

fn rotation_conflict(err: StoreError) -> DomainError {
    match err {
        StoreError::Conflict => DomainError::Conflict(Cow::Borrowed(
            "The organization's key was rotated concurrently; retry",
        )),
        other => other.into(),
    }
}
