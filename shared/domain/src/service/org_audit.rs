//! Who reads an organization's audit log: its owners, admins and auditors, the same roles that
//! read its recordings. The chain is the organization's own (owner `org:<slug>`), written by
//! `Auditor::record_in` beside each acting user's entry, so reading it never touches a user's
//! chain. The authorization is here; paging, export and verification are the `Auditor`'s own,
//! given the organization's owner id instead of the caller's.
//!
//! A non-member gets the 404 of an organization (whether it exists or not); a plain member
//! knows the organization exists, so they get 403 rather than an empty log.

use std::borrow::Cow;

use super::Machines;
use crate::error::DomainError;
use crate::identity::Identity;
use crate::orgs::Slug;
use crate::vault::org_owner_id;

impl Machines {
    /// The owner id of organization `slug`'s audit chain, if the caller's role reads it.
    pub async fn org_audit_owner(
        &self,
        caller: &Identity,
        slug: &Slug,
    ) -> Result<Identity, DomainError> {
        let role = self.org_service()?.role_of_caller(caller, slug).await?;
        if !role.reads_records() {
            return Err(DomainError::Forbidden(Cow::Borrowed(
                "An organization member may not read its audit log",
            )));
        }
        Ok(Identity(org_owner_id(slug.as_str())))
    }
}

impl Machines {
    /// The organization (by slug) whose log also records an event about machine `id` as the
    /// caller reaches it, for an outcome decided without the machine at hand (a refused
    /// connect). `None` for the caller's own machine, and for one they do not reach or that
    /// cannot be read now: such an event stays in the caller's log only.
    pub async fn audit_org_of_machine(&self, caller: &Identity, id: u64) -> Option<String> {
        let (machine, _) = self.resolve(caller, id).await.ok()?;
        crate::vault::org_slug_of(&machine.owner_id).map(str::to_owned)
    }
}
