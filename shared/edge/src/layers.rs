//! The layers around every route of every binary, in one place so a fix reaches the API
//! function, the relay and the local binary at once:
//!
//! * a request id (taken from `x-request-id` or API Gateway's `x-amzn-requestid`, else a fresh
//!   uuid) on the tracing span and the response, with one `response` log line per request and
//!   the request metrics ([`crate::metrics::observe_request`], by route template);
//! * a last-resort panic catcher that still answers with the envelope (the lints forbid panics
//!   on request paths; this is for the ones we did not write);
//! * the body limit and enveloped 404/405 for unknown routes and methods;
//! * the cross-site guard: writes riding on the session cookie must be same-site JSON
//!   ([`crate::site`]);
//! * security headers on every answer (pages add their own CSP);
//! * the client's address from `X-Forwarded-For` when the deployment declares trusted proxies
//!   in front (`TRUSTED_PROXY_HOPS`, see [`crate::forwarded`]), for the audit log;
//! * [`with_deadline`], a whole-request deadline answering 503, applied per group of routes
//!   because the right bound differs: 25 s for the API, longer for connect (which dials SSH
//!   under its own timeouts). It bounds the time to produce a *response*: a WebSocket upgrade
//!   answers 101 at once and the terminal then lives in its own task, outside the deadline.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, header};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::site::{self, SitePolicy};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers every answer carries unless the handler set its own.
const SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The API's whole-request deadline; backend calls have their own, shorter ones.
pub const API_DEADLINE: Duration = Duration::from_secs(25);

/// Every binary's outer stack: fallbacks, body limit, security headers, panic catcher and
/// request id (outermost, so even a panic's answer carries the id).
pub fn wrap(routes: Router) -> Router {
    wrap_with(routes, SitePolicy::from_env())
}

/// [`wrap`] with the site's origins given rather than read from `PUBLIC_URL`/`ALLOWED_ORIGINS`
/// (in-process tests).
pub fn wrap_with(routes: Router, site: SitePolicy) -> Router {
    let policy = Arc::new(site);
    let hops = crate::forwarded::hops_from_env();
    routes
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            forwarded_client(hops, request, next)
        }))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            site::cross_site_guard(Arc::clone(&policy), request, next)
        }))
        .layer(middleware::from_fn(security_headers))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(middleware::from_fn(request_id))
}

/// Bound the time `routes` may take to answer; past it the client gets a 503 envelope.
pub fn with_deadline(routes: Router, deadline: Duration) -> Router {
    routes.layer(middleware::from_fn(move |request: Request, next: Next| {
        bounded(deadline, request, next)
    }))
}

async fn bounded(deadline: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(
                deadline_secs = deadline.as_secs(),
                "request exceeded its deadline"
            );
            ApiError::unavailable("Request timed out; try again").into_response()
        }
    }
}

/// Put the client address trusted proxies report where [`crate::extract::Client`] reads it.
async fn forwarded_client(hops: usize, mut request: Request, next: Next) -> Response {
    if let Some(ip) = crate::forwarded::client_address(request.headers(), hops) {
        request
            .extensions_mut()
            .insert(crate::extract::ClientAddr(ip));
    }
    next.run(request).await
}

fn on_panic(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::internal().into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    response
}

fn incoming_id(request: &Request) -> Option<String> {
    ["x-request-id", "x-amzn-requestid", "x-amzn-trace-id"]
        .iter()
        .filter_map(|name| request.headers().get(*name))
        .filter_map(|value| value.to_str().ok())
        .find(|value| {
            !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
}

async fn request_id(mut request: Request, next: Next) -> Response {
    let id = incoming_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // For handlers that record it (the audit log's `Client` extractor).
    request
        .extensions_mut()
        .insert(crate::extract::RequestId(id.clone()));
    // The route template, not the path: a label must not carry a machine id.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        user = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "response"
        );
    });
    crate::metrics::observe_request(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status(),
        started.elapsed(),
        &id,
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}
