//! A person types in a browser and a shell on a real server answers: connect + terminal
//! WebSocket against the real relay binary, a real OpenSSH sshd and real keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ssh::{self, PrivateSshd, SshdOptions};
use testkit::ws::{Frame, Terminal, find};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

async fn open_terminal(base: &str, ticket: &str, email: &str) -> Terminal {
    Terminal::open(base, ticket, &relay_world::browser(email).headers())
        .await
        .unwrap()
}

/// Log in with `body`'s credentials and prove the shell runs commands as the test user.
async fn shell_works(gw: &RelayWorld, relay: &testkit::Process, email: &str, id: u64) {
    let ticket = relay_world::ticket(&relay.base_url, email, id).await;
    let mut term = open_terminal(&relay.base_url, &ticket, email).await;
    term.run("echo hello-$((6*7))").await;
    term.expect_output("hello-42", STEP).await;
    let _ = gw;
    term.close().await;
}

async fn key_machine(gw: &RelayWorld, email: &str, kind: &str, passphrase: Option<&str>) -> u64 {
    let keys = ssh::keygen(kind, passphrase);
    ssh::authorize(&keys.public_line);
    let sshd = ssh::shared_sshd();
    let mut body = json!({
        "name": format!("{kind} key"),
        "hostname": sshd.host,
        "port": sshd.port.to_string(),
        "username": sshd.user,
        "private_key": keys.private_pem,
    });
    if let Some(p) = passphrase {
        body["passphrase"] = json!(p);
    }
    gw.machine(email, body).await
}

#[tokio::test]
async fn password_login_opens_a_working_shell() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("password").await;
    let id = gw.password_machine(&email).await;
    shell_works(&gw, &relay, &email, id).await;
}

#[tokio::test]
async fn ed25519_key_login_works() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("ed25519").await;
    let id = key_machine(&gw, &email, "ed25519", None).await;
    shell_works(&gw, &relay, &email, id).await;
}

#[tokio::test]
async fn rsa_key_login_works() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("rsa").await;
    let id = key_machine(&gw, &email, "rsa", None).await;
    shell_works(&gw, &relay, &email, id).await;
}

#[tokio::test]
async fn passphrase_protected_key_login_works() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("passphrase").await;
    let id = key_machine(&gw, &email, "ed25519", Some("open sesame")).await;
    shell_works(&gw, &relay, &email, id).await;
}

#[tokio::test]
async fn keyboard_interactive_login_answers_the_password_prompt() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("kbdint").await;
    let sshd = PrivateSshd::start(
        0,
        SshdOptions {
            password_auth: false,
            kbd_interactive: true,
        },
    );
    let shared = ssh::shared_sshd();
    let id = gw
        .machine(
            &email,
            json!({
                "name": "kbd-interactive only",
                "hostname": "127.0.0.1",
                "port": sshd.port.to_string(),
                "username": shared.user,
                "password": shared.password,
            }),
        )
        .await;
    shell_works(&gw, &relay, &email, id).await;
}

#[tokio::test]
async fn wrong_ssh_password_is_a_clear_bad_gateway() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("badsshpw").await;
    let sshd = ssh::shared_sshd();
    let id = gw
        .machine(
            &email,
            json!({"name": "x", "hostname": sshd.host, "port": sshd.port.to_string(),
                   "username": sshd.user, "password": "not-the-password"}),
        )
        .await;
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(
        answer.message().contains("authentication failed"),
        "{}",
        answer.message()
    );
    assert!(!answer.body.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn unreachable_refused_and_forbidden_targets_each_have_their_own_answer() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("SSH_CONNECT_TIMEOUT_SECS", "2")]);
    let email = gw.user("targets").await;
    let machine = |host: &str, port: u16| {
        json!({"name": "t", "hostname": host, "port": port.to_string(),
               "username": "u", "password": "p"})
    };
    // Nothing listens: refused.
    let closed = ssh::free_port();
    let id = gw.machine(&email, machine("127.0.0.1", closed)).await;
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(answer.message().contains("refused"), "{}", answer.message());
    // Cloud metadata, even spelled as IPv4-mapped IPv6: never dialled.
    for host in ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"] {
        let id = gw.machine(&email, machine(host, 22)).await;
        let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
        assert_eq!(answer.status, 403, "{host}: {:?}", answer.body);
        assert!(
            answer.message().contains("not allowed"),
            "{}",
            answer.message()
        );
    }
    // A name that resolves to loopback, on a relay that does not allow loopback.
    let strict = gw.start(RELAY, &[("SSH_ALLOW_LOOPBACK", "false")]);
    let id = gw.machine(&email, machine("localhost", 2222)).await;
    let answer = relay_world::connect(&strict.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    // The refusal names neither the address the name resolved to nor why it was refused,
    // so it cannot be used to map private DNS.
    let body = answer.body.to_string();
    for leaked in ["127.0.0.1", "::1", "loopback", "SSH_ALLOW"] {
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }
    assert!(answer.message().contains("not allowed"), "{body}");
    // A TEST-NET address that never answers: timeout (504).
    let id = gw.machine(&email, machine("203.0.113.1", 22)).await;
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert!(
        answer.status == 504 || answer.status == 502,
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn wrong_master_password_makes_no_tcp_connection() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("nodial").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let id = gw
        .machine(
            &email,
            json!({"name": "trap", "hostname": "127.0.0.1", "port": port.to_string(),
                   "username": "u", "password": "p"}),
        )
        .await;
    let answer = relay_world::connect(&relay.base_url, &email, id, "wrong master password").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.message(), "Invalid master password");
    let accepted = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(accepted.is_err(), "the relay dialled the target");
}

#[tokio::test]
async fn host_key_is_pinned_then_a_changed_key_is_refused() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("hostkey").await;
    let first = PrivateSshd::start(0, SshdOptions::default());
    let first_fp = first.fingerprint();
    let shared = ssh::shared_sshd();
    let id = gw
        .machine(
            &email,
            json!({"name": "rotating", "hostname": "127.0.0.1", "port": first.port.to_string(),
                   "username": shared.user, "password": shared.password}),
        )
        .await;
    let _ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let client = testkit::Client::new(&relay.base_url, None).as_user(&email);
    let machine = gw
        .machines
        .get(&domain::Identity(email.clone()), id)
        .await
        .unwrap();
    assert_eq!(
        machine.host_key_fingerprint.as_deref(),
        Some(first_fp.as_str())
    );

    // Same address, new server key.
    let port = first.stop();
    let second = PrivateSshd::start(port, SshdOptions::default());
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.data()["expected"], first_fp.as_str());
    assert_eq!(answer.data()["presented"], second.fingerprint().as_str());

    // The owner re-pins to the new key (with the master password) and can connect again.
    let answer = client
        .put_json(
            &format!("/api/v1/machine/{id}/host-key"),
            &json!({ "fingerprint": second.fingerprint(), "master_password": MASTER_PASSWORD }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let _ticket = relay_world::ticket(&relay.base_url, &email, id).await;

    // A malformed pin is refused; another user's machine is 404.
    let answer = client
        .put_json(
            &format!("/api/v1/machine/{id}/host-key"),
            &json!({"fingerprint": "md5:xx"}),
        )
        .await;
    assert_eq!(answer.status, 400);
    let answer = client
        .as_user("someone-else@sushi.test")
        .put_json(
            &format!("/api/v1/machine/{id}/host-key"),
            &json!({"fingerprint": null}),
        )
        .await;
    assert_eq!(answer.status, 404);
}

/// A stolen session alone cannot point a machine at another host key: replacing or clearing a
/// pin needs the master password (and a wrong one counts as a guess); setting the first pin
/// does not.
#[tokio::test]
async fn replacing_or_clearing_a_pin_needs_the_master_password() {
    const PINNED: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const ATTACKER: &str = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA";
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("repin").await;
    let id = gw
        .machine(
            &email,
            json!({"name": "pinned", "hostname": "127.0.0.1", "port": "22", "username": "u",
                   "password": "pw", "host_key_fingerprint": PINNED}),
        )
        .await;
    let client = testkit::Client::new(&relay.base_url, None).as_user(&email);
    let path = format!("/api/v1/machine/{id}/host-key");
    let pin_now = || async {
        gw.machines
            .get(&domain::Identity(email.clone()), id)
            .await
            .unwrap()
            .host_key_fingerprint
    };

    for body in [
        json!({"fingerprint": ATTACKER}),
        json!({"fingerprint": null}),
    ] {
        let answer = client.put_json(&path, &body).await;
        assert_eq!(answer.status, 400, "{:?}", answer.body);
        assert!(
            answer.message().contains("master_password"),
            "{:?}",
            answer.body
        );
    }
    let wrong = client
        .put_json(
            &path,
            &json!({"fingerprint": ATTACKER, "master_password": "not it at all"}),
        )
        .await;
    assert_eq!(wrong.status, 401, "{:?}", wrong.body);
    assert_eq!(
        pin_now().await.as_deref(),
        Some(PINNED),
        "the pin did not move"
    );

    let right = client
        .put_json(
            &path,
            &json!({"fingerprint": ATTACKER, "master_password": MASTER_PASSWORD}),
        )
        .await;
    assert_eq!(right.status, 200, "{:?}", right.body);
    assert_eq!(right.data()["host_key_fingerprint"], ATTACKER);

    // The first pin of an unpinned machine needs only the session.
    let unpinned = gw.password_machine(&email).await;
    let answer = client
        .put_json(
            &format!("/api/v1/machine/{unpinned}/host-key"),
            &json!({"fingerprint": PINNED}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

#[tokio::test]
async fn resize_is_seen_by_stty() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("resize").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open_terminal(&relay.base_url, &ticket, &email).await;
    term.send_json(json!({"type": "resize", "cols": 123, "rows": 45}))
        .await;
    // Seed-compatible JSON input works too.
    term.send_json(json!({"type": "data", "data": "stty size\n"}))
        .await;
    term.expect_output("45 123", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn output_bytes_arrive_unchanged() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("bytes").await;
    let id = gw.password_machine(&email).await;

    // 10 MiB of random bytes (certainly invalid UTF-8) in a file the test user can read.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("random.bin");
    let mut data = vec![0u8; 10 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(&path, &data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let expected = Sha256::digest(&data);

    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open_terminal(&relay.base_url, &ticket, &email).await;
    // Raw mode so the PTY passes bytes through untouched; markers are assembled by the shell
    // so the echoed command line never contains them.
    term.run(&format!(
        "stty raw -echo; printf '%s%s' BEGIN- -MARK; cat {}; printf '%s%s' END- -MARK; stty sane",
        path.display()
    ))
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let begin = b"BEGIN--MARK";
    let finish = b"END--MARK";
    // Search only the bytes that arrived since the last look (10 MiB makes rescans quadratic).
    let mut scanned: usize = 0;
    let mut start = None;
    let (start, end) = loop {
        let from = scanned.saturating_sub(begin.len());
        if start.is_none() {
            start = find(&term.output[from..], begin).map(|at| from + at + begin.len());
        }
        if let Some(start) = start {
            let from = from.max(start);
            if let Some(at) = find(&term.output[from..], finish) {
                break (start, from + at);
            }
        }
        scanned = term.output.len();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(Frame::Output(_)) | Some(Frame::Event(_)) => {}
            other => panic!(
                "stream ended early: {other:?} after {} bytes",
                term.output.len()
            ),
        }
    };
    let received = &term.output[start..end];
    assert_eq!(received.len(), data.len(), "length differs");
    assert_eq!(Sha256::digest(received), expected, "checksum differs");
    term.close().await;
}

#[tokio::test]
async fn exit_code_arrives_and_closes_the_socket() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("exit").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open_terminal(&relay.base_url, &ticket, &email).await;
    term.run("exit 7").await;
    let exit = term.expect_event("exit", STEP).await;
    assert_eq!(exit["code"], 7);
    let (code, _) = term.expect_close(STEP).await;
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn closing_the_websocket_ends_the_remote_process() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("hangup").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open_terminal(&relay.base_url, &ticket, &email).await;
    let marker = 100_000 + (rand::random::<u32>() % 800_000);
    term.run(&format!("echo started; sleep {marker}")).await;
    term.expect_output("started", STEP).await;
    let deadline = std::time::Instant::now() + STEP;
    while ssh::remote_processes(&format!("sleep {marker}")) == 0 {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    term.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ssh::remote_processes(&format!("sleep {marker}")) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "remote process outlived the websocket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
