//! The sign-in attempt's secrets, carried by the browser in one signed cookie between
//! `GET /api/v1/auth/url` and `GET /api/v1/auth/callback`.
//!
//! The cookie is an HS256 JWT under a key *derived* from the session secret (SHA-256 over a
//! label and the secret), so a state cookie can never pass as a session token or the other way
//! round. It holds `state` (compared with the callback's query in constant time), the PKCE
//! `verifier`, the OIDC `nonce`, the provider and the exact redirect URI, and expires after
//! [`STATE_TTL_SECS`]. The callback always clears it, so a code cannot be redeemed twice
//! through the same browser; the provider's single-use codes cover a stolen cookie.
//!
//! Integrity is what matters here (a forged cookie must not verify); the verifier's secrecy
//! rests on the cookie being HttpOnly and scoped to `/api/v1/auth`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SignInError;

/// Name of the cookie that carries a sign-in attempt.
pub const STATE_COOKIE: &str = "sushi_signin";
/// Path the state cookie is scoped to.
pub const STATE_COOKIE_PATH: &str = "/api/v1/auth";
/// How long a person has to complete the provider's pages.
pub const STATE_TTL_SECS: u64 = 600;
const MAX_COOKIE_LEN: usize = 4096;

/// 32 random bytes, base64url: `state`, `nonce` and the PKCE verifier (43 characters, within
/// RFC 7636's 43–128).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE `S256`: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Equal-length byte comparison whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Serialize, Deserialize)]
pub struct Attempt {
    pub state: String,
    pub verifier: String,
    pub nonce: String,
    pub provider: String,
    pub redirect_uri: String,
    /// Where to send the browser afterwards: a same-origin path.
    pub return_to: String,
    pub exp: u64,
}

/// Signs and opens [`Attempt`] cookies.
pub struct StateSealer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl StateSealer {
    pub fn new(session_secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"sushi sign-in state cookie v1\0");
        hasher.update(session_secret);
        let key = hasher.finalize();
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    pub fn seal(&self, attempt: &Attempt) -> Result<String, SignInError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), attempt, &self.encoding).map_err(
            |err| {
                tracing::error!(error = %err, "could not sign the sign-in state");
                SignInError::NotConfigured("state signing failed")
            },
        )
    }

    /// The attempt in `cookie`, if it is ours, unexpired, and its `state` equals `state`.
    pub fn open(&self, cookie: Option<&str>, state: &str) -> Result<Attempt, SignInError> {
        let cookie = cookie
            .filter(|c| !c.is_empty() && c.len() <= MAX_COOKIE_LEN)
            .ok_or(SignInError::StateMissing)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_aud = false;
        let attempt = jsonwebtoken::decode::<Attempt>(cookie, &self.decoding, &validation)
            .map_err(|err| {
                tracing::info!(reason = %err, "sign-in state cookie refused");
                SignInError::StateMissing
            })?
            .claims;
        if !constant_time_eq(attempt.state.as_bytes(), state.as_bytes()) {
            tracing::warn!("sign-in state does not match its cookie");
            return Err(SignInError::StateMismatch);
        }
        Ok(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(exp: u64) -> Attempt {
        Attempt {
            state: "s1".into(),
            verifier: random_token(),
            nonce: random_token(),
            provider: "oidc".into(),
            redirect_uri: "http://localhost/cb".into(),
            return_to: "/".into(),
            exp,
        }
    }

    #[test]
    fn a_sealed_attempt_opens_only_with_its_state_and_key() {
        let sealer = StateSealer::new(b"secret");
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        let cookie = sealer.seal(&attempt(exp)).unwrap();
        assert!(sealer.open(Some(&cookie), "s1").is_ok());
        assert!(matches!(
            sealer.open(Some(&cookie), "s2"),
            Err(SignInError::StateMismatch)
        ));
        assert!(matches!(
            StateSealer::new(b"other").open(Some(&cookie), "s1"),
            Err(SignInError::StateMissing)
        ));
        assert!(matches!(
            sealer.open(None, "s1"),
            Err(SignInError::StateMissing)
        ));
        let expired = sealer.seal(&attempt(exp - 120)).unwrap();
        assert!(matches!(
            sealer.open(Some(&expired), "s1"),
            Err(SignInError::StateMissing)
        ));
    }

    #[test]
    fn a_session_token_is_not_a_state_cookie() {
        let session = edge::auth::mint_session(b"secret", "a@b", "dev", 60).unwrap();
        assert!(
            StateSealer::new(b"secret")
                .open(Some(&session), "s1")
                .is_err()
        );
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
