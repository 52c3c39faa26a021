//! A relay test world: a fresh embedded `DATA_DIR` shared by the test (which sets master
//! passwords and creates machines through the domain service directly, in-process, the same
//! code api-fn runs) and by the relay processes it starts. SQLite in WAL mode with a busy timeout lets the
//! test process and several relays use the same file. This keeps relay tests independent of
//! the api-fn binary, which a relay test cannot name with `CARGO_BIN_EXE_*`.

use std::collections::HashMap;
use std::time::Duration;

use domain::requests::{FromJson, MasterPasswordChange, NewMachine};
use domain::{Identity, Machines};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{Client, JWT_SECRET, Process};

/// The master password every test user gets.
pub const MASTER_PASSWORD: &str = "correct horse battery staple";
/// The Origin the relays are configured to allow.
pub const ALLOWED_ORIGIN: &str = "https://app.sushi.test";

/// The data dir and the domain service on it.
pub struct RelayWorld {
    pub dir: tempfile::TempDir,
    pub machines: std::sync::Arc<Machines>,
}

/// A unique email for one test.
pub fn unique_email(test: &str) -> String {
    format!("{test}-{}@sushi.test", uuid::Uuid::new_v4().simple())
}

impl RelayWorld {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::embedded_config(dir.path());
        let machines = backends::wire(&config).await.unwrap();
        Self { dir, machines }
    }

    /// Environment for a relay (or `sushi`) process on this data dir; add to it per test.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("DATA_DIR".into(), self.dir.path().display().to_string()),
            ("JWT_SECRET".into(), JWT_SECRET.into()),
            ("SSH_ALLOW_LOOPBACK".into(), "true".into()),
            ("ALLOWED_ORIGINS".into(), ALLOWED_ORIGIN.into()),
            ("RUST_LOG".into(), "info,russh=warn".into()),
        ])
    }

    /// Start `binary` (the relay) on this data dir with `extra` settings.
    pub fn start(&self, binary: &str, extra: &[(&str, &str)]) -> Process {
        let mut env = self.env();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        Process::start(binary, &env)
    }

    /// A user with the master password set.
    pub async fn user(&self, test: &str) -> String {
        let email = unique_email(test);
        let change = MasterPasswordChange {
            password: SecretString::from(MASTER_PASSWORD.to_owned()),
            current: None,
        };
        self.machines
            .set_master_password(&Identity(email.clone()), &Default::default(), change)
            .await
            .unwrap();
        email
    }

    /// Create a machine for `email` from a create-request body; returns its id.
    pub async fn machine(&self, email: &str, body: Value) -> u64 {
        let new = NewMachine::from_json(body).unwrap();
        self.machines
            .create(&Identity(email.to_owned()), &Default::default(), new)
            .await
            .unwrap()
            .id
    }

    /// A password machine on the shared sshd.
    pub async fn password_machine(&self, email: &str) -> u64 {
        let sshd = crate::ssh::shared_sshd();
        self.machine(
            email,
            json!({
                "name": "shared sshd",
                "hostname": sshd.host,
                "port": sshd.port.to_string(),
                "username": sshd.user,
                "password": sshd.password,
            }),
        )
        .await
    }
}

/// `POST /api/v1/machine/{id}/connect` with `password` as `email`.
pub async fn connect(base_url: &str, email: &str, id: u64, password: &str) -> crate::Answer {
    Client::new(base_url, None)
        .as_user(email)
        .post_json(
            &format!("/api/v1/machine/{id}/connect"),
            &json!({ "password": password }),
        )
        .await
}

/// Connect with the right master password and return the ticket, asserting success.
pub async fn ticket(base_url: &str, email: &str, id: u64) -> String {
    let answer = connect(base_url, email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 200, "connect failed: {:?}", answer.body);
    assert_eq!(answer.message(), "Connected to machine successfully");
    answer.data().as_str().unwrap().to_owned()
}

/// A signed-in browser: the Origin the relays allow and the user's `jwt` cookie, which is what
/// the web app sends with the terminal WebSocket (a browser without the cookie is refused).
pub struct Browser {
    cookie: String,
}

pub fn browser(email: &str) -> Browser {
    Browser {
        cookie: format!("jwt={}", crate::token(email)),
    }
}

impl Browser {
    pub fn headers(&self) -> [(&str, &str); 2] {
        [("origin", ALLOWED_ORIGIN), ("cookie", self.cookie.as_str())]
    }
}

/// Generous bound for one interactive step against a real sshd on a busy 2-core machine.
pub const STEP: Duration = Duration::from_secs(15);
