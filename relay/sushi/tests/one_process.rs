//! The README's local run: one `sushi` process serves the API, connect and the terminal, so
//! the seed's curl flow works end to end against one port.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use testkit::relay_world::STEP;
use testkit::ws::Terminal;
use testkit::{Client, JWT_SECRET, Process};

const MASTER: &str = "local master pw";

/// A `sushi` on a fresh data dir (plus `extra` settings), the client of one user with a master
/// password set, and that user's password machine on the shared sshd, created through the API.
async fn sushi_with_machine(extra: &[(&str, &str)]) -> (tempfile::TempDir, Process, Client, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let client = Client::new(&sushi.base_url, None).as_user("local@sushi.test");
    assert_eq!(client.set_master_password(MASTER).await.status, 200);
    let sshd = testkit::ssh::shared_sshd();
    let created = client
        .post_json(
            "/api/v1/machine",
            &json!({"name": "local", "hostname": sshd.host, "port": sshd.port.to_string(),
                    "username": sshd.user, "password": sshd.password}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.data()["id"].as_u64().unwrap();
    (dir, sushi, client, id)
}

/// Connect to machine `id` and open its terminal.
async fn open_terminal(sushi: &Process, client: &Client, id: u64) -> Terminal {
    let connected = client
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": MASTER }),
        )
        .await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    assert_eq!(connected.message(), "Connected to machine successfully");
    let ticket = connected.data().as_str().unwrap();
    Terminal::open(&sushi.base_url, ticket, &[]).await.unwrap()
}

#[tokio::test]
async fn the_seed_flow_including_connect_works_on_one_port() {
    let (_dir, sushi, client, id) = sushi_with_machine(&[]).await;
    let mut term = open_terminal(&sushi, &client, id).await;
    term.run("echo local-$((6*7))").await;
    term.expect_output("local-42", STEP).await;
    term.close().await;
    // The pinned host key shows on the machine.
    let machine = client.get(&format!("/api/v1/machine/{id}")).await;
    assert!(
        machine.data()["host_key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
}

/// `sushi` serves through the same edge as the relay: SIGTERM (what systemd, Docker and
/// Kubernetes send) drains open terminals and exits cleanly instead of killing them.
#[tokio::test]
async fn sigterm_drains_open_terminals_then_exits_cleanly() {
    let (_dir, mut sushi, client, id) = sushi_with_machine(&[("DRAIN_GRACE_SECS", "2")]).await;
    let mut term = open_terminal(&sushi, &client, id).await;
    term.run("echo up-$((1+2))").await;
    term.expect_output("up-3", STEP).await;

    sushi.signal("TERM");
    let notice = term.expect_event("shutdown", STEP).await;
    assert_eq!(notice["grace_secs"], 2);
    let (code, _) = term.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, 1001);
    let exit = sushi
        .wait_exit(Duration::from_secs(10))
        .expect("sushi exits after draining");
    assert!(exit.success(), "{exit:?}\n{}", sushi.output());
}

/// Every file under a fresh `DATA_DIR` (path, mode), the directory itself first.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut found = vec![(
        dir.display().to_string(),
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
    )];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        found.push((entry.file_name().to_string_lossy().into_owned(), mode));
    }
    found
}

#[tokio::test]
async fn data_dir_is_private_to_its_owner() {
    // A DATA_DIR sushi creates itself (the temporary parent is 0700 already), no JWT_SECRET
    // (so the generated secret file is written too), and a machine saved (database and WAL).
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let env = HashMap::from([("DATA_DIR".to_owned(), data.display().to_string())]);
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    let secret = std::fs::read_to_string(data.join("jwt.secret")).unwrap();
    let token = testkit::token_signed_with(secret.trim(), "private@sushi.test");
    let client = Client::new(&sushi.base_url, Some(token));
    assert_eq!(client.set_master_password(MASTER).await.status, 200);
    let created = client
        .post_json(
            "/api/v1/machine",
            &json!({"name": "m", "hostname": "192.0.2.1", "port": "22",
                    "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let found = modes(&data);
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    for expected in ["sushi.db", "sushi.db-wal", "master.key", "jwt.secret"] {
        assert!(names.contains(&expected), "{expected} missing: {found:?}");
    }
    let (dir_name, dir_mode) = &found[0];
    assert_eq!(*dir_mode, 0o700, "{dir_name}: {found:?}");
    for (name, mode) in &found[1..] {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}: {found:?}");
    }
    drop(sushi);
}
