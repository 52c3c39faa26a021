//! The one list of browser paths (`infra/browser-paths.json`) checked against a running binary.
//!
//! The cloud splits the product across components (web: static files, api: api-fn, relay: the
//! relay) and CloudFront routes each path to one of them (`infra/test_cloudfront.py` checks
//! the template against this list). Locally `sushi` serves all three on one port, and the
//! `relay` and `api-fn` binaries serve their own parts. [`check`] asks a binary for every listed
//! path and says where it disagrees with the components that binary is meant to serve: each of
//! those paths must be answered by its component (the page with its CSP, or a JSON envelope
//! that is not the router's "Route not found" or 405), every other path must be "Route not
//! found". So a route removed from a binary, or a path listed for the wrong component, fails.

use serde_json::{Value, json};

use crate::Client;

/// One entry of the list.
#[derive(Clone, Debug)]
pub struct BrowserPath {
    pub pattern: String,
    pub method: String,
    pub example: String,
    pub component: String,
}

/// Every entry of `infra/browser-paths.json`.
pub fn load() -> Vec<BrowserPath> {
    let path = crate::repo_root().join("infra/browser-paths.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list: Value = serde_json::from_str(&text).unwrap();
    let field = |entry: &Value, name: &str| entry[name].as_str().unwrap().to_owned();
    list["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| BrowserPath {
            pattern: field(e, "pattern"),
            method: field(e, "method"),
            example: field(e, "example"),
            component: field(e, "component"),
        })
        .collect()
}

/// What a binary answered, reduced to who answered.
#[derive(Debug, PartialEq, Eq)]
enum Answered {
    /// A page or asset of the web app (200 with the given CSP, not JSON).
    Web,
    /// A handler's JSON envelope (any status but the router's own 404 and 405).
    Handler,
    /// The router's JSON 404 "Route not found" or 405: nothing serves this path and method.
    NoRoute,
    Other(String),
}

async fn ask(client: &Client, method: &str, path: &str, csp: &str) -> Answered {
    let url = client.url(path);
    let request = match method {
        "GET" => client.http.get(url),
        "DELETE" => client.http.delete(url),
        "POST" => client.http.post(url).json(&json!({})),
        "PUT" => client.http.put(url).json(&json!({})),
        other => panic!("no probe for method {other}"),
    };
    // Not `Client::send`: that one insists on JSON, and web answers are pages.
    let token = client.token.clone().unwrap_or_default();
    let response = request.bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, page_csp) = (header("content-type"), header("content-security-policy"));
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    let json = content_type.starts_with("application/json");
    if status == 200 && !json && page_csp == csp {
        return Answered::Web;
    }
    if !json || body.get("status").is_none() {
        return Answered::Other(format!("{status} {content_type}"));
    }
    let no_route = (status == 404 && body["message"] == "Route not found") || status == 405;
    if no_route {
        Answered::NoRoute
    } else {
        Answered::Handler
    }
}

/// Ask the binary at `base_url` for every listed path; `serves` are the components it serves,
/// `csp` the web app's Content-Security-Policy. Returns the disagreements (empty when none).
pub async fn check(base_url: &str, serves: &[&str], csp: &str) -> Vec<String> {
    let client = Client::new(base_url, None).as_user("browser-paths@sushi.test");
    // Asset names are content-hashed: take one the page names (or a made-up one where the
    // binary serves no page, which must then be "Route not found" anyway).
    let page = client.http.get(client.url("/")).send().await.unwrap();
    let html = page.text().await.unwrap_or_default();
    let asset = crate::page_assets(&html)
        .into_iter()
        .next()
        .unwrap_or_else(|| "/assets/app-NOTBUILT.js".to_owned());
    let mut failures = Vec::new();
    for entry in load() {
        let path = entry.example.replace("{asset}", &asset);
        let want = match (
            serves.contains(&entry.component.as_str()),
            entry.component.as_str(),
        ) {
            (false, _) => Answered::NoRoute,
            (true, "web") => Answered::Web,
            (true, _) => Answered::Handler,
        };
        let got = ask(&client, &entry.method, &path, csp).await;
        if got != want {
            failures.push(format!(
                "{} {path} ({} for {}): expected {want:?}, got {got:?}",
                entry.method, entry.pattern, entry.component
            ));
        }
    }
    failures
}
