//! The local binary serves every browser path of `infra/browser-paths.json`, each by the
//! component the CloudFront deployment routes it to (`infra/test_cloudfront.py` checks the
//! template against the same list): `sushi` is the one origin on a laptop, as the distribution
//! is in the cloud.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use testkit::{JWT_SECRET, Process};

#[tokio::test]
async fn every_browser_path_is_served_by_its_component() {
    assert!(
        relay::web::built(),
        "the web app was not embedded (build needs node and npm; see relay/build.rs)"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let failures = testkit::browser_paths::check(
        &sushi.base_url,
        &["web", "api", "relay"],
        relay::web::CONTENT_SECURITY_POLICY,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}
