//! Starting api-fn against either backend, for the integration tests in this directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use testkit::{AwsBackend, Client, Process};

pub enum Backend {
    Embedded,
    DynamoDbKms,
}

/// A running api-fn with its storage, and a client for it.
pub struct Server {
    pub process: Process,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    pub aws: Option<AwsBackend>,
}

impl Server {
    pub fn user(&self, email: &str) -> Client {
        self.client.as_user(email)
    }
}

pub fn env_for(
    backend: &Backend,
    data_dir: &std::path::Path,
) -> (HashMap<String, String>, Option<AwsBackend>) {
    let mut env = HashMap::new();
    env.insert("JWT_SECRET".to_owned(), testkit::JWT_SECRET.to_owned());
    env.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
    let aws = match backend {
        Backend::Embedded => None,
        Backend::DynamoDbKms => {
            let aws = testkit::provision_aws();
            env.insert("DYNAMODB_TABLE".to_owned(), aws.table.clone());
            env.insert("AUDIT_TABLE".to_owned(), aws.audit_table.clone());
            env.insert("KMS_KEY_ID".to_owned(), aws.kms_key_id.clone());
            env.insert("AWS_ENDPOINT_URL".to_owned(), aws.endpoint.clone());
            for (k, v) in testkit::aws_test_credentials() {
                env.insert(k.to_owned(), v.to_owned());
            }
            Some(aws)
        }
    };
    (env, aws)
}

pub fn start(backend: Backend) -> Server {
    start_with(backend, HashMap::new())
}

pub fn start_with(backend: Backend, extra: HashMap<String, String>) -> Server {
    let data_dir = tempfile::tempdir().unwrap();
    let (mut env, aws) = env_for(&backend, data_dir.path());
    env.extend(extra);
    let process = Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    let client = Client::new(&process.base_url, None);
    Server {
        process,
        client,
        data_dir,
        aws,
    }
}

/// The domain service on `server`'s backend, in-process: what the relay runs at connect, for
/// opening what the server sealed.
pub async fn domain_for(server: &Server) -> std::sync::Arc<domain::Machines> {
    let mut config = testkit::embedded_config(server.data_dir.path());
    if let Some(aws) = &server.aws {
        // The in-process SDK reads its endpoint and credentials from the environment, which the
        // test runner exports (`localstack/services.sh env`); setting them here would race.
        assert_eq!(
            std::env::var("AWS_ENDPOINT_URL").ok().as_deref(),
            Some(aws.endpoint.as_str()),
            "export AWS_ENDPOINT_URL (localstack/services.sh env)"
        );
        config.backend = domain::config::Backend::Aws {
            table: aws.table.clone(),
            kms_key_id: aws.kms_key_id.clone(),
        };
        config.audit_table = Some(aws.audit_table.clone());
    }
    backends::wire(&config).await.unwrap()
}

/// A valid create body; tests override fields.
pub fn machine_body(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "hostname": "server.example.com",
        "port": "22",
        "username": "root",
        "password": format!("ssh-password-of-{name}"),
    })
}

/// Generate an OpenSSH ed25519 private key with ssh-keygen (optionally passphrase-protected).
pub fn ssh_keygen(passphrase: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(status.success());
    std::fs::read_to_string(path).unwrap()
}

/// Like `ssh_keygen`, in PEM (PKCS#1 RSA) format.
pub fn ssh_keygen_rsa_pem() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path).unwrap()
}

/// Declare each scenario once and run it against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::common::Backend::Embedded).await
                }
            )*
        }
        mod dynamodb_kms {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::common::Backend::DynamoDbKms).await
                }
            )*
        }
    };
}
