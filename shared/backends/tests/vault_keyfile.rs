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

#[tokio::test]
async fn an_organization_key_opens_through_a_members_copy_and_rotation_retires_old_copies() {
    let (_dir, keys) = keys();
    let org = org_owner_id("platform");
    let (record, opened) = VaultRecord::new_organization(&org);
    assert!(record.is_organization());
    // No password opens an organization's record: its seed lives only in copies.
    assert!(record.unlock(&pw("anything")).is_err());
    let alice = VaultRecord::create("alice@x", &pw("alice pw")).unwrap();
    let bob = VaultRecord::create("bob@x", &pw("bob pw")).unwrap();
    let alices = opened.seal_copy(&alice).unwrap();
    let bobs = opened.seal_copy(&bob).unwrap();
    let sealed = seal(&keys, &record, 7, &secrets()).await.unwrap();

    let alice_unlocked = alice.unlock(&pw("alice pw")).unwrap();
    let via_alice = alice_unlocked.open_copy(&alices).unwrap();
    let secret = via_alice.open(&keys, 7, &sealed).await.unwrap();
    assert_eq!(secret.password.unwrap().expose_secret(), "ssh-password");
    // A copy is bound to its member: Alice cannot use Bob's.
    assert!(alice_unlocked.open_copy(&bobs).is_err());

    // Rotation: the new copies carry both seeds; machines re-sealed to the new key no longer
    // open with an old copy, whatever generation it claims.
    let (rotated, reopened) = via_alice.rotate_org(&record).unwrap();
    assert_eq!(reopened.generations(), vec![2, 1]);
    let resealed = reopened.reseal(7, &sealed, &rotated).unwrap();
    let alices_new = reopened.seal_copy(&alice).unwrap();
    let fresh = alice_unlocked.open_copy(&alices_new).unwrap();
    assert!(fresh.open(&keys, 7, &resealed).await.is_ok());
    let bob_old = bob.unlock(&pw("bob pw")).unwrap().open_copy(&bobs).unwrap();
    assert!(bob_old.open(&keys, 7, &resealed).await.is_err());
    let mut forged = resealed.clone();
    forged.vault_gen = 1;
    assert!(bob_old.open(&keys, 7, &forged).await.is_err());
}
