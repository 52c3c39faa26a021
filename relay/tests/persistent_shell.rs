//! Persistent shells: a machine with `persistent_shell` runs its terminal inside a tmux session
//! on the target, so the shell (same pid, same screen) outlives the WebSocket, the SSH
//! connection and the relay that held them; `reattach` names the session to come back to.
//! A plain machine keeps a plain shell, and `reattach` is held to its rule.
//!
//! Real relays, the real sshd and its real tmux (the test user's default socket). Every test
//! names its session up front and kills it at the end through the terminal; a guard kills it
//! over a separate SSH command if the test fails first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;
use testkit::relay_world::{self, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ws::Terminal;
use testkit::{Answer, Client};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// A fresh session name (`sushi-` and 32 hex digits), as a client naming its session would.
fn new_name() -> String {
    format!("sushi-{}", uuid::Uuid::new_v4().simple())
}

/// Kills the tmux session on drop, over its own SSH command (a no-op when the test already
/// ended it through the terminal).
struct TmuxSession(String);

impl Drop for TmuxSession {
    fn drop(&mut self) {
        let _ = testkit::ssh::run_remote(&format!("tmux kill-session -t {}", self.0));
    }
}

fn session_exists(name: &str) -> bool {
    testkit::ssh::run_remote(&format!("tmux has-session -t {name}"))
        .status
        .success()
}

async fn persistent_machine(gw: &RelayWorld, email: &str) -> u64 {
    let sshd = testkit::ssh::shared_sshd();
    gw.machine(
        email,
        json!({
            "name": "persistent",
            "hostname": sshd.host,
            "port": sshd.port.to_string(),
            "username": sshd.user,
            "password": sshd.password,
            "persistent_shell": true,
        }),
    )
    .await
}

async fn connect(base_url: &str, email: &str, id: u64, reattach: serde_json::Value) -> Answer {
    Client::new(base_url, None)
        .as_user(email)
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": MASTER_PASSWORD, "reattach": reattach }),
        )
        .await
}

/// Connect re-attaching (or naming) `name`, and open the terminal.
async fn open(base_url: &str, email: &str, id: u64, name: &str) -> Terminal {
    let answer = connect(base_url, email, id, json!(name)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let ticket = answer.data().as_str().unwrap().to_owned();
    open_ticket(base_url, email, &ticket).await
}

async fn open_ticket(base_url: &str, email: &str, ticket: &str) -> Terminal {
    Terminal::open(base_url, ticket, &relay_world::browser(email).headers())
        .await
        .unwrap()
}

/// The first `<tag>-<digits>-end` in `text`: the shell's pid as `echo <tag>-$$-end` prints it
/// (the typed command itself shows `$$`, never digits).
fn printed_pid(text: &str, tag: &str) -> Option<String> {
    let marker = format!("{tag}-");
    text.match_indices(&marker).find_map(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty() && rest[digits.len()..].starts_with("-end")).then_some(digits)
    })
}

/// Ask the shell for its pid.
async fn shell_pid(term: &mut Terminal, tag: &str) -> String {
    term.run(&format!("echo {tag}-$$-end")).await;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(pid) = printed_pid(&String::from_utf8_lossy(&term.output), tag) {
            return pid;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match term.next(left).await {
            Some(testkit::ws::Frame::Closed(code, reason)) => panic!("closed {code} {reason}"),
            Some(_) => {}
            None => panic!(
                "no pid printed; got {:?}",
                String::from_utf8_lossy(&term.output)
            ),
        }
    }
}

/// End the session through the terminal, and check it is gone from the target.
async fn kill_session(mut term: Terminal, name: &str) {
    term.run("tmux kill-session").await;
    assert_eq!(term.expect_close(STEP).await.0, 1000);
    assert!(!session_exists(name), "{name} outlived kill-session");
}

#[tokio::test]
async fn a_persistent_shell_survives_its_socket_and_is_redrawn_on_reattach() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("persistent").await;
    let id = persistent_machine(&gw, &email).await;
    let name = new_name();
    let _guard = TmuxSession(name.clone());

    let mut term = open(&relay.base_url, &email, id, &name).await;
    term.run("echo in-tmux-${TMUX:+yes}").await;
    term.expect_output("in-tmux-yes", STEP).await;
    let pid = shell_pid(&mut term, "first").await;
    drop(term); // the TCP connection goes, no close frame
    assert!(session_exists(&name));

    let mut term = open(&relay.base_url, &email, id, &name).await;
    // Nothing typed yet: this is tmux redrawing the screen it kept.
    term.expect_output(&format!("first-{pid}-end"), STEP).await;
    assert_eq!(shell_pid(&mut term, "second").await, pid);
    kill_session(term, &name).await;
}

#[tokio::test]
async fn a_persistent_shell_survives_its_relay_being_killed() {
    let gw = RelayWorld::new().await;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let first = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let second = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let email = gw.user("persistent-relay-loss").await;
    let id = persistent_machine(&gw, &email).await;
    let name = new_name();
    let _guard = TmuxSession(name.clone());

    let mut term = open(&first.base_url, &email, id, &name).await;
    // The terminal names its tmux session, for the client to re-attach to.
    let event = term.expect_event("session", STEP).await;
    assert_eq!(event["persistent"], name.as_str(), "{event}");
    let (session, secret) = term.session();
    let pid = shell_pid(&mut term, "before").await;
    let received = term.output.len() as u64;
    first.kill(); // SIGKILL: no drain, the SSH connection just drops
    drop(term);

    // What the web app does: the resume fails (the relay holding it is gone)...
    let browser = relay_world::browser(&email);
    let mut resume = Terminal::resume(
        &second.base_url,
        &session,
        &secret,
        received,
        &browser.headers(),
    )
    .await
    .unwrap();
    let (code, _) = resume.expect_close(STEP).await;
    assert!(code == 4011 || code == 4012, "{code}");
    // ...so it connects again, naming the tmux session from the `session` event.
    let mut term = open(&second.base_url, &email, id, &name).await;
    assert_eq!(shell_pid(&mut term, "after").await, pid);
    kill_session(term, &name).await;
}

#[tokio::test]
async fn a_plain_machine_gets_a_plain_shell_and_refuses_reattach() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("plain-shell").await;
    let id = gw.password_machine(&email).await;
    let refused = connect(&relay.base_url, &email, id, json!(new_name())).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.message(),
        "reattach is only for machines with a persistent shell"
    );

    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let mut term = open_ticket(&relay.base_url, &email, &ticket).await;
    term.run("echo in-tmux-${TMUX:-no}").await;
    term.expect_output("in-tmux-no", STEP).await;
    term.run("exit").await;
    assert_eq!(term.expect_close(STEP).await.0, 1000);
}

#[tokio::test]
async fn an_invalid_reattach_is_400_before_any_ssh() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("bad-reattach").await;
    let id = persistent_machine(&gw, &email).await;
    for bad in [
        json!("sushi-1234"),
        json!("main"),
        json!("sushi-0123abcd; touch /tmp/pwned"),
        json!("sushi-0123abcd'"),
        json!(format!("sushi-{}", "a".repeat(33))),
        json!(42),
    ] {
        let answer = connect(&relay.base_url, &email, id, bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert!(
            answer.message().starts_with("reattach must be"),
            "{bad}: {:?}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_persistent_machine_without_reattach_gets_a_new_random_session() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("random-session").await;
    let id = persistent_machine(&gw, &email).await;
    let answer = connect(&relay.base_url, &email, id, serde_json::Value::Null).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let mut term = open_ticket(&relay.base_url, &email, answer.data().as_str().unwrap()).await;
    term.run("echo name-$(tmux display-message -p '#S')-end")
        .await;
    let deadline = tokio::time::Instant::now() + STEP;
    let name = loop {
        let text = String::from_utf8_lossy(&term.output).into_owned();
        let found = text.match_indices("name-sushi-").find_map(|(at, _)| {
            let hex: String = text[at + 11..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            text[at + 11 + hex.len()..]
                .starts_with("-end")
                .then(|| format!("sushi-{hex}"))
        });
        if let Some(name) = found {
            break name;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            term.next(left).await.is_some(),
            "no session name printed: {text:?}"
        );
    };
    let _guard = TmuxSession(name.clone());
    assert_eq!(name.len(), "sushi-".len() + 16, "{name}");
    assert!(session_exists(&name));
    kill_session(term, &name).await;
}
