//! A cached JSON Web Key Set, for RS256/ES256 tokens from an OIDC issuer.
//!
//! Keys are fetched lazily on first use (so a Lambda cold start pays nothing until a token
//! arrives), cached, and re-fetched when a token names an unknown `kid` (key rotation) — but at
//! most once per `MIN_REFRESH` so a stream of junk kids cannot turn us into a load generator
//! against the issuer. The fetch is bounded in time and size.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use super::AuthError;

const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_AGE: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;

struct Cached {
    keys: JwkSet,
    fetched_at: Instant,
}

pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    cache: Mutex<Option<Cached>>,
}

impl JwksCache {
    pub fn new(url: String) -> Result<Self, AuthError> {
        let client = crate::tls::http_client()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        Ok(Self {
            url,
            client,
            cache: Mutex::new(None),
        })
    }

    /// The decoding key for `kid`, usable with `alg` only.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        // The lock is held across the fetch on purpose: concurrent requests during a refresh
        // wait for the one fetch instead of each starting their own.
        let mut cache = self.cache.lock().await;
        let stale = cache
            .as_ref()
            .is_none_or(|c| c.fetched_at.elapsed() > MAX_AGE);
        if stale {
            *cache = Some(self.fetch().await?);
        }
        if let Some(jwk) = cache.as_ref().and_then(|c| find(&c.keys, kid)) {
            return key_from(jwk, alg);
        }
        let may_refresh = cache
            .as_ref()
            .is_none_or(|c| c.fetched_at.elapsed() >= MIN_REFRESH);
        if may_refresh {
            *cache = Some(self.fetch().await?);
            if let Some(jwk) = cache.as_ref().and_then(|c| find(&c.keys, kid)) {
                return key_from(jwk, alg);
            }
        }
        Err(AuthError::UnknownKey(kid.map(str::to_owned)))
    }

    async fn fetch(&self) -> Result<Cached, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::KeysUnavailable(e.to_string());
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(AuthError::KeysUnavailable(
                    "JWKS document too large".to_owned(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let keys: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| AuthError::KeysUnavailable(format!("JWKS does not parse: {e}")))?;
        tracing::info!(url = %self.url, keys = keys.keys.len(), "fetched JWKS");
        Ok(Cached {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// With a `kid`, the key with that id; without one, the set's only key (some issuers omit it).
fn find<'a>(set: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => set.find(kid),
        None => match set.keys.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    }
}

/// Refuse a key whose type or declared algorithm does not fit the token's `alg`.
fn key_from(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    let family_fits = matches!(
        (&jwk.algorithm, alg),
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            Algorithm::ES256 | Algorithm::ES384
        ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    );
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(declared) => key_algorithm_name(declared) == Some(alg),
    };
    if !family_fits || !declared_fits {
        return Err(AuthError::Invalid(format!(
            "key {:?} cannot verify {alg:?}",
            jwk.common.key_id
        )));
    }
    DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string()))
}

fn key_algorithm_name(declared: KeyAlgorithm) -> Option<Algorithm> {
    Some(match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
