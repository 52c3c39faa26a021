//! The relay's own settings, read once at start on top of `domain::config::Config` (which
//! carries the store, key provider and JWT settings the relay shares with api-fn).
//!
//! Every network wait the relay does has its bound here, with a default that suits a browser
//! terminal; tests shorten some of them through the same variables an operator would use.

use std::path::PathBuf;
use std::time::Duration;

use domain::config::ConfigError;

use crate::ssh::TargetPolicy;

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// `REDIS_URL`; unset means the in-process route table (a single relay).
    pub redis_url: Option<String>,
    /// `REDIS_CA_FILE`: PEM certificate(s) of the CA that signed a `rediss://` server's
    /// certificate, trusted instead of the public web roots. Unset: the public roots.
    pub redis_ca_file: Option<PathBuf>,
    /// `RELAY_ADVERTISE_URL`: how other relays reach this one. Defaults to the bound address.
    pub advertise_url: Option<String>,
    /// `ALLOWED_ORIGINS`: comma-separated browser origins allowed to open the WebSocket; `*`
    /// allows any. Unset: only same-origin pages (Origin's host equals the Host header).
    pub allowed_origins: Origins,
    pub target_policy: TargetPolicy,
    /// `SSH_CONNECT_TIMEOUT_SECS` (10): TCP connect to the target.
    pub ssh_connect_timeout: Duration,
    /// `SSH_HANDSHAKE_TIMEOUT_SECS` (20): key exchange, authentication and the shell request.
    pub ssh_handshake_timeout: Duration,
    /// `TICKET_BUCKET_SECS` (60): tickets live one to two buckets.
    pub ticket_bucket_secs: u64,
    /// `IDLE_TIMEOUT_SECS` (1800): no keystroke and no output for this long closes a terminal.
    pub idle_timeout: Duration,
    /// `KEEPALIVE_SECS` (20): WebSocket ping interval; a peer silent for 3 intervals is gone.
    pub keepalive: Duration,
    /// `DRAIN_GRACE_SECS` (30): on SIGTERM, how long open terminals may continue.
    pub drain_grace: Duration,
    /// `MAX_SESSIONS` (2000): pending plus open SSH sessions on this relay.
    pub max_sessions: usize,
    /// `MAX_SESSIONS_PER_USER` (20): of those, how many one user may hold.
    pub max_sessions_per_user: usize,
    /// `MAX_CONNECTS_PER_USER` (4): connects one user may have in progress at once (each runs
    /// an Argon2id and an SSH handshake).
    pub max_connects_per_user: usize,
    /// `RESUME_GRACE_SECS` (300): how long a terminal whose client left without closing it
    /// waits for a resume. 0 turns resume off (the terminal ends with its WebSocket).
    pub resume_grace: Duration,
    /// `RESUME_BUFFER_BYTES` (1 MiB): unacknowledged output one terminal keeps for a resume.
    pub resume_buffer_bytes: usize,
    /// `RESUME_BUFFER_TOTAL_BYTES` (256 MiB): all terminals' resume buffers together; over it,
    /// each keeps only its last 64 KiB.
    pub resume_buffer_total_bytes: usize,
    /// `ORG_ACCESS_CHECK_SECS` (5): how often the relay re-reads, in the store, whether the
    /// users of its terminals on organization machines still belong to the organization
    /// (`crate::org_access`); the bound on how long a removed member keeps a terminal.
    pub org_access_check: Duration,
    /// `FILES_MAX_BYTES` (1 GiB): the largest file one upload or download may move; 0 turns
    /// file transfer (and browsing) off.
    pub files_max_bytes: u64,
}

#[derive(Clone, Debug)]
pub enum Origins {
    Any,
    SameOrigin,
    List(Vec<String>),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn number(name: &str, default: u64) -> Result<u64, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| ConfigError(format!("{name}={raw} is not a whole number"))),
    }
}

/// A capacity: a whole number of at least 1.
fn count(name: &str, default: u64) -> Result<usize, ConfigError> {
    match number(name, default)? {
        0 => Err(ConfigError(format!("{name} must be at least 1"))),
        value => Ok(usize::try_from(value).unwrap_or(usize::MAX)),
    }
}

fn flag(name: &str) -> Result<bool, ConfigError> {
    match var(name).as_deref() {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(ConfigError(format!("{name}={other} must be true or false"))),
    }
}

fn secs(name: &str, default: u64) -> Result<Duration, ConfigError> {
    let value = number(name, default)?;
    if value == 0 {
        return Err(ConfigError(format!("{name} must be at least 1")));
    }
    Ok(Duration::from_secs(value))
}

impl RelayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let allowed_origins = match var("ALLOWED_ORIGINS") {
            None => Origins::SameOrigin,
            Some(raw) if raw == "*" => Origins::Any,
            Some(raw) => Origins::List(
                raw.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        if let Some(url) = var("RELAY_ADVERTISE_URL") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "RELAY_ADVERTISE_URL={url} must be an http(s) URL"
                )));
            }
        }
        let redis_url = var("REDIS_URL");
        let redis_ca_file = var("REDIS_CA_FILE").map(PathBuf::from);
        if redis_ca_file.is_some()
            && !redis_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss://"))
        {
            // Almost certainly someone who believes the route table is on TLS while it is not.
            return Err(ConfigError(
                "REDIS_CA_FILE is set but REDIS_URL is not a rediss:// (TLS) URL".to_owned(),
            ));
        }
        Ok(Self {
            redis_url,
            redis_ca_file,
            advertise_url: var("RELAY_ADVERTISE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            allowed_origins,
            target_policy: TargetPolicy {
                allow_loopback: flag("SSH_ALLOW_LOOPBACK")?,
                allow_private: flag("SSH_ALLOW_PRIVATE")?,
            },
            ssh_connect_timeout: secs("SSH_CONNECT_TIMEOUT_SECS", 10)?,
            ssh_handshake_timeout: secs("SSH_HANDSHAKE_TIMEOUT_SECS", 20)?,
            ticket_bucket_secs: secs("TICKET_BUCKET_SECS", 60)?.as_secs(),
            idle_timeout: secs("IDLE_TIMEOUT_SECS", 1800)?,
            keepalive: secs("KEEPALIVE_SECS", 20)?,
            drain_grace: secs("DRAIN_GRACE_SECS", 30)?,
            max_sessions: count("MAX_SESSIONS", 2000)?,
            max_sessions_per_user: count("MAX_SESSIONS_PER_USER", 20)?,
            max_connects_per_user: count("MAX_CONNECTS_PER_USER", 4)?,
            resume_grace: Duration::from_secs(number("RESUME_GRACE_SECS", 300)?),
            resume_buffer_bytes: count("RESUME_BUFFER_BYTES", 1 << 20)?,
            resume_buffer_total_bytes: count("RESUME_BUFFER_TOTAL_BYTES", 256 << 20)?,
            org_access_check: secs("ORG_ACCESS_CHECK_SECS", 5)?,
            files_max_bytes: number("FILES_MAX_BYTES", 1 << 30)?,
        })
    }

    /// Settings for the all-in-one local binary: same variables, but a laptop's own machines
    /// (loopback, LAN) are reachable unless the variables say otherwise.
    pub fn local_from_env() -> Result<Self, ConfigError> {
        let mut config = Self::from_env()?;
        if var("SSH_ALLOW_LOOPBACK").is_none() {
            config.target_policy.allow_loopback = true;
        }
        if var("SSH_ALLOW_PRIVATE").is_none() {
            config.target_policy.allow_private = true;
        }
        Ok(config)
    }
}
