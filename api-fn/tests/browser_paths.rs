//! The api-fn binary serves exactly the API's browser paths of `infra/browser-paths.json`
//! (machines, master password, sign-in) and answers "Route not found" to the web app's and the
//! relay's: the split the CloudFront distribution routes by, seen from api-fn's side.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

#[tokio::test]
async fn api_fn_serves_the_api_paths_and_nothing_else() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("JWT_SECRET".to_owned(), testkit::JWT_SECRET.to_owned()),
        ("DATA_DIR".to_owned(), data_dir.path().display().to_string()),
    ]);
    let api = testkit::Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    // api-fn serves no page, so no Content-Security-Policy can match.
    let failures = testkit::browser_paths::check(&api.base_url, &["api"], "no page").await;
    assert!(failures.is_empty(), "{failures:#?}");
}
