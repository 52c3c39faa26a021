//! Forwarding a terminal WebSocket to the relay that holds its session (DESIGN.md section 4:
//! any replica can take any WebSocket).
//!
//! The receiving relay only looked the ticket up; it does not consume it. It opens a WebSocket
//! to the owner relay's advertised URL with the browser's Origin and cookies and a
//! [`FORWARDED_HEADER`](super::ws::FORWARDED_HEADER), and the owner relay runs every check
//! itself (Origin, cookie owner, single use), exactly as for a direct connection. Frames are
//! then copied both ways, one `await` at a time, so backpressure passes through unchanged and
//! nothing is buffered beyond a frame per direction. Close frames (with their codes) pass
//! through, so the browser sees the owner relay's reason. Only `ws://` advertise URLs are
//! supported: relays talk on an internal network.
//!
//! Each hop keeps its own keepalive. The owner relay's pings reach this relay's WebSocket
//! client, which answers them, so the owner cannot notice a browser that went silent; this
//! relay pings the browser and closes it with 4009 by the same rule as the pump, which also
//! ends the session upstream. If the owner relay is unreachable (4011 after at most
//! [`CONNECT_TIMEOUT`]) or vanishes mid-session (its socket ends without a close frame), the
//! browser is told 4011 rather than seeing a bare disconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};
use uuid::Uuid;

use crate::Relay;
use crate::ws::{
    FORWARDED_HEADER, FORWARDED_HOST, MAX_MESSAGE_BYTES, MAX_WRITE_BUFFER_BYTES,
    SOCKET_BUFFER_BYTES, close, refuse,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that accepts nothing for this long is treated as gone (as in the pump).
const SEND_STALL: Duration = Duration::from_secs(60);

/// The browser headers the owner relay needs to make the same decisions.
pub fn headers_to_pass(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    [
        http::header::ORIGIN,
        http::header::COOKIE,
        http::header::HOST,
    ]
    .into_iter()
    .flat_map(|name| {
        headers
            .get_all(&name)
            .iter()
            .take(4)
            .map(move |value| (name.clone(), value.clone()))
            .collect::<Vec<_>>()
    })
    .collect()
}

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

pub async fn run(
    relay: &Arc<Relay>,
    browser: WebSocket,
    owner_relay: &str,
    ticket: Uuid,
    pass_on: Vec<(HeaderName, HeaderValue)>,
) {
    let Some(base) = owner_relay.strip_prefix("http://") else {
        tracing::error!(
            to = owner_relay,
            "cannot forward: only http:// relay addresses are supported"
        );
        return refuse(browser, close::ROUTING_UNAVAILABLE, "relay unreachable").await;
    };
    let url = format!("ws://{base}/ssh?uuid={ticket}");
    let Ok(mut request) = url.into_client_request() else {
        return refuse(browser, close::ROUTING_UNAVAILABLE, "relay unreachable").await;
    };
    for (name, value) in pass_on {
        // The owner relay judges same-origin against the host the browser asked for.
        let name = if name == http::header::HOST {
            HeaderName::from_static(FORWARDED_HOST)
        } else {
            name
        };
        request.headers_mut().append(name, value);
    }
    request
        .headers_mut()
        .insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    let config = WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES * 16))
        .max_frame_size(Some(MAX_MESSAGE_BYTES * 16));
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await;
    let upstream = match connected {
        Ok(Ok((upstream, _))) => upstream,
        Ok(Err(err)) => {
            tracing::error!(error = %err, to = owner_relay, "forwarding failed");
            return refuse(browser, close::ROUTING_UNAVAILABLE, "relay unreachable").await;
        }
        Err(_) => {
            tracing::error!(to = owner_relay, "forwarding timed out");
            return refuse(browser, close::ROUTING_UNAVAILABLE, "relay unreachable").await;
        }
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = browser.split();
    let mut phase = relay.phase.subscribe();
    let keepalive = relay.config.keepalive;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(keepalive));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut last_delivered = Instant::now();
    let mut last_ping = Instant::now();
    // Both directions in one loop: whichever side closes ends both. Every send is bounded,
    // so a browser that stopped reading cannot hold the loop (and its keepalive) forever.
    let end = loop {
        tokio::select! {
            from_browser = down_rx.next() => {
                let Some(Ok(message)) = from_browser else { break End::BrowserGone };
                last_heard = Instant::now();
                let closing = matches!(message, Message::Close(_));
                if let Some(message) = to_upstream(message) {
                    match tokio::time::timeout(SEND_STALL, up_tx.send(message)).await {
                        Ok(Ok(())) if !closing => {}
                        Ok(Ok(())) => break End::Closed,
                        Ok(Err(_)) | Err(_) => break End::UpstreamLost,
                    }
                }
            }
            from_upstream = up_rx.next() => {
                let Some(Ok(message)) = from_upstream else { break End::UpstreamLost };
                let closing = matches!(message, tungstenite::Message::Close(_));
                if let Some(message) = to_browser(message) {
                    match tokio::time::timeout(SEND_STALL, down_tx.send(message)).await {
                        Ok(Ok(())) if !closing => last_delivered = Instant::now(),
                        Ok(Ok(())) => break End::Closed,
                        Ok(Err(_)) => break End::BrowserGone,
                        Err(_) => break End::Unresponsive,
                    }
                }
            }
            _ = tick.tick() => {
                // The owner relay's pings are answered by this relay's WebSocket client, so
                // only this hop can tell that the browser is gone: the same rule as the pump
                // (silent for three intervals, and no output delivered to it meanwhile).
                if last_heard.elapsed() >= keepalive * 3 && last_delivered.elapsed() >= keepalive * 3 {
                    break End::Unresponsive;
                }
                if last_ping.elapsed() >= keepalive {
                    last_ping = Instant::now();
                    let ping = down_tx.send(Message::Ping(bytes::Bytes::new()));
                    if let Ok(Err(_)) = tokio::time::timeout(keepalive, ping).await {
                        break End::BrowserGone;
                    }
                }
            }
            changed = phase.changed() => {
                if changed.is_err() || matches!(*phase.borrow(), crate::Phase::Closing) {
                    break End::ShuttingDown;
                }
            }
        }
    };
    let to_browser = match end {
        End::Closed | End::BrowserGone => None,
        End::UpstreamLost => Some((
            close::ROUTING_UNAVAILABLE,
            "lost the relay holding the session",
        )),
        End::Unresponsive => Some((close::CLIENT_UNRESPONSIVE, "client stopped answering pings")),
        End::ShuttingDown => Some((close::GOING_AWAY, "relay shutting down")),
    };
    if let Some((code, reason)) = to_browser {
        tracing::info!(code, reason, "forwarded websocket closed");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), down_tx.send(frame)).await;
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
    /// [`SEND_STALL`].
    Unresponsive,
    /// This relay's drain grace period is over.
    ShuttingDown,
}
