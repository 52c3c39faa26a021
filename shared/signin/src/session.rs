//! The session a sign-in ends in: an HS256 JWT for the signed-in email, signed with the same
//! secret the [`edge::auth::Authenticator`] verifies (`JWT_SECRET`, or the embedded default's
//! `DATA_DIR/jwt.secret`), delivered as the `jwt` cookie.
//!
//! Cookie attributes and why: `HttpOnly` (page scripts never see the token), `SameSite=Lax`
//! (sent on the provider's top-level redirect back to us, not on cross-site subrequests or
//! POSTs), `Path=/`, `Max-Age` equal to the JWT's lifetime, and `Secure` whenever the site is
//! served over https. The token carries the product's own `iss`/`aud` and a `jti` (see
//! [`edge::auth::mint_session`]), so the authenticator can tell it from an external issuer's
//! and signing out can revoke it.

use secrecy::{ExposeSecret, SecretSlice};

use crate::SignInError;

pub use edge::auth::SESSION_COOKIE;

pub struct SessionMinter {
    secret: SecretSlice<u8>,
    ttl_secs: u64,
}

impl SessionMinter {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Self {
            secret: SecretSlice::from(secret.to_vec()),
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
        edge::auth::mint_session(self.secret.expose_secret(), email, idp, self.ttl_secs).map_err(
            |err| {
                tracing::error!(error = %err, "could not sign a session token");
                SignInError::NotConfigured("session signing failed")
            },
        )
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

pub use domain::identity::valid_email;

#[cfg(test)]
mod tests {
    use super::*;
    use edge::auth::Authenticator;

    #[tokio::test]
    async fn minted_sessions_verify() {
        let secret = b"a-test-secret-of-at-least-32-bytes!";
        let minter = SessionMinter::new(secret, 60);
        let token = minter.mint("a@example.com", "dev").unwrap();
        let auth = Authenticator::hmac(Some(secret));
        assert_eq!(auth.verify(&token).await.unwrap().0, "a@example.com");
    }

    #[test]
    fn session_cookie_attributes() {
        let minter = SessionMinter::new(b"k", 3600);
        let cookie = minter.cookie("t", true);
        assert_eq!(
            cookie,
            "jwt=t; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600; Secure"
        );
        assert!(!minter.cookie("t", false).contains("Secure"));
    }
}
