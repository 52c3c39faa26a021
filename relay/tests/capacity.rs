//! A relay holds at most `MAX_SESSIONS` SSH sessions (waiting for their WebSocket or open).
//! Beyond that, connect answers 503 with the usual JSON envelope and a message that says what
//! happened, and dials nothing; a slot comes back as soon as a session ends, however it ends
//! (terminal closed, ticket never opened, SSH login failed). One user cannot take the whole
//! relay: connects in progress and sessions are also capped per user (429 `user_limit_reached`
//! with `Retry-After`), checked before any Argon2id runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

async fn live_sessions(base_url: &str) -> u64 {
    let answer = testkit::Client::new(base_url, None)
        .get("/relay/health")
        .await;
    answer.data()["sessions"].as_u64().unwrap()
}

async fn wait_for_sessions(base_url: &str, expected: u64, limit: Duration) {
    let started = Instant::now();
    loop {
        let live = live_sessions(base_url).await;
        if live == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{live} live sessions after {limit:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_at_limit(answer: &testkit::Answer) {
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "Service Unavailable");
    assert_eq!(
        answer.message(),
        "This relay is at its session limit; try again shortly"
    );
    assert!(answer.data().is_null(), "{:?}", answer.body);
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
}

fn assert_user_limited(answer: &testkit::Answer) {
    assert_eq!(answer.status, 429, "{:?}", answer.body);
    assert_eq!(
        answer.body["code"], "user_limit_reached",
        "{:?}",
        answer.body
    );
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
}

/// Ten connects at once by one user, two allowed in progress: the rest are refused at once,
/// before their master password is even checked (no Argon2id, no SSH), while another user is
/// unaffected.
#[tokio::test]
async fn one_users_parallel_connects_are_capped() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_CONNECTS_PER_USER", "2")]);
    let email = gw.user("connect-burst").await;
    let id = gw.password_machine(&email).await;
    let burst = (0..10).map(|_| relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD));
    let answers = futures_util::future::join_all(burst).await;
    let connected = answers.iter().filter(|a| a.status == 200).count();
    assert!(
        connected >= 1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(connected < 10, "nothing was capped");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_user_limited(refused);
    }
    let other = gw.user("connect-burst-other").await;
    let other_id = gw.password_machine(&other).await;
    let _ticket = relay_world::ticket(&relay.base_url, &other, other_id).await;
}

/// A user holding `MAX_SESSIONS_PER_USER` sessions gets 429 for the next; others still connect.
#[tokio::test]
async fn one_user_cannot_hold_more_than_their_sessions() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_SESSIONS_PER_USER", "2")]);
    let email = gw.user("session-hog").await;
    let id = gw.password_machine(&email).await;
    let _first = relay_world::ticket(&relay.base_url, &email, id).await;
    let _second = relay_world::ticket(&relay.base_url, &email, id).await;
    assert_user_limited(&relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await);
    let other = gw.user("session-hog-neighbour").await;
    let other_id = gw.password_machine(&other).await;
    let _theirs = relay_world::ticket(&relay.base_url, &other, other_id).await;
}

#[tokio::test]
async fn connects_beyond_max_sessions_get_a_503_until_a_session_ends() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_SESSIONS", "1")]);
    let email = gw.user("capacity").await;
    let id = gw.password_machine(&email).await;

    // A failed SSH login gives its slot back at once.
    let sshd = testkit::ssh::shared_sshd();
    let wrong = gw
        .machine(
            &email,
            json!({"name": "wrong", "hostname": sshd.host, "port": sshd.port.to_string(),
                   "username": sshd.user, "password": "not-the-password"}),
        )
        .await;
    let answer = relay_world::connect(&relay.base_url, &email, wrong, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert_eq!(live_sessions(&relay.base_url).await, 0);

    // A session waiting for its WebSocket holds the only slot...
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    assert_eq!(live_sessions(&relay.base_url).await, 1);
    assert_at_limit(&relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await);
    // Refused before dialling: a target that records connections sees none.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_id = gw
        .machine(
            &email,
            json!({"name": "trap", "hostname": "127.0.0.1",
                   "port": trap.local_addr().unwrap().port().to_string(),
                   "username": "u", "password": "p"}),
        )
        .await;
    assert_at_limit(&relay_world::connect(&relay.base_url, &email, trap_id, MASTER_PASSWORD).await);
    let accepted = tokio::time::timeout(Duration::from_millis(500), trap.accept()).await;
    assert!(
        accepted.is_err(),
        "the relay dialled a target while at its limit"
    );
    // ...and so does the open terminal.
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo busy-$((9*9))").await;
    term.expect_output("busy-81", STEP).await;
    assert_at_limit(&relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await);

    // Closing the terminal releases the slot, promptly.
    term.close().await;
    wait_for_sessions(&relay.base_url, 0, Duration::from_secs(5)).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo again-$((8*8))").await;
    term.expect_output("again-64", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn an_unopened_ticket_gives_its_slot_back_when_it_expires() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_SESSIONS", "1"), ("TICKET_BUCKET_SECS", "1")]);
    let email = gw.user("capacity-expiry").await;
    let id = gw.password_machine(&email).await;
    let _never_opened = relay_world::ticket(&relay.base_url, &email, id).await;
    assert_at_limit(&relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await);
    // A ticket lives one to two buckets; then its session is closed and the slot is free.
    wait_for_sessions(&relay.base_url, 0, Duration::from_secs(6)).await;
    let _ticket = relay_world::ticket(&relay.base_url, &email, id).await;
}
