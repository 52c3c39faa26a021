#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The web app as the relay binary serves it: the embedded pages at `/` and `/assets/*`, each
//! with the strict Content-Security-Policy, and unknown paths still the API's JSON 404.

use std::collections::HashMap;

async fn get(url: &str) -> reqwest::Response {
    edge::tls::http_client()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_is_served_with_a_strict_content_security_policy() {
    let data_dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("JWT_SECRET", testkit::JWT_SECRET),
        ("DATA_DIR", data_dir.path().to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let relay = testkit::Process::start(env!("CARGO_BIN_EXE_relay"), &env);
    let base = &relay.base_url;
    assert!(
        relay::web::built(),
        "the web app was not embedded (build needs node and npm; see relay/build.rs)"
    );

    let index = get(&format!("{base}/")).await;
    assert_eq!(index.status(), 200);
    let headers = index.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        headers["content-security-policy"],
        relay::web::CONTENT_SECURITY_POLICY
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = index.text().await.unwrap();
    // Content-hashed names (relay/web/build.mjs): app-<hash>.js and style-<hash>.css.
    let assets = testkit::page_assets(&html);
    let named = |prefix: &str, ext: &str| {
        assets
            .iter()
            .find(|a| a.starts_with(prefix) && a.ends_with(ext))
            .unwrap_or_else(|| panic!("index.html names no {prefix}*{ext}: {assets:?}"))
            .clone()
    };
    let (app, style) = (
        named("/assets/app-", ".js"),
        named("/assets/style-", ".css"),
    );
    assert!(html.contains(&format!(r#"<script type="module" src="{app}"></script>"#)));
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "no inline script or style attributes in the page"
    );

    let script = get(&format!("{base}{app}")).await;
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(script.headers().contains_key("content-security-policy"));
    let style = get(&format!("{base}{style}")).await;
    assert_eq!(style.status(), 200);

    for missing in ["/assets/nope.js", "/api/v1/nope", "/nope.html"] {
        let response = get(&format!("{base}{missing}")).await;
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
