//! Logging in with what the machine has: the private key first (ed25519, ECDSA, or RSA with
//! the best `rsa-sha2-*` the server offers), then the password, then keyboard-interactive
//! answering the server's hidden prompts with that same password (PAM setups often offer only
//! that). Rounds of keyboard-interactive are bounded so a chatty server cannot loop us.
//!
//! Where the password is in memory. Ours: only its `SecretString` (zeroized on drop; `ssh::open`
//! drops the credentials as soon as this function returns), exposed as a `&str` for the one
//! call that hands it over; keyboard-interactive answers are built at that call and moved into
//! it, so no copy stays with us. russh's, which we cannot reach (russh 0.54): it turns the
//! `&str` into a plain `String` inside `auth::Method::Password`, which the session keeps in
//! `common.auth_method` after a successful login (it is cleared only on failure) until the
//! connection is dropped, and frees without zeroizing; keyboard-interactive answers are freed
//! unzeroized once encoded. The packet buffers both are encoded into (`CryptoVec`) are zeroized
//! on drop. Closing that gap needs a change in russh (a zeroizing secret type in its API).

use std::sync::Arc;

use domain::kdf::KdfGate;
use domain::secret::MachineSecrets;
use russh::MethodKind;
use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use secrecy::{ExposeSecret, SecretString};

use super::{HostKeyCheck, SshError};

const MAX_KBD_ROUNDS: usize = 4;
const MAX_KBD_PROMPTS: usize = 8;

/// What a login may use: the machine's opened secrets, with its private key already decoded
/// (off the runtime, see [`Credentials::prepare`]).
pub struct Credentials {
    secrets: MachineSecrets,
    key: Option<Arc<PrivateKey>>,
}

impl Credentials {
    /// Decode the stored private key through the process's KDF gate: an encrypted key runs
    /// bcrypt-pbkdf (or PBKDF2/scrypt), which must not stall the runtime or exceed the memory
    /// budget. Create bounded its cost, so this is at most `sshkey`'s limits.
    pub async fn prepare(secrets: MachineSecrets, kdf: &KdfGate) -> Result<Self, SshError> {
        let Some(pem) = &secrets.private_key else {
            return Ok(Self { secrets, key: None });
        };
        let pem = SecretString::from(pem.expose_secret().to_owned());
        let passphrase = secrets
            .passphrase
            .as_ref()
            .map(|p| SecretString::from(p.expose_secret().to_owned()));
        let weight = domain::sshkey::kdf_memory_mib(pem.expose_secret());
        let key = kdf
            .run(weight, move || {
                decode_key(
                    pem.expose_secret(),
                    passphrase.as_ref().map(|p| p.expose_secret()),
                )
            })
            .await??;
        Ok(Self {
            secrets,
            key: Some(Arc::new(key)),
        })
    }
}

pub async fn login(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    credentials: &Credentials,
) -> Result<(), SshError> {
    let secrets = &credentials.secrets;
    let mut tried = Vec::new();
    let mut offered: Option<Vec<MethodKind>> = None;
    let allows = |offered: &Option<Vec<MethodKind>>, kind: MethodKind| {
        offered
            .as_ref()
            .is_none_or(|methods| methods.contains(&kind))
    };
    let failed = |err: russh::Error| {
        tracing::debug!(error = %err, "ssh auth transport error");
        SshError::Handshake("the server during authentication".to_owned())
    };

    if let Some(key) = &credentials.key {
        tried.push("publickey");
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(failed)?
                .flatten()
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::clone(key), hash);
        match handle
            .authenticate_publickey(user, key)
            .await
            .map_err(failed)?
        {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => offered = Some(remaining_methods.to_vec()),
        }
    }

    if let Some(password) = &secrets.password {
        if allows(&offered, MethodKind::Password) {
            tried.push("password");
            match handle
                .authenticate_password(user, password.expose_secret())
                .await
                .map_err(failed)?
            {
                AuthResult::Success => return Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => offered = Some(remaining_methods.to_vec()),
            }
        }
        if allows(&offered, MethodKind::KeyboardInteractive) {
            tried.push("keyboard-interactive");
            let mut reply = handle
                .authenticate_keyboard_interactive_start(user, None)
                .await
                .map_err(failed)?;
            for _ in 0..MAX_KBD_ROUNDS {
                match reply {
                    KeyboardInteractiveAuthResponse::Success => return Ok(()),
                    KeyboardInteractiveAuthResponse::Failure { .. } => break,
                    KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                        if prompts.len() > MAX_KBD_PROMPTS {
                            break;
                        }
                        // Hidden prompts ask for the password; visible ones (rare) get nothing.
                        // Built here and moved into russh right away (see the module comment).
                        let answers = prompts
                            .iter()
                            .map(|p| {
                                if p.echo {
                                    String::new()
                                } else {
                                    password.expose_secret().to_owned()
                                }
                            })
                            .collect();
                        reply = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await
                            .map_err(failed)?;
                    }
                }
            }
        }
    }

    Err(SshError::AuthFailed {
        user: user.to_owned(),
        tried: if tried.is_empty() {
            "no usable credential".to_owned()
        } else {
            tried.join(", ")
        },
    })
}

/// The stored key, decrypted with its passphrase when it is encrypted. Create accepted it
/// (`domain::sshkey`, kept in step with this decoder by a differential test), so a failure
/// here means the record changed under us.
fn decode_key(pem: &str, passphrase: Option<&str>) -> Result<PrivateKey, SshError> {
    match russh::keys::decode_secret_key(pem, None) {
        Ok(key) if !key.is_encrypted() => Ok(key),
        _ => {
            let passphrase = passphrase.filter(|p| !p.is_empty());
            match russh::keys::decode_secret_key(pem, passphrase) {
                Ok(key) if !key.is_encrypted() => Ok(key),
                _ => Err(SshError::BadKey),
            }
        }
    }
}
