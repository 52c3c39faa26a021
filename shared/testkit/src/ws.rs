//! A terminal WebSocket client for tests: what a browser's xterm.js page does, as a small
//! async API (`send`, `expect_output`, `expect_event`, `expect_close`), every wait bounded.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One thing the relay sent.
#[derive(Debug)]
pub enum Frame {
    Output(Vec<u8>),
    Event(Value),
    Closed(u16, String),
}

pub struct Terminal {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// All output bytes received so far.
    pub output: Vec<u8>,
    /// All JSON events received so far.
    pub events: Vec<Value>,
    pub closed: Option<(u16, String)>,
}

/// `ws://` URL of the terminal for `ticket` on the server at `base_url` (`http://…`).
pub fn terminal_url(base_url: &str, ticket: &str) -> String {
    format!("{}/ssh?uuid={ticket}", base_url.replacen("http", "ws", 1))
}

impl Terminal {
    /// Open the terminal WebSocket, with extra request headers (Origin, Cookie).
    pub async fn open(
        base_url: &str,
        ticket: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut request = terminal_url(base_url, ticket).into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(http_name(name), value.parse().expect("header value"));
        }
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .expect("websocket handshake timed out")?;
        Ok(Self {
            ws,
            output: Vec::new(),
            events: Vec::new(),
            closed: None,
        })
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send binary frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send text frame");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Type a shell line (binary keystrokes, newline appended).
    pub async fn run(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes()).await;
    }

    /// Close from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// The next frame, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        loop {
            let message = match tokio::time::timeout(timeout, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    let closed = self.closed.clone().unwrap_or((1006, "abnormal".to_owned()));
                    self.closed = Some(closed.clone());
                    return Some(Frame::Closed(closed.0, closed.1));
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Binary(bytes) => {
                    self.output.extend_from_slice(&bytes);
                    return Some(Frame::Output(bytes.to_vec()));
                }
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("text frame is not JSON ({e}): {text}"));
                    self.events.push(value.clone());
                    return Some(Frame::Event(value));
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    self.closed = Some((code, reason.clone()));
                    return Some(Frame::Closed(code, reason));
                }
                _ => continue,
            }
        }
    }

    /// Read until the output contains `needle` (searching everything received so far).
    pub async fn expect_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut scanned: usize = 0;
        loop {
            let from = scanned.saturating_sub(needle.len());
            if self
                .output
                .get(from..)
                .is_some_and(|new| contains(new, needle.as_bytes()))
            {
                return;
            }
            scanned = self.output.len();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Frame::Closed(code, reason)) => panic!(
                    "closed ({code} {reason}) before output contained {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.output)
                ),
                Some(_) => {}
                None => panic!(
                    "timed out waiting for {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.output)
                ),
            }
        }
    }

    /// Read until a JSON event with `"type": kind` arrives; returns it.
    pub async fn expect_event(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.iter().find(|e| e["type"] == kind) {
                return event.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Frame::Closed(code, reason)) => {
                    if let Some(event) = self.events.iter().find(|e| e["type"] == kind) {
                        return event.clone();
                    }
                    panic!(
                        "closed ({code} {reason}) before a {kind} event; events {:?}",
                        self.events
                    )
                }
                Some(_) => {}
                None => panic!(
                    "timed out waiting for a {kind} event; events {:?}",
                    self.events
                ),
            }
        }
    }

    /// Read until the relay closes; returns the close code and reason.
    pub async fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(closed) = &self.closed {
                return closed.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.next(left).await.is_none() {
                panic!("relay did not close the websocket in {timeout:?}");
            }
        }
    }
}

fn http_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("header name")
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
