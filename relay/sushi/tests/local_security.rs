//! The local binary on a laptop: a web page whose name rebinds to 127.0.0.1 gets nothing (a
//! foreign `Host` is refused, development sign-in included), development sign-in cannot be
//! switched on for a server others can reach, and signing out ends the session for the API,
//! connect and the terminal alike, on both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use testkit::relay_world::STEP;
use testkit::ws::Terminal;
use testkit::{Answer, Client, JWT_SECRET, Process};

const MASTER: &str = "local master pw";

fn sushi(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Process {
    let mut env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Process::start(env!("CARGO_BIN_EXE_sushi"), &env)
}

/// The port of `base_url` (`http://127.0.0.1:PORT`).
fn port(base_url: &str) -> &str {
    base_url.rsplit(':').next().unwrap()
}

async fn dev_sign_in(client: &Client, host: &str) -> Answer {
    client
        .send(
            client
                .http
                .post(client.url("/api/v1/auth/dev"))
                .header("host", host)
                .header("content-type", "application/json")
                .body(json!({"email": "victim@example.com"}).to_string()),
        )
        .await
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_cannot_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let sushi = sushi(&dir, &[]);
    let client = Client::new(&sushi.base_url, None);
    let port = port(&sushi.base_url);
    let rebound = format!("rebind.attacker.example:{port}");

    let providers = client
        .send(
            client
                .http
                .get(client.url("/api/v1/auth/providers"))
                .header("host", &rebound),
        )
        .await;
    assert_eq!(providers.status, 421, "{:?}", providers.body);
    assert_eq!(providers.body["code"], "host_not_allowed");

    let signed_in = dev_sign_in(&client, &rebound).await;
    assert_eq!(signed_in.status, 421, "{:?}", signed_in.body);
    assert!(signed_in.headers.get("set-cookie").is_none());

    // Loopback names, on any port, are this laptop.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = dev_sign_in(&client, &host).await;
        assert_eq!(answer.status, 200, "{host}: {:?}", answer.body);
    }
}

#[tokio::test]
async fn the_configured_public_url_is_an_allowed_host() {
    let dir = tempfile::tempdir().unwrap();
    let sushi = sushi(&dir, &[("PUBLIC_URL", "https://ssh.example.com")]);
    let client = Client::new(&sushi.base_url, None);
    let health = client
        .send(
            client
                .http
                .get(client.url("/api/v1/health"))
                .header("host", "ssh.example.com"),
        )
        .await;
    assert_eq!(health.status, 200, "{:?}", health.body);
    let other = client
        .send(
            client
                .http
                .get(client.url("/api/v1/health"))
                .header("host", "ssh.example.com.attacker.example"),
        )
        .await;
    assert_eq!(other.status, 421, "{:?}", other.body);
}

#[test]
fn development_sign_in_is_refused_on_a_non_loopback_bind() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
        ("BIND_ADDR".to_owned(), "0.0.0.0".to_owned()),
        ("SUSHI_DEV_SIGNIN".to_owned(), "true".to_owned()),
    ]);
    let (status, output) =
        testkit::run_expecting_exit(env!("CARGO_BIN_EXE_sushi"), &env, Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    assert!(output.contains("SUSHI_DEV_SIGNIN"), "{output}");
}

#[tokio::test]
async fn development_sign_in_is_off_by_default_on_a_non_loopback_bind() {
    let dir = tempfile::tempdir().unwrap();
    let sushi = sushi(&dir, &[("BIND_ADDR", "0.0.0.0")]);
    let base = sushi.base_url.replacen("0.0.0.0", "127.0.0.1", 1);
    let client = Client::new(&base, None);
    let providers = client.get("/api/v1/auth/providers").await;
    assert_eq!(providers.status, 200, "{:?}", providers.body);
    assert_eq!(providers.data()["dev"], false);
    let port = port(&base);
    let answer = dev_sign_in(&client, &format!("127.0.0.1:{port}")).await;
    assert_eq!(answer.status, 404, "{:?}", answer.body);
}

/// Sign out through the API; the token is then refused by the API, by connect and by the
/// terminal WebSocket (where a ticket taken before signing out no longer opens).
async fn signing_out_ends_the_session_everywhere(aws: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut extra: Vec<(String, String)> = Vec::new();
    let _provisioned = aws.then(|| {
        let backend = testkit::provision_aws();
        extra.push(("DYNAMODB_TABLE".into(), backend.table.clone()));
        extra.push(("KMS_KEY_ID".into(), backend.kms_key_id.clone()));
        extra.push(("AWS_ENDPOINT_URL".into(), backend.endpoint.clone()));
        for (k, v) in testkit::aws_test_credentials() {
            extra.push((k.into(), v.into()));
        }
        backend
    });
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sushi = sushi(&dir, &extra);
    let token = testkit::token("leaving@sushi.test");
    let user = Client::new(&sushi.base_url, Some(token.clone()));
    assert_eq!(user.set_master_password(MASTER).await.status, 200);
    let sshd = testkit::ssh::shared_sshd();
    let created = user
        .post_json(
            "/api/v1/machine",
            &json!({"name": "local", "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.data()["id"].as_u64().unwrap();
    let connect = format!("/api/v1/machine/{id}/connect");
    let connected = user
        .post_json(&connect, &json!({ "password": MASTER }))
        .await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    let ticket = connected.data().as_str().unwrap().to_owned();

    let anonymous = Client::new(&sushi.base_url, None);
    let out = anonymous
        .send(
            anonymous
                .http
                .post(anonymous.url("/api/v1/auth/logout"))
                .header("cookie", format!("jwt={token}"))
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);

    assert_eq!(user.get("/api/v1/machines").await.status, 401);
    let refused = user
        .post_json(&connect, &json!({ "password": MASTER }))
        .await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    let cookie = format!("jwt={token}");
    let mut term = Terminal::open(&sushi.base_url, &ticket, &[("cookie", cookie.as_str())])
        .await
        .unwrap();
    let (code, _) = term.expect_close(STEP).await;
    assert_eq!(code, 4003, "a revoked cookie does not open the terminal");
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere_embedded() {
    signing_out_ends_the_session_everywhere(false).await;
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere_dynamodb_kms() {
    signing_out_ends_the_session_everywhere(true).await;
}
