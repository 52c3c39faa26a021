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
//!
//! The pump takes only what it uses: its [`PumpSettings`] and a receiver of the drain phase,
//! not the whole relay. When a client is gone is decided by [`super::liveness`]; what goes on
//! the wire is defined by [`super::protocol`]. Bytes each way and the open terminal are counted
//! on the relay's pre-made metric handles (`crate::metrics`): an atomic add per frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::liveness::{Liveness, Verdict, within_stall};
use super::protocol::{
    ClientEvent, Close, MAX_COLS_ROWS, MAX_OUTPUT_FRAME, ServerEvent, close_message,
};
use crate::drain::Phase;
use crate::sessions::Session;
use crate::ssh;

const OUTBOUND_QUEUE: usize = 16;
const INPUT_QUEUE: usize = 32;

/// What a terminal needs to know about its limits.
#[derive(Clone, Copy, Debug)]
pub struct PumpSettings {
    /// WebSocket ping interval; three silent intervals close the terminal (4009).
    pub keepalive: Duration,
    /// No keystroke and no output for this long closes the terminal (4008).
    pub idle_timeout: Duration,
}

/// Keystrokes and resizes on their way to the SSH channel.
enum Input {
    Data(Bytes),
    Resize(u32, u32),
}

/// How the SSH side ended.
#[derive(Default)]
struct Ended {
    exit_status: Option<u32>,
    exit_signal: Option<String>,
}

/// Run one terminal until it ends, then tear everything down.
pub async fn run(
    settings: PumpSettings,
    phase: watch::Receiver<Phase>,
    socket: WebSocket,
    session: Session,
) {
    let Session {
        handle,
        channel,
        slot,
        ..
    } = session;
    tracing::info!("terminal opened");
    let started = Instant::now();
    let _open = crate::metrics::get().terminal_opened();
    let (ssh_read, ssh_write) = channel.split();
    let (sink, stream) = socket.split();
    let liveness = Arc::new(Liveness::new(
        settings.keepalive,
        Some(settings.idle_timeout),
    ));

    let (out_tx, out_rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let writer = tokio::spawn(write_to_client(out_rx, sink, Arc::clone(&liveness)));
    let output = tokio::spawn(read_from_ssh(
        ssh_read,
        out_tx.clone(),
        Arc::clone(&liveness),
    ));
    let input = tokio::spawn(write_to_ssh(in_rx, ssh_write));

    let (close, reason) = control(stream, &out_tx, &in_tx, output, &liveness, phase).await;

    // Teardown, bounded: stop writing to SSH, say goodbye to the browser, close SSH.
    input.abort();
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        out_tx.send(close_message(close, reason)),
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
        code = close.code(),
        reason,
        duration_secs = started.elapsed().as_secs(),
        "terminal closed"
    );
}

/// The writer task: owns the WebSocket sink and sends what the others queue. It flushes only
/// when nothing else is waiting: one socket write for a burst of output, and no added delay
/// for a lone keystroke echo. Ends when the queue closes, a close frame went out, or the
/// client stopped accepting frames.
async fn write_to_client(
    mut queue: mpsc::Receiver<Message>,
    mut sink: SplitSink<WebSocket, Message>,
    liveness: Arc<Liveness>,
) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        let output = matches!(message, Message::Binary(_) | Message::Text(_));
        let sent = if closing || queue.is_empty() {
            within_stall(sink.send(message)).await
        } else {
            within_stall(sink.feed(message)).await
        };
        match sent {
            Some(Ok(())) if !closing => {
                if output {
                    liveness.delivered();
                }
            }
            _ => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// The output task: owns the SSH read half and queues output frames. While the queue is full
/// it stops taking packets from russh, which is what carries backpressure to the shell.
async fn read_from_ssh(
    mut ssh_read: ChannelReadHalf,
    out: mpsc::Sender<Message>,
    liveness: Arc<Liveness>,
) -> Ended {
    let mut ended = Ended::default();
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
                liveness.active();
                let (frame, next) = coalesce(&mut ssh_read, &data);
                pending = next;
                crate::metrics::get().bytes_out.inc_by(frame.len() as u64);
                if out.send(Message::Binary(frame)).await.is_err() {
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
}

/// One WebSocket frame from the SSH output that is already waiting: `first` plus any data
/// packets russh has queued behind it, up to [`MAX_OUTPUT_FRAME`]. Never waits, so an
/// interactive keystroke echo goes out as soon as it arrives, while a bulk `cat` leaves in a few
/// large frames instead of one frame (and one client wake-up) per SSH packet. A non-data
/// message found on the way is handed back to be processed next, in order.
fn coalesce(ssh_read: &mut ChannelReadHalf, first: &[u8]) -> (Bytes, Option<ChannelMsg>) {
    let mut frame = BytesMut::with_capacity(first.len());
    frame.extend_from_slice(first);
    while frame.len() < MAX_OUTPUT_FRAME {
        match ssh_read.wait().now_or_never().flatten() {
            Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }) => {
                frame.extend_from_slice(&data);
            }
            other => return (frame.freeze(), other),
        }
    }
    (frame.freeze(), None)
}

/// The input task: owns the SSH write half, so a remote that stops reading its input cannot
/// stall the output side.
async fn write_to_ssh(mut queue: mpsc::Receiver<Input>, ssh_write: ChannelWriteHalf<Msg>) {
    while let Some(input) = queue.recv().await {
        let sent = match input {
            Input::Data(bytes) => {
                crate::metrics::get().bytes_in.inc_by(bytes.len() as u64);
                ssh_write.data(&bytes[..]).await
            }
            Input::Resize(cols, rows) => ssh_write.window_change(cols, rows, 0, 0).await,
        };
        if sent.is_err() {
            break;
        }
    }
}

/// What one client frame asks for: input for SSH, an answer for the client, or nothing.
enum Parsed {
    Input(Input),
    Answer(ServerEvent),
    Nothing,
    Closed,
}

fn parse(message: Message) -> Parsed {
    match message {
        Message::Binary(bytes) => Parsed::Input(Input::Data(bytes)),
        Message::Text(text) => match serde_json::from_str::<ClientEvent>(text.as_str()) {
            Ok(ClientEvent::Data { data } | ClientEvent::Input { data }) => {
                Parsed::Input(Input::Data(Bytes::from(data)))
            }
            Ok(ClientEvent::Resize { cols, rows })
                if (1..=MAX_COLS_ROWS).contains(&cols) && (1..=MAX_COLS_ROWS).contains(&rows) =>
            {
                Parsed::Input(Input::Resize(cols, rows))
            }
            Ok(ClientEvent::Resize { .. }) => Parsed::Answer(ServerEvent::error(
                "resize needs cols and rows between 1 and 1000",
            )),
            Ok(ClientEvent::Heartbeat) => Parsed::Nothing,
            Err(_) => Parsed::Answer(ServerEvent::error(
                "unrecognised message; expected {\"type\":\"data\"|\"input\"|\"resize\"|\"heartbeat\"}",
            )),
        },
        Message::Close(_) => Parsed::Closed,
        Message::Ping(_) | Message::Pong(_) => Parsed::Nothing,
    }
}

/// The event that tells the client how the shell ended, and the close code that follows it.
fn ending(ended: Ended) -> (ServerEvent, Close, &'static str) {
    match (ended.exit_status, ended.exit_signal) {
        (Some(code), _) => (
            ServerEvent::Exit {
                code: Some(code),
                signal: None,
            },
            Close::Normal,
            "remote shell exited",
        ),
        (None, Some(signal)) => (
            ServerEvent::Exit {
                code: None,
                signal: Some(signal),
            },
            Close::Normal,
            "remote shell killed by a signal",
        ),
        (None, None) => (
            ServerEvent::error("SSH connection closed"),
            Close::SshClosed,
            "ssh connection closed",
        ),
    }
}

/// The control loop: reads the WebSocket, forwards input, watches the shell, the clock and the
/// drain phase. Returns why the terminal ends.
async fn control(
    mut stream: SplitStream<WebSocket>,
    out: &mpsc::Sender<Message>,
    input: &mpsc::Sender<Input>,
    mut output: JoinHandle<Ended>,
    liveness: &Liveness,
    mut phase: watch::Receiver<Phase>,
) -> (Close, &'static str) {
    let mut tick = tokio::time::interval(liveness.tick_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Announce a drain that started before this terminal opened, once.
    let mut notified_drain = false;
    let end = loop {
        if let Phase::Draining { grace_secs } = *phase.borrow_and_update() {
            if !notified_drain {
                notified_drain = true;
                let _ = out.try_send(
                    ServerEvent::Shutdown {
                        message: "This relay is shutting down; the terminal will close soon".into(),
                        grace_secs,
                    }
                    .to_message(),
                );
            }
        }
        if matches!(*phase.borrow(), Phase::Closing) {
            break (Close::GoingAway, "relay shutting down");
        }
        tokio::select! {
            incoming = stream.next() => {
                liveness.heard();
                let Some(Ok(message)) = incoming else { break (Close::Normal, "client gone") };
                match parse(message) {
                    Parsed::Input(item) => {
                        if matches!(item, Input::Data(_)) {
                            liveness.active();
                        }
                        if input.send(item).await.is_err() {
                            break (Close::SshClosed, "ssh connection closed");
                        }
                    }
                    Parsed::Answer(event) => {
                        let _ = out.try_send(event.to_message());
                    }
                    Parsed::Nothing => {}
                    Parsed::Closed => break (Close::Normal, "client closed"),
                }
            }
            ended = &mut output => {
                let (event, close, reason) = ending(ended.unwrap_or_default());
                let _ = out.send(event.to_message()).await;
                break (close, reason);
            }
            _ = tick.tick() => match liveness.check() {
                Verdict::Idle => {
                    let _ = out.try_send(ServerEvent::error("Closed after the idle timeout").to_message());
                    break (Close::IdleTimeout, "idle timeout");
                }
                Verdict::Gone => break (Close::ClientUnresponsive, "client stopped answering pings"),
                Verdict::Ping => {
                    let _ = out.try_send(Message::Ping(Bytes::new()));
                }
                Verdict::Alive => {}
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    break (Close::GoingAway, "relay shutting down");
                }
            }
        }
    };
    output.abort();
    end
}
