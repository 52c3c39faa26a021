//! The OpenAPI document (`GET /api/v1/openapi.json`, the `openapi` crate) and the routers agree,
//! checked on the real `sushi` binary, which serves every route of the product:
//!
//! * every documented path and method answers something other than the edge's "Route not
//!   found" or 405 (the operation exists);
//! * every other method on a documented path answers 405 (nothing routed is left undocumented
//!   on a documented path);
//! * every path the routers register (`.route("…"` in the three router files) is documented,
//!   except the web app's static pages, which are not the API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use testkit::{JWT_SECRET, Process};

/// The files that build the product's routers.
const ROUTER_SOURCES: &[&str] = &[
    "api-fn/src/lib.rs",
    "shared/signin/src/routes.rs",
    "relay/src/lib.rs",
    "relay/src/web.rs",
];

/// The web app's pages and assets: served beside the API, not part of it.
const WEB_APP_PATHS: &[&str] = &["/", "/index.html", "/assets/{*path}"];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

fn sushi() -> (tempfile::TempDir, Process) {
    relay::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    let process = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    (dir, process)
}

async fn document(base: &str) -> Value {
    let response = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// Send `method path` with a valid token and an empty JSON object; the status and the body.
async fn probe(base: &str, method: &str, path: &str) -> (u16, Value) {
    let url = format!("{base}{}", path.replace("{id}", "1"));
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(testkit::token("routes@sushi.test"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let (_dir, sushi) = sushi();
    let doc = document(&sushi.base_url).await;
    let operations = documented(&doc);
    assert!(operations.len() >= 18, "{operations:?}");
    let paths: BTreeSet<&String> = operations.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in METHODS {
            let (status, body) = probe(&sushi.base_url, method, path).await;
            let unrouted = status == 405 || body["message"] == "Route not found";
            if operations.contains(&((*method).to_owned(), path.clone())) {
                assert!(
                    !unrouted,
                    "{method} {path} is documented but not routed: {status} {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is routed but not documented: {body}"
                );
            }
        }
    }
}

/// `.route("PATH"` occurrences in the router sources.
fn routed_paths() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for file in ROUTER_SOURCES {
        let text = std::fs::read_to_string(testkit::repo_root().join(file)).unwrap();
        for piece in text.split(".route(").skip(1) {
            let piece = piece.trim_start();
            if let Some(rest) = piece.strip_prefix('"') {
                paths.insert(rest.split('"').next().unwrap().to_owned());
            }
        }
    }
    paths
}

#[tokio::test]
async fn every_routed_path_is_documented() {
    let routed = routed_paths();
    assert!(
        routed.contains("/api/v1/machine/{id}/connect"),
        "{routed:?}"
    );
    let doc: Value = serde_json::from_str(openapi::json()).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let missing: Vec<&String> = routed
        .iter()
        .filter(|path| !WEB_APP_PATHS.contains(&path.as_str()) && !documented.contains(*path))
        .collect();
    assert!(
        missing.is_empty(),
        "routed but not in the OpenAPI document: {missing:?}"
    );
}
