//! Forwarding a terminal WebSocket to the relay that holds its session: any replica can take
//! any WebSocket.
//!
//! This relay has checked the Origin and the `jwt` cookie and found, in the one ticket-table
//! call, that another relay holds the ticket (unconsumed). It opens a WebSocket to that relay's
//! advertised URL carrying only a hop proof ([`super::hop`]) for the ticket's owner; the owner
//! relay verifies the proof and consumes the ticket. Frames are then copied both ways, one
//! `await` at a time, so backpressure passes through unchanged and nothing is buffered beyond a
//! frame per direction. Close frames (with their codes) pass through, so the browser sees the
//! owner relay's reason. Only `http://` advertise URLs are supported: relays talk on an
//! internal network.
//!
//! Each hop keeps its own keepalive. The owner relay's pings reach this relay's WebSocket
//! client, which answers them, so the owner cannot notice a browser that went silent; this
//! relay pings the browser and closes it with 4009 by the same rule as the pump
//! ([`super::liveness`]), which also ends the session upstream. If the owner relay is
//! unreachable (4011 after at most [`CONNECT_TIMEOUT`]) or vanishes mid-session (its socket
//! ends without a close frame), the browser is told 4011 rather than seeing a bare disconnect.

use std::time::Duration;

use super::hop::{self, Hop};
use super::liveness::{Liveness, Verdict, within_stall};
use super::protocol::{
    Close, HOP_HEADER, INPUT_BUFFER_BYTES, MAX_MESSAGE_BYTES, MAX_WRITE_BUFFER_BYTES,
    OUTPUT_BUFFER_BYTES, close_message, refuse,
};
use crate::Relay;
use crate::drain::Phase;
use crate::tickets::Route;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn to_upstream(message: Message) -> Option<tungstenite::Message> {
    Some(match message {
        Message::Binary(bytes) => tungstenite::Message::Binary(bytes),
        Message::Text(text) => tungstenite::Message::Text(text.as_str().into()),
        Message::Close(frame) => {
            tungstenite::Message::Close(frame.map(|f| tungstenite::protocol::CloseFrame {
                code: CloseCode::from(f.code),
                reason: f.reason.as_str().into(),
            }))
        }
        // Each hop keeps its own keepalive.
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

fn to_browser(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Binary(bytes) => Message::Binary(bytes),
        tungstenite::Message::Text(text) => Message::Text(text.as_str().into()),
        tungstenite::Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: u16::from(f.code),
            reason: f.reason.as_str().into(),
        })),
        _ => return None,
    })
}

/// Forward `browser` to the relay in `route`, for a ticket or a session resume (`hop`),
/// vouching for the route's owner.
pub async fn run(relay: &Relay, browser: WebSocket, route: &Route, hop: Hop) {
    run_as(relay, browser, &route.relay, hop, &route.owner).await;
}

/// Forward `browser` to relay `to`, vouching for `caller` (a share's viewer, or `""` for one
/// who is not signed in).
pub async fn run_as(relay: &Relay, browser: WebSocket, to: &str, hop: Hop, caller: &str) {
    crate::metrics::get().forwarded_sockets.inc();
    let Some(base) = to.strip_prefix("http://") else {
        tracing::error!(
            to = %to,
            "cannot forward: only http:// relay addresses are supported"
        );
        return refuse(browser, Close::RoutingUnavailable, "relay unreachable").await;
    };
    let proof = match relay.tickets.hop_key().await {
        Ok(key) => hop::sign(&key, hop, caller),
        Err(err) => {
            tracing::error!(error = %err, "hop key unavailable");
            None
        }
    };
    let url = match hop {
        Hop::Ticket(ticket) => format!("ws://{base}/ssh?uuid={ticket}"),
        Hop::Session(id) => format!("ws://{base}/ssh?session={id}"),
        Hop::Share(id) => format!("ws://{base}/ssh?share={id}"),
        // Not a socket: forwarded as an HTTP request (`crate::share_api`).
        Hop::Revoke(_) => {
            return refuse(browser, Close::RoutingUnavailable, "not a terminal").await;
        }
        // File requests are forwarded as HTTP (`crate::files::forward`), never as a socket.
        Hop::Files(_) => {
            return refuse(browser, Close::TicketInvalid, "not a terminal").await;
        }
    };
    let request = proof.and_then(|proof| {
        let mut request = url.into_client_request().ok()?;
        let proof = HeaderValue::from_str(&proof).ok()?;
        request.headers_mut().insert(HOP_HEADER, proof);
        Some(request)
    });
    let Some(request) = request else {
        return refuse(browser, Close::RoutingUnavailable, "relay unreachable").await;
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(OUTPUT_BUFFER_BYTES)
        .write_buffer_size(INPUT_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES * 16))
        .max_frame_size(Some(MAX_MESSAGE_BYTES * 16));
    // `true`: TCP_NODELAY between relays, for the same keystroke-echo reason as `edge::serve`.
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await;
    let upstream = match connected {
        Ok(Ok((upstream, _))) => upstream,
        Ok(Err(err)) => {
            tracing::error!(error = %err, to = %to, "forwarding failed");
            return refuse(browser, Close::RoutingUnavailable, "relay unreachable").await;
        }
        Err(_) => {
            tracing::error!(to = %to, "forwarding timed out");
            return refuse(browser, Close::RoutingUnavailable, "relay unreachable").await;
        }
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = browser.split();
    let mut phase = relay.phase.subscribe();
    let liveness = Liveness::new(relay.config.keepalive, None);
    let mut tick = tokio::time::interval(liveness.tick_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both directions in one loop: whichever side closes ends both. Every send is bounded,
    // so a browser that stopped reading cannot hold the loop (and its keepalive) forever.
    let end = loop {
        tokio::select! {
            from_browser = down_rx.next() => {
                let Some(Ok(message)) = from_browser else { break End::BrowserGone };
                liveness.heard();
                let closing = matches!(message, Message::Close(_));
                if let Some(message) = to_upstream(message) {
                    match within_stall(up_tx.send(message)).await {
                        Some(Ok(())) if !closing => {}
                        Some(Ok(())) => break End::Closed,
                        Some(Err(_)) | None => break End::UpstreamLost,
                    }
                }
            }
            from_upstream = up_rx.next() => {
                let Some(Ok(message)) = from_upstream else { break End::UpstreamLost };
                let closing = matches!(message, tungstenite::Message::Close(_));
                if let Some(message) = to_browser(message) {
                    match within_stall(down_tx.send(message)).await {
                        Some(Ok(())) if !closing => liveness.delivered(),
                        Some(Ok(())) => break End::Closed,
                        Some(Err(_)) => break End::BrowserGone,
                        None => break End::Unresponsive,
                    }
                }
            }
            _ = tick.tick() => match liveness.check() {
                Verdict::Gone => break End::Unresponsive,
                Verdict::Ping => {
                    let ping = down_tx.send(Message::Ping(bytes::Bytes::new()));
                    if let Ok(Err(_)) = tokio::time::timeout(relay.config.keepalive, ping).await {
                        break End::BrowserGone;
                    }
                }
                Verdict::Alive | Verdict::Idle => {}
            },
            changed = phase.changed() => {
                if changed.is_err() || matches!(*phase.borrow(), Phase::Closing) {
                    break End::ShuttingDown;
                }
            }
        }
    };
    let to_browser = match end {
        End::Closed | End::BrowserGone => None,
        End::UpstreamLost => Some((
            Close::RoutingUnavailable,
            "lost the relay holding the session",
        )),
        End::Unresponsive => Some((Close::ClientUnresponsive, "client stopped answering pings")),
        End::ShuttingDown => Some((Close::GoingAway, "relay shutting down")),
    };
    if let Some((code, reason)) = to_browser {
        tracing::info!(code = code.code(), reason, "forwarded websocket closed");
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            down_tx.send(close_message(code, reason)),
        )
        .await;
    }
    // Closing upstream ends the session on the owner relay (it sees the client close).
    let _ = tokio::time::timeout(Duration::from_secs(1), up_tx.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), down_tx.close()).await;
}

/// Why the copy loop ended, which decides what the browser is told.
enum End {
    /// A close frame passed through (either way): both sides already know.
    Closed,
    /// The browser's socket ended or failed: nobody left to tell.
    BrowserGone,
    /// The owner relay's socket ended without a close frame (the relay died, the network
    /// between relays failed), or stopped accepting frames.
    UpstreamLost,
    /// The browser answered nothing for three keepalive intervals, or accepted nothing for
    /// [`SEND_STALL`](super::liveness::SEND_STALL).
    Unresponsive,
    /// This relay's drain grace period is over.
    ShuttingDown,
}
