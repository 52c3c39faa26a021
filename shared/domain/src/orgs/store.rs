//! Storage of organizations, memberships and invitations: the port the two backends implement
//! (DynamoDB items beside the machines, SQLite tables in the same file).
//!
//! Every change that must not race is one atomic step in the store, never read-then-write in
//! the service: creating an organization with its first owner, accepting an invitation (the
//! invitation consumed and the membership written together), and every change that could
//! leave an organization without an owner (the store keeps the owner count and refuses to take
//! it to zero, so two owners demoting each other at once cannot both succeed).

use async_trait::async_trait;

use super::model::{Invitation, Membership, Organization, Role, Slug};
use crate::store::StoreError;

/// What a role change or a removal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    /// The member is not (or no longer) in the organization, or no longer has the role the
    /// change was decided on.
    Missing,
    /// It would have left the organization without an owner.
    LastOwner,
}

#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Create the organization with `owner` as its first owner. `Conflict` if the slug is taken.
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError>;
    async fn get_org(&self, slug: &Slug) -> Result<Option<Organization>, StoreError>;
    /// The member's role, if they belong to the organization.
    async fn role_of(&self, slug: &Slug, member: &str) -> Result<Option<Role>, StoreError>;
    /// The organization's members, sorted by identity.
    async fn members(&self, slug: &Slug) -> Result<Vec<Membership>, StoreError>;
    /// The organizations `member` belongs to, sorted by slug.
    async fn memberships_of(&self, member: &str) -> Result<Vec<Membership>, StoreError>;
    /// Write (or replace) the invitation of `invitation.email` to `invitation.slug`.
    async fn put_invitation(&self, invitation: &Invitation) -> Result<(), StoreError>;
    /// The organization's pending invitations (expired ones included), sorted by email.
    async fn invitations(&self, slug: &Slug) -> Result<Vec<Invitation>, StoreError>;
    /// The invitations addressed to `email` (lower-case), sorted by slug.
    async fn invitations_for(&self, email: &str) -> Result<Vec<Invitation>, StoreError>;
    /// `false` when there was none.
    async fn delete_invitation(&self, slug: &Slug, email: &str) -> Result<bool, StoreError>;
    /// Consume the invitation of `invitation.email` and add `member` with the invitation's
    /// role, in one step. `Conflict` when the invitation is gone or changed, or `member`
    /// already belongs to the organization.
    async fn accept_invitation(
        &self,
        invitation: &Invitation,
        member: &Membership,
    ) -> Result<(), StoreError>;
    /// Move `member` from `expected` to `new`, refusing to leave no owner.
    async fn set_role(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
        new: Role,
    ) -> Result<MemberChange, StoreError>;
    /// Remove `member` (who had `expected`), refusing to remove the last owner.
    async fn remove_member(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
    ) -> Result<MemberChange, StoreError>;
}
