//! What an organization is made of: its slug, the four roles and what each may do, members and
//! invitations. Plain data and rules, no storage and no HTTP; the service applies the rules.

use serde::Serialize;

use crate::error::DomainError;

/// How long an invitation may wait for its invitee.
pub const INVITATION_TTL_SECS: i64 = 7 * 24 * 3600;
/// Bounds that keep an organization's lists (and the answers listing them) small.
pub const MAX_MEMBERS: usize = 1000;
pub const MAX_PENDING_INVITATIONS: usize = 200;
/// How many organizations one user may belong to (created or joined).
pub const MAX_ORGS_PER_USER: usize = 50;
pub const MAX_NAME: usize = 128;

/// An organization's unique, immutable handle: 3 to 40 characters of lower-case letters, digits
/// and inner hyphens (`platform-team`), so it is safe in a URL path and a storage key as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = (3..=40).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                "slug must be 3 to 40 lower-case letters, digits and inner hyphens",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member's role, from most to least powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including granting or taking away ownership; an organization always keeps
    /// at least one.
    Owner,
    /// Manages members (except owners) and the organization's machines.
    Admin,
    /// Lists and connects to the organization's machines.
    Member,
    /// Reads the organization's audit log and recordings; cannot connect.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }

    /// Whether this role opens terminals on the organization's machines (auditors read, they
    /// do not connect). Checked at connect and, by the relay, for as long as a terminal lives.
    pub fn connects(self) -> bool {
        !matches!(self, Role::Auditor)
    }

    /// Whether this role manages members and invitations at all.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role reads the organization's records: its audit log and its machines'
    /// recordings (owners, admins, auditors; a plain member does not).
    pub fn reads_records(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Auditor)
    }

    /// Whether a member with this role may move someone from `from` to `to` (or invite as
    /// `to` when `from` is `None`): owners may do anything; admins may not grant ownership nor
    /// touch an owner.
    pub fn may_assign(self, from: Option<Role>, to: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => to != Role::Owner && from != Some(Role::Owner),
            Role::Member | Role::Auditor => false,
        }
    }
}

/// An organization as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub slug: Slug,
    pub name: String,
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One member of one organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub slug: Slug,
    /// The member's identity (their verified email).
    pub member: String,
    pub role: Role,
    /// The organization's display name, kept beside the membership so that listing a user's
    /// organizations is one read.
    pub org_name: String,
    /// Unix seconds.
    pub since: i64,
}

/// An invitation waiting for its invitee to sign in with `email` and accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub slug: Slug,
    pub org_name: String,
    /// Stored lower-case; accepted by an identity equal to it in any case.
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
}

impl Invitation {
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_and_key_safe() {
        for good in ["abc", "platform-team", "a1-b2", &"x".repeat(40)] {
            assert!(Slug::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "Platform",
            "a b c",
            "a/b/c",
            "a#b#c",
            &"x".repeat(41),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn admins_cannot_grant_or_touch_ownership() {
        use Role::*;
        assert!(Owner.may_assign(Some(Owner), Member));
        assert!(Owner.may_assign(None, Owner));
        assert!(Admin.may_assign(None, Admin));
        assert!(Admin.may_assign(Some(Member), Auditor));
        assert!(!Admin.may_assign(None, Owner));
        assert!(!Admin.may_assign(Some(Owner), Member));
        assert!(!Member.may_assign(None, Member));
        assert!(!Auditor.may_assign(Some(Member), Auditor));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
