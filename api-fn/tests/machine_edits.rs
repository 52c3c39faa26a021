//! Editing a machine (`PATCH /api/v1/machine/{id}`) over real HTTP against the real binary, on
//! both backends: only the fields sent change, another user's machine is not found, moving a
//! pinned machine needs the master password and clears the pin, new secrets are sealed so
//! that they open, and concurrent edits do not lose each other's changes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Backend, machine_body, start};
use domain::Identity;
use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use testkit::Client;

const MASTER: &str = "correct horse battery staple";
const PIN: &str = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";

on_both_backends!(
    an_edit_changes_only_the_fields_sent_and_is_audited,
    another_users_machine_cannot_be_edited,
    moving_a_pinned_machine_needs_the_master_password_and_clears_the_pin,
    replaced_secrets_open_and_the_old_ones_are_gone,
    concurrent_edits_of_different_fields_all_land,
    concurrent_edits_of_one_field_never_pass_silently,
);

async fn create(client: &Client, body: Value) -> u64 {
    let created = client.post_json("/api/v1/machine", &body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    created.data()["id"].as_u64().unwrap()
}

async fn edit(client: &Client, id: u64, body: Value) -> testkit::Answer {
    client
        .patch_json(&format!("/api/v1/machine/{id}"), &body)
        .await
}

async fn an_edit_changes_only_the_fields_sent_and_is_audited(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let id = create(&alice, machine_body("web")).await;
    let before = alice.get(&format!("/api/v1/machine/{id}")).await;

    let edited = edit(
        &alice,
        id,
        json!({"name": "web-2", "port": 2222, "organization": "platform", "recording": false}),
    )
    .await;
    assert_eq!(
        (edited.status, edited.message()),
        (200, "Machine updated successfully"),
        "{:?}",
        edited.body
    );
    let mut expected = before.data().clone();
    expected["name"] = json!("web-2");
    expected["port"] = json!("2222");
    expected["organization"] = json!("platform");
    expected["recording"] = json!(false);
    assert_eq!(edited.data(), &expected);
    assert_eq!(
        alice.get(&format!("/api/v1/machine/{id}")).await.data(),
        &expected
    );

    // Clearing the label, and the refusals a create gives.
    let cleared = edit(&alice, id, json!({"organization": null})).await;
    assert_eq!(cleared.data()["organization"], json!(null));
    let blank = edit(&alice, id, json!({"hostname": " "})).await;
    assert_eq!(
        (blank.status, blank.message()),
        (400, "hostname must not be blank")
    );
    let pin = edit(&alice, id, json!({"host_key_fingerprint": PIN})).await;
    assert_eq!(pin.status, 400, "the pin changes through PUT host-key");

    let log = alice.get("/api/v1/audit?limit=50").await;
    let updates: Vec<&Value> = log.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "machine_updated")
        .collect();
    assert_eq!(updates.len(), 2, "{:?}", log.body);
    // Newest first: the first edit is the older entry.
    assert_eq!(
        updates[1]["details"],
        json!({"machine_id": id, "fields": ["name", "port", "organization", "recording"], "secrets_replaced": false})
    );
    let verified = alice.get("/api/v1/audit/verify").await;
    assert_eq!(verified.data()["ok"], json!(true));
}

async fn another_users_machine_cannot_be_edited(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    alice.set_master_password(MASTER).await;
    bob.set_master_password("bob's own master password").await;
    let id = create(&alice, machine_body("alice-box")).await;
    let before = alice.get(&format!("/api/v1/machine/{id}")).await;

    let theirs = edit(&bob, id, json!({"hostname": "evil.example.net"})).await;
    let missing = edit(&bob, 999_999, json!({"hostname": "evil.example.net"})).await;
    assert_eq!(theirs.status, 404);
    assert_eq!(
        (theirs.status, theirs.message()),
        (missing.status, missing.message())
    );
    let secrets = edit(&bob, id, json!({"password": "bob's password"})).await;
    assert_eq!(secrets.status, 404);
    assert_eq!(
        alice.get(&format!("/api/v1/machine/{id}")).await.data(),
        before.data()
    );
}

async fn moving_a_pinned_machine_needs_the_master_password_and_clears_the_pin(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let mut body = machine_body("pinned");
    body["host_key_fingerprint"] = json!(PIN);
    let id = create(&alice, body).await;

    // Renaming keeps the pin and needs nothing more.
    let renamed = edit(&alice, id, json!({"name": "pinned-2"})).await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.data()["host_key_fingerprint"], PIN);

    // Moving it is what a stolen session would do to send the credentials elsewhere.
    let unproven = edit(&alice, id, json!({"hostname": "elsewhere.example.net"})).await;
    assert_eq!(unproven.status, 400, "{:?}", unproven.body);
    assert!(unproven.message().contains("master_password"));
    let wrong = edit(
        &alice,
        id,
        json!({"port": 2200, "master_password": "not the master password"}),
    )
    .await;
    assert_eq!(wrong.status, 401, "{:?}", wrong.body);
    let unchanged = alice.get(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(unchanged.data()["hostname"], "server.example.com");
    assert_eq!(unchanged.data()["port"], "22");
    assert_eq!(unchanged.data()["host_key_fingerprint"], PIN);

    let moved = edit(
        &alice,
        id,
        json!({"hostname": "elsewhere.example.net", "master_password": MASTER}),
    )
    .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.data()["hostname"], "elsewhere.example.net");
    assert_eq!(moved.data()["host_key_fingerprint"], json!(null));
    let log = alice.get("/api/v1/audit?limit=50").await;
    let last = log.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "machine_updated")
        .unwrap()
        .clone();
    assert_eq!(
        last["details"]["fields"],
        json!(["hostname", "host_key_fingerprint"])
    );
}

async fn replaced_secrets_open_and_the_old_ones_are_gone(backend: Backend) {
    let server = start(backend);
    let email = "keys@example.com";
    let alice = server.user(email);
    alice.set_master_password(MASTER).await;
    let id = create(&alice, machine_body("rotate")).await;

    let replaced = edit(&alice, id, json!({"password": "the new ssh password"})).await;
    assert_eq!(replaced.status, 200, "{:?}", replaced.body);
    assert!(
        !replaced.body.to_string().contains("the new ssh password"),
        "a secret was echoed"
    );
    let library = common::domain_for(&server).await;
    let (_, secrets) = library
        .open(
            &Identity(email.to_owned()),
            id,
            SecretString::from(MASTER.to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(
        secrets.password.as_ref().unwrap().expose_secret(),
        "the new ssh password"
    );

    // A key replaces the password: the credential set is replaced as a whole.
    let key = common::ssh_keygen("");
    let keyed = edit(&alice, id, json!({"private_key": key})).await;
    assert_eq!(keyed.status, 200, "{:?}", keyed.body);
    let (_, secrets) = library
        .open(
            &Identity(email.to_owned()),
            id,
            SecretString::from(MASTER.to_owned()),
        )
        .await
        .unwrap();
    assert!(secrets.password.is_none());
    assert!(secrets.private_key.is_some());
    let bad_key = edit(&alice, id, json!({"private_key": "not a key"})).await;
    assert_eq!(bad_key.status, 400, "{:?}", bad_key.body);
}

/// Eight edits at once, each of a different field, in several rounds: every one lands. A
/// store that wrote the whole record would keep only the last writer's view of the others.
async fn concurrent_edits_of_different_fields_all_land(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let id = create(&alice, machine_body("busy")).await;
    for round in 0..4u16 {
        let flag = round % 2 == 0;
        let edits = [
            json!({"name": format!("name-{round}")}),
            json!({"hostname": format!("host-{round}.example.com")}),
            json!({"port": 3000 + round}),
            json!({"username": format!("user-{round}")}),
            json!({"organization": format!("org-{round}")}),
            json!({"persistent_shell": flag}),
            json!({"recording": !flag}),
            json!({"record_input": flag}),
        ];
        let answers = join_all(edits.iter().map(|body| edit(&alice, id, body.clone()))).await;
        for answer in &answers {
            assert_eq!(answer.status, 200, "round {round}: {:?}", answer.body);
        }
        let now = alice.get(&format!("/api/v1/machine/{id}")).await;
        let data = now.data();
        assert_eq!(data["name"], format!("name-{round}"), "{data}");
        assert_eq!(data["hostname"], format!("host-{round}.example.com"));
        assert_eq!(data["port"], (3000 + round).to_string());
        assert_eq!(data["username"], format!("user-{round}"));
        assert_eq!(data["organization"], format!("org-{round}"));
        assert_eq!(data["persistent_shell"], flag);
        assert_eq!(data["recording"], !flag);
        assert_eq!(data["record_input"], flag);
    }
}

/// Eight edits of one field at once: each either lands or answers 409; the value kept is one
/// that was answered 200, never one whose writer was told it failed.
async fn concurrent_edits_of_one_field_never_pass_silently(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let id = create(&alice, machine_body("contested")).await;
    let names: Vec<String> = (0..8).map(|i| format!("contender-{i}")).collect();
    let answers = join_all(
        names
            .iter()
            .map(|name| edit(&alice, id, json!({ "name": name }))),
    )
    .await;
    let mut landed = Vec::new();
    for (name, answer) in names.iter().zip(&answers) {
        match answer.status {
            200 => landed.push(name.clone()),
            409 => assert_eq!(answer.body["code"], "conflict", "{:?}", answer.body),
            other => panic!("{other}: {:?}", answer.body),
        }
    }
    assert!(!landed.is_empty());
    let kept = alice.get(&format!("/api/v1/machine/{id}")).await.data()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(landed.contains(&kept), "{kept} kept, {landed:?} landed");
}
