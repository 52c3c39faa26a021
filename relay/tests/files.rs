//! Files in the browser, end to end: a live terminal's owner browses, uploads, downloads and
//! changes files on its machine over SFTP on the terminal's own SSH connection, through
//! whichever relay replica the request lands on.
//!
//! Everything is real: relay processes sharing redis-server, OpenSSH's sshd (with its
//! `internal-sftp` subsystem) as the target, HTTP over loopback TCP. Proven here: 100 MiB goes
//! up through one replica and comes down through the other byte-exact (SHA-256, checked on the
//! target too); a cancelled upload leaves no file under its name and no `.part`; the terminal
//! echoes while an upload is mid-way and while a download is held still by a reader that
//! stopped; another user (and anyone without the owner's identity, a share viewer included)
//! gets 404; every transfer is in the audit log and marked on the terminal's recording; an
//! overwrite replaces the file in one step; a listing stops at its limit; a target without
//! SFTP says so; limits hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use domain::Identity;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use testkit::relay_world::{self, RelayWorld, STEP};
use testkit::ssh::{PrivateSshd, SshdOptions, shared_sshd};
use testkit::ws::Terminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn redis() -> String {
    testkit::service_env("SUSHI_TEST_REDIS_URL")
}

/// A signed-in user with an open terminal and its session id.
struct Owner {
    email: String,
    term: Terminal,
    session: String,
}

impl Owner {
    async fn open(gw: &RelayWorld, relay: &str, test: &str) -> Self {
        let email = gw.user(test).await;
        let id = gw.password_machine(&email).await;
        Self::open_machine(relay, email, id).await
    }

    async fn open_machine(relay: &str, email: String, id: u64) -> Self {
        let browser = relay_world::browser(&email);
        let ticket = relay_world::ticket(relay, &email, id).await;
        let mut term = Terminal::open(relay, &ticket, &browser.headers())
            .await
            .unwrap();
        term.expect_event("session", STEP).await;
        let (session, _) = term.session();
        Self {
            email,
            term,
            session,
        }
    }

    fn files(&self, base: &str) -> Files {
        Files {
            base: base.to_owned(),
            session: self.session.clone(),
            token: testkit::token(&self.email),
        }
    }

    /// Run `line` in the terminal, wait until it finished, and return what it printed. The
    /// markers around the output are assembled by `printf`, so the terminal's echo of the
    /// typed line (which holds the tag apart from the letters) never matches them.
    async fn shell(&mut self, line: &str) -> String {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let start = self.term.output.len();
        self.term
            .run(&format!("printf 'B%s:%s:E%s\\n' {tag} \"$({line})\" {tag}"))
            .await;
        self.term.expect_output(&format!(":E{tag}"), STEP * 2).await;
        let text = String::from_utf8_lossy(&self.term.output[start..]).to_string();
        let from = text.rfind(&format!("B{tag}:")).unwrap() + tag.len() + 2;
        let to = text.rfind(&format!(":E{tag}")).unwrap();
        text[from..to].to_owned()
    }

    /// Prove the terminal still echoes a fresh computation within one step.
    async fn echoes(&mut self) {
        let n = rand::random::<u16>() as u32;
        self.term.run(&format!("echo typed-$(({n}+1))")).await;
        self.term
            .expect_output(&format!("typed-{}", n + 1), STEP)
            .await;
    }
}

/// The file routes of one terminal on one relay, as one caller.
struct Files {
    base: String,
    session: String,
    token: String,
}

/// An answer: status and envelope.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

impl Files {
    fn url(&self, op: &str) -> String {
        if op.is_empty() {
            format!("{}/files/{}", self.base, self.session)
        } else {
            format!("{}/files/{}/{op}", self.base, self.session)
        }
    }

    fn as_user(&self, email: &str) -> Self {
        Self {
            base: self.base.clone(),
            session: self.session.clone(),
            token: testkit::token(email),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    async fn list(&self, path: &str) -> Answer {
        let client = reqwest::Client::new();
        self.send(client.get(self.url("list")).query(&[("path", path)]))
            .await
    }

    async fn mkdir(&self, path: &str) -> Answer {
        let client = reqwest::Client::new();
        self.send(client.post(self.url("mkdir")).query(&[("path", path)]))
            .await
    }

    async fn rename(&self, from: &str, to: &str) -> Answer {
        let client = reqwest::Client::new();
        self.send(
            client
                .post(self.url("rename"))
                .query(&[("from", from), ("to", to)]),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Answer {
        let client = reqwest::Client::new();
        self.send(client.delete(self.url("")).query(&[("path", path)]))
            .await
    }

    async fn upload(&self, path: &str, bytes: Vec<u8>) -> Answer {
        let client = reqwest::Client::new();
        self.send(
            client
                .put(self.url("upload"))
                .query(&[("path", path)])
                .header("content-type", "application/octet-stream")
                .body(bytes),
        )
        .await
    }

    async fn overwrite(&self, path: &str, bytes: Vec<u8>) -> Answer {
        let client = reqwest::Client::new();
        self.send(
            client
                .put(self.url("upload"))
                .query(&[("path", path), ("overwrite", "true")])
                .header("content-type", "application/octet-stream")
                .body(bytes),
        )
        .await
    }

    /// Download `path`: status, headers' disposition, SHA-256 and length of the body.
    async fn download(&self, path: &str) -> (u16, String, String, u64) {
        let response = reqwest::Client::new()
            .get(self.url("download"))
            .query(&[("path", path)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let disposition = response
            .headers()
            .get("content-disposition")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut response = response;
        let mut sha = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = response.chunk().await.unwrap() {
            sha.update(&chunk);
            len += chunk.len() as u64;
        }
        (status, disposition, format!("{:x}", sha.finalize()), len)
    }

    /// Names in `dir`.
    async fn names(&self, dir: &str) -> Vec<String> {
        let answer = self.list(dir).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["data"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A raw HTTP/1.1 upload whose body the test sends piece by piece (and may abandon).
struct RawUpload {
    stream: tokio::net::TcpStream,
}

impl RawUpload {
    async fn start(files: &Files, path: &str, length: u64) -> Self {
        let addr = files.base.strip_prefix("http://").unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let query: String = url_encode(path);
        let head = format!(
            "PUT /files/{}/upload?path={query} HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {length}\r\n\r\n",
            files.session, files.token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        Self { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }
}

fn url_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn random(size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn hex_sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A fresh directory under the test user's home, made through the API.
async fn scratch(files: &Files) -> String {
    let dir = format!("files-test-{}", uuid::Uuid::new_v4().simple());
    let made = files.mkdir(&dir).await;
    assert_eq!(made.status, 200, "{}", made.body);
    dir
}

/// The owner's `file_transferred` entries, newest first.
async fn transfers(gw: &RelayWorld, email: &str) -> Vec<Value> {
    let entries = gw
        .machines
        .audit()
        .page(&Identity(email.to_owned()), None, 100)
        .await
        .unwrap();
    entries
        .iter()
        .filter(|e| e.kind.as_str() == "file_transferred")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

/// Wait until `check` holds for the owner's transfer entries.
async fn audited(gw: &RelayWorld, email: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + STEP;
    loop {
        let entries = transfers(gw, email).await;
        if check(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "audit entries never matched: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_100_mib_file_goes_up_through_one_replica_and_down_through_the_other_byte_exact() {
    const SIZE: usize = 100 * 1024 * 1024;
    let gw = RelayWorld::new().await;
    let owner_relay = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let other_relay = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let mut owner = Owner::open(&gw, &owner_relay.base_url, "files-big").await;
    let here = owner.files(&owner_relay.base_url);
    let there = owner.files(&other_relay.base_url);
    let dir = scratch(&there).await;
    let path = format!("{dir}/big.bin");

    let bytes = random(SIZE);
    let sum = hex_sha(&bytes);
    // Up through the replica that does not hold the terminal (forwarded to its relay).
    let up = there.upload(&path, bytes).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["data"]["size"], SIZE as u64);
    assert_eq!(up.body["data"]["sha256"], sum);
    assert!(
        owner_relay.printed("file transfer ended", STEP).await,
        "the relay holding the terminal did the transfer"
    );

    // On the target, under its name, with no .part left.
    let target_sum = owner
        .shell(&format!("sha256sum < ~/{path} | cut -c1-64"))
        .await;
    assert_eq!(target_sum, sum, "the target's bytes differ");
    assert_eq!(there.names(&dir).await, vec!["big.bin"]);

    // Down through the other replica, and through the one holding it.
    let (status, disposition, got, len) = here.download(&path).await;
    assert_eq!(status, 200);
    assert_eq!(len, SIZE as u64);
    assert_eq!(got, sum, "downloaded bytes differ");
    assert!(
        disposition.starts_with("attachment;") && disposition.contains("big.bin"),
        "{disposition}"
    );
    let (status, _, got, _) = there.download(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        got, sum,
        "bytes downloaded through the other replica differ"
    );

    // Each transfer is in the owner's audit log, with its hash.
    let entries = audited(&gw, &owner.email, |entries| entries.len() >= 3).await;
    let uploads: Vec<&Value> = entries
        .iter()
        .filter(|e| e["direction"] == "upload")
        .collect();
    assert_eq!(uploads.len(), 1, "{entries:?}");
    assert_eq!(uploads[0]["outcome"], "completed");
    assert_eq!(uploads[0]["sha256"], sum);
    assert_eq!(uploads[0]["size"], SIZE as u64);
    assert_eq!(uploads[0]["path"], path);
    assert_eq!(uploads[0]["session"], owner.session);
    let downloads = entries
        .iter()
        .filter(|e| e["direction"] == "download" && e["outcome"] == "completed")
        .count();
    assert_eq!(downloads, 2, "{entries:?}");

    // Tidy: a file, then the empty directory.
    assert_eq!(there.delete(&path).await.status, 200);
    assert_eq!(there.delete(&dir).await.status, 200);
    owner.echoes().await;
}

#[tokio::test]
async fn a_cancelled_upload_leaves_nothing_and_the_terminal_echoes_during_transfers() {
    let gw = RelayWorld::new().await;
    let owner_relay = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let other_relay = gw.start(RELAY, &[("REDIS_URL", &redis())]);
    let mut owner = Owner::open(&gw, &owner_relay.base_url, "files-cancel").await;
    let there = owner.files(&other_relay.base_url);
    let dir = scratch(&there).await;
    let path = format!("{dir}/cancelled.bin");

    // An upload announced as 64 MiB, of which 8 MiB arrive; the terminal echoes meanwhile.
    let mut raw = RawUpload::start(&there, &path, 64 << 20).await;
    raw.send(&random(8 << 20)).await;
    let deadline = Instant::now() + STEP;
    loop {
        let names = there.names(&dir).await;
        if names == vec!["cancelled.bin.part"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no .part file appeared: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    owner.echoes().await;

    // The browser goes away mid-body.
    drop(raw);
    let deadline = Instant::now() + STEP;
    loop {
        let names = there.names(&dir).await;
        if names.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled upload left {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entries = audited(&gw, &owner.email, |entries| !entries.is_empty()).await;
    assert_eq!(entries[0]["direction"], "upload");
    assert_eq!(entries[0]["outcome"], "cancelled", "{entries:?}");

    // A download whose reader stops: the relay holds it (bounded), the terminal goes on.
    let big = format!("{dir}/held.bin");
    let up = there.upload(&big, random(32 << 20)).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let addr = there.base.strip_prefix("http://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "GET /files/{}/download?path={} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        there.session,
        url_encode(&big),
        there.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 64 * 1024];
    let read = stream.read(&mut first).await.unwrap();
    assert!(
        String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..read.min(300)])
    );
    // Not reading any more: the download stalls behind this socket, not the terminal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    owner.echoes().await;
    owner.echoes().await;
    drop(stream);
    let entries = audited(&gw, &owner.email, |entries| {
        entries
            .iter()
            .any(|e| e["direction"] == "download" && e["outcome"] == "cancelled")
    })
    .await;
    let held = entries
        .iter()
        .find(|e| e["direction"] == "download")
        .unwrap();
    assert!(
        held["size"].as_u64().unwrap() < 32 << 20,
        "a reader that stopped still got everything: {held}"
    );
    assert_eq!(there.delete(&big).await.status, 200);
    assert_eq!(there.delete(&dir).await.status, 200);
}

#[tokio::test]
async fn only_the_owner_reaches_a_terminals_files() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let owner = Owner::open(&gw, &relay.base_url, "files-owner").await;
    let files = owner.files(&relay.base_url);
    assert_eq!(files.list("").await.status, 200);

    let stranger = gw.user("files-stranger").await;
    let theirs = files.as_user(&stranger);
    for answer in [
        theirs.list("").await,
        theirs.mkdir("stranger-was-here").await,
        theirs.upload("stranger.bin", b"x".to_vec()).await,
        theirs.delete(".bashrc").await,
    ] {
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.code(), "session_not_found");
    }
    let (status, ..) = theirs.download(".bashrc").await;
    assert_eq!(status, 404);
    // An unknown session answers exactly the same.
    let unknown = Files {
        session: uuid::Uuid::new_v4().to_string(),
        ..owner.files(&relay.base_url)
    };
    let answer = unknown.list("").await;
    assert_eq!((answer.status, answer.code()), (404, "session_not_found"));
    // No identity at all.
    let anonymous = reqwest::get(files.url("list")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // A forged hop header is refused outright.
    let forged = reqwest::Client::new()
        .get(files.url("list"))
        .header("x-sushi-hop", "f:x.eA.9999999999.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // The owner's browser (cookie, allowed Origin) may upload raw bytes with PUT.
    let browser = relay_world::browser(&owner.email);
    let mut request = reqwest::Client::new()
        .put(files.url("upload"))
        .query(&[("path", format!("cookie-{}.txt", owner.session))])
        .header("content-type", "application/octet-stream")
        .body("hello");
    for (name, value) in browser.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        files
            .delete(&format!("cookie-{}.txt", owner.session))
            .await
            .status,
        200
    );
    // The same cookie from another site, or with a type a form can send, is refused.
    let cookie = browser.headers()[1].1.to_owned();
    let cross = reqwest::Client::new()
        .put(files.url("upload"))
        .query(&[("path", "cross-site.txt")])
        .header("content-type", "application/octet-stream")
        .header("origin", "https://evil.example")
        .header("cookie", &cookie)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let form = reqwest::Client::new()
        .post(files.url("mkdir"))
        .query(&[("path", "form-made")])
        .header("content-type", "text/plain")
        .header("cookie", &cookie)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // The stranger's listing after all this: nothing of theirs was created.
    assert!(!files.names("").await.contains(&"stranger.bin".to_owned()));
    let names = files.names("").await;
    for name in ["stranger-was-here", "cross-site.txt", "form-made"] {
        assert!(!names.contains(&name.to_owned()), "{name} was created");
    }
}

#[tokio::test]
async fn browsing_and_changes_work_and_inputs_are_bounded() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("FILES_MAX_BYTES", "1048576")]);
    let owner = Owner::open(&gw, &relay.base_url, "files-ops").await;
    let files = owner.files(&relay.base_url);

    // The listing starts at the login directory.
    let home = files.list("").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let home_path = home.body["data"]["path"].as_str().unwrap().to_owned();
    assert_eq!(home_path, format!("/home/{}", shared_sshd().user));

    let dir = scratch(&files).await;
    let made = files.mkdir(&dir).await;
    assert_eq!(
        (made.status, made.code()),
        (409, "remote_failed"),
        "{}",
        made.body
    );
    let a = format!("{dir}/a.txt");
    let b = format!("{dir}/b.txt");
    assert_eq!(files.upload(&a, b"alpha".to_vec()).await.status, 200);
    // An existing name is not replaced unless asked.
    let again = files.upload(&a, b"beta".to_vec()).await;
    assert_eq!((again.status, again.code()), (409, "remote_exists"));
    let replaced = files
        .send(
            reqwest::Client::new()
                .put(files.url("upload"))
                .query(&[("path", a.as_str()), ("overwrite", "true")])
                .header("content-type", "application/octet-stream")
                .body("gamma"),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let renamed = files.rename(&a, &b).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(files.names(&dir).await, vec!["b.txt"]);
    let listing = files.list(&dir).await;
    assert_eq!(listing.body["data"]["entries"][0]["size"], 5);
    assert_eq!(listing.body["data"]["entries"][0]["kind"], "file");
    let (_, _, sum, _) = files.download(&b).await;
    assert_eq!(sum, hex_sha(b"gamma"));

    // A non-empty directory is not deleted; missing paths say so.
    let full = files.delete(&dir).await;
    assert_eq!((full.status, full.code()), (409, "remote_failed"));
    let missing = files.list(&format!("{dir}/nope")).await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "remote_path_not_found")
    );

    // Bounds: the deployment's size limit (announced or not), path length.
    let over = files.upload(&format!("{dir}/big"), random(1048577)).await;
    assert_eq!((over.status, over.code()), (413, "file_too_large"));
    assert_eq!(files.names(&dir).await, vec!["b.txt"]);
    let long = files.list(&"x".repeat(5000)).await;
    assert_eq!((long.status, long.code()), (400, "invalid_request"));
    let no_path = files.mkdir("").await;
    assert_eq!((no_path.status, no_path.code()), (400, "invalid_request"));

    // Changes are audited too.
    let changes: Vec<Value> = gw
        .machines
        .audit()
        .page(&Identity(owner.email.clone()), None, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind.as_str() == "file_changed")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c["action"] == "rename" && c["to"] == b.as_str()),
        "{changes:?}"
    );
    assert_eq!(files.delete(&b).await.status, 200);
    assert_eq!(files.delete(&dir).await.status, 200);
}

#[tokio::test]
async fn files_off_and_a_target_without_sftp_say_so() {
    let gw = RelayWorld::new().await;
    let off = gw.start(RELAY, &[("FILES_MAX_BYTES", "0")]);
    let owner = Owner::open(&gw, &off.base_url, "files-off").await;
    let answer = owner.files(&off.base_url).list("").await;
    assert_eq!((answer.status, answer.code()), (404, "files_disabled"));

    // A private sshd with no sftp subsystem configured.
    let sshd = PrivateSshd::start(0, SshdOptions::default());
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("files-nosftp").await;
    let shared = shared_sshd();
    let id = gw
        .machine(
            &email,
            serde_json::json!({
                "name": "no sftp",
                "hostname": "127.0.0.1",
                "port": sshd.port.to_string(),
                "username": shared.user,
                "password": shared.password,
            }),
        )
        .await;
    let mut owner = Owner::open_machine(&relay.base_url, email, id).await;
    let answer = owner.files(&relay.base_url).list("").await;
    assert_eq!(
        (answer.status, answer.code()),
        (502, "sftp_unavailable"),
        "{}",
        answer.body
    );
    owner.echoes().await;
}

/// The events of the owner's newest recording once it has ended, as `(code, data)`.
async fn ended_recording(gw: &RelayWorld, email: &str) -> Vec<(String, String)> {
    let recordings = gw.machines.recordings().expect("recordings are wired");
    let owner = Identity(email.to_owned());
    let deadline = Instant::now() + STEP;
    let id = loop {
        let listed = recordings.list(&owner).await.unwrap();
        if let Some(newest) = listed.first().filter(|r| r.ended_at.is_some()) {
            break newest.id.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ended recording: {}",
            listed.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = domain::recording::RecordingId::parse(&id).unwrap();
    let cast = recordings.fetch(&owner, &id).await.unwrap();
    String::from_utf8(cast)
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
async fn every_transfer_is_marked_on_the_terminals_recording() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let mut owner = Owner::open(&gw, &relay.base_url, "files-recorded").await;
    let files = owner.files(&relay.base_url);
    let dir = scratch(&files).await;
    let path = format!("{dir}/marked.bin");
    let bytes = random(70_000);
    let sum = hex_sha(&bytes);

    let up = files.upload(&path, bytes).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let (status, _, got, len) = files.download(&path).await;
    assert_eq!((status, got.as_str(), len), (200, sum.as_str(), 70_000));
    audited(&gw, &owner.email, |entries| entries.len() >= 2).await;
    assert_eq!(files.delete(&path).await.status, 200);
    assert_eq!(files.delete(&dir).await.status, 200);

    // The terminal ends; its recording is complete and holds one marker per transfer.
    owner.term.run("exit").await;
    owner.term.expect_close(STEP).await;
    let events = ended_recording(&gw, &owner.email).await;
    let markers: Vec<&str> = events
        .iter()
        .filter(|(code, _)| code == "m")
        .map(|(_, data)| data.as_str())
        .collect();
    for direction in ["upload", "download"] {
        let expected = format!("file {direction} completed: {path} (70000 bytes, sha256 {sum})");
        assert!(
            markers.contains(&expected.as_str()),
            "no marker {expected:?} in {markers:?}"
        );
    }
    // The upload's marker comes before the download's, in the order they happened.
    let position = |direction: &str| {
        markers
            .iter()
            .position(|m| m.starts_with(&format!("file {direction} ")))
            .unwrap()
    };
    assert!(position("upload") < position("download"), "{markers:?}");
}

#[tokio::test]
async fn an_overwrite_puts_the_new_bytes_in_place_in_one_step() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let mut owner = Owner::open(&gw, &relay.base_url, "files-overwrite").await;
    let files = owner.files(&relay.base_url);
    let dir = scratch(&files).await;
    let path = format!("{dir}/report.txt");
    assert_eq!(files.upload(&path, b"old bytes".to_vec()).await.status, 200);
    // A hard link to the old file keeps its inode visible: a replace by rename leaves the
    // link on the old bytes and gives the name a new inode.
    owner
        .shell(&format!("ln ~/{path} ~/{dir}/old-link.txt"))
        .await;
    let inode_before = owner.shell(&format!("stat -c %i ~/{path}")).await;

    let replaced = files.overwrite(&path, b"new bytes, longer".to_vec()).await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let (_, _, sum, _) = files.download(&path).await;
    assert_eq!(sum, hex_sha(b"new bytes, longer"));
    let mut names = files.names(&dir).await;
    names.sort();
    assert_eq!(
        names,
        vec!["old-link.txt", "report.txt"],
        "a temporary file was left"
    );
    let (_, _, old, _) = files.download(&format!("{dir}/old-link.txt")).await;
    assert_eq!(
        old,
        hex_sha(b"old bytes"),
        "the old file was written over in place"
    );
    assert_ne!(
        owner.shell(&format!("stat -c %i ~/{path}")).await,
        inode_before
    );
    // OpenSSH offers posix-rename@openssh.com: the relay did not fall back to remove + rename.
    assert!(
        !relay.output().contains("replaced in two steps"),
        "the replace was not atomic"
    );
    // Without overwrite the name stays taken.
    let again = files.upload(&path, b"x".to_vec()).await;
    assert_eq!((again.status, again.code()), (409, "remote_exists"));

    owner.shell(&format!("rm -r ~/{dir}")).await;
}

#[tokio::test]
async fn a_listing_stops_at_its_limit_and_says_so() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let mut owner = Owner::open(&gw, &relay.base_url, "files-many").await;
    let files = owner.files(&relay.base_url);
    let dir = scratch(&files).await;
    // 5,100 files and one directory, made on the target directly.
    owner
        .shell(&format!(
            "cd ~/{dir} && seq -f 'f%05g' 5100 | xargs touch && mkdir sub && ls | wc -l"
        ))
        .await;

    let listing = files.list(&dir).await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    let entries = listing.body["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5000);
    assert_eq!(listing.body["data"]["truncated"], true);
    // What is shown is sorted, directories first, and has no duplicates.
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| (*n != "sub", *n));
    assert_eq!(names, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), 5000);

    // Under the limit, nothing is cut.
    owner
        .shell(&format!(
            "cd ~/{dir} && seq -f 'f%05g' 4001 5100 | xargs rm"
        ))
        .await;
    let listing = files.list(&dir).await;
    assert_eq!(
        listing.body["data"]["entries"].as_array().unwrap().len(),
        4001
    );
    assert_eq!(listing.body["data"]["truncated"], false);
    owner.shell(&format!("rm -r ~/{dir}")).await;
}
