//! Live sharing of a running terminal: its owner shares it (view-only or with control, with a
//! link or for named users, with an expiry); viewers join on any replica and see the current
//! screen, then the live output byte for byte; a view-only viewer's keystrokes never reach the
//! shell; a control viewer types only while granted; a revoke disconnects every viewer of the
//! share within a second, wherever it joined; expired shares, wrong secrets and uninvited users
//! are refused.
//!
//! Everything is real: two relay processes sharing redis-server, OpenSSH's sshd as the target,
//! WebSocket clients over loopback TCP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::relay_world::{self, ALLOWED_ORIGIN, RelayWorld, STEP};
use testkit::ws::{Frame, Terminal, find};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn redis() -> String {
    testkit::service_env("SUSHI_TEST_REDIS_URL")
}

/// A signed-in user with a machine on the test sshd.
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
    async fn open(&self, relay: &str) -> Terminal {
        let ticket = relay_world::ticket(relay, &self.email, self.id).await;
        let mut term = Terminal::open(relay, &ticket, &self.browser.headers())
            .await
            .unwrap();
        term.expect_event("session", STEP).await;
        term
    }
}

/// Read until an event of `kind` after the first `seen` events arrives (and `test` holds).
async fn next_event(
    term: &mut Terminal,
    kind: &str,
    seen: usize,
    test: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(event) = term
            .events
            .iter()
            .skip(seen)
            .find(|e| e["type"] == kind && test(e))
        {
            return event.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match term.next(left).await {
            Some(Frame::Closed(code, reason)) => {
                panic!(
                    "closed ({code} {reason}) before a {kind} event: {:?}",
                    term.events
                )
            }
            Some(_) => {}
            None => panic!("no {kind} event: {:?}", term.events),
        }
    }
}

/// The owner shares its terminal; the `share_created` event (id, secret).
async fn share(owner: &mut Terminal, request: Value) -> (String, String) {
    let seen = owner.events.len();
    let mut request = request;
    request["type"] = json!("share_create");
    owner.send_json(request).await;
    let created = next_event(owner, "share_created", seen, |_| true).await;
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// A viewer joins and reads its `joined` event.
async fn join(base: &str, id: &str, secret: &str, headers: &[(&str, &str)]) -> (Terminal, Value) {
    let mut viewer = Terminal::join(base, id, secret, headers).await.unwrap();
    let joined = viewer.expect_event("joined", STEP).await;
    (viewer, joined)
}

/// A join that must be refused: its close code.
async fn refused(base: &str, id: &str, secret: &str, headers: &[(&str, &str)]) -> u16 {
    let mut viewer = Terminal::join(base, id, secret, headers).await.unwrap();
    let (code, _) = viewer.expect_close(STEP).await;
    assert!(
        !viewer.events.iter().any(|e| e["type"] == "joined"),
        "{:?}",
        viewer.events
    );
    code
}

/// Count of `error` events received so far.
fn errors(term: &Terminal) -> usize {
    term.events.iter().filter(|e| e["type"] == "error").count()
}

/// The bytes from the first `begin` to the first `end` after it.
fn between<'a>(out: &'a [u8], begin: &[u8], end: &[u8]) -> &'a [u8] {
    let from = find(out, begin).unwrap();
    let to = from + find(&out[from..], end).unwrap() + end.len();
    &out[from..to]
}

#[tokio::test]
async fn a_view_only_viewer_sees_the_current_screen_and_its_input_never_reaches_the_shell() {
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-view").await;
    let mut owner = user.open(&a.base_url).await;
    owner.run("echo BEFORE-$((6*7))").await;
    owner.expect_output("BEFORE-42", STEP).await;

    // Anyone with the link: a browser that is not signed in, on the other replica.
    let (id, secret) = share(&mut owner, json!({"mode": "view"})).await;
    let origin = [("origin", ALLOWED_ORIGIN)];
    let (mut viewer, joined) = join(&b.base_url, &id, &secret, &origin).await;
    assert_eq!(joined["mode"], "view", "{joined}");
    // The screen as it is, not a blank terminal.
    viewer.expect_output("BEFORE-42", STEP).await;
    let watching = next_event(&mut owner, "viewers", 0, |e| {
        e["viewers"].as_array().is_some_and(|v| v.len() == 1)
    })
    .await;
    assert_eq!(watching["viewers"][0]["who"], "anonymous", "{watching}");
    assert_eq!(watching["viewers"][0]["mode"], "view", "{watching}");

    // The viewer types: refused with an error event, and nothing reaches the shell.
    viewer.run("echo VIEWER-$((3*3))").await;
    viewer
        .send_json(json!({"type": "data", "data": "echo VIEWER-$((3*3))\n"}))
        .await;
    while errors(&viewer) < 2 {
        viewer
            .next(STEP)
            .await
            .expect("an error event for each refused input");
    }
    owner.run("echo OWNER-$((2*2))").await;
    owner.expect_output("OWNER-4", STEP).await;
    viewer.expect_output("OWNER-4", STEP).await;
    assert!(find(&owner.output, b"VIEWER-9").is_none());
    assert!(find(&viewer.output, b"VIEWER-9").is_none());
    assert!(find(&owner.output, b"echo VIEWER").is_none());

    // The session ends: so does the share.
    owner.run("exit 5").await;
    assert_eq!(owner.expect_event("exit", STEP).await["code"], 5);
    assert_eq!(viewer.expect_event("exit", STEP).await["code"], 5);
    assert_eq!(viewer.expect_close(STEP).await.0, 1000);
    assert_eq!(refused(&b.base_url, &id, &secret, &origin).await, 4014);
}

#[tokio::test]
async fn a_control_viewer_types_only_after_the_grant_and_not_after_the_owner_takes_it_back() {
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-control").await;
    let bob = gw.user("share-bob").await;
    let bob_browser = relay_world::browser(&bob);
    let mut owner = user.open(&a.base_url).await;
    let (id, secret) = share(
        &mut owner,
        json!({"mode": "control", "emails": [bob.to_uppercase()]}),
    )
    .await;
    let (mut viewer, joined) = join(&b.base_url, &id, &secret, &bob_browser.headers()).await;
    assert_eq!(joined["mode"], "control", "{joined}");
    let viewer_id = joined["viewer"].as_u64().unwrap();
    let listed = next_event(&mut owner, "viewers", 0, |e| {
        e["viewers"].as_array().is_some_and(|v| v.len() == 1)
    })
    .await;
    assert_eq!(listed["viewers"][0]["who"], bob.as_str(), "{listed}");
    assert_eq!(listed["viewers"][0]["control"], false, "{listed}");

    // Before the grant: refused.
    viewer.run("echo EARLY-$((2*3))").await;
    next_event(&mut viewer, "error", 0, |_| true).await;

    // Granted: the viewer's keystrokes reach the shell.
    let seen = owner.events.len();
    owner
        .send_json(json!({"type": "control_grant", "viewer": viewer_id}))
        .await;
    next_event(&mut owner, "viewers", seen, |e| {
        e["viewers"][0]["control"] == true
    })
    .await;
    next_event(&mut viewer, "control", 0, |e| e["granted"] == true).await;
    viewer.run("echo CTRL-$((4*5))").await;
    owner.expect_output("CTRL-20", STEP).await;
    viewer.expect_output("CTRL-20", STEP).await;

    // Taken back: refused again, at once.
    let seen_by_viewer = viewer.events.len();
    owner
        .send_json(json!({"type": "control_revoke", "viewer": viewer_id}))
        .await;
    next_event(&mut viewer, "control", seen_by_viewer, |e| {
        e["granted"] == false
    })
    .await;
    let seen_by_viewer = viewer.events.len();
    viewer.run("echo LATE-$((5*5))").await;
    next_event(&mut viewer, "error", seen_by_viewer, |_| true).await;
    owner.run("echo SYNC-$((1+1))").await;
    owner.expect_output("SYNC-2", STEP).await;
    for out in [&owner.output, &viewer.output] {
        assert!(find(out, b"EARLY-6").is_none());
        assert!(find(out, b"LATE-25").is_none());
    }

    // A view-only viewer cannot be granted control.
    let (view_id, view_secret) = share(&mut owner, json!({"mode": "view"})).await;
    let (_watcher, watcher_joined) = join(&a.base_url, &view_id, &view_secret, &[]).await;
    let seen = owner.events.len();
    owner
        .send_json(json!({"type": "control_grant", "viewer": watcher_joined["viewer"]}))
        .await;
    next_event(&mut owner, "error", seen, |_| true).await;
}

#[tokio::test]
async fn a_revoke_disconnects_the_shares_viewers_on_both_replicas_within_a_second() {
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-revoke").await;
    let mut owner = user.open(&a.base_url).await;
    let (id, secret) = share(&mut owner, json!({"mode": "view", "expires_in_secs": 600})).await;
    let (mut here, _) = join(&a.base_url, &id, &secret, &[]).await;
    let (mut there, _) = join(&b.base_url, &id, &secret, &[]).await;
    // Another share of the same terminal is not affected.
    let (other_id, other_secret) = share(&mut owner, json!({"mode": "view"})).await;
    let (mut other, _) = join(&b.base_url, &other_id, &other_secret, &[]).await;
    next_event(&mut owner, "viewers", 0, |e| {
        e["viewers"].as_array().is_some_and(|v| v.len() == 3)
    })
    .await;

    let seen = owner.events.len();
    let started = Instant::now();
    owner
        .send_json(json!({"type": "share_revoke", "id": id}))
        .await;
    let (code_here, _) = here.expect_close(STEP).await;
    let (code_there, _) = there.expect_close(STEP).await;
    let took = started.elapsed();
    assert_eq!((code_here, code_there), (4016, 4016));
    assert!(took < Duration::from_secs(1), "revoke took {took:?}");
    let ended = next_event(&mut owner, "share_ended", seen, |_| true).await;
    assert_eq!(ended["reason"], "revoked", "{ended}");
    // The link is dead on every replica; the other share still works.
    for base in [&a.base_url, &b.base_url] {
        assert_eq!(refused(base, &id, &secret, &[]).await, 4014);
    }
    owner.run("echo STILL-$((3*3))").await;
    other.expect_output("STILL-9", STEP).await;
}

#[tokio::test]
async fn expired_shares_wrong_secrets_and_uninvited_users_are_refused() {
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-refuse").await;
    let bob = gw.user("share-invited").await;
    let mallory = gw.user("share-mallory").await;
    let mut owner = user.open(&a.base_url).await;

    // Requests the relay refuses to turn into a share.
    for bad in [
        json!({"type": "share_create", "mode": "control"}),
        json!({"type": "share_create", "mode": "view", "expires_in_secs": 86_401}),
        json!({"type": "share_create", "mode": "view", "emails": ["not-an-email"]}),
    ] {
        let seen = owner.events.len();
        owner.send_json(bad).await;
        next_event(&mut owner, "error", seen, |_| true).await;
    }

    let (id, secret) = share(
        &mut owner,
        json!({"mode": "view", "emails": [bob], "expires_in_secs": 6}),
    )
    .await;
    let mallory_browser = relay_world::browser(&mallory);
    let origin = [("origin", ALLOWED_ORIGIN)];
    for base in [&a.base_url, &b.base_url] {
        assert_eq!(refused(base, &id, "not-the-secret", &[]).await, 4014);
        let unknown = uuid::Uuid::new_v4().to_string();
        assert_eq!(refused(base, &unknown, &secret, &[]).await, 4014);
        // The right secret, but not an invited user: signed in as someone else, or not at all.
        assert_eq!(
            refused(base, &id, &secret, &mallory_browser.headers()).await,
            4015
        );
        assert_eq!(refused(base, &id, &secret, &origin).await, 4015);
        assert_eq!(refused(base, &id, &secret, &[]).await, 4015);
    }
    // The invited user watches until the share expires.
    let bob_browser = relay_world::browser(&bob);
    let (mut viewer, _) = join(&b.base_url, &id, &secret, &bob_browser.headers()).await;
    assert_eq!(viewer.expect_close(STEP).await.0, 4016);
    let ended = next_event(&mut owner, "share_ended", 0, |_| true).await;
    assert_eq!(ended["reason"], "expired", "{ended}");
    for base in [&a.base_url, &b.base_url] {
        assert_eq!(
            refused(base, &id, &secret, &bob_browser.headers()).await,
            4014
        );
    }
}

#[tokio::test]
async fn a_viewer_sees_the_screen_the_owners_client_seeded_when_the_ring_no_longer_has_it() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let user = User::new(&gw, "share-seed").await;
    let mut owner = user.open(&relay.base_url).await;
    owner.run("echo GONE-$((8*8))").await;
    owner.expect_output("GONE-64", STEP).await;
    // Everything acknowledged: the ring no longer has the session's output.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while owner.next(Duration::from_millis(300)).await.is_some() {}
    let received = owner.output.len() as u64;
    owner.ack(received).await;
    // What the owner's xterm would serialise: its screen as of `received`.
    let screen = "\u{1b}[2J\u{1b}[HSEEDED-SCREEN-7\r\n$ ";
    let (id, secret) = share(
        &mut owner,
        json!({"mode": "view", "screen": screen, "offset": received}),
    )
    .await;
    let (mut viewer, joined) = join(&relay.base_url, &id, &secret, &[]).await;
    assert_eq!(
        (joined["cols"].as_u64(), joined["rows"].as_u64()),
        (Some(80), Some(24))
    );
    viewer.expect_output("SEEDED-SCREEN-7", STEP).await;
    owner.run("echo AFTER-$((9*9))").await;
    viewer.expect_output("AFTER-81", STEP).await;
}

#[tokio::test]
async fn twenty_viewers_across_two_replicas_receive_the_same_bytes_as_the_owner() {
    const VIEWERS: usize = 20;
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-twenty").await;
    let mut owner = user.open(&a.base_url).await;
    let (id, secret) = share(&mut owner, json!({"mode": "view"})).await;
    let mut viewers = Vec::new();
    for n in 0..VIEWERS {
        let base = if n % 2 == 0 { &a.base_url } else { &b.base_url };
        viewers.push(join(base, &id, &secret, &[]).await.0);
    }
    next_event(&mut owner, "viewers", 0, |e| {
        e["viewers"].as_array().is_some_and(|v| v.len() == VIEWERS)
    })
    .await;
    let readers: Vec<_> = viewers
        .into_iter()
        .map(|mut viewer| {
            tokio::spawn(async move {
                viewer.expect_output("END-4", STEP * 2).await;
                viewer.output
            })
        })
        .collect();
    owner
        .run("echo BEGIN-$((1+1)); seq 1 30000; echo END-$((2+2))")
        .await;
    owner.expect_output("END-4", STEP * 2).await;
    let expected = between(&owner.output, b"BEGIN-2", b"END-4");
    assert!(expected.len() > 150_000, "{}", expected.len());
    let expected = format!("{:x}", Sha256::digest(expected));
    for reader in readers {
        let output = reader.await.unwrap();
        let got = format!(
            "{:x}",
            Sha256::digest(between(&output, b"BEGIN-2", b"END-4"))
        );
        assert_eq!(got, expected);
    }
}

/// `GET /api/v1/shares` on `base` as `email`: the listed share ids.
async fn listed_shares(base: &str, email: &str) -> Vec<String> {
    let answer = testkit::Client::new(base, None)
        .as_user(email)
        .get("/api/v1/shares")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|share| share["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_owner_revokes_over_http_on_the_other_replica_while_the_terminal_is_parked() {
    let gw = RelayWorld::new().await;
    let a = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let user = User::new(&gw, "share-http").await;
    let mallory = gw.user("share-http-mallory").await;
    let mut owner = user.open(&a.base_url).await;
    let (id, secret) = share(&mut owner, json!({"mode": "view", "expires_in_secs": 600})).await;
    let (kept_id, kept_secret) = share(&mut owner, json!({"mode": "view"})).await;
    let (mut here, _) = join(&a.base_url, &id, &secret, &[]).await;
    let (mut there, _) = join(&b.base_url, &id, &secret, &[]).await;
    let (mut kept, _) = join(&b.base_url, &kept_id, &kept_secret, &[]).await;
    next_event(&mut owner, "viewers", 0, |e| {
        e["viewers"].as_array().is_some_and(|v| v.len() == 3)
    })
    .await;

    // Listed from either replica, with what the owner chose.
    for base in [&a.base_url, &b.base_url] {
        let mut listed = listed_shares(base, &user.email).await;
        listed.sort();
        let mut expected = vec![id.clone(), kept_id.clone()];
        expected.sort();
        assert_eq!(listed, expected);
    }
    let answer = testkit::Client::new(&b.base_url, None)
        .as_user(&user.email)
        .get("/api/v1/shares")
        .await;
    let row = answer
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|share| share["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["mode"], "view", "{row}");
    assert_eq!(row["session"], owner.session().0.as_str(), "{row}");
    assert_eq!(row["emails"], json!([]), "{row}");
    assert!(row["expires_at"].as_u64().unwrap() > 0, "{row}");
    // Exactly the documented shape (the schema refuses unknown and missing fields).
    serde_json::from_value::<openapi::schemas::Share>(row.clone()).unwrap();

    // The owner's tab goes away: the terminal parks, its shares and viewers stay.
    owner.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another user: the same 404 as an unknown share, on both replicas, and nothing ends.
    let unknown = uuid::Uuid::new_v4().to_string();
    for base in [&a.base_url, &b.base_url] {
        let as_mallory = testkit::Client::new(base, None).as_user(&mallory);
        for target in [&id, &unknown] {
            let answer = as_mallory.delete(&format!("/api/v1/share/{target}")).await;
            assert_eq!(answer.status, 404, "{:?}", answer.body);
            assert_eq!(answer.body["code"], "share_not_found", "{:?}", answer.body);
        }
        assert!(listed_shares(base, &mallory).await.is_empty());
    }
    // A forged hop header is refused outright.
    let forged = reqwest::Client::new()
        .delete(format!("{}/api/v1/share/{id}", b.base_url))
        .header("x-sushi-hop", "r:forged.b3duZXI.9999999999.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    // Without a token: 401.
    let anonymous = testkit::Client::new(&b.base_url, None)
        .delete(&format!("/api/v1/share/{id}"))
        .await;
    assert_eq!(anonymous.status, 401, "{:?}", anonymous.body);

    // The owner, on the replica that does not hold the terminal.
    let started = Instant::now();
    let answer = testkit::Client::new(&b.base_url, None)
        .as_user(&user.email)
        .delete(&format!("/api/v1/share/{id}"))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.message(), "Share revoked");
    let (code_here, _) = here.expect_close(STEP).await;
    let (code_there, _) = there.expect_close(STEP).await;
    let took = started.elapsed();
    assert_eq!((code_here, code_there), (4016, 4016));
    assert!(took < Duration::from_secs(1), "revoke took {took:?}");

    // Gone everywhere: the link, the listing, a second revoke.
    for base in [&a.base_url, &b.base_url] {
        assert_eq!(refused(base, &id, &secret, &[]).await, 4014);
        assert_eq!(
            listed_shares(base, &user.email).await,
            vec![kept_id.clone()]
        );
        let again = testkit::Client::new(base, None)
            .as_user(&user.email)
            .delete(&format!("/api/v1/share/{id}"))
            .await;
        assert_eq!(again.status, 404, "{:?}", again.body);
    }
    // The other share's viewer is still connected, and the revoke is in the owner's audit log.
    while let Some(frame) = kept.next(Duration::from_millis(300)).await {
        assert!(!matches!(frame, Frame::Closed(..)), "the other share ended");
    }
    let log = gw
        .machines
        .audit()
        .page(&domain::Identity(user.email.clone()), None, 100)
        .await
        .unwrap();
    let revoked: Vec<_> = log
        .iter()
        .filter(|entry| entry.kind.as_str() == "share_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{log:?}");
    let details: Value = serde_json::from_str(&revoked[0].details).unwrap();
    assert_eq!(details["share"], id.as_str());
    assert_eq!(details["reason"], "revoked");
    assert_eq!(details["viewers"], 2);
    // Mallory's attempts ended nothing and wrote nothing in the owner's log.
    assert!(
        log.iter()
            .all(|entry| !entry.details.contains(mallory.as_str())),
        "{log:?}"
    );
}
