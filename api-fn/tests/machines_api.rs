//! The Machines API's promises, over real HTTP against the real binary, on both backends
//! (embedded SQLite + key file, and DynamoDB + KMS on the moto server).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Backend, machine_body, start};
use serde_json::json;

const MASTER: &str = "correct horse battery staple";

on_both_backends!(
    seed_flow_works_end_to_end,
    create_requires_a_master_password_first,
    bad_input_is_refused_with_a_message_naming_the_problem,
    nothing_is_written_by_a_refused_create,
    another_users_machine_is_not_found,
    list_is_sorted_by_id_and_ids_are_unique,
    secrets_are_never_returned,
    changing_the_master_password_needs_the_current_one,
    wrong_master_passwords_are_rate_limited,
    private_keys_are_validated,
    errors_carry_a_machine_readable_code,
);

async fn seed_flow_works_end_to_end(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");

    let set = alice.set_master_password(MASTER).await;
    assert_eq!(
        (set.status, set.message()),
        (200, "Master password set successfully")
    );

    let created = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["status"], "OK");
    assert_eq!(created.message(), "Machine created successfully");
    let id = created.data()["id"].as_u64().unwrap();
    assert_eq!(created.data()["port"], "22");
    assert_eq!(created.data()["owner_id"], "alice@example.com");
    assert_eq!(created.data()["owner_type"], "user");
    assert_eq!(created.data()["organization"], json!(null));
    assert_eq!(created.data()["host_key_fingerprint"], json!(null));

    let list = alice.get("/api/v1/machines").await;
    assert_eq!(
        (list.status, list.message()),
        (200, "Machines fetched successfully")
    );
    assert_eq!(list.body["status"], "OK");
    assert_eq!(list.data().as_array().unwrap().len(), 1);

    let one = alice.get(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(
        (one.status, one.message()),
        (200, "Machine fetched successfully")
    );
    assert_eq!(one.data(), created.data());

    let deleted = alice.delete(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(
        (deleted.status, deleted.message()),
        (200, "Machine deleted successfully")
    );
    assert_eq!(deleted.data(), &json!(null));

    let again = alice.delete(&format!("/api/v1/machine/{id}")).await;
    assert_eq!((again.status, again.message()), (404, "Machine not found"));
    let gone = alice.get(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(gone.status, 404);
    assert!(gone.headers.contains_key("x-request-id"));
}

async fn create_requires_a_master_password_first(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let refused = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.message().contains("PUT /api/v1/master-password"),
        "{}",
        refused.message()
    );
    let weak = alice.set_master_password("short").await;
    assert_eq!(
        (weak.status, weak.message()),
        (400, "password must be at least 8 characters")
    );
}

async fn bad_input_is_refused_with_a_message_naming_the_problem(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;

    let with = |field: &str, value: serde_json::Value| {
        let mut body = machine_body("web");
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = machine_body("web");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = vec![
        (without("name"), "name is required"),
        (without("hostname"), "hostname is required"),
        (without("port"), "port is required"),
        (without("username"), "username is required"),
        (with("name", json!("  ")), "name is required"),
        (with("name", json!(42)), "name must be a string"),
        (
            with("port", json!("0")),
            "port must be a number between 1 and 65535",
        ),
        (
            with("port", json!("65536")),
            "port must be a number between 1 and 65535",
        ),
        (
            with("port", json!("twenty-two")),
            "port must be a number between 1 and 65535",
        ),
        (with("port", json!({"n": 22})), "port must be a string"),
        (
            with("hostname", json!("not a host!")),
            "hostname must be a DNS name or an IP address",
        ),
        (
            with("password", json!("")),
            "Either password or private_key is required",
        ),
        (
            with(
                "private_key",
                json!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----"
                ),
            ),
            "private_key could not be parsed (expected an OpenSSH or PEM RSA/ECDSA/Ed25519 private key)",
        ),
        (with("surprise", json!(1)), "Unknown field 'surprise'"),
        (json!([1, 2, 3]), "Request body must be a JSON object"),
    ];
    for (body, expected) in cases {
        let answer = alice.post_json("/api/v1/machine", &body).await;
        assert_eq!(
            (answer.status, answer.message()),
            (400, expected),
            "body {body}"
        );
        assert_eq!(answer.body["status"], "Bad Request");
    }

    let not_json = alice.post_raw("/api/v1/machine", "{\"name\": ").await;
    assert_eq!(not_json.status, 400);
    assert!(
        not_json
            .message()
            .starts_with("Request body is not valid JSON"),
        "{}",
        not_json.message()
    );
    let empty = alice.post_raw("/api/v1/machine", "").await;
    assert_eq!(
        (empty.status, empty.message()),
        (400, "Request body is required (JSON)")
    );

    let huge = json!({"name": "x".repeat(70 * 1024)}).to_string();
    let too_large = alice.post_raw("/api/v1/machine", huge.clone()).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(
        too_large.message(),
        "Request body is larger than 65536 bytes"
    );
    // Without a Content-Length (chunked), the limit is enforced while streaming.
    let stream = chunks(huge.into_bytes());
    let chunked = alice
        .post_raw("/api/v1/machine", reqwest::Body::wrap_stream(stream))
        .await;
    assert_eq!(chunked.status, 413);

    for id in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let answer = alice.get(&format!("/api/v1/machine/{id}")).await;
        assert_eq!(
            (answer.status, answer.message()),
            (400, "Machine id must be a positive integer"),
            "{id}"
        );
    }
    let route = alice.get("/api/v1/nothing-here").await;
    assert_eq!((route.status, route.message()), (404, "Route not found"));
    let method = alice
        .send(alice.http.patch(alice.url("/api/v1/machines")))
        .await;
    assert_eq!(method.status, 405);
}

/// A chunked body (no Content-Length), so the server cannot know its size up front.
fn chunks(bytes: Vec<u8>) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let parts: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(parts)
}

async fn nothing_is_written_by_a_refused_create(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let mut body = machine_body("web");
    body["port"] = json!("70000");
    assert_eq!(alice.post_json("/api/v1/machine", &body).await.status, 400);
    let list = alice.get("/api/v1/machines").await;
    assert_eq!(list.data(), &json!([]));
}

async fn another_users_machine_is_not_found(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    alice.set_master_password(MASTER).await;
    bob.set_master_password("bob's own master password").await;
    let id = alice
        .post_json("/api/v1/machine", &machine_body("alice-box"))
        .await
        .data()["id"]
        .as_u64()
        .unwrap();
    let missing = bob.get("/api/v1/machine/999999").await;
    let theirs = bob.get(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(
        (theirs.status, theirs.message()),
        (missing.status, missing.message())
    );
    assert_eq!(theirs.status, 404);
    assert_eq!(
        bob.delete(&format!("/api/v1/machine/{id}")).await.status,
        404
    );
    assert_eq!(bob.get("/api/v1/machines").await.data(), &json!([]));
    // Alice's machine survived Bob's delete attempt.
    assert_eq!(
        alice.get(&format!("/api/v1/machine/{id}")).await.status,
        200
    );
}

async fn list_is_sorted_by_id_and_ids_are_unique(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    alice.set_master_password(MASTER).await;
    bob.set_master_password(MASTER).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let (who, name) = if n % 3 == 0 {
            (&bob, "b")
        } else {
            (&alice, "a")
        };
        let created = who
            .post_json("/api/v1/machine", &machine_body(&format!("{name}{n}")))
            .await;
        assert_eq!(created.status, 200);
        ids.push(created.data()["id"].as_u64().unwrap());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "ids must be unique across users: {ids:?}"
    );
    let listed: Vec<u64> = alice
        .get("/api/v1/machines")
        .await
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(listed.len(), 8);
}

async fn secrets_are_never_returned(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let key = common::ssh_keygen("key passphrase");
    let mut body = machine_body("web");
    body["private_key"] = json!(key);
    body["passphrase"] = json!("key passphrase");
    body["organization"] = json!("ops");
    let pin = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    body["host_key_fingerprint"] = json!(pin);
    let created = alice.post_json("/api/v1/machine", &body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.data()["organization"], "ops");
    assert_eq!(created.data()["host_key_fingerprint"], pin);
    let id = created.data()["id"].as_u64().unwrap();
    // The listing reads summaries, not whole machines: every shown field must still match.
    let listed = alice.get("/api/v1/machines").await;
    assert_eq!(listed.data(), &json!([created.data()]));
    let everything = format!(
        "{}{}{}",
        created.body,
        alice.get("/api/v1/machines").await.body,
        alice.get(&format!("/api/v1/machine/{id}")).await.body
    );
    for field in [
        "password",
        "private_key",
        "passphrase",
        "sealed",
        "ciphertext",
    ] {
        assert!(
            !everything.contains(&format!("\"{field}\"")),
            "{field} leaked: {everything}"
        );
    }
    assert!(!everything.contains("ssh-password-of-web"));
    assert!(!everything.contains("key passphrase"));
    // Nor into the logs.
    let logs = server.process.output();
    assert!(!logs.contains("ssh-password-of-web") && !logs.contains("key passphrase"));
    assert!(!logs.contains(MASTER));
    assert!(
        !logs.contains(alice.token.as_deref().unwrap()),
        "token in logs"
    );
}

async fn changing_the_master_password_needs_the_current_one(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    for n in 0..3 {
        alice
            .post_json("/api/v1/machine", &machine_body(&format!("m{n}")))
            .await;
    }
    let missing = alice
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "a new password"}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.message()),
        (
            400,
            "current_password is required to change the master password"
        )
    );
    let wrong = alice
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "a new password", "current_password": "not it at all"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.message()),
        (401, "Invalid master password")
    );
    let changed = alice
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "a new password", "current_password": MASTER}),
        )
        .await;
    assert_eq!(
        (changed.status, changed.message()),
        (200, "Master password changed successfully")
    );
    assert_eq!(changed.data()["resealed"], 3);
    // The old password no longer works; the new one does.
    let old = alice
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "third password", "current_password": MASTER}),
        )
        .await;
    assert_eq!(old.status, 401);
    let new = alice
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "third password", "current_password": "a new password"}),
        )
        .await;
    assert_eq!(new.status, 200);
    assert_eq!(
        alice
            .get("/api/v1/machines")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

async fn wrong_master_passwords_are_rate_limited(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    alice.set_master_password(MASTER).await;
    bob.set_master_password(MASTER).await;
    let attempt = |client: testkit::Client, current: &'static str| async move {
        client
            .put_json(
                "/api/v1/master-password",
                &json!({"password": "whatever new", "current_password": current}),
            )
            .await
    };
    for _ in 0..5 {
        assert_eq!(attempt(alice.clone(), "wrong guess").await.status, 401);
    }
    let limited = attempt(alice.clone(), "wrong guess").await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    // Even the right password is refused while limited; other users are unaffected.
    assert_eq!(attempt(alice.clone(), MASTER).await.status, 429);
    assert_eq!(attempt(bob.clone(), MASTER).await.status, 200);
}

async fn private_keys_are_validated(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    alice.set_master_password(MASTER).await;
    let key_body = |key: String, passphrase: Option<&str>| {
        let mut body = machine_body("keyed");
        body.as_object_mut().unwrap().remove("password");
        body["private_key"] = json!(key);
        if let Some(p) = passphrase {
            body["passphrase"] = json!(p);
        }
        body
    };
    let encrypted = common::ssh_keygen("the passphrase");
    let needs = alice
        .post_json("/api/v1/machine", &key_body(encrypted.clone(), None))
        .await;
    assert_eq!(
        (needs.status, needs.message()),
        (400, "private_key is encrypted; passphrase is required")
    );
    let wrong = alice
        .post_json(
            "/api/v1/machine",
            &key_body(encrypted.clone(), Some("nope")),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.message()),
        (400, "passphrase does not decrypt private_key")
    );
    let right = alice
        .post_json(
            "/api/v1/machine",
            &key_body(encrypted, Some("the passphrase")),
        )
        .await;
    assert_eq!(right.status, 200);
    let plain = alice
        .post_json("/api/v1/machine", &key_body(common::ssh_keygen(""), None))
        .await;
    assert_eq!(plain.status, 200);
    let rsa = alice
        .post_json(
            "/api/v1/machine",
            &key_body(common::ssh_keygen_rsa_pem(), None),
        )
        .await;
    assert_eq!(rsa.status, 200, "{:?}", rsa.body);
}

/// Lambda runs many instances: the failure count lives in the table, so guesses spread over
/// instances are limited together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_failures_are_counted_across_instances() {
    let first = start(Backend::DynamoDbKms);
    let aws = first.aws.as_ref().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (mut env, _) = common::env_for(&Backend::Embedded, data_dir.path());
    env.insert("DYNAMODB_TABLE".into(), aws.table.clone());
    env.insert("KMS_KEY_ID".into(), aws.kms_key_id.clone());
    env.insert("AWS_ENDPOINT_URL".into(), aws.endpoint.clone());
    for (k, v) in testkit::aws_test_credentials() {
        env.insert(k.into(), v.into());
    }
    let second = testkit::Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    let on_first = first.user("alice@example.com");
    let on_second = testkit::Client::new(&second.base_url, None).as_user("alice@example.com");
    on_first.set_master_password(MASTER).await;
    let guess = json!({"password": "whatever new", "current_password": "wrong guess"});
    for client in [&on_first, &on_second, &on_first, &on_second, &on_first] {
        assert_eq!(
            client
                .put_json("/api/v1/master-password", &guess)
                .await
                .status,
            401
        );
    }
    assert_eq!(
        on_second
            .put_json("/api/v1/master-password", &guess)
            .await
            .status,
        429
    );
}

/// Clients switch on `code`, never on the message: every error envelope carries one, and the
/// same situation always has the same code.
async fn errors_carry_a_machine_readable_code(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let early = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    assert_eq!(
        (early.status, &early.body["code"]),
        (409, &json!("master_password_required"))
    );
    alice.set_master_password(MASTER).await;
    let bad = alice
        .post_json("/api/v1/machine", &json!({"name": "x"}))
        .await;
    assert_eq!(
        (bad.status, &bad.body["code"]),
        (400, &json!("invalid_request"))
    );
    let missing = alice.get("/api/v1/machine/999999").await;
    assert_eq!(
        (missing.status, &missing.body["code"]),
        (404, &json!("machine_not_found"))
    );
    // `server.client` carries no token.
    let anonymous = server.client.get("/api/v1/machines").await;
    assert_eq!(
        (anonymous.status, &anonymous.body["code"]),
        (401, &json!("unauthorized"))
    );
    let ok = alice.get("/api/v1/machines").await;
    assert!(ok.body.get("code").is_none(), "success has no code");
}
