//! Forwarding a file request to the relay that holds its terminal: any replica can take any
//! file request, as any replica can take a terminal WebSocket (`crate::ws::forward`).
//!
//! This relay has verified the caller (cookie or bearer token) and found the terminal's route
//! in the ticket table, naming the caller as owner. It sends the same method, path and query to
//! the owner relay's advertised URL with a files hop proof (`f:<session>`, see
//! `crate::ws::hop`) naming the caller, and without the caller's cookie or token. Bodies pass
//! through as streams both ways (hyper's client and server poll them chunk by chunk), so an
//! upload or download crosses the hop with the same bounded memory and backpressure it has
//! on one relay. Only `http://` advertise URLs are supported: relays talk on an internal
//! network.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use edge::ApiError;
use http::{HeaderValue, Method, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use uuid::Uuid;

use crate::Relay;
use crate::ws::hop::{self, Hop};
use crate::ws::protocol::HOP_HEADER;

/// Connecting to another relay.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waiting for the owner relay's answer to anything but an upload (whose answer comes after
/// its body, which is bounded by its own stall timeout on the owner relay).
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Request headers that cross the hop; everything else (cookie, authorization, origin) stays.
const PASSED: &[header::HeaderName] = &[header::CONTENT_TYPE, header::CONTENT_LENGTH];

fn client() -> &'static Client<HttpConnector, Body> {
    static CLIENT: OnceLock<Client<HttpConnector, Body>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(connector)
    })
}

/// Send `request` for session `id` to relay `to`, vouching for `caller`.
pub async fn run(relay: &Relay, request: Request, to: &str, id: Uuid, caller: &str) -> Response {
    let unreachable = || ApiError::unavailable("The relay holding this terminal is unreachable");
    let Some(base) = to.strip_prefix("http://") else {
        tracing::error!(to = %to, "cannot forward: only http:// relay addresses are supported");
        return unreachable().into_response();
    };
    let proof = match relay.tickets.hop_key().await {
        Ok(key) => hop::sign(&key, Hop::Files(id), caller),
        Err(err) => {
            tracing::error!(error = %err, "hop key unavailable");
            None
        }
    };
    let Some(proof) = proof.and_then(|p| HeaderValue::from_str(&p).ok()) else {
        return unreachable().into_response();
    };
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{base}{path}"))
        .header(HOP_HEADER, proof);
    for name in PASSED {
        if let Some(value) = parts.headers.get(name) {
            builder = builder.header(name, value);
        }
    }
    let Ok(outgoing) = builder.body(body) else {
        return ApiError::bad_request("The request could not be forwarded").into_response();
    };
    crate::metrics::get().forwarded_file_requests.inc();
    let sent = client().request(outgoing);
    let answered = if parts.method == Method::PUT {
        Ok(sent.await)
    } else {
        tokio::time::timeout(ANSWER_WAIT, sent).await
    };
    match answered {
        Ok(Ok(response)) => response.map(Body::new).into_response(),
        Ok(Err(err)) => {
            tracing::error!(error = %err, to = %to, "file request forwarding failed");
            unreachable().into_response()
        }
        Err(_) => {
            tracing::error!(to = %to, "file request forwarding timed out");
            unreachable().into_response()
        }
    }
}
