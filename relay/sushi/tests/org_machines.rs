//! Organization machines and the organization's key, over real HTTP against one `sushi`
//! process (the api-fn routes and connect on one port, so a member's connect logs in to the
//! real sshd), on both backends (embedded SQLite with the key file; DynamoDB and KMS on moto):
//! members list and connect with their own master password, auditors list but do not connect,
//! outsiders get the 404 of a missing machine everywhere, a member without a copy of the key
//! gets `org_key_not_granted`, and removing a holder rotates the key so that the copy they had
//! opens nothing while every machine still opens for everyone else. A session on an
//! organization machine is recorded as the organization's: its auditors, admins and owners
//! list and read it, the member who typed, another plain member and an outsider do not. Every
//! event about the organization and its machines is in the organization's audit log too,
//! naming who acted: its auditors, admins and owners read and verify it, members do not.
//! A member removed from the organization (or who leaves) loses what they hold on the relay:
//! an open terminal closes with 4021 within the relay's check period (and its share viewers
//! with it), a ticket issued before the removal does not open, a parked session does not resume,
//! while other members' terminals go on. An owner or admin moves a machine from their own
//! into the organization (its members then connect with their own master password), to
//! another organization they manage, and back (the members lose it); members may not, and a
//! wrong master password moves nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::Machines;
use domain::vault::org_owner_id;
use secrecy::SecretString;
use serde_json::{Value, json};
use testkit::ws::Terminal;
use testkit::{Answer, AwsBackend, Client, JWT_SECRET, Process};

const ORG: &str = "/api/v1/orgs/platform-team";
const SLUG: &str = "platform-team";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";
const EVE: &str = "eve@example.com";

fn password_of(email: &str) -> String {
    format!("master password of {email}")
}

enum Backend {
    Embedded,
    DynamoDbKms,
}

/// One `sushi` on a fresh data dir (or a fresh DynamoDB table and KMS key on moto).
struct World {
    sushi: Process,
    dir: tempfile::TempDir,
    aws: Option<AwsBackend>,
}

impl World {
    fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[])
    }

    /// With extra settings (`(variable, value)`) for the `sushi` process.
    fn start_with(backend: Backend, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::from([
            ("DATA_DIR".to_owned(), dir.path().display().to_string()),
            ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
            ("SSH_ALLOW_LOOPBACK".to_owned(), "true".to_owned()),
        ]);
        for (name, value) in settings {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        let aws = match backend {
            Backend::Embedded => None,
            Backend::DynamoDbKms => {
                let aws = testkit::provision_aws();
                env.insert("DYNAMODB_TABLE".to_owned(), aws.table.clone());
                env.insert("AUDIT_TABLE".to_owned(), aws.audit_table.clone());
                env.insert("KMS_KEY_ID".to_owned(), aws.kms_key_id.clone());
                env.insert("AWS_ENDPOINT_URL".to_owned(), aws.endpoint.clone());
                for (k, v) in testkit::aws_test_credentials() {
                    env.insert(k.to_owned(), v.to_owned());
                }
                Some(aws)
            }
        };
        let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
        Self { sushi, dir, aws }
    }

    fn user(&self, email: &str) -> Client {
        Client::new(&self.sushi.base_url, None).as_user(email)
    }

    /// A user with their master password set.
    async fn user_with_vault(&self, email: &str) -> Client {
        let client = self.user(email);
        let set = client.set_master_password(&password_of(email)).await;
        assert_eq!(set.status, 200, "{:?}", set.body);
        client
    }

    /// The domain service on this world's backend, in-process: to read what is stored and
    /// try to open it as the relay would.
    async fn domain(&self) -> Arc<Machines> {
        let mut config = testkit::embedded_config(self.dir.path());
        if let Some(aws) = &self.aws {
            assert_eq!(
                std::env::var("AWS_ENDPOINT_URL").ok().as_deref(),
                Some(aws.endpoint.as_str()),
                "export AWS_ENDPOINT_URL (localstack/services.sh env)"
            );
            config.backend = domain::config::Backend::Aws {
                table: aws.table.clone(),
                kms_key_id: aws.kms_key_id.clone(),
            };
            config.audit_table = Some(aws.audit_table.clone());
        }
        backends::wire(&config).await.unwrap()
    }
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Embedded).await
                }
            )*
        }
        mod dynamodb_kms {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::DynamoDbKms).await
                }
            )*
        }
    };
}

on_both_backends!(
    members_connect_with_their_own_password_and_auditors_do_not,
    a_non_member_gets_not_found_on_every_org_machine_route,
    removing_a_holder_rotates_the_key_and_their_copy_opens_nothing,
    leaving_leaves_a_rotation_pending_until_an_admin_rotates,
    a_master_password_change_reseals_the_members_copies,
    an_org_machines_recordings_are_read_by_its_auditors_and_not_its_members,
    a_removed_members_terminal_and_its_viewers_close_while_others_go_on,
    a_ticket_issued_before_the_removal_does_not_open_after_it,
    a_parked_session_is_not_resumed_after_the_removal,
    an_org_audit_log_is_read_by_its_auditors_and_names_who_acted,
    a_machine_moves_into_an_organization_to_another_and_back,
    only_owners_and_admins_move_machines_and_a_wrong_password_moves_nothing,
);

/// `owner` creates the organization and `members` join it with their roles.
async fn org_with(world: &World, owner: &Client, members: &[(&str, &str)]) {
    let created = owner
        .post_json("/api/v1/orgs", &json!({"slug": SLUG, "name": "Platform"}))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    for (email, role) in members {
        let invited = owner
            .post_json(
                &format!("{ORG}/invitations"),
                &json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(invited.status, 200, "{:?}", invited.body);
        let accepted = world
            .user(email)
            .post_json(&format!("/api/v1/invitations/{SLUG}/accept"), &json!({}))
            .await;
        assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    }
}

/// An organization machine on the shared sshd, created by `by`; its id.
async fn org_machine(by: &Client, name: &str) -> u64 {
    let sshd = testkit::ssh::shared_sshd();
    let created = by
        .post_json(
            "/api/v1/machine",
            &json!({"name": name, "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password,
                    "owner_type": "organization", "organization": SLUG}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.data()["owner_type"], "organization");
    assert_eq!(created.data()["owner_id"], SLUG);
    created.data()["id"].as_u64().unwrap()
}

async fn connect(client: &Client, id: u64, password: &str) -> Answer {
    client
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": password }),
        )
        .await
}

async fn connect_as(world: &World, email: &str, id: u64) -> Answer {
    connect(&world.user(email), id, &password_of(email)).await
}

async fn grant(by: &Client, by_email: &str, member: &str) -> Answer {
    by.post_json(
        &format!("{ORG}/members/{member}/key"),
        &json!({ "password": password_of(by_email) }),
    )
    .await
}

async fn remove(by: &Client, member: &str, body: Option<Value>) -> Answer {
    let request = by.http.delete(by.url(&format!("{ORG}/members/{member}")));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    by.send(request).await
}

fn code(answer: &Answer) -> (u16, Value) {
    (answer.status, answer.body["code"].clone())
}

fn ids(listing: &Answer) -> Vec<u64> {
    listing
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

async fn members_connect_with_their_own_password_and_auditors_do_not(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    let carol = world.user_with_vault(CAROL).await;
    let dave = world.user(DAVE); // no master password yet
    org_with(
        &world,
        &alice,
        &[(BOB, "member"), (CAROL, "auditor"), (DAVE, "admin")],
    )
    .await;

    // Members may not create organization machines; the owner may, without a password.
    let sshd = testkit::ssh::shared_sshd();
    let refused = bob
        .post_json(
            "/api/v1/machine",
            &json!({"name": "x", "hostname": sshd.host, "port": "22", "username": "u",
                    "password": "p", "owner_type": "organization", "organization": SLUG}),
        )
        .await;
    assert_eq!(code(&refused), (403, json!("forbidden")));
    let id = org_machine(&alice, "shared").await;
    let own = bob
        .post_json(
            "/api/v1/machine",
            &json!({"name": "bob's own", "hostname": "example.com", "port": "22",
                    "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let own_id = own.data()["id"].as_u64().unwrap();

    // Listing: the caller's own and their organizations'; `?organization=` filters.
    assert_eq!(ids(&bob.get("/api/v1/machines").await), vec![own_id, id]);
    let filtered = bob
        .get(&format!("/api/v1/machines?organization={SLUG}"))
        .await;
    assert_eq!(ids(&filtered), vec![id]);
    assert_eq!(filtered.data()[0]["owner_type"], "organization");
    assert_eq!(ids(&carol.get("/api/v1/machines").await), vec![id]);
    assert_eq!(
        carol.get(&format!("/api/v1/machine/{id}")).await.status,
        200
    );

    // A member without a copy of the key gets the clear error, before any SSH.
    let not_granted = connect_as(&world, BOB, id).await;
    assert_eq!(code(&not_granted), (403, json!("org_key_not_granted")));
    assert!(
        not_granted.message().contains("grant"),
        "{:?}",
        not_granted.body
    );
    // Granting takes the granter's own master password, and a member with a vault.
    let wrong = bob
        .post_json(
            &format!("{ORG}/members/{CAROL}/key"),
            &json!({"password": "x"}),
        )
        .await;
    assert_eq!(code(&wrong), (403, json!("forbidden")));
    let no_vault = grant(&alice, ALICE, DAVE).await;
    assert_eq!(
        code(&no_vault),
        (409, json!("member_master_password_not_set"))
    );
    let bad_password = alice
        .post_json(
            &format!("{ORG}/members/{BOB}/key"),
            &json!({"password": "not alice's"}),
        )
        .await;
    assert_eq!(code(&bad_password), (401, json!("invalid_master_password")));
    let granted = grant(&alice, ALICE, BOB).await;
    assert_eq!(granted.status, 200, "{:?}", granted.body);
    assert_eq!(granted.data()["holders"], json!([ALICE, BOB]));

    // The member connects with their own master password, to the real sshd.
    let connected = connect_as(&world, BOB, id).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    assert!(connected.data().as_str().is_some());
    let wrong_password = connect(&bob, id, "not bob's").await;
    assert_eq!(
        code(&wrong_password),
        (401, json!("invalid_master_password"))
    );
    // The auditor lists and reads but does not connect.
    assert_eq!(
        code(&connect_as(&world, CAROL, id).await),
        (403, json!("forbidden"))
    );
    // Members do not edit or delete; admins and owners do.
    let edit = bob
        .patch_json(&format!("/api/v1/machine/{id}"), &json!({"name": "mine"}))
        .await;
    assert_eq!(code(&edit), (403, json!("forbidden")));
    let delete = bob.delete(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(code(&delete), (403, json!("forbidden")));
    let renamed = dave
        .patch_json(
            &format!("/api/v1/machine/{id}"),
            &json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.data()["name"], "renamed");

    // Every step is in the actor's audit log.
    let kinds = |log: Answer| -> Vec<String> {
        log.data()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let alice_log = kinds(alice.get("/api/v1/audit").await);
    for kind in ["org_key_created", "org_key_granted", "machine_created"] {
        assert!(alice_log.iter().any(|k| k == kind), "{kind}: {alice_log:?}");
    }
}

async fn a_non_member_gets_not_found_on_every_org_machine_route(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let eve = world.user_with_vault(EVE).await;
    org_with(&world, &alice, &[]).await;
    let id = org_machine(&alice, "shared").await;
    let machine = format!("/api/v1/machine/{id}");
    let missing = json!("machine_not_found");
    assert_eq!(code(&eve.get(&machine).await), (404, missing.clone()));
    let edit = eve.patch_json(&machine, &json!({"name": "x"})).await;
    assert_eq!(code(&edit), (404, missing.clone()));
    assert_eq!(code(&eve.delete(&machine).await), (404, missing.clone()));
    let pin = eve
        .put_json(
            &format!("{machine}/host-key"),
            &json!({"fingerprint": null, "master_password": password_of(EVE)}),
        )
        .await;
    assert_eq!(code(&pin), (404, missing.clone()));
    assert_eq!(
        code(&connect_as(&world, EVE, id).await),
        (404, missing.clone())
    );
    assert_eq!(ids(&eve.get("/api/v1/machines").await), Vec::<u64>::new());
    let filtered = eve
        .get(&format!("/api/v1/machines?organization={SLUG}"))
        .await;
    assert_eq!(code(&filtered), (404, json!("org_not_found")));
    let nonexistent = eve.get("/api/v1/machines?organization=no-such-org").await;
    assert_eq!(code(&nonexistent), (404, json!("org_not_found")));
    let create = eve
        .post_json(
            "/api/v1/machine",
            &json!({"name": "x", "hostname": "example.com", "port": "22", "username": "u",
                    "password": "p", "owner_type": "organization", "organization": SLUG}),
        )
        .await;
    assert_eq!(code(&create), (404, json!("org_not_found")));
    let status = eve.get(&format!("{ORG}/key")).await;
    assert_eq!(code(&status), (404, json!("org_not_found")));
    let granted = grant(&eve, EVE, ALICE).await;
    assert_eq!(code(&granted), (404, json!("org_not_found")));
    // The machine is intact for its organization.
    assert_eq!(alice.get(&machine).await.status, 200);
}

async fn removing_a_holder_rotates_the_key_and_their_copy_opens_nothing(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    world.user_with_vault(BOB).await;
    world.user_with_vault(DAVE).await;
    org_with(&world, &alice, &[(BOB, "member"), (DAVE, "admin")]).await;
    let first = org_machine(&alice, "first").await;
    let second = org_machine(&alice, "second").await;
    for member in [BOB, DAVE] {
        assert_eq!(grant(&alice, ALICE, member).await.status, 200);
    }
    for member in [ALICE, BOB, DAVE] {
        let answer = connect_as(&world, member, first).await;
        assert_eq!(answer.status, 200, "{member}: {:?}", answer.body);
    }

    // What Bob could keep: his copy of the key, straight from the store.
    let domain = world.domain().await;
    let org_owner = org_owner_id(SLUG);
    let bobs_copy = domain
        .store()
        .get_org_key_copy(&org_owner, BOB)
        .await
        .unwrap()
        .unwrap();

    // Removing a holder needs the remover's master password, and rotates the key.
    let without = remove(&alice, BOB, None).await;
    assert_eq!(code(&without), (400, json!("invalid_request")));
    let removed = remove(&alice, BOB, Some(json!({"password": password_of(ALICE)}))).await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(removed.data()["generation"], 2);
    assert_eq!(removed.data()["resealed"], 2);
    assert_eq!(removed.data()["copies"], 2);
    let status = alice.get(&format!("{ORG}/key")).await;
    assert_eq!(status.data()["holders"], json!([ALICE, DAVE]));
    assert_eq!(status.data()["rotation_pending"], false);

    // Everyone left opens every machine; Bob reaches nothing.
    for member in [ALICE, DAVE] {
        for id in [first, second] {
            let answer = connect_as(&world, member, id).await;
            assert_eq!(answer.status, 200, "{member} {id}: {:?}", answer.body);
        }
    }
    assert_eq!(
        code(&connect_as(&world, BOB, first).await),
        (404, json!("machine_not_found"))
    );

    // The saved copy still opens with Bob's password, but only to the old key, which opens
    // no machine any more: not as stored (sealed to the new generation), nor with the
    // generation forged to the old one (the HPKE layer is sealed to the new public key).
    assert_eq!(
        domain
            .store()
            .get_org_key_copy(&org_owner, BOB)
            .await
            .unwrap(),
        None
    );
    let bobs_vault = domain.store().get_vault(BOB).await.unwrap().unwrap();
    let bob_unlocked = bobs_vault
        .unlock(&SecretString::from(password_of(BOB)))
        .unwrap();
    let old_key = bob_unlocked.open_copy(&bobs_copy).unwrap();
    assert_eq!(old_key.generations(), vec![1]);
    for id in [first, second] {
        let machine = domain
            .store()
            .get_machine(&org_owner, id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            old_key
                .open(domain.keys().as_ref(), id, &machine.sealed)
                .await
                .is_err()
        );
        assert_eq!(machine.sealed.vault_gen, 2);
        let mut forged = machine.sealed.clone();
        forged.vault_gen = 1;
        assert!(
            old_key
                .open(domain.keys().as_ref(), id, &forged)
                .await
                .is_err()
        );
    }
    let log = alice.get("/api/v1/audit").await;
    let rotated = log.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "org_key_rotated")
        .cloned()
        .unwrap();
    assert_eq!(rotated["details"]["resealed"], 2);
}

async fn leaving_leaves_a_rotation_pending_until_an_admin_rotates(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    org_with(&world, &alice, &[(BOB, "member")]).await;
    let id = org_machine(&alice, "shared").await;
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);
    // Leaving needs no password and does not rotate (the leaver would learn the new key).
    let left = remove(&bob, BOB, None).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    assert_eq!(left.data()["generation"], Value::Null);
    let pending = alice.get(&format!("{ORG}/key")).await;
    assert_eq!(pending.data()["rotation_pending"], true);
    assert_eq!(pending.data()["holders"], json!([ALICE]));
    let refused = bob
        .post_json(
            &format!("{ORG}/key/rotate"),
            &json!({"password": password_of(BOB)}),
        )
        .await;
    assert_eq!(code(&refused), (404, json!("org_not_found")));
    let rotated = alice
        .post_json(
            &format!("{ORG}/key/rotate"),
            &json!({"password": password_of(ALICE)}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(rotated.data()["generation"], 2);
    assert_eq!(rotated.data()["copies"], 1);
    let done = alice.get(&format!("{ORG}/key")).await;
    assert_eq!(done.data()["rotation_pending"], false);
    assert_eq!(connect_as(&world, ALICE, id).await.status, 200);
}

async fn a_master_password_change_reseals_the_members_copies(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    org_with(&world, &alice, &[(BOB, "member")]).await;
    let id = org_machine(&alice, "shared").await;
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);
    let changed = bob
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "bob's new master password", "current_password": password_of(BOB)}),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let old = connect(&bob, id, &password_of(BOB)).await;
    assert_eq!(code(&old), (401, json!("invalid_master_password")));
    let new = connect(&bob, id, "bob's new master password").await;
    assert_eq!(new.status, 200, "{:?}", new.body);
}

const STEP: Duration = Duration::from_secs(20);

/// `GET /api/v1/recording/{id}` as `email`: the asciicast text, or the status and code.
async fn fetch_recording(world: &World, email: &str, id: &str) -> Result<String, (u16, Value)> {
    let client = world.user(email);
    let response = client
        .http
        .get(client.url(&format!("/api/v1/recording/{id}")))
        .bearer_auth(testkit::token(email))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    match status {
        200 => Ok(body),
        _ => Err((
            status,
            serde_json::from_str::<Value>(&body).unwrap()["code"].clone(),
        )),
    }
}

async fn an_org_machines_recordings_are_read_by_its_auditors_and_not_its_members(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    let carol = world.user(CAROL);
    let dave = world.user(DAVE);
    let eve = world.user(EVE);
    org_with(
        &world,
        &alice,
        &[(BOB, "member"), (CAROL, "auditor"), (DAVE, "member")],
    )
    .await;
    let id = org_machine(&alice, "recorded").await;
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);

    // The member opens a terminal on the organization machine and types.
    let connected = connect_as(&world, BOB, id).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    let ticket = connected.data().as_str().unwrap().to_owned();
    let cookie = format!("jwt={}", testkit::token(BOB));
    let mut term = Terminal::open(
        &world.sushi.base_url,
        &ticket,
        &[("cookie", cookie.as_str())],
    )
    .await
    .unwrap();
    term.expect_event("session", STEP).await;
    term.run("echo org-typed-$((6*7))").await;
    term.expect_output("org-typed-42", STEP).await;
    term.run("exit 0").await;
    term.expect_close(STEP).await;

    // The auditor lists it (once its end is written) with who typed, and reads it.
    let mut listed = Value::Null;
    for _ in 0..100 {
        let answer = carol.get(&format!("{ORG}/recordings")).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        listed = answer.data().clone();
        if listed[0]["ended_at"].is_number() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recordings = listed.as_array().unwrap();
    assert_eq!(recordings.len(), 1, "{listed}");
    let recording = &recordings[0];
    assert_eq!(recording["machine_id"], id);
    assert_eq!(recording["machine_name"], "recorded");
    assert_eq!(recording["user"], BOB);
    assert_eq!(recording["damaged"], Value::Null);
    let rid = recording["id"].as_str().unwrap();
    let cast = fetch_recording(&world, CAROL, rid).await.unwrap();
    assert!(cast.contains("org-typed-42"), "{cast}");
    // Owners (and admins) read it too.
    assert_eq!(alice.get(&format!("{ORG}/recordings")).await.status, 200);
    assert!(fetch_recording(&world, ALICE, rid).await.is_ok());

    // It is the organization's: not among the member's own, and no plain member reads it.
    let own = bob.get("/api/v1/recordings").await;
    assert_eq!(own.data(), &json!([]));
    let not_found = (404, json!("recording_not_found"));
    for email in [BOB, DAVE, EVE] {
        assert_eq!(
            fetch_recording(&world, email, rid).await.err(),
            Some(not_found.clone()),
            "{email}"
        );
    }
    assert_eq!(
        code(&dave.get(&format!("{ORG}/recordings")).await),
        (403, json!("forbidden"))
    );
    assert_eq!(
        code(&eve.get(&format!("{ORG}/recordings")).await),
        (404, json!("org_not_found"))
    );

    // Deleting it is for owners and admins: the member who typed cannot erase it.
    let delete = |client: &Client| {
        client
            .http
            .delete(client.url(&format!("/api/v1/recording/{rid}")))
    };
    assert_eq!(code(&bob.send(delete(&bob)).await), not_found);
    assert_eq!(
        code(&carol.send(delete(&carol)).await),
        (403, json!("forbidden"))
    );
    assert_eq!(alice.send(delete(&alice)).await.status, 200);
    assert_eq!(
        fetch_recording(&world, CAROL, rid).await.err(),
        Some(not_found)
    );
}

/// What a relay sends when a terminal's user lost access to the organization.
const ACCESS_REVOKED: u16 = 4021;

/// `email`'s terminal on machine `id`, open and past its `session` event.
async fn open_terminal(world: &World, email: &str, id: u64) -> Terminal {
    let connected = connect_as(world, email, id).await;
    assert_eq!(connected.status, 200, "{email}: {:?}", connected.body);
    let ticket = connected.data().as_str().unwrap().to_owned();
    let mut term = open_ticket(world, email, &ticket).await;
    term.expect_event("session", STEP).await;
    term
}

/// Open `ticket` as `email`'s browser would (with the session cookie).
async fn open_ticket(world: &World, email: &str, ticket: &str) -> Terminal {
    let cookie = format!("jwt={}", testkit::token(email));
    Terminal::open(
        &world.sushi.base_url,
        ticket,
        &[("cookie", cookie.as_str())],
    )
    .await
    .unwrap()
}

/// `email`'s audit entries of `kind`, once at least one is there.
async fn audit_entries(world: &World, email: &str, kind: &str) -> Vec<Value> {
    for _ in 0..100 {
        let log = world.user(email).get("/api/v1/audit").await;
        let entries: Vec<Value> = log.data()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect();
        if !entries.is_empty() {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} in {email}'s audit log");
}

/// An organization with Alice (owner) and Bob and Dave (members holding the key), and its
/// machine's id.
async fn org_of_three(world: &World) -> u64 {
    let alice = world.user_with_vault(ALICE).await;
    world.user_with_vault(BOB).await;
    world.user_with_vault(DAVE).await;
    org_with(world, &alice, &[(BOB, "member"), (DAVE, "member")]).await;
    let id = org_machine(&alice, "shared").await;
    for member in [BOB, DAVE] {
        assert_eq!(grant(&alice, ALICE, member).await.status, 200);
    }
    id
}

/// Alice removes Bob, who holds the key (so with her password, which rotates it).
async fn alice_removes_bob(world: &World) {
    let removed = remove(
        &world.user(ALICE),
        BOB,
        Some(json!({"password": password_of(ALICE)})),
    )
    .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
}

async fn a_removed_members_terminal_and_its_viewers_close_while_others_go_on(backend: Backend) {
    // The relay re-reads memberships every second here (5 by default).
    let world = World::start_with(backend, &[("ORG_ACCESS_CHECK_SECS", "1")]);
    let id = org_of_three(&world).await;
    let mut bobs = open_terminal(&world, BOB, id).await;
    let mut daves = open_terminal(&world, DAVE, id).await;
    bobs.run("echo bob-in-$((6*7))").await;
    bobs.expect_output("bob-in-42", STEP).await;

    // Bob shares his terminal with anyone holding the link; a viewer watches.
    bobs.send_json(json!({"type": "share_create", "mode": "view"}))
        .await;
    let created = bobs.expect_event("share_created", STEP).await;
    let mut viewer = Terminal::join(
        &world.sushi.base_url,
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
        &[],
    )
    .await
    .unwrap();
    viewer.expect_event("joined", STEP).await;

    // Removed: his terminal and its viewer close within the check period (plus a read).
    alice_removes_bob(&world).await;
    let removed_at = std::time::Instant::now();
    let (code, reason) = bobs.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, ACCESS_REVOKED, "{reason}");
    assert!(
        removed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        removed_at.elapsed()
    );
    assert_eq!(viewer.expect_close(STEP).await.0, ACCESS_REVOKED);

    // Dave, still a member, goes on in the same machine.
    daves.run("echo dave-still-$((6*7))").await;
    daves.expect_output("dave-still-42", STEP).await;

    // The end is in Bob's log, by its code.
    let ended = audit_entries(&world, BOB, "session_ended").await;
    assert_eq!(ended[0]["details"]["close_code"], ACCESS_REVOKED);

    // Leaving ends one's terminals the same way.
    let left = remove(&world.user(DAVE), DAVE, None).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let (code, reason) = daves.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, ACCESS_REVOKED, "{reason}");
}

async fn a_ticket_issued_before_the_removal_does_not_open_after_it(backend: Backend) {
    // A check period far beyond the test: the ticket is refused at opening, not by the sweep.
    let world = World::start_with(backend, &[("ORG_ACCESS_CHECK_SECS", "3600")]);
    let id = org_of_three(&world).await;
    let connected = connect_as(&world, BOB, id).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    let ticket = connected.data().as_str().unwrap().to_owned();

    alice_removes_bob(&world).await;
    let mut term = open_ticket(&world, BOB, &ticket).await;
    let (code, reason) = term.expect_close(STEP).await;
    assert_eq!(code, ACCESS_REVOKED, "{reason}");
    assert!(
        !term.events.iter().any(|e| e["type"] == "session"),
        "{:?}",
        term.events
    );
    // A remaining member's ticket opens as ever.
    let mut daves = open_terminal(&world, DAVE, id).await;
    daves.run("echo dave-$((6*7))").await;
    daves.expect_output("dave-42", STEP).await;
}

async fn a_parked_session_is_not_resumed_after_the_removal(backend: Backend) {
    // A check period far beyond the test: the resume is refused by its own check.
    let world = World::start_with(backend, &[("ORG_ACCESS_CHECK_SECS", "3600")]);
    let id = org_of_three(&world).await;
    let bobs = open_terminal(&world, BOB, id).await;
    let (session, secret) = bobs.session();
    // The connection drops without a close frame: the terminal parks for a resume.
    bobs.cut();

    alice_removes_bob(&world).await;
    let cookie = format!("jwt={}", testkit::token(BOB));
    let headers = [("cookie", cookie.as_str())];
    let mut resumed = Terminal::resume(&world.sushi.base_url, &session, &secret, 0, &headers)
        .await
        .unwrap();
    let (code, reason) = resumed.expect_close(STEP).await;
    assert_eq!(code, ACCESS_REVOKED, "{reason}");
    assert!(
        !resumed.events.iter().any(|e| e["type"] == "resumed"),
        "{:?}",
        resumed.events
    );
    // The terminal ended with the refusal: nothing is left to resume.
    let ended = audit_entries(&world, BOB, "session_ended").await;
    assert_eq!(ended[0]["details"]["close_code"], ACCESS_REVOKED);
    let mut again = Terminal::resume(&world.sushi.base_url, &session, &secret, 0, &headers)
        .await
        .unwrap();
    assert_eq!(again.expect_close(STEP).await.0, 4012);
}

/// An organization's audit log page as `client` reads it: its entries, oldest first.
async fn org_log(client: &Client) -> Vec<Value> {
    let answer = client.get(&format!("{ORG}/audit?limit=200")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let mut entries = answer.data()["entries"].as_array().unwrap().clone();
    entries.reverse();
    entries
}

/// The entries of `kind`, as (actor, details).
fn of_kind(entries: &[Value], kind: &str) -> Vec<(Value, Value)> {
    entries
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| (e["actor"].clone(), e["details"].clone()))
        .collect()
}

/// `GET` as `email`, the body as text with the status.
async fn fetch_text(world: &World, email: &str, path: &str) -> (u16, String) {
    let client = world.user(email);
    let response = client
        .http
        .get(client.url(path))
        .bearer_auth(testkit::token(email))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn an_org_audit_log_is_read_by_its_auditors_and_names_who_acted(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    let carol = world.user(CAROL);
    let dave = world.user(DAVE);
    let eve = world.user(EVE);
    org_with(
        &world,
        &alice,
        &[(BOB, "member"), (CAROL, "auditor"), (DAVE, "member")],
    )
    .await;
    let id = org_machine(&alice, "audited").await;
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);
    // Bob's own machine is his business, not the organization's.
    let own = bob
        .post_json(
            "/api/v1/machine",
            &json!({"name": "bob's own", "hostname": "example.com", "port": "22",
                    "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(own.status, 200, "{:?}", own.body);

    // The member mistypes, then opens a terminal on the organization machine.
    assert_eq!(
        code(&connect(&bob, id, "not bob's").await),
        (401, json!("invalid_master_password"))
    );
    let connected = connect_as(&world, BOB, id).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    let ticket = connected.data().as_str().unwrap().to_owned();
    let cookie = format!("jwt={}", testkit::token(BOB));
    let mut term = Terminal::open(
        &world.sushi.base_url,
        &ticket,
        &[("cookie", cookie.as_str())],
    )
    .await
    .unwrap();
    term.expect_event("session", STEP).await;
    term.run("exit 0").await;
    term.expect_close(STEP).await;

    // The auditor reads the organization's log once the session's end is in it.
    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = org_log(&carol).await;
        if !of_kind(&entries, "session_ended").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    assert!(
        entries.iter().all(|e| e["actor"].is_string()),
        "{entries:?}"
    );
    let created = of_kind(&entries, "org_created");
    assert_eq!(
        created,
        vec![(json!(ALICE), json!({"org": SLUG, "name": "Platform"}))]
    );
    let invited: Vec<Value> = of_kind(&entries, "org_invited")
        .into_iter()
        .map(|(actor, details)| {
            assert_eq!(actor, ALICE);
            details["email"].clone()
        })
        .collect();
    assert_eq!(invited, vec![json!(BOB), json!(CAROL), json!(DAVE)]);
    let joined: Vec<Value> = of_kind(&entries, "org_joined")
        .into_iter()
        .map(|(actor, _)| actor)
        .collect();
    assert_eq!(joined, vec![json!(BOB), json!(CAROL), json!(DAVE)]);
    let machine = of_kind(&entries, "machine_created");
    assert_eq!(machine.len(), 1, "{entries:?}");
    assert_eq!(machine[0].0, ALICE);
    assert_eq!(machine[0].1["machine_id"], id);
    for kind in ["org_key_created", "org_key_granted"] {
        assert_eq!(of_kind(&entries, kind).len(), 1, "{kind}: {entries:?}");
    }
    for kind in [
        "connect_wrong_password",
        "host_key_pinned",
        "connect_succeeded",
        "recording_started",
        "session_started",
        "session_ended",
    ] {
        let found = of_kind(&entries, kind);
        assert_eq!(found.len(), 1, "{kind}: {entries:?}");
        assert_eq!(found[0].0, BOB, "{kind}");
        assert_eq!(found[0].1["machine_id"], id, "{kind}");
    }

    // The chain verifies, and the export holds the same entries.
    let verified = carol.get(&format!("{ORG}/audit/verify")).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.data()["ok"], true);
    assert_eq!(verified.data()["entries"], entries.len());
    let (status, export) = fetch_text(&world, CAROL, &format!("{ORG}/audit/export")).await;
    assert_eq!(status, 200, "{export}");
    let exported: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(exported[..entries.len()], entries[..]);
    // Pages as the user's log pages.
    let page = carol.get(&format!("{ORG}/audit?limit=2")).await;
    assert_eq!(page.data()["entries"].as_array().unwrap().len(), 2);
    let cursor = page.data()["next_cursor"].as_u64().unwrap();
    let older = carol
        .get(&format!("{ORG}/audit?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(older.data()["entries"][0]["seq"], cursor - 1);

    // Owners read it; a plain member gets 403, someone outside 404, on every route.
    assert_eq!(alice.get(&format!("{ORG}/audit")).await.status, 200);
    for path in ["audit", "audit/verify", "audit/export"] {
        let path = format!("{ORG}/{path}");
        assert_eq!(
            code(&dave.get(&path).await),
            (403, json!("forbidden")),
            "{path}"
        );
        assert_eq!(
            code(&bob.get(&path).await),
            (403, json!("forbidden")),
            "{path}"
        );
        assert_eq!(
            code(&eve.get(&path).await),
            (404, json!("org_not_found")),
            "{path}"
        );
    }

    // The member's own log still has every one of their entries, without an actor.
    let bob_log = bob.get("/api/v1/audit?limit=200").await;
    let bob_entries = bob_log.data()["entries"].as_array().unwrap().clone();
    for kind in [
        "org_joined",
        "machine_created",
        "connect_wrong_password",
        "connect_succeeded",
        "session_started",
        "session_ended",
    ] {
        assert!(
            bob_entries.iter().any(|e| e["kind"] == kind),
            "{kind}: {bob_entries:?}"
        );
    }
    assert!(bob_entries.iter().all(|e| e.get("actor").is_none()));
    let verified = bob.get("/api/v1/audit/verify").await;
    assert_eq!(verified.data()["ok"], true);
}

/// A machine of `by`'s own on the shared sshd; its id.
async fn own_machine(by: &Client, name: &str) -> u64 {
    let sshd = testkit::ssh::shared_sshd();
    let created = by
        .post_json(
            "/api/v1/machine",
            &json!({"name": name, "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    created.data()["id"].as_u64().unwrap()
}

/// `PATCH` machine `id` as `by` with `body` plus `by_email`'s master password.
async fn move_machine(by: &Client, by_email: &str, id: u64, mut body: Value) -> Answer {
    body["master_password"] = json!(password_of(by_email));
    by.patch_json(&format!("/api/v1/machine/{id}"), &body).await
}

async fn a_machine_moves_into_an_organization_to_another_and_back(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    org_with(&world, &alice, &[(BOB, "member")]).await;
    let other = alice
        .post_json(
            "/api/v1/orgs",
            &json!({"slug": "other-team", "name": "Other"}),
        )
        .await;
    assert_eq!(other.status, 200, "{:?}", other.body);
    let id = own_machine(&alice, "mine").await;
    // A connect pins the host key; the pin moves with the machine.
    assert_eq!(connect_as(&world, ALICE, id).await.status, 200);
    let machine = format!("/api/v1/machine/{id}");
    let pin = alice.get(&machine).await.data()["host_key_fingerprint"].clone();
    assert!(pin.is_string(), "{pin:?}");
    assert_eq!(
        code(&bob.get(&machine).await),
        (404, json!("machine_not_found"))
    );

    // Into the organization: the first machine makes its key; a member granted it connects.
    let into_org = json!({"owner_type": "organization", "organization": SLUG});
    let moved = move_machine(&alice, ALICE, id, into_org).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.data()["id"], id);
    assert_eq!(moved.data()["owner_type"], "organization");
    assert_eq!(moved.data()["owner_id"], SLUG);
    assert_eq!(moved.data()["host_key_fingerprint"], pin);
    assert_eq!(ids(&alice.get("/api/v1/machines").await), vec![id]);
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);
    let connected = connect_as(&world, BOB, id).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    assert_eq!(connect_as(&world, ALICE, id).await.status, 200);

    // To another organization the caller manages: the first one's members lose it.
    let to_other = json!({"owner_type": "organization", "organization": "other-team"});
    let moved = move_machine(&alice, ALICE, id, to_other).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.data()["owner_id"], "other-team");
    assert_eq!(
        code(&connect_as(&world, BOB, id).await),
        (404, json!("machine_not_found"))
    );
    assert_eq!(connect_as(&world, ALICE, id).await.status, 200);

    // Back to the caller: nobody else reaches it; the owner connects with their own password.
    let moved = move_machine(&alice, ALICE, id, json!({"owner_type": "user"})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.data()["owner_type"], "user");
    assert_eq!(moved.data()["owner_id"], ALICE);
    assert_eq!(moved.data()["organization"], Value::Null);
    assert_eq!(moved.data()["host_key_fingerprint"], pin);
    assert_eq!(
        code(&bob.get(&machine).await),
        (404, json!("machine_not_found"))
    );
    assert_eq!(
        code(&connect_as(&world, BOB, id).await),
        (404, json!("machine_not_found"))
    );
    assert_eq!(connect_as(&world, ALICE, id).await.status, 200);

    // Each move is a machine_updated with the owner change, in the caller's log and in the
    // log of every organization it left or joined.
    let owner_changes = |entries: &[Value]| -> Vec<Value> {
        of_kind(entries, "machine_updated")
            .into_iter()
            .filter(|(_, details)| {
                details["fields"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("owner"))
            })
            .map(|(_, details)| details["owner"].clone())
            .collect()
    };
    let mut alice_log = alice.get("/api/v1/audit?limit=200").await.data()["entries"]
        .as_array()
        .unwrap()
        .clone();
    alice_log.reverse();
    assert_eq!(
        owner_changes(&alice_log),
        vec![
            json!({"from": ALICE, "to": SLUG}),
            json!({"from": SLUG, "to": "other-team"}),
            json!({"from": "other-team", "to": ALICE}),
        ]
    );
    assert_eq!(
        owner_changes(&org_log(&alice).await),
        vec![
            json!({"from": ALICE, "to": SLUG}),
            json!({"from": SLUG, "to": "other-team"}),
        ]
    );
}

async fn only_owners_and_admins_move_machines_and_a_wrong_password_moves_nothing(backend: Backend) {
    let world = World::start(backend);
    let alice = world.user_with_vault(ALICE).await;
    let bob = world.user_with_vault(BOB).await;
    let eve = world.user_with_vault(EVE).await;
    org_with(&world, &alice, &[(BOB, "member")]).await;
    let org_id = org_machine(&alice, "shared").await;
    assert_eq!(grant(&alice, ALICE, BOB).await.status, 200);
    let bobs = own_machine(&bob, "bob's").await;
    let alices = own_machine(&alice, "alice's").await;

    // A plain member moves nothing into or out of the organization, with a right password.
    let into_org = json!({"owner_type": "organization", "organization": SLUG});
    let refused = move_machine(&bob, BOB, bobs, into_org.clone()).await;
    assert_eq!(code(&refused), (403, json!("forbidden")));
    let refused = move_machine(&bob, BOB, org_id, json!({"owner_type": "user"})).await;
    assert_eq!(code(&refused), (403, json!("forbidden")));
    // Someone outside the organization gets its 404.
    let eves = own_machine(&eve, "eve's").await;
    let outside = move_machine(&eve, EVE, eves, into_org.clone()).await;
    assert_eq!(code(&outside), (404, json!("org_not_found")));
    let outside = move_machine(&eve, EVE, org_id, json!({"owner_type": "user"})).await;
    assert_eq!(code(&outside), (404, json!("machine_not_found")));

    // The owner's wrong master password is refused as a connect refuses it; nothing moved.
    let wrong = alice
        .patch_json(
            &format!("/api/v1/machine/{alices}"),
            &json!({"owner_type": "organization", "organization": SLUG,
                    "master_password": "not alice's"}),
        )
        .await;
    assert_eq!(code(&wrong), (401, json!("invalid_master_password")));
    let missing = alice
        .patch_json(&format!("/api/v1/machine/{alices}"), &into_org)
        .await;
    assert_eq!(code(&missing), (400, json!("invalid_request")));
    assert!(
        missing.message().contains("master_password"),
        "{:?}",
        missing.body
    );
    assert_eq!(
        alice.get(&format!("/api/v1/machine/{alices}")).await.data()["owner_type"],
        "user"
    );
    assert_eq!(ids(&bob.get("/api/v1/machines").await), vec![bobs, org_id]);
    assert_eq!(connect_as(&world, ALICE, alices).await.status, 200);
    assert_eq!(
        code(&connect_as(&world, BOB, alices).await),
        (404, json!("machine_not_found"))
    );
    // The organization machine stays where it was and still opens for its member.
    assert_eq!(connect_as(&world, BOB, org_id).await.status, 200);
}
