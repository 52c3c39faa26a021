//! Pieces the relay benchmarks share (`relay_bench`, `relay_load`): argument parsing, the
//! figures (RSS, CPU, percentiles), the release relay binary and its benchmark settings, and a
//! lightweight in-process SSH server built on russh. One OpenSSH process per session would not
//! fit on the machine at thousands of sessions; this server costs a few KiB per session.
//!
//! Each example compiles this module on its own and uses a different part of it, hence the
//! `dead_code` allowance.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use russh::server::{Auth, Msg, Server as _, Session};
use russh::{Channel, ChannelId, CryptoVec};

pub fn arg(name: &str, default: usize) -> usize {
    arg_str(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU seconds (user + system) `pid` has used so far, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat` times (100 on Linux in practice).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// p50, p90, p99 and max of a set of samples (sorts them).
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn summary(samples: &mut [f64]) -> Summary {
    Summary {
        p50: percentile(samples, 0.5),
        p90: percentile(samples, 0.9),
        p99: percentile(samples, 0.99),
        max: percentile(samples, 1.0),
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

/// The release relay binary next to the running example (`target/release/relay`).
pub fn relay_bin() -> String {
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
    relay_bin.display().to_string()
}

/// Relay settings for a benchmark holding `sessions` terminals for one user.
pub fn relay_env(sessions: usize) -> Vec<(&'static str, String)> {
    let cap = (sessions + 100).to_string();
    vec![
        ("MAX_SESSIONS", cap.clone()),
        // One benchmark user holds every session and connects several at a time: lift the
        // per-user caps that protect a shared relay from one account.
        ("MAX_SESSIONS_PER_USER", cap),
        ("MAX_CONNECTS_PER_USER", "64".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("IDLE_TIMEOUT_SECS", "3600".to_owned()),
        // Argon2id's ~19 MiB working buffer is freed after every unlock; a fixed mmap
        // threshold makes glibc hand it back to the OS instead of keeping it in a per-thread
        // arena, so RSS measures sessions rather than allocator retention. (Recommended
        // for production relays too; see docs/relay-benchmark.md.)
        ("MALLOC_MMAP_THRESHOLD_", "131072".to_owned()),
        ("MALLOC_ARENA_MAX", "2".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
    ]
}

/// Keystrokes that make the [`Echo`] server end the shell: exit status 0, EOF, channel close,
/// as a shell does on `exit`. Nothing else the benchmarks send contains `~`.
pub const EXIT_SEQUENCE: &[u8] = b"~exit~";

/// A minimal SSH server: any password, a PTY, a shell that prints a prompt and echoes every
/// byte, and ends on [`EXIT_SEQUENCE`].
#[derive(Clone)]
pub struct Echo;

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
        if testkit::ws::contains(data, EXIT_SEQUENCE) {
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            session.close(channel)?;
            return Ok(());
        }
        session.data(channel, CryptoVec::from_slice(data))?;
        Ok(())
    }
}

/// Start the [`Echo`] server on a free loopback port; returns the port.
pub async fn start_echo_server() -> u16 {
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
        // Idle terminals of a long run must not be ended by the server's own 10-minute default.
        inactivity_timeout: None,
        ..Default::default()
    });
    tokio::spawn(async move {
        let mut server = Echo;
        let _ = server.run_on_socket(config, &listener).await;
    });
    port
}
