//! Session recording end to end, on the local binary against the real sshd: what the client
//! received is what the recording replays; a recording tampered with, cut short or reordered
//! is refused by the API; another user cannot see one; storage failing keeps the session
//! alive (`on`) with the gap marked, or refuses / ends it (`required`); and the same against
//! moto's S3 (`RECORDINGS_BUCKET`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::ws::Terminal;
use testkit::{Client, JWT_SECRET, Process};

const MASTER: &str = "recording master pw";
const STEP: Duration = Duration::from_secs(20);

struct Local {
    dir: tempfile::TempDir,
    sushi: Process,
}

fn start(extra: &[(&str, &str)]) -> Local {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, extra)
}

fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Local {
    let mut env = HashMap::from([
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
    ]);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let sushi = Process::start(env!("CARGO_BIN_EXE_sushi"), &env);
    Local { dir, sushi }
}

fn user(test: &str) -> String {
    format!("{test}-{}@sushi.test", uuid_like())
}

fn uuid_like() -> String {
    let bytes: [u8; 8] = rand_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rand_bytes() -> [u8; 8] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let digest = Sha256::digest(nanos.to_le_bytes());
    digest[..8].try_into().unwrap()
}

/// A user with a master password and one machine on the shared sshd.
async fn machine(base_url: &str, email: &str, extra: Value) -> (Client, u64) {
    let client = Client::new(base_url, None).as_user(email);
    assert_eq!(client.set_master_password(MASTER).await.status, 200);
    let sshd = testkit::ssh::shared_sshd();
    let mut body = json!({"name": "recorded", "hostname": sshd.host,
        "port": sshd.port.to_string(), "username": sshd.user, "password": sshd.password});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created = client.post_json("/api/v1/machine", &body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    (client, created.data()["id"].as_u64().unwrap())
}

async fn open(base_url: &str, client: &Client, email: &str, id: u64) -> Terminal {
    let answer = client
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": MASTER }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let ticket = answer.data().as_str().unwrap().to_owned();
    let cookie = format!("jwt={}", testkit::token(email));
    let mut term = Terminal::open(base_url, &ticket, &[("cookie", cookie.as_str())])
        .await
        .unwrap();
    term.expect_event("session", STEP).await;
    term
}

/// The caller's recordings once the newest has ended (its final chunk and metadata written
/// as the terminal tears down, just after the close).
async fn ended_recordings(client: &Client) -> Vec<Value> {
    for _ in 0..100 {
        let listed = client.get("/api/v1/recordings").await;
        assert_eq!(listed.status, 200, "{:?}", listed.body);
        let recordings = listed.data().as_array().unwrap().clone();
        if recordings.first().is_some_and(|r| !r["ended_at"].is_null()) {
            return recordings;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no ended recording listed");
}

/// `GET /api/v1/recording/{id}`: the asciicast, or the status and error envelope.
async fn fetch(client: &Client, email: &str, id: &str) -> Result<Vec<u8>, (u16, Value)> {
    let response = client
        .http
        .get(client.url(&format!("/api/v1/recording/{id}")))
        .bearer_auth(testkit::token(email))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap().to_vec();
    if status == 200 {
        assert_eq!(content_type.as_deref(), Some("application/x-asciicast"));
        Ok(body)
    } else {
        Err((status, serde_json::from_slice(&body).unwrap()))
    }
}

/// A session with output in several chunks (a pause longer than the flush interval between
/// them), UTF-8 split across packets likely, and an exit status.
async fn recorded_session(term: &mut Terminal) {
    term.run("seq 1 20000; echo seq-done").await;
    term.expect_output("seq-done\r\n", STEP).await;
    term.run("sleep 1.5; printf 'caf\\303\\251 \\342\\206\\222 fin\\n'")
        .await;
    term.expect_output("café → fin", STEP).await;
    term.run("sleep 1.5; exit 3").await;
    assert_eq!(term.expect_event("exit", STEP).await["code"], 3);
    term.expect_close(STEP).await;
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file of recording `id` under the data dir's `recordings/`, chunks in index order.
fn chunk_files(data_dir: &Path, id: &str) -> Vec<PathBuf> {
    let root = data_dir.join("recordings");
    let owner = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dir = owner.join("chunks").join(id);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; {:?}", dir.display(), walk(&root)))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn audit_kinds(client: &Client) -> Vec<Value> {
    let page = client.get("/api/v1/audit?limit=200").await;
    page.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("recording_"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_recording_replays_exactly_what_the_client_received() {
    let local = start(&[]);
    let email = user("replay");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("echo typed-secret-$((6*7))").await;
    term.expect_output("typed-secret-42", STEP).await;
    recorded_session(&mut term).await;

    let recordings = ended_recordings(&client).await;
    assert_eq!(recordings.len(), 1);
    let listed = &recordings[0];
    assert_eq!(listed["machine_id"], id);
    assert_eq!(listed["machine_name"], "recorded");
    assert_eq!(listed["exit_status"], 3);
    assert_eq!(listed["gaps"], 0);
    assert_eq!(listed["record_input"], false);
    assert_eq!(listed["bytes"], term.output.len());
    assert!(listed["duration_secs"].as_f64().unwrap() >= 3.0, "{listed}");

    let cast = fetch(&client, &email, listed["id"].as_str().unwrap())
        .await
        .unwrap();
    let replayed = domain::recording::cast::replay_output(&cast).unwrap();
    assert_eq!(sha256(&replayed), sha256(&term.output));
    let text = String::from_utf8(cast).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].clone(), header["height"].clone()),
        (json!(80), json!(24))
    );
    assert!(
        !text.contains(",\"i\","),
        "keystrokes are not recorded unless the machine says so"
    );
    assert!(chunk_files(local.dir.path(), listed["id"].as_str().unwrap()).len() >= 4);

    let kinds = audit_kinds(&client).await;
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds[0]["kind"], "recording_started");
    assert_eq!(kinds[0]["details"]["recording"], listed["id"]);
}

#[tokio::test]
async fn keystrokes_are_recorded_only_when_the_machine_says_so() {
    let local = start(&[]);
    let email = user("input");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({"record_input": true})).await;
    let got = client.get(&format!("/api/v1/machine/{id}")).await;
    assert_eq!(got.data()["record_input"], true);
    assert_eq!(got.data()["recording"], true);
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.send_json(json!({"type": "resize", "cols": 100, "rows": 30}))
        .await;
    term.run("echo hello-input").await;
    term.expect_output("hello-input\r\n", STEP).await;
    term.run("exit").await;
    term.expect_close(STEP).await;
    let recordings = ended_recordings(&client).await;
    let cast = fetch(&client, &email, recordings[0]["id"].as_str().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(cast).unwrap();
    assert!(text.contains("\"i\",\"echo hello-input\\n\"]"), "{text}");
    assert!(text.contains("\"r\",\"100x30\"]"), "{text}");
}

/// Read until an event of `kind` satisfying `test` arrives.
async fn wait_event(term: &mut Terminal, kind: &str, test: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        if let Some(event) = term.events.iter().find(|e| e["type"] == kind && test(e)) {
            return event.clone();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            term.next(left).await.is_some(),
            "no {kind} event: {:?}",
            term.events
        );
    }
}

/// The recording's events after the header, as `(code, data)`.
fn cast_events(cast: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(cast.to_vec())
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let (_, code, data): (f64, String, String) = serde_json::from_str(line).unwrap();
            (code, data)
        })
        .collect()
}

#[tokio::test]
async fn a_shared_terminals_recording_marks_who_typed() {
    let local = start(&[]);
    let base = local.sushi.base_url.clone();
    for record_input in [true, false] {
        let email = user("typist-owner");
        let bob = user("typist-bob");
        let (client, id) = machine(&base, &email, json!({"record_input": record_input})).await;
        let mut owner = open(&base, &client, &email, id).await;
        owner.run("echo OWNER-$((1+1))").await;
        owner.expect_output("OWNER-2\r\n", STEP).await;

        owner
            .send_json(json!({"type": "share_create", "mode": "control", "emails": [bob]}))
            .await;
        let created = wait_event(&mut owner, "share_created", |_| true).await;
        let bob_cookie = format!("jwt={}", testkit::token(&bob));
        let mut viewer = Terminal::join(
            &base,
            created["id"].as_str().unwrap(),
            created["secret"].as_str().unwrap(),
            &[("cookie", bob_cookie.as_str())],
        )
        .await
        .unwrap();
        let joined = viewer.expect_event("joined", STEP).await;
        owner
            .send_json(json!({"type": "control_grant", "viewer": joined["viewer"]}))
            .await;
        wait_event(&mut viewer, "control", |e| e["granted"] == true).await;
        viewer.run("echo BOB-$((2*3))").await;
        owner.expect_output("BOB-6\r\n", STEP).await;
        owner.run("echo OWNER-$((3+3))-AGAIN").await;
        owner.expect_output("OWNER-6-AGAIN\r\n", STEP).await;
        owner.run("exit").await;
        owner.expect_close(STEP).await;

        let recordings = ended_recordings(&client).await;
        let cast = fetch(&client, &email, recordings[0]["id"].as_str().unwrap())
            .await
            .unwrap();
        let events = cast_events(&cast);
        let markers: Vec<&str> = events
            .iter()
            .filter(|(code, data)| code == "m" && data.starts_with("input: "))
            .map(|(_, data)| data.as_str())
            .collect();
        // The owner typing first is not marked; the viewer, then the owner again, are.
        let expected = [format!("input: {bob}"), format!("input: {email}")];
        assert_eq!(markers, expected, "record_input {record_input}: {events:?}");
        let at = |code: &str, data: &str| {
            events
                .iter()
                .position(|(c, d)| c == code && d.contains(data))
                .unwrap_or_else(|| panic!("no {code} {data:?} in {events:?}"))
        };
        let (bob_marker, owner_marker) = (at("m", &expected[0]), at("m", &expected[1]));
        assert!(bob_marker < owner_marker);
        if record_input {
            // Each marker comes right before its typist's keystrokes.
            assert!(at("i", "echo OWNER-$((1+1))") < bob_marker);
            let bob_typed = at("i", "echo BOB");
            assert!(
                bob_marker < bob_typed && bob_typed < owner_marker,
                "{events:?}"
            );
            assert!(owner_marker < at("i", "AGAIN"), "{events:?}");
        } else {
            assert!(
                events.iter().all(|(code, _)| code != "i"),
                "input recorded: {events:?}"
            );
            // The viewer's output came between the markers.
            let bob_output = at("o", "BOB-6");
            assert!(bob_marker < bob_output && bob_output < owner_marker);
        }
    }
}

#[tokio::test]
async fn a_machine_with_recording_off_is_not_recorded_unless_required() {
    let local = start(&[]);
    let email = user("off");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({"recording": false})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("exit").await;
    term.expect_close(STEP).await;
    let listed = client.get("/api/v1/recordings").await;
    assert_eq!(listed.data(), &json!([]));
}

#[tokio::test]
async fn a_tampered_truncated_or_reordered_recording_is_refused() {
    let local = start(&[]);
    let email = user("tamper");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    recorded_session(&mut term).await;
    let recordings = ended_recordings(&client).await;
    let rec = recordings[0]["id"].as_str().unwrap().to_owned();
    let files = chunk_files(local.dir.path(), &rec);
    assert!(files.len() >= 4, "{files:?}");
    let original: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let restore = || {
        for (file, bytes) in files.iter().zip(&original) {
            std::fs::write(file, bytes).unwrap();
        }
    };
    let damaged = |answer: Result<Vec<u8>, (u16, Value)>| {
        let (status, body) = answer.expect_err("a damaged recording must be refused");
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["code"], "recording_damaged", "{body}");
        body["message"].as_str().unwrap().to_owned()
    };

    // One bit flipped in chunk 1.
    let mut flipped = original[1].clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&files[1], flipped).unwrap();
    let why = damaged(fetch(&client, &email, &rec).await);
    assert!(why.contains("chunk 1 failed authentication"), "{why}");
    restore();
    assert!(fetch(&client, &email, &rec).await.is_ok());

    // Chunks 1 and 2 swapped.
    std::fs::write(&files[1], &original[2]).unwrap();
    std::fs::write(&files[2], &original[1]).unwrap();
    let why = damaged(fetch(&client, &email, &rec).await);
    assert!(why.contains("chunk 1 failed authentication"), "{why}");
    restore();

    // The final chunk removed: what remains opens, but the recording is cut short.
    let last = files.len() - 1;
    std::fs::remove_file(&files[last]).unwrap();
    let why = damaged(fetch(&client, &email, &rec).await);
    assert!(why.contains(&format!("chunk {last} is missing")), "{why}");
    restore();

    // A chunk from another recording of the same owner put in its place.
    let mut other = open(&local.sushi.base_url, &client, &email, id).await;
    other.run("exit").await;
    other.expect_close(STEP).await;
    let again = ended_recordings(&client).await;
    let second = again.iter().find(|r| r["id"] != rec.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = chunk_files(local.dir.path(), &second);
    std::fs::copy(&foreign[0], &files[0]).unwrap();
    let why = damaged(fetch(&client, &email, &rec).await);
    assert!(why.contains("chunk 0 failed authentication"), "{why}");
    restore();
    assert!(fetch(&client, &email, &rec).await.is_ok());
}

#[tokio::test]
async fn another_user_cannot_list_open_or_delete_a_recording() {
    let local = start(&[]);
    let email = user("owner");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("exit").await;
    term.expect_close(STEP).await;
    let rec = ended_recordings(&client).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mallory = user("mallory");
    let other = Client::new(&local.sushi.base_url, None).as_user(&mallory);
    assert_eq!(other.get("/api/v1/recordings").await.data(), &json!([]));
    let (status, body) = fetch(&other, &mallory, &rec).await.unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("recording_not_found"))
    );
    let deleted = other.delete(&format!("/api/v1/recording/{rec}")).await;
    assert_eq!(deleted.status, 404, "{:?}", deleted.body);
    assert_eq!(deleted.body["code"], "recording_not_found");
    let (status, _) = fetch(&other, &mallory, "../../etc/passwd")
        .await
        .unwrap_err();
    assert_eq!(status, 404);

    // Still there for its owner, who can delete it.
    assert!(fetch(&client, &email, &rec).await.is_ok());
    let deleted = client.delete(&format!("/api/v1/recording/{rec}")).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    assert_eq!(client.get("/api/v1/recordings").await.data(), &json!([]));
    assert_eq!(fetch(&client, &email, &rec).await.unwrap_err().0, 404);
}

/// Make a recording's chunk directory unwritable (a file in its place: root ignores
/// permission bits), returning how to put it back.
fn break_chunks(data_dir: &Path, id: &str) -> impl FnOnce() {
    let root = data_dir.join("recordings");
    let owner = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dir = owner.join("chunks").join(id);
    let aside = owner.join("chunks").join(format!("{id}.aside"));
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    move || {
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(&aside, &dir).unwrap();
    }
}

#[tokio::test]
async fn a_storage_outage_under_on_keeps_the_session_and_marks_the_gap() {
    let local = start(&[]);
    let email = user("outage");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("echo before-outage").await;
    term.expect_output("before-outage\r\n", STEP).await;
    // Written within a second (the flush interval), before the outage.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rec = client.get("/api/v1/recordings").await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restore = break_chunks(local.dir.path(), &rec);
    // More output than the recorder keeps unwritten (4 MiB) while storage fails.
    term.run("head -c 6000000 /dev/zero | tr '\\0' 'x'; echo; echo during-outage")
        .await;
    term.expect_output("during-outage\r\n", Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    term.run("echo still-alive").await;
    term.expect_output("still-alive\r\n", STEP).await;
    restore();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    term.run("echo after-outage; exit").await;
    term.expect_close(STEP).await;

    let listed = ended_recordings(&client).await;
    assert!(listed[0]["gaps"].as_u64().unwrap() >= 1, "{}", listed[0]);
    // What was kept of the 6 MB may be over one answer's 5 MiB: fetched in windows.
    let cast = fetch_windows(&client, &email, &rec).await;
    let text = String::from_utf8(cast.clone()).unwrap();
    assert!(
        text.contains("\"m\",\"gap: "),
        "the gap is marked in the recording"
    );
    let replayed = domain::recording::cast::replay_output(&cast).unwrap();
    assert!(testkit::ws::contains(&replayed, b"before-outage"));
    assert!(testkit::ws::contains(&replayed, b"after-outage"));
    assert!(replayed.len() < term.output.len());
    let kinds = audit_kinds(&client).await;
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, ["recording_started", "recording_failed"]);
    assert_eq!(kinds[1]["details"]["policy"], "on");
}

#[tokio::test]
async fn required_refuses_a_connect_that_cannot_be_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("recordings"), b"not a directory").unwrap();
    let local = start_in(dir, &[("RECORDING", "required")]);
    let email = user("required");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let answer = client
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": MASTER }),
        )
        .await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["code"], "recording_unavailable");
    assert!(answer.headers.contains_key("retry-after"));
    let kinds = audit_kinds(&client).await;
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds[0]["kind"], "recording_failed");
    assert_eq!(kinds[0]["details"]["policy"], "required");

    // Under `on` the same failure lets the session start, unrecorded.
    drop(local.sushi);
    let local = start_in(local.dir, &[]);
    let client = Client::new(&local.sushi.base_url, None).as_user(&email);
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("exit").await;
    term.expect_close(STEP).await;
}

#[tokio::test]
async fn required_ends_a_session_whose_recording_fails() {
    let local = start(&[("RECORDING", "required")]);
    let email = user("required-later");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("echo recorded").await;
    term.expect_output("recorded\r\n", STEP).await;
    let rec = client.get("/api/v1/recordings").await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let _restore = break_chunks(local.dir.path(), &rec);
    term.run("echo not-recorded").await;
    let (code, reason) = term.expect_close(STEP).await;
    assert_eq!((code, reason.as_str()), (4020, "recording failed"));
    let error = term.events.iter().find(|e| e["type"] == "error").unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Recording failed"),
        "{error}"
    );
}

/// moto's S3 on loopback, a fresh bucket per test (moto creates one on an unsigned PUT).
async fn s3_bucket() -> (String, String) {
    let endpoint = testkit::service_env("SUSHI_TEST_MOTO_URL");
    let bucket = format!("sushi-recordings-{}", uuid_like());
    let created = edge::tls::http_client()
        .build()
        .unwrap()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    (endpoint, bucket)
}

#[tokio::test]
async fn recordings_in_s3_replay_and_are_deleted() {
    let (endpoint, bucket) = s3_bucket().await;
    let mut extra = vec![
        ("RECORDINGS_BUCKET", bucket.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    extra.extend(testkit::aws_test_credentials());
    let local = start(&extra);
    let email = user("s3");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    recorded_session(&mut term).await;
    let recordings = ended_recordings(&client).await;
    let rec = recordings[0]["id"].as_str().unwrap().to_owned();
    let cast = fetch(&client, &email, &rec).await.unwrap();
    let replayed = domain::recording::cast::replay_output(&cast).unwrap();
    assert_eq!(sha256(&replayed), sha256(&term.output));
    assert!(
        !local.dir.path().join("recordings").exists(),
        "nothing on disk"
    );

    // The objects are where docs/recording.md says, and go with a delete.
    let listing = reqwest::Client::new()
        .get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=recordings/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&format!("/meta/{rec}.json")), "{listing}");
    assert!(
        listing.contains(&format!("/chunks/{rec}/00000000")),
        "{listing}"
    );
    let mallory = user("s3-mallory");
    let other = Client::new(&local.sushi.base_url, None).as_user(&mallory);
    assert_eq!(fetch(&other, &mallory, &rec).await.unwrap_err().0, 404);
    let deleted = client.delete(&format!("/api/v1/recording/{rec}")).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    let listing = reqwest::Client::new()
        .get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=recordings/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(&rec), "{listing}");
}

/// SIGTERM drains: a terminal still open when the grace runs out is closed, and its recording
/// gets its final chunk before the process exits, so it reads back complete afterwards.
#[tokio::test]
async fn a_drained_relay_finishes_its_recordings() {
    let mut local = start(&[("DRAIN_GRACE_SECS", "1")]);
    let email = user("drain");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("echo before-drain").await;
    term.expect_output("before-drain\r\n", STEP).await;
    local.sushi.signal("TERM");
    let (code, _) = term.expect_close(STEP).await;
    assert_eq!(code, 1001);
    assert!(local.sushi.wait_exit(STEP).is_some(), "sushi did not exit");

    let local = start_in(local.dir, &[]);
    let client = Client::new(&local.sushi.base_url, None).as_user(&email);
    let recordings = ended_recordings(&client).await;
    let cast = fetch(&client, &email, recordings[0]["id"].as_str().unwrap())
        .await
        .unwrap();
    let replayed = domain::recording::cast::replay_output(&cast).unwrap();
    assert_eq!(sha256(&replayed), sha256(&term.output));
}

/// A loopback TCP proxy in front of moto whose client-to-server direction can be held: the
/// storage is still there, but every request sent while it holds hangs, as a slow or
/// congested object store does. Returns the proxy's URL and the switch.
async fn holding_proxy(upstream: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&hold);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let hold = Arc::clone(&hold);
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut buf).await {
                    while hold.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    (url, switch)
}

/// Under `required`, a recorder that falls behind (storage slow, output fast) drops events
/// from its queue, and that ends the session: 4020, the error event, and `recording_failed`
/// audited with the reason. The storage is held (not failing) so that the queue overflows
/// before any write fails or times out.
#[tokio::test]
async fn required_ends_a_session_whose_recorder_falls_behind() {
    let (endpoint, bucket) = s3_bucket().await;
    let (proxy, hold) = holding_proxy(&endpoint).await;
    let mut extra = vec![
        ("RECORDINGS_BUCKET", bucket.as_str()),
        ("AWS_ENDPOINT_URL", proxy.as_str()),
        ("RECORDING", "required"),
    ];
    extra.extend(testkit::aws_test_credentials());
    let local = start(&extra);
    let email = user("overflow");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("echo recorded").await;
    term.expect_output("recorded\r\n", STEP).await;
    // Written within a second (the flush interval), before the storage slows down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hold.store(true, std::sync::atomic::Ordering::SeqCst);
    // Far more than the recorder buffers while a write hangs (4 MiB) plus its queue (4 MiB).
    term.run("head -c 30000000 /dev/urandom | base64; echo written")
        .await;
    let (code, reason) = term.expect_close(Duration::from_secs(60)).await;
    assert_eq!((code, reason.as_str()), (4020, "recording failed"));
    let error = term.events.iter().find(|e| e["type"] == "error").unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Recording failed"),
        "{error}"
    );
    hold.store(false, std::sync::atomic::Ordering::SeqCst);
    // The audit write runs beside the recorder: wait for it.
    let mut kinds = Vec::new();
    for _ in 0..100 {
        kinds = audit_kinds(&client).await;
        if kinds.iter().any(|k| k["kind"] == "recording_failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed: Vec<&Value> = kinds
        .iter()
        .filter(|k| k["kind"] == "recording_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{kinds:?}");
    assert_eq!(failed[0]["details"]["policy"], "required");
    assert_eq!(
        failed[0]["details"]["reason"], "the recorder fell behind; events were dropped",
        "the queue overflowed, not a write that failed: {kinds:?}"
    );
}

/// The facts in a recording's metadata are sealed: a changed metadata object is reported by
/// the fetch (500 `recording_damaged`) and in the listing (`damaged`), never trusted, and the
/// recording can still be deleted.
#[tokio::test]
async fn a_changed_metadata_object_is_reported() {
    let local = start(&[]);
    let email = user("meta");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    term.run("exit 4").await;
    term.expect_close(STEP).await;
    let listed = ended_recordings(&client).await;
    assert_eq!(listed[0]["exit_status"], 4);
    assert_eq!(listed[0]["damaged"], Value::Null);
    let rec = listed[0]["id"].as_str().unwrap().to_owned();
    let file = walk(&local.dir.path().join("recordings"))
        .into_iter()
        .find(|p| p.ends_with(format!("meta/{rec}.json")))
        .unwrap();
    let original = std::fs::read(&file).unwrap();
    let stored: Value = serde_json::from_slice(&original).unwrap();
    assert!(
        !String::from_utf8_lossy(&original).contains("recorded"),
        "the machine's name is not in the clear"
    );

    // One character of the sealed facts changed (as someone would to alter an exit status).
    let mut changed = stored.clone();
    let sealed = stored["sealed"].as_str().unwrap();
    let flipped = if sealed.as_bytes()[30] == b'A' {
        "B"
    } else {
        "A"
    };
    changed["sealed"] = format!("{}{flipped}{}", &sealed[..30], &sealed[31..]).into();
    std::fs::write(&file, serde_json::to_vec(&changed).unwrap()).unwrap();
    let (status, body) = fetch(&client, &email, &rec).await.unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("recording_damaged"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("metadata"),
        "{body}"
    );
    let listed = client.get("/api/v1/recordings").await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let row = &listed.data()[0];
    assert_eq!(row["id"], rec.as_str());
    assert!(
        row["damaged"]
            .as_str()
            .unwrap()
            .contains("failed authentication"),
        "{row}"
    );
    assert_eq!(row["exit_status"], Value::Null);

    // Put back, it verifies; changed again, it can be deleted.
    std::fs::write(&file, &original).unwrap();
    assert!(fetch(&client, &email, &rec).await.is_ok());
    std::fs::write(&file, serde_json::to_vec(&changed).unwrap()).unwrap();
    let deleted = client.delete(&format!("/api/v1/recording/{rec}")).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    assert_eq!(client.get("/api/v1/recordings").await.data(), &json!([]));
}

/// One window of `GET /api/v1/recording/{id}?from_chunk=N`: the text and the next cursor.
async fn fetch_window(
    client: &Client,
    email: &str,
    id: &str,
    from: u64,
) -> Result<(Vec<u8>, Option<u64>), (u16, Value)> {
    let response = client
        .http
        .get(client.url(&format!("/api/v1/recording/{id}?from_chunk={from}")))
        .bearer_auth(testkit::token(email))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let next = response
        .headers()
        .get("x-recording-next-chunk")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = response.bytes().await.unwrap().to_vec();
    if status == 200 {
        Ok((body, next))
    } else {
        Err((status, serde_json::from_slice(&body).unwrap()))
    }
}

/// A whole recording, window by window.
async fn fetch_windows(client: &Client, email: &str, id: &str) -> Vec<u8> {
    let mut whole = Vec::new();
    let mut from = 0;
    loop {
        let (text, next) = fetch_window(client, email, id, from).await.unwrap();
        whole.extend_from_slice(&text);
        match next {
            Some(next) => from = next,
            None => return whole,
        }
    }
}

/// A recording over 5 MiB is refused whole (413) and fetched in windows of at most 5 MiB
/// whose concatenation replays exactly what the client received.
#[tokio::test]
async fn a_recording_over_5_mib_is_fetched_in_windows() {
    let local = start(&[]);
    let email = user("windows");
    let (client, id) = machine(&local.sushi.base_url, &email, json!({})).await;
    let mut term = open(&local.sushi.base_url, &client, &email, id).await;
    // About 8 MB of text, paced (about 1 MB/s) so that the recorder of this debug build keeps
    // every byte: the test is about the fetch, not the recorder's ceiling.
    term.run(
        "for i in $(seq 1 40); do head -c 150000 /dev/urandom | base64; sleep 0.2; done; echo paced-done",
    )
    .await;
    term.expect_output("paced-done\r\n", Duration::from_secs(120))
        .await;
    term.run("exit").await;
    term.expect_close(STEP).await;
    let listed = ended_recordings(&client).await;
    assert_eq!(listed[0]["gaps"], 0, "{}", listed[0]);
    let rec = listed[0]["id"].as_str().unwrap().to_owned();

    let (status, body) = fetch(&client, &email, &rec).await.unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("recording_too_large"))
    );
    let mut whole = Vec::new();
    let mut from = 0;
    let mut windows = 0;
    loop {
        let (text, next) = fetch_window(&client, &email, &rec, from).await.unwrap();
        assert!(text.len() <= 5 * 1024 * 1024, "window of {}", text.len());
        whole.extend_from_slice(&text);
        windows += 1;
        match next {
            Some(next) => {
                assert!(next > from);
                from = next;
            }
            None => break,
        }
    }
    assert!(windows >= 2, "{windows}");
    assert!(whole.len() > 5 * 1024 * 1024);
    let replayed = domain::recording::cast::replay_output(&whole).unwrap();
    assert_eq!(sha256(&replayed), sha256(&term.output));

    // A cursor past the end is a client error; a malformed one too.
    let chunks = chunk_files(local.dir.path(), &rec).len() as u64;
    let (status, body) = fetch_window(&client, &email, &rec, chunks)
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let answer = client
        .get(&format!("/api/v1/recording/{rec}?from_chunk=-1"))
        .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
}
