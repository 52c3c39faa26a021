//! What must hold when requests race, on both backends: parallel master-password guesses are
//! evaluated at most as often as the guess budget allows, and a master-password change racing
//! creates leaves every machine openable with the new password.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Backend, machine_body, start};
use domain::Identity;
use futures_util::future::join_all;
use secrecy::SecretString;
use serde_json::json;

const MASTER: &str = "correct horse battery staple";
const MIDDLE_MASTER: &str = "a different horse entirely";
const NEW_MASTER: &str = "yet another horse, the last";

on_both_backends!(
    parallel_wrong_guesses_are_evaluated_at_most_five_times,
    a_master_password_change_racing_creates_leaves_every_machine_openable,
);

/// The attempt is reserved before Argon2id runs: of twenty guesses at once, at most five are
/// checked; the others are refused with 429 without being evaluated.
async fn parallel_wrong_guesses_are_evaluated_at_most_five_times(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let guess = json!({"password": "whatever new", "current_password": "wrong guess"});
    let answers =
        join_all((0..20).map(|_| alice.put_json("/api/v1/master-password", &guess))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((1..=5).contains(&evaluated), "{statuses:?}");
    assert_eq!(evaluated + limited, 20, "{statuses:?}");
}

/// Fifty creates, started a few milliseconds apart so that some are always in flight, while the
/// master password is changed twice. A create sealed to an old key either landed before the
/// change listed the machines (and was re-sealed) or is sealed again to the new key; afterwards
/// every machine opens with the final password.
async fn a_master_password_change_racing_creates_leaves_every_machine_openable(backend: Backend) {
    let server = start(backend);
    let email = "racer@example.com";
    let alice = server.user(email);
    alice.set_master_password(MASTER).await;
    let creates = join_all((0..50u64).map(|i| {
        let alice = alice.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(i * 4)).await;
            alice
                .post_json("/api/v1/machine", &machine_body(&format!("m{i}")))
                .await
        }
    }));
    let changes = async {
        let mut outcomes = Vec::new();
        for (current, new) in [(MASTER, MIDDLE_MASTER), (MIDDLE_MASTER, NEW_MASTER)] {
            tokio::time::sleep(Duration::from_millis(20)).await;
            outcomes.push(
                alice
                    .put_json(
                        "/api/v1/master-password",
                        &json!({"password": new, "current_password": current}),
                    )
                    .await,
            );
        }
        outcomes
    };
    let (created, changed) = tokio::join!(creates, changes);
    for change in &changed {
        assert_eq!(change.status, 200, "{:?}", change.body);
        assert_eq!(change.data()["unopenable"], json!([]), "{:?}", change.body);
    }
    for answer in &created {
        // A create that lost the race several times in a row may be told to retry; never a 500.
        assert!(
            (200..300).contains(&answer.status) || answer.status == 409,
            "{:?}",
            answer.body
        );
    }
    let created_ids: Vec<u64> = created
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .map(|a| a.data()["id"].as_u64().unwrap())
        .collect();
    let listed = alice.get("/api/v1/machines").await;
    assert_eq!(listed.data().as_array().unwrap().len(), created_ids.len());
    let library = common::domain_for(&server).await;
    let mut unopenable = Vec::new();
    for id in created_ids {
        if let Err(err) = library
            .open(
                &Identity(email.to_owned()),
                id,
                SecretString::from(NEW_MASTER.to_owned()),
            )
            .await
        {
            unopenable.push((id, err.to_string()));
        }
    }
    assert!(
        unopenable.is_empty(),
        "machines that do not open: {unopenable:?}"
    );
}
