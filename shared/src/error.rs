//! The one error type every request path returns, and its one mapping to an HTTP status and
//! message.
//!
//! Lower layers (store, key provider, vault, auth) have their own `thiserror` enums that say what
//! went wrong in their terms; `From` impls here decide what a client may learn about it. The rule
//! is: say precisely what was wrong with the *request*, say only "unavailable" about the
//! *backends* (details go to the log with the request id), and never put a secret in a message.

use std::borrow::Cow;

use http::StatusCode;
use serde_json::Value;

/// An error answer: status, the human message, and optional structured `data`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid or missing JWT token")]
    Unauthorized,
    #[error("Invalid master password")]
    InvalidMasterPassword,
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    #[error("Request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// The target presented a host key other than the pinned one. Both fingerprints go to the
    /// client so the owner can decide whether to re-pin.
    #[error("Host key for this machine has changed (expected {expected}, presented {presented})")]
    HostKeyChanged { expected: String, presented: String },
    #[error("Too many failed attempts; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    BadGateway(Cow<'static, str>),
    #[error("{0}")]
    GatewayTimeout(Cow<'static, str>),
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    #[error("Internal server error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn machine_not_found() -> Self {
        Self::NotFound(Cow::Borrowed("Machine not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::InvalidMasterPassword => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::HostKeyChanged { .. } => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Structured details that accompany the message, when the client can act on them.
    pub fn data(&self) -> Value {
        match self {
            Self::HostKeyChanged {
                expected,
                presented,
            } => serde_json::json!({ "expected": expected, "presented": presented }),
            Self::TooManyRequests { retry_after_secs } => {
                serde_json::json!({ "retry_after_secs": retry_after_secs })
            }
            _ => Value::Null,
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                Self::Unavailable(Cow::Borrowed(
                    "Machine store is unavailable; try again shortly",
                ))
            }
            StoreError::Conflict => Self::Conflict(Cow::Borrowed(
                "The record was changed concurrently; retry the request",
            )),
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "store returned a malformed record");
                Self::Internal
            }
        }
    }
}

impl From<crate::keys::KeyError> for ApiError {
    fn from(err: crate::keys::KeyError) -> Self {
        use crate::keys::KeyError;
        match err {
            KeyError::Unavailable(detail) => {
                tracing::error!(error = %detail, "key service unavailable");
                Self::Unavailable(Cow::Borrowed(
                    "Key service is unavailable; try again shortly",
                ))
            }
            KeyError::Denied(detail) => {
                tracing::error!(error = %detail, "key service refused the data key");
                Self::Internal
            }
        }
    }
}

impl From<crate::vault::VaultError> for ApiError {
    fn from(err: crate::vault::VaultError) -> Self {
        use crate::vault::VaultError;
        match err {
            VaultError::WrongPassword => Self::InvalidMasterPassword,
            VaultError::Keys(keys) => keys.into(),
            other => {
                tracing::error!(error = %other, "vault could not open a record");
                Self::Internal
            }
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(err: crate::auth::AuthError) -> Self {
        tracing::info!(reason = %err, "rejected credentials");
        Self::Unauthorized
    }
}
