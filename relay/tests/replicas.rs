//! Several relays, one Redis: a WebSocket may land on any relay; Redis may restart under open
//! terminals; a relay told to stop drains its terminals and exits cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use testkit::gateway::{self, ALLOWED_ORIGIN, Gateway, MASTER_PASSWORD, STEP};
use testkit::redis::PrivateRedis;
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

async fn open(base: &str, ticket: &str) -> Terminal {
    Terminal::open(base, ticket, &[("origin", ALLOWED_ORIGIN)])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_terminal_opened_on_another_relay_reaches_the_session() {
    let gw = Gateway::new().await;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let a = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let email = gw.user("replicas").await;
    let id = gw.password_machine(&email).await;
    let ticket = gateway::ticket(&a.base_url, &email, id).await;
    let mut term = open(&b.base_url, &ticket).await;
    term.run("echo via-b-$((5*5))").await;
    term.expect_output("via-b-25", STEP).await;
    // Single use holds across relays too.
    let mut again = open(&a.base_url, &ticket).await;
    assert_eq!(again.expect_close(STEP).await.0, 4002);
    term.run("exit 3").await;
    assert_eq!(term.expect_event("exit", STEP).await["code"], 3);
    assert_eq!(term.expect_close(STEP).await.0, 1000);
}

#[tokio::test]
async fn redis_restarting_keeps_open_terminals_and_connect_recovers() {
    let gw = Gateway::new().await;
    let redis = PrivateRedis::start(0);
    let relay = gw.start(RELAY, &[("REDIS_URL", &redis.url())]);
    let email = gw.user("redis-restart").await;
    let id = gw.password_machine(&email).await;
    let ticket = gateway::ticket(&relay.base_url, &email, id).await;
    let mut term = open(&relay.base_url, &ticket).await;
    term.run("echo before-$((7*7))").await;
    term.expect_output("before-49", STEP).await;

    let port = redis.stop();
    term.run("echo during-$((8*8))").await;
    term.expect_output("during-64", STEP).await;
    let answer = gateway::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert!(answer.message().contains("Redis"), "{}", answer.message());

    let _redis = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = gateway::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connect did not recover: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    term.run("echo after-$((9*9))").await;
    term.expect_output("after-81", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn sigterm_drains_open_terminals_then_exits_cleanly() {
    let gw = Gateway::new().await;
    let mut relay = gw.start(RELAY, &[("DRAIN_GRACE_SECS", "3")]);
    let email = gw.user("drain").await;
    let id = gw.password_machine(&email).await;
    let ticket = gateway::ticket(&relay.base_url, &email, id).await;
    let mut term = open(&relay.base_url, &ticket).await;
    term.run("echo up-$((1+2))").await;
    term.expect_output("up-3", STEP).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let notice = term.expect_event("shutdown", STEP).await;
    assert_eq!(notice["grace_secs"], 3);
    // New sessions are refused while draining; the open terminal keeps working.
    let answer = gateway::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    term.run("echo still-$((2+2))").await;
    term.expect_output("still-4", STEP).await;
    // After the grace period: closed with Going Away, and the process exits 0.
    let (code, _) = term.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, 1001);
    let exit = relay
        .wait_exit(Duration::from_secs(10))
        .expect("relay did not exit");
    assert!(exit.success(), "exit status {exit:?}");
}
