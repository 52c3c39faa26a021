//! What can go wrong in a domain operation, in the domain's own terms.
//!
//! No status codes here: the edge decides what a client may learn and with which HTTP status
//! and machine-readable code (`edge::error`). Variants say *what* happened (the request was
//! invalid, the vault refused the password, a backend is unavailable); backend details stay
//! inside the wrapped errors, for the log.

use std::borrow::Cow;

use crate::keys::KeyError;
use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request itself is wrong; the message names the field and the rule.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// Missing, or someone else's: the same answer for both, so ids cannot be probed.
    #[error("Machine not found")]
    MachineNotFound,
    /// Create (or anything that seals) before the user has a vault.
    #[error(
        "Set a master password first: PUT /api/v1/master-password with {{\"password\": \"...\"}}"
    )]
    MasterPasswordRequired,
    /// Opening (connect) for a user who never set a master password.
    #[error("No master password is set for this user")]
    MasterPasswordNotSet,
    /// The vault's AEAD tag refused the password.
    #[error("Invalid master password")]
    InvalidMasterPassword,
    /// Too many wrong master passwords in the current window.
    #[error("Too many failed attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The process's key-derivation budget stayed full for the whole wait.
    #[error("The server is busy deriving keys; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// The per-user machine quota.
    #[error("Machine limit reached ({limit} per user)")]
    MachineLimit { limit: usize },
    /// A concurrent change won a compare-and-set; retrying is the answer.
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// The target presented a host key other than the pinned one.
    #[error("Host key for this machine has changed (expected {expected}, presented {presented})")]
    HostKeyChanged { expected: String, presented: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A stored vault or sealed blob that does not open as it should: never the client's fault.
    #[error("vault: {0}")]
    Vault(VaultError),
    /// No such recording for this user (another user's answers the same).
    #[error("Recording not found")]
    RecordingNotFound,
    /// A stored recording failed verification: tampered, reordered, truncated or incomplete.
    #[error("Recording failed verification: {0}")]
    RecordingDamaged(String),
    /// Recording storage or its key could not be reached or written.
    #[error("Recording storage is unavailable: {0}")]
    RecordingUnavailable(String),
    /// The recording is larger than one answer may carry.
    #[error(
        "Recording is larger than {limit} bytes, the most one answer carries; fetch it in windows with from_chunk"
    )]
    RecordingTooLarge { limit: usize },
    /// Not a member, or no such organization: the same answer for both.
    #[error("Organization not found")]
    OrgNotFound,
    /// No such member in an organization the caller belongs to.
    #[error("Member not found")]
    MemberNotFound,
    /// No pending (unexpired) invitation matches.
    #[error("Invitation not found")]
    InvitationNotFound,
    /// The slug belongs to another organization.
    #[error("That organization slug is taken")]
    OrgSlugTaken,
    /// The change would leave the organization without an owner.
    #[error("An organization needs an owner: make someone else owner first")]
    LastOwner,
    /// An organization's (or a user's) bound on members, invitations or organizations.
    #[error("Limit reached: {0}")]
    OrgLimit(&'static str),
    /// A member whose role does not allow the action (they know the organization exists).
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    /// An organization machine opened by a member who holds no (usable) copy of the
    /// organization's key.
    #[error(
        "You hold no copy of this organization's key: ask an owner or admin of the organization to grant you access"
    )]
    OrgKeyNotGranted,
    /// Granting the organization's key to a member who has no vault to seal it to.
    #[error(
        "That member has not set a master password yet: the organization's key can be granted once they have"
    )]
    MemberMasterPasswordNotSet,
    /// A blocking task died (a bug, not an input).
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl DomainError {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Invalid(message.into())
    }
}

impl From<VaultError> for DomainError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::WrongPassword => Self::InvalidMasterPassword,
            VaultError::Keys(keys) => Self::Keys(keys),
            other => Self::Vault(other),
        }
    }
}
