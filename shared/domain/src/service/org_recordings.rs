//! Who reads which recording, once organizations own machines: a session on an organization
//! machine is recorded as the organization's (its owner `org:<slug>`, the same storage layout
//! and the same sealing as a user's, the data key's context naming the organization and the
//! recording), so its owners, admins and auditors read it, and the member who typed cannot
//! delete it. The authorization is here; the reading is `Recordings`' own, unchanged.
//!
//! A fetch by id finds the recording among the caller's own first, then among the
//! organizations where the caller's role reads recordings (at most 50, one read each), as a
//! machine id is found. Anyone else, a plain member included, finds nothing: 404, exactly as
//! for a missing recording.

use std::borrow::Cow;

use super::Machines;
use crate::error::DomainError;
use crate::identity::Identity;
use crate::orgs::Slug;
use crate::recording::{RecordingId, RecordingView, Recordings};
use crate::vault::org_owner_id;

/// What the caller wants to do with a recording found by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingUse {
    Read,
    Delete,
}

impl Machines {
    fn recording_service(&self) -> Result<&Recordings, DomainError> {
        self.recordings
            .as_deref()
            .ok_or(DomainError::RecordingNotFound)
    }

    /// `GET /api/v1/orgs/{slug}/recordings`: the organization's recordings (sessions on its
    /// machines), for its owners, admins and auditors. A non-member gets the 404 of an
    /// organization, a plain member 403.
    pub async fn org_recordings(
        &self,
        caller: &Identity,
        slug: &Slug,
    ) -> Result<Vec<RecordingView>, DomainError> {
        let recordings = self.recording_service()?;
        let role = self.org_service()?.role_of_caller(caller, slug).await?;
        if !role.reads_records() {
            return Err(DomainError::Forbidden(Cow::Borrowed(
                "An organization member may not read its recordings",
            )));
        }
        recordings
            .list(&Identity(org_owner_id(slug.as_str())))
            .await
    }

    /// Whose recording `id` is, among those the caller may read: their own, or an
    /// organization's where their role reads recordings. Deleting an organization's recording
    /// is for its owners and admins (an auditor gets 403); not found is 404 either way.
    pub async fn recording_owner(
        &self,
        caller: &Identity,
        id: &RecordingId,
        purpose: RecordingUse,
    ) -> Result<Identity, DomainError> {
        let recordings = self.recording_service()?;
        if recordings.exists(caller, id).await? {
            return Ok(caller.clone());
        }
        let Some(orgs) = &self.orgs else {
            return Err(DomainError::RecordingNotFound);
        };
        for membership in orgs.store().memberships_of(&caller.0).await? {
            if !membership.role.reads_records() {
                continue;
            }
            let keeper = Identity(org_owner_id(membership.slug.as_str()));
            if recordings.exists(&keeper, id).await? {
                if purpose == RecordingUse::Delete && !membership.role.manages_members() {
                    return Err(DomainError::Forbidden(Cow::Borrowed(
                        "An organization auditor may not delete its recordings",
                    )));
                }
                return Ok(keeper);
            }
        }
        Err(DomainError::RecordingNotFound)
    }
}
