//! Who is calling: JWT verification for every authenticated route (api-fn and relay alike).
//!
//! Tokens come from `Authorization: Bearer` or the `jwt` cookie. Two key sources, by
//! configuration: an HMAC secret (`JWT_SECRET`, HS256, the seed's mode) and a JWKS URL (RS256/
//! ES256, any OIDC issuer). Algorithm confusion is impossible by construction: the header's
//! `alg` picks the key *source* (HMAC algorithms only ever meet the secret, asymmetric ones only
//! JWKS keys whose type and declared algorithm match), and `none` does not parse at all.
//! Every failure is the same 401 to the client; the reason goes to the log.

pub mod jwks;

use domain::config::{Config, ConfigError};
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

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token in Authorization header or jwt cookie")]
    Missing,
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
    #[error("token names no usable identity (email, username or sub)")]
    NoIdentity,
    #[error("key set unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Deserialize)]
struct Claims {
    email: Option<String>,
    username: Option<String>,
    sub: Option<String>,
}

/// Verifies tokens. Cheap to share (`Arc`); the JWKS cache inside is shared too.
pub struct Authenticator {
    hmac_secret: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    /// The verifier this deployment's configuration asks for: `JWT_SECRET` (or the embedded
    /// default's secret file) and/or `JWKS_URL`, with `JWT_ISSUER`/`JWT_AUDIENCE`. Makes no
    /// network call: the JWKS is fetched on the first token that needs it.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let secret = config.hmac_secret()?;
        let jwks = config
            .jwks_url
            .clone()
            .map(JwksCache::new)
            .transpose()
            .map_err(|e| ConfigError(format!("JWKS_URL: {e}")))?;
        Ok(Self::new(
            secret.as_ref().map(|s| s.expose_secret().as_bytes()),
            jwks,
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
        ))
    }

    pub fn new(
        hmac_secret: Option<&[u8]>,
        jwks: Option<JwksCache>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            hmac_secret: hmac_secret.map(DecodingKey::from_secret),
            jwks,
            issuer,
            audience,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLarge);
        }
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let key = if is_asymmetric(header.alg) {
            let jwks = self
                .jwks
                .as_ref()
                .ok_or(AuthError::AlgorithmNotAccepted(header.alg))?;
            jwks.key_for(header.kid.as_deref(), header.alg).await?
        } else {
            self.hmac_secret
                .clone()
                .ok_or(AuthError::AlgorithmNotAccepted(header.alg))?
        };
        let claims = decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        identity_of(claims)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // A configured issuer/audience must also be *present*, not merely right when present.
        let mut required = vec!["exp"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
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

/// `email`, else `username`, else `sub`: the first non-blank one, bounded and printable.
fn identity_of(claims: Claims) -> Result<Identity, AuthError> {
    [claims.email, claims.username, claims.sub]
        .into_iter()
        .flatten()
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
        .filter(|value| value.len() <= 256 && !value.chars().any(char::is_control))
        .map(Identity)
        .ok_or(AuthError::NoIdentity)
}

/// Mint an HS256 token for `identity`, valid `ttl_secs`: the embedded default's way to get a
/// token without an identity provider (`api-fn token --email ...`), and the tests'.
pub fn mint_hs256(secret: &[u8], identity: &str, ttl_secs: u64) -> Result<String, AuthError> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "email": identity,
        "sub": identity,
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

/// The bearer token, else the `jwt` cookie.
pub fn token_from_parts(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| cookie(&parts.headers, "jwt"))
}

/// Value of cookie `name` from any `Cookie` header.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Axum extractor: the authenticated caller, or the 401 envelope.
#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    fn auth() -> Authenticator {
        Authenticator::new(Some(b"secret"), None, None, None)
    }

    #[tokio::test]
    async fn identity_prefers_email_then_username_then_sub() {
        let exp = now() + 60;
        let a = auth();
        let id = |c| async { a.verify(&hs(c)).await.unwrap().0 };
        assert_eq!(
            id(json!({"exp": exp, "email": "e@x", "username": "u", "sub": "s"})).await,
            "e@x"
        );
        assert_eq!(
            id(json!({"exp": exp, "username": "u", "sub": "s"})).await,
            "u"
        );
        assert_eq!(id(json!({"exp": exp, "sub": "s"})).await, "s");
    }

    #[tokio::test]
    async fn expired_unsigned_and_exp_less_tokens_are_refused() {
        let a = auth();
        assert!(
            a.verify(&hs(json!({"exp": now() - 3600, "sub": "s"})))
                .await
                .is_err()
        );
        assert!(a.verify(&hs(json!({"sub": "s"}))).await.is_err());
        assert!(
            a.verify(&hs(
                json!({"exp": now() + 60, "nbf": now() + 3600, "sub": "s"})
            ))
            .await
            .is_err()
        );
        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJzIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert!(a.verify(none).await.is_err());
        assert!(a.verify("not.a.jwt").await.is_err());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_enforced_when_configured() {
        let a = Authenticator::new(
            Some(b"secret"),
            None,
            Some("iss-a".into()),
            Some("aud-a".into()),
        );
        let exp = now() + 60;
        assert!(
            a.verify(&hs(
                json!({"exp": exp, "sub": "s", "iss": "iss-a", "aud": "aud-a"})
            ))
            .await
            .is_ok()
        );
        assert!(
            a.verify(&hs(
                json!({"exp": exp, "sub": "s", "iss": "iss-b", "aud": "aud-a"})
            ))
            .await
            .is_err()
        );
        assert!(
            a.verify(&hs(
                json!({"exp": exp, "sub": "s", "iss": "iss-a", "aud": "aud-b"})
            ))
            .await
            .is_err()
        );
        assert!(
            a.verify(&hs(json!({"exp": exp, "sub": "s"})))
                .await
                .is_err()
        );
    }

    #[test]
    fn cookie_parsing_finds_jwt_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; jwt=tok.en.x; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, "jwt").as_deref(), Some("tok.en.x"));
        assert_eq!(cookie(&headers, "nope"), None);
    }
}
