//! Who a request acts for. The domain only ever sees an identity that the edge has already
//! verified (a JWT, a sign-in session, a relay-to-relay proof); it never parses credentials.
//!
//! An identity is the `owner_id` of machines and vaults, so two people must never share one.
//! There are exactly two kinds, in namespaces that cannot meet:
//! * a **verified email** ([`Identity::email`]): one `@`, no whitespace, bounded; what the
//!   product's own sessions carry and what an external issuer vouches for with
//!   `email_verified: true`;
//! * an **issuer-scoped subject** ([`Identity::subject`]): `sub:<sub> iss:<issuer>`, for an
//!   external token without an email. It always contains a space, which no accepted email
//!   does, so no choice of `sub` (or of an email) can make one equal the other.
//!
//! Never a `username`: an issuer lets its users pick those, so one could pick someone's email.

/// The authenticated caller: the `owner_id` of their machines and vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity(pub String);

/// Longest accepted email (RFC 5321's path limit) and subject / issuer part.
const MAX_EMAIL_LEN: usize = 254;
const MAX_PART_LEN: usize = 255;

impl Identity {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of a verified email, if `email` is acceptable as one (see [`valid_email`]).
    pub fn email(email: &str) -> Option<Self> {
        let email = email.trim();
        valid_email(email).then(|| Self(email.to_owned()))
    }

    /// The identity of subject `sub` at `issuer`: both printable ASCII without whitespace
    /// (OIDC subjects are ASCII; issuers are URLs), so the one space separating them is
    /// unambiguous and the result is never a [`valid_email`].
    pub fn subject(issuer: &str, sub: &str) -> Option<Self> {
        let part_ok = |s: &str| {
            !s.is_empty() && s.len() <= MAX_PART_LEN && s.bytes().all(|b| b.is_ascii_graphic())
        };
        (part_ok(issuer) && part_ok(sub)).then(|| Self(format!("sub:{sub} iss:{issuer}")))
    }
}

/// Is `email` acceptable as an identity? Bounded, printable, no whitespace, exactly one `@`
/// with something on both sides.
pub fn valid_email(email: &str) -> bool {
    let bounded = !email.is_empty() && email.len() <= MAX_EMAIL_LEN;
    let printable = email
        .chars()
        .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()));
    let shaped = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    bounded && printable && shaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked() {
        assert!(valid_email("a@example.com"));
        assert!(!valid_email("a example@x"));
        assert!(!valid_email("nope"));
        assert!(!valid_email("a@b@c"));
        assert!(!valid_email("a@b\n"));
        assert!(!valid_email("a@b\u{a0}c"));
        assert!(!valid_email(""));
        assert_eq!(
            Identity::email(" a@example.com ").unwrap().as_str(),
            "a@example.com"
        );
    }

    #[test]
    fn subjects_and_emails_can_never_be_equal() {
        // Subjects chosen to look as much like an email as possible.
        let subjects = [
            ("https://issuer.test", "victim@example.com"),
            ("victim@example.com", "x"),
            ("i", "@"),
            ("a@b", "c@d"),
        ];
        for (issuer, sub) in subjects {
            let id = Identity::subject(issuer, sub).unwrap();
            assert!(!valid_email(id.as_str()), "{id:?} passes as an email");
            assert!(Identity::email(id.as_str()).is_none());
        }
        // Every accepted email has no whitespace; every subject identity has one space.
        for email in ["victim@example.com", "sub:x@y", "sub:a@b.iss:c"] {
            let id = Identity::email(email).unwrap();
            assert!(!id.as_str().chars().any(char::is_whitespace));
        }
        // Parts that would make the encoding ambiguous are refused.
        assert!(Identity::subject("https://issuer.test", "a b").is_none());
        assert!(Identity::subject("https://issuer test", "a").is_none());
        assert!(Identity::subject("", "a").is_none());
        assert!(Identity::subject("i", "").is_none());
    }
}
