//! Relay benchmark: throughput and keystroke echo through relay+WebSocket versus
//! `ssh` directly, relay memory per idle terminal at N concurrent sessions, connect latency
//! and time to the first prompt byte, resume latency and memory per parked terminal, and what
//! 20 viewers of a shared terminal cost its owner (`fanout`). Not a test: it prints figures for
//! `docs/relay-benchmark.md`.
//!
//! Needs the test services (`localstack/services.sh start`, then
//! `eval "$(localstack/services.sh env)"`), and the release relay binary next to this example:
//!
//! ```text
//! cargo build --release -p relay --bins --examples
//! target/release/examples/relay_bench [--sessions 1000] [--mib 256] [--samples 500] [--rounds 3]
//!     [--only connect,throughput,echo,memory,resume,fanout,recording,files] [--think-ms 0]
//!     [--echo-writes 1] [--hold-secs 0] [--echo-csv FILE] [--parked 100] [--viewers 20]
//!     [--fanout-lines 1000000]
//! ```
//!
//! `--only recording` measures what recording costs bulk output, in one process against one
//! relay (`RECORDING=on`): two machines on the same sshd, one with `recording` off, one on,
//! and for random binary output (`cat`) and for text (`base64` of the same file) rounds that
//! alternate between them; it prints the throughput ratio on/off and the gaps the recordings
//! marked.
//!
//! `--only` runs the named phases alone (for instance `--only echo`, a minute instead of the
//! 1,000 sessions and the 256 MiB file); `--think-ms` pauses between keystrokes in the echo
//! phase (`files` moves an `--mib` file up and down over SFTP through the relay and with `scp`);
//! `--echo-writes 2` has the remote answer each keystroke in two writes instead of the
//! PTY echo; `--echo-csv` writes every echo sample (relay and direct) to a file.
//!
//! The 1,000 idle sessions go to a lightweight in-process SSH server built on russh (one
//! OpenSSH process per session would not fit on the machine); everything else uses the real
//! OpenSSH sshd. Everything runs on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{arg, arg_str, percentile, relay_bin, relay_env, rss_kib, start_echo_server, summary};
use rand::RngCore;
use serde_json::json;
use testkit::relay_world::{self, RelayWorld};
use testkit::ws::{Frame, Terminal, find};

const PHASES: [&str; 8] = [
    "connect",
    "throughput",
    "echo",
    "memory",
    "resume",
    "fanout",
    "recording",
    "files",
];

/// The phases to run: all, or those named by `--only a,b`.
fn phases() -> Vec<&'static str> {
    let Some(only) = arg_str("--only") else {
        return PHASES.to_vec();
    };
    let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
    for name in &wanted {
        assert!(
            PHASES.contains(name),
            "--only takes a comma-separated list of {PHASES:?}, not {name:?}"
        );
    }
    PHASES.into_iter().filter(|p| wanted.contains(p)).collect()
}

fn ssh_command(key: &std::path::Path, sshd: &testkit::ssh::SharedSshd, remote: &str) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-tt", "-q", "-o", "StrictHostKeyChecking=no", "-o"])
        .arg("UserKnownHostsFile=/dev/null")
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(key)
        .args(["-p", &sshd.port.to_string()])
        .arg(format!("{}@{}", sshd.user, sshd.host))
        .arg(remote);
    command
}

/// Read the terminal until `needle` appears after `from`; returns where it starts.
async fn read_until(term: &mut Terminal, from: usize, needle: &[u8], limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    let mut scanned = from;
    loop {
        let start = scanned.saturating_sub(needle.len()).max(from);
        if let Some(at) = find(&term.output[start..], needle) {
            return start + at;
        }
        scanned = term.output.len();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(Frame::Output(_)) | Some(Frame::Event(_)) => {}
            other => panic!("terminal ended: {other:?}"),
        }
    }
}

/// Like [`read_until`] for bulk output: keeps only the last few bytes, as the direct `ssh`
/// side does with its reused read buffer, so the client's memory growth is not measured.
async fn discard_until(term: &mut Terminal, needle: &[u8], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if find(&term.output, needle).is_some() {
            return;
        }
        let keep = term.output.len().saturating_sub(needle.len());
        term.output.drain(..keep);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(Frame::Output(_)) | Some(Frame::Event(_)) => {}
            other => panic!("terminal ended: {other:?}"),
        }
    }
}

/// Read `ssh`'s output until `needle` appears in it (bounded by `limit`).
async fn ssh_read_until(
    out: &mut tokio::process::ChildStdout,
    seen: &mut Vec<u8>,
    needle: &[u8],
    limit: Duration,
) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while find(seen, needle).is_none() {
        let n = tokio::time::timeout_at(deadline, out.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("ssh: no {:?} in {limit:?}", String::from_utf8_lossy(needle))
            })
            .unwrap();
        assert!(
            n > 0,
            "ssh ended; output so far {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// Keystroke echo: one byte to `cat` on a non-canonical PTY (the PTY echoes it), wait for the
/// echo, then the next byte, as a person types. Two sessions are open at once, one through the
/// relay (a WebSocket client that does not set `TCP_NODELAY`, like a browser or any client that
/// leaves its sockets untuned) and one with `ssh -tt` directly (keystrokes on a pipe, as
/// `ssh -tt` is fed by a program); samples alternate between them one by one, the side that
/// goes first swapping every sample, so whatever else the machine does falls on both. Both
/// clients run on the same tokio runtime (write, then wait for the socket or pipe to become
/// readable), so the client-side cost is the same on both sides. Returns the samples in ms.
///
/// With `two_writes`, the remote answers each keystroke with two separate writes (`.`, then the
/// byte) instead of the PTY's echo, as a shell redrawing a line does, and the sample ends when
/// the second arrives: the case where Nagle's algorithm on a socket can hold the second frame.
async fn echo_phase(
    base: &str,
    ticket: &str,
    keyfile: &std::path::Path,
    sshd: &testkit::ssh::SharedSshd,
    samples: usize,
    think: Duration,
    two_writes: bool,
) -> (Vec<f64>, Vec<f64>) {
    use tokio::io::AsyncWriteExt;
    const WARM_UP: usize = 20;
    let setup = if two_writes {
        "stty -echo -icanon; printf '%s%s' RE ADY; while IFS= read -r -n1 c; do printf .; printf %s \"$c\"; done"
    } else {
        "stty -icanon; printf '%s%s' RE ADY; cat >/dev/null"
    };

    let mut term = Terminal::open_with_nodelay(base, ticket, &[], false)
        .await
        .unwrap();
    let nodelay = term.nodelay().unwrap();
    assert!(!nodelay, "the echo client must not set TCP_NODELAY");
    term.run(setup).await;
    read_until(&mut term, 0, b"READY", Duration::from_secs(10)).await;

    let mut child = tokio::process::Command::from(ssh_command(keyfile, sshd, setup))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    ssh_read_until(&mut stdout, &mut seen, b"READY", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut relay_rtt = Vec::with_capacity(samples);
    let mut direct_rtt = Vec::with_capacity(samples);
    for i in 0..WARM_UP + samples {
        for side in [i % 2, 1 - i % 2] {
            let t0 = Instant::now();
            if side == 0 {
                let mark = term.output.len();
                term.send_bytes(b"k").await;
                read_until(&mut term, mark, b"k", Duration::from_secs(5)).await;
            } else {
                stdin.write_all(b"k").await.unwrap();
                stdin.flush().await.unwrap();
                seen.clear();
                ssh_read_until(&mut stdout, &mut seen, b"k", Duration::from_secs(5)).await;
            }
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if i >= WARM_UP {
                if side == 0 {
                    relay_rtt.push(ms)
                } else {
                    direct_rtt.push(ms)
                }
            }
            if !think.is_zero() {
                tokio::time::sleep(think).await;
            }
        }
    }
    term.close().await;
    drop(stdin);
    let _ = child.kill().await;
    (relay_rtt, direct_rtt)
}

/// Whether viewers count keystroke echoes (the echo part); off for bulk output, where
/// scanning every byte would take the client CPU the relay needs.
static COUNT_ECHOES: AtomicBool = AtomicBool::new(true);

/// What one share viewer has received, counted by its reader task.
#[derive(Default)]
struct Watched {
    /// Keystroke echoes (`k`) received after the joining screen.
    echoes: AtomicU64,
    /// Output bytes received after the joining screen.
    bytes: AtomicU64,
    /// The close code, once closed (0 while open).
    closed: AtomicU64,
}

/// A viewer that reads everything, as fast as it comes, counting and discarding it.
fn watch_share(mut viewer: Terminal) -> Arc<Watched> {
    let watched = Arc::new(Watched::default());
    let counts = Arc::clone(&watched);
    tokio::spawn(async move {
        loop {
            match viewer.next(Duration::from_secs(3600)).await {
                Some(Frame::Output(bytes)) => {
                    if COUNT_ECHOES.load(Ordering::Relaxed) {
                        let echoes = bytes.iter().filter(|b| **b == b'k').count();
                        counts.echoes.fetch_add(echoes as u64, Ordering::Relaxed);
                    }
                    counts
                        .bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    viewer.output.clear();
                }
                Some(Frame::Event(_)) => {}
                Some(Frame::Closed(code, _)) => {
                    counts.closed.store(u64::from(code), Ordering::Relaxed);
                    return;
                }
                None => return,
            }
        }
    });
    watched
}

/// Wait (bounded) until every viewer has `done`, or closed; how many got there.
async fn viewers_caught_up(
    viewers: &[Arc<Watched>],
    done: impl Fn(usize, &Watched) -> bool,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let caught_up = viewers
            .iter()
            .enumerate()
            .filter(|(i, v)| done(*i, v))
            .count();
        let closed = viewers
            .iter()
            .filter(|v| v.closed.load(Ordering::Relaxed) != 0)
            .count();
        if caught_up + closed >= viewers.len() || Instant::now() > deadline {
            return caught_up;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Open a terminal on `base` and put `cat` on a non-canonical PTY behind it (the echo setup).
async fn echo_terminal(base: &str, email: &str, id: u64) -> Terminal {
    let ticket = relay_world::ticket(base, email, id).await;
    let mut term = Terminal::open_with_nodelay(base, &ticket, &[], false)
        .await
        .unwrap();
    term.run("stty -icanon; printf '%s%s' RE ADY; cat >/dev/null")
        .await;
    read_until(&mut term, 0, b"READY", Duration::from_secs(10)).await;
    term
}

/// End the echo terminal's `cat` (^C) and put its shell's PTY in raw mode without echo. Keys
/// typed while `cat` is still dying are eaten by it or flushed with the signal, so the command
/// is sent only after a pause, and again if it was lost.
async fn raw_shell(term: &mut Terminal) {
    for _ in 0..5 {
        term.output.clear();
        term.send_bytes(&[3]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        term.run("stty raw -echo; printf '%s%s' RE ADY").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while find(&term.output, b"READY").is_none() && Instant::now() < deadline {
            if let Some(Frame::Closed(code, reason)) = term.next(Duration::from_millis(200)).await {
                panic!("terminal closed: {code} {reason}");
            }
        }
        if find(&term.output, b"READY").is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while term.next(Duration::from_millis(100)).await.is_some() {}
            term.output.clear();
            return;
        }
    }
    panic!("the shell did not take `stty raw`");
}

/// One keystroke to `term`, until its echo: milliseconds.
async fn keystroke(term: &mut Terminal) -> f64 {
    let t0 = Instant::now();
    let mark = term.output.len();
    term.send_bytes(b"k").await;
    read_until(term, mark, b"k", Duration::from_secs(5)).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    term.output.clear();
    ms
}

/// Fan-out: what `viewers` view-only viewers of a shared terminal, spread over two relays,
/// cost its owner. Two terminals of the same user on relay A, both with `cat` echoing on a
/// non-canonical PTY; one is shared and watched by the viewers (half joined on A, half on B
/// and forwarded to A), the other is not. Keystroke echo samples alternate between the two
/// terminals one by one (the side that goes first swapping every sample), so whatever else the
/// machine does falls on both; every viewer must receive every echo. Then, if `lines` > 0, the
/// owner's throughput: `seq 1 <lines>` on each terminal in turn, and how many viewers received
/// all of it (a viewer that falls [`VIEWER_QUEUE`] frames behind is dropped by design, 4017).
///
/// [`VIEWER_QUEUE`]: relay::ws::share::VIEWER_QUEUE
async fn fanout_phase(gw: &RelayWorld, email: &str, id: u64, samples: usize, viewers: usize) {
    const WARM_UP: usize = 20;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let env = relay_env(viewers + 16);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("REDIS_URL", &redis));
    let relay_bin = relay_bin();
    let a = gw.start(&relay_bin, &env);
    let b = gw.start(&relay_bin, &env);

    let mut shared = echo_terminal(&a.base_url, email, id).await;
    let mut alone = echo_terminal(&a.base_url, email, id).await;
    shared
        .send_json(json!({"type": "share_create", "mode": "view"}))
        .await;
    let created = loop {
        match shared.next(Duration::from_secs(10)).await {
            Some(Frame::Event(event)) if event["type"] == "share_created" => break event,
            Some(Frame::Event(_) | Frame::Output(_)) => {}
            other => panic!("no share_created: {other:?}"),
        }
    };
    let (share, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let mut watched = Vec::with_capacity(viewers);
    for n in 0..viewers {
        let base = if n % 2 == 0 { &a.base_url } else { &b.base_url };
        let mut viewer = Terminal::join(base, &share, &secret, &[]).await.unwrap();
        viewer.expect_event("joined", Duration::from_secs(10)).await;
        // The joining screen (it shows READY) is not counted.
        viewer.expect_output("READY", Duration::from_secs(10)).await;
        viewer.output.clear();
        watched.push(watch_share(viewer));
    }
    let mut seen = shared.events.len();
    loop {
        let listed = shared.events[seen..].iter().any(|e| {
            e["type"] == "viewers" && e["viewers"].as_array().is_some_and(|v| v.len() == viewers)
        });
        if listed {
            break;
        }
        seen = shared.events.len();
        shared.next(Duration::from_secs(10)).await.unwrap();
    }
    shared.output.clear();

    let (mut with_viewers, mut without) = (Vec::new(), Vec::new());
    for i in 0..WARM_UP + samples {
        for side in [i % 2, 1 - i % 2] {
            if side == 0 {
                let ms = keystroke(&mut shared).await;
                if i >= WARM_UP {
                    with_viewers.push(ms);
                }
            } else {
                let ms = keystroke(&mut alone).await;
                if i >= WARM_UP {
                    without.push(ms);
                }
            }
        }
    }
    let sent = (WARM_UP + samples) as u64;
    let complete = viewers_caught_up(
        &watched,
        |_, v| v.echoes.load(Ordering::Relaxed) >= sent,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        complete, viewers,
        "every viewer must receive every echo ({sent} keystrokes)"
    );
    let (with_viewers, without) = (summary(&mut with_viewers), summary(&mut without));
    println!(
        "fan-out: owner's keystroke echo ({samples} samples per side, interleaved, relay A; {viewers} view-only viewers, {} on A and {} on B, each received all {sent} echoes):",
        viewers.div_ceil(2),
        viewers / 2
    );
    println!("  0 viewers:  {without}");
    println!("  {viewers} viewers: {with_viewers}");
    println!(
        "  ratio {viewers}/0 viewers: p50 {:.2}, p99 {:.2} (added p50 {:+.3} ms, p99 {:+.3} ms)",
        with_viewers.p50 / without.p50,
        with_viewers.p99 / without.p99,
        with_viewers.p50 - without.p50,
        with_viewers.p99 - without.p99
    );

    let lines = arg("--fanout-lines", 1_000_000);
    if lines > 0 {
        // Raw mode, no echo: the owner reads only the command's output, up to an end marker.
        let mut rate = Vec::new();
        COUNT_ECHOES.store(false, Ordering::Relaxed);
        for term in [&mut alone, &mut shared] {
            raw_shell(term).await;
        }
        let before: Vec<u64> = watched
            .iter()
            .map(|v| v.bytes.load(Ordering::Relaxed))
            .collect();
        let mut owner_bytes = 0u64;
        for (name, term) in [("0 viewers", &mut alone), ("with viewers", &mut shared)] {
            term.output.clear();
            let t0 = Instant::now();
            term.run(&format!("seq 1 {lines}; printf '%s%s' DO NE"))
                .await;
            let mut total = 0u64;
            loop {
                if find(&term.output, b"DONE").is_some() {
                    break;
                }
                let keep = term.output.len().saturating_sub(4);
                term.output.drain(..keep);
                match term.next(Duration::from_secs(600)).await {
                    Some(Frame::Output(bytes)) => total += bytes.len() as u64,
                    Some(Frame::Event(_)) => {}
                    other => panic!("terminal ended: {other:?}"),
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            rate.push(total as f64 / secs / (1024.0 * 1024.0));
            println!(
                "  throughput, {name}: {:.1} MiB in {secs:.2} s, {:.1} MiB/s",
                total as f64 / (1024.0 * 1024.0),
                total as f64 / secs / (1024.0 * 1024.0)
            );
            owner_bytes = total;
        }
        let got_all = viewers_caught_up(
            &watched,
            |i, v| v.bytes.load(Ordering::Relaxed) - before[i] >= owner_bytes,
            Duration::from_secs(30),
        )
        .await;
        let dropped = watched
            .iter()
            .filter(|v| v.closed.load(Ordering::Relaxed) == 4017)
            .count();
        println!(
            "  throughput ratio {viewers}/0 viewers: {:.2}; viewers that received all {owner_bytes} bytes: {got_all}, dropped for falling behind (4017): {dropped}",
            rate[1] / rate[0]
        );
    }
    drop(watched);
    shared.close().await;
    alone.close().await;
}

/// Cut a terminal's connection with output it has not read, resume it, and time the new
/// WebSocket's opening to its first replayed output byte.
async fn resume_latency(base: &str, email: &str, id: u64, samples: usize) {
    let ticket = relay_world::ticket(base, email, id).await;
    let mut term = Terminal::open(base, &ticket, &[]).await.unwrap();
    read_until(&mut term, 0, b"$ ", Duration::from_secs(10)).await;
    let (session, secret) = term.session();
    let mut received = term.output.len() as u64;
    term.ack(received).await;
    let mut latency = Vec::with_capacity(samples);
    for i in 0..samples {
        term.run(&format!("printf '%s-%s\\n' resumed {i}")).await;
        // Let the output reach the relay's ring, unread by the client.
        tokio::time::sleep(Duration::from_millis(20)).await;
        term.cut();
        let t0 = Instant::now();
        term = Terminal::resume(base, &session, &secret, received, &[])
            .await
            .unwrap();
        loop {
            match term.next(Duration::from_secs(10)).await {
                Some(Frame::Output(_)) => break,
                Some(Frame::Event(_)) => {}
                other => panic!("no replay: {other:?}"),
            }
        }
        latency.push(t0.elapsed().as_secs_f64() * 1000.0);
        read_until(
            &mut term,
            0,
            format!("resumed-{i}").as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        read_until(&mut term, 0, b"$ ", Duration::from_secs(10)).await;
        received += term.output.len() as u64;
        term.ack(received).await;
    }
    term.close().await;
    let resume = summary(&mut latency);
    println!("resume (WebSocket open → first replayed byte, {samples} samples, sshd): {resume}");
}

/// Park `count` terminals whose 1 MiB window is full of unacknowledged output; relay RSS per
/// parked terminal.
async fn parked_memory(
    relay: &testkit::Process,
    base: &str,
    email: &str,
    echo_id: u64,
    count: usize,
) {
    let metrics_url = testkit::metrics::url(relay).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(relay.pid());
    let chunk = vec![b'x'; 60 * 1024];
    for _ in 0..count {
        let ticket = relay_world::ticket(base, email, echo_id).await;
        let mut term = Terminal::open(base, &ticket, &[]).await.unwrap();
        read_until(&mut term, 0, b"$ ", Duration::from_secs(30)).await;
        term.ack(term.output.len() as u64).await;
        // The in-process server echoes every byte: 1.2 MiB of output nobody reads or acks.
        for _ in 0..20 {
            term.send_bytes(&chunk).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        term.cut();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(relay.pid());
    let scrape = testkit::metrics::scrape(&metrics_url).await;
    let held = scrape.value("sushi_relay_resume_buffer_bytes");
    let parked = scrape.value("sushi_relay_terminals_detached");
    println!(
        "parked terminals: {parked} with full rings ({:.0} KiB of output held each); relay RSS {before} KiB → {after} KiB; {:.1} KiB per parked terminal",
        held / 1024.0 / parked.max(1.0),
        after.saturating_sub(before) as f64 / count as f64
    );
}

/// Bulk output through two machines on the same sshd and relay, one recorded and one not,
/// rounds alternating between them: the throughput ratio (recorded / unrecorded, median of
/// the rounds) and what the recordings kept (bytes, gaps), for random bytes (`cat`) and for
/// text (`base64` of them, the realistic bulk case: a log, a build, a file shown).
async fn recording_phase(
    gw: &RelayWorld,
    base: &str,
    email: &str,
    sshd: &testkit::ssh::SharedSshd,
    private_pem: &str,
    mib: usize,
    rounds: usize,
) {
    let machine = |recording: bool| {
        json!({"name": if recording { "recorded" } else { "unrecorded" },
               "hostname": sshd.host, "port": sshd.port.to_string(),
               "username": sshd.user, "private_key": private_pem, "recording": recording})
    };
    let off = gw.machine(email, machine(false)).await;
    let on = gw.machine(email, machine(true)).await;
    let recordings = gw
        .machines
        .recordings()
        .expect("the relay world wires recordings")
        .clone();
    let owner = domain::Identity(email.to_owned());

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("random.bin");
    let mut data = vec![0u8; mib * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(&file, &data).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(data);

    for (kind, command) in [
        ("random binary (cat)", format!("cat {}", file.display())),
        (
            "text (base64 of random bytes)",
            format!("base64 {}", file.display()),
        ),
    ] {
        let mut ratios = Vec::new();
        let (mut recorded, mut sent, mut gaps) = (0u64, 0u64, 0u64);
        for round in 1..=rounds {
            let mut secs = [0.0f64; 2];
            // The side that goes first alternates.
            let order = if round % 2 == 1 { [off, on] } else { [on, off] };
            for machine in order {
                let ticket = relay_world::ticket(base, email, machine).await;
                let mut term = Terminal::open(base, &ticket, &[]).await.unwrap();
                term.run("stty raw -echo; printf '%s%s' RE ADY").await;
                read_until(&mut term, 0, b"READY", Duration::from_secs(10)).await;
                term.output.clear();
                let t0 = Instant::now();
                // A marker outside the base64 alphabet, and long enough not to turn up in
                // random bytes (a bare `DONE` does, in either).
                term.run(&format!("{command}; printf '%s%s' '<<DO' 'NE>>'"))
                    .await;
                let got = discard_counting(&mut term, b"<<DONE>>", Duration::from_secs(600)).await;
                secs[usize::from(machine == on)] = t0.elapsed().as_secs_f64();
                term.close().await;
                if machine == on {
                    sent += got;
                }
            }
            ratios.push(secs[0] / secs[1]);
            println!(
                "recording round {round}, {kind}, {mib} MiB: unrecorded {:.2} s, recorded {:.2} s, ratio {:.3}",
                secs[0],
                secs[1],
                secs[0] / secs[1]
            );
        }
        // The recorded terminals' recordings, once their final chunks are written.
        let mut listed = Vec::new();
        for _ in 0..100 {
            listed = recordings.list(&owner).await.unwrap();
            let mine: Vec<_> = listed.iter().filter(|r| r.machine_id == on).collect();
            if mine.len() >= rounds && mine.iter().all(|r| r.ended_at.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for r in listed.iter().filter(|r| r.machine_id == on) {
            recorded += r.bytes;
            gaps += r.gaps;
            recordings
                .delete(
                    &owner,
                    &domain::recording::RecordingId::parse(&r.id).unwrap(),
                )
                .await
                .unwrap();
        }
        println!(
            "recording, {kind}: throughput recorded/unrecorded, median of {rounds}: {:.3}; recorded {recorded} of {sent} output bytes, {gaps} gaps",
            percentile(&mut ratios, 0.5)
        );
    }
}

/// Like [`discard_until`], counting the output bytes received.
async fn discard_counting(term: &mut Terminal, needle: &[u8], limit: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + limit;
    let mut total = 0u64;
    loop {
        if find(&term.output, needle).is_some() {
            return total + term.output.len() as u64;
        }
        let keep = term.output.len().saturating_sub(needle.len());
        total += keep as u64;
        term.output.drain(..keep);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(Frame::Output(_)) | Some(Frame::Event(_)) => {}
            other => panic!("terminal ended: {other:?}"),
        }
    }
}

/// `scp` between a local file and the test user's home (`up`: local to remote).
fn scp(keyfile: &std::path::Path, sshd: &testkit::ssh::SharedSshd, from: &str, to: &str) -> f64 {
    let t0 = Instant::now();
    let status = Command::new("scp")
        .args(["-q", "-o", "StrictHostKeyChecking=no", "-o"])
        .arg("UserKnownHostsFile=/dev/null")
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(keyfile)
        .args(["-P", &sshd.port.to_string(), from, to])
        .status()
        .unwrap();
    assert!(status.success(), "scp {from} {to} failed");
    t0.elapsed().as_secs_f64()
}

/// Above this size the files phase streams from and to disk, once, and checks SHA-256 rather
/// than comparing with `scp` (the file would not fit in the benchmark's memory).
const BIG_FILE_MIB: usize = 1024;

/// One upload and one download of an `mib` MiB random file through the relay, streamed from
/// and to disk (`curl -T` up, a hashing reader down): both SHA-256 must equal the local
/// file's, and the relay's peak RSS above its level before is printed.
async fn big_file_phase(relay: &testkit::Process, base: &str, email: &str, id: u64, mib: usize) {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let ticket = relay_world::ticket(base, email, id).await;
    let mut term = Terminal::open(base, &ticket, &[]).await.unwrap();
    read_until(&mut term, 0, b"$ ", Duration::from_secs(10)).await;
    let (session, _) = term.session();
    let token = testkit::token(email);
    let local = tempfile::tempdir_in("/var/tmp").unwrap();
    let local_file = local.path().join("big.bin");
    let mut sha = Sha256::new();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&local_file).unwrap());
        let mut piece = vec![0u8; 1 << 20];
        for _ in 0..mib {
            rand::thread_rng().fill_bytes(&mut piece);
            sha.update(&piece);
            out.write_all(&piece).unwrap();
        }
        out.flush().unwrap();
    }
    let sum = format!("{:x}", sha.finalize());
    let remote = format!("bench-big-{}.bin", uuid::Uuid::new_v4().simple());
    let url = |op: &str| format!("{base}/files/{session}/{op}");
    let bytes = (mib as f64) * 1024.0 * 1024.0;

    let pid = relay.pid();
    let baseline = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // The transfers take minutes: keep reading the terminal meanwhile, so that it answers the
    // relay's pings (a browser's tab does) and is not closed as gone, taking its SFTP channel.
    let stop = Arc::new(AtomicBool::new(false));
    let keeping = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Frame::Closed(code, reason)) = term.next(Duration::from_secs(5)).await {
                    panic!("the terminal closed during the transfer: {code} {reason}");
                }
                // A frame from the client, as a browser acknowledging output sends.
                let offset = term.output.len() as u64;
                term.ack(offset).await;
            }
            term
        })
    };

    let t0 = Instant::now();
    let upload = tokio::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "-T"])
        .arg(&local_file)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/octet-stream"])
        .arg(format!("{}?path={remote}", url("upload")))
        .output()
        .await
        .unwrap();
    let up_secs = t0.elapsed().as_secs_f64();
    assert!(upload.status.success(), "upload failed: {upload:?}");
    let answer: serde_json::Value = serde_json::from_slice(&upload.stdout).unwrap();
    assert_eq!(answer["data"]["sha256"], sum.as_str(), "upload: {answer}");
    std::fs::remove_file(&local_file).unwrap();

    let t0 = Instant::now();
    let mut response = reqwest::Client::new()
        .get(url("download"))
        .query(&[("path", remote.as_str())])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "download failed");
    let mut sha = Sha256::new();
    let mut got = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        sha.update(&chunk);
        got += chunk.len() as u64;
    }
    let down_secs = t0.elapsed().as_secs_f64();
    sampling.abort();
    let down_sum = format!("{:x}", sha.finalize());
    let _ = reqwest::Client::new()
        .delete(format!("{base}/files/{session}"))
        .query(&[("path", remote.as_str())])
        .bearer_auth(&token)
        .send()
        .await;
    stop.store(true, Ordering::Relaxed);
    let term = keeping.await.unwrap();
    assert_eq!(got, (mib as u64) << 20);
    assert_eq!(down_sum, sum, "downloaded bytes differ");
    println!(
        "big file ({mib} MiB): upload {:.0} s ({:.0} MiB/s), download {:.0} s ({:.0} MiB/s), SHA-256 equal both ways ({sum}); relay RSS {baseline} KiB before, peak +{} KiB",
        up_secs,
        bytes / up_secs / 1048576.0,
        down_secs,
        bytes / down_secs / 1048576.0,
        peak.load(Ordering::Relaxed).saturating_sub(baseline)
    );
    term.close().await;
}

/// Upload and download an `mib` MiB random file through the relay (`PUT`/`GET /files/…`, over
/// SFTP on the terminal's connection) and with `scp` (a new SSH connection each time, its
/// handshake measured apart and subtracted), rounds alternating; also the relay's peak RSS
/// above its level before the transfers, sampled every 20 ms.
#[allow(clippy::too_many_arguments)]
async fn files_phase(
    relay: &testkit::Process,
    base: &str,
    email: &str,
    id: u64,
    keyfile: &std::path::Path,
    sshd: &testkit::ssh::SharedSshd,
    mib: usize,
    rounds: usize,
) {
    let ticket = relay_world::ticket(base, email, id).await;
    let mut term = Terminal::open(base, &ticket, &[]).await.unwrap();
    read_until(&mut term, 0, b"$ ", Duration::from_secs(10)).await;
    let (session, _) = term.session();
    let token = testkit::token(email);
    let http = reqwest::Client::new();
    let bytes = mib * 1024 * 1024;
    let mut data = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut data);
    let local = tempfile::tempdir().unwrap();
    let local_file = local.path().join("up.bin");
    std::fs::write(&local_file, &data).unwrap();
    let local_file = local_file.display().to_string();
    let back = local.path().join("down.bin").display().to_string();
    let remote = format!("bench-files-{}.bin", uuid::Uuid::new_v4().simple());
    let target = format!("{}@{}:{remote}", sshd.user, sshd.host);
    let mibps = |secs: f64| bytes as f64 / secs / (1024.0 * 1024.0);

    // Peak RSS while the relay transfers, sampled beside the transfers.
    let pid = relay.pid();
    let baseline = rss_kib(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampling = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let url = |op: &str| format!("{base}/files/{session}/{op}");
    let (mut up_ratios, mut down_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t0 = Instant::now();
        let answer = http
            .put(url("upload"))
            .query(&[("path", remote.as_str()), ("overwrite", "true")])
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "upload failed");
        let relay_up = t0.elapsed().as_secs_f64();

        let t0 = Instant::now();
        let mut response = http
            .get(url("download"))
            .query(&[("path", remote.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "download failed");
        let mut got = 0usize;
        while let Some(chunk) = response.chunk().await.unwrap() {
            got += chunk.len();
        }
        assert_eq!(got, bytes);
        let relay_down = t0.elapsed().as_secs_f64();

        // scp's own SSH handshake, measured with an empty file and subtracted.
        let empty = local.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let handshake = scp(
            keyfile,
            sshd,
            &empty.display().to_string(),
            &format!("{target}.empty"),
        );
        let scp_up = (scp(keyfile, sshd, &local_file, &target) - handshake).max(0.001);
        let scp_down = (scp(keyfile, sshd, &target, &back) - handshake).max(0.001);
        up_ratios.push(scp_up / relay_up);
        down_ratios.push(scp_down / relay_down);
        println!(
            "files round {round} ({mib} MiB): upload relay {:.0} MiB/s vs scp {:.0} MiB/s (ratio {:.2}); download relay {:.0} MiB/s vs scp {:.0} MiB/s (ratio {:.2})",
            mibps(relay_up),
            mibps(scp_up),
            scp_up / relay_up,
            mibps(relay_down),
            mibps(scp_down),
            scp_down / relay_down
        );
    }
    sampling.abort();
    println!(
        "files throughput relay/scp, median of {rounds}: upload {:.2}, download {:.2}; relay RSS {} KiB before, peak +{} KiB during transfers of a {mib} MiB file",
        percentile(&mut up_ratios, 0.5),
        percentile(&mut down_ratios, 0.5),
        baseline,
        peak.load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(baseline)
    );
    let _ = http
        .delete(format!("{base}/files/{session}"))
        .query(&[("path", remote.as_str())])
        .bearer_auth(&token)
        .send()
        .await;
    let _ = http
        .delete(format!("{base}/files/{session}"))
        .query(&[("path", format!("{remote}.empty"))])
        .bearer_auth(&token)
        .send()
        .await;
    term.close().await;
}

#[tokio::main]
async fn main() {
    let sessions = arg("--sessions", 1000);
    let mib = arg("--mib", 256);
    let samples = arg("--samples", 500);
    let rounds = arg("--rounds", 3).max(1);
    let think = Duration::from_millis(arg("--think-ms", 0) as u64);
    let two_writes = arg("--echo-writes", 1) == 2;
    let phases = phases();
    let relay_bin = relay_bin();

    let gw = RelayWorld::new().await;
    let mut env = relay_env(sessions);
    // The files phase moves one `--mib` file; let the relay take it (default limit 1 GiB).
    env.push((
        "FILES_MAX_BYTES",
        ((mib as u64 + 1) << 20).max(1 << 30).to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let relay = gw.start(&relay_bin, &env);
    let base = relay.base_url.clone();
    let email = gw.user("bench").await;
    let sshd = testkit::ssh::shared_sshd();
    let keys = testkit::ssh::keygen("ed25519", None);
    testkit::ssh::authorize(&keys.public_line);
    let keydir = tempfile::tempdir().unwrap();
    let keyfile = keydir.path().join("id");
    std::fs::write(&keyfile, &keys.private_pem).unwrap();
    std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let id = gw
        .machine(
            &email,
            json!({"name": "bench", "hostname": sshd.host, "port": sshd.port.to_string(),
                   "username": sshd.user, "private_key": keys.private_pem}),
        )
        .await;
    println!(
        "relay benchmark: relay {base}, sshd {}:{}",
        sshd.host, sshd.port
    );

    // 1. Connect latency and time to first prompt byte.
    if phases.contains(&"connect") {
        let (mut connect_ms, mut first_byte_ms) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let t0 = Instant::now();
            let ticket = relay_world::ticket(&base, &email, id).await;
            connect_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            let t1 = Instant::now();
            let mut term = Terminal::open(&base, &ticket, &[]).await.unwrap();
            loop {
                match term.next(Duration::from_secs(10)).await {
                    Some(Frame::Output(_)) => break,
                    Some(Frame::Event(_)) => {}
                    other => panic!("no prompt: {other:?}"),
                }
            }
            first_byte_ms.push(t1.elapsed().as_secs_f64() * 1000.0);
            term.close().await;
        }
        println!(
            "connect (POST → uuid, incl. Argon2id unlock + SSH handshake): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&mut connect_ms, 0.5),
            percentile(&mut connect_ms, 0.99)
        );
        println!(
            "WebSocket open → first prompt byte: p50 {:.1} ms, p99 {:.1} ms",
            percentile(&mut first_byte_ms, 0.5),
            percentile(&mut first_byte_ms, 0.99)
        );
    }

    // 2. Throughput: cat of a large random file, through the relay and with ssh directly.
    if phases.contains(&"throughput") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("big.bin");
        let mut data = vec![0u8; mib * 1024 * 1024];
        rand::thread_rng().fill_bytes(&mut data);
        std::fs::write(&file, &data).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(data);
        let bytes = (mib * 1024 * 1024) as f64;

        let direct = |remote: String| {
            let t0 = Instant::now();
            let mut child = ssh_command(&keyfile, &sshd, &remote)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0usize;
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            let _ = child.wait();
            (t0.elapsed().as_secs_f64(), total)
        };
        let mibps = |secs: f64| bytes / secs / (1024.0 * 1024.0);
        // Rounds alternate relay and direct so that whatever else the machine is doing lands on
        // both sides; the median ratio is the figure.
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let ticket = relay_world::ticket(&base, &email, id).await;
            let mut term = Terminal::open(&base, &ticket, &[]).await.unwrap();
            term.run("stty raw -echo; printf '%s%s' RE ADY").await;
            read_until(&mut term, 0, b"READY", Duration::from_secs(10)).await;
            term.output.clear();
            let t0 = Instant::now();
            term.run(&format!("cat {}; printf '%s%s' DO NE", file.display()))
                .await;
            discard_until(&mut term, b"DONE", Duration::from_secs(600)).await;
            let relay_secs = t0.elapsed().as_secs_f64();
            term.output.clear();
            term.close().await;

            let (handshake_secs, _) = direct("true".to_owned());
            let (direct_total, got) = direct(format!("stty raw -echo; cat {}", file.display()));
            assert!(got as f64 >= bytes, "direct ssh returned {got} bytes");
            let direct_secs = (direct_total - handshake_secs).max(0.001);
            ratios.push(direct_secs / relay_secs);
            println!(
                "throughput round {round} ({mib} MiB cat, PTY raw): relay+WebSocket {:.0} MiB/s, ssh direct {:.0} MiB/s, ratio {:.2}",
                mibps(relay_secs),
                mibps(direct_secs),
                direct_secs / relay_secs
            );
        }
        println!(
            "throughput ratio relay/direct, median of {rounds}: {:.2}",
            percentile(&mut ratios, 0.5)
        );
    }

    // 3. Keystroke echo round trip (PTY echo of `cat`), relay vs direct, interleaved.
    if phases.contains(&"echo") {
        let ticket = relay_world::ticket(&base, &email, id).await;
        let (mut relay_rtt, mut direct_rtt) =
            echo_phase(&base, &ticket, &keyfile, &sshd, samples, think, two_writes).await;
        if let Some(path) = arg_str("--echo-csv") {
            let mut csv = String::from("sample,relay_ms,direct_ms\n");
            for (i, (r, d)) in relay_rtt.iter().zip(&direct_rtt).enumerate() {
                csv.push_str(&format!("{i},{r:.4},{d:.4}\n"));
            }
            std::fs::write(&path, csv).unwrap();
        }
        let via_relay = summary(&mut relay_rtt);
        let via_ssh = summary(&mut direct_rtt);
        println!(
            "keystroke echo ({samples} samples per side, interleaved, think {} ms, {}, WebSocket client without TCP_NODELAY):",
            think.as_millis(),
            if two_writes {
                "remote answers in 2 writes"
            } else {
                "PTY echo of cat"
            }
        );
        println!("  relay+WebSocket: {via_relay}");
        println!("  ssh -tt direct:  {via_ssh}");
        println!(
            "  added by the relay: p50 {:+.3} ms, p99 {:+.3} ms; ratio relay/direct p50 {:.2}, p99 {:.2}",
            via_relay.p50 - via_ssh.p50,
            via_relay.p99 - via_ssh.p99,
            via_relay.p50 / via_ssh.p50,
            via_relay.p99 / via_ssh.p99
        );
    }

    // 4. Fan-out: 20 viewers of a shared terminal, on two relays.
    if phases.contains(&"fanout") {
        fanout_phase(&gw, &email, id, samples, arg("--viewers", 20)).await;
    }

    // 5. Recording's cost: the same output through a recorded and an unrecorded machine.
    if phases.contains(&"recording") {
        recording_phase(&gw, &base, &email, &sshd, &keys.private_pem, mib, rounds).await;
    }

    // 6. Files: upload and download through the relay's SFTP routes versus `scp`.
    if phases.contains(&"files") && mib > BIG_FILE_MIB {
        big_file_phase(&relay, &base, &email, id, mib).await;
    } else if phases.contains(&"files") {
        files_phase(&relay, &base, &email, id, &keyfile, &sshd, mib, rounds).await;
    }

    let echo_port = start_echo_server().await;
    let echo_id = gw
        .machine(
            &email,
            json!({"name": "echo", "hostname": "127.0.0.1", "port": echo_port.to_string(),
                   "username": "bench", "password": "x"}),
        )
        .await;

    // 5. Resume: WebSocket open to the first replayed byte (real sshd), and relay memory per
    // parked terminal whose ring is full (in-process SSH server).
    if phases.contains(&"resume") {
        resume_latency(&base, &email, id, samples.min(200)).await;
        parked_memory(&relay, &base, &email, echo_id, arg("--parked", 100)).await;
    }

    // 6. Memory per idle open terminal, against the lightweight russh server.
    if !phases.contains(&"memory") {
        return;
    }
    // Warm up (allocator, runtime workers, blocking pool) with a round of sessions, closed again.
    let mut warm = Vec::new();
    for _ in 0..16 {
        let ticket = relay_world::ticket(&base, &email, echo_id).await;
        let mut term = Terminal::open(&base, &ticket, &[]).await.unwrap();
        read_until(&mut term, 0, b"$ ", Duration::from_secs(30)).await;
        warm.push(term);
    }
    for term in warm {
        term.close().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(relay.pid());
    let started = Instant::now();
    // First the SSH sessions alone (connect: tickets issued, shells running, no WebSocket),
    // then their terminals: the split says which side the memory is on.
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        let (base, email, limit) = (base.clone(), email.clone(), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            relay_world::ticket(&base, &email, echo_id).await
        });
    }
    let mut tickets = Vec::with_capacity(sessions);
    while let Some(ticket) = tasks.join_next().await {
        tickets.push(ticket.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = rss_kib(relay.pid());
    let mut tasks = tokio::task::JoinSet::new();
    for ticket in tickets {
        let (base, limit) = (base.clone(), Arc::clone(&limit));
        tasks.spawn(async move {
            let permit = limit.acquire_owned().await.unwrap();
            let mut term = Terminal::open(&base, &ticket, &[]).await.unwrap();
            drop(permit);
            read_until(&mut term, 0, b"$ ", Duration::from_secs(30)).await;
            term
        });
    }
    let mut open = Vec::with_capacity(sessions);
    while let Some(term) = tasks.join_next().await {
        open.push(term.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(relay.pid());
    println!(
        "of which: SSH session waiting for its WebSocket {:.1} KiB; WebSocket and terminal pump {:.1} KiB",
        connected.saturating_sub(before) as f64 / sessions as f64,
        after.saturating_sub(connected) as f64 / sessions as f64
    );
    println!(
        "idle terminals: {} open in {:.1} s; relay RSS {} KiB → {} KiB; {:.1} KiB per idle terminal",
        open.len(),
        started.elapsed().as_secs_f64(),
        before,
        after,
        (after.saturating_sub(before)) as f64 / open.len() as f64
    );
    // `--hold-secs N` keeps the terminals open a while longer, for a heap profiler attached to
    // the relay to take its picture (e.g. a relay run under heaptrack, killed during the hold).
    let hold = arg("--hold-secs", 0);
    if hold > 0 {
        println!("holding {} terminals for {hold} s", open.len());
        tokio::time::sleep(Duration::from_secs(hold as u64)).await;
    }
    for term in open {
        drop(term);
    }
}
