//! Moving one file's bytes between the browser's HTTP request or response and the target's SFTP
//! channel, with a bounded amount in the relay, a SHA-256 of what passed, an audit entry and a
//! marker on the terminal's recording, however the transfer ends.
//!
//! Both directions put the SFTP side in its own task, joined to the HTTP side by a bounded
//! channel of [`QUEUE`] chunks:
//! * a *download* task reads the file (a bounded number of SFTP reads in flight) and sends
//!   chunks into the response body's channel; a browser that reads slowly fills the channel,
//!   the task stops reading, and so the target stops sending. A browser that goes away drops
//!   the body: the task sees the closed channel and ends as `cancelled`.
//! * an *upload* task writes chunks the handler reads from the request body into `<name>.part`
//!   and renames it to `<name>` only after the last byte was acknowledged, so a transfer that
//!   does not complete never leaves a file under the real name. The handler is dropped by the
//!   HTTP server when the browser cancels (the connection closes); its sender goes with it, the
//!   task sees the channel close without the end marker and deletes the `.part` file.
//!
//! Every wait has a bound: each chunk from the browser or into it within [`STALL`], each SFTP
//! request within `remote::REQUEST_TIMEOUT_SECS`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use domain::Identity;
use domain::audit::{AuditContext, AuditKind, Auditor};
use russh_sftp::client::SftpSession;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::registry::Entry;
use super::remote::SftpError;

/// Chunks waiting between the HTTP side and the SFTP side of one transfer.
pub const QUEUE: usize = 4;
/// Longest a transfer may make no progress (a chunk from or to the browser) before it fails.
pub const STALL: Duration = Duration::from_secs(30);
/// Bytes asked of the SFTP file per read.
const READ_CHUNK: usize = 256 * 1024;

/// Which way a transfer went.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Upload,
    Download,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    /// The browser went away or stopped.
    Cancelled,
    /// The target or the relay failed it.
    Failed,
}

/// What the audit log and the recording are told about a transfer.
#[derive(Serialize)]
struct Record {
    session: String,
    machine_id: u64,
    direction: Direction,
    path: String,
    size: u64,
    sha256: String,
    outcome: Outcome,
}

/// Who a transfer is for, where it is written down.
pub struct Ledger {
    pub auditor: Arc<Auditor>,
    pub client: AuditContext,
    pub entry: Arc<Entry>,
    pub session: uuid::Uuid,
}

impl Ledger {
    async fn write(
        &self,
        direction: Direction,
        path: &str,
        size: u64,
        sha: Sha256,
        outcome: Outcome,
    ) {
        let record = Record {
            session: self.session.to_string(),
            machine_id: self.entry.machine_id,
            direction,
            path: super::audit_path(path),
            size,
            sha256: hex(&sha.finalize()),
            outcome,
        };
        let verb = match direction {
            Direction::Upload => "upload",
            Direction::Download => "download",
        };
        let outcome_name = match outcome {
            Outcome::Completed => "completed",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        };
        self.entry.tap.marker(format!(
            "file {verb} {outcome_name}: {path} ({size} bytes, sha256 {})",
            record.sha256
        ));
        tracing::info!(
            session = %self.session,
            direction = verb,
            size,
            outcome = outcome_name,
            "file transfer ended"
        );
        let details = serde_json::to_value(&record).unwrap_or_default();
        let owner = Identity(self.entry.owner.clone());
        let written =
            self.auditor
                .record(&owner, &self.client, AuditKind::FileTransferred, details);
        if tokio::time::timeout(Duration::from_secs(5), written)
            .await
            .is_err()
        {
            tracing::error!("file transfer audit entry timed out");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Start streaming `path` (`size` bytes) from the target; the receiver is the response body.
pub fn download(
    sftp: Arc<SftpSession>,
    file: russh_sftp::client::fs::File,
    path: String,
    size: u64,
    ledger: Ledger,
    permit: OwnedSemaphorePermit,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let _permit = permit;
        let _sftp = sftp;
        let mut file = file;
        let mut sha = Sha256::new();
        let mut sent = 0u64;
        let mut buffer = vec![0u8; READ_CHUNK];
        let outcome = loop {
            if sent >= size {
                break Outcome::Completed;
            }
            let want = usize::try_from(size - sent)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let Some(slice) = buffer.get_mut(..want) else {
                break Outcome::Failed;
            };
            let read = match file.read(slice).await {
                Ok(0) => {
                    tracing::warn!(sent, size, "file shrank during the download");
                    let _ = tx.send(Err(std::io::Error::other("file shrank"))).await;
                    break Outcome::Failed;
                }
                Ok(read) => read,
                Err(err) => {
                    tracing::warn!(error = %err, "download read failed");
                    let _ = tx.send(Err(err)).await;
                    break Outcome::Failed;
                }
            };
            let chunk = Bytes::copy_from_slice(slice.get(..read).unwrap_or_default());
            sha.update(&chunk);
            match tokio::time::timeout(STALL, tx.send(Ok(chunk))).await {
                Ok(Ok(())) => {
                    sent += read as u64;
                    crate::metrics::get().file_bytes_down.inc_by(read as u64);
                }
                // The browser stopped reading, or went away.
                Ok(Err(_)) | Err(_) => break Outcome::Cancelled,
            }
        };
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), file.shutdown()).await;
        ledger
            .write(Direction::Download, &path, sent, sha, outcome)
            .await;
    });
    rx
}

/// One message from the HTTP side of an upload to its SFTP side.
pub enum Chunk {
    Data(Bytes),
    /// Every byte was sent: finish and rename.
    End,
}

/// What a finished upload answers.
#[derive(Serialize)]
pub struct Uploaded {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Start the SFTP side of an upload to `path` (through `<path>.part`); feed it chunks, then
/// [`Chunk::End`], and read the result from the returned receiver.
pub fn upload(
    sftp: Arc<SftpSession>,
    path: String,
    overwrite: bool,
    ledger: Ledger,
    permit: OwnedSemaphorePermit,
) -> (
    mpsc::Sender<Chunk>,
    oneshot::Receiver<Result<Uploaded, SftpError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE);
    let (done, result) = oneshot::channel();
    tokio::spawn(async move {
        let _permit = permit;
        let part = format!("{path}.part");
        let mut sha = Sha256::new();
        let mut written = 0u64;
        let run = async {
            let mut file = sftp.create(part.as_str()).await?;
            let complete = loop {
                match rx.recv().await {
                    Some(Chunk::Data(bytes)) => {
                        sha.update(&bytes);
                        file.write_all(&bytes).await?;
                        written += bytes.len() as u64;
                        crate::metrics::get()
                            .file_bytes_up
                            .inc_by(bytes.len() as u64);
                    }
                    Some(Chunk::End) => break true,
                    None => break false,
                }
            };
            if !complete {
                drop(file);
                return Ok(false);
            }
            // Every write acknowledged, then the handle closed, then the name.
            file.shutdown().await?;
            if overwrite {
                match sftp.remove_file(path.as_str()).await {
                    Ok(()) => {}
                    Err(err) => match SftpError::from(err) {
                        SftpError::NotFound => {}
                        other => return Err(other),
                    },
                }
            }
            sftp.rename(part.as_str(), path.as_str()).await?;
            Ok::<bool, SftpError>(true)
        };
        let ended = run.await;
        let outcome = match &ended {
            Ok(true) => Outcome::Completed,
            Ok(false) => Outcome::Cancelled,
            Err(_) => Outcome::Failed,
        };
        if outcome != Outcome::Completed {
            // Never leave a partial file behind; under the real name there is none.
            let _ = tokio::time::timeout(STALL, sftp.remove_file(part.as_str())).await;
        }
        let digest = sha.clone();
        ledger
            .write(Direction::Upload, &path, written, sha, outcome)
            .await;
        let answer = ended.and_then(|completed| {
            if completed {
                Ok(Uploaded {
                    path: path.clone(),
                    size: written,
                    sha256: hex(&digest.finalize()),
                })
            } else {
                Err(SftpError::Failed("the upload was cancelled".into()))
            }
        });
        let _ = done.send(answer);
    });
    (tx, result)
}
