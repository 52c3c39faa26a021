//! The terminal pump: bytes between an SSH channel and the WebSocket attached to it, for the
//! session's life — which is longer than any one WebSocket's.
//!
//! Per terminal, for its whole life:
//! * the *output* task owns the SSH read half. Each output frame goes into the terminal's
//!   [`Ring`] (kept until the client acknowledges it, so a resume can replay it) and, while a
//!   client is attached, onto that attachment's bounded queue. While that queue is full the
//!   task stops taking packets from russh, whose bounded buffer then fills, so russh stops
//!   reading the socket and the target's SSH and TCP windows close: backpressure reaches the
//!   shell. The ring is also a window: once a client that acks has `RESUME_BUFFER_BYTES`
//!   unacknowledged, the task waits for an ack, attached or parked, so a parked terminal loses
//!   nothing (its shell waits). Only the relay-wide ring budget drops output, counted and
//!   reported to the next resume;
//! * the *input* task owns the SSH write half, so a remote that stops reading its input cannot
//!   stall the output side;
//! * the *supervisor* (this function, on the task of the WebSocket that opened the terminal)
//!   reads the attached WebSocket, counts keystroke bytes, takes acknowledgements, watches the
//!   clock (keepalive, idle) and the drain phase, and decides the terminal's fate.
//!
//! Per attachment, a *writer* task owns the WebSocket sink: it first sends the preamble (the
//! `session` or `resumed` event and, on a resume, the replayed output), then what the output
//! task queues, flushing only when nothing else waits.
//!
//! A client that leaves without an explicit close (a close frame with 1000 or no code) — network loss, a page
//! reload, a keepalive that goes unanswered — *detaches*: the terminal parks for the resume
//! grace, its SSH session and slot kept. A resuming socket arrives on the terminal's attach
//! channel (from [`super::resume`]); the ring is replayed from the client's offset under the
//! same lock the output task appends under, so nothing is lost or repeated between the replay
//! and the live output. A second socket takes over from the first (closed with 4013).
//! Keystrokes are counted as they are read, and the count goes out in `resumed`, so the client
//! resends exactly what the relay never read.
//!
//! Whatever ends the terminal (explicit close, shell exit, idle, the grace running out, drain,
//! error), the supervisor closes the attached socket, aborts the tasks, deletes the route and
//! disconnects SSH within a few seconds, so nothing outlives it.
//!
//! A terminal on an organization machine also ends when its user loses access to the
//! organization (`crate::org_access` signals it; 4021, its viewers too).
//!
//! Recording (`crate::recording`) is fed by three hook calls (`tap.output`, `tap.input`,
//! `tap.resize`), plus `tap.marker` when a shared terminal's typist changes, each a `try_send`
//! that never waits; under `RECORDING=required` a failed
//! recording ends the terminal like any other reason (4020).
//!
//! Bytes each way and the open terminal are counted on the relay's pre-made metric handles
//! (`crate::metrics`): an atomic add per frame.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::liveness::{Liveness, Verdict, within_stall};
use super::protocol::{
    ClientEvent, Close, MAX_COLS_ROWS, MAX_OUTPUT_FRAME, ServerEvent, close_message,
};
use super::resume::{Attach, Credentials, RouteKeeper, Terminals};
use super::ring::{Budget, Ring};
use super::share::{self, Mirror, ShareEvent, Sharing};
use domain::Identity;
use domain::audit::{AuditContext, AuditKind, Auditor};

use crate::drain::Phase;
use crate::recording::{Recorder, Tap};
use crate::sessions::Session;
use crate::ssh;

const OUTBOUND_QUEUE: usize = 16;
const INPUT_QUEUE: usize = 32;

/// What a terminal needs to know about its limits.
#[derive(Clone, Copy, Debug)]
pub struct PumpSettings {
    /// WebSocket ping interval; three silent intervals detach the client (4009).
    pub keepalive: Duration,
    /// No keystroke and no output for this long closes the terminal (4008).
    pub idle_timeout: Duration,
    /// How long a detached terminal waits for a resume; zero ends it when its client leaves.
    pub resume_grace: Duration,
    /// The most unacknowledged output one terminal keeps for a resume.
    pub ring_bytes: usize,
}

/// What makes a terminal resumable: its credentials, where resuming sockets arrive, the
/// registry it is in, its route, and the relay-wide ring budget.
pub struct Resumable {
    pub credentials: Credentials,
    pub attach: mpsc::Receiver<Attach>,
    pub terminals: Arc<Terminals>,
    pub route: RouteKeeper,
    pub budget: Arc<Budget>,
    pub audit: SessionAudit,
    /// This relay's shares, which the terminal's own are registered in.
    pub shares: Arc<share::Shares>,
    /// On an organization machine: resolves when its user lost access (`crate::org_access`).
    pub access: Option<crate::org_access::Watch>,
}

/// Where the terminal's events go: its owner's audit log and, on an organization's machine,
/// the organization's too.
pub struct SessionAudit {
    pub auditor: Arc<Auditor>,
    pub owner: Identity,
    pub context: AuditContext,
    pub machine_id: u64,
    /// The organization (slug) whose machine it is.
    pub org: Option<String>,
}

impl SessionAudit {
    pub async fn record(&self, kind: AuditKind, details: serde_json::Value) {
        let record = self.auditor.record_in(
            &self.owner,
            self.org.as_deref(),
            &self.context,
            kind,
            details,
        );
        if tokio::time::timeout(Duration::from_secs(5), record)
            .await
            .is_err()
        {
            tracing::error!(kind = kind.as_str(), "audit entry timed out");
        }
    }
}

/// Keystrokes and resizes on their way to the SSH channel.
pub enum Input {
    /// The owner's keystrokes.
    Data(Bytes),
    /// A control viewer's keystrokes, named so that the recording says who typed.
    Viewer(Arc<str>, Bytes),
    Resize(u32, u32),
}

/// How the SSH side ended.
#[derive(Clone, Default)]
struct Ended {
    exit_status: Option<u32>,
    exit_signal: Option<String>,
}

/// Shared by the output task and the supervisor: the ring, and where live output goes.
pub struct Outlet {
    pub ring: Ring,
    /// The attached client's queue, if one is attached.
    live: Option<mpsc::Sender<Message>>,
    /// While the terminal is shared: the viewers' screen and queues (see [`share`]).
    pub mirror: Option<Box<Mirror>>,
}

/// The outlet, and the signal that an ack made room in a full window.
pub struct Shared {
    pub outlet: Mutex<Outlet>,
    room: Notify,
}

type SharedOutlet = Arc<Shared>;

/// How a socket attaches: the terminal's first, greeted with its `session` event, or a
/// resume from an output offset.
enum Opening {
    Fresh(Message),
    Resume(u64),
}

/// One WebSocket attached to the terminal.
struct Attachment {
    stream: SplitStream<WebSocket>,
    out: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
    /// Whether this client has been told about a drain.
    told_drain: bool,
}

/// Run one terminal until it ends, then tear everything down.
pub async fn run(
    settings: PumpSettings,
    phase: watch::Receiver<Phase>,
    socket: WebSocket,
    session: Session,
    resumable: Resumable,
) {
    let Session {
        handle,
        channel,
        slot,
        persistent,
        recorder,
        ..
    } = session;
    let Resumable {
        credentials,
        attach,
        terminals,
        route,
        budget,
        audit,
        shares,
        access,
    } = resumable;
    let audit = Arc::new(audit);
    let session_id = credentials.id.to_string();
    tracing::info!(session = %credentials.id, "terminal opened");
    let started = Instant::now();
    let _open = crate::metrics::get().terminal_opened();
    let (ssh_read, ssh_write) = channel.split();
    let liveness = Arc::new(Liveness::new(
        settings.keepalive,
        Some(settings.idle_timeout),
    ));
    let outlet = Arc::new(Shared {
        outlet: Mutex::new(Outlet {
            ring: Ring::new(settings.ring_bytes, budget),
            live: None,
            mirror: None,
        }),
        room: Notify::new(),
    });
    let (in_tx, in_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let output = tokio::spawn(read_from_ssh(
        ssh_read,
        Arc::clone(&outlet),
        Arc::clone(&liveness),
        recorder.tap(),
    ));
    let input = tokio::spawn(write_to_ssh(
        in_rx,
        ssh_write,
        recorder.tap(),
        Arc::from(audit.owner.0.as_str()),
    ));
    let keeper = route.clone();
    tokio::spawn(async move { keeper.publish().await });
    let started_audit = Arc::clone(&audit);
    let details = serde_json::json!({ "session": session_id, "machine_id": audit.machine_id });
    tokio::spawn(async move {
        started_audit
            .record(AuditKind::SessionStarted, details)
            .await;
    });

    let greeting = ServerEvent::Session {
        id: credentials.id.to_string(),
        secret: credentials.secret.to_string(),
        grace_secs: settings.resume_grace.as_secs(),
        persistent,
    }
    .to_message();
    let sharing = Sharing::new(
        shares,
        route.clone(),
        Arc::clone(&audit),
        in_tx.clone(),
        settings.keepalive,
    );
    let mut terminal = Terminal {
        settings,
        outlet,
        sharing,
        input: in_tx,
        liveness,
        keystrokes: 0,
        attached: None,
        exit: None,
        recorder,
        access,
    };
    if terminal
        .attach(Box::new(socket), Opening::Fresh(greeting), &phase)
        .is_err()
    {
        tracing::error!("terminal could not attach its first socket");
    }
    let (close, reason) = terminal.supervise(output, attach, phase, &route).await;
    let exit = terminal.exit.take();

    // Teardown, bounded: no more resumes, stop writing to SSH, tell the client, close SSH.
    terminals.remove(credentials.id);
    let last = exit.clone().map(|ended| ending(ended).0.to_message());
    terminal.sharing.end(last, close, reason).await;
    input.abort();
    terminal.detach(Some((close, reason))).await;
    ssh::disconnect(&handle).await;
    drop(handle);
    let _ = tokio::time::timeout(Duration::from_secs(2), route.forget()).await;
    // The final chunk is written before the slot is released, so a drain waits for it.
    std::mem::replace(&mut terminal.recorder, Recorder::off())
        .finish(exit.as_ref().and_then(|e| e.exit_status))
        .await;
    drop(slot);
    let bytes_out = terminal
        .outlet
        .outlet
        .lock()
        .map(|outlet| outlet.ring.end())
        .unwrap_or(0);
    audit
        .record(
            AuditKind::SessionEnded,
            serde_json::json!({
                "session": session_id,
                "machine_id": audit.machine_id,
                "bytes_in": terminal.keystrokes,
                "bytes_out": bytes_out,
                "exit_code": exit.as_ref().and_then(|e| e.exit_status),
                "signal": exit.as_ref().and_then(|e| e.exit_signal.clone()),
                "close_code": close.code(),
                "duration_secs": started.elapsed().as_secs(),
            }),
        )
        .await;
    tracing::info!(
        session = %credentials.id,
        code = close.code(),
        reason,
        duration_secs = started.elapsed().as_secs(),
        "terminal closed"
    );
}

/// What happened, for the supervisor to act on.
enum Event {
    Frame(Option<Result<Message, axum::Error>>),
    Attach(Option<Attach>),
    Ended(Ended),
    Tick,
    GraceOver,
    PhaseChanged(bool),
    Refresh,
    Share(ShareEvent),
    RecordingFailed,
    AccessRevoked,
}

struct Terminal {
    settings: PumpSettings,
    outlet: SharedOutlet,
    /// Its shares and viewers.
    sharing: Sharing,
    input: mpsc::Sender<Input>,
    liveness: Arc<Liveness>,
    /// Keystroke bytes read from clients so far (what `resumed` reports as `input_offset`).
    keystrokes: u64,
    attached: Option<Attachment>,
    /// How the shell ended, when it did.
    exit: Option<Ended>,
    /// The terminal's recording; its failure ends a required-recording terminal.
    recorder: Recorder,
    /// Its user's access to an organization machine, when it is one; revoked ends it.
    access: Option<crate::org_access::Watch>,
}

/// What the supervisor does after handling one event.
enum Next {
    Continue,
    /// The client left without ending the session.
    Detach(Option<(Close, &'static str)>),
    End(Close, &'static str),
}

impl Terminal {
    /// The supervisor loop: returns why the terminal ends.
    async fn supervise(
        &mut self,
        mut output: JoinHandle<Ended>,
        mut attach: mpsc::Receiver<Attach>,
        mut phase: watch::Receiver<Phase>,
        route: &RouteKeeper,
    ) -> (Close, &'static str) {
        let mut tick = tokio::time::interval(self.liveness.tick_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(route.refresh_every());
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        let mut parked_until: Option<tokio::time::Instant> = None;
        let mut parked = None;
        let end = loop {
            self.tell_drain(&phase);
            if matches!(*phase.borrow(), Phase::Closing) {
                break (Close::GoingAway, "relay shutting down");
            }
            let event = match (self.attached.as_mut(), parked_until) {
                (Some(attachment), _) => tokio::select! {
                    frame = attachment.stream.next() => Event::Frame(frame),
                    request = attach.recv() => Event::Attach(request),
                    ended = &mut output => Event::Ended(ended.unwrap_or_default()),
                    _ = tick.tick() => Event::Tick,
                    changed = phase.changed() => Event::PhaseChanged(changed.is_ok()),
                    _ = refresh.tick() => Event::Refresh,
                    event = self.sharing.next() => Event::Share(event),
                    () = self.recorder.failed() => Event::RecordingFailed,
                    () = crate::org_access::revoked(&mut self.access) => Event::AccessRevoked,
                },
                (None, deadline) => {
                    let deadline = deadline.unwrap_or_else(tokio::time::Instant::now);
                    tokio::select! {
                        request = attach.recv() => Event::Attach(request),
                        ended = &mut output => Event::Ended(ended.unwrap_or_default()),
                        () = tokio::time::sleep_until(deadline) => Event::GraceOver,
                        changed = phase.changed() => Event::PhaseChanged(changed.is_ok()),
                        _ = refresh.tick() => Event::Refresh,
                        event = self.sharing.next() => Event::Share(event),
                        () = self.recorder.failed() => Event::RecordingFailed,
                        () = crate::org_access::revoked(&mut self.access) => Event::AccessRevoked,
                    }
                }
            };
            let next = match event {
                Event::Frame(frame) => self.on_frame(frame).await,
                Event::Attach(Some(Attach { socket, offset })) => {
                    if self.attached.is_some() {
                        self.detach(Some((Close::TakenOver, "resumed elsewhere")))
                            .await;
                    }
                    self.resume(socket, offset, &phase).await;
                    if self.attached.is_some() {
                        parked_until = None;
                        parked = None;
                        self.sharing.greet(self.attached.as_ref().map(|a| &a.out));
                    }
                    Next::Continue
                }
                // The registry holds the sender until this terminal ends: cannot happen.
                Event::Attach(None) => Next::End(Close::Normal, "terminal unregistered"),
                Event::Ended(ended) => {
                    self.exit = Some(ended.clone());
                    let (event, close, reason) = ending(ended);
                    if let Some(attachment) = &self.attached {
                        let _ = attachment.out.send(event.to_message()).await;
                    }
                    Next::End(close, reason)
                }
                Event::Tick => match self.liveness.check() {
                    Verdict::Idle => {
                        self.say(ServerEvent::error("Closed after the idle timeout"));
                        Next::End(Close::IdleTimeout, "idle timeout")
                    }
                    Verdict::Gone => Next::Detach(Some((
                        Close::ClientUnresponsive,
                        "client stopped answering pings",
                    ))),
                    Verdict::Ping => {
                        if let Some(attachment) = &self.attached {
                            let _ = attachment.out.try_send(Message::Ping(Bytes::new()));
                        }
                        Next::Continue
                    }
                    Verdict::Alive => Next::Continue,
                },
                Event::GraceOver => Next::End(Close::SessionGone, "resume grace expired"),
                Event::RecordingFailed => {
                    self.say(ServerEvent::error(
                        "Recording failed and this deployment requires it: the session ends",
                    ));
                    Next::End(Close::RecordingFailed, "recording failed")
                }
                Event::AccessRevoked => {
                    self.say(ServerEvent::error(
                        "Your access to this organization was removed: the session ends",
                    ));
                    Next::End(Close::AccessRevoked, "organization access removed")
                }
                Event::PhaseChanged(true) => Next::Continue,
                Event::PhaseChanged(false) => Next::End(Close::GoingAway, "relay shutting down"),
                Event::Refresh => {
                    let route = route.clone();
                    tokio::spawn(async move { route.publish().await });
                    self.sharing.refresh();
                    Next::Continue
                }
                Event::Share(event) => {
                    let owner = self.attached.as_ref().map(|a| &a.out);
                    self.sharing.handle(event, owner, &self.outlet).await;
                    Next::Continue
                }
            };
            match next {
                Next::Continue => {}
                Next::End(close, reason) => break (close, reason),
                Next::Detach(close) => {
                    self.detach(close).await;
                    if self.settings.resume_grace.is_zero() {
                        break (Close::Normal, "client gone");
                    }
                    tracing::info!(
                        grace_secs = self.settings.resume_grace.as_secs(),
                        "client left; terminal parked for a resume"
                    );
                    parked_until = Some(tokio::time::Instant::now() + self.settings.resume_grace);
                    parked = Some(crate::metrics::get().terminal_detached());
                }
            }
        };
        output.abort();
        drop(parked);
        end
    }

    /// One frame (or the end) of the attached socket.
    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Next {
        self.liveness.heard();
        let Some(Ok(message)) = frame else {
            return Next::Detach(None);
        };
        match parse(message) {
            Parsed::Input(item) => {
                match &item {
                    Input::Data(bytes) => {
                        self.keystrokes += bytes.len() as u64;
                        self.liveness.active();
                    }
                    Input::Resize(cols, rows) => self.sharing.resize(*cols, *rows, &self.outlet),
                    Input::Viewer(..) => {}
                }
                if self.input.send(item).await.is_err() {
                    return Next::End(Close::SshClosed, "ssh connection closed");
                }
            }
            Parsed::Ack(offset) => {
                if let Ok(mut outlet) = self.outlet.outlet.lock() {
                    outlet.ring.ack(offset);
                }
                self.outlet.room.notify_one();
            }
            Parsed::Answer(event) => self.say(event),
            Parsed::Share(request) => {
                let owner = self.attached.as_ref().map(|a| &a.out);
                self.sharing.request(request, owner, &self.outlet).await;
            }
            Parsed::Nothing => {}
            Parsed::Ended => return Next::End(Close::Normal, "client closed"),
            Parsed::Left => return Next::Detach(None),
        }
        Next::Continue
    }

    /// Queue an event for the attached client, if any, without waiting.
    fn say(&self, event: ServerEvent) {
        if let Some(attachment) = &self.attached {
            let _ = attachment.out.try_send(event.to_message());
        }
    }

    /// Tell the attached client once that the relay is draining.
    fn tell_drain(&mut self, phase: &watch::Receiver<Phase>) {
        let Phase::Draining { grace_secs } = *phase.borrow() else {
            return;
        };
        if let Some(attachment) = self.attached.as_mut() {
            if !attachment.told_drain {
                attachment.told_drain = true;
                let _ = attachment.out.try_send(
                    ServerEvent::Shutdown {
                        message: "This relay is shutting down; the terminal will close soon".into(),
                        grace_secs,
                    }
                    .to_message(),
                );
            }
        }
    }

    /// Attach a resuming socket whose client has received `offset` output bytes; a client
    /// claiming more output than the session produced is refused (4012) and the terminal stays
    /// as it was.
    async fn resume(
        &mut self,
        socket: Box<WebSocket>,
        offset: u64,
        phase: &watch::Receiver<Phase>,
    ) {
        if let Err(mut socket) = self.attach(socket, Opening::Resume(offset), phase) {
            tracing::warn!(offset, "resume refused: offset beyond the session's output");
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.send(close_message(
                    Close::SessionGone,
                    "offset beyond the output",
                )),
            )
            .await;
        }
    }

    /// Make `socket` the attached client. For a resume, the replay is taken from the ring and
    /// the live queue installed under one lock — the lock the output task appends under — so
    /// every frame is either in the replay or goes to the new queue, never both or neither.
    fn attach(
        &mut self,
        socket: Box<WebSocket>,
        opening: Opening,
        phase: &watch::Receiver<Phase>,
    ) -> Result<(), Box<WebSocket>> {
        let (out, queue) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
        let preamble = {
            let Ok(mut outlet) = self.outlet.outlet.lock() else {
                return Err(socket);
            };
            let preamble = match opening {
                // Output that arrived before the first socket was attached (the login banner,
                // the first prompt) is in the ring: it follows the greeting.
                Opening::Fresh(greeting) => {
                    let mut preamble = vec![greeting];
                    if let Ok(replay) = outlet.ring.replay_from(0) {
                        preamble.extend(replay.frames.into_iter().map(Message::Binary));
                    }
                    preamble
                }
                Opening::Resume(offset) => {
                    let Ok(replay) = outlet.ring.replay_from(offset) else {
                        return Err(socket);
                    };
                    if replay.dropped > 0 {
                        tracing::warn!(
                            dropped = replay.dropped,
                            "resume: output lost to the ring bound"
                        );
                    }
                    tracing::info!(offset = replay.from, "terminal resumed");
                    let mut preamble = Vec::with_capacity(replay.frames.len() + 1);
                    preamble.push(
                        ServerEvent::Resumed {
                            offset: replay.from,
                            dropped: replay.dropped,
                            input_offset: self.keystrokes,
                        }
                        .to_message(),
                    );
                    preamble.extend(replay.frames.into_iter().map(Message::Binary));
                    preamble
                }
            };
            outlet.live = Some(out.clone());
            preamble
        };
        let (sink, stream) = (*socket).split();
        self.liveness.heard();
        self.liveness.delivered();
        let writer = tokio::spawn(write_to_client(
            preamble,
            queue,
            sink,
            Arc::clone(&self.liveness),
        ));
        self.attached = Some(Attachment {
            stream,
            out,
            writer,
            told_drain: false,
        });
        self.tell_drain(phase);
        Ok(())
    }

    /// Let go of the attached client, with a close frame if `close` says so.
    async fn detach(&mut self, close: Option<(Close, &'static str)>) {
        let Some(attachment) = self.attached.take() else {
            return;
        };
        if let Ok(mut outlet) = self.outlet.outlet.lock() {
            outlet.live = None;
        }
        let Attachment {
            out, mut writer, ..
        } = attachment;
        if let Some((code, reason)) = close {
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                out.send(close_message(code, reason)),
            )
            .await;
        }
        drop(out);
        if tokio::time::timeout(Duration::from_secs(1), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
}

/// The writer task: owns the WebSocket sink; sends the preamble, then what the others queue.
/// It flushes only when nothing else is waiting: one socket write for a burst of output, and
/// no added delay for a lone keystroke echo. Ends when the queue closes, a close frame went
/// out, or the client stopped accepting frames.
async fn write_to_client(
    preamble: Vec<Message>,
    mut queue: mpsc::Receiver<Message>,
    mut sink: SplitSink<WebSocket, Message>,
    liveness: Arc<Liveness>,
) {
    let replaying = !preamble.is_empty();
    for message in preamble {
        if !matches!(within_stall(sink.feed(message)).await, Some(Ok(()))) {
            return;
        }
    }
    if replaying && !matches!(within_stall(sink.flush()).await, Some(Ok(()))) {
        return;
    }
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

/// The output task: owns the SSH read half; puts each frame in the ring and on the attached
/// client's queue. While that queue is full it stops taking packets from russh, which is what
/// carries backpressure to the shell; with nobody attached only the ring's bound applies.
async fn read_from_ssh(
    mut ssh_read: ChannelReadHalf,
    outlet: SharedOutlet,
    liveness: Arc<Liveness>,
    tap: Tap,
) -> Ended {
    let mut ended = Ended::default();
    let mut pending = None;
    loop {
        wait_for_room(&outlet).await;
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
                tap.output(&frame);
                let live = match outlet.outlet.lock() {
                    Ok(mut outlet) => {
                        outlet.ring.push(frame.clone());
                        if let Some(mirror) = outlet.mirror.as_mut() {
                            mirror.output(&frame);
                        }
                        outlet.live.clone()
                    }
                    Err(_) => break,
                };
                if let Some(live) = live {
                    // A failed send means the client detached; the frame is in the ring.
                    let _ = live.send(Message::Binary(frame)).await;
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

/// Wait while the client's window is full (see [`Ring::full`]). An ack stores a permit in
/// `room` even when nobody waits, so one arriving between the check and the wait is not missed.
async fn wait_for_room(shared: &Shared) {
    loop {
        let full = shared
            .outlet
            .lock()
            .map(|outlet| outlet.ring.full())
            .unwrap_or(false);
        if !full {
            return;
        }
        shared.room.notified().await;
    }
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
///
/// It also knows who typed last: when the typist changes (a control viewer types, then the
/// owner again), the recording gets a marker naming the new typist (`input: <who>`) before
/// their keystrokes, whether or not the keystrokes themselves are recorded. The owner is the
/// implicit typist until a viewer types, so an unshared terminal's recording has no markers.
async fn write_to_ssh(
    mut queue: mpsc::Receiver<Input>,
    ssh_write: ChannelWriteHalf<Msg>,
    tap: Tap,
    owner: Arc<str>,
) {
    // The viewer who typed last; `None` while it is the owner.
    let mut typist: Option<Arc<str>> = None;
    while let Some(input) = queue.recv().await {
        let sent = match input {
            Input::Data(bytes) => {
                if typist.take().is_some() {
                    tap.marker(typist_marker(&owner));
                }
                crate::metrics::get().bytes_in.inc_by(bytes.len() as u64);
                tap.input(&bytes);
                ssh_write.data(&bytes[..]).await
            }
            Input::Viewer(who, bytes) => {
                if typist.as_deref() != Some(&*who) {
                    tap.marker(typist_marker(&who));
                    typist = Some(who);
                }
                crate::metrics::get().bytes_in.inc_by(bytes.len() as u64);
                tap.input(&bytes);
                ssh_write.data(&bytes[..]).await
            }
            Input::Resize(cols, rows) => {
                tap.resize(cols, rows);
                ssh_write.window_change(cols, rows, 0, 0).await
            }
        };
        if sent.is_err() {
            break;
        }
    }
}

/// The recording's marker naming who types from here on.
pub fn typist_marker(who: &str) -> String {
    format!("{TYPIST_MARKER_PREFIX}{who}")
}

/// How a typist marker's label begins (`input: bob@example.com`).
pub const TYPIST_MARKER_PREFIX: &str = "input: ";

/// What one client frame asks for.
enum Parsed {
    Input(Input),
    Ack(u64),
    Answer(ServerEvent),
    /// A sharing request from the owner.
    Share(share::Request),
    Nothing,
    /// An explicit end: a close frame with no code or with 1000.
    Ended,
    /// Any other close: the client is leaving, the session parks.
    Left,
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
            Ok(ClientEvent::Ack { offset }) => Parsed::Ack(offset),
            Ok(ClientEvent::Ping { id }) => Parsed::Answer(ServerEvent::Pong { id }),
            Ok(ClientEvent::Heartbeat) => Parsed::Nothing,
            Ok(ClientEvent::Resume { .. }) => Parsed::Answer(ServerEvent::error(
                "already attached; resume is only a first frame",
            )),
            Ok(ClientEvent::Join { .. }) => Parsed::Answer(ServerEvent::error(
                "join is only the first frame of a share's socket",
            )),
            Ok(event) => match share::Request::parse(event) {
                Some(request) => Parsed::Share(request),
                None => Parsed::Nothing,
            },
            Err(_) => Parsed::Answer(ServerEvent::error(
                "unrecognised message; expected {\"type\":\"data\"|\"input\"|\"resize\"|\"heartbeat\"|\"ack\"|\"ping\"}",
            )),
        },
        // An explicit end: `close()` with no code or with 1000. A page being unloaded closes
        // with 1001, which parks like a lost connection: a reload comes back.
        Message::Close(None | Some(CloseFrame { code: 1000, .. })) => Parsed::Ended,
        Message::Close(_) => Parsed::Left,
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
