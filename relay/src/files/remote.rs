//! The target's side of file transfer: an SFTP channel on the terminal's own SSH connection
//! (`russh-sftp` over a russh channel stream), and what its failures mean to a client.
//!
//! The channel is a second session channel beside the shell, so a transfer never logs in again
//! and never needs the vault. SFTP requests are multiplexed by id on it, and `russh-sftp`'s
//! files keep a bounded number of reads and writes in flight ([`CONFIG`]): that number times
//! the packet size is the relay's memory per transfer, whatever the file's size. Its reader
//! task always drains the channel into per-request slots, so a transfer whose consumer is slow
//! stops *asking* for data rather than leaving data in russh's connection-wide queue, and the
//! shell on the same connection keeps flowing.
//!
//! A target without the SFTP subsystem answers the subsystem request with a failure:
//! [`SftpError::Unavailable`], `sftp_unavailable` (502) to the client, terminal untouched.

use std::time::Duration;

use edge::{ApiError, ErrorCode};
use russh::ChannelMsg;
use russh::client::Handle;
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::protocol::StatusCode;

use crate::ssh::HostKeyCheck;

/// How long opening the channel and the SFTP handshake may take.
const OPEN_WAIT: Duration = Duration::from_secs(15);

/// How long one SFTP request may wait for its answer.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Largest SFTP packet, and the read size asked for (OpenSSH answers at most 255 KiB).
const MAX_PACKET: u32 = 256 * 1024;
/// Reads in flight per download: `READS * MAX_PACKET` bytes of relay memory at most.
const READS: usize = 16;
/// Writes in flight per upload, of `WRITE_PACKET` bytes each.
const WRITES: usize = 32;
const WRITE_PACKET: u32 = 64 * 1024;

/// What an SFTP operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The target has no SFTP subsystem or refused the channel.
    #[error("the target offers no SFTP: {0}")]
    Unavailable(String),
    #[error("no such file or directory")]
    NotFound,
    #[error("permission denied")]
    Denied,
    /// Any other refusal, with the server's reason.
    #[error("{0}")]
    Failed(String),
    #[error("the SFTP server did not answer in time")]
    Timeout,
    /// The terminal (and its SSH connection) ended.
    #[error("the terminal's SSH connection is closed")]
    Closed,
}

impl From<SftpClientError> for SftpError {
    fn from(err: SftpClientError) -> Self {
        match err {
            SftpClientError::Status(status) => match status.status_code {
                StatusCode::NoSuchFile => Self::NotFound,
                StatusCode::PermissionDenied => Self::Denied,
                StatusCode::NoConnection | StatusCode::ConnectionLost => Self::Closed,
                _ if status.error_message.is_empty() => {
                    Self::Failed(status.status_code.to_string())
                }
                _ => Self::Failed(status.error_message),
            },
            SftpClientError::Timeout => Self::Timeout,
            SftpClientError::IO(detail) | SftpClientError::UnexpectedBehavior(detail) => {
                tracing::warn!(error = %detail, "sftp channel failed");
                Self::Closed
            }
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for SftpError {
    fn from(err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::TimedOut => Self::Timeout,
            std::io::ErrorKind::NotFound => Self::NotFound,
            std::io::ErrorKind::PermissionDenied => Self::Denied,
            _ => Self::Failed(err.to_string()),
        }
    }
}

impl SftpError {
    /// Whether the channel itself is broken (the next request should open a new one).
    pub fn broken(&self) -> bool {
        matches!(self, Self::Closed | Self::Timeout)
    }
}

impl From<SftpError> for ApiError {
    fn from(err: SftpError) -> Self {
        match err {
            SftpError::Unavailable(detail) => {
                tracing::info!(error = %detail, "sftp unavailable on the target");
                ApiError::new(
                    ErrorCode::SftpUnavailable,
                    "This machine offers no SFTP (its SSH server has no sftp subsystem)",
                )
            }
            SftpError::NotFound => {
                ApiError::new(ErrorCode::RemotePathNotFound, "No such file or directory")
            }
            SftpError::Denied => ApiError::new(
                ErrorCode::RemotePermissionDenied,
                "Permission denied on the machine",
            ),
            SftpError::Failed(reason) => ApiError::new(
                ErrorCode::RemoteFailed,
                format!("The machine refused: {reason}"),
            ),
            SftpError::Timeout => ApiError::new(
                ErrorCode::SshTimeout,
                "The machine's SFTP server did not answer",
            ),
            SftpError::Closed => ApiError::new(
                ErrorCode::SessionNotFound,
                "The terminal's connection is closed",
            ),
        }
    }
}

/// The tuning every SFTP channel gets (see the module doc for the memory it implies).
fn config() -> russh_sftp::client::Config {
    russh_sftp::client::Config {
        max_packet_len: MAX_PACKET,
        max_concurrent_reads: READS,
        max_concurrent_writes: WRITES,
        max_write_packet_len: WRITE_PACKET,
        request_timeout_secs: REQUEST_TIMEOUT_SECS,
    }
}

/// Open an SFTP channel on `connection`.
pub async fn open(connection: &Handle<HostKeyCheck>) -> Result<SftpSession, SftpError> {
    let opening = async {
        let channel = connection
            .channel_open_session()
            .await
            .map_err(|e| SftpError::Unavailable(e.to_string()))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| SftpError::Unavailable(e.to_string()))?;
        let mut channel = channel;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(SftpError::Unavailable(
                        "the sftp subsystem request was refused".into(),
                    ));
                }
                Some(ChannelMsg::Close | ChannelMsg::Eof) | None => {
                    return Err(SftpError::Unavailable(
                        "the channel closed at the subsystem request".into(),
                    ));
                }
                Some(_) => {}
            }
        }
        SftpSession::new_with_config(channel.into_stream(), config())
            .await
            .map_err(|e| SftpError::Unavailable(e.to_string()))
    };
    tokio::time::timeout(OPEN_WAIT, opening)
        .await
        .map_err(|_| SftpError::Timeout)?
}
