//! Organizations: teams that will own machines together. This module holds who belongs to which
//! organization, with which role, and how one joins (an invitation to a verified email, accepted
//! by the invitee once signed in with it), independent of HTTP and of the store.
//!
//! Rules, all enforced here or (where they must not race) in one atomic store step:
//! * A non-member learns nothing: every route about an organization answers the same 404 to
//!   them whether it exists or not ([`DomainError::OrgNotFound`]). Members see members; only
//!   owners and admins see pending invitations.
//! * Owners do anything; admins manage members and invitations except ownership (they neither
//!   grant it nor touch an owner); members and auditors manage nothing ([`Role::may_assign`]).
//! * An organization always keeps an owner: the last one can neither leave, be removed nor be
//!   demoted ([`MemberChange::LastOwner`], counted by the store).
//! * Every change is written to the acting user's audit log and to the organization's, which
//!   names the acting user (`Auditor::record_in`).

pub mod model;
pub mod store;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditContext, AuditKind, Auditor};
use crate::error::DomainError;
use crate::identity::Identity;
use crate::requests::{NewOrg, OrgInvite};
use crate::store::StoreError;
pub use model::{Invitation, Membership, Organization, Role, Slug};
pub use store::{MemberChange, OrgStore};

/// One of the caller's organizations, as listed.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrgSummary {
    pub slug: Slug,
    pub name: String,
    /// The caller's role in it.
    pub role: Role,
    pub since: i64,
}

/// A member as shown to other members.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct MemberView {
    pub member: String,
    pub role: Role,
    pub since: i64,
}

/// An invitation as shown to the organization's managers and to its invitee.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct InvitationView {
    pub slug: Slug,
    pub org_name: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub expires_at: i64,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            slug: i.slug,
            org_name: i.org_name,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            expires_at: i.expires_at,
        }
    }
}

/// One organization as a member sees it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrgDetails {
    pub slug: Slug,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub members: Vec<MemberView>,
    /// Pending invitations: present for owners and admins only.
    pub invitations: Option<Vec<InvitationView>>,
}

pub struct Organizations {
    store: Arc<dyn OrgStore>,
    audit: Arc<Auditor>,
}

impl Organizations {
    pub fn new(store: Arc<dyn OrgStore>, audit: Arc<Auditor>) -> Self {
        Self { store, audit }
    }

    /// Create an organization; the caller is its first owner.
    pub async fn create(
        &self,
        caller: &Identity,
        context: &AuditContext,
        new: NewOrg,
    ) -> Result<OrgSummary, DomainError> {
        self.check_room_for_another_org(caller).await?;
        let now = now_secs();
        let org = Organization {
            slug: new.slug.clone(),
            name: new.name.clone(),
            created_by: caller.0.clone(),
            created_at: now,
        };
        let owner = Membership {
            slug: new.slug.clone(),
            member: caller.0.clone(),
            role: Role::Owner,
            org_name: new.name.clone(),
            since: now,
        };
        match self.store.create_org(&org, &owner).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(DomainError::OrgSlugTaken),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(org = new.slug.as_str(), "organization created");
        let details = json!({ "org": new.slug, "name": new.name });
        self.audit
            .record_in(
                caller,
                Some(new.slug.as_str()),
                context,
                AuditKind::OrgCreated,
                details,
            )
            .await;
        Ok(OrgSummary {
            slug: new.slug,
            name: new.name,
            role: Role::Owner,
            since: now,
        })
    }

    /// The caller's organizations, with their role in each.
    pub async fn list(&self, caller: &Identity) -> Result<Vec<OrgSummary>, DomainError> {
        let memberships = self.store.memberships_of(&caller.0).await?;
        Ok(memberships
            .into_iter()
            .map(|m| OrgSummary {
                slug: m.slug,
                name: m.org_name,
                role: m.role,
                since: m.since,
            })
            .collect())
    }

    /// One organization with its members (and, for its managers, its invitations).
    pub async fn get(&self, caller: &Identity, slug: &Slug) -> Result<OrgDetails, DomainError> {
        let role = self.role_of_caller(caller, slug).await?;
        let org = self
            .store
            .get_org(slug)
            .await?
            .ok_or(DomainError::OrgNotFound)?;
        let members = self.store.members(slug).await?;
        let invitations = match role.manages_members() {
            true => Some(
                self.store
                    .invitations(slug)
                    .await?
                    .into_iter()
                    .map(InvitationView::from)
                    .collect(),
            ),
            false => None,
        };
        Ok(OrgDetails {
            slug: org.slug,
            name: org.name,
            role,
            created_at: org.created_at,
            members: members
                .into_iter()
                .map(|m| MemberView {
                    member: m.member,
                    role: m.role,
                    since: m.since,
                })
                .collect(),
            invitations,
        })
    }

    /// Invite `invite.email` with `invite.role` (replacing an earlier invitation of theirs).
    pub async fn invite(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        invite: OrgInvite,
    ) -> Result<InvitationView, DomainError> {
        let role = self.role_of_caller(caller, slug).await?;
        if !role.manages_members() || !role.may_assign(None, invite.role) {
            return Err(forbidden(role, "invite with this role"));
        }
        let org = self
            .store
            .get_org(slug)
            .await?
            .ok_or(DomainError::OrgNotFound)?;
        let members = self.store.members(slug).await?;
        if members
            .iter()
            .any(|m| m.member.eq_ignore_ascii_case(&invite.email))
        {
            return Err(DomainError::Conflict(Cow::Borrowed(
                "That person is already a member",
            )));
        }
        if members.len() >= model::MAX_MEMBERS {
            return Err(DomainError::OrgLimit("members per organization"));
        }
        let pending = self.store.invitations(slug).await?;
        let replaces = pending.iter().any(|i| i.email == invite.email);
        if !replaces && pending.len() >= model::MAX_PENDING_INVITATIONS {
            return Err(DomainError::OrgLimit(
                "pending invitations per organization",
            ));
        }
        let now = now_secs();
        let invitation = Invitation {
            slug: slug.clone(),
            org_name: org.name,
            email: invite.email,
            role: invite.role,
            invited_by: caller.0.clone(),
            created_at: now,
            expires_at: now + model::INVITATION_TTL_SECS,
        };
        self.store.put_invitation(&invitation).await?;
        let details = json!({ "org": slug, "email": invitation.email, "role": invitation.role });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgInvited,
                details,
            )
            .await;
        Ok(invitation.into())
    }

    /// Withdraw a pending invitation (owners and admins; an admin not one to ownership).
    pub async fn cancel_invitation(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        email: &str,
    ) -> Result<(), DomainError> {
        let role = self.role_of_caller(caller, slug).await?;
        let email = email.to_ascii_lowercase();
        let pending = self.store.invitations(slug).await?;
        let invitation = pending
            .into_iter()
            .find(|i| i.email == email)
            .ok_or(DomainError::InvitationNotFound)?;
        if !role.manages_members() || !role.may_assign(None, invitation.role) {
            return Err(forbidden(role, "withdraw this invitation"));
        }
        if !self.store.delete_invitation(slug, &email).await? {
            return Err(DomainError::InvitationNotFound);
        }
        let details = json!({ "org": slug, "email": email });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgInvitationWithdrawn,
                details,
            )
            .await;
        Ok(())
    }

    /// The invitations waiting for the caller (addressed to their email, not expired).
    pub async fn my_invitations(
        &self,
        caller: &Identity,
    ) -> Result<Vec<InvitationView>, DomainError> {
        let now = now_secs();
        let mine = self
            .store
            .invitations_for(&caller.0.to_ascii_lowercase())
            .await?;
        Ok(mine
            .into_iter()
            .filter(|i| !i.is_expired(now))
            .map(InvitationView::from)
            .collect())
    }

    /// Accept the caller's invitation to `slug`: they join with the invitation's role.
    pub async fn accept(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
    ) -> Result<OrgSummary, DomainError> {
        let email = caller.0.to_ascii_lowercase();
        let invitation = self
            .store
            .invitations_for(&email)
            .await?
            .into_iter()
            .find(|i| &i.slug == slug && !i.is_expired(now_secs()))
            .ok_or(DomainError::InvitationNotFound)?;
        self.check_room_for_another_org(caller).await?;
        let member = Membership {
            slug: slug.clone(),
            member: caller.0.clone(),
            role: invitation.role,
            org_name: invitation.org_name.clone(),
            since: now_secs(),
        };
        match self.store.accept_invitation(&invitation, &member).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(DomainError::Conflict(Cow::Borrowed(
                    "The invitation changed or you are already a member",
                )));
            }
            Err(other) => return Err(other.into()),
        }
        let details =
            json!({ "org": slug, "role": member.role, "invited_by": invitation.invited_by });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgJoined,
                details,
            )
            .await;
        Ok(OrgSummary {
            slug: member.slug,
            name: member.org_name,
            role: member.role,
            since: member.since,
        })
    }

    /// Change `member`'s role.
    pub async fn set_role(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        member: &str,
        new: Role,
    ) -> Result<(), DomainError> {
        let role = self.role_of_caller(caller, slug).await?;
        let current = self
            .store
            .role_of(slug, member)
            .await?
            .ok_or(DomainError::MemberNotFound)?;
        if !role.manages_members() || !role.may_assign(Some(current), new) {
            return Err(forbidden(role, "give this role to this member"));
        }
        if current == new {
            return Ok(());
        }
        self.changed(self.store.set_role(slug, member, current, new).await?)?;
        let details = json!({ "org": slug, "member": member, "from": current, "to": new });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgRoleChanged,
                details,
            )
            .await;
        Ok(())
    }

    /// Remove `member` from the organization, or leave it when `member` is the caller.
    pub async fn remove(
        &self,
        caller: &Identity,
        context: &AuditContext,
        slug: &Slug,
        member: &str,
    ) -> Result<(), DomainError> {
        let role = self.role_of_caller(caller, slug).await?;
        let leaving = caller.0 == member;
        let current = match leaving {
            true => role,
            false => self
                .store
                .role_of(slug, member)
                .await?
                .ok_or(DomainError::MemberNotFound)?,
        };
        if !leaving && (!role.manages_members() || !role.may_assign(Some(current), Role::Member)) {
            return Err(forbidden(role, "remove this member"));
        }
        self.changed(self.store.remove_member(slug, member, current).await?)?;
        let details = json!({ "org": slug, "member": member, "role": current, "left": leaving });
        self.audit
            .record_in(
                caller,
                Some(slug.as_str()),
                context,
                AuditKind::OrgMemberRemoved,
                details,
            )
            .await;
        Ok(())
    }

    /// The store, for the organization machines' service (memberships, roles).
    pub fn store(&self) -> &Arc<dyn OrgStore> {
        &self.store
    }

    /// The caller's role, or the 404 a non-member gets for an organization that exists or not.
    pub async fn role_of_caller(
        &self,
        caller: &Identity,
        slug: &Slug,
    ) -> Result<Role, DomainError> {
        self.store
            .role_of(slug, &caller.0)
            .await?
            .ok_or(DomainError::OrgNotFound)
    }

    async fn check_room_for_another_org(&self, caller: &Identity) -> Result<(), DomainError> {
        if self.store.memberships_of(&caller.0).await?.len() >= model::MAX_ORGS_PER_USER {
            return Err(DomainError::OrgLimit("organizations per user"));
        }
        Ok(())
    }

    fn changed(&self, change: MemberChange) -> Result<(), DomainError> {
        match change {
            MemberChange::Done => Ok(()),
            MemberChange::Missing => Err(DomainError::Conflict(Cow::Borrowed(
                "The member was changed concurrently; reload and retry",
            ))),
            MemberChange::LastOwner => Err(DomainError::LastOwner),
        }
    }
}

fn forbidden(role: Role, what: &str) -> DomainError {
    DomainError::Forbidden(Cow::Owned(format!(
        "An organization {} may not {what}",
        role.as_str()
    )))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
