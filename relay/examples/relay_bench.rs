//! Relay benchmark (issue 3): throughput and keystroke echo through relay+WebSocket versus
//! `ssh` directly, relay memory per idle terminal at N concurrent sessions, connect latency
//! and time to the first prompt byte. Not a test: it prints figures for `docs/relay-benchmark.md`.
//!
//! Needs the test services (`localstack/services.sh start`, then
//! `eval "$(localstack/services.sh env)"`), and the release relay binary next to this example:
//!
//! ```text
//! cargo build --release -p relay --bins --examples
//! target/release/examples/relay_bench [--sessions 1000] [--mib 256] [--samples 500] [--rounds 3]
//! ```
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

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use russh::server::{Auth, Msg, Server as _, Session};
use russh::{Channel, ChannelId, CryptoVec};
use serde_json::json;
use testkit::relay_world::{self, RelayWorld};
use testkit::ws::{Frame, Terminal, find};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// A minimal SSH server: any password, a PTY, a shell that prints a prompt and echoes.
#[derive(Clone)]
struct Echo;

impl russh::server::Server for Echo {
    type Handler = Self;
    fn new_client(&mut self, _: Option<std::net::SocketAddr>) -> Self {
        Echo
    }
}

impl russh::server::Handler for Echo {
    type Error = russh::Error;

    async fn auth_password(&mut self, _: &str, _: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _: Channel<Msg>,
        _: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        _: ChannelId,
        _: &str,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.data(channel, CryptoVec::from_slice(b"$ "))?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.data(channel, CryptoVec::from_slice(data))?;
        Ok(())
    }
}

async fn start_echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = russh::keys::PrivateKey::random(
        &mut russh::keys::ssh_key::rand_core::OsRng,
        russh::keys::Algorithm::Ed25519,
    )
    .unwrap();
    let config = Arc::new(russh::server::Config {
        keys: vec![key],
        auth_rejection_time: Duration::from_millis(0),
        ..Default::default()
    });
    tokio::spawn(async move {
        let mut server = Echo;
        let _ = server.run_on_socket(config, &listener).await;
    });
    port
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

#[tokio::main]
async fn main() {
    let sessions = arg("--sessions", 1000);
    let mib = arg("--mib", 256);
    let samples = arg("--samples", 500);
    let rounds = arg("--rounds", 3).max(1);
    let relay_bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("relay");
    assert!(
        relay_bin.exists(),
        "build the relay first: {}",
        relay_bin.display()
    );
    let relay_bin = relay_bin.display().to_string();

    let gw = RelayWorld::new().await;
    let relay = gw.start(
        &relay_bin,
        &[
            ("MAX_SESSIONS", &(sessions + 100).to_string()),
            ("RUST_LOG", "warn"),
            ("IDLE_TIMEOUT_SECS", "3600"),
            // Argon2id's ~19 MiB working buffer is freed after every unlock; a fixed mmap
            // threshold makes glibc hand it back to the OS instead of keeping it in a per-thread
            // arena, so RSS measures sessions rather than allocator retention. (Recommended
            // for production relays too; see docs/relay-benchmark.md.)
            ("MALLOC_MMAP_THRESHOLD_", "131072"),
            ("MALLOC_ARENA_MAX", "2"),
        ],
    );
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

    // 2. Throughput: cat of a large random file, through the relay and with ssh directly.
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

    // 3. Keystroke echo round trip (PTY echo of `cat`), relay vs direct.
    let ticket = relay_world::ticket(&base, &email, id).await;
    let mut term = Terminal::open(&base, &ticket, &[]).await.unwrap();
    term.run("stty -icanon; printf '%s%s' RE ADY; cat >/dev/null")
        .await;
    read_until(&mut term, 0, b"READY", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut relay_rtt = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mark = term.output.len();
        let t0 = Instant::now();
        term.send_bytes(b"k").await;
        read_until(&mut term, mark, b"k", Duration::from_secs(5)).await;
        relay_rtt.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    term.close().await;

    let mut child = ssh_command(
        &keyfile,
        &sshd,
        "stty -icanon; printf '%s%s' RE ADY; cat >/dev/null",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let direct_rtt = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while find(&seen, b"READY").is_none() {
            stdout.read_exact(&mut byte).unwrap();
            seen.push(byte[0]);
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut rtt = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t0 = Instant::now();
            stdin.write_all(b"k").unwrap();
            stdin.flush().unwrap();
            loop {
                stdout.read_exact(&mut byte).unwrap();
                if byte[0] == b'k' {
                    break;
                }
            }
            rtt.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        rtt
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let (mut relay_rtt, mut direct_rtt) = (relay_rtt, direct_rtt);
    let (r50, r99) = (
        percentile(&mut relay_rtt, 0.5),
        percentile(&mut relay_rtt, 0.99),
    );
    let (d50, d99) = (
        percentile(&mut direct_rtt, 0.5),
        percentile(&mut direct_rtt, 0.99),
    );
    println!(
        "keystroke echo ({samples} samples): relay p50 {r50:.3} ms p99 {r99:.3} ms; direct p50 {d50:.3} ms p99 {d99:.3} ms; added p50 {:.3} ms p99 {:.3} ms",
        r50 - d50,
        r99 - d99
    );

    // 4. Memory per idle open terminal, against the lightweight russh server.
    let echo_port = start_echo_server().await;
    let echo_id = gw
        .machine(
            &email,
            json!({"name": "echo", "hostname": "127.0.0.1", "port": echo_port.to_string(),
                   "username": "bench", "password": "x"}),
        )
        .await;
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
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        let (base, email, limit) = (base.clone(), email.clone(), Arc::clone(&limit));
        tasks.spawn(async move {
            let permit = limit.acquire_owned().await.unwrap();
            let ticket = relay_world::ticket(&base, &email, echo_id).await;
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
        "idle terminals: {} open in {:.1} s; relay RSS {} KiB → {} KiB; {:.1} KiB per idle terminal",
        open.len(),
        started.elapsed().as_secs_f64(),
        before,
        after,
        (after.saturating_sub(before)) as f64 / open.len() as f64
    );
    for term in open {
        drop(term);
    }
}
