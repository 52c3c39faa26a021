//! Who is calling: JWT verification for every authenticated route (api-fn and relay alike).
//!
//! Tokens come from `Authorization: Bearer` or the `jwt` cookie (exactly one: a request with
//! two `jwt` cookies, which a sibling subdomain can plant with a narrower path, is refused
//! rather than resolved by order). Two key sources, by configuration:
//!
//! * **Sessions the product mints** (browser sign-in, `api-fn token`): HS256 with
//!   `JWT_SECRET`. They always carry, and must carry, `iss` = [`SESSION_ISSUER`], `aud` =
//!   [`SESSION_AUDIENCE`], a `jti` and an `email` that sign-in verified; the email is the
//!   identity.
//! * **An external OIDC issuer** (`JWKS_URL`, RS256/ES256), which requires `JWT_ISSUER` and
//!   `JWT_AUDIENCE` (without them any token the issuer minted for any site would do). Its
//!   users choose their own usernames and often their own unverified emails, so the identity
//!   is the email only with `email_verified: true`; a token that asserts an email without
//!   vouching for it is refused; a token without an email is its issuer-scoped subject, in a
//!   namespace that can never equal an email (see [`domain::identity`]); `username` never
//!   counts.
//!
//! Algorithm confusion is impossible by construction: the header's `alg` picks the key
//! *source* (HMAC algorithms only ever meet the secret, asymmetric ones only JWKS keys whose
//! type and declared algorithm match), and `none` does not parse at all.
//!
//! Signing out revokes a token: its `jti` goes on a deny-list in the deployment's store until
//! the token's `exp`, and every verification consults it, so a copied token dies with the
//! session everywhere (API, connect, terminal). Every failure is the same 401 to the client;
//! the reason goes to the log. Only an unreachable deny-list answers 503 (fail closed).

pub mod jwks;

use std::sync::Arc;

use domain::config::{Config, ConfigError};
use domain::store::{Store, StoreError};
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde::Deserialize;

pub use domain::Identity;
pub use jwks::JwksCache;

/// Tokens larger than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;
/// Longest accepted `jti` (ours are 36-character UUIDs).
const MAX_JTI_LEN: usize = 128;
/// The cookie a browser session travels in.
pub const SESSION_COOKIE: &str = "jwt";
/// `iss` of every token this product mints, and required on every HS256 token.
pub const SESSION_ISSUER: &str = "sushi";
/// `aud` of every token this product mints, and required on every HS256 token.
pub const SESSION_AUDIENCE: &str = "sushi";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token in Authorization header or jwt cookie")]
    Missing,
    #[error("more than one jwt cookie")]
    AmbiguousCookie,
    #[error("token is too large")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted by this deployment")]
    AlgorithmNotAccepted(Algorithm),
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token names no usable identity (a verified email or a subject)")]
    NoIdentity,
    #[error("token asserts an email its issuer did not verify")]
    EmailUnverified,
    #[error("token was revoked (signed out)")]
    Revoked,
    #[error("key set unavailable: {0}")]
    KeysUnavailable(String),
    #[error("revocation list unavailable: {0}")]
    RevocationsUnavailable(#[source] StoreError),
}

#[derive(Deserialize)]
struct Claims {
    email: Option<String>,
    /// A boolean, or the string `"true"` (Cognito and a few others send strings).
    email_verified: Option<serde_json::Value>,
    sub: Option<String>,
    iss: Option<String>,
    jti: Option<String>,
    exp: u64,
}

/// A verified token: whose it is, and what revoking it needs.
struct Verified {
    identity: Identity,
    jti: Option<String>,
    exp: u64,
}

/// The external issuer a JWKS deployment trusts; issuer and audience are not optional.
struct ExternalIssuer {
    keys: JwksCache,
    issuer: String,
    audience: String,
}

/// Verifies tokens. Cheap to share (`Arc`); the JWKS cache inside is shared too.
pub struct Authenticator {
    hmac_secret: Option<DecodingKey>,
    external: Option<ExternalIssuer>,
    revocations: Option<Arc<dyn Store>>,
}

impl Authenticator {
    /// The verifier this deployment's configuration asks for: `JWT_SECRET` (or the embedded
    /// default's secret file) and/or `JWKS_URL` with `JWT_ISSUER` and `JWT_AUDIENCE`, checking
    /// revocations in `store`. Makes no network call: the JWKS is fetched on the first token
    /// that needs it.
    pub fn from_config(config: &Config, store: Arc<dyn Store>) -> Result<Self, ConfigError> {
        let secret = config.hmac_secret()?;
        let mut authenticator = Self::hmac(secret.as_ref().map(|s| s.expose_secret().as_bytes()))
            .with_revocations(store);
        if let Some(url) = &config.jwks_url {
            let (Some(issuer), Some(audience)) = (&config.jwt_issuer, &config.jwt_audience) else {
                return Err(ConfigError(
                    "JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE".to_owned(),
                ));
            };
            let keys =
                JwksCache::new(url.clone()).map_err(|e| ConfigError(format!("JWKS_URL: {e}")))?;
            authenticator = authenticator.with_jwks(keys, issuer.clone(), audience.clone());
        }
        Ok(authenticator)
    }

    /// Sessions signed with `secret` only (none: HMAC tokens are refused); no revocations.
    pub fn hmac(secret: Option<&[u8]>) -> Self {
        Self {
            hmac_secret: secret.map(DecodingKey::from_secret),
            external: None,
            revocations: None,
        }
    }

    /// Also accept tokens of `issuer` for `audience`, signed by a key in `keys`.
    #[must_use]
    pub fn with_jwks(mut self, keys: JwksCache, issuer: String, audience: String) -> Self {
        self.external = Some(ExternalIssuer {
            keys,
            issuer,
            audience,
        });
        self
    }

    /// Refuse tokens revoked in `store`, and revoke into it.
    #[must_use]
    pub fn with_revocations(mut self, store: Arc<dyn Store>) -> Self {
        self.revocations = Some(store);
        self
    }

    /// The identity `token` proves, unless it is invalid or revoked.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let verified = self.verify_signed(token).await?;
        if let (Some(store), Some(jti)) = (&self.revocations, &verified.jti) {
            if store
                .is_token_revoked(jti)
                .await
                .map_err(AuthError::RevocationsUnavailable)?
            {
                return Err(AuthError::Revoked);
            }
        }
        Ok(verified.identity)
    }

    /// Sign `token` out: deny its `jti` until its `exp`, and answer whose session it was. A
    /// token that does not verify (or is already revoked) has nothing left to revoke; one
    /// without `jti` (an external issuer's) cannot be, which is logged.
    pub async fn revoke(&self, token: &str) -> Result<Identity, AuthError> {
        let verified = self.verify_signed(token).await?;
        let (Some(store), Some(jti)) = (&self.revocations, &verified.jti) else {
            tracing::warn!("signed out a token that cannot be revoked (no jti or no store)");
            return Ok(verified.identity);
        };
        store
            .revoke_token(jti, verified.exp.saturating_add(LEEWAY_SECS))
            .await
            .map_err(AuthError::RevocationsUnavailable)?;
        Ok(verified.identity)
    }

    /// Signature, claims and identity, without the deny-list.
    async fn verify_signed(&self, token: &str) -> Result<Verified, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLarge);
        }
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if is_asymmetric(header.alg) {
            let external = self
                .external
                .as_ref()
                .ok_or(AuthError::AlgorithmNotAccepted(header.alg))?;
            let key = external
                .keys
                .key_for(header.kid.as_deref(), header.alg)
                .await?;
            let validation = validation(header.alg, &external.issuer, &external.audience);
            let claims = decode::<Claims>(token, &key, &validation)
                .map_err(|e| AuthError::Invalid(e.to_string()))?
                .claims;
            external_identity(claims)
        } else {
            let key = self
                .hmac_secret
                .as_ref()
                .ok_or(AuthError::AlgorithmNotAccepted(header.alg))?;
            let validation = validation(header.alg, SESSION_ISSUER, SESSION_AUDIENCE);
            let claims = decode::<Claims>(token, key, &validation)
                .map_err(|e| AuthError::Invalid(e.to_string()))?
                .claims;
            session_identity(claims)
        }
    }
}

/// Signature with exactly `alg`, `exp`/`nbf` with leeway, and `iss`/`aud` present and equal.
fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation
}

/// A bounded, printable `jti`, if any.
fn checked_jti(jti: Option<String>) -> Result<Option<String>, AuthError> {
    match jti {
        Some(jti)
            if jti.is_empty()
                || jti.len() > MAX_JTI_LEN
                || !jti.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(AuthError::Invalid(
                "jti is not a short printable id".to_owned(),
            ))
        }
        jti => Ok(jti),
    }
}

/// One of our sessions: its email (sign-in verified it before minting), and a `jti`
/// (so it can be revoked).
fn session_identity(claims: Claims) -> Result<Verified, AuthError> {
    let jti =
        checked_jti(claims.jti)?.ok_or(AuthError::Invalid("session without jti".to_owned()))?;
    let identity = claims
        .email
        .as_deref()
        .and_then(Identity::email)
        .ok_or(AuthError::NoIdentity)?;
    Ok(Verified {
        identity,
        jti: Some(jti),
        exp: claims.exp,
    })
}

/// An external issuer's token: its verified email, else (no email at all) its subject.
fn external_identity(claims: Claims) -> Result<Verified, AuthError> {
    let jti = checked_jti(claims.jti)?;
    let identity = match claims.email.as_deref().map(str::trim) {
        Some(email) if !email.is_empty() => {
            if !is_true(claims.email_verified.as_ref()) {
                return Err(AuthError::EmailUnverified);
            }
            Identity::email(email).ok_or(AuthError::NoIdentity)?
        }
        _ => {
            let issuer = claims.iss.as_deref().unwrap_or_default();
            let sub = claims.sub.as_deref().unwrap_or_default();
            Identity::subject(issuer, sub).ok_or(AuthError::NoIdentity)?
        }
    };
    Ok(Verified {
        identity,
        jti,
        exp: claims.exp,
    })
}

fn is_true(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Public-key algorithms, verified only with JWKS keys; every other algorithm jsonwebtoken
/// parses is an HMAC one, verified only with the shared secret.
pub fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    )
}

/// Mint one of our sessions for `email`: HS256 with `secret`, [`SESSION_ISSUER`],
/// [`SESSION_AUDIENCE`], a fresh `jti`, `idp` saying who vouched for the email, valid
/// `ttl_secs`. Sign-in's sessions, `api-fn token` and the tests all mint here.
pub fn mint_session(
    secret: &[u8],
    email: &str,
    idp: &str,
    ttl_secs: u64,
) -> Result<String, AuthError> {
    let identity = Identity::email(email).ok_or(AuthError::NoIdentity)?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "email": identity.as_str(),
        "sub": identity.as_str(),
        "idp": idp,
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now.saturating_add(ttl_secs),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthError::Invalid(e.to_string()))
}

/// The bearer token, else the one `jwt` cookie (two are refused).
pub fn token_from_parts(parts: &Parts) -> Result<String, AuthError> {
    token_from_headers(&parts.headers)
}

/// [`token_from_parts`] for a handler that holds the headers.
pub fn token_from_headers(headers: &http::HeaderMap) -> Result<String, AuthError> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    match bearer {
        Some(token) => Ok(token),
        None => single_cookie(headers, SESSION_COOKIE)?.ok_or(AuthError::Missing),
    }
}

/// Value of cookie `name` from any `Cookie` header; the first if there are several.
/// For credentials use [`single_cookie`].
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    cookies(headers, name).next()
}

/// Value of cookie `name`, refusing a request that carries it more than once: which copy a
/// browser sends first depends on paths and creation times an attacker on a sibling
/// subdomain can arrange, so neither copy is trusted.
pub fn single_cookie(headers: &http::HeaderMap, name: &str) -> Result<Option<String>, AuthError> {
    let mut all = cookies(headers, name);
    let first = all.next();
    match all.next() {
        Some(_) => Err(AuthError::AmbiguousCookie),
        None => Ok(first),
    }
}

fn cookies<'a>(headers: &'a http::HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    /// Our session's claims plus `extra`.
    fn session(extra: serde_json::Value) -> String {
        let mut claims = json!({"exp": now() + 60, "iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE,
                                "jti": "j-1", "email": "e@example.com"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        hs(claims)
    }

    fn auth() -> Authenticator {
        Authenticator::hmac(Some(SECRET))
    }

    #[tokio::test]
    async fn minted_sessions_verify_and_their_identity_is_the_email() {
        let token = mint_session(SECRET, "a@example.com", "dev", 60).unwrap();
        assert_eq!(auth().verify(&token).await.unwrap().0, "a@example.com");
        assert!(mint_session(SECRET, "not an email", "dev", 60).is_err());
    }

    #[tokio::test]
    async fn sessions_need_our_issuer_audience_jti_and_an_email() {
        let a = auth();
        assert!(a.verify(&session(json!({}))).await.is_ok());
        for bad in [
            json!({"iss": "someone-else"}),
            json!({"iss": null}),
            json!({"aud": "another-site"}),
            json!({"aud": null}),
            json!({"jti": null}),
            json!({"email": null, "sub": "s", "username": "u@example.com"}),
            json!({"email": "not-an-email"}),
        ] {
            assert!(a.verify(&session(bad.clone())).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn expired_unsigned_and_exp_less_tokens_are_refused() {
        let a = auth();
        assert!(
            a.verify(&session(json!({"exp": now() - 3600})))
                .await
                .is_err()
        );
        assert!(a.verify(&session(json!({"exp": null}))).await.is_err());
        assert!(
            a.verify(&session(json!({"nbf": now() + 3600})))
                .await
                .is_err()
        );
        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJzIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert!(a.verify(none).await.is_err());
        assert!(a.verify("not.a.jwt").await.is_err());
    }

    #[test]
    fn external_identity_is_a_verified_email_or_the_subject() {
        let claims = |v: serde_json::Value| -> Claims {
            let mut base = json!({"exp": 1, "iss": "https://i.test"});
            for (k, x) in v.as_object().unwrap() {
                base[k] = x.clone();
            }
            serde_json::from_value(base).unwrap()
        };
        let id = |v| external_identity(claims(v)).map(|v| v.identity.0);
        assert_eq!(
            id(json!({"email": "e@x.test", "email_verified": true, "sub": "s"})).unwrap(),
            "e@x.test"
        );
        assert_eq!(
            id(json!({"email": "e@x.test", "email_verified": "true"})).unwrap(),
            "e@x.test"
        );
        assert!(id(json!({"email": "e@x.test", "sub": "s"})).is_err());
        assert!(id(json!({"email": "e@x.test", "email_verified": false})).is_err());
        assert!(id(json!({"username": "e@x.test"})).is_err());
        assert_eq!(
            id(json!({"sub": "e@x.test", "username": "e@x.test"})).unwrap(),
            "sub:e@x.test iss:https://i.test"
        );
    }

    #[test]
    fn one_jwt_cookie_among_others_is_found_and_two_are_refused() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; jwt=tok.en.x; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, "jwt").as_deref(), Some("tok.en.x"));
        assert_eq!(cookie(&headers, "nope"), None);
        assert_eq!(
            single_cookie(&headers, "jwt").unwrap().as_deref(),
            Some("tok.en.x")
        );
        headers.append(http::header::COOKIE, "jwt=other".parse().unwrap());
        assert!(single_cookie(&headers, "jwt").is_err());
    }
}
