//! A browser that goes away without saying so (a frozen tab, a laptop lid closed, a dropped
//! mobile link) must not keep an SSH session open: the relay pings, and a client that answers
//! nothing for three keepalive intervals is closed with 4009; its session then waits the resume
//! grace (2 s here) for the client to come back, and ends. A client that does answer stays
//! open however long it is idle (short of the idle timeout). The same holds when the
//! WebSocket reached the session through another relay.
//!
//! The silent client is `SilentClient`: a WebSocket on a bare socket that never sends a pong
//! and reads nothing while the test waits, so the relay's pings pile up unread.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use testkit::relay_world::{self, RelayWorld, STEP};
use testkit::ws::{SilentClient, Terminal};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// `KEEPALIVE_SECS` for these tests: pings every second, gone after three silent seconds.
const KEEPALIVE_SECS: &str = "1";

async fn live_sessions(base_url: &str) -> u64 {
    let answer = testkit::Client::new(base_url, None)
        .get("/relay/health")
        .await;
    answer.data()["sessions"].as_u64().unwrap()
}

/// Wait (reading nothing from the client) until `relay` holds no session; how long it took.
async fn sessions_end_within(base_url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while live_sessions(base_url).await > 0 {
        assert!(
            started.elapsed() < limit,
            "the session of a silent client was still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed_with_4009() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(
        RELAY,
        &[
            ("KEEPALIVE_SECS", KEEPALIVE_SECS),
            ("RESUME_GRACE_SECS", "2"),
        ],
    );
    let email = gw.user("silent").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut client = SilentClient::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await;
    client.run("echo alive-$((3*4))").await;
    client.expect_output("alive-12", STEP).await;

    // From here on the client neither reads nor answers.
    let took = sessions_end_within(&relay.base_url, Duration::from_secs(15)).await;
    assert!(
        took >= Duration::from_secs(2),
        "closed after {took:?}, before three keepalive intervals had passed"
    );
    // Everything the relay sent meanwhile is still queued on the socket: pings, then 4009.
    let (code, reason) = client.expect_close(STEP).await;
    assert_eq!(code, 4009, "{reason}");
    assert!(client.pings >= 2, "only {} pings were sent", client.pings);
}

#[tokio::test]
async fn an_idle_client_that_answers_pings_stays_connected() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(
        RELAY,
        &[
            ("KEEPALIVE_SECS", KEEPALIVE_SECS),
            ("RESUME_GRACE_SECS", "2"),
        ],
    );
    let email = gw.user("idle-alive").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo before-$((2*5))").await;
    term.expect_output("before-10", STEP).await;
    // Six keepalive intervals with nothing typed and nothing printed; the client keeps reading,
    // so its WebSocket library answers every ping.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Some(left) = quiet_until.checked_duration_since(tokio::time::Instant::now()) {
        if let Some(frame) = term.next(left).await {
            assert!(
                !matches!(frame, testkit::ws::Frame::Closed(..)),
                "a client answering pings was closed: {frame:?}"
            );
        }
    }
    term.run("echo after-$((3*5))").await;
    term.expect_output("after-15", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn an_unresponsive_client_behind_a_forwarding_relay_is_closed_with_4009() {
    let gw = RelayWorld::new().await;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let settings = [
        ("REDIS_URL", redis.as_str()),
        ("KEEPALIVE_SECS", KEEPALIVE_SECS),
        ("RESUME_GRACE_SECS", "2"),
    ];
    let owner = gw.start(RELAY, &settings);
    let forwarder = gw.start(RELAY, &settings);
    let email = gw.user("silent-forwarded").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&owner.base_url, &email, id).await;
    let mut client = SilentClient::open(
        &forwarder.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await;
    client.run("echo via-$((6*6))").await;
    client.expect_output("via-36", STEP).await;

    // The owner relay's pings are answered by the forwarding relay, so only the forwarding
    // relay can tell that the browser is gone; the session it leads to must end all the same.
    sessions_end_within(&owner.base_url, Duration::from_secs(15)).await;
    let (code, reason) = client.expect_close(STEP).await;
    assert_eq!(code, 4009, "{reason}");
}
