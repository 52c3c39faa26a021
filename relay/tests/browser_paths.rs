//! The relay binary serves exactly the relay's and the web app's browser paths of
//! `infra/browser-paths.json`, and answers "Route not found" to the API's: the split the
//! CloudFront distribution routes by (`/api/*` goes to api-fn, the relay's paths to its load
//! balancer), seen from the relay's side.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

#[tokio::test]
async fn the_relay_serves_its_browser_paths_and_not_the_apis() {
    assert!(relay::web::built(), "the web app was not embedded");
    let data_dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("JWT_SECRET".to_owned(), testkit::JWT_SECRET.to_owned()),
        ("DATA_DIR".to_owned(), data_dir.path().display().to_string()),
    ]);
    let relay = testkit::Process::start(env!("CARGO_BIN_EXE_relay"), &env);
    let failures = testkit::browser_paths::check(
        &relay.base_url,
        &["web", "relay"],
        relay::web::CONTENT_SECURITY_POLICY,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}
