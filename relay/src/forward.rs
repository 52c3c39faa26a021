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

use std::sync::Arc;
use std::time::Duration;

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
    // Both directions in one loop: whichever side closes ends both.
    loop {
        tokio::select! {
            from_browser = down_rx.next() => {
                let Some(Ok(message)) = from_browser else { break };
                let closing = matches!(message, Message::Close(_));
                if let Some(message) = to_upstream(message) {
                    if up_tx.send(message).await.is_err() || closing {
                        break;
                    }
                }
            }
            from_upstream = up_rx.next() => {
                let Some(Ok(message)) = from_upstream else { break };
                let closing = matches!(message, tungstenite::Message::Close(_));
                if let Some(message) = to_browser(message) {
                    if down_tx.send(message).await.is_err() || closing {
                        break;
                    }
                }
            }
            changed = phase.changed() => {
                if changed.is_err() || matches!(*phase.borrow(), crate::Phase::Closing) {
                    let _ = down_tx.send(Message::Close(Some(CloseFrame {
                        code: close::GOING_AWAY,
                        reason: "relay shutting down".into(),
                    }))).await;
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), up_tx.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), down_tx.close()).await;
}
