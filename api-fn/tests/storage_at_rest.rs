//! What is on disk (the raw DynamoDB items, the SQLite file) holds no plaintext secret, and the
//! ciphertexts only open for their own item, with the master password and the key service.
//! The opening side is the library's `Machines::open` (what the relay calls at connect), run
//! in-process against the same backend the api-fn binary wrote to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use common::{Backend, Server, machine_body, start};
use domain::{Identity, Machines};
use edge::{ApiError, ErrorCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

const MASTER: &str = "correct horse battery staple";
const PASSPHRASE: &str = "passphrase-of-the-key";

on_both_backends!(
    stored_items_contain_no_plaintext_secret,
    ciphertext_moved_to_another_item_fails_to_open,
    opening_needs_the_right_master_password,
    changing_the_master_password_reseals_every_machine,
);

/// The library's view of the server's backend, for opening what the server sealed.
struct Library {
    machines: std::sync::Arc<Machines>,
}

/// The code the API would answer an error of the library with.
fn code<T>(result: Result<T, domain::DomainError>) -> Result<T, ErrorCode> {
    result.map_err(|err| ApiError::from(err).code())
}

async fn library_for(server: &Server) -> Library {
    Library {
        machines: common::domain_for(server).await,
    }
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

async fn create_machines(server: &Server) -> (u64, u64) {
    let alice = server.user("alice@example.com");
    assert_eq!(alice.set_master_password(MASTER).await.status, 200);
    let mut keyed = machine_body("keyed");
    keyed["private_key"] = json!(common::ssh_keygen(PASSPHRASE));
    keyed["passphrase"] = json!(PASSPHRASE);
    let a = alice
        .post_json("/api/v1/machine", &machine_body("first"))
        .await;
    let b = alice.post_json("/api/v1/machine", &keyed).await;
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:?} {:?}",
        a.body,
        b.body
    );
    (
        a.data()["id"].as_u64().unwrap(),
        b.data()["id"].as_u64().unwrap(),
    )
}

/// Every byte the backend stores, as text we can search (binary attributes also as base64).
async fn raw_storage(server: &Server) -> String {
    match &server.aws {
        Some(aws) => {
            let sdk = backends::aws::load_sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let scan = client.scan().table_name(&aws.table).send().await.unwrap();
            let mut text = String::new();
            for item in scan.items() {
                for (name, value) in item {
                    text.push_str(name);
                    text.push(' ');
                    if let Ok(s) = value.as_s() {
                        text.push_str(s);
                    }
                    if let Ok(b) = value.as_b() {
                        text.push_str(&String::from_utf8_lossy(b.as_ref()));
                        text.push_str(
                            &base64::engine::general_purpose::STANDARD.encode(b.as_ref()),
                        );
                    }
                    text.push('\n');
                }
            }
            assert!(text.contains("MACHINE#"), "scan found the machines");
            text
        }
        None => {
            let mut text = String::new();
            for entry in std::fs::read_dir(server.data_dir.path()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            assert!(text.contains("server.example.com"), "read the database");
            text
        }
    }
}

async fn stored_items_contain_no_plaintext_secret(backend: Backend) {
    let server = start(backend);
    create_machines(&server).await;
    let raw = raw_storage(&server).await;
    for secret in [
        "ssh-password-of-first",
        "ssh-password-of-keyed",
        PASSPHRASE,
        MASTER,
        "OPENSSH PRIVATE KEY",
        "b3BlbnNzaC1rZXktdjE",
    ] {
        assert!(!raw.contains(secret), "{secret:?} is stored in clear");
    }
}

async fn ciphertext_moved_to_another_item_fails_to_open(backend: Backend) {
    let server = start(backend);
    let (first, keyed) = create_machines(&server).await;
    let library = library_for(&server).await;
    let alice = Identity("alice@example.com".to_owned());
    let (_, secrets) = library
        .machines
        .open(&alice, first, pw(MASTER))
        .await
        .unwrap();
    assert_eq!(
        secrets.password.unwrap().expose_secret(),
        "ssh-password-of-first"
    );
    let (_, secrets) = library
        .machines
        .open(&alice, keyed, pw(MASTER))
        .await
        .unwrap();
    assert_eq!(secrets.passphrase.unwrap().expose_secret(), PASSPHRASE);

    let store = library.machines.store();
    let donor = store.get_machine(&alice.0, keyed).await.unwrap().unwrap();
    let target = store.get_machine(&alice.0, first).await.unwrap().unwrap();

    // Only the wrapped data key moved: the HPKE layer opens, the key service refuses the
    // data key because its encryption context names the other machine.
    let mut key_only = target.sealed.clone();
    key_only.wrapped_data_key = donor.sealed.wrapped_data_key.clone();
    assert!(
        store
            .replace_sealed(&alice.0, first, target.sealed.vault_gen, &key_only)
            .await
            .unwrap()
    );
    let refused = code(library.machines.open(&alice, first, pw(MASTER)).await);
    assert!(
        matches!(refused, Err(ErrorCode::Internal)),
        "moved data key opened: {:?}",
        refused.map(|_| ())
    );

    // The whole sealed blob moved.
    assert!(
        store
            .replace_sealed(&alice.0, first, key_only.vault_gen, &donor.sealed)
            .await
            .unwrap()
    );
    let moved = code(library.machines.open(&alice, first, pw(MASTER)).await);
    assert!(
        matches!(moved, Err(ErrorCode::Internal)),
        "moved ciphertext opened: {:?}",
        moved.map(|_| ())
    );
    // The donor itself still opens.
    assert!(
        library
            .machines
            .open(&alice, keyed, pw(MASTER))
            .await
            .is_ok()
    );
}

async fn opening_needs_the_right_master_password(backend: Backend) {
    let server = start(backend);
    let (first, _) = create_machines(&server).await;
    let library = library_for(&server).await;
    let alice = Identity("alice@example.com".to_owned());
    let wrong = code(
        library
            .machines
            .open(&alice, first, pw("not the master password"))
            .await,
    );
    assert!(matches!(wrong, Err(ErrorCode::InvalidMasterPassword)));
    let bob = Identity("bob@example.com".to_owned());
    assert!(matches!(
        code(library.machines.open(&bob, first, pw(MASTER)).await),
        Err(ErrorCode::MachineNotFound)
    ));
}

async fn changing_the_master_password_reseals_every_machine(backend: Backend) {
    let server = start(backend);
    let (first, keyed) = create_machines(&server).await;
    let library = library_for(&server).await;
    let alice_id = Identity("alice@example.com".to_owned());
    let before = library
        .machines
        .store()
        .get_machine(&alice_id.0, first)
        .await
        .unwrap()
        .unwrap();
    let changed = server
        .user("alice@example.com")
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "brand new master", "current_password": MASTER}),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.data()["resealed"], 2);
    let after = library
        .machines
        .store()
        .get_machine(&alice_id.0, first)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        before.sealed.ciphertext, after.sealed.ciphertext,
        "outer layer re-sealed"
    );
    assert_eq!(
        before.sealed.wrapped_data_key, after.sealed.wrapped_data_key,
        "no new KMS data key needed"
    );
    assert!(after.sealed.vault_gen > before.sealed.vault_gen);
    for id in [first, keyed] {
        assert!(matches!(
            code(library.machines.open(&alice_id, id, pw(MASTER)).await),
            Err(ErrorCode::InvalidMasterPassword)
        ));
        assert!(
            library
                .machines
                .open(&alice_id, id, pw("brand new master"))
                .await
                .is_ok()
        );
    }
    // The old ciphertext, restored from a backup, does not open with the old password either.
    let vault = library
        .machines
        .store()
        .get_vault(&alice_id.0)
        .await
        .unwrap()
        .unwrap();
    assert!(vault.previous.is_none(), "rotation finished");
    assert!(
        library
            .machines
            .store()
            .replace_sealed(&alice_id.0, first, after.sealed.vault_gen, &before.sealed)
            .await
            .unwrap()
    );
    assert!(
        library
            .machines
            .open(&alice_id, first, pw(MASTER))
            .await
            .is_err()
    );
    assert!(
        library
            .machines
            .open(&alice_id, first, pw("brand new master"))
            .await
            .is_err()
    );
}
