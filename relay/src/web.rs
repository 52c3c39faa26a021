//! The web app's static files (`relay/web`, bundled at build time by `build.rs` and embedded
//! in the binary), served at `/`, `/index.html` and `/assets/*` with a strict
//! Content-Security-Policy.
//!
//! Why embedded: the relay and the `sushi` binary then serve the pages from any working
//! directory and a container needs no extra files; the same files (`relay/web/dist`) can be
//! deployed as static files behind the same origin instead.
//!
//! The policy allows scripts, connections (fetch and the same-origin WebSocket), fonts and
//! images from this origin only; no inline or eval'd script, no framing, no plugins, no
//! `<base>`. Styles also allow `'unsafe-inline'` because xterm.js injects `<style>` elements
//! for its theme and cell metrics at run time; no user data flows into them, and script
//! execution stays `'self'`-only. Only explicit routes are added (no fallback), so unknown
//! paths keep the JSON 404 of the API.

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edge::ApiError;
use http::{HeaderValue, StatusCode, header};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
    font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// `Cache-Control` of the content-hashed `/assets/*` files.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html` (and `/`): always revalidate.
pub const PAGE_CACHE_CONTROL: &str = "no-cache";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>suSHi: web app not built</title></head><body>\
    <h1>The web app was not built into this binary</h1>\
    <p>Building it needs Node.js and npm. Run <code>cd relay/web &amp;&amp; npm ci &amp;&amp; \
    npm run build</code>, then rebuild the server (<code>cargo build</code>).</p>\
    <p>The API works regardless: see <code>/api/v1/machines</code> and the README.</p>\
    </body></html>";

/// The web routes, stateless, for merging next to the API and relay routes.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset))
}

/// Whether the build embedded the web app.
pub fn built() -> bool {
    find("/index.html").is_some()
}

fn find(route: &str) -> Option<&'static [u8]> {
    generated::ASSETS
        .iter()
        .find(|(name, _)| *name == route)
        .map(|(_, bytes)| *bytes)
}

fn content_type(route: &str) -> &'static str {
    match route.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Assets have content-hashed names (a new build names new files), so they may be kept for a
/// year; `index.html` names them and is revalidated on every visit, so a new build is picked
/// up at once. The CloudFront deployment uploads the same files with the same two policies
/// (`infra/web_upload.py`, [`ASSET_CACHE_CONTROL`] and [`PAGE_CACHE_CONTROL`]).
fn cache_control(route: &str) -> &'static str {
    if route.starts_with("/assets/") {
        ASSET_CACHE_CONTROL
    } else {
        PAGE_CACHE_CONTROL
    }
}

fn page(status: StatusCode, route: &str, body: &'static [u8]) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, content_type(route)),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, cache_control(route)),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn index() -> Response {
    match find("/index.html") {
        Some(body) => page(StatusCode::OK, "/index.html", body),
        None => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "/index.html",
            NOT_BUILT.as_bytes(),
        ),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    let route = format!("/assets/{path}");
    match find(&route) {
        Some(body) => page(StatusCode::OK, &route, body),
        None => ApiError::route_not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("/assets/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }

    #[test]
    fn only_hashed_assets_are_cached_long() {
        assert_eq!(cache_control("/assets/app-ABC.js"), ASSET_CACHE_CONTROL);
        assert_eq!(cache_control("/index.html"), PAGE_CACHE_CONTROL);
    }

    #[test]
    fn policy_allows_no_inline_or_foreign_script() {
        let script = CONTENT_SECURITY_POLICY
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert_eq!(script.trim(), "script-src 'self'");
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }
}
