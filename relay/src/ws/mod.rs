//! The terminal WebSocket, `GET /ssh?uuid=…` (protocol: `docs/websocket-protocol.md`).
//!
//! Before the upgrade, only what a browser can act on as an HTTP answer: the Origin check (403)
//! and draining (503). Ticket problems are reported *after* the upgrade as close codes, because
//! a browser's WebSocket API never shows the status of a refused handshake; a close code is the
//! only way to say "expired" rather than "failed".
//!
//! After the upgrade: look the ticket up; if another relay holds it, forward the socket there
//! (`forward`) and let that relay do the rest; otherwise consume it atomically, take the
//! parked SSH session and run the pump (`pump`).

pub mod pump;

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use shared::ApiError;
use shared::auth::cookie;
use shared::routes::Lookup;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Origins;
use crate::forward;
use crate::{Relay, RelayState};

/// Largest client message (a paste) or frame accepted; larger ones close the socket (1009).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Socket read/write buffer per terminal. tungstenite's defaults (128 KiB each) would be most of
/// an idle terminal's memory; terminal traffic is small frames, and output frames (at most one
/// SSH packet, 32 KiB) are flushed one at a time anyway.
pub const SOCKET_BUFFER_BYTES: usize = 8 * 1024;
/// Frames queued inside tungstenite beyond that are refused rather than buffered.
pub const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Header a relay sets when it forwards a WebSocket to the relay holding the session, so a
/// stale route can never bounce a socket between relays.
pub const FORWARDED_HEADER: &str = "x-sushi-forwarded";
/// The `Host` the browser used, passed along by the forwarding relay.
pub const FORWARDED_HOST: &str = "x-forwarded-host";

/// Close codes (RFC 6455 leaves 4000–4999 to applications).
pub mod close {
    /// The remote shell ended; an `exit` event precedes it.
    pub const NORMAL: u16 = 1000;
    /// The relay is shutting down (after the drain grace period).
    pub const GOING_AWAY: u16 = 1001;
    /// Unknown, malformed or expired ticket.
    pub const TICKET_INVALID: u16 = 4001;
    /// The ticket was already used to open a terminal.
    pub const TICKET_USED: u16 = 4002;
    /// The `jwt` cookie names someone other than the ticket's owner.
    pub const TICKET_NOT_YOURS: u16 = 4003;
    /// The SSH connection ended without an exit status.
    pub const SSH_CLOSED: u16 = 4004;
    /// No keystroke and no output for `IDLE_TIMEOUT_SECS`.
    pub const IDLE_TIMEOUT: u16 = 4008;
    /// The client stopped answering pings (or stopped reading for too long).
    pub const CLIENT_UNRESPONSIVE: u16 = 4009;
    /// The route table or the relay holding the session could not be reached.
    pub const ROUTING_UNAVAILABLE: u16 = 4011;
}

/// Is this Origin allowed? Absent Origin means a non-browser client (no ambient cookies to
/// abuse), which the ticket alone authorises.
fn origin_allowed(origins: &Origins, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    match origins {
        Origins::Any => true,
        Origins::List(list) => list
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        Origins::SameOrigin => {
            // A browser cannot set custom headers on a WebSocket handshake, so trusting the
            // forwarding relay's `x-forwarded-host` gives nothing to a cross-site page.
            let host = headers
                .get(FORWARDED_HOST)
                .filter(|_| headers.contains_key(FORWARDED_HEADER))
                .or_else(|| headers.get(http::header::HOST))
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or_default();
            !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
        }
    }
}

pub async fn terminal(
    State(RelayState(relay)): State<RelayState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if !origin_allowed(&relay.config.allowed_origins, &headers) {
        tracing::info!("websocket refused: origin not allowed");
        return ApiError::Forbidden("Origin is not allowed".into()).into_response();
    }
    if relay.draining() {
        return ApiError::Unavailable(
            "This relay is shutting down; retry to reach another relay".into(),
        )
        .into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return ApiError::bad_request("Expected a WebSocket upgrade on /ssh").into_response();
        }
    };
    let ticket = query.get("uuid").cloned().unwrap_or_default();
    let jwt = cookie(&headers, "jwt");
    let forwarded = headers.contains_key(FORWARDED_HEADER);
    let pass_on = forward::headers_to_pass(&headers);
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            open(relay, socket, ticket, jwt, forwarded, pass_on).await;
        })
}

async fn open(
    relay: std::sync::Arc<Relay>,
    socket: WebSocket,
    ticket: String,
    jwt: Option<String>,
    forwarded: bool,
    pass_on: Vec<(http::HeaderName, http::HeaderValue)>,
) {
    let Ok(ticket) = Uuid::parse_str(&ticket) else {
        return refuse(socket, close::TICKET_INVALID, "invalid ticket").await;
    };
    let caller = match &jwt {
        Some(token) => match relay.authenticator.verify(token).await {
            Ok(identity) => Some(identity.0),
            Err(_) => {
                return refuse(socket, close::TICKET_NOT_YOURS, "jwt cookie is not valid").await;
            }
        },
        None => None,
    };
    let now = relay.clock.now();
    let route = match relay.routes.lookup(ticket, now).await {
        Ok(Lookup::Open(route)) => route,
        Ok(Lookup::Used(_)) => {
            return refuse(socket, close::TICKET_USED, "ticket already used").await;
        }
        Ok(Lookup::Missing) => {
            return refuse(socket, close::TICKET_INVALID, "unknown or expired ticket").await;
        }
        Err(err) => {
            tracing::error!(error = %err, "route lookup failed");
            return refuse(socket, close::ROUTING_UNAVAILABLE, "routing unavailable").await;
        }
    };
    if caller.as_ref().is_some_and(|caller| *caller != route.owner) {
        tracing::warn!("websocket refused: ticket belongs to another user");
        return refuse(
            socket,
            close::TICKET_NOT_YOURS,
            "ticket belongs to another user",
        )
        .await;
    }
    if route.relay != relay.advertise {
        if forwarded {
            return refuse(socket, close::TICKET_INVALID, "ticket is not held here").await;
        }
        tracing::info!(to = %route.relay, "forwarding websocket to the relay holding the session");
        return forward::run(&relay, socket, &route.relay, ticket, pass_on).await;
    }
    match relay.routes.consume(ticket, now).await {
        Ok(Lookup::Open(_)) => {}
        Ok(Lookup::Used(_)) => {
            return refuse(socket, close::TICKET_USED, "ticket already used").await;
        }
        Ok(Lookup::Missing) => {
            return refuse(socket, close::TICKET_INVALID, "unknown or expired ticket").await;
        }
        Err(err) => {
            tracing::error!(error = %err, "route consume failed");
            return refuse(socket, close::ROUTING_UNAVAILABLE, "routing unavailable").await;
        }
    }
    let Some(session) = relay.sessions.take(ticket) else {
        return refuse(socket, close::TICKET_INVALID, "session no longer available").await;
    };
    if session.owner != route.owner {
        return refuse(
            socket,
            close::TICKET_NOT_YOURS,
            "ticket belongs to another user",
        )
        .await;
    }
    let span = tracing::info_span!("terminal", machine_id = session.machine_id);
    pump::run(&relay, socket, session).instrument(span).await;
}

/// Close with `code` and a short reason, bounded in time.
pub async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    tracing::info!(code, reason, "websocket refused");
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), socket.send(frame)).await;
}
