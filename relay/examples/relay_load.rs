//! Relay load, soak and fault tool: thousands of concurrent terminals across two relays sharing
//! one Redis, some typing (every echoed byte checked, echo latency measured), some streaming
//! (64 KiB chunks echoed back, every byte checked, acknowledged as the resume protocol asks),
//! the rest idle, for minutes; during the run it restarts Redis, ends a sample of shells on the
//! target and SIGKILLs one relay, and times how the rest recovers. Not a test: it prints figures
//! for `docs/relay-benchmark.md` and exits non-zero if a byte was lost or corrupted.
//!
//! Loopback only, bounded in sessions and time; it starts a private redis-server on a free port
//! (so that it may restart it; the shared test Redis must stay up) and two release relays, and
//! ends exactly those, by pid, when it finishes. The terminals go to an in-process russh echo
//! server (`common::Echo`). Needs the test services' environment for the relay world
//! (`eval "$(localstack/services.sh env)"`) and enough file descriptors (two per terminal in this
//! process, two or three per terminal in each relay, which inherit the limit):
//!
//! ```text
//! cargo build --release -p relay --bins --examples
//! ulimit -n 20000
//! target/release/examples/relay_load [--sessions 5000] [--minutes 10] [--typers 200]
//!     [--streamers 50] [--exits 20] [--stream-pause-ms 100] [--concurrency 16]
//! # --minutes takes a fraction too (0.5)
//! target/release/examples/relay_load --minutes 1 --sessions 500     # quick mode
//! ```
//!
//! Terminal `i` connects through relay `i % 2` (its owner, which holds its SSH session) and
//! opens its WebSocket on relay `(i / 2) % 2`, so half are forwarded. Faults, at fixed fractions
//! of the run: Redis restart at 20 % (SIGKILL, 3 s down, started again empty on the same port;
//! connects are probed during the outage and timed until they work again), shells ended on the
//! target at 45 % (the exit sample types [`EXIT_SEQUENCE`]; expected: `exit` 0, close 1000),
//! relay B SIGKILLed at 65 %. After the kill, a terminal whose socket was on B but whose SSH is
//! on A resumes on A (`/ssh?session=`, offset = output received, keystrokes the relay had not
//! read sent again) and is checked byte for byte like the others; a terminal whose SSH was on B
//! records its close code (4011 when A forwarded it, 1006 when its socket was on B) and, for a
//! sample of [`DOOMED_PROBES`], what a resume on A answers. Terminals with both ends on A must
//! not notice anything.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    EXIT_SEQUENCE, arg, cpu_secs, relay_bin, relay_env, rss_kib, start_echo_server, summary,
};
use serde_json::json;
use testkit::redis::PrivateRedis;
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld};
use testkit::ws::{Frame, Terminal};
use tokio::sync::watch;

const NO_RELAY: usize = usize::MAX;
const CHUNK: usize = 64 * 1024;
/// How long Redis stays down in the restart fault.
const REDIS_DOWN: Duration = Duration::from_secs(3);
/// How many terminals whose SSH died with the killed relay try a resume anyway, to see it
/// refused with a close code rather than hang.
const DOOMED_PROBES: usize = 50;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Typer,
    Streamer,
    Exit,
    Idle,
}

/// Which relay holds the SSH session (`owner`) and which one the WebSocket is open on (`entry`).
#[derive(Clone, Copy)]
struct Placement {
    owner: usize,
    entry: usize,
}

impl Placement {
    fn of(i: usize) -> Self {
        Placement {
            owner: i % 2,
            entry: (i / 2) % 2,
        }
    }

    /// How the relay kill touches a terminal placed here, if it does.
    fn touched_by(self, killed: usize) -> Option<&'static str> {
        match (self.owner == killed, self.entry == killed) {
            (true, true) => Some("SSH and socket on the killed relay"),
            (true, false) => Some("SSH on the killed relay, socket forwarded by the other"),
            (false, true) => Some("socket on the killed relay, SSH on the other"),
            (false, false) => None,
        }
    }
}

/// Everything the terminal tasks count, shared.
#[derive(Default)]
struct Tally {
    /// Output bytes compared with what was sent and found equal.
    checked: AtomicU64,
    /// Output bytes that differed from what was sent, or arrived unasked.
    corrupted: AtomicU64,
    /// Bytes sent and never echoed on a terminal that should have kept them.
    lost: AtomicU64,
    /// Terminals that ended or stalled when nothing excused it: (index, why).
    failures: Mutex<Vec<(usize, String)>>,
    /// Keystroke echo round trips, ms: all of them, and those before the first fault.
    echo_ms: Mutex<Vec<f64>>,
    echo_quiet_ms: Mutex<Vec<f64>>,
    /// Set when the first fault starts.
    faulted: std::sync::atomic::AtomicBool,
    /// Terminals the relay kill touched: (how, what happened) → count.
    kill_ends: Mutex<BTreeMap<(&'static str, String), usize>>,
    /// Time from the relay kill to each touched terminal's socket ending, ms.
    kill_close_ms: Mutex<Vec<f64>>,
    /// Time from the relay kill to each resumed terminal's `resumed` event, ms.
    kill_resume_ms: Mutex<Vec<f64>>,
    /// Exit sample: time from the exit keystrokes to the close, ms, and bad endings.
    exit_ms: Mutex<Vec<f64>>,
    exit_bad: Mutex<Vec<String>>,
}

impl Tally {
    fn kill_end(&self, how: &'static str, what: String) {
        *self
            .kill_ends
            .lock()
            .unwrap()
            .entry((how, what))
            .or_default() += 1;
    }

    fn fail(&self, i: usize, why: String, outstanding: usize) {
        self.lost.fetch_add(outstanding as u64, Ordering::Relaxed);
        self.failures.lock().unwrap().push((i, why));
    }
}

/// What the run tells every terminal task, and what they share.
#[derive(Clone)]
struct Ctx {
    start: watch::Receiver<bool>,
    exit: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    /// The relay being killed (set just before SIGKILL), or [`NO_RELAY`].
    killed: Arc<AtomicUsize>,
    kill_at: Arc<Mutex<Option<Instant>>>,
    bases: Arc<Vec<String>>,
    email: Arc<String>,
    /// Bounds the resumes in flight after the kill.
    resumes: Arc<tokio::sync::Semaphore>,
    /// Terminals whose SSH died with the killed relay that still try a resume, to see it
    /// refused cleanly (the others just record their close).
    doomed_probes: Arc<AtomicUsize>,
    tally: Arc<Tally>,
}

impl Ctx {
    fn touched(&self, at: Placement) -> Option<&'static str> {
        match self.killed.load(Ordering::SeqCst) {
            NO_RELAY => None,
            killed => at.touched_by(killed),
        }
    }

    fn since_kill_ms(&self) -> Option<f64> {
        self.kill_at
            .lock()
            .unwrap()
            .map(|t0| t0.elapsed().as_secs_f64() * 1000.0)
    }
}

struct Args {
    sessions: usize,
    minutes: f64,
    typers: usize,
    streamers: usize,
    exits: usize,
    stream_pause: Duration,
    concurrency: usize,
}

fn args() -> Args {
    let sessions = arg("--sessions", 5000);
    let typers = arg("--typers", 200).min(sessions);
    let streamers = arg("--streamers", 50).min(sessions - typers);
    let exits = arg("--exits", 20).min(sessions - typers - streamers);
    Args {
        sessions,
        minutes: common::arg_str("--minutes")
            .and_then(|m| m.parse().ok())
            .unwrap_or(10.0),
        typers,
        streamers,
        exits,
        stream_pause: Duration::from_millis(arg("--stream-pause-ms", 100) as u64),
        concurrency: arg("--concurrency", 16).max(1),
    }
}

fn role(i: usize, a: &Args) -> Role {
    if i < a.typers {
        Role::Typer
    } else if i < a.typers + a.streamers {
        Role::Streamer
    } else if i < a.typers + a.streamers + a.exits {
        Role::Exit
    } else {
        Role::Idle
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Why an exchange stopped.
enum Ended {
    /// The socket closed (and, if the kill touched it, no resume brought it back).
    Closed(String),
    Timeout,
}

/// One terminal as this tool holds it: its socket, what a resume needs, and the session-wide
/// byte counts (output received, keystrokes sent).
struct Live {
    term: Terminal,
    i: usize,
    at: Placement,
    id: String,
    secret: String,
    received: u64,
    typed: u64,
    /// Output that arrived while resuming, before the exchange that wants it read it.
    early: Vec<u8>,
    /// A resume was already tried (one per terminal: the tool kills one relay once).
    resumed: bool,
}

/// Connect through `bases[at.owner]`, open the WebSocket on `bases[at.entry]`, read the prompt
/// and acknowledge it.
async fn open_terminal(
    bases: &[String],
    email: &str,
    id: u64,
    i: usize,
    at: Placement,
) -> Result<Live, String> {
    let answer = relay_world::connect(&bases[at.owner], email, id, MASTER_PASSWORD).await;
    if answer.status != 200 {
        return Err(format!("connect {}: {}", answer.status, answer.message()));
    }
    let ticket = answer.data().as_str().unwrap_or_default().to_owned();
    let browser = relay_world::browser(email);
    let mut term = Terminal::open(&bases[at.entry], &ticket, &browser.headers())
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !term.output.ends_with(b"$ ") {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(Frame::Output(_)) | Some(Frame::Event(_)) => {}
            Some(Frame::Closed(code, reason)) => return Err(format!("closed {code} {reason}")),
            None => return Err("no prompt in 30 s".to_owned()),
        }
    }
    let Some(session) = term.events.iter().find(|e| e["type"] == "session") else {
        return Err("no session event".to_owned());
    };
    let (sid, secret) = (
        session["id"].as_str().unwrap_or_default().to_owned(),
        session["secret"].as_str().unwrap_or_default().to_owned(),
    );
    let received = term.output.len() as u64;
    term.ack(received).await;
    term.output.clear();
    term.events.clear();
    Ok(Live {
        term,
        i,
        at,
        id: sid,
        secret,
        received,
        typed: 0,
        early: Vec::new(),
        resumed: false,
    })
}

impl Live {
    /// Send keystrokes. A socket that died is noticed by the next read (its close), which
    /// resumes and resends what the relay did not read.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.term.try_send_bytes(bytes).await;
        self.term.sent.clear();
        self.typed += bytes.len() as u64;
    }

    async fn ack(&mut self) {
        let _ = self.term.try_ack(self.received).await;
    }

    /// Send `bytes` and read until as many output bytes came back; they are returned for
    /// checking. A socket the relay kill ended is resumed on the surviving relay first if the
    /// terminal's SSH survived, and whatever the relay had not read is sent again.
    async fn exchange(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        ctx: &Ctx,
    ) -> Result<Vec<u8>, Ended> {
        let start = self.typed;
        self.send(bytes).await;
        let mut got = Vec::with_capacity(bytes.len());
        let deadline = tokio::time::Instant::now() + limit;
        while got.len() < bytes.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.term.next(left).await {
                Some(Frame::Output(out)) => {
                    self.received += out.len() as u64;
                    got.extend_from_slice(&out);
                    self.term.output.clear();
                }
                Some(Frame::Event(_)) => self.term.events.clear(),
                Some(Frame::Closed(code, reason)) => {
                    let read = self.recover(code, &reason, ctx).await?;
                    got.append(&mut self.early);
                    // Keystrokes the relay had read before the socket died reached the shell;
                    // the rest are sent again, as a resuming client does.
                    match read.checked_sub(start) {
                        Some(n) if n <= bytes.len() as u64 => {
                            let rest = &bytes[n as usize..];
                            let _ = self.term.try_send_bytes(rest).await;
                            self.term.sent.clear();
                        }
                        _ => {
                            ctx.tally.fail(
                                self.i,
                                format!(
                                    "resumed with input_offset {read}, sent {start}..{}",
                                    self.typed
                                ),
                                bytes.len(),
                            );
                            return Err(Ended::Closed("bad input_offset".to_owned()));
                        }
                    }
                }
                None => return Err(Ended::Timeout),
            }
        }
        Ok(got)
    }

    /// The socket closed with `code`. Untouched by the kill: an error. Touched: record how it
    /// ended and, if the terminal's SSH survived (or as a probe of a few that did not), resume
    /// on the surviving relay. Returns the relay's `input_offset`.
    async fn recover(&mut self, code: u16, reason: &str, ctx: &Ctx) -> Result<u64, Ended> {
        let Some(how) = ctx.touched(self.at) else {
            return Err(Ended::Closed(format!("closed {code} {reason}")));
        };
        if self.resumed {
            return Err(Ended::Closed(format!("closed {code} after its resume")));
        }
        self.resumed = true;
        if let Some(ms) = ctx.since_kill_ms() {
            ctx.tally.kill_close_ms.lock().unwrap().push(ms);
        }
        let killed = ctx.killed.load(Ordering::SeqCst);
        let survivor = 1 - killed;
        let ssh_survived = self.at.owner != killed;
        let probe = || {
            ctx.doomed_probes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if !ssh_survived && !probe() {
            ctx.tally
                .kill_end(how, format!("closed {code}, not resumed (SSH gone)"));
            return Err(Ended::Closed(format!("closed {code}")));
        }
        let _permit = ctx.resumes.acquire().await.unwrap();
        let browser = relay_world::browser(&ctx.email);
        let opened = tokio::time::timeout(
            Duration::from_secs(15),
            Terminal::resume(
                &ctx.bases[survivor],
                &self.id,
                &self.secret,
                self.received,
                &browser.headers(),
            ),
        )
        .await;
        let mut term = match opened {
            Ok(Ok(term)) => term,
            Ok(Err(e)) => {
                ctx.tally.kill_end(
                    how,
                    format!("closed {code}, resume refused at upgrade: {e}"),
                );
                return Err(Ended::Closed(format!("resume: {e}")));
            }
            Err(_) => {
                ctx.tally
                    .kill_end(how, format!("closed {code}, resume open timed out"));
                return Err(Ended::Closed("resume open timed out".to_owned()));
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let resumed = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match term.next(left).await {
                Some(Frame::Event(e)) if e["type"] == "resumed" => break Ok(e),
                Some(Frame::Event(_)) => {}
                Some(Frame::Output(out)) => {
                    self.received += out.len() as u64;
                    self.early.extend_from_slice(&out);
                    term.output.clear();
                }
                Some(Frame::Closed(refused, _)) => break Err(format!("refused {refused}")),
                None => break Err("no answer in 15 s".to_owned()),
            }
        };
        match resumed {
            Ok(event) => {
                let (offset, dropped) = (event["offset"].as_u64(), event["dropped"].as_u64());
                if offset != Some(self.received) || dropped != Some(0) {
                    ctx.tally.corrupted.fetch_add(1, Ordering::Relaxed);
                    ctx.tally.fail(
                        self.i,
                        format!(
                            "resumed at {offset:?} dropped {dropped:?}, had {}",
                            self.received
                        ),
                        0,
                    );
                }
                if let Some(ms) = ctx.since_kill_ms() {
                    ctx.tally.kill_resume_ms.lock().unwrap().push(ms);
                }
                ctx.tally.kill_end(how, format!("closed {code}, resumed"));
                let old = std::mem::replace(&mut self.term, term);
                old.cut();
                self.term.events.clear();
                Ok(event["input_offset"].as_u64().unwrap_or(u64::MAX))
            }
            Err(why) => {
                ctx.tally
                    .kill_end(how, format!("closed {code}, resume {why}"));
                if ssh_survived {
                    // The SSH session lived on the surviving relay: this was resumable.
                    return Err(Ended::Closed(format!("resume {why}")));
                }
                Err(Ended::Closed(format!("closed {code}")))
            }
        }
    }

    /// The terminal stopped with `outstanding` bytes unanswered: a failure unless the relay
    /// kill explains it (a terminal whose SSH died with the killed relay).
    fn ended(&self, ctx: &Ctx, why: Ended, outstanding: usize) {
        let expected = ctx
            .touched(self.at)
            .is_some_and(|_| self.at.owner == ctx.killed.load(Ordering::SeqCst));
        if expected {
            return;
        }
        let why = match why {
            Ended::Closed(why) => why,
            Ended::Timeout => "stalled (no echo in time)".to_owned(),
        };
        ctx.tally.fail(self.i, why, outstanding);
    }
}

/// Keep reading the terminal until the run starts, so that the relay's pings are answered
/// while thousands of others open (a terminal that does not answer is closed as silent).
async fn hold_until_start(mut live: Live, ctx: &Ctx) -> Option<Live> {
    let mut start = ctx.start.clone();
    loop {
        tokio::select! {
            go = start.wait_for(|go| *go) => return go.is_ok().then_some(live),
            frame = live.term.next(Duration::from_secs(3600)) => match frame {
                Some(Frame::Output(bytes)) => {
                    ctx.tally.corrupted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    live.term.output.clear();
                }
                Some(Frame::Closed(code, reason)) => {
                    ctx.tally.fail(live.i, format!("closed {code} {reason} before the run"), 0);
                    return None;
                }
                Some(Frame::Event(_)) => live.term.events.clear(),
                None => {}
            }
        }
    }
}

/// Compare what came back with what was sent; count it.
fn check(tally: &Tally, sent: &[u8], got: &[u8]) {
    let equal = sent.iter().zip(got).filter(|(a, b)| a == b).count();
    let differ = sent.len().max(got.len()) - equal;
    tally.checked.fetch_add(equal as u64, Ordering::Relaxed);
    tally.corrupted.fetch_add(differ as u64, Ordering::Relaxed);
}

/// One keystroke every 100 ms; every echo checked and timed; an ack about every second.
async fn typer(mut live: Live, ctx: Ctx) {
    let mut stop = ctx.stop.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Spread the typers over the period.
    tokio::time::sleep(Duration::from_millis((live.i % 100) as u64)).await;
    let mut n = 0usize;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let key = [b'a' + (n % 26) as u8];
        n += 1;
        let t0 = Instant::now();
        let resumed = live.resumed;
        match live.exchange(&key, Duration::from_secs(10), &ctx).await {
            Ok(got) => {
                // A keystroke that waited for a resume is not an echo latency sample.
                if resumed == live.resumed {
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    ctx.tally.echo_ms.lock().unwrap().push(ms);
                    if !ctx.tally.faulted.load(Ordering::Relaxed) {
                        ctx.tally.echo_quiet_ms.lock().unwrap().push(ms);
                    }
                }
                check(&ctx.tally, &key, &got);
            }
            Err(why) => return live.ended(&ctx, why, 1),
        }
        if n % 10 == 0 {
            live.ack().await;
        }
    }
    live.term.close().await;
}

/// The bytes of chunk `n` of streaming terminal `i`: capital letters, never `~`.
fn chunk(i: usize, n: usize) -> Vec<u8> {
    (0..CHUNK)
        .map(|j| b'A' + ((i * 7 + n * 3 + j) % 26) as u8)
        .collect()
}

/// 64 KiB chunks echoed back whole and compared, acknowledged after each, with a pause between.
async fn streamer(mut live: Live, ctx: Ctx, pause: Duration) {
    let mut stop = ctx.stop.clone();
    let mut n = 0usize;
    loop {
        let data = chunk(live.i, n);
        n += 1;
        match live.exchange(&data, Duration::from_secs(30), &ctx).await {
            Ok(got) => {
                check(&ctx.tally, &data, &got);
                live.ack().await;
            }
            Err(why) => return live.ended(&ctx, why, CHUNK),
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    live.term.close().await;
}

/// Holds the terminal; any output is unasked (corrupted); a close is checked against the faults.
/// The exit sample sends [`EXIT_SEQUENCE`] when told and expects `exit` 0 and close 1000.
async fn idle(mut live: Live, ctx: Ctx, exit: bool) {
    let (mut stop, mut go) = (ctx.stop.clone(), ctx.exit.clone());
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            changed = go.changed(), if exit => {
                if changed.is_err() || !*go.borrow() {
                    continue;
                }
                return exit_shell(live, &ctx.tally).await;
            }
            frame = live.term.next(Duration::from_secs(3600)) => match frame {
                Some(Frame::Output(bytes)) => {
                    ctx.tally.corrupted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    live.term.output.clear();
                }
                Some(Frame::Closed(code, reason)) => match live.recover(code, &reason, &ctx).await {
                    Ok(_) => {
                        let early = std::mem::take(&mut live.early);
                        ctx.tally.corrupted.fetch_add(early.len() as u64, Ordering::Relaxed);
                    }
                    Err(why) => return live.ended(&ctx, why, 0),
                },
                Some(Frame::Event(_)) => live.term.events.clear(),
                None => {}
            }
        }
    }
    live.term.close().await;
}

async fn exit_shell(mut live: Live, tally: &Tally) {
    let t0 = Instant::now();
    live.send(EXIT_SEQUENCE).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match live.term.next(left).await {
            Some(Frame::Closed(code, _)) => break Ok(code),
            Some(_) => {}
            None => break Err("no close in 10 s".to_owned()),
        }
    };
    let exit = live
        .term
        .events
        .iter()
        .find(|e| e["type"] == "exit")
        .cloned();
    match (outcome, exit) {
        (Ok(1000), Some(event)) if event["code"] == 0 => tally
            .exit_ms
            .lock()
            .unwrap()
            .push(t0.elapsed().as_secs_f64() * 1000.0),
        (outcome, exit) => tally
            .exit_bad
            .lock()
            .unwrap()
            .push(format!("close {outcome:?}, exit event {exit:?}")),
    }
}

/// Retry a full terminal open on `at` every 100 ms until it works; the time it took, ms.
async fn time_to_open(
    bases: &[String],
    email: &str,
    id: u64,
    at: Placement,
    limit: Duration,
) -> f64 {
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(
            Duration::from_secs(15),
            open_terminal(bases, email, id, usize::MAX, at),
        )
        .await
        {
            Ok(Ok(live)) => {
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                live.term.close().await;
                return ms;
            }
            _ if t0.elapsed() > limit => return f64::INFINITY,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Per-relay CPU and RSS figures.
struct RelayFigures {
    pid: u32,
    rss_base: u64,
    cpu_start: f64,
}

#[tokio::main]
async fn main() {
    let a = args();
    let needed = 2 * a.sessions + 1000;
    let limit = open_files_limit();
    assert!(
        limit >= needed,
        "{} sessions need about {needed} open files here (soft limit {limit}): run `ulimit -n {needed}` first",
        a.sessions
    );

    let redis = PrivateRedis::start(0);
    let redis_port = redis.port;
    let mut redis = Some(redis);
    let gw = RelayWorld::new().await;
    let mut env = relay_env(a.sessions);
    env.push(("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bin = relay_bin();
    let mut relays: Vec<Option<testkit::Process>> =
        vec![Some(gw.start(&bin, &env)), Some(gw.start(&bin, &env))];
    let bases: Vec<String> = relays
        .iter()
        .flatten()
        .map(|r| r.base_url.clone())
        .collect();
    let pids: Vec<u32> = relays.iter().flatten().map(|r| r.pid()).collect();
    let email = gw.user("load").await;
    let echo_port = start_echo_server().await;
    let id = gw
        .machine(
            &email,
            json!({"name": "echo", "hostname": "127.0.0.1", "port": echo_port.to_string(),
                   "username": "load", "password": "x"}),
        )
        .await;
    println!(
        "relay load: {} sessions ({} typing, {} streaming, {} to exit, rest idle), {} min; relays A {} (pid {}), B {} (pid {}); private redis :{redis_port}",
        a.sessions, a.typers, a.streamers, a.exits, a.minutes, bases[0], pids[0], bases[1], pids[1]
    );

    // Warm both relays up (allocator, runtime, blocking pool), then take the RSS baseline.
    for owner in 0..2 {
        for entry in 0..2 {
            time_to_open(
                &bases,
                &email,
                id,
                Placement { owner, entry },
                Duration::from_secs(30),
            )
            .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut figures: Vec<RelayFigures> = pids
        .iter()
        .map(|&pid| RelayFigures {
            pid,
            rss_base: rss_kib(pid),
            cpu_start: cpu_secs(pid),
        })
        .collect();

    // Open every terminal; each task then runs its role once the run starts.
    let (start_tx, start) = watch::channel(false);
    let (exit_tx, exit) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let tally = Arc::new(Tally::default());
    let ctx = Ctx {
        start,
        exit,
        stop,
        killed: Arc::new(AtomicUsize::new(NO_RELAY)),
        kill_at: Arc::new(Mutex::new(None)),
        bases: Arc::new(bases.clone()),
        email: Arc::new(email.clone()),
        resumes: Arc::new(tokio::sync::Semaphore::new(32)),
        doomed_probes: Arc::new(AtomicUsize::new(DOOMED_PROBES)),
        tally: Arc::clone(&tally),
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = tokio::task::JoinSet::new();
    let opening = Instant::now();
    for i in 0..a.sessions {
        let at = Placement::of(i);
        let (gate, ctx, opened) = (Arc::clone(&gate), ctx.clone(), opened_tx.clone());
        let role = role(i, &a);
        let pause = a.stream_pause;
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let live = match open_terminal(&ctx.bases, &ctx.email, id, i, at).await {
                Ok(live) => live,
                Err(e) => {
                    let _ = opened.send(Err(e));
                    return;
                }
            };
            drop(permit);
            let _ = opened.send(Ok(()));
            // The count ends when every task has reported: let go of the sender now.
            drop(opened);
            let Some(live) = hold_until_start(live, &ctx).await else {
                return;
            };
            match role {
                Role::Typer => typer(live, ctx).await,
                Role::Streamer => streamer(live, ctx, pause).await,
                Role::Exit => idle(live, ctx, true).await,
                Role::Idle => idle(live, ctx, false).await,
            }
        });
    }
    drop(opened_tx);
    let (mut held, mut open_errors) = (0usize, BTreeMap::<String, usize>::new());
    while let Some(result) = opened_rx.recv().await {
        match result {
            Ok(()) => held += 1,
            Err(e) => *open_errors.entry(e).or_default() += 1,
        }
        if (held + open_errors.values().sum::<usize>()) % 500 == 0 {
            println!(
                "  … {held} open after {:.0} s",
                opening.elapsed().as_secs_f64()
            );
        }
    }
    let open_secs = opening.elapsed().as_secs_f64();
    println!(
        "sessions held: {held} of {} opened in {open_secs:.1} s; open failures: {open_errors:?}",
        a.sessions
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rss_open = Vec::new();
    for (r, f) in figures.iter().enumerate() {
        let rss = rss_kib(f.pid);
        rss_open.push(rss);
        println!(
            "relay {}: idle RSS {} KiB → {} KiB holding {} SSH sessions and {} browser sockets ({} of them forwarded); CPU while opening {:.1} s",
            ["A", "B"][r],
            f.rss_base,
            rss,
            a.sessions / 2,
            a.sessions / 2,
            a.sessions / 4,
            cpu_secs(f.pid) - f.cpu_start,
        );
    }
    let rss_delta: u64 = figures
        .iter()
        .zip(&rss_open)
        .map(|(f, rss)| rss.saturating_sub(f.rss_base))
        .sum();
    println!(
        "RSS per session, both relays, {held} idle sessions: {:.1} KiB (delta over the warm relays), {:.1} KiB (total RSS)",
        rss_delta as f64 / held as f64,
        rss_open.iter().sum::<u64>() as f64 / held as f64
    );

    // The run.
    let run = Duration::from_secs_f64(a.minutes * 60.0);
    let run_start = Instant::now();
    for f in &mut figures {
        f.cpu_start = cpu_secs(f.pid);
    }
    let tool_cpu_start = cpu_secs(std::process::id());
    start_tx.send(true).unwrap();
    let at = |fraction: f64| run_start + run.mul_f64(fraction);
    let progress = {
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                let (failed, first) = {
                    let failures = tally.failures.lock().unwrap();
                    (failures.len(), failures.first().cloned())
                };
                let keystrokes = tally.echo_ms.lock().unwrap().len();
                println!(
                    "  … {:.0} s: {:.1} MiB checked, {} corrupted, {} lost, {} failures (first: {:?}), {} keystrokes",
                    run_start.elapsed().as_secs_f64(),
                    tally.checked.load(Ordering::Relaxed) as f64 / 1048576.0,
                    tally.corrupted.load(Ordering::Relaxed),
                    tally.lost.load(Ordering::Relaxed),
                    failed,
                    first,
                    keystrokes,
                );
            }
        })
    };

    // Fault 1: Redis restart.
    tokio::time::sleep_until(at(0.20).into()).await;
    let checked_before = tally.checked.load(Ordering::Relaxed);
    let tool_cpu_quiet = cpu_secs(std::process::id()) - tool_cpu_start;
    let quiet_secs = run_start.elapsed().as_secs_f64();
    tally.faulted.store(true, Ordering::Relaxed);
    let port = redis.take().unwrap().stop();
    let down = Instant::now();
    // Connects through both relays while Redis is down, each answer timed.
    let outage: Vec<(u16, f64)> = futures_util::future::join_all(bases.iter().map(|base| {
        let email = &email;
        async move {
            let mut seen = Vec::new();
            while down.elapsed() < REDIS_DOWN {
                let t0 = Instant::now();
                let answer = relay_world::connect(base, email, id, MASTER_PASSWORD).await;
                seen.push((answer.status, t0.elapsed().as_secs_f64() * 1000.0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let checked_down = tally.checked.load(Ordering::Relaxed) - checked_before;
    redis = Some(PrivateRedis::start(port));
    let back = Instant::now();
    // From the moment Redis listens again: the first connect that works on each relay, and
    // the first full forwarded terminal each way, tried at once.
    let connect_back = futures_util::future::join_all((0..2).map(|r| {
        let (base, email) = (&bases[r], &email);
        async move {
            loop {
                let answer = relay_world::connect(base, email, id, MASTER_PASSWORD).await;
                if answer.status == 200 {
                    return back.elapsed().as_secs_f64() * 1000.0;
                }
                if back.elapsed() > Duration::from_secs(60) {
                    return f64::INFINITY;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }));
    let open_back = futures_util::future::join_all((0..2).map(|r| {
        time_to_open(
            &bases,
            &email,
            id,
            Placement {
                owner: r,
                entry: 1 - r,
            },
            Duration::from_secs(60),
        )
    }));
    let (connect_back, open_back) = tokio::join!(connect_back, open_back);
    let statuses: BTreeMap<u16, usize> = outage.iter().fold(BTreeMap::new(), |mut m, (s, _)| {
        *m.entry(*s).or_default() += 1;
        m
    });
    let slowest = outage.iter().map(|(_, ms)| *ms).fold(0.0, f64::max);
    let fastest = outage
        .iter()
        .map(|(_, ms)| *ms)
        .fold(f64::INFINITY, f64::min);
    println!(
        "fault 1, Redis restart (SIGKILL, {:.1} s down): connects during the outage by status {statuses:?}, answers in {fastest:.0}–{slowest:.0} ms; echo/stream bytes checked while Redis was down {checked_down}; Redis back → first connect 200 via A {:.0} ms, via B {:.0} ms; → first full forwarded terminal (connect + WebSocket on the other relay + prompt) A→B {:.0} ms, B→A {:.0} ms",
        back.duration_since(down).as_secs_f64(),
        connect_back[0],
        connect_back[1],
        open_back[0],
        open_back[1],
    );

    // Fault 3: shells ended on the target.
    tokio::time::sleep_until(at(0.45).into()).await;
    exit_tx.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut exit_ms = tally.exit_ms.lock().unwrap().clone();
    println!(
        "fault 3, shells ended on the target: {} of {} got exit 0 and close 1000 (exit keystrokes → close {}); bad: {:?}",
        exit_ms.len(),
        a.exits,
        summary(&mut exit_ms),
        tally.exit_bad.lock().unwrap()
    );

    // Fault 2: relay B killed.
    tokio::time::sleep_until(at(0.65).into()).await;
    let rss_before_kill: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    let b_cpu = cpu_secs(pids[1]) - figures[1].cpu_start;
    let b_secs = run_start.elapsed().as_secs_f64();
    ctx.killed.store(1, Ordering::SeqCst);
    *ctx.kill_at.lock().unwrap() = Some(Instant::now());
    relays[1].take().unwrap().kill();
    let survivor_ms = time_to_open(
        &bases,
        &email,
        id,
        Placement { owner: 0, entry: 0 },
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut kill_close = tally.kill_close_ms.lock().unwrap().clone();
    let mut kill_resume = tally.kill_resume_ms.lock().unwrap().clone();
    let touched = (0..a.sessions)
        .filter(|i| Placement::of(*i).touched_by(1).is_some())
        .filter(|i| role(*i, &a) != Role::Exit)
        .count();
    println!(
        "fault 2, relay B SIGKILLed (RSS just before: A {} KiB, B {} KiB): new terminal on A open in {survivor_ms:.0} ms; {} of {touched} touched terminals saw their socket end within 15 s (kill → close {}); resumed on A: {} (kill → resumed {})",
        rss_before_kill[0],
        rss_before_kill[1],
        kill_close.len(),
        summary(&mut kill_close),
        kill_resume.len(),
        summary(&mut kill_resume),
    );
    for ((how, what), n) in tally.kill_ends.lock().unwrap().iter() {
        println!("  {how}: {what}: {n}");
    }

    tokio::time::sleep_until(at(1.0).into()).await;
    progress.abort();
    let run_secs = run_start.elapsed().as_secs_f64();
    let a_cpu = cpu_secs(pids[0]) - figures[0].cpu_start;
    let a_rss = rss_kib(pids[0]);
    stop_tx.send(true).unwrap();
    let mut panicked = 0;
    while let Some(result) = tasks.join_next().await {
        if result.is_err() {
            panicked += 1;
        }
    }

    let tool_cpu = cpu_secs(std::process::id()) - tool_cpu_start;
    let mut echo = tally.echo_ms.lock().unwrap().clone();
    let mut echo_quiet = tally.echo_quiet_ms.lock().unwrap().clone();
    let (checked, corrupted, lost) = (
        tally.checked.load(Ordering::Relaxed),
        tally.corrupted.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
    );
    let failures = tally.failures.lock().unwrap();
    println!("run: {run_secs:.0} s");
    println!(
        "echo under load ({} keystrokes from {} typers, one every 100 ms each): {}",
        echo.len(),
        a.typers,
        summary(&mut echo)
    );
    println!(
        "echo before the first fault ({} keystrokes): {}",
        echo_quiet.len(),
        summary(&mut echo_quiet)
    );
    println!(
        "bytes checked: {checked} ({:.1} MiB); corrupted: {corrupted}; lost: {lost}; terminals that ended or stalled unexcused: {} {:?}; tasks panicked: {panicked}",
        checked as f64 / 1048576.0,
        failures.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
    println!(
        "CPU: relay A {:.1} s over {run_secs:.0} s ({:.0} % of a core), relay B {b_cpu:.1} s over {b_secs:.0} s until killed ({:.0} % of a core); relay A RSS at the end {a_rss} KiB; this tool (clients + echo server) {tool_cpu:.1} s ({:.0} % of a core; {:.0} % before the first fault)",
        a_cpu,
        100.0 * a_cpu / run_secs,
        100.0 * b_cpu / b_secs,
        100.0 * tool_cpu / run_secs,
        100.0 * tool_cpu_quiet / quiet_secs,
    );
    drop(relays);
    drop(redis);
    let bad = corrupted > 0
        || lost > 0
        || !failures.is_empty()
        || panicked > 0
        || !open_errors.is_empty();
    std::process::exit(i32::from(bad));
}
