//! The terminal pump: bytes between one WebSocket and one SSH channel, for the session's life.
//!
//! Four tasks per terminal, each with one job and one owner:
//! * the *writer* owns the WebSocket sink and sends what the others queue on a bounded channel
//!   (`OUTBOUND_QUEUE` messages). If the browser stops reading, its send blocks, the queue
//!   fills, and the output task blocks in turn;
//! * the *output* task owns the SSH read half. While it is blocked it stops taking packets
//!   from russh, whose bounded channel buffer then fills, so russh stops reading the TCP
//!   socket and the target's SSH window and TCP window close: backpressure reaches the shell
//!   and the relay's memory per terminal stays bounded;
//! * the *input* task owns the SSH write half, so a remote that stops reading its input (its
//!   window closed) cannot stall the output side: the two directions never wait on each other;
//! * this function (the control loop) reads the WebSocket, parses control frames, and watches
//!   the clock (keepalive pings, idle timeout) and the drain phase.
//!
//! Whatever ends the session (client close, shell exit, idle, drain, error), the control loop
//! returns, aborts the tasks it spawned and disconnects SSH within a second, so nothing
//! outlives the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use russh::ChannelMsg;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::close;
use crate::Relay;
use crate::drain::Phase;
use crate::sessions::Session;
use crate::ssh;

const OUTBOUND_QUEUE: usize = 16;
const INPUT_QUEUE: usize = 32;
/// A browser that accepts nothing for this long is treated as gone.
const SEND_STALL: Duration = Duration::from_secs(60);
const MAX_COLS_ROWS: u32 = 1000;
/// Output coalescing stops adding SSH packets to a frame past this size.
const MAX_FRAME: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientEvent {
    Data { data: String },
    Input { data: String },
    Resize { cols: u32, rows: u32 },
    Heartbeat,
}

enum Input {
    Data(Bytes),
    Resize(u32, u32),
}

/// How the SSH side ended.
struct Ended {
    exit_status: Option<u32>,
    exit_signal: Option<String>,
}

/// Milliseconds since `base`, shared between the output task and the control loop.
struct Clock {
    base: Instant,
    last_activity: AtomicU64,
    /// When the writer last got a frame accepted: a client busy downloading output is alive
    /// even if it has nothing to say, and its pong may be queued behind that output.
    last_written: AtomicU64,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn touch(&self) {
        self.last_activity.store(self.now_ms(), Ordering::Relaxed);
    }
    fn wrote(&self) {
        self.last_written.store(self.now_ms(), Ordering::Relaxed);
    }
    fn since_written(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_written.load(Ordering::Relaxed)),
        )
    }
    fn idle_for(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_activity.load(Ordering::Relaxed)),
        )
    }
}

/// One WebSocket frame from the SSH output that is already waiting: `first` plus any data
/// packets russh has queued behind it, up to [`MAX_FRAME`]. Never waits, so an interactive
/// keystroke echo goes out as soon as it arrives, while a bulk `cat` leaves in a few large
/// frames instead of one frame (and one client wake-up) per SSH packet. A non-data message
/// found on the way is handed back to be processed next, in order.
fn coalesce(ssh_read: &mut russh::ChannelReadHalf, first: &[u8]) -> (Bytes, Option<ChannelMsg>) {
    let mut frame = BytesMut::with_capacity(first.len());
    frame.extend_from_slice(first);
    while frame.len() < MAX_FRAME {
        match ssh_read.wait().now_or_never().flatten() {
            Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }) => {
                frame.extend_from_slice(&data);
            }
            other => return (frame.freeze(), other),
        }
    }
    (frame.freeze(), None)
}

fn event(value: serde_json::Value) -> Message {
    Message::Text(value.to_string().into())
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

pub async fn run(relay: &Arc<Relay>, socket: WebSocket, session: Session) {
    let Session {
        handle,
        channel,
        slot,
        ..
    } = session;
    tracing::info!("terminal opened");
    let started = Instant::now();

    let (mut ssh_read, ssh_write) = channel.split();
    let (mut sink, mut stream) = socket.split();
    let clock = Arc::new(Clock {
        base: Instant::now(),
        last_activity: AtomicU64::new(0),
        last_written: AtomicU64::new(0),
    });

    let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    let writer_clock = Arc::clone(&clock);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            // Queue the frame and flush only when nothing else is waiting: one socket write
            // for a burst of output, and still no added delay for a lone keystroke echo.
            let sent = if closing || out_rx.is_empty() {
                tokio::time::timeout(SEND_STALL, sink.send(message)).await
            } else {
                tokio::time::timeout(SEND_STALL, sink.feed(message)).await
            };
            match sent {
                Ok(Ok(())) if !closing => writer_clock.wrote(),
                _ => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    });

    let output = {
        let out_tx = out_tx.clone();
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            let mut ended = Ended {
                exit_status: None,
                exit_signal: None,
            };
            let mut pending = None;
            loop {
                let message = match pending.take() {
                    Some(message) => message,
                    None => match ssh_read.wait().await {
                        Some(message) => message,
                        None => break,
                    },
                };
                match message {
                    ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                        clock.touch();
                        let (frame, next) = coalesce(&mut ssh_read, &data);
                        pending = next;
                        if out_tx.send(Message::Binary(frame)).await.is_err() {
                            break;
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => ended.exit_status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        ended.exit_signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            ended
        })
    };

    let (in_tx, mut in_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let input = tokio::spawn(async move {
        while let Some(input) = in_rx.recv().await {
            let sent = match input {
                Input::Data(bytes) => ssh_write.data(&bytes[..]).await,
                Input::Resize(cols, rows) => ssh_write.window_change(cols, rows, 0, 0).await,
            };
            if sent.is_err() {
                break;
            }
        }
    });

    let mut phase = relay.phase.subscribe();
    let keepalive = relay.config.keepalive;
    let idle_timeout = relay.config.idle_timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(keepalive));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    let mut output = output;
    // Announce a drain that started before this terminal opened.
    let mut notified_drain = false;

    let (code, reason): (u16, &'static str) = loop {
        if let Phase::Draining { grace_secs } = *phase.borrow_and_update() {
            if !notified_drain {
                notified_drain = true;
                let notice = event(json!({
                    "type": "shutdown",
                    "message": "This relay is shutting down; the terminal will close soon",
                    "grace_secs": grace_secs,
                }));
                let _ = out_tx.try_send(notice);
            }
        }
        if matches!(*phase.borrow(), Phase::Closing) {
            break (close::GOING_AWAY, "relay shutting down");
        }
        tokio::select! {
            incoming = stream.next() => {
                last_heard = Instant::now();
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(_)) | None => break (close::NORMAL, "client gone"),
                };
                let forward = match message {
                    Message::Binary(bytes) => Some(Input::Data(bytes)),
                    Message::Text(text) => match serde_json::from_str::<ClientEvent>(text.as_str()) {
                        Ok(ClientEvent::Data { data } | ClientEvent::Input { data }) => {
                            Some(Input::Data(Bytes::from(data)))
                        }
                        Ok(ClientEvent::Resize { cols, rows })
                            if (1..=MAX_COLS_ROWS).contains(&cols)
                                && (1..=MAX_COLS_ROWS).contains(&rows) =>
                        {
                            Some(Input::Resize(cols, rows))
                        }
                        Ok(ClientEvent::Resize { .. }) => {
                            let _ = out_tx.try_send(event(json!({
                                "type": "error",
                                "message": "resize needs cols and rows between 1 and 1000",
                            })));
                            None
                        }
                        Ok(ClientEvent::Heartbeat) => None,
                        Err(_) => {
                            let _ = out_tx.try_send(event(json!({
                                "type": "error",
                                "message": "unrecognised message; expected {\"type\":\"data\"|\"input\"|\"resize\"|\"heartbeat\"}",
                            })));
                            None
                        }
                    },
                    Message::Close(_) => break (close::NORMAL, "client closed"),
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(input) = forward {
                    if matches!(input, Input::Data(_)) {
                        clock.touch();
                    }
                    if in_tx.send(input).await.is_err() {
                        break (close::SSH_CLOSED, "ssh connection closed");
                    }
                }
            }
            ended = &mut output => {
                let ended = ended.unwrap_or(Ended { exit_status: None, exit_signal: None });
                match (ended.exit_status, ended.exit_signal) {
                    (Some(code), _) => {
                        let _ = out_tx.send(event(json!({"type": "exit", "code": code}))).await;
                        break (close::NORMAL, "remote shell exited");
                    }
                    (None, Some(signal)) => {
                        let _ = out_tx
                            .send(event(json!({"type": "exit", "code": null, "signal": signal})))
                            .await;
                        break (close::NORMAL, "remote shell killed by a signal");
                    }
                    (None, None) => {
                        let _ = out_tx
                            .send(event(json!({"type": "error", "message": "SSH connection closed"})))
                            .await;
                        break (close::SSH_CLOSED, "ssh connection closed");
                    }
                }
            }
            _ = tick.tick() => {
                if clock.idle_for() >= idle_timeout {
                    let _ = out_tx.try_send(event(json!({
                        "type": "error",
                        "message": "Closed after the idle timeout",
                    })));
                    break (close::IDLE_TIMEOUT, "idle timeout");
                }
                // Silent for three intervals means gone, unless output is being delivered to
                // it (its pong may be queued behind that output). Our own pings prove nothing:
                // the kernel's socket buffer accepts them from a client that stopped reading,
                // so only output produced (`idle_for`) and written (`since_written`) lately
                // keeps a silent client open.
                let silent = last_heard.elapsed() >= keepalive * 3;
                let delivering = clock.idle_for() < keepalive * 3
                    && clock.since_written() < keepalive * 3;
                if silent && !delivering {
                    break (close::CLIENT_UNRESPONSIVE, "client stopped answering pings");
                }
                if last_ping.elapsed() >= keepalive {
                    last_ping = Instant::now();
                    let _ = out_tx.try_send(Message::Ping(Bytes::new()));
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break (close::GOING_AWAY, "relay shutting down");
                }
            }
        }
    };

    // Teardown, bounded: stop reading SSH, say goodbye to the browser, close SSH.
    output.abort();
    input.abort();
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        out_tx.send(close_frame(code, reason)),
    )
    .await;
    drop(out_tx);
    ssh::disconnect(&handle).await;
    drop(handle);
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    drop(slot);
    tracing::info!(
        code,
        reason,
        duration_secs = started.elapsed().as_secs(),
        "terminal closed"
    );
}
