//! The target's side of file transfer: an SFTP channel on the terminal's own SSH connection
//! (`russh-sftp`'s request/response session over a russh channel stream), and what its
//! failures mean to a client.
//!
//! The channel is a second session channel beside the shell, so a transfer never logs in again
//! and never needs the vault. SFTP requests are multiplexed by id on it; [`Sftp`] wraps the raw
//! session rather than `russh-sftp`'s file API so that the transfer code decides how many
//! reads and writes are in flight and hands each read's buffer on without copying it
//! (`transfer.rs`), so that a listing can stop asking for directory batches at its limit, and
//! so that an overwrite can use `posix-rename@openssh.com` when the server has it. The session's
//! reader task always drains the channel into per-request slots, so a transfer whose consumer
//! is slow stops *asking* for data rather than leaving data in russh's connection-wide queue,
//! and the shell on the same connection keeps flowing.
//!
//! Sizes come from the server: with `limits@openssh.com` (OpenSSH) reads and writes are as
//! large as it allows, capped at [`MAX_IO`] (64 KiB); without it, the 32 KiB every SFTP server
//! must accept. Not the 255 KiB OpenSSH would take: every request and reply is a fresh buffer,
//! and one of 128 KiB or more is an `mmap`/`munmap` pair with its page faults under
//! `MALLOC_MMAP_THRESHOLD_=131072`, which the relay runs with (a profile of the relay moving
//! a file with 255 KiB requests had page faults and `munmap` at the top, above copying and far
//! above encryption); at 64 KiB the allocator reuses its arenas.
//!
//! A target without the SFTP subsystem answers the subsystem request with a failure:
//! [`SftpError::Unavailable`], `sftp_unavailable` (502) to the client, terminal untouched.

use std::time::Duration;

use edge::{ApiError, ErrorCode};
use russh::ChannelMsg;
use russh::client::Handle;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use crate::ssh::HostKeyCheck;

/// How long opening the channel and the SFTP handshake may take.
const OPEN_WAIT: Duration = Duration::from_secs(15);

/// How long one SFTP request may wait for its answer.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Largest SFTP packet accepted from the server (OpenSSH's own limit is 256 KiB).
const MAX_PACKET: u32 = 256 * 1024;
/// Largest read or write asked for (see the module doc for why not OpenSSH's 255 KiB).
pub const MAX_IO: u32 = 64 * 1024;
/// What every SFTP server must accept (draft-ietf-secsh-filexfer-02: 34,000-byte packets).
const SAFE_IO: u32 = 32 * 1024;
/// The extension that replaces a target atomically (`rename(2)`), OpenSSH's since 4.8.
const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// The extension that reports the server's limits.
const LIMITS: &str = "limits@openssh.com";

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

/// An open SFTP session and what its server offers.
pub struct Sftp {
    raw: RawSftpSession,
    /// The server renames over an existing target atomically (`posix-rename@openssh.com`).
    posix_rename: bool,
    /// Bytes per read request.
    pub read_len: u32,
    /// Bytes per write request.
    pub write_len: u32,
}

/// One directory entry as the server gave it.
pub struct Named {
    pub name: String,
    pub attrs: FileAttributes,
}

/// Open an SFTP channel on `connection`.
pub async fn open(connection: &Handle<HostKeyCheck>) -> Result<Sftp, SftpError> {
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
        let config = russh_sftp::client::Config {
            max_packet_len: MAX_PACKET,
            request_timeout_secs: REQUEST_TIMEOUT_SECS,
            ..Default::default()
        };
        let mut raw = RawSftpSession::new_with_config(channel.into_stream(), config);
        let version = raw
            .init()
            .await
            .map_err(|e| SftpError::Unavailable(e.to_string()))?;
        let offers = |name: &str| version.extensions.get(name).is_some_and(|v| v == "1");
        let (mut read_len, mut write_len) = (SAFE_IO, SAFE_IO);
        if offers(LIMITS) {
            let limits = raw.limits().await.map_err(SftpError::from)?;
            let fit = |limit: u64| match limit {
                0 => MAX_IO,
                n => u32::try_from(n).unwrap_or(MAX_IO).clamp(1, MAX_IO),
            };
            read_len = fit(limits.max_read_len);
            write_len = fit(limits.max_write_len);
            raw.set_limits(limits.into());
        }
        Ok(Sftp {
            raw,
            posix_rename: offers(POSIX_RENAME),
            read_len,
            write_len,
        })
    };
    tokio::time::timeout(OPEN_WAIT, opening)
        .await
        .map_err(|_| SftpError::Timeout)?
}

impl Sftp {
    /// Close the channel (pending requests fail).
    pub fn close(&self) {
        let _ = self.raw.close_session();
    }

    /// The absolute form of `path`.
    pub async fn canonicalize(&self, path: &str) -> Result<String, SftpError> {
        let name = self.raw.realpath(path).await?;
        name.files
            .into_iter()
            .next()
            .map(|file| file.filename)
            .ok_or_else(|| SftpError::Failed("realpath answered no name".into()))
    }

    /// `stat`: follows links.
    pub async fn metadata(&self, path: &str) -> Result<FileAttributes, SftpError> {
        Ok(self.raw.stat(path).await?.attrs)
    }

    /// `lstat`: the link itself.
    pub async fn symlink_metadata(&self, path: &str) -> Result<FileAttributes, SftpError> {
        Ok(self.raw.lstat(path).await?.attrs)
    }

    /// Whether `path` exists.
    pub async fn exists(&self, path: &str) -> Result<bool, SftpError> {
        match self.metadata(path).await {
            Ok(_) => Ok(true),
            Err(SftpError::NotFound) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// A handle to read `path`.
    pub async fn open_read(&self, path: &str) -> Result<String, SftpError> {
        let opened = self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await?;
        Ok(opened.handle)
    }

    /// A handle to write `path`, created or truncated.
    pub async fn create(&self, path: &str) -> Result<String, SftpError> {
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let opened = self.raw.open(path, flags, FileAttributes::empty()).await?;
        Ok(opened.handle)
    }

    /// Up to `len` bytes at `offset`; empty at the end of the file. The reply's own buffer, not
    /// a copy.
    pub async fn read(&self, handle: &str, offset: u64, len: u32) -> Result<Vec<u8>, SftpError> {
        match self.raw.read(handle, offset, len).await {
            Ok(data) => Ok(data.data),
            Err(SftpClientError::Status(status)) if status.status_code == StatusCode::Eof => {
                Ok(Vec::new())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Write `data` at `offset` (at most [`Sftp::write_len`] bytes).
    pub async fn write(&self, handle: &str, offset: u64, data: Vec<u8>) -> Result<(), SftpError> {
        self.raw.write(handle, offset, data).await?;
        Ok(())
    }

    /// Close a file or directory handle, waiting for the server's answer.
    pub async fn close_handle(&self, handle: &str) -> Result<(), SftpError> {
        self.raw.close(handle).await?;
        Ok(())
    }

    /// At most `limit` entries of directory `path` (`.` and `..` left out), and whether there
    /// were more. Stops asking the server for batches once the limit is passed, so a directory
    /// of millions of names costs one batch beyond the limit, not the whole listing.
    pub async fn list(&self, path: &str, limit: usize) -> Result<(Vec<Named>, bool), SftpError> {
        let handle = self.raw.opendir(path).await?.handle;
        let mut entries = Vec::new();
        let mut truncated = false;
        let reading = async {
            loop {
                let batch = match self.raw.readdir(handle.as_str()).await {
                    Ok(name) => name.files,
                    Err(SftpClientError::Status(status))
                        if status.status_code == StatusCode::Eof =>
                    {
                        return Ok(());
                    }
                    Err(err) => return Err(SftpError::from(err)),
                };
                if batch.is_empty() {
                    return Ok(());
                }
                for file in batch {
                    if file.filename == "." || file.filename == ".." {
                        continue;
                    }
                    if entries.len() == limit {
                        truncated = true;
                        return Ok(());
                    }
                    entries.push(Named {
                        name: file.filename,
                        attrs: file.attrs,
                    });
                }
            }
        };
        let read = reading.await;
        let closed = self.close_handle(&handle).await;
        read?;
        closed?;
        Ok((entries, truncated))
    }

    pub async fn create_dir(&self, path: &str) -> Result<(), SftpError> {
        self.raw.mkdir(path, FileAttributes::empty()).await?;
        Ok(())
    }

    pub async fn remove_dir(&self, path: &str) -> Result<(), SftpError> {
        self.raw.rmdir(path).await?;
        Ok(())
    }

    pub async fn remove_file(&self, path: &str) -> Result<(), SftpError> {
        self.raw.remove(path).await?;
        Ok(())
    }

    /// SFTP v3 rename: refused when `to` exists.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        self.raw.rename(from, to).await?;
        Ok(())
    }

    /// Put `from` in place of `to`, replacing an existing `to`. With `posix-rename@openssh.com`
    /// this is one atomic `rename(2)` on the target: a reader sees the old file or the new one,
    /// never neither. Without it, SFTP v3 can only remove `to` and then rename, and a failure
    /// between the two leaves the new bytes under `from`. Returns whether it was atomic.
    pub async fn replace(&self, from: &str, to: &str) -> Result<bool, SftpError> {
        if self.posix_rename {
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            for path in [from, to] {
                let len = u32::try_from(path.len())
                    .map_err(|_| SftpError::Failed("path too long".into()))?;
                data.extend_from_slice(&len.to_be_bytes());
                data.extend_from_slice(path.as_bytes());
            }
            return match self.raw.extended(POSIX_RENAME, data).await? {
                Packet::Status(status) if status.status_code == StatusCode::Ok => Ok(true),
                Packet::Status(status) => Err(SftpClientError::Status(status).into()),
                _ => Err(SftpError::Failed(
                    "unexpected answer to posix-rename".into(),
                )),
            };
        }
        match self.remove_file(to).await {
            Ok(()) | Err(SftpError::NotFound) => {}
            Err(err) => return Err(err),
        }
        self.rename(from, to).await?;
        Ok(false)
    }
}
