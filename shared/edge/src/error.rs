//! The one error type every request path returns, and its one mapping to an HTTP status, a
//! machine-readable code and a message.
//!
//! Lower layers have their own `thiserror` enums that say what went wrong in their terms
//! (`domain::DomainError`, the relay's SSH and ticket errors, sign-in's); `From` impls decide what
//! a client may learn about it. The rule is: say precisely what was wrong with the *request*,
//! say only "unavailable" about the *backends* (details go to the log with the request id), and
//! never put a secret in a message.
//!
//! [`ErrorCode`] is the contract clients switch on (the web app included; never on message
//! text). Each code has exactly one HTTP status, so the table below is the whole mapping; the
//! web app's TypeScript copy and the table in `docs/api.md` are checked against it by a test.

use std::borrow::Cow;

use domain::DomainError;
use domain::keys::KeyError;
use domain::store::StoreError;
use http::StatusCode;
use serde_json::Value;

macro_rules! error_codes {
    ($($variant:ident = ($code:literal, $status:literal, $meaning:literal),)*) => {
        /// Machine-readable error codes: `code` in the error envelope.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order (for generated copies and checks).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code always answers with.
            pub fn status(self) -> StatusCode {
                let code = match self { $(ErrorCode::$variant => $status,)* };
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// What it means, for the docs table.
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }
        }
    };
}

error_codes! {
    InvalidRequest = ("invalid_request", 400, "The body, a field or a parameter is invalid; the message names it."),
    Unauthorized = ("unauthorized", 401, "No valid token in `Authorization: Bearer` or the `jwt` cookie."),
    InvalidMasterPassword = ("invalid_master_password", 401, "The master password does not open the vault."),
    SignInFailed = ("sign_in_failed", 401, "The identity provider did not complete the sign-in."),
    SessionExpired = ("session_expired", 400, "The sign-in attempt is missing, expired or does not match; start again."),
    Forbidden = ("forbidden", 403, "Not allowed for this caller."),
    OrgKeyNotGranted = ("org_key_not_granted", 403, "The caller holds no copy of the organization's key (or one their master password no longer opens); ask an owner or admin of the organization to grant access."),
    CrossSiteRequest = ("cross_site_request", 403, "A write with the session cookie came from another site (`Origin` or `Sec-Fetch-Site`); the web app's own requests never do."),
    OriginNotAllowed = ("origin_not_allowed", 403, "The browser Origin is not allowed to open a terminal."),
    TargetNotAllowed = ("target_not_allowed", 403, "The SSH target's address is refused by the relay's target policy."),
    EmailUnverified = ("email_unverified", 403, "The identity provider did not vouch for the email address."),
    RemotePermissionDenied = ("remote_permission_denied", 403, "The target's SFTP server refused the operation on that path (permissions)."),
    NotFound = ("not_found", 404, "No such route, or the feature is not enabled on this server."),
    MachineNotFound = ("machine_not_found", 404, "No such machine for this user (another user's machine answers the same)."),
    OrgNotFound = ("org_not_found", 404, "No such organization among the caller's (one they do not belong to answers the same)."),
    MemberNotFound = ("member_not_found", 404, "No such member in this organization."),
    InvitationNotFound = ("invitation_not_found", 404, "No pending, unexpired invitation matches."),
    RecordingNotFound = ("recording_not_found", 404, "No such recording for this user (another user's recording answers the same)."),
    ShareNotFound = ("share_not_found", 404, "No such live share for this user (another user's share, or one that ended, answers the same)."),
    SessionNotFound = ("session_not_found", 404, "No such live terminal for this caller (another user's terminal, or a share viewer's request, answers the same)."),
    FilesDisabled = ("files_disabled", 404, "File transfer is off on this deployment (`FILES_MAX_BYTES=0`)."),
    RemotePathNotFound = ("remote_path_not_found", 404, "No such file or directory on the target."),
    MethodNotAllowed = ("method_not_allowed", 405, "The route exists but not with this method."),
    MasterPasswordRequired = ("master_password_required", 409, "Set a master password before saving machines."),
    MasterPasswordNotSet = ("master_password_not_set", 409, "The user has no master password yet, so nothing can be opened."),
    MemberMasterPasswordNotSet = ("member_master_password_not_set", 409, "The member has no master password yet, so the organization's key cannot be sealed to them; they set one first."),
    MachineLimitReached = ("machine_limit_reached", 409, "The per-user machine quota is used up."),
    HostKeyChanged = ("host_key_changed", 409, "The target presented another host key than the pinned one; `data` has both fingerprints."),
    Conflict = ("conflict", 409, "A concurrent change won; retry the request."),
    OrgSlugTaken = ("org_slug_taken", 409, "Another organization has this slug."),
    LastOwner = ("last_owner", 409, "The change would leave the organization without an owner."),
    OrgLimitReached = ("org_limit_reached", 409, "A bound on members, pending invitations or organizations per user is reached."),
    RemoteExists = ("remote_exists", 409, "An upload's target name exists on the machine; upload with `overwrite=true` to replace it."),
    RemoteFailed = ("remote_failed", 409, "The target's SFTP server refused the operation (the name exists, a directory is not empty, ...); the message has its reason."),
    PayloadTooLarge = ("payload_too_large", 413, "The request body is over the size limit."),
    RecordingTooLarge = ("recording_too_large", 413, "The recording is larger than one answer may carry (5 MiB); fetch it in windows with `from_chunk`."),
    FileTooLarge = ("file_too_large", 413, "The file is larger than the deployment's `FILES_MAX_BYTES`, or the upload's body is longer than it announced."),
    UnsupportedMediaType = ("unsupported_media_type", 415, "A JSON body needs `Content-Type: application/json`, and a write with the session cookie may carry no other type (what a cross-site form sends)."),
    HostNotAllowed = ("host_not_allowed", 421, "The `Host` is not a name this server answers to (a server on loopback answers only loopback names and `PUBLIC_URL`'s host)."),
    TooManyAttempts = ("too_many_attempts", 429, "Too many wrong master passwords; `data.retry_after_secs` and `Retry-After` say when to retry."),
    UserLimitReached = ("user_limit_reached", 429, "This user already has the most connects in progress, or open sessions, a relay allows; `Retry-After` says when to retry."),
    TransferLimitReached = ("transfer_limit_reached", 429, "This terminal already has the most file transfers in progress; retry when one ends."),
    Internal = ("internal", 500, "A bug or a corrupt record; the request id in the log has the details."),
    RecordingDamaged = ("recording_damaged", 500, "A stored recording failed verification (its metadata or a chunk tampered with, a chunk reordered or missing, or no final chunk); the message says which."),
    SshFailed = ("ssh_failed", 502, "The SSH target refused, was unreachable, or refused the login."),
    ProviderUnavailable = ("provider_unavailable", 502, "The identity provider could not be reached."),
    SftpUnavailable = ("sftp_unavailable", 502, "The target has no SFTP subsystem, or refused the channel; the terminal itself is unaffected."),
    Unavailable = ("unavailable", 503, "A backend (store, key service, routing) or this relay is unavailable; retry shortly."),
    RecordingUnavailable = ("recording_unavailable", 503, "Recording storage could not be written or read; with `RECORDING=required` a session cannot start without it."),
    Busy = ("busy", 503, "The server's key-derivation capacity stayed full; `Retry-After` says when to retry."),
    SshTimeout = ("ssh_timeout", 504, "Connecting or logging in to the SSH target timed out."),
}

/// What `Retry-After` says on a 503 from an unavailable backend.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// An error answer: its code (which fixes the status), the human message, and optional
/// structured `data` the client can act on.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    data: Value,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            data: Value::Null,
            retry_after_secs: None,
        }
    }

    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "Invalid or missing JWT token")
    }

    /// A backend or this relay cannot serve now: always with `Retry-After`, so clients back off
    /// instead of hammering a struggling dependency.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Unavailable, message).with_retry_after(UNAVAILABLE_RETRY_SECS)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "Internal server error")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body is larger than {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        )
    }

    pub fn route_not_found() -> Self {
        Self::new(ErrorCode::NotFound, "Route not found")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "Method not allowed")
    }

    pub fn host_key_changed(expected: String, presented: String) -> Self {
        let message = format!(
            "Host key for this machine has changed (expected {expected}, presented {presented})"
        );
        Self::new(ErrorCode::HostKeyChanged, message)
            .with_data(serde_json::json!({ "expected": expected, "presented": presented }))
    }

    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        let mut err = Self::new(
            ErrorCode::TooManyAttempts,
            format!("Too many failed attempts; try again in {retry_after_secs} s"),
        )
        .with_data(serde_json::json!({ "retry_after_secs": retry_after_secs }));
        err.retry_after_secs = Some(retry_after_secs);
        err
    }

    /// The same error, telling the client when to retry (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured details that accompany the message, when the client can act on them.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// For `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid(message) => Self::bad_request(message),
            DomainError::MachineNotFound => Self::new(ErrorCode::MachineNotFound, err.to_string()),
            DomainError::MasterPasswordRequired => {
                Self::new(ErrorCode::MasterPasswordRequired, err.to_string())
            }
            DomainError::MasterPasswordNotSet => {
                Self::new(ErrorCode::MasterPasswordNotSet, err.to_string())
            }
            DomainError::InvalidMasterPassword => {
                Self::new(ErrorCode::InvalidMasterPassword, err.to_string())
            }
            DomainError::TooManyAttempts { retry_after_secs } => {
                Self::too_many_attempts(retry_after_secs)
            }
            DomainError::Busy { retry_after_secs } => {
                Self::new(ErrorCode::Busy, err.to_string()).with_retry_after(retry_after_secs)
            }
            DomainError::MachineLimit { .. } => {
                Self::new(ErrorCode::MachineLimitReached, err.to_string())
            }
            DomainError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            DomainError::HostKeyChanged {
                expected,
                presented,
            } => Self::host_key_changed(expected, presented),
            DomainError::RecordingNotFound => {
                Self::new(ErrorCode::RecordingNotFound, err.to_string())
            }
            DomainError::RecordingDamaged(_) => {
                tracing::error!(error = %err, "recording failed verification");
                Self::new(ErrorCode::RecordingDamaged, err.to_string())
            }
            DomainError::RecordingUnavailable(detail) => {
                tracing::error!(error = %detail, "recording storage unavailable");
                Self::new(
                    ErrorCode::RecordingUnavailable,
                    "Recording storage is unavailable; try again shortly",
                )
                .with_retry_after(UNAVAILABLE_RETRY_SECS)
            }
            DomainError::RecordingTooLarge { .. } => {
                Self::new(ErrorCode::RecordingTooLarge, err.to_string())
            }
            DomainError::OrgNotFound => Self::new(ErrorCode::OrgNotFound, err.to_string()),
            DomainError::MemberNotFound => Self::new(ErrorCode::MemberNotFound, err.to_string()),
            DomainError::InvitationNotFound => {
                Self::new(ErrorCode::InvitationNotFound, err.to_string())
            }
            DomainError::OrgSlugTaken => Self::new(ErrorCode::OrgSlugTaken, err.to_string()),
            DomainError::LastOwner => Self::new(ErrorCode::LastOwner, err.to_string()),
            DomainError::OrgLimit(_) => Self::new(ErrorCode::OrgLimitReached, err.to_string()),
            DomainError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            DomainError::OrgKeyNotGranted => {
                Self::new(ErrorCode::OrgKeyNotGranted, err.to_string())
            }
            DomainError::MemberMasterPasswordNotSet => {
                Self::new(ErrorCode::MemberMasterPasswordNotSet, err.to_string())
            }
            DomainError::Store(store) => store.into(),
            DomainError::Keys(keys) => keys.into(),
            DomainError::Vault(vault) => {
                tracing::error!(error = %vault, "vault could not open a record");
                Self::internal()
            }
            DomainError::Internal(what) => {
                tracing::error!(error = what, "internal error");
                Self::internal()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                Self::unavailable("Machine store is unavailable; try again shortly")
            }
            StoreError::Conflict => Self::new(
                ErrorCode::Conflict,
                "The record was changed concurrently; retry the request",
            ),
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "store returned a malformed record");
                Self::internal()
            }
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Unavailable(detail) => {
                tracing::error!(error = %detail, "key service unavailable");
                Self::unavailable("Key service is unavailable; try again shortly")
            }
            KeyError::Denied(detail) => {
                tracing::error!(error = %detail, "key service refused the data key");
                Self::internal()
            }
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    /// Every credential problem is the same 401; only an unreachable deny-list is 503 (the
    /// token may be fine, and refusing it is the safe answer).
    fn from(err: crate::auth::AuthError) -> Self {
        match err {
            crate::auth::AuthError::RevocationsUnavailable(store) => store.into(),
            err => {
                tracing::info!(reason = %err, "rejected credentials");
                Self::unauthorized()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_have_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                code.as_str()
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn domain_errors_keep_the_seed_messages() {
        let err = ApiError::from(DomainError::InvalidMasterPassword);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(err.message(), "Invalid master password");
        let err = ApiError::from(DomainError::MachineNotFound);
        assert_eq!(
            (err.status(), err.message()),
            (StatusCode::NOT_FOUND, "Machine not found")
        );
    }
}
