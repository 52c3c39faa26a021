//! The session a sign-in ends in: an HS256 JWT for the signed-in email, signed with the same
//! secret the [`edge::auth::Authenticator`] verifies (`JWT_SECRET`, or the embedded default's
//! `DATA_DIR/jwt.secret`), delivered as the `jwt` cookie.
//!
//! Cookie attributes and why: `HttpOnly` (page scripts never see the token), `SameSite=Lax`
//! (sent on the provider's top-level redirect back to us, not on cross-site subrequests or
//! POSTs), `Path=/`, `Max-Age` equal to the JWT's lifetime, and `Secure` whenever the site is
//! served over https. When `JWT_ISSUER`/`JWT_AUDIENCE` are configured the token carries them,
//! because the authenticator then requires them on every token.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretSlice};

use crate::SignInError;

pub const SESSION_COOKIE: &str = "jwt";

pub struct SessionMinter {
    secret: SecretSlice<u8>,
    issuer: Option<String>,
    audience: Option<String>,
    ttl_secs: u64,
}

impl SessionMinter {
    pub fn new(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
        ttl_secs: u64,
    ) -> Self {
        Self {
            secret: SecretSlice::from(secret.to_vec()),
            issuer,
            audience,
            ttl_secs,
        }
    }

    pub fn secret(&self) -> &[u8] {
        self.secret.expose_secret()
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A session token for `email`, saying which provider vouched for it (`idp`).
    pub fn mint(&self, email: &str, idp: &str) -> Result<String, SignInError> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = serde_json::json!({
            "email": email,
            "sub": email,
            "idp": idp,
            "iat": now,
            "exp": now.saturating_add(self.ttl_secs),
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(issuer) = &self.issuer {
                map.insert("iss".to_owned(), issuer.clone().into());
            }
            if let Some(audience) = &self.audience {
                map.insert("aud".to_owned(), audience.clone().into());
            }
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose_secret()),
        )
        .map_err(|err| {
            tracing::error!(error = %err, "could not sign a session token");
            SignInError::NotConfigured("session signing failed")
        })
    }

    /// `Set-Cookie` value carrying `token`.
    pub fn cookie(&self, token: &str, secure: bool) -> String {
        set_cookie(SESSION_COOKIE, token, "/", self.ttl_secs, secure)
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, with `Max-Age` (0 deletes).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Lax; Path={path}; Max-Age={max_age}{secure}")
}

/// `Set-Cookie` value that deletes cookie `name` at `path`.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, 0, secure)
}

/// Is `email` acceptable as an identity? Bounded, printable, one `@`, no spaces.
pub fn valid_email(email: &str) -> bool {
    let bounded = !email.is_empty() && email.len() <= 254;
    let printable = email
        .chars()
        .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()));
    let shaped = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    bounded && printable && shaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::auth::Authenticator;

    #[tokio::test]
    async fn minted_sessions_verify_with_the_configured_issuer_and_audience() {
        let minter = SessionMinter::new(b"k", Some("iss".into()), Some("aud".into()), 60);
        let token = minter.mint("a@example.com", "dev").unwrap();
        let auth = Authenticator::new(Some(b"k"), None, Some("iss".into()), Some("aud".into()));
        assert_eq!(auth.verify(&token).await.unwrap().0, "a@example.com");
    }

    #[test]
    fn session_cookie_attributes() {
        let minter = SessionMinter::new(b"k", None, None, 3600);
        let cookie = minter.cookie("t", true);
        assert_eq!(
            cookie,
            "jwt=t; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600; Secure"
        );
        assert!(!minter.cookie("t", false).contains("Secure"));
    }

    #[test]
    fn emails_are_checked() {
        assert!(valid_email("a@example.com"));
        assert!(!valid_email("a example@x"));
        assert!(!valid_email("nope"));
        assert!(!valid_email("a@b@c"));
        assert!(!valid_email("a@b\n"));
        assert!(!valid_email(""));
    }
}
