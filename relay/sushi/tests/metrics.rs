//! The local binary's metrics: the API's and the relay's, on the `METRICS_ADDR` listener and
//! not on the main port, where the browser and its session cookie are.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use serde_json::json;
use testkit::metrics;
use testkit::{Client, JWT_SECRET, Process};

#[tokio::test]
async fn api_and_relay_metrics_are_scraped_from_the_metrics_port_only() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
        ("METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let url = metrics::url(&sushi).await;
    let client = Client::new(&sushi.base_url, None).as_user("metrics@sushi.test");
    assert_eq!(
        client.set_master_password("local master pw").await.status,
        200
    );
    assert_eq!(client.get("/api/v1/machines").await.status, 200);
    assert_eq!(client.get("/api/v1/machine/424242").await.status, 404);
    let wrong = client
        .post_json("/api/v1/machine/424242/connect", &json!({"password": "x"}))
        .await;
    assert_eq!(wrong.status, 404);

    let scrape = metrics::scrape(&url).await;
    let requests = |route: &str, method: &str, class: &str| {
        scrape.value(&format!(
            "sushi_http_requests_total{{method=\"{method}\",route=\"{route}\",status_class=\"{class}\"}}"
        ))
    };
    assert_eq!(requests("/api/v1/machines", "GET", "2xx"), 1.0);
    // By template: the machine id is not a label.
    assert_eq!(requests("/api/v1/machine/{id}", "GET", "4xx"), 1.0);
    assert!(!scrape.0.keys().any(|series| series.contains("424242")));
    assert!(
        !scrape
            .0
            .keys()
            .any(|series| series.contains("metrics@sushi.test"))
    );
    assert_eq!(
        scrape.value(r#"sushi_relay_connects_total{outcome="machine_not_found"}"#),
        1.0
    );
    assert!(scrape.has("sushi_relay_sessions"));
    assert!(scrape.has("sushi_kdf_queued"));

    // The main port, cookie or not, has no /metrics.
    let main = metrics::http()
        .get(format!("{}/metrics", sushi.base_url))
        .header(
            "cookie",
            format!("jwt={}", testkit::token("metrics@sushi.test")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    assert!(
        !main
            .text()
            .await
            .unwrap()
            .contains("sushi_http_requests_total")
    );
}
