//! When DynamoDB or KMS is unreachable or throttling, clients get a prompt 503 envelope with a
//! clear message, the log has the request id, and nothing is half-written. Bad configuration
//! stops the process at start with one line naming the variable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Backend, machine_body};
use serde_json::json;
use testkit::{Client, Process};

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn aws_env(endpoint: &str) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = testkit::aws_test_credentials()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.insert("JWT_SECRET".into(), testkit::JWT_SECRET.into());
    env.insert("DYNAMODB_TABLE".into(), "sushi-unreachable".into());
    env.insert("KMS_KEY_ID".into(), "alias/sushi-unreachable".into());
    env.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
    env
}

#[tokio::test]
async fn unreachable_dynamodb_answers_503_within_seconds() {
    let process = Process::start(
        env!("CARGO_BIN_EXE_api-fn"),
        &aws_env(&format!("http://127.0.0.1:{}", closed_port())),
    );
    let alice = Client::new(&process.base_url, None).as_user("alice@example.com");
    let started = Instant::now();
    let answer = alice.get("/api/v1/machines").await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["status"], "Service Unavailable");
    assert_eq!(
        answer.message(),
        "Machine store is unavailable; try again shortly"
    );
    assert_eq!(
        answer
            .headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5"),
        "a 503 tells clients when to come back"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let request_id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = process.output();
    assert!(
        logs.lines()
            .any(|l| l.contains("store unavailable") && l.contains(&request_id)),
        "log line with the request id: {logs}"
    );
    let create = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    assert_eq!(create.status, 503);
}

/// A loopback endpoint that answers every DynamoDB call with ThrottlingException, as DynamoDB
/// does under load; the SDK retries with backoff, then we must answer 503.
async fn throttling_endpoint() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        )
    });
    testkit::serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_dynamodb_answers_503() {
    let endpoint = throttling_endpoint().await;
    let process = Process::start(env!("CARGO_BIN_EXE_api-fn"), &aws_env(&endpoint));
    let alice = Client::new(&process.base_url, None).as_user("alice@example.com");
    let answer = alice.get("/api/v1/machines").await;
    assert_eq!(
        (answer.status, answer.message()),
        (503, "Machine store is unavailable; try again shortly")
    );
    assert!(
        process
            .printed("ThrottlingException", Duration::from_secs(5))
            .await,
        "the cause is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_kms_fails_create_with_503_and_writes_nothing() {
    let extra: HashMap<String, String> = [(
        "AWS_ENDPOINT_URL_KMS".to_owned(),
        format!("http://127.0.0.1:{}", closed_port()),
    )]
    .into_iter()
    .collect();
    let server = common::start_with(Backend::DynamoDbKms, extra);
    let alice = server.user("alice@example.com");
    // Setting the master password needs no KMS call (the vault key is password-derived).
    assert_eq!(
        alice
            .set_master_password("correct horse battery")
            .await
            .status,
        200
    );
    let create = alice
        .post_json("/api/v1/machine", &machine_body("web"))
        .await;
    assert_eq!(
        (create.status, create.message()),
        (503, "Key service is unavailable; try again shortly")
    );
    assert_eq!(alice.get("/api/v1/machines").await.data(), &json!([]));
}

#[test]
fn missing_configuration_fails_at_start_naming_the_variable() {
    let cases = [
        (
            vec![("DYNAMODB_TABLE", "t")],
            "KMS_KEY_ID must be set when DYNAMODB_TABLE is set",
        ),
        (
            vec![("KMS_KEY_ID", "k")],
            "DYNAMODB_TABLE must be set when KMS_KEY_ID is set",
        ),
        (
            vec![("DYNAMODB_TABLE", "t"), ("KMS_KEY_ID", "k")],
            "JWT_SECRET or JWKS_URL must be set",
        ),
        (vec![("PORT", "http")], "PORT=http is not a valid value"),
        (
            vec![("JWKS_URL", "file:///etc/passwd")],
            "JWKS_URL=file:///etc/passwd must be an http(s) URL",
        ),
    ];
    for (env, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_api-fn"))
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}
