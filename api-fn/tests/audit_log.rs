//! The audit log over real HTTP against the real binary, on both backends (SQLite in DATA_DIR,
//! and the separate DynamoDB audit table on the moto server): account changes are recorded
//! with the client's address, user agent and request id; a user sees only their own chain; the
//! chain verifies, and an entry edited directly in the store makes verify name its sequence
//! number; concurrent appends leave a gap-free chain; pages are bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Backend, Server, machine_body, start};
use serde_json::{Value, json};
use testkit::Client;

const MASTER: &str = "correct horse battery staple";
const NEW_MASTER: &str = "another correct horse battery";
const AGENT: &str = "audit-test/1.0 (sushi)";

on_both_backends!(
    account_changes_are_recorded_with_where_they_came_from,
    another_user_sees_none_of_them,
    an_entry_edited_in_the_store_breaks_verify_at_its_seq,
    concurrent_appends_leave_a_gap_free_verifying_chain,
    pages_are_bounded_and_cover_the_chain_once,
);

/// A request with our user agent and a request id of our choosing.
fn tagged(client: &Client, request: reqwest::RequestBuilder, id: &str) -> reqwest::RequestBuilder {
    let _ = client;
    request
        .header("user-agent", AGENT)
        .header("x-request-id", id)
}

async fn entries(client: &Client) -> Vec<Value> {
    let page = client.get("/api/v1/audit?limit=200").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.message(), "Audit log fetched successfully");
    page.data()["entries"].as_array().unwrap().clone()
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

async fn verify(client: &Client) -> Value {
    let answer = client.get("/api/v1/audit/verify").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.data().clone()
}

async fn account_changes_are_recorded_with_where_they_came_from(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let http = &alice.http;
    let set = alice
        .send(tagged(
            &alice,
            http.put(alice.url("/api/v1/master-password"))
                .json(&json!({ "password": MASTER })),
            "req-set",
        ))
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let created = alice
        .send(tagged(
            &alice,
            http.post(alice.url("/api/v1/machine"))
                .json(&machine_body("web")),
            "req-create",
        ))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.data()["id"].as_u64().unwrap();
    let deleted = alice
        .send(tagged(
            &alice,
            http.delete(alice.url(&format!("/api/v1/machine/{id}"))),
            "req-delete",
        ))
        .await;
    assert_eq!(deleted.status, 200);
    let changed = alice
        .put_json(
            "/api/v1/master-password",
            &json!({ "password": NEW_MASTER, "current_password": MASTER }),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let out = alice
        .send(tagged(
            &alice,
            http.post(alice.url("/api/v1/auth/logout")),
            "req-logout",
        ))
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);

    // The signed-out token is refused now: read with a fresh session.
    let alice = server.user("alice@example.com");
    let log = entries(&alice).await;
    assert_eq!(
        kinds(&log),
        [
            "logout",
            "master_password_changed",
            "machine_deleted",
            "machine_created",
            "master_password_set"
        ]
    );
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
    let create = &log[3];
    assert_eq!(create["ip"], "127.0.0.1");
    assert_eq!(create["user_agent"], AGENT);
    assert_eq!(create["request_id"], "req-create");
    assert_eq!(create["details"]["machine_id"], id);
    assert_eq!(create["details"]["hostname"], "server.example.com");
    assert_eq!(log[2]["request_id"], "req-delete");
    assert_eq!(log[2]["details"], json!({ "machine_id": id }));
    assert_eq!(log[0]["request_id"], "req-logout");
    assert_eq!(log[4]["request_id"], "req-set");
    assert_eq!(log[4]["prev_hash"], "0".repeat(64));
    assert_eq!(log[3]["prev_hash"], log[4]["hash"]);
    // Nothing secret is recorded.
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(MASTER) && !text.contains("ssh-password-of-web"));
    assert_eq!(verify(&alice).await, json!({ "ok": true, "entries": 5 }));
}

async fn another_user_sees_none_of_them(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    assert_eq!(alice.set_master_password(MASTER).await.status, 200);
    let created = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    let id = created.data()["id"].as_u64().unwrap();
    // Bob deleting Alice's machine is a 404 and records nothing for either of them.
    assert_eq!(
        bob.delete(&format!("/api/v1/machine/{id}")).await.status,
        404
    );
    assert!(entries(&bob).await.is_empty());
    assert_eq!(verify(&bob).await, json!({ "ok": true, "entries": 0 }));
    let export = bob
        .http
        .get(bob.url("/api/v1/audit/export"))
        .bearer_auth(bob.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.text().await.unwrap(), "");
    // A cursor is a sequence number in the caller's own chain, never a way into another's.
    assert!(entries_page(&bob, "cursor=3").await.is_empty());
    assert_eq!(entries(&alice).await.len(), 2);
    // Unauthenticated: 401.
    let anonymous = Client::new(&server.client.base_url, None);
    assert_eq!(anonymous.get("/api/v1/audit").await.status, 401);
    assert_eq!(anonymous.get("/api/v1/audit/verify").await.status, 401);
}

async fn entries_page(client: &Client, query: &str) -> Vec<Value> {
    let page = client.get(&format!("/api/v1/audit?{query}")).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.data()["entries"].as_array().unwrap().clone()
}

/// Change the `ip` of entry `seq` in the store, as someone with write access to it could.
async fn tamper(server: &Server, owner: &str, seq: u64) {
    match &server.aws {
        Some(aws) => {
            let sdk = backends::aws::load_sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            use aws_sdk_dynamodb::types::AttributeValue;
            client
                .update_item()
                .table_name(&aws.audit_table)
                .key("PK", AttributeValue::S(owner.to_owned()))
                .key("SK", AttributeValue::N(seq.to_string()))
                .update_expression("SET ip = :ip")
                .expression_attribute_values(":ip", AttributeValue::S("203.0.113.9".to_owned()))
                .send()
                .await
                .unwrap();
        }
        None => {
            let path = server.data_dir.path().join("sushi.db");
            let owner = owner.to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                // The table refuses edits through SQL; whoever holds the file drops the guard.
                let refused = conn.execute(
                    "UPDATE audit_log SET ip = '203.0.113.9' WHERE owner_id = ?1 AND seq = ?2",
                    rusqlite::params![owner, seq as i64],
                );
                assert!(
                    refused.is_err(),
                    "the append-only trigger refuses an UPDATE"
                );
                conn.execute_batch("DROP TRIGGER audit_log_no_update")
                    .unwrap();
                let changed = conn
                    .execute(
                        "UPDATE audit_log SET ip = '203.0.113.9' WHERE owner_id = ?1 AND seq = ?2",
                        rusqlite::params![owner, seq as i64],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            })
            .await
            .unwrap();
        }
    }
}

async fn an_entry_edited_in_the_store_breaks_verify_at_its_seq(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    assert_eq!(alice.set_master_password(MASTER).await.status, 200);
    for name in ["a", "b", "c"] {
        let created = alice
            .post_json("/api/v1/machine", &machine_body(name))
            .await;
        assert_eq!(created.status, 200);
    }
    assert_eq!(verify(&alice).await, json!({ "ok": true, "entries": 4 }));
    tamper(&server, "alice@example.com", 2).await;
    assert_eq!(
        verify(&alice).await,
        json!({
            "ok": false,
            "entries": 2,
            "broken_seq": 2,
            "reason": "hash does not match the entry",
        })
    );
    // The edited entry is still listed (the log hides nothing); verify is what flags it.
    let log = entries(&alice).await;
    assert_eq!(log[2]["ip"], "203.0.113.9");
}

async fn concurrent_appends_leave_a_gap_free_verifying_chain(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    assert_eq!(alice.set_master_password(MASTER).await.status, 200);
    let creates = (0..20).map(|i| {
        let alice = alice.clone();
        async move {
            alice
                .post_json("/api/v1/machine", &machine_body(&format!("m{i}")))
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(creates).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(verify(&alice).await, json!({ "ok": true, "entries": 21 }));
    let log = entries(&alice).await;
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=21).rev().collect::<Vec<u64>>());
    let mut machines: Vec<u64> = log
        .iter()
        .filter(|e| e["kind"] == "machine_created")
        .map(|e| e["details"]["machine_id"].as_u64().unwrap())
        .collect();
    machines.sort_unstable();
    machines.dedup();
    assert_eq!(machines.len(), 20, "one entry per machine");
}

async fn pages_are_bounded_and_cover_the_chain_once(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    assert_eq!(alice.set_master_password(MASTER).await.status, 200);
    for i in 0..4 {
        let created = alice
            .post_json("/api/v1/machine", &machine_body(&format!("m{i}")))
            .await;
        assert_eq!(created.status, 200);
    }
    for bad in ["limit=0", "limit=201", "limit=abc", "cursor=-1", "other=1"] {
        let answer = alice.get(&format!("/api/v1/audit?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert_eq!(answer.body["code"], "invalid_request");
    }
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = alice.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(page.status, 200);
        let got = page.data()["entries"].as_array().unwrap();
        assert!(got.len() <= 2);
        seen.extend(got.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page.data()["next_cursor"].as_u64() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
    let export = alice
        .http
        .get(alice.url("/api/v1/audit/export?after=2"))
        .bearer_auth(alice.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = export
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let exported: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(exported, [3, 4, 5]);
}
