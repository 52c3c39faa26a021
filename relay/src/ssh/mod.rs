//! The SSH client side of a session: dial the target under the target policy, verify its host
//! key against the machine's pin, log in, and open a shell channel with a PTY.
//!
//! Shaped around what can go wrong, because each failure is a different answer to the user:
//! a target the policy refuses (403), a refused or unreachable target (502), a timeout (504), a changed
//! host key (409 with both fingerprints), a failed login (502 naming the methods tried). No
//! message carries a secret; `MachineSecrets` cannot be formatted at all.
//!
//! We dial the TCP socket ourselves (rather than `russh::client::connect`) so that the address
//! dialled is exactly the one the policy approved, with `TCP_NODELAY` set, under our own
//! connect timeout. Flow control: russh hands channel data to a bounded queue
//! (`channel_buffer_size`) and stops reading the socket when it is full, so a slow WebSocket
//! reader throttles the remote through TCP and the SSH window instead of growing a buffer.

mod auth;
pub mod persistent;
pub mod target_policy;

pub use auth::Credentials;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use domain::DomainError;
use domain::requests::SessionName;
use edge::{ApiError, ErrorCode};
use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PublicKey};
use russh::{Channel, Disconnect};

pub use target_policy::{ResolveError, TargetPolicy};

/// Where to log in, as stored on the machine.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub username: &'a str,
    /// The pinned `SHA256:` fingerprint, if any.
    pub pin: Option<&'a str>,
}

/// What runs on the PTY: the user's login shell, or (a persistent-shell machine) the tmux
/// session of that name, attached or created by [`persistent::command`].
pub enum Shell<'a> {
    Login,
    Persistent(&'a SessionName),
}

pub struct Limits {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
}

/// An authenticated SSH connection with a shell running on a PTY.
pub struct Opened {
    pub handle: Handle<HostKeyCheck>,
    pub channel: Channel<Msg>,
    /// The host key fingerprint the server presented (`SHA256:…`).
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("{0} is unreachable")]
    Unreachable(String),
    #[error("timed out connecting to {0}")]
    ConnectTimeout(String),
    #[error("timed out during the SSH handshake with {0}")]
    HandshakeTimeout(String),
    #[error("SSH handshake with {0} failed")]
    Handshake(String),
    #[error("host key changed")]
    HostKeyChanged { expected: String, presented: String },
    #[error("SSH authentication failed for user {user} (tried: {tried})")]
    AuthFailed { user: String, tried: String },
    #[error("the stored private key could not be used")]
    BadKey,
    #[error("the server refused to open a shell")]
    Shell,
    /// The KDF gate refused or failed (busy: 503 with `Retry-After`).
    #[error(transparent)]
    Gate(#[from] DomainError),
}

impl From<SshError> for ApiError {
    fn from(err: SshError) -> Self {
        tracing::info!(error = %err, "ssh connect failed");
        match err {
            // The answer is the same whatever the address and the rule: only the log says.
            SshError::Resolve(ResolveError::Denied { addr, reason, .. }) => {
                tracing::info!(%addr, %reason, "ssh target refused by the target policy");
                ApiError::new(
                    ErrorCode::TargetNotAllowed,
                    "Refusing to connect: the target's address is not allowed by the relay's target policy",
                )
            }
            SshError::Resolve(ResolveError::Timeout { .. })
            | SshError::ConnectTimeout(_)
            | SshError::HandshakeTimeout(_) => ApiError::new(ErrorCode::SshTimeout, capital(&err)),
            SshError::HostKeyChanged {
                expected,
                presented,
            } => ApiError::host_key_changed(expected, presented),
            SshError::Gate(gate) => gate.into(),
            other => ApiError::new(ErrorCode::SshFailed, capital(&other)),
        }
    }
}

fn capital(err: &SshError) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// russh's handler: only the host key check matters to us. It records what the server
/// presented so a refusal can report both fingerprints.
pub struct HostKeyCheck {
    pin: Option<String>,
    presented: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let accepted = self.pin.as_deref().is_none_or(|pin| pin == fingerprint);
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(fingerprint);
        }
        Ok(accepted)
    }
}

/// AES-GCM first: with AES-NI it is several times cheaper per byte than ChaCha20-Poly1305 in
/// software, and the relay decrypts every byte of every terminal. Same set as russh's default.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// One configuration for every session: russh keeps its `Arc` for the session's life, so a
/// config built per connect would cost each terminal its own copy (~0.3 KiB).
fn ssh_config() -> Arc<client::Config> {
    static CONFIG: OnceLock<Arc<client::Config>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(build_ssh_config))
}

fn build_ssh_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        preferred: russh::Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            ..russh::Preferred::DEFAULT
        },
        nodelay: true,
        // Bounded buffering per session: at most this many packets (32 KiB each) wait between
        // the socket and the WebSocket before russh stops reading from the target.
        channel_buffer_size: 16,
        window_size: 2 * 1024 * 1024,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        ..client::Config::default()
    })
}

/// Dial, verify, authenticate and start `shell` (PTY `cols`×`rows`). Takes the credentials so
/// that they are dropped (zeroized) as soon as authentication is over, success or not, rather
/// than living on through the channel and shell requests.
pub async fn open(
    target: Target<'_>,
    credentials: Credentials,
    policy: &TargetPolicy,
    limits: &Limits,
    (cols, rows): (u32, u32),
    shell: Shell<'_>,
) -> Result<Opened, SshError> {
    let shown = format!("{}:{}", target.host, target.port);
    let addrs = policy
        .resolve(target.host, target.port, limits.connect_timeout)
        .await?;
    let socket = dial(&addrs, &shown, limits.connect_timeout).await?;
    let presented = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        pin: target.pin.map(str::to_owned),
        presented: Arc::clone(&presented),
    };
    let handshake = async {
        let connected = client::connect_stream(ssh_config(), socket, handler).await;
        let seen = presented.lock().ok().and_then(|slot| slot.clone());
        let mut handle = match (connected, seen, target.pin) {
            (Ok(handle), Some(_), _) => handle,
            (Err(_), Some(seen), Some(expected)) if seen != expected => {
                return Err(SshError::HostKeyChanged {
                    expected: expected.to_owned(),
                    presented: seen,
                });
            }
            (Ok(_) | Err(_), _, _) => return Err(SshError::Handshake(shown.clone())),
        };
        let login = auth::login(&mut handle, target.username, &credentials).await;
        drop(credentials);
        login?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|_| SshError::Shell)?;
        channel
            .request_pty(false, "xterm-256color", cols, rows, 0, 0, &[])
            .await
            .map_err(|_| SshError::Shell)?;
        match shell {
            Shell::Login => channel.request_shell(false).await,
            Shell::Persistent(name) => channel.exec(false, persistent::command(name)).await,
        }
        .map_err(|_| SshError::Shell)?;
        Ok((handle, channel))
    };
    let (handle, channel) = tokio::time::timeout(limits.handshake_timeout, handshake)
        .await
        .map_err(|_| SshError::HandshakeTimeout(shown.clone()))??;
    let fingerprint = presented
        .lock()
        .ok()
        .and_then(|slot| slot.clone())
        .unwrap_or_default();
    Ok(Opened {
        handle,
        channel,
        fingerprint,
    })
}

/// Connect to the first address that answers, each attempt bounded by `timeout` overall.
async fn dial(
    addrs: &[SocketAddr],
    shown: &str,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, SshError> {
    let attempt = async {
        let mut last = SshError::Unreachable(shown.to_owned());
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(socket) => {
                    if let Err(err) = socket.set_nodelay(true) {
                        tracing::warn!(error = %err, "could not set TCP_NODELAY");
                    }
                    return Ok(socket);
                }
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = SshError::Refused(shown.to_owned());
                }
                Err(err) => {
                    tracing::debug!(error = %err, %addr, "connect failed");
                    last = SshError::Unreachable(shown.to_owned());
                }
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SshError::ConnectTimeout(shown.to_owned()))?
}

/// End a session: ask the server to disconnect, bounded so a dead target cannot hold us.
pub async fn disconnect(handle: &Handle<HostKeyCheck>) {
    let bye = handle.disconnect(Disconnect::ByApplication, "session closed", "en");
    if tokio::time::timeout(Duration::from_secs(1), bye)
        .await
        .is_err()
    {
        tracing::debug!("ssh disconnect timed out");
    }
}
