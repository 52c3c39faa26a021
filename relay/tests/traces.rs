//! OpenTelemetry traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the real relay exports its
//! request spans over OTLP/HTTP, and the request id is on them. The collector here is a test
//! HTTP endpoint that records what it is sent (the OTLP wire format is protobuf, in which
//! string attribute keys and values appear verbatim).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use testkit::relay_world::RelayWorld;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn contains(haystack: &[u8], needle: &str) -> bool {
    testkit::ws::contains(haystack, needle.as_bytes())
}

#[tokio::test]
async fn request_spans_reach_the_collector_with_the_request_id() {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = testkit::serve(axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(body);
                ""
            }
        }),
    ))
    .await;
    let gw = RelayWorld::new().await;
    let relay = gw.start(
        RELAY,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let answer = testkit::metrics::http()
        .get(format!("{}/relay/health", relay.base_url))
        .header("x-request-id", "trace-me-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .any(|body| contains(body, "trace-me-4711") && contains(body, "request_id"));
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no span with the request id reached the collector ({} exports); relay output:\n{}",
            received.lock().unwrap().len(),
            relay.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exported = received.lock().unwrap().clone();
    assert!(
        exported
            .iter()
            .any(|body| contains(body, "service.name") && contains(body, "relay")),
        "the service name is the binary's"
    );
}
