//! The layers around every route: a request id (taken from `x-request-id` or API Gateway's
//! `x-amzn-requestid`, else a fresh uuid) on the tracing span and the response, a whole-request
//! deadline answering 503, enveloped 404/405 for unknown routes and methods, and a last-resort
//! panic catcher that still answers with the envelope (the lints forbid panics on request
//! paths; this is for the ones we did not write).

use std::any::Any;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue};
use shared::ApiError;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::REQUEST_TIMEOUT;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn wrap(routes: Router) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound("Route not found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(deadline))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(middleware::from_fn(request_id))
}

fn on_panic(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal.into_response()
}

async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("request exceeded its deadline");
            ApiError::Unavailable("Request timed out; try again".into()).into_response()
        }
    }
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

async fn request_id(request: Request, next: Next) -> Response {
    let id = incoming_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
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
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}
