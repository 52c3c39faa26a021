//! Several relays, one Redis: a WebSocket may land on any relay; Redis may restart under open
//! terminals; a relay told to stop drains its terminals and exits cleanly; a relay that dies or
//! hangs costs the browsers routed to it a prompt 4011, never a hanging socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use testkit::redis::PrivateRedis;
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

async fn open(base: &str, ticket: &str, email: &str) -> Terminal {
    Terminal::open(base, ticket, &relay_world::browser(email).headers())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_terminal_opened_on_another_relay_reaches_the_session() {
    let gw = RelayWorld::new().await;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let a = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let email = gw.user("replicas").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&a.base_url, &email, id).await;
    let mut term = open(&b.base_url, &ticket, &email).await;
    term.run("echo via-b-$((5*5))").await;
    term.expect_output("via-b-25", STEP).await;
    // Single use holds across relays too.
    let mut again = open(&a.base_url, &ticket, &email).await;
    assert_eq!(again.expect_close(STEP).await.0, 4002);
    term.run("exit 3").await;
    assert_eq!(term.expect_event("exit", STEP).await["code"], 3);
    assert_eq!(term.expect_close(STEP).await.0, 1000);
}

/// Two relays on the shared Redis, and a ticket issued by the first (which holds the session).
async fn ticket_on_owner(
    gw: &RelayWorld,
    test: &str,
) -> (testkit::Process, testkit::Process, String, String) {
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let owner = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let other = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let email = gw.user(test).await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&owner.base_url, &email, id).await;
    (owner, other, ticket, email)
}

#[tokio::test]
async fn a_terminal_routed_to_a_dead_relay_is_closed_with_4011_promptly() {
    let gw = RelayWorld::new().await;
    let (owner, other, ticket, email) = ticket_on_owner(&gw, "dead-owner").await;
    owner.kill();
    let started = Instant::now();
    let mut term = open(&other.base_url, &ticket, &email).await;
    let (code, reason) = term.expect_close(STEP).await;
    assert_eq!(code, 4011, "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?} to report a dead relay",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_terminal_routed_to_a_hung_relay_is_closed_with_4011_within_the_forward_timeout() {
    let gw = RelayWorld::new().await;
    let (owner, other, ticket, email) = ticket_on_owner(&gw, "hung-owner").await;
    // Stopped, not dead: its kernel still accepts TCP connections, nothing ever answers.
    owner.signal("STOP");
    let started = Instant::now();
    let mut term = open(&other.base_url, &ticket, &email).await;
    let (code, reason) = term.expect_close(Duration::from_secs(15)).await;
    assert_eq!(code, 4011, "{reason}");
    // The forwarding connect is bounded at 5 s; allow for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "took {:?} to give up on a hung relay",
        started.elapsed()
    );
    drop(owner); // SIGKILL ends a stopped process too.
}

#[tokio::test]
async fn a_forwarded_terminal_whose_owner_relay_dies_is_closed_with_4011() {
    let gw = RelayWorld::new().await;
    let (owner, other, ticket, email) = ticket_on_owner(&gw, "owner-dies").await;
    let mut term = open(&other.base_url, &ticket, &email).await;
    term.run("echo forwarded-$((4*4))").await;
    term.expect_output("forwarded-16", STEP).await;
    owner.kill();
    let started = Instant::now();
    let (code, reason) = term.expect_close(STEP).await;
    assert_eq!(code, 4011, "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?} to notice the owner relay died",
        started.elapsed()
    );
}

#[tokio::test]
async fn redis_restarting_keeps_open_terminals_and_connect_recovers() {
    let gw = RelayWorld::new().await;
    let redis = PrivateRedis::start(0);
    let relay = gw.start(RELAY, &[("REDIS_URL", &redis.url())]);
    let email = gw.user("redis-restart").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open(&relay.base_url, &ticket, &email).await;
    term.run("echo before-$((7*7))").await;
    term.expect_output("before-49", STEP).await;

    let port = redis.stop();
    term.run("echo during-$((8*8))").await;
    term.expect_output("during-64", STEP).await;
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert!(answer.message().contains("Redis"), "{}", answer.message());

    let _redis = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
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
    let gw = RelayWorld::new().await;
    let mut relay = gw.start(RELAY, &[("DRAIN_GRACE_SECS", "3")]);
    let email = gw.user("drain").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open(&relay.base_url, &ticket, &email).await;
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
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
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
