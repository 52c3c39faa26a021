//! Helpers for integration tests, in one place so every test starts services the same way.
//!
//! Tests drive the real binaries (`CARGO_BIN_EXE_*`) over real HTTP against real services:
//! moto's server for DynamoDB/KMS, redis-server and OpenSSH sshd, all started by
//! `localstack/services.sh` (the README's test command does that). A test that needs a service
//! which is not running fails with a message saying so, rather than silently passing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod browser_paths;
pub mod metrics;
pub mod redis;
pub mod relay_world;
pub mod ssh;
pub mod ws;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The JWT secret every test server is started with.
pub const JWT_SECRET: &str = "integration-test-secret-not-for-production";

/// Repository root (the workspace), for scripts under `localstack/`.
pub fn repo_root() -> PathBuf {
    // This crate lives at shared/testkit.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// An environment variable set by `localstack/services.sh env`; panics with guidance if unset.
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test services first \
             (run the README's test command, or `eval \"$(localstack/services.sh env)\"` \
             after `localstack/services.sh start`)"
        )
    })
}

/// The configuration of an embedded deployment on `dir` with [`JWT_SECRET`], for tests that
/// drive the domain or a router in-process next to the binaries they start.
pub fn embedded_config(dir: &std::path::Path) -> domain::config::Config {
    domain::config::Config {
        port: 0,
        jwt_secret: Some(secrecy::SecretString::from(JWT_SECRET.to_owned())),
        oidc_client_secret: None,
        secret_arns: Default::default(),
        jwks_url: None,
        jwt_issuer: None,
        jwt_audience: None,
        data_dir: dir.to_path_buf(),
        backend: domain::config::Backend::Embedded {
            data_dir: dir.to_path_buf(),
        },
        audit_table: None,
        max_machines_per_user: 500,
        kdf_memory_mib: domain::kdf::DEFAULT_MEMORY_MIB,
        kdf_wait: domain::kdf::DEFAULT_WAIT,
        recording: Default::default(),
        recordings_bucket: None,
    }
}

/// A session token for `email` as the product mints them, signed with [`JWT_SECRET`].
pub fn token(email: &str) -> String {
    edge::auth::mint_session(JWT_SECRET.as_bytes(), email, "test", 3600).unwrap()
}

/// An HS256 token for `email`, signed with another secret (a generated `DATA_DIR/jwt.secret`,
/// one read from Secrets Manager).
pub fn token_signed_with(secret: &str, email: &str) -> String {
    edge::auth::mint_session(secret.as_bytes(), email, "test", 3600).unwrap()
}

/// A fresh, uniquely named DynamoDB table (and audit table) and KMS key on the moto server,
/// created through the same provisioning script operators use (`localstack/provision.py`).
pub struct AwsBackend {
    pub table: String,
    pub audit_table: String,
    pub kms_key_id: String,
    pub endpoint: String,
}

pub fn provision_aws() -> AwsBackend {
    let endpoint = service_env("SUSHI_TEST_MOTO_URL");
    let python = service_env("SUSHI_TEST_PYTHON");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("sushi-test-{suffix}");
    let output = Command::new(python)
        .arg(repo_root().join("localstack/provision.py"))
        .args([
            "--table",
            &table,
            "--alias",
            &format!("alias/sushi-test-{suffix}"),
        ])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .envs(aws_test_credentials())
        .output()
        .expect("run provision.py");
    assert!(
        output.status.success(),
        "provision.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("provision.py printed no {key}: {stdout}"))
            .trim()
            .to_owned()
    };
    AwsBackend {
        table: value("DYNAMODB_TABLE"),
        audit_table: value("AUDIT_TABLE"),
        kms_key_id: value("KMS_KEY_ID"),
        endpoint,
    }
}

/// A new plain-string secret holding `value` on the moto server's Secrets Manager; its ARN.
pub fn moto_secret(value: &str) -> String {
    let name = format!("sushi-test-{}", uuid::Uuid::new_v4().simple());
    let script = "import boto3, os, sys\n\
        c = boto3.client('secretsmanager', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n\
        print(c.create_secret(Name=sys.argv[1], SecretString=sys.stdin.read())['ARN'])\n";
    let mut child = Command::new(service_env("SUSHI_TEST_PYTHON"))
        .args(["-c", script, &name])
        .env("AWS_ENDPOINT_URL", service_env("SUSHI_TEST_MOTO_URL"))
        .envs(aws_test_credentials())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python for Secrets Manager");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), value.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "create_secret failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Static credentials for the emulator; never real ones.
pub fn aws_test_credentials() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// Serve `app` on a free loopback port for the rest of the test (a fake identity provider, a
/// JWKS, a failure-injecting endpoint); returns `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A running binary, killed (by its own pid) when dropped.
pub struct Process {
    child: Child,
    pub base_url: String,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Start `binary` with `env` (plus `PORT=0`) and wait for its `listening on http://…` line.
    pub fn start(binary: &str, env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let stderr_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                stderr_logs.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                stdout_logs.lock().unwrap().push(line);
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{binary} did not start listening; output:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            base_url,
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (a name `kill -s` understands: TERM, STOP, CONT…) to this process, by pid.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.pid());
    }

    /// Kill it now (SIGKILL, by pid: a crash, no drain) and reap it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Whether the process prints `needle` within `timeout`. Log lines reach us through a pipe
    /// and a reader thread, so a line written just before an HTTP answer may arrive after it.
    pub async fn printed(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait up to `timeout` for the process to exit by itself; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `binary` with `env` (plus `PORT=0`, as [`Process::start`]) when it must refuse to start:
/// its exit status and everything it printed. Panics if it is still running after `timeout`
/// (then killed by pid).
pub fn run_expecting_exit(
    binary: &str,
    env: &HashMap<String, String>,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{binary} was expected to exit but still ran after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    for pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut output);
    }
    (status, output)
}

/// A JSON-envelope HTTP client bound to one server and (optionally) one user's token.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base_url: String,
    pub token: Option<String>,
}

/// Status and parsed body of one response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        Self {
            http: edge::tls::http_client()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base_url: base_url.to_owned(),
            token,
        }
    }

    pub fn as_user(&self, email: &str) -> Self {
        Self {
            token: Some(token(email)),
            ..self.clone()
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("HTTP request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        assert_eq!(
            content_type, "application/json",
            "every response must be JSON; got {status} {content_type}: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Set the master password (first time).
    pub async fn set_master_password(&self, password: &str) -> Answer {
        self.put_json(
            "/api/v1/master-password",
            &serde_json::json!({ "password": password }),
        )
        .await
    }
}

/// The `/assets/…` paths a page names (its `src="…"` and `href="…"` values). The web build
/// content-hashes asset names, so tests find them in `index.html` rather than spelling them.
pub fn page_assets(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/assets/") && !part.contains(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}
