//! Checks that a private key the user uploads will actually work at connect time.
//!
//! We parse with the same `russh` decoder the relay logs in with, so "accepted at create" and
//! "usable at connect" cannot drift apart. Encrypted keys must open with the passphrase given
//! alongside them; the decoded key is dropped (and zeroized by `ssh-key`) straight away: only
//! the original text is kept, sealed in the vault.

use russh::keys::{Error as KeyError, PrivateKey, decode_secret_key};

/// Why a private key was refused; each maps to a 400 message that names the problem.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error(
        "private_key could not be parsed (expected an OpenSSH or PEM RSA/ECDSA/Ed25519 private key)"
    )]
    Unparseable,
    #[error("private_key is encrypted; passphrase is required")]
    PassphraseRequired,
    #[error("passphrase does not decrypt private_key")]
    WrongPassphrase,
}

/// Parse `pem`, decrypting with `passphrase` when the key is encrypted.
pub fn parse_private_key(pem: &str, passphrase: Option<&str>) -> Result<PrivateKey, KeyProblem> {
    let passphrase = passphrase.filter(|p| !p.is_empty());
    match decode_secret_key(pem, None) {
        Ok(key) if !key.is_encrypted() => return Ok(key),
        Ok(_) | Err(KeyError::KeyIsEncrypted) => {}
        Err(_) if looks_encrypted(pem) => {}
        Err(_) => return Err(KeyProblem::Unparseable),
    }
    let Some(passphrase) = passphrase else {
        return Err(KeyProblem::PassphraseRequired);
    };
    match decode_secret_key(pem, Some(passphrase)) {
        Ok(key) if !key.is_encrypted() => Ok(key),
        _ => Err(KeyProblem::WrongPassphrase),
    }
}

/// PEM encodings announce encryption in their armour; OpenSSH keys are caught by the decoder.
fn looks_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || pem.contains("Proc-Type: 4,ENCRYPTED")
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::{LineEnding, rand_core::OsRng};
    use russh::keys::{Algorithm, PrivateKey};

    fn openssh(passphrase: Option<&str>) -> String {
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let key = match passphrase {
            Some(p) => key.encrypt(&mut OsRng, p).unwrap(),
            None => key,
        };
        key.to_openssh(LineEnding::LF).unwrap().to_string()
    }

    #[test]
    fn plain_openssh_key_parses() {
        assert!(parse_private_key(&openssh(None), None).is_ok());
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let pem = openssh(Some("correct horse"));
        assert_eq!(
            parse_private_key(&pem, None).unwrap_err(),
            KeyProblem::PassphraseRequired
        );
        assert_eq!(
            parse_private_key(&pem, Some("wrong")).unwrap_err(),
            KeyProblem::WrongPassphrase
        );
        assert!(parse_private_key(&pem, Some("correct horse")).is_ok());
    }

    #[test]
    fn garbage_is_unparseable() {
        for junk in [
            "",
            "hello",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
        ] {
            assert_eq!(
                parse_private_key(junk, None).unwrap_err(),
                KeyProblem::Unparseable,
                "{junk}"
            );
        }
    }
}
