//! SSH fixtures: the shared test sshd started by `localstack/services.sh`, throwaway client
//! keys authorised on it, and private sshd processes (own port, own host key, own auth
//! settings) for tests that must change the server under a machine (host key rotation,
//! keyboard-interactive only). Every process started here is killed, by pid, on drop.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::service_env;

/// The shared sshd's coordinates.
pub struct SharedSshd {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub host_key: PathBuf,
}

pub fn shared_sshd() -> SharedSshd {
    let addr = service_env("SUSHI_TEST_SSHD_ADDR");
    let (host, port) = addr
        .rsplit_once(':')
        .expect("SUSHI_TEST_SSHD_ADDR is host:port");
    SharedSshd {
        host: host.to_owned(),
        port: port.parse().unwrap(),
        user: service_env("SUSHI_TEST_SSH_USER"),
        password: service_env("SUSHI_TEST_SSH_PASSWORD"),
        host_key: PathBuf::from(service_env("SUSHI_TEST_SSH_HOST_KEY")),
    }
}

/// A generated client key pair.
pub struct KeyPair {
    pub private_pem: String,
    pub public_line: String,
}

/// `ssh-keygen -t kind` (ed25519, rsa, ecdsa), optionally encrypted with `passphrase`.
pub fn keygen(kind: &str, passphrase: Option<&str>) -> KeyPair {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let mut command = Command::new("ssh-keygen");
    command.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase.unwrap_or(""),
        "-C",
        "sushi-test",
    ]);
    if kind == "rsa" {
        command.args(["-b", "2048"]);
    }
    let status = command
        .arg("-f")
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
    KeyPair {
        private_pem: std::fs::read_to_string(&path).unwrap(),
        public_line: std::fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned(),
    }
}

/// Append a public key to the shared sshd's `AuthorizedKeysFile` (one `O_APPEND` write per
/// line, so parallel tests do not interleave).
pub fn authorize(public_line: &str) {
    let path = service_env("SUSHI_TEST_SSH_AUTHORIZED_KEYS");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    file.write_all(format!("{public_line}\n").as_bytes())
        .unwrap();
}

/// `SHA256:…` of a public (or private) key file, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key_file: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key_file)
        .output()
        .expect("run ssh-keygen -lf");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -lf printed {text}"))
        .to_owned()
}

/// A free loopback port (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts on 127.0.0.1:`port`.
pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on 127.0.0.1:{port}");
}

/// Options for a private sshd.
#[derive(Clone, Copy)]
pub struct SshdOptions {
    pub password_auth: bool,
    pub kbd_interactive: bool,
}

impl Default for SshdOptions {
    fn default() -> Self {
        Self {
            password_auth: true,
            kbd_interactive: true,
        }
    }
}

/// A private OpenSSH sshd for one test, serving the shared test user.
pub struct PrivateSshd {
    child: Child,
    pub port: u16,
    pub host_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateSshd {
    /// Start on `port` (0: a free one) with a fresh host key, or the one in `host_key_dir`.
    pub fn start(port: u16, options: SshdOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("ssh_host_ed25519_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&host_key)
            .status()
            .unwrap();
        assert!(status.success());
        let port = if port == 0 { free_port() } else { port };
        let user = service_env("SUSHI_TEST_SSH_USER");
        let yes = |b: bool| if b { "yes" } else { "no" };
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nStrictModes no\nPasswordAuthentication {}\n\
                 KbdInteractiveAuthentication {}\nUsePAM yes\nAllowUsers {user}\n\
                 PrintMotd no\nLogLevel ERROR\n",
                host_key.display(),
                dir.path().join("sshd.pid").display(),
                service_env("SUSHI_TEST_SSH_AUTHORIZED_KEYS"),
                yes(options.password_auth),
                yes(options.kbd_interactive),
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        wait_port(port, Duration::from_secs(10));
        Self {
            child,
            port,
            host_key: host_key.with_extension("pub"),
            _dir: dir,
        }
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.host_key)
    }

    /// Stop it and wait until the port is free again.
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes of the shared test user whose command line contains `needle`.
pub fn remote_processes(needle: &str) -> usize {
    let user = service_env("SUSHI_TEST_SSH_USER");
    let output = Command::new("pgrep")
        .args(["-u", &user, "-f", needle])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// Run `command` on the shared sshd as its test user with OpenSSH's client and a throwaway key
/// authorised once per test process: for checks and clean-up that must not go through the
/// relay under test (a tmux session a failed test left behind, say). Bounded by
/// `ConnectTimeout` and `BatchMode` (never a prompt).
pub fn run_remote(command: &str) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;
    static KEY: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_dir, key) = KEY.get_or_init(|| {
        let pair = keygen("ed25519", None);
        authorize(&pair.public_line);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, &pair.private_pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (dir, path)
    });
    let sshd = shared_sshd();
    Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-p",
            &sshd.port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            &format!("{}@{}", sshd.user, sshd.host),
            command,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}
