//! Redis over TLS (`rediss://`): relays register and find tickets through a Redis that speaks
//! only TLS, with a certificate from a private CA the relays are told to trust
//! (`REDIS_CA_FILE`). The certificate really is checked: without that CA, with another CA, or
//! in plaintext, the same Redis is unusable and connect answers 503. A CA file that cannot
//! work stops the relay at start.
//!
//! The TLS redis-server is this test's own (`TlsRedis`: free port, temp dir, plain port
//! disabled with `--port 0`), killed by pid when the test ends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::time::Duration;

use testkit::redis::{TlsRedis, make_certificates};
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// Does a plaintext `PING` on `port` get a `+PONG`?
fn answers_plaintext(port: u16) -> bool {
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    if socket.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    let n = socket.read(&mut reply).unwrap_or(0);
    reply[..n].starts_with(b"+PONG")
}

async fn live_sessions(base_url: &str) -> u64 {
    let answer = testkit::Client::new(base_url, None)
        .get("/relay/health")
        .await;
    answer.data()["sessions"].as_u64().unwrap()
}

#[tokio::test]
async fn relays_share_tickets_through_a_tls_only_redis_with_a_private_ca() {
    let gw = RelayWorld::new().await;
    let redis = TlsRedis::start();
    assert!(
        !answers_plaintext(redis.port),
        "the test Redis must speak TLS only"
    );
    let url = redis.url();
    let ca = redis.ca_file.display().to_string();
    let settings = [("REDIS_URL", url.as_str()), ("REDIS_CA_FILE", ca.as_str())];
    let owner = gw.start(RELAY, &settings);
    let other = gw.start(RELAY, &settings);
    let email = gw.user("rediss").await;
    let id = gw.password_machine(&email).await;

    let ticket = relay_world::ticket(&owner.base_url, &email, id).await;
    // The route is in this Redis (read back over TLS with the same CA).
    let keys = redis.cli(&["--scan", "--pattern", "sushi:ticket:*"]);
    assert!(
        keys.contains(&ticket),
        "route not in the TLS Redis: {keys:?}"
    );
    // The other relay finds the owner through it, and the terminal works.
    let mut term = Terminal::open(
        &other.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo over-tls-$((6*7))").await;
    term.expect_output("over-tls-42", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn a_redis_certificate_that_is_not_trusted_is_refused() {
    let gw = RelayWorld::new().await;
    let redis = TlsRedis::start();
    let email = gw.user("rediss-untrusted").await;
    let id = gw.password_machine(&email).await;
    let other_ca = tempfile::tempdir().unwrap();
    make_certificates(other_ca.path());
    let other_ca_file = other_ca.path().join("ca.crt").display().to_string();
    let plaintext = format!("redis://127.0.0.1:{}", redis.port);
    let url = redis.url();

    for (what, settings) in [
        ("public roots only", vec![("REDIS_URL", url.as_str())]),
        (
            "another private CA",
            vec![
                ("REDIS_URL", url.as_str()),
                ("REDIS_CA_FILE", other_ca_file.as_str()),
            ],
        ),
        ("plaintext", vec![("REDIS_URL", plaintext.as_str())]),
    ] {
        let relay = gw.start(RELAY, &settings);
        let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
        assert_eq!(answer.status, 503, "{what}: {:?}", answer.body);
        assert!(
            answer.message().contains("Redis"),
            "{what}: {}",
            answer.message()
        );
        // The SSH session opened for the refused ticket is not kept.
        assert_eq!(live_sessions(&relay.base_url).await, 0, "{what}");
    }
    assert!(
        redis
            .cli(&["--scan", "--pattern", "sushi:ticket:*"])
            .trim()
            .is_empty(),
        "a relay registered a route without a verified connection"
    );
}

#[tokio::test]
async fn a_redis_ca_file_that_cannot_work_stops_the_relay_at_start() {
    let gw = RelayWorld::new().await;
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let ca = dir.path().join("ca.crt").display().to_string();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let tls = "rediss://127.0.0.1:6390".to_owned();

    for (settings, expected) in [
        (
            [
                ("REDIS_URL", "redis://127.0.0.1:6390"),
                ("REDIS_CA_FILE", ca.as_str()),
            ],
            "REDIS_URL is not a rediss://",
        ),
        (
            [
                ("REDIS_URL", tls.as_str()),
                ("REDIS_CA_FILE", missing.as_str()),
            ],
            "REDIS_CA_FILE=",
        ),
        (
            [
                ("REDIS_URL", tls.as_str()),
                ("REDIS_CA_FILE", empty.as_str()),
            ],
            "holds no PEM certificate",
        ),
    ] {
        let mut env = gw.env();
        for (k, v) in settings {
            env.insert(k.to_owned(), v.to_owned());
        }
        let (status, output) = testkit::run_expecting_exit(RELAY, &env, Duration::from_secs(20));
        assert!(!status.success(), "started with {settings:?}");
        assert!(output.contains(expected), "{settings:?}: {output}");
    }
}
