//! The vault's construction against the real local key file: sealing needs only the public
//! key and the key provider, opening needs the master password *and* the provider, and sealed
//! blobs are bound to their owner and machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use backends::keys::LocalKeyFile;
use domain::secret::MachineSecrets;
use domain::vault::*;
use secrecy::{ExposeSecret, SecretString};

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn secrets() -> MachineSecrets {
    MachineSecrets {
        password: Some(pw("ssh-password")),
        ..Default::default()
    }
}

fn keys() -> (tempfile::TempDir, LocalKeyFile) {
    let dir = tempfile::tempdir().unwrap();
    let keys = LocalKeyFile::open_or_create(dir.path()).unwrap();
    (dir, keys)
}

#[tokio::test]
async fn sealed_secrets_open_with_the_master_password_only() {
    let (_dir, keys) = keys();
    let vault = VaultRecord::create("alice", &pw("master one")).unwrap();
    let sealed = seal(&keys, &vault, 1, &secrets()).await.unwrap();
    let opened = vault
        .unlock(&pw("master one"))
        .unwrap()
        .open(&keys, 1, &sealed)
        .await
        .unwrap();
    assert_eq!(opened.password.unwrap().expose_secret(), "ssh-password");
    assert!(matches!(
        vault.unlock(&pw("master two")),
        Err(VaultError::WrongPassword)
    ));
}

#[tokio::test]
async fn ciphertexts_are_bound_to_owner_and_machine() {
    let (_dir, keys) = keys();
    let vault = VaultRecord::create("alice", &pw("pw")).unwrap();
    let sealed = seal(&keys, &vault, 1, &secrets()).await.unwrap();
    let unlocked = vault.unlock(&pw("pw")).unwrap();
    assert!(matches!(
        unlocked.open(&keys, 2, &sealed).await,
        Err(VaultError::Tampered)
    ));
    // Same password, different owner: the vault seed is a different key pair anyway, but even
    // a vault record copied under another owner id must not open.
    let mut copied = vault.clone();
    copied.owner_id = "mallory".to_owned();
    assert!(copied.unlock(&pw("pw")).is_err());
}

#[tokio::test]
async fn rotation_reseals_without_kms_and_retires_the_old_password() {
    let (_dir, keys) = keys();
    let vault = VaultRecord::create("alice", &pw("old")).unwrap();
    let sealed = seal(&keys, &vault, 9, &secrets()).await.unwrap();
    let unlocked = vault.unlock(&pw("old")).unwrap();
    let rotated = vault.rotate(&unlocked, &pw("new")).unwrap();
    assert!(matches!(
        rotated.unlock(&pw("old")),
        Err(VaultError::WrongPassword)
    ));
    // Mid-rotation, the unsealed machine still opens through `previous`.
    let mid = rotated.unlock(&pw("new")).unwrap();
    assert!(mid.open(&keys, 9, &sealed).await.is_ok());
    let resealed = mid.reseal(9, &sealed, &rotated).unwrap();
    assert_eq!(resealed.wrapped_data_key, sealed.wrapped_data_key);
    let done = rotated.without_previous();
    let after = done.unlock(&pw("new")).unwrap();
    assert!(after.open(&keys, 9, &resealed).await.is_ok());
    assert!(matches!(
        after.open(&keys, 9, &sealed).await,
        Err(VaultError::UnknownGeneration(1))
    ));
}

#[test]
fn absurd_kdf_parameters_are_refused_before_running() {
    let mut vault = VaultRecord::create("alice", &pw("pw")).unwrap();
    vault.kdf.memory_kib = u32::MAX;
    assert!(matches!(
        vault.unlock(&pw("pw")),
        Err(VaultError::Corrupt(_))
    ));
}
