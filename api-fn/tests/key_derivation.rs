//! Key derivations are the one place a single request can burn seconds of CPU or tens of MiB on
//! purpose: decrypting an uploaded private key (bcrypt-pbkdf, PBKDF2, scrypt) and Argon2id for
//! the master password. Absurd costs are refused before any work; allowed ones run off the
//! async runtime, so other requests are served meanwhile; and the process's KDF memory budget
//! bounds how many run at once, refusing the overflow with 503 `busy` and `Retry-After`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Backend, machine_body, start, start_with};
use futures_util::future::join_all;
use serde_json::{Value, json};

const MASTER: &str = "correct horse battery staple";
const PASSPHRASE: &str = "the key's passphrase";

/// An encrypted OpenSSH ed25519 key whose bcrypt-pbkdf runs `rounds` rounds (`ssh-keygen -a`).
fn keygen_with_rounds(rounds: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let status = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            PASSPHRASE,
            "-a",
            &rounds.to_string(),
            "-f",
        ])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(status.success());
    std::fs::read_to_string(path).unwrap()
}

/// The same key with its KDF header claiming `rounds`: what an attacker uploads. The header is
/// `"openssh-key-v1\0"`, then the cipher name, the KDF name and the KDF options (salt, rounds)
/// as length-prefixed strings; the rounds are the options' last four bytes.
fn with_bcrypt_rounds(pem: &str, rounds: u32) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut at = b"openssh-key-v1\0".len();
    let mut next_string = |blob: &[u8]| {
        let len = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len;
        at
    };
    next_string(&blob); // cipher name
    next_string(&blob); // KDF name
    let options_end = next_string(&blob);
    blob[options_end - 4..options_end].copy_from_slice(&rounds.to_be_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

fn key_body(key: &str) -> Value {
    let mut body = machine_body("keyed");
    body.as_object_mut().unwrap().remove("password");
    body["private_key"] = json!(key);
    body["passphrase"] = json!(PASSPHRASE);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_keys_never_stall_other_users_and_bombs_are_refused_at_once() {
    let server = start(Backend::Embedded);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    alice.set_master_password(MASTER).await;
    let costly = keygen_with_rounds(256);
    let bomb = with_bcrypt_rounds(&costly, u32::MAX);

    // Three bombs at once (2^32-1 rounds would never finish): refused before deriving.
    let bomb_body = key_body(&bomb);
    let started = Instant::now();
    let bombs = join_all((0..3).map(|_| alice.post_json("/api/v1/machine", &bomb_body))).await;
    for answer in &bombs {
        assert_eq!(answer.status, 400, "{:?}", answer.body);
        assert!(
            answer.message().contains("too expensive"),
            "{:?}",
            answer.body
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Allowed but costly keys (256 rounds, over a second of bcrypt each), more at once than the
    // server has runtime workers: another user's request is still answered at once.
    let uploads = {
        let alice = alice.clone();
        let body = key_body(&costly);
        tokio::spawn(async move {
            join_all((0..4).map(|_| alice.post_json("/api/v1/machine", &body))).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let list = bob.get("/api/v1/machines").await;
    let waited = asked.elapsed();
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert!(
        waited < Duration::from_secs(1),
        "a list waited {waited:?} behind key derivations"
    );
    for answer in uploads.await.unwrap() {
        assert!((200..300).contains(&answer.status), "{:?}", answer.body);
    }
}

/// A budget of one Argon2id (`KDF_MEMORY_MIB=19`) and no waiting (`KDF_WAIT_MS=0`): a burst of
/// users setting their master password cannot all derive at once; the overflow is told to come
/// back, the rest succeed, and nothing else happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kdf_memory_budget_bounds_concurrent_derivations() {
    let server = start_with(
        Backend::Embedded,
        HashMap::from([
            ("KDF_MEMORY_MIB".to_owned(), "19".to_owned()),
            ("KDF_WAIT_MS".to_owned(), "0".to_owned()),
        ]),
    );
    let users: Vec<_> = (0..24)
        .map(|i| server.user(&format!("burst-{i}@example.com")))
        .collect();
    let answers = join_all(users.iter().map(|u| u.set_master_password(MASTER))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let busy: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    let done = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        !busy.is_empty(),
        "every derivation ran at once: {statuses:?}"
    );
    assert!(done >= 1, "{statuses:?}");
    assert_eq!(busy.len() + done, answers.len(), "{statuses:?}");
    for answer in busy {
        assert_eq!(answer.body["code"], "busy", "{:?}", answer.body);
        assert!(answer.headers.contains_key("retry-after"));
    }
}
