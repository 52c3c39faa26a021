//! Which site a request belongs to, and the two guards built on it, for every binary:
//!
//! * [`cross_site_guard`] (in every binary's stack, see `layers::wrap`): a write that rides on
//!   the `jwt` cookie must be a same-site JSON request. Browsers attach cookies to requests
//!   other sites trigger (a form POST, a `no-cors` fetch); such requests either carry a
//!   cross-site `Origin` / `Sec-Fetch-Site`, or a content type a form can produce
//!   (`text/plain`, form encodings). So: a cross-site `Origin` or `Sec-Fetch-Site` answers
//!   403 `cross_site_request`, and a body or content type other than
//!   `Content-Type: application/json` answers 415 (every HTML form sends a content type; a
//!   bodiless `DELETE` or sign-out without one passes, as the seed's curl calls send it, and
//!   the web app sends the JSON type on every write anyway). Requests with an
//!   `Authorization` header are not CSRF-able (no other site can set it) and pass; their
//!   JSON bodies still need the type, which the body extractor checks for everyone.
//! * [`host_guard`] (applied by `serve::serve` when the listener is on loopback): a server on
//!   127.0.0.1 answers only `Host: localhost | 127.0.0.1 | [::1]` (any port) and `PUBLIC_URL`'s
//!   host; anything else is 421 `host_not_allowed`. Without it a web page whose name rebinds
//!   to 127.0.0.1 talks to the laptop's server as a same-origin page.
//!
//! Allowed foreign origins come from the environment the binaries already use: `PUBLIC_URL`
//! (the web app's public origin, which can differ from the Host a load balancer forwards)
//! and the relay's `ALLOWED_ORIGINS` list. Read once, when the router is built.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, header};

use crate::auth::SESSION_COOKIE;
use crate::error::{ApiError, ErrorCode};
use crate::extract::is_json;

/// Names that always mean "this machine".
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The origins and host this deployment answers for besides the request's own.
#[derive(Clone, Debug, Default)]
pub struct SitePolicy {
    /// `PUBLIC_URL`'s host (no port), lowercase.
    public_host: Option<String>,
    /// `PUBLIC_URL`'s origin and `ALLOWED_ORIGINS`' entries, lowercase, no trailing slash.
    allowed_origins: Vec<String>,
}

impl SitePolicy {
    /// From `PUBLIC_URL` and `ALLOWED_ORIGINS` (`*` there is the relay's WebSocket setting
    /// and allows nothing here).
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::new(
            var("PUBLIC_URL").as_deref(),
            var("ALLOWED_ORIGINS").as_deref(),
        )
    }

    pub fn new(public_url: Option<&str>, allowed_origins: Option<&str>) -> Self {
        let normalise = |origin: &str| origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let public = public_url.map(normalise);
        let public_host = public
            .as_deref()
            .and_then(|url| url.split_once("://"))
            .map(|(_, rest)| hostname(rest.split('/').next().unwrap_or_default()).to_owned());
        let mut allowed: Vec<String> = allowed_origins
            .unwrap_or_default()
            .split(',')
            .map(normalise)
            .filter(|o| !o.is_empty() && o != "*")
            .collect();
        allowed.extend(public);
        Self {
            public_host,
            allowed_origins: allowed,
        }
    }

    /// Whether `host` (a `Host` header value) names this server when it listens on loopback.
    pub fn local_host_allowed(&self, host: &str) -> bool {
        let name = hostname(host).to_ascii_lowercase();
        LOOPBACK_HOSTS.contains(&name.as_str()) || self.public_host.as_deref() == Some(&name)
    }

    /// Why a cookie-authenticated write is cross-site, if it is.
    fn cross_site(&self, headers: &HeaderMap) -> Option<&'static str> {
        let origin = headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("null").trim().to_ascii_lowercase());
        let listed = origin
            .as_deref()
            .is_some_and(|o| self.allowed_origins.iter().any(|a| a == o));
        let own = origin.as_deref().is_some_and(|o| {
            let authority = o.split_once("://").map_or("", |(_, rest)| rest);
            request_host(headers).is_some_and(|host| host.eq_ignore_ascii_case(authority))
        });
        if origin.is_some() && !own && !listed {
            return Some("Origin is another site");
        }
        let fetch_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        match fetch_site.as_deref() {
            None | Some("same-origin" | "none") => None,
            Some(_) if listed => None,
            Some(_) => Some("Sec-Fetch-Site is not same-origin"),
        }
    }
}

/// `host` without its port (`[::1]:8080` → `[::1]`, `a.test:80` → `a.test`).
fn hostname(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// Whether the request's `Host` is a loopback name (development sign-in answers only these).
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    request_host(headers)
        .is_some_and(|host| LOOPBACK_HOSTS.contains(&hostname(host).to_ascii_lowercase().as_str()))
}

/// A request authenticated by the session cookie rather than an `Authorization` header.
fn cookie_authenticated(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::AUTHORIZATION)
        && crate::auth::cookie(headers, SESSION_COOKIE).is_some()
}

/// Whether the request announces a body (HTTP/1.1 needs one of these to send one).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A file upload: `PUT` with `Content-Type: application/octet-stream`. No form can send a
/// `PUT`, and a cross-site script's `PUT` needs a CORS preflight nothing here approves, so the
/// raw body is no cross-site risk (the `Origin` check above still applies).
fn is_upload(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::PUT
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/octet-stream"))
            })
}

/// Middleware: refuse cross-site and non-JSON writes that ride on the session cookie.
pub async fn cross_site_guard(policy: Arc<SitePolicy>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if is_write(request.method()) && cookie_authenticated(headers) {
        if let Some(reason) = policy.cross_site(headers) {
            tracing::warn!(reason, "cross-site write with the session cookie refused");
            return ApiError::new(ErrorCode::CrossSiteRequest, "Cross-site request refused")
                .into_response();
        }
        let typed_or_bodied = headers.contains_key(header::CONTENT_TYPE) || has_body(headers);
        if typed_or_bodied && !is_json(headers) && !is_upload(request.method(), headers) {
            return ApiError::unsupported_media_type().into_response();
        }
    }
    next.run(request).await
}

/// Middleware: answer only the names a loopback server is reached by (see the module doc).
pub async fn host_guard(policy: Arc<SitePolicy>, request: Request, next: Next) -> Response {
    let host = request_host(request.headers())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    if host
        .as_deref()
        .is_some_and(|h| policy.local_host_allowed(h))
    {
        return next.run(request).await;
    }
    tracing::warn!(host = ?host, "request for a foreign Host refused");
    ApiError::new(
        ErrorCode::HostNotAllowed,
        "This server does not answer for that Host",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn loopback_names_and_the_public_host_are_local() {
        let policy = SitePolicy::new(Some("https://ssh.example.com/"), None);
        for host in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:1",
            "LOCALHOST",
            "ssh.example.com",
        ] {
            assert!(policy.local_host_allowed(host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.evil.example",
            "ssh.example.com.evil",
            "[::2]",
        ] {
            assert!(!policy.local_host_allowed(host), "{host}");
        }
    }

    #[test]
    fn same_origin_and_listed_origins_pass_others_do_not() {
        let policy = SitePolicy::new(
            Some("https://app.example.com"),
            Some("https://b.example, *"),
        );
        let host = ("host", "api.internal:8080");
        assert!(policy.cross_site(&headers(&[host])).is_none());
        assert!(
            policy
                .cross_site(&headers(&[host, ("origin", "http://api.internal:8080")]))
                .is_none()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("origin", "https://app.example.com")]))
                .is_none()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("origin", "https://b.example")]))
                .is_none()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("origin", "https://evil.example")]))
                .is_some()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("origin", "null")]))
                .is_some()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")]))
                .is_some()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("sec-fetch-site", "same-site")]))
                .is_some()
        );
        assert!(
            policy
                .cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")]))
                .is_none()
        );
    }

    #[test]
    fn only_a_put_of_raw_bytes_passes_as_an_upload() {
        let raw = headers(&[("content-type", "application/octet-stream")]);
        assert!(is_upload(&Method::PUT, &raw));
        assert!(is_upload(
            &Method::PUT,
            &headers(&[("content-type", "Application/Octet-Stream; charset=x")])
        ));
        assert!(!is_upload(&Method::POST, &raw), "a form can POST");
        assert!(!is_upload(
            &Method::PUT,
            &headers(&[("content-type", "text/plain")])
        ));
        assert!(!is_upload(&Method::PUT, &headers(&[])));
    }
}
