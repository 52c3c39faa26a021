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
    /// All keystroke bytes sent as binary frames (what a resuming client resends from).
    pub sent: Vec<u8>,
    /// All JSON events received so far.
    pub events: Vec<Value>,
    pub closed: Option<(u16, String)>,
}

/// `ws://` URL of the terminal for `ticket` on the server at `base_url` (`http://…`).
pub fn terminal_url(base_url: &str, ticket: &str) -> String {
    format!("{}/ssh?uuid={ticket}", base_url.replacen("http", "ws", 1))
}

/// `ws://` URL that resumes session `id` on the server at `base_url`.
pub fn session_url(base_url: &str, id: &str) -> String {
    format!("{}/ssh?session={id}", base_url.replacen("http", "ws", 1))
}

/// `ws://` URL that joins share `id` on the server at `base_url`.
pub fn share_url(base_url: &str, id: &str) -> String {
    format!("{}/ssh?share={id}", base_url.replacen("http", "ws", 1))
}

impl Terminal {
    /// Open the terminal WebSocket, with extra request headers (Origin, Cookie). The client
    /// leaves its socket untuned (Nagle's algorithm on, no `TCP_NODELAY`), as a browser or any
    /// client that does not tune its own sockets does.
    pub async fn open(
        base_url: &str,
        ticket: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Error> {
        Self::open_with_nodelay(base_url, ticket, headers, false).await
    }

    /// Like [`Terminal::open`], choosing whether the client sets `TCP_NODELAY` on its socket.
    /// Benchmarks that measure latency should state which kind of client they are.
    pub async fn open_with_nodelay(
        base_url: &str,
        ticket: &str,
        headers: &[(&str, &str)],
        nodelay: bool,
    ) -> Result<Self, Error> {
        Self::connect(&terminal_url(base_url, ticket), headers, nodelay).await
    }

    /// Resume session `id` with its `secret`, as a client that has received `offset` output
    /// bytes: opens `/ssh?session=id` and sends the `resume` frame.
    pub async fn resume(
        base_url: &str,
        id: &str,
        secret: &str,
        offset: u64,
        headers: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut terminal = Self::connect(&session_url(base_url, id), headers, false).await?;
        terminal
            .send_json(serde_json::json!({"type": "resume", "secret": secret, "offset": offset}))
            .await;
        Ok(terminal)
    }

    /// Join share `id` as a viewer with its `secret` (from the link's fragment): opens
    /// `/ssh?share=id` and sends the `join` frame.
    pub async fn join(
        base_url: &str,
        id: &str,
        secret: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut terminal = Self::connect(&share_url(base_url, id), headers, false).await?;
        terminal
            .send_json(serde_json::json!({"type": "join", "secret": secret}))
            .await;
        Ok(terminal)
    }

    /// The `session` event's id and secret (read it first with `expect_event("session")`).
    pub fn session(&self) -> (String, String) {
        let event = self
            .events
            .iter()
            .find(|e| e["type"] == "session")
            .expect("no session event yet");
        (
            event["id"].as_str().expect("id").to_owned(),
            event["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Tell the relay how much output arrived (`{"type":"ack"}`).
    pub async fn ack(&mut self, offset: u64) {
        self.send_json(serde_json::json!({"type": "ack", "offset": offset}))
            .await;
    }

    /// Drop the connection without a close frame, as a lost network or a killed tab does.
    pub fn cut(self) {
        drop(self);
    }

    async fn connect(url: &str, headers: &[(&str, &str)], nodelay: bool) -> Result<Self, Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(http_name(name), value.parse().expect("header value"));
        }
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(request, None, nodelay),
        )
        .await
        .map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "websocket handshake timed out",
            ))
        })??;
        Ok(Self {
            ws,
            output: Vec::new(),
            sent: Vec::new(),
            events: Vec::new(),
            closed: None,
        })
    }

    /// Whether `TCP_NODELAY` is set on the client's socket.
    pub fn nodelay(&self) -> std::io::Result<bool> {
        self.ws.get_ref().get_ref().nodelay()
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.sent.extend_from_slice(bytes);
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send binary frame");
    }

    /// Like [`Terminal::send_bytes`], but a socket that died under the client is an error, not a
    /// panic (for load tools, whose relays are killed on purpose).
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sent.extend_from_slice(bytes);
        self.ws.send(Message::Binary(bytes.to_vec().into())).await
    }

    /// Like [`Terminal::ack`], returning the error instead of panicking.
    pub async fn try_ack(&mut self, offset: u64) -> Result<(), Error> {
        let ack = serde_json::json!({"type": "ack", "offset": offset}).to_string();
        self.ws.send(Message::Text(ack.into())).await
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

    /// The next frame, or `None` after `timeout`. Pings and pongs are not frames here (the
    /// WebSocket library answers pings while this reads), and do not restart the timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
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

/// A WebSocket client on a bare TCP socket: it does the HTTP upgrade and writes frames itself,
/// and it answers nothing (no pongs, ever) and reads only when the test asks it to. It is how a
/// test plays a browser tab that froze or a laptop that went to sleep: between two calls the
/// relay's frames simply pile up unread in the kernel's receive buffer.
pub struct SilentClient {
    stream: TcpStream,
    /// Received bytes not yet parsed into frames.
    pending: Vec<u8>,
    /// All terminal output (binary frames) parsed so far.
    pub output: Vec<u8>,
    /// Pings the relay sent (never answered).
    pub pings: usize,
}

impl SilentClient {
    /// Open `/ssh?uuid=ticket` with extra headers; panics unless the server answers 101.
    pub async fn open(base_url: &str, ticket: &str, headers: &[(&str, &str)]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base_url
            .strip_prefix("http://")
            .expect("an http:// base URL")
            .trim_end_matches('/');
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(host))
            .await
            .expect("connect timed out")
            .expect("connect");
        let mut request = format!(
            "GET /ssh?uuid={ticket} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut pending = Vec::new();
        let head_end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(at) = find(&pending, b"\r\n\r\n") {
                    return at + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed during the handshake");
                pending.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("handshake timed out");
        let head = String::from_utf8_lossy(&pending[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        pending.drain(..head_end);
        Self {
            stream,
            pending,
            output: Vec::new(),
            pings: 0,
        }
    }

    /// Send keystrokes as one masked binary frame (clients must mask; the key is arbitrary).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mask = [0x5a, 0x17, 0xc3, 0x8e];
        let mut frame = vec![0x82];
        match bytes.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Type a shell line.
    pub async fn run(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes()).await;
    }

    /// Parse one complete frame off `pending`, if there is one: (opcode, payload).
    fn parse(&mut self) -> Option<(u8, Vec<u8>)> {
        let (&b0, rest) = self.pending.split_first()?;
        let (&b1, rest) = rest.split_first()?;
        assert_eq!(b1 & 0x80, 0, "a server must not mask its frames");
        let (len, header) = match b1 & 0x7f {
            126 => (
                u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as usize,
                10,
            ),
            len => (len as usize, 2),
        };
        let payload = self.pending.get(header..header + len)?.to_vec();
        self.pending.drain(..header + len);
        Some((b0 & 0x0f, payload))
    }

    /// Read and parse frames until `done` says stop (given opcode and payload), for at most
    /// `timeout`. `Err` carries why it stopped early: end of stream or the deadline.
    async fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self, u8, &[u8]) -> bool,
    ) -> Result<(), &'static str> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some((opcode, payload)) = self.parse() {
                match opcode {
                    0x0 | 0x2 => self.output.extend_from_slice(&payload),
                    0x9 => self.pings += 1,
                    _ => {}
                }
                if done(self, opcode, &payload) {
                    return Ok(());
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err("timed out"),
                Ok(Ok(0)) | Ok(Err(_)) => return Err("connection ended without a close frame"),
                Ok(Ok(n)) => self.pending.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Read until the output contains `needle`.
    pub async fn expect_output(&mut self, needle: &str, timeout: Duration) {
        let found = self
            .read_until(timeout, |me, _, _| contains(&me.output, needle.as_bytes()))
            .await;
        if let Err(why) = found {
            panic!(
                "{why} before output contained {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.output)
            );
        }
    }

    /// Read (everything that piled up, then what follows) until a close frame; its code and
    /// reason.
    pub async fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let mut closed = None;
        let read = self
            .read_until(timeout, |_, opcode, payload| {
                if opcode != 0x8 {
                    return false;
                }
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                closed = Some((code, reason.into_owned()));
                true
            })
            .await;
        match (read, closed) {
            (Ok(()), Some(closed)) => closed,
            (Err(why), _) => panic!("no close frame: {why}"),
            (Ok(()), None) => unreachable!("read_until stops only on a close frame"),
        }
    }
}
