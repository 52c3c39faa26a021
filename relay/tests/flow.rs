//! A terminal that floods output to a browser that stops reading must not grow the relay's
//! memory; an idle terminal is closed with its own code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use testkit::relay_world::{self, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_grow_relay_memory() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("backpressure").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo flood-$((2*3))").await;
    term.expect_output("flood-6", STEP).await;
    let before = rss_kib(relay.pid());
    // 2 GiB of output; the client reads none of it for 8 seconds.
    term.run("head -c 2147483648 /dev/zero; echo flood-done")
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = rss_kib(relay.pid());
    assert!(
        during.saturating_sub(before) < 16 * 1024,
        "relay RSS grew from {before} KiB to {during} KiB while the client was not reading"
    );
    // The remote is held back, not finished: the writer is still blocked on its terminal.
    assert!(testkit::ssh::remote_processes("head -c 2147483648") > 0);
    term.close().await;
    let health = testkit::Client::new(&relay.base_url, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = health.get("/relay/health").await;
        if answer.data()["sessions"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session outlived its websocket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_idle_terminal_is_closed_with_the_idle_code() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("IDLE_TIMEOUT_SECS", "2")]);
    let email = gw.user("idle").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    let (code, _) = term.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, 4008);
}
