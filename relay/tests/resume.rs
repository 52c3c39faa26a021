//! Terminals outlive their WebSocket: a client that loses its connection (here: the TCP
//! connection dropped mid-stream, no close frame) resumes the same shell on any replica, with
//! every output byte delivered once and every keystroke applied once; a terminal nobody comes
//! back for ends when its grace runs out; only the holder of the secret — and, from a browser,
//! the owner's cookie — gets it back; a second attach takes over from the first.
//!
//! Everything is real: two relay processes sharing redis-server, OpenSSH's sshd as the target,
//! WebSocket clients over loopback TCP. The client side of the protocol (counting output,
//! acking, resending keystrokes) is what `testkit::ws::Terminal` does, as the web app does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use testkit::metrics;
use testkit::relay_world::{self, RelayWorld, STEP};
use testkit::ws::{Frame, Terminal, find};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// Acknowledge every this many bytes, as the web app does.
const ACK_EVERY: u64 = 64 * 1024;

fn redis() -> String {
    testkit::service_env("SUSHI_TEST_REDIS_URL")
}

/// A signed-in user with a machine on the test sshd, and the browser they use.
struct User {
    email: String,
    id: u64,
    browser: relay_world::Browser,
}

impl User {
    async fn new(gw: &RelayWorld, test: &str) -> Self {
        let email = gw.user(test).await;
        let id = gw.password_machine(&email).await;
        let browser = relay_world::browser(&email);
        Self { email, id, browser }
    }

    /// Connect through `relay` and open the terminal there; its `session` event read.
    async fn open(&self, relay: &str) -> (Terminal, String, String) {
        let ticket = relay_world::ticket(relay, &self.email, self.id).await;
        let mut term = Terminal::open(relay, &ticket, &self.browser.headers())
            .await
            .unwrap();
        term.expect_event("session", STEP).await;
        let (session, secret) = term.session();
        (term, session, secret)
    }
}

/// Read (acknowledging as the web app does, counting from `base`) until `done` holds for
/// everything received in this connection.
async fn read_until(term: &mut Terminal, base: u64, limit: Duration, done: impl Fn(&[u8]) -> bool) {
    let deadline = Instant::now() + limit;
    let mut acked = base;
    while !done(&term.output) {
        let left = deadline.saturating_duration_since(Instant::now());
        match term.next(left).await {
            Some(Frame::Closed(code, reason)) => panic!("closed ({code} {reason})"),
            Some(_) => {}
            None => panic!(
                "timed out after {} bytes: {:?}",
                term.output.len(),
                String::from_utf8_lossy(&term.output[term.output.len().saturating_sub(200)..])
            ),
        }
        let received = base + term.output.len() as u64;
        if received - acked >= ACK_EVERY {
            term.ack(received).await;
            acked = received;
        }
    }
}

/// The SHA-256 the target printed as `SUM-<64 hex>-END`, once it has.
fn target_sum(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    text.match_indices("SUM-")
        .map(|(at, _)| &text[at + 4..])
        .find(|rest| {
            rest.len() >= 68
                && rest[..64].chars().all(|c| c.is_ascii_hexdigit())
                && rest[64..].starts_with("-END")
        })
        .map(|rest| rest[..64].to_owned())
}

/// The shell's PID, via `echo $$` with a marker the echoed command line does not contain.
async fn shell_pid(term: &mut Terminal) -> u32 {
    term.run("echo PID-$((1+0))-$$-E$((0))ND").await;
    term.expect_output("-E0ND", STEP).await;
    let text = String::from_utf8_lossy(&term.output).to_string();
    let at = text.rfind("PID-1-").unwrap();
    text[at + 6..].split('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_stream_cut_mid_way_resumes_on_the_other_replica_byte_exact() {
    const SIZE: usize = 16 * 1024 * 1024;
    let gw = RelayWorld::new().await;
    let owner = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let other = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "resume-stream").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&owner.base_url).await;
    term.ack(0).await;

    // 16 MiB of random bytes, and its SHA-256 computed on the target.
    term.run(&format!(
        "f=$(mktemp); head -c {SIZE} /dev/urandom > $f; printf 'SUM-%s-END\\n' \"$(sha256sum < $f | cut -c1-64)\""
    ))
    .await;
    read_until(&mut term, 0, STEP * 4, |out| target_sum(out).is_some()).await;
    let expected_sum = target_sum(&term.output).unwrap();

    // Raw mode: the PTY passes the bytes through untouched.
    term.run("stty raw -echo; printf 'RANDOM''-BEGIN'; cat $f; stty sane; rm -f $f")
        .await;
    read_until(&mut term, 0, STEP * 4, |out| {
        find(out, b"RANDOM-BEGIN").is_some_and(|at| out.len() > at + 12 + SIZE / 4)
    })
    .await;
    let before = term.output.clone();
    let begin = find(&before, b"RANDOM-BEGIN").unwrap() + 12;
    term.cut();

    // The other replica forwards the resume to the relay holding the session.
    let offset = before.len() as u64;
    let mut resumed = Terminal::resume(&other.base_url, &session, &secret, offset, &headers)
        .await
        .unwrap();
    let event = resumed.expect_event("resumed", STEP).await;
    assert_eq!(event["offset"], offset, "{event}");
    assert_eq!(event["dropped"], 0, "{event}");
    let wanted = begin + SIZE - before.len();
    read_until(&mut resumed, offset, STEP * 8, |out| out.len() >= wanted).await;

    let mut stream = before[begin..].to_vec();
    stream.extend_from_slice(&resumed.output[..wanted]);
    assert_eq!(stream.len(), SIZE);
    let got = format!("{:x}", Sha256::digest(&stream));
    assert_eq!(
        got, expected_sum,
        "the bytes received differ from the bytes sent"
    );

    // Still the same, working shell.
    resumed.run("echo after-$((6*7))").await;
    resumed.expect_output("after-42", STEP).await;
}

#[tokio::test]
async fn keystrokes_cut_in_flight_are_applied_exactly_once() {
    let gw = RelayWorld::new().await;
    let owner = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let other = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "resume-typing").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&owner.base_url).await;
    term.ack(0).await;

    // One keystroke per frame, as a person types; the connection drops in the middle.
    let word: String = (0..60).map(|i| format!("k{i:02}")).collect();
    let line = format!("printf '%s\\n' {word} | tr k K\n");
    let (first, rest) = line.as_bytes().split_at(line.len() / 2);
    for byte in first {
        term.send_bytes(&[*byte]).await;
    }
    let sent = term.sent.clone();
    let received = term.output.len() as u64;
    let term_output = term.output.clone();
    term.cut();

    let mut resumed = Terminal::resume(&other.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    let event = resumed.expect_event("resumed", STEP).await;
    let taken = usize::try_from(event["input_offset"].as_u64().unwrap()).unwrap();
    assert!(taken <= sent.len(), "{event}");
    // Resend what the relay never read, then the rest of the line.
    resumed.send_bytes(&sent[taken..]).await;
    for byte in rest {
        resumed.send_bytes(&[*byte]).await;
    }
    let expected = format!("{}\r\n", word.replace('k', "K"));
    resumed.expect_output(&expected, STEP).await;
    let all = [term_output, resumed.output.clone()].concat();
    let upper = word.replace('k', "K");
    assert_eq!(
        all.windows(upper.len())
            .filter(|w| *w == upper.as_bytes())
            .count(),
        1,
        "the line ran once, with every keystroke once"
    );
}

#[tokio::test]
async fn a_terminal_nobody_resumes_ends_with_its_grace_and_sshd_sees_it() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(
        RELAY,
        &[("RESUME_GRACE_SECS", "2"), ("METRICS_ADDR", "127.0.0.1:0")],
    );
    let url = metrics::url(&relay).await;
    let user = User::new(&gw, "resume-grace").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&relay.base_url).await;
    assert_eq!(term.events[0]["grace_secs"], 2);
    let pid = shell_pid(&mut term).await;
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    term.cut();

    // Parked: the shell is still there for a moment...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        proc_dir.exists(),
        "the shell ended before the grace ran out"
    );
    // ...and gone once the grace is over: the relay closed the SSH connection.
    let started = Instant::now();
    while proc_dir.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the shell outlived the resume grace"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = testkit::Client::new(&relay.base_url, None)
        .get("/relay/health")
        .await;
    assert_eq!(health.data()["sessions"], 0, "the slot was given back");
    assert_eq!(
        metrics::scrape(&url)
            .await
            .value("sushi_relay_terminals_detached"),
        0.0
    );
    let mut late = Terminal::resume(&relay.base_url, &session, &secret, 0, &headers)
        .await
        .unwrap();
    assert_eq!(late.expect_close(STEP).await.0, 4012);
}

#[tokio::test]
async fn only_the_secret_and_the_owners_cookie_resume_and_a_second_attach_takes_over() {
    let gw = RelayWorld::new().await;
    let owner = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let other = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "resume-owner").await;
    let mallory = gw.user("resume-mallory").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&owner.base_url).await;
    let pid = shell_pid(&mut term).await;
    let received = term.output.len() as u64;
    term.cut();

    for base in [&owner.base_url, &other.base_url] {
        // A wrong secret, with the owner's own cookie.
        let mut wrong = Terminal::resume(base, &session, "not-the-secret", received, &headers)
            .await
            .unwrap();
        assert_eq!(wrong.expect_close(STEP).await.0, 4012);
        // The right secret with another user's cookie.
        let mallory_browser = relay_world::browser(&mallory);
        let theirs = mallory_browser.headers();
        let mut stolen = Terminal::resume(base, &session, &secret, received, &theirs)
            .await
            .unwrap();
        assert_eq!(stolen.expect_close(STEP).await.0, 4012);
        // The right secret from a browser with no cookie at all.
        let origin = [headers[0]];
        let mut anonymous = Terminal::resume(base, &session, &secret, received, &origin)
            .await
            .unwrap();
        assert_eq!(anonymous.expect_close(STEP).await.0, 4003);
    }

    // The owner comes back through the other relay: the same shell.
    let mut first = Terminal::resume(&other.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    first.expect_event("resumed", STEP).await;
    assert_eq!(shell_pid(&mut first).await, pid);
    // A second window takes over; the first is told why.
    let mut second = Terminal::resume(&owner.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    second.expect_event("resumed", STEP).await;
    assert_eq!(first.expect_close(STEP).await.0, 4013);
    assert_eq!(shell_pid(&mut second).await, pid);
    // An explicit close ends the session at once: nothing left to resume.
    second.close().await;
    let mut after = Terminal::resume(&owner.base_url, &session, &secret, 0, &headers)
        .await
        .unwrap();
    assert_eq!(after.expect_close(STEP).await.0, 4012);
}

#[tokio::test]
async fn output_beyond_the_relay_wide_budget_is_reported_to_the_byte() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(
        RELAY,
        &[
            ("RESUME_BUFFER_TOTAL_BYTES", "65536"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
    );
    let url = metrics::url(&relay).await;
    let user = User::new(&gw, "resume-overflow").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&relay.base_url).await;
    term.ack(0).await;
    term.run("sleep 1; seq 1 60000; echo OVER-$((2*2))").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = term.output.len() as u64;
    term.cut();
    // All the output arrives while nobody is attached; the budget keeps the last 64 KiB.
    let started = Instant::now();
    let total = loop {
        let out = metrics::scrape(&url)
            .await
            .value(r#"sushi_relay_terminal_bytes_total{direction="out"}"#);
        if out > 400_000.0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            break metrics::scrape(&url)
                .await
                .value(r#"sushi_relay_terminal_bytes_total{direction="out"}"#)
                as u64;
        }
        assert!(started.elapsed() < STEP, "the output never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut resumed = Terminal::resume(&relay.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    let event = resumed.expect_event("resumed", STEP).await;
    let (from, dropped) = (
        event["offset"].as_u64().unwrap(),
        event["dropped"].as_u64().unwrap(),
    );
    assert_eq!(from, received + dropped, "{event}");
    assert!(dropped > 300_000, "{event}");
    resumed.expect_output("OVER-4", STEP).await;
    // Received before the cut, reported dropped, replayed: exactly what the shell wrote.
    let accounted = |term: &Terminal| received + dropped + term.output.len() as u64;
    while accounted(&resumed) < total {
        if resumed.next(Duration::from_secs(2)).await.is_none() {
            break;
        }
    }
    assert_eq!(accounted(&resumed), total);
    assert!(find(&resumed.output, b"59999\r\n60000\r\n").is_some());
}

#[tokio::test]
async fn a_draining_relay_still_serves_resumes_of_its_parked_terminals() {
    let gw = RelayWorld::new().await;
    let mut relay = gw.start(RELAY, &[("DRAIN_GRACE_SECS", "4")]);
    let user = User::new(&gw, "resume-drain").await;
    let headers = user.browser.headers();
    let (mut term, session, secret) = user.open(&relay.base_url).await;
    let pid = shell_pid(&mut term).await;
    let received = term.output.len() as u64;
    term.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;

    relay.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New terminals are refused, but the parked one comes back, told about the drain.
    let answer = relay_world::connect(
        &relay.base_url,
        &user.email,
        user.id,
        relay_world::MASTER_PASSWORD,
    )
    .await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    let mut resumed = Terminal::resume(&relay.base_url, &session, &secret, received, &headers)
        .await
        .unwrap();
    resumed.expect_event("resumed", STEP).await;
    assert_eq!(
        resumed.expect_event("shutdown", STEP).await["grace_secs"],
        4
    );
    assert_eq!(shell_pid(&mut resumed).await, pid);
    let (code, _) = resumed.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, 1001);
    let exit = relay
        .wait_exit(Duration::from_secs(10))
        .expect("relay did not exit");
    assert!(exit.success(), "exit status {exit:?}");
}
