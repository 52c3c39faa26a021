//! The recorder: one task per recorded terminal, fed by the pump through a bounded queue that
//! is only ever `try_send`-ed, so recording never sits on the keystroke or output path.
//!
//! Shape and ownership:
//! * [`begin`] runs in `connect`, after SSH is up and before the ticket is issued: it asks the
//!   domain to start the recording (fresh data key, metadata, the header chunk written), which
//!   is the probe `RECORDING=required` relies on. If it fails, a required session is refused
//!   (503 `recording_unavailable`) and SSH is closed; under `on` the session goes on
//!   unrecorded and the failure is in the audit log. The [`Recorder`] travels in the pending
//!   `Session` to the pump.
//! * The pump holds [`Tap`]s (cheap clones) in its output and input tasks and calls
//!   [`Tap::output`], [`Tap::input`], [`Tap::resize`] (and [`Tap::marker`] when the typist of
//!   a shared terminal changes): a timestamp and a `try_send`. A full
//!   queue (or more than [`QUEUE_BYTES`] waiting) drops the event and counts it; the recorder
//!   writes a gap marker where the drops happened.
//! * The recorder task owns the domain's `Writer`. It appends events to the writer's buffer
//!   (output within 10 ms coalesced into one event, escaped straight into the buffer) and
//!   seals a chunk at least every [`FLUSH_EVERY`] while anything is buffered (and sooner past
//!   `CHUNK_BYTES`), so a relay crash loses at most about a second. The chunk is written by a
//!   spawned task, one at a time, while the loop keeps taking events (up to [`MAX_PENDING`]
//!   buffered; past it the loop stops taking them until the write is done, and the queue's
//!   drops are marked). A failed write keeps the sealed chunk and writes it again at the next
//!   tick; past [`MAX_PENDING`] of new output meanwhile, the buffer is given up and marked as
//!   a gap. The task ends on [`Recorder::finish`] (the final chunk and
//!   metadata) or when every sender is gone (a pending session dropped unopened: finished the
//!   same way), so nothing outlives the terminal.
//! * The first failure of a recording (a storage error or dropped events) is written to the
//!   owner's audit log once (`recording_failed`) and, under `required`, signalled to the pump,
//!   which ends the session with 4020 and a message ([`Recorder::failed`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::DomainError;
use domain::Identity;
use domain::audit::{AuditContext, AuditKind, Auditor};
use domain::recording::{
    Chunk, Ending, Policy, RecordingId, Recordings, StorageError, Subject, Writer,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Events the queue holds.
const QUEUE_EVENTS: usize = 1024;
/// Output bytes the queue may hold (beside the event count). With [`MAX_PENDING`] and the
/// chunk in flight this is the recorder's memory per terminal, which every flooding terminal
/// may use at once: kept to a few MiB (a relay holds thousands of terminals), at the price of
/// gaps when bulk output outruns the recorder.
pub const QUEUE_BYTES: usize = 1024 * 1024;
/// A chunk is sealed and stored at least this often while anything is buffered.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Plaintext buffered while a chunk is being written (past it the recorder stops taking events)
/// or while storage fails (past it the buffer becomes a marked gap).
pub const MAX_PENDING: usize = 1024 * 1024;
/// How long the pump waits for the final chunk when the terminal ends.
const FINISH_WAIT: Duration = Duration::from_secs(8);

enum Event {
    Output(Instant, Bytes),
    Input(Instant, Bytes),
    Resize(Instant, u32, u32),
    Marker(Instant, String),
    Finish(Ending, oneshot::Sender<()>),
}

/// Counters shared by the taps and the task.
#[derive(Default)]
struct Queue {
    bytes: AtomicUsize,
    dropped_events: AtomicU64,
    dropped_bytes: AtomicU64,
}

/// Where the pump puts what it sees. A tap of an unrecorded terminal does nothing.
#[derive(Clone, Default)]
pub struct Tap {
    inner: Option<(mpsc::Sender<Event>, Arc<Queue>)>,
    record_input: bool,
}

impl Tap {
    fn offer(&self, event: Event, size: usize) {
        let Some((sender, queue)) = &self.inner else {
            return;
        };
        let over = queue.bytes.fetch_add(size, Ordering::Relaxed) + size > QUEUE_BYTES;
        if over || sender.try_send(event).is_err() {
            queue.bytes.fetch_sub(size, Ordering::Relaxed);
            queue.dropped_events.fetch_add(1, Ordering::Relaxed);
            queue
                .dropped_bytes
                .fetch_add(size as u64, Ordering::Relaxed);
            crate::metrics::get().recording_queue_drops.inc();
        }
    }

    /// Output as the client receives it.
    pub fn output(&self, frame: &Bytes) {
        self.offer(Event::Output(Instant::now(), frame.clone()), frame.len());
    }

    /// Keystrokes, only if the machine records input.
    pub fn input(&self, bytes: &Bytes) {
        if self.record_input {
            self.offer(Event::Input(Instant::now(), bytes.clone()), bytes.len());
        }
    }

    pub fn resize(&self, cols: u32, rows: u32) {
        self.offer(Event::Resize(Instant::now(), cols, rows), 0);
    }

    /// A labelled moment (an asciicast `m` event), recorded whether or not input is: who
    /// types from here on in a shared terminal.
    pub fn marker(&self, label: String) {
        let size = label.len();
        self.offer(Event::Marker(Instant::now(), label), size);
    }
}

/// A terminal's recording, as the pump holds it.
pub struct Recorder {
    tap: Tap,
    task: Option<JoinHandle<()>>,
    failed: watch::Receiver<bool>,
}

impl Recorder {
    /// No recording.
    pub fn off() -> Self {
        Self {
            tap: Tap::default(),
            task: None,
            failed: watch::channel(false).1,
        }
    }

    pub fn tap(&self) -> Tap {
        self.tap.clone()
    }

    /// Resolves when a required recording failed; never otherwise.
    pub async fn failed(&mut self) {
        let ended_without_failing = self.failed.wait_for(|failed| *failed).await.is_err();
        if ended_without_failing {
            // The task ended without failing: nothing more will come.
            std::future::pending::<()>().await;
        }
    }

    /// Write the final chunk and the metadata, waiting a bounded time.
    pub async fn finish(mut self, exit_status: Option<u32>) {
        let (Some((sender, _)), Some(task)) = (self.tap.inner.take(), self.task.take()) else {
            return;
        };
        let (done, flushed) = oneshot::channel();
        let ending = Ending { exit_status };
        if tokio::time::timeout(
            Duration::from_secs(1),
            sender.send(Event::Finish(ending, done)),
        )
        .await
        .is_ok()
        {
            let _ = tokio::time::timeout(FINISH_WAIT, flushed).await;
        }
        drop(sender);
        if !task.is_finished() {
            tracing::warn!("recording did not finish in time");
            task.abort();
        }
    }
}

/// Who and what a recording is for, for the audit log.
pub struct Context {
    pub auditor: Arc<Auditor>,
    /// Who opened the session: the audit log the recording's events go to.
    pub owner: Identity,
    /// Whose recordings this one is among: the session's user for their own machine, the
    /// organization (`org:<slug>`, the machine's owner) for an organization machine, so that
    /// the organization's auditors read it and the member cannot delete it
    /// (docs/organizations.md).
    pub keeper: Identity,
    pub client: AuditContext,
    pub machine_id: u64,
    pub machine_name: String,
    pub record_input: bool,
    pub size: (u32, u32),
}

impl Context {
    /// The organization whose recording this is (the keeper's slug): its audit log records
    /// the recording's events beside the user's.
    fn org(&self) -> Option<&str> {
        domain::vault::org_slug_of(&self.keeper.0)
    }
}

/// Start recording a terminal, as [`Recordings::begin`] and the policy decide: `Ok(Recorder)`
/// (possibly [`Recorder::off`]), or the error that refuses a required session.
pub async fn begin(
    recordings: Option<&Arc<Recordings>>,
    machine_recording: bool,
    context: Context,
) -> Result<Recorder, DomainError> {
    let Some(recordings) = recordings else {
        return Ok(Recorder::off());
    };
    let policy = recordings.policy();
    if !policy.records(machine_recording) {
        return Ok(Recorder::off());
    }
    let id = RecordingId::parse(&uuid::Uuid::new_v4().to_string())?;
    let subject = Subject {
        user: &context.owner.0,
        machine_id: context.machine_id,
        machine_name: &context.machine_name,
        record_input: context.record_input,
        cols: context.size.0,
        rows: context.size.1,
    };
    let writer = match recordings.begin(&context.keeper, id.clone(), subject).await {
        Ok(writer) => writer,
        Err(err) => {
            crate::metrics::get().recording_write_failures.inc();
            tracing::error!(error = %err, policy = policy.as_str(), "recording could not begin");
            let details = serde_json::json!({
                "machine_id": context.machine_id,
                "policy": policy.as_str(),
                "reason": "recording storage could not be written",
            });
            context
                .auditor
                .record_in(
                    &context.owner,
                    context.org(),
                    &context.client,
                    AuditKind::RecordingFailed,
                    details,
                )
                .await;
            return match policy {
                Policy::Required => Err(err),
                Policy::On | Policy::Off => Ok(Recorder::off()),
            };
        }
    };
    let details = serde_json::json!({
        "recording": id.as_str(),
        "machine_id": context.machine_id,
        "policy": policy.as_str(),
        "record_input": context.record_input,
        "org": context.org(),
    });
    context
        .auditor
        .record_in(
            &context.owner,
            context.org(),
            &context.client,
            AuditKind::RecordingStarted,
            details,
        )
        .await;
    tracing::info!(recording = id.as_str(), "recording started");
    let record_input = context.record_input;
    let (sender, events) = mpsc::channel(QUEUE_EVENTS);
    let queue = Arc::new(Queue::default());
    let (fail, failed) = watch::channel(false);
    let task = tokio::spawn(
        Task {
            writer,
            queue: Arc::clone(&queue),
            policy,
            context,
            fail,
            reported: AtomicBool::new(false),
            failing: false,
        }
        .run(events),
    );
    Ok(Recorder {
        tap: Tap {
            inner: Some((sender, queue)),
            record_input,
        },
        task: Some(task),
        failed,
    })
}

struct Task {
    writer: Writer,
    queue: Arc<Queue>,
    policy: Policy,
    context: Context,
    fail: watch::Sender<bool>,
    reported: AtomicBool,
    /// The last write failed: only the clock retries, not every event.
    failing: bool,
}

/// A chunk being written, beside the recorder's loop.
struct InFlight {
    chunk: Chunk,
    write: JoinHandle<Result<usize, StorageError>>,
}

impl Task {
    // A function returning an `async move` block, not an `async fn`: an `async fn` moves its
    // arguments (the whole task) into its body's locals, so its future, alive as long as the
    // session, would hold them twice.
    #[allow(clippy::manual_async_fn)]
    fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
    ) -> impl std::future::Future<Output = ()> + Send {
        async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut writing: Option<InFlight> = None;
            let ending = loop {
                // While a chunk is being written the buffer keeps filling, up to MAX_PENDING;
                // past it the queue is left to fill (and drop, marked) until the write is done.
                let accepting = writing.is_none() || self.writer.pending_bytes() <= MAX_PENDING;
                tokio::select! {
                    event = events.recv(), if accepting => match event {
                        Some(Event::Finish(ending, done)) => {
                            self.settle(writing.take()).await;
                            self.finish(ending).await;
                            let _ = done.send(());
                            return;
                        }
                        Some(event) => {
                            self.take(event);
                            // Drain what is already queued before deciding to write: fewer, larger
                            // chunks when output is heavy.
                            while let Ok(event) = events.try_recv() {
                                if let Event::Finish(ending, done) = event {
                                    self.settle(writing.take()).await;
                                    self.finish(ending).await;
                                    let _ = done.send(());
                                    return;
                                }
                                self.take(event);
                                if self.writer.pending_bytes() >= domain::recording::CHUNK_BYTES {
                                    break;
                                }
                            }
                            let pending = self.writer.pending_bytes();
                            if self.failing && pending > MAX_PENDING {
                                self.writer.abandon_pending(Instant::now());
                            } else if !self.failing
                                && writing.is_none()
                                && pending >= domain::recording::CHUNK_BYTES
                            {
                                writing = self.start_write();
                            }
                        }
                        None => break Ending::default(),
                    },
                    done = async { (&mut writing.as_mut()?.write).await.ok() }, if writing.is_some() => {
                        if let Some(in_flight) = writing.take() {
                            let result = done.unwrap_or_else(|| Err(StorageError("write task failed".into())));
                            self.written(in_flight.chunk, result);
                        }
                        // Heavy output: the next chunk is already waiting.
                        if !self.failing && self.writer.pending_bytes() >= domain::recording::CHUNK_BYTES {
                            writing = self.start_write();
                        }
                    }
                    _ = tick.tick() => {
                        self.mark_drops(Instant::now());
                        if writing.is_none() {
                            writing = self.start_write();
                        }
                    }
                }
            };
            self.settle(writing.take()).await;
            self.finish(ending).await;
        }
    }

    fn take(&mut self, event: Event) {
        let at = match &event {
            Event::Output(at, _)
            | Event::Input(at, _)
            | Event::Resize(at, _, _)
            | Event::Marker(at, _) => *at,
            Event::Finish(..) => Instant::now(),
        };
        self.mark_drops(at);
        match event {
            Event::Output(at, bytes) => {
                self.queue.bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
                self.writer.output(at, &bytes);
            }
            Event::Input(at, bytes) => {
                self.queue.bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
                self.writer.input(at, &bytes);
            }
            Event::Resize(at, cols, rows) => self.writer.resize(at, cols, rows),
            Event::Marker(at, label) => {
                self.queue.bytes.fetch_sub(label.len(), Ordering::Relaxed);
                self.writer.marker(at, &label);
            }
            Event::Finish(..) => {}
        }
    }

    /// Drops since the last event become one gap marker, placed before the event that
    /// follows them.
    fn mark_drops(&mut self, at: Instant) {
        let events = self.queue.dropped_events.swap(0, Ordering::Relaxed);
        if events == 0 {
            return;
        }
        let bytes = self.queue.dropped_bytes.swap(0, Ordering::Relaxed);
        self.writer.gap(
            at,
            &format!("{events} events ({bytes} bytes) not recorded: the recorder fell behind"),
        );
        self.report("the recorder fell behind; events were dropped");
    }

    /// Seal the next chunk (or the one whose write failed) and start writing it.
    fn start_write(&mut self) -> Option<InFlight> {
        let chunk = self.writer.seal_chunk()?;
        let write = tokio::spawn(chunk.store(self.writer.store()));
        Some(InFlight { chunk, write })
    }

    fn written(&mut self, chunk: Chunk, result: Result<usize, StorageError>) {
        self.failing = result.is_err();
        match result {
            Ok(written) => {
                self.writer.stored(chunk);
                crate::metrics::get().recording_bytes.inc_by(written as u64);
            }
            Err(err) => {
                self.writer.not_stored(chunk);
                crate::metrics::get().recording_write_failures.inc();
                tracing::warn!(error = %err, pending = self.writer.pending_bytes(), "recording chunk not written");
                if self.writer.pending_bytes() > MAX_PENDING {
                    self.writer.abandon_pending(Instant::now());
                }
                self.report("recording storage could not be written");
            }
        }
    }

    /// Wait for a chunk write in flight (itself bounded by the storage call timeout).
    async fn settle(&mut self, writing: Option<InFlight>) {
        if let Some(in_flight) = writing {
            let result = in_flight
                .write
                .await
                .unwrap_or_else(|_| Err(StorageError("write task failed".into())));
            self.written(in_flight.chunk, result);
        }
    }

    async fn finish(&mut self, ending: Ending) {
        self.mark_drops(Instant::now());
        match self.writer.finish(ending).await {
            Ok(written) => {
                crate::metrics::get().recording_bytes.inc_by(written as u64);
                tracing::info!(
                    recording = self.writer.id().as_str(),
                    gaps = self.writer.gaps(),
                    "recording finished"
                );
            }
            Err(err) => {
                crate::metrics::get().recording_write_failures.inc();
                tracing::error!(error = %err, recording = self.writer.id().as_str(), "recording's final chunk not written");
                self.report("the recording's final chunk could not be written");
            }
        }
    }

    /// The first failure of this recording: audit it once; under `required`, end the session.
    fn report(&self, reason: &'static str) {
        if self.policy == Policy::Required {
            self.fail.send_replace(true);
        }
        if self.reported.swap(true, Ordering::Relaxed) {
            return;
        }
        let auditor = Arc::clone(&self.context.auditor);
        let owner = self.context.owner.clone();
        let org = self.context.org().map(str::to_owned);
        let client = self.context.client.clone();
        let details = serde_json::json!({
            "recording": self.writer.id().as_str(),
            "machine_id": self.context.machine_id,
            "policy": self.policy.as_str(),
            "reason": reason,
        });
        // Off the recorder's path: the audit write has its own bounds.
        tokio::spawn(async move {
            auditor
                .record_in(
                    &owner,
                    org.as_deref(),
                    &client,
                    AuditKind::RecordingFailed,
                    details,
                )
                .await;
        });
    }
}
