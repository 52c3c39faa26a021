//! What an operator's scraper sees: the real relay binary with `METRICS_ADDR` set, scraped over
//! HTTP while a person connects (once with a wrong master password), opens a terminal, types,
//! and the terminal ends; and the metrics are never served on the public listener.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use testkit::metrics::{self, Scrape};
use testkit::relay_world::{self, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn connects(scrape: &Scrape, outcome: &str) -> f64 {
    scrape.value(&format!(
        "sushi_relay_connects_total{{outcome=\"{outcome}\"}}"
    ))
}

fn closes(scrape: &Scrape, code: u16) -> f64 {
    scrape.value(&format!(
        "sushi_relay_websocket_closes_total{{code=\"{code}\"}}"
    ))
}

/// Scrape until `done` holds (a close is counted as the relay sends it, which can trail the
/// client seeing it by a moment), at most `STEP`.
async fn scrape_until(url: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let scrape = metrics::scrape(url).await;
        if done(&scrape) || std::time::Instant::now() >= deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connects_terminals_bytes_and_close_codes_are_counted() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let url = metrics::url(&relay).await;
    let email = gw.user("metrics").await;
    let id = gw.password_machine(&email).await;
    let before = metrics::scrape(&url).await;
    assert_eq!(before.value("sushi_relay_sessions"), 0.0);
    assert!(before.has("sushi_kdf_queued"), "the KDF queue is exported");
    assert!(before.has("sushi_relay_redis_errors_total"));

    let wrong = relay_world::connect(&relay.base_url, &email, id, "not the master password").await;
    assert_eq!(wrong.status, 401);
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let parked = metrics::scrape(&url).await;
    assert_eq!(connects(&parked, "invalid_master_password"), 1.0);
    assert_eq!(connects(&parked, "ok"), 1.0);
    assert_eq!(parked.value("sushi_relay_sessions_parked"), 1.0);
    assert_eq!(parked.value("sushi_relay_sessions"), 1.0);
    assert_eq!(
        parked.value(r#"sushi_relay_connect_duration_seconds_count{result="error"}"#),
        1.0
    );
    assert_eq!(
        parked.value(
            r#"sushi_http_requests_total{method="POST",route="/api/v1/machine/{id}/connect",status_class="2xx"}"#
        ),
        1.0
    );

    let browser = relay_world::browser(&email);
    let headers = browser.headers();
    let mut term = Terminal::open(&relay.base_url, &ticket, &headers)
        .await
        .unwrap();
    term.run("echo metered-$((6*7))").await;
    term.expect_output("metered-42", STEP).await;
    let open = metrics::scrape(&url).await;
    assert_eq!(open.value("sushi_relay_terminals_open"), 1.0);
    assert_eq!(open.value("sushi_relay_sessions_parked"), 0.0);
    assert_eq!(open.value("sushi_relay_sessions"), 1.0);
    assert_eq!(
        open.value("sushi_relay_websocket_open_duration_seconds_count"),
        1.0
    );
    let typed = "echo metered-$((6*7))\n".len() as f64;
    assert!(open.value(r#"sushi_relay_terminal_bytes_total{direction="in"}"#) >= typed);
    assert!(
        open.value(r#"sushi_relay_terminal_bytes_total{direction="out"}"#)
            >= "metered-42".len() as f64
    );

    // The shell ends: the relay closes with 1000 and counts it.
    term.run("exit").await;
    let (code, _) = term.expect_close(STEP).await;
    assert_eq!(code, 1000);
    // The same ticket again: refused with 4002, counted.
    let mut again = Terminal::open(&relay.base_url, &ticket, &headers)
        .await
        .unwrap();
    let (code, _) = again.expect_close(STEP).await;
    assert_eq!(code, 4002);
    let after = scrape_until(&url, |s| {
        // Two gauges, let go at two points of the session's end: wait for both.
        closes(s, 1000) >= 1.0
            && closes(s, 4002) >= 1.0
            && s.value("sushi_relay_sessions") == 0.0
            && s.value("sushi_relay_terminals_open") == 0.0
    })
    .await;
    assert_eq!(closes(&after, 1000), closes(&before, 1000) + 1.0);
    assert_eq!(closes(&after, 4002), closes(&before, 4002) + 1.0);
    assert_eq!(closes(&after, 4001), 0.0, "no other close was sent");
    assert_eq!(after.value("sushi_relay_terminals_open"), 0.0);
    assert_eq!(after.value("sushi_relay_sessions"), 0.0);
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let url = metrics::url(&relay).await;
    let public = metrics::http()
        .get(format!("{}/metrics", relay.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("sushi_"));
    // On loopback the metrics port, like the main one, answers only loopback names: a page
    // that rebinds its own name to 127.0.0.1 reads nothing.
    let rebound = metrics::http()
        .get(&url)
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    // And it serves nothing but /metrics.
    let other = metrics::http()
        .get(url.replace("/metrics", "/api/v1/machines"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(metrics::scrape(&url).await.has("sushi_relay_sessions"));
}

#[tokio::test]
async fn without_metrics_addr_no_metrics_listener_starts() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let _ = relay_world::connect(&relay.base_url, "nobody@sushi.test", 1, "x").await;
    assert!(!relay.output().contains("metrics on"), "{}", relay.output());
}

#[test]
fn a_bad_metrics_addr_stops_the_relay_at_start() {
    let gw = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(RelayWorld::new());
    let mut env = gw.env();
    env.insert("METRICS_ADDR".into(), "localhost:9464".into());
    let (status, output) = testkit::run_expecting_exit(RELAY, &env, Duration::from_secs(30));
    assert!(!status.success());
    assert!(output.contains("METRICS_ADDR=localhost:9464"), "{output}");
}
