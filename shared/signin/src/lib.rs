//! Browser sign-in: the OAuth 2.0 / OpenID Connect authorization-code flow with PKCE, the
//! session cookie it ends in, and its routes under `/api/v1/auth` ([`routes`]). A crate of its
//! own because it is a separate concern from the machines domain: it only mints the session
//! token that the edge's authenticator then verifies like any other.
//!
//! Why it is shaped so:
//! * The flow's per-attempt secrets (`state`, PKCE verifier, OIDC `nonce`, the redirect URI)
//!   travel in one short-lived, HttpOnly cookie signed with a key derived from the session
//!   secret ([`state`]), so any api-fn instance (Lambda included) can finish a flow another one
//!   started, with no table or cache to write.
//! * Identity comes only from a *verified* email: an ID token whose signature (provider JWKS),
//!   issuer, audience, expiry and nonce check out, or the provider's userinfo / GitHub's email
//!   API for the same subject. An unverified or missing email refuses the sign-in ([`provider`]).
//! * The session is an HS256 JWT signed with the same secret the [`edge::auth::Authenticator`]
//!   verifies, set as the `jwt` cookie ([`session`]); every other route then works unchanged.
//! * Development sign-in (pick any email, no provider) exists only behind [`DevSignIn`], a
//!   token type that [`config::dev_sign_in`] refuses to create with cloud backends or in Lambda.
//!
//! Provider calls go through one `reqwest` client with connect/total timeouts, no redirects and
//! a response size cap. Codes, tokens, verifiers and client secrets are never logged.

pub mod config;
pub mod provider;
pub mod routes;
pub mod session;
pub mod state;

use std::borrow::Cow;

pub use config::{DevSignIn, ProviderKind, SignInConfig};
pub use provider::SignIn;
pub use routes::{AuthState, auth_routes};

use edge::{ApiError, ErrorCode};

/// Why a sign-in attempt failed. The messages are for the person signing in; details that
/// help an operator (provider error bodies, JWT validation reasons) go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("Unknown sign-in provider '{0}'; use one of: {1}")]
    UnknownProvider(String, String),
    #[error("Sign-in is not configured on this server: {0}")]
    NotConfigured(&'static str),
    #[error("Sign-in session is missing or expired; start the sign-in again")]
    StateMissing,
    #[error("Sign-in state does not match; start the sign-in again")]
    StateMismatch,
    #[error("The provider did not complete the sign-in: {0}")]
    ProviderDenied(String),
    #[error(
        "The provider rejected the authorization code (already used or expired); sign in again"
    )]
    CodeRejected,
    #[error("The provider's ID token could not be verified")]
    IdTokenInvalid,
    #[error("The ID token was issued by another issuer than the configured provider")]
    WrongIssuer,
    #[error("Your email address is not verified with the provider")]
    EmailUnverified,
    #[error("The provider did not share an email address")]
    NoEmail,
    #[error("The sign-in provider could not be reached; try again shortly")]
    ProviderUnavailable,
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    #[error("Development sign-in is not enabled on this server")]
    DevDisabled,
}

impl From<SignInError> for ApiError {
    /// The message is for the person signing in; the code tells the page what kind of
    /// failure it is.
    fn from(err: SignInError) -> Self {
        let code = match &err {
            SignInError::UnknownProvider(..) | SignInError::BadRequest(_) => {
                ErrorCode::InvalidRequest
            }
            SignInError::StateMissing | SignInError::StateMismatch => ErrorCode::SessionExpired,
            SignInError::NotConfigured(_) | SignInError::DevDisabled => ErrorCode::NotFound,
            SignInError::ProviderDenied(_)
            | SignInError::CodeRejected
            | SignInError::IdTokenInvalid
            | SignInError::WrongIssuer => ErrorCode::SignInFailed,
            SignInError::EmailUnverified | SignInError::NoEmail => ErrorCode::EmailUnverified,
            SignInError::ProviderUnavailable => ErrorCode::ProviderUnavailable,
        };
        ApiError::new(code, err.to_string())
    }
}
