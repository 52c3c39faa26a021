//! The audit log of the local binary (SQLite in DATA_DIR) for what only `sushi` serves in one
//! process: development sign-in, connect outcomes (succeeded, wrong master password,
//! rate-limited, refused) against the real sshd, and the host key pinned on first use, each
//! with the client's address and request id, in a chain that verifies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use serde_json::{Value, json};
use testkit::ws::Terminal;
use testkit::{Client, JWT_SECRET, Process};

const MASTER: &str = "local master pw";
const USER: &str = "audited@sushi.test";

/// A request id per password (the edge accepts only printable ASCII without spaces).
fn request_id(password: &str) -> String {
    format!("connect-{}", password.replace(' ', "-"))
}

#[tokio::test]
async fn sign_in_and_connect_outcomes_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let anonymous = Client::new(&sushi.base_url, None);
    let signed_in = anonymous
        .send(
            anonymous
                .http
                .post(anonymous.url("/api/v1/auth/dev"))
                .header("user-agent", "audit-browser/2")
                .json(&json!({ "email": USER })),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);

    let client = anonymous.as_user(USER);
    assert_eq!(client.set_master_password(MASTER).await.status, 200);
    let sshd = testkit::ssh::shared_sshd();
    let created = client
        .post_json(
            "/api/v1/machine",
            &json!({"name": "local", "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.data()["id"].as_u64().unwrap();
    let connect = |password: &'static str, machine: u64| {
        let client = client.clone();
        async move {
            client
                .send(
                    client
                        .http
                        .post(client.url(&format!("/api/v1/machine/{machine}/connect")))
                        .header("x-request-id", request_id(password))
                        .json(&json!({ "password": password })),
                )
                .await
        }
    };
    assert_eq!(connect(MASTER, id).await.status, 200);
    assert_eq!(connect("wrong master", id).await.status, 401);
    assert_eq!(connect(MASTER, id + 1000).await.status, 404);
    let mut limited = false;
    for _ in 0..20 {
        let answer = connect("wrong master", id).await;
        if answer.status == 429 {
            limited = true;
            break;
        }
        assert_eq!(answer.status, 401, "{:?}", answer.body);
    }
    assert!(limited, "wrong master passwords are rate-limited");

    let page = client.get("/api/v1/audit?limit=200").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let entries: Vec<Value> = page.data()["entries"].as_array().unwrap().clone();
    let mut oldest_first: Vec<&Value> = entries.iter().rev().collect();
    let kinds: Vec<&str> = oldest_first
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // A successful connect begins the session's recording (on by default) before it answers.
    assert_eq!(
        &kinds[..7],
        [
            "sign_in",
            "master_password_set",
            "machine_created",
            "host_key_pinned",
            "recording_started",
            "connect_succeeded",
            "connect_wrong_password",
        ],
        "{kinds:?}"
    );
    assert_eq!(kinds[7], "connect_refused");
    assert_eq!(kinds.last(), Some(&"connect_rate_limited"));
    assert!(
        kinds[8..kinds.len() - 1]
            .iter()
            .all(|k| *k == "connect_wrong_password")
    );

    let sign_in = oldest_first.remove(0);
    assert_eq!(sign_in["details"], json!({ "provider": "dev" }));
    assert_eq!(sign_in["user_agent"], "audit-browser/2");
    let pinned = &entries[entries.len() - 4];
    assert_eq!(pinned["details"]["machine_id"], id);
    assert!(
        pinned["details"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert_eq!(pinned["request_id"], request_id(MASTER));
    let refused = &entries[entries.len() - 8];
    assert_eq!(
        refused["details"],
        json!({ "machine_id": id + 1000, "code": "machine_not_found" })
    );
    assert!(
        entries.iter().all(|e| e["ip"] == "127.0.0.1"),
        "{entries:?}"
    );

    let verified = client.get("/api/v1/audit/verify").await;
    assert_eq!(verified.data()["ok"], true, "{:?}", verified.body);
    assert_eq!(verified.data()["entries"], entries.len());
}

/// A terminal's life in its owner's log: started, resumed after its connection was cut, and
/// ended with its exit status and byte counts.
#[tokio::test]
async fn a_terminals_start_resume_and_end_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let client = Client::new(&sushi.base_url, None).as_user(USER);
    assert_eq!(client.set_master_password(MASTER).await.status, 200);
    let sshd = testkit::ssh::shared_sshd();
    let created = client
        .post_json(
            "/api/v1/machine",
            &json!({"name": "local", "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password}),
        )
        .await;
    let id = created.data()["id"].as_u64().unwrap();
    let ticket = client
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": MASTER }),
        )
        .await;
    let ticket = ticket.data().as_str().unwrap().to_owned();
    let cookie = format!("jwt={}", testkit::token(USER));
    let headers = [("cookie", cookie.as_str())];
    let step = std::time::Duration::from_secs(15);
    let mut term = Terminal::open(&sushi.base_url, &ticket, &headers)
        .await
        .unwrap();
    term.expect_event("session", step).await;
    let (session, secret) = term.session();
    term.run("echo typed-$((2*3))").await;
    term.expect_output("typed-6", step).await;
    let received = term.output.len() as u64;
    term.cut();
    let mut term = Terminal::resume(&sushi.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    term.expect_event("resumed", step).await;
    term.run("exit 7").await;
    assert_eq!(term.expect_event("exit", step).await["code"], 7);
    term.expect_close(step).await;

    // The end is written as the terminal tears down, just after the close.
    let mut kinds = Vec::new();
    for _ in 0..50 {
        let page = client.get("/api/v1/audit?limit=200").await;
        let entries: Vec<Value> = page.data()["entries"].as_array().unwrap().clone();
        kinds = entries
            .iter()
            .rev()
            .filter(|e| e["kind"].as_str().unwrap().starts_with("session_"))
            .cloned()
            .collect::<Vec<Value>>();
        if kinds.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = kinds.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["session_started", "session_resumed", "session_ended"]
    );
    assert_eq!(kinds[0]["details"]["session"], session.as_str());
    assert_eq!(kinds[0]["details"]["machine_id"], id);
    assert_eq!(kinds[1]["details"]["offset"], received);
    let ended = &kinds[2]["details"];
    assert_eq!(ended["exit_code"], 7, "{ended}");
    assert_eq!(ended["close_code"], 1000, "{ended}");
    assert_eq!(
        ended["bytes_in"],
        "echo typed-$((2*3))\nexit 7\n".len(),
        "{ended}"
    );
    assert!(ended["bytes_out"].as_u64().unwrap() > received, "{ended}");
    let verified = client.get("/api/v1/audit/verify").await;
    assert_eq!(verified.data()["ok"], true, "{:?}", verified.body);
}

/// The address of a request carrying `X-Forwarded-For: <forged>, <appended>` as the audit log
/// records it, on a `sushi` told to trust `hops` proxies (none when `None`).
async fn recorded_address(hops: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    if let Some(hops) = hops {
        env.insert("TRUSTED_PROXY_HOPS".to_owned(), hops.to_owned());
    }
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let client = Client::new(&sushi.base_url, None).as_user(USER);
    let set = client
        .send(
            client
                .http
                .put(client.url("/api/v1/master-password"))
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
                .json(&json!({ "password": MASTER })),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let log = client.get("/api/v1/audit?limit=5").await;
    let entry = &log.data()["entries"][0];
    assert_eq!(entry["kind"], "master_password_set");
    entry["ip"].as_str().unwrap().to_owned()
}

/// Behind N trusted proxies the client is the entry the outermost appended; with none declared
/// the header is not read at all, so a client cannot write a made-up address into its log.
#[tokio::test]
async fn forwarded_addresses_are_read_only_as_far_as_proxies_are_trusted() {
    assert_eq!(recorded_address(None).await, "127.0.0.1");
    assert_eq!(recorded_address(Some("1")).await, "203.0.113.9");
    assert_eq!(recorded_address(Some("2")).await, "6.6.6.6");
    // An invalid setting trusts nothing.
    assert_eq!(recorded_address(Some("lots")).await, "127.0.0.1");
}
