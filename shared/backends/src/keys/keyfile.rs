//! The embedded default key provider: a 256-bit key in `DATA_DIR/master.key` (mode 0600).
//!
//! It wraps data keys with AES-256-GCM, the encryption context as associated data, so a wrapped
//! key moved to another machine's record fails to unwrap exactly as it would under KMS. It is
//! meant for a laptop: anyone who can read the key file and the database holds one of the two
//! factors KMS would otherwise guard (the master password is still needed).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::RngCore;
use zeroize::Zeroizing;

use domain::keys::{DataKey, EncryptionContext, KeyError, KeyProvider};

const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;

pub struct LocalKeyFile {
    path: PathBuf,
    cipher: Aes256Gcm,
}

impl LocalKeyFile {
    /// Open the key file, creating it (0600, never overwriting) on first start.
    pub fn open_or_create(dir: &Path) -> std::io::Result<Self> {
        domain::data_dir::create_private_dir(dir)?;
        let path = dir.join("master.key");
        domain::data_dir::tighten_if_exists(&path)?;
        let key = match read_key(&path) {
            Ok(key) => key,
            Err(err) if err.kind() == ErrorKind::NotFound => create_key(&path)?,
            Err(err) => return Err(err),
        };
        let cipher = Aes256Gcm::new_from_slice(key.as_slice())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "bad key length"))?;
        Ok(Self { path, cipher })
    }
}

fn read_key(path: &Path) -> std::io::Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    let mut file = std::fs::File::open(path)?;
    file.read_exact(key.as_mut_slice())?;
    let mut extra = [0u8; 1];
    if file.read(&mut extra)? != 0 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("{} must hold exactly 32 bytes", path.display()),
        ));
    }
    Ok(key)
}

fn create_key(path: &Path) -> std::io::Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
    // create_new: two processes racing on first start must not overwrite each other's key.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(key.as_slice())?;
            file.sync_all()?;
            Ok(key)
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => read_key(path),
        Err(err) => Err(err),
    }
}

#[async_trait]
impl KeyProvider for LocalKeyFile {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError> {
        let mut plaintext = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(plaintext.as_mut_slice());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = context.canonical_bytes();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_slice(),
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Denied("local key wrap failed".to_owned()))?;
        let mut wrapped = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        wrapped.push(FORMAT);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        Ok(DataKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let denied =
            || KeyError::Denied("wrapped data key does not open under this context".to_owned());
        let Some((&FORMAT, rest)) = wrapped.split_first() else {
            return Err(denied());
        };
        if rest.len() < NONCE_LEN {
            return Err(denied());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let aad = context.canonical_bytes();
        let opened = Zeroizing::new(
            self.cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| denied())?,
        );
        let key: [u8; 32] = opened.as_slice().try_into().map_err(|_| denied())?;
        Ok(Zeroizing::new(key))
    }

    fn describe(&self) -> String {
        format!("local key file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalKeyFile::open_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let context = EncryptionContext::for_machine("alice", 7);
        let key = first.generate_data_key(&context).await.unwrap();
        let second = LocalKeyFile::open_or_create(dir.path()).unwrap();
        let opened = second
            .decrypt_data_key(&key.wrapped, &context)
            .await
            .unwrap();
        assert_eq!(*opened, *key.plaintext);
    }

    #[tokio::test]
    async fn wrapped_key_is_bound_to_its_context() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LocalKeyFile::open_or_create(dir.path()).unwrap();
        let key = keys
            .generate_data_key(&EncryptionContext::for_machine("alice", 7))
            .await
            .unwrap();
        for other in [
            EncryptionContext::for_machine("alice", 8),
            EncryptionContext::for_machine("bob", 7),
        ] {
            assert!(keys.decrypt_data_key(&key.wrapped, &other).await.is_err());
        }
    }
}
