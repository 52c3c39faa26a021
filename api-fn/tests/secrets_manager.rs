//! Secrets named by ARN are read from Secrets Manager (moto on loopback) when the process
//! starts, so a deployment never puts a secret's value in the function's environment; a secret
//! that cannot be read stops the start at once, naming the variable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Backend;
use testkit::{Client, Process};

/// The environment of an api-fn on DynamoDB + KMS whose JWT secret is only named by ARN.
fn env_with_secret_arn(arn: &str) -> (HashMap<String, String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, _aws) = common::env_for(&Backend::DynamoDbKms, dir.path());
    env.remove("JWT_SECRET");
    env.insert("JWT_SECRET_ARN".to_owned(), arn.to_owned());
    (env, dir)
}

#[tokio::test]
async fn the_jwt_secret_is_read_from_secrets_manager_at_start() {
    let value = format!("sm-{}", uuid::Uuid::new_v4().simple());
    let arn = testkit::moto_secret(&value);
    let (env, _dir) = env_with_secret_arn(&arn);
    let api = Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);

    let token = testkit::token_signed_with(&value, "sm@example.com");
    let listed = Client::new(&api.base_url, Some(token))
        .get("/api/v1/machines")
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    // Any other secret (the one the other tests use) does not verify.
    let other = Client::new(&api.base_url, None)
        .as_user("sm@example.com")
        .get("/api/v1/machines")
        .await;
    assert_eq!(other.status, 401, "{:?}", other.body);
    assert!(
        !api.output().contains(&value),
        "the secret's value was logged"
    );
}

#[tokio::test]
async fn an_unreadable_secret_stops_the_start_naming_the_variable() {
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sushi-test-missing-AbCdEf";
    let (env, _dir) = env_with_secret_arn(missing);
    let started = Instant::now();
    let (status, output) =
        testkit::run_expecting_exit(env!("CARGO_BIN_EXE_api-fn"), &env, Duration::from_secs(20));
    assert!(!status.success(), "{output}");
    assert!(output.contains("JWT_SECRET_ARN"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(15), "{output}");
}

#[tokio::test]
async fn a_secret_and_its_arn_together_are_refused() {
    let (mut env, _dir) = env_with_secret_arn("arn:aws:secretsmanager:us-east-1:1:secret:x");
    env.insert("JWT_SECRET".to_owned(), testkit::JWT_SECRET.to_owned());
    let (status, output) =
        testkit::run_expecting_exit(env!("CARGO_BIN_EXE_api-fn"), &env, Duration::from_secs(20));
    assert!(!status.success(), "{output}");
    assert!(output.contains("JWT_SECRET_ARN or JWT_SECRET"), "{output}");
}

#[tokio::test]
async fn the_token_command_signs_with_the_secret_named_by_arn() {
    let value = format!("sm-{}", uuid::Uuid::new_v4().simple());
    let arn = testkit::moto_secret(&value);
    let (env, _dir) = env_with_secret_arn(&arn);
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_api-fn"))
        .args(["token", "--email", "cli@example.com"])
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    assert!(!String::from_utf8_lossy(&minted.stderr).contains(&value));

    let api = Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    let listed = Client::new(&api.base_url, Some(token))
        .get("/api/v1/machines")
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
}
