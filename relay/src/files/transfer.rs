//! Moving one file's bytes between the browser's HTTP request or response and the target's SFTP
//! channel, with a bounded amount in the relay, a SHA-256 of what passed, an audit entry and a
//! marker on the terminal's recording, however the transfer ends.
//!
//! Both directions put the SFTP side in its own task, joined to the HTTP side by a bounded
//! channel of [`QUEUE`] chunks, and keep a window of SFTP requests in flight (pipelining, as
//! OpenSSH's `sftp` does), so the target never waits for the relay's round trip:
//! * a *download* task keeps up to [`READS`] reads of the server's read size outstanding and
//!   hands each reply's buffer, as it came, to the response body's channel (no copy); a
//!   browser that reads slowly fills the channel, the task stops asking, and so the target
//!   stops sending. A browser that goes away drops the body: the task sees the closed channel
//!   and ends as `cancelled`.
//! * an *upload* task gathers the request body's chunks into writes of the server's write size
//!   and keeps up to [`WRITES`] of them unacknowledged, into `<name>.part`, and puts it in
//!   place of `<name>` only after every write was acknowledged and the handle closed, so a
//!   transfer that does not complete never leaves a file under the real name. The handler is
//!   dropped by the HTTP server when the browser cancels (the connection closes); its sender
//!   goes with it, the task sees the channel close without the end marker and deletes the
//!   `.part` file.
//!
//! Memory per transfer is therefore at most the window (`READS` or `WRITES` times 64 KiB)
//! plus the queue, whatever the file's size.
//!
//! Every wait has a bound: each chunk from the browser or into it within [`STALL`], each SFTP
//! request within `remote::REQUEST_TIMEOUT_SECS`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use domain::Identity;
use domain::audit::{AuditContext, AuditKind, Auditor};
use futures_util::StreamExt;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::registry::Entry;
use super::remote::{Sftp, SftpError};

/// Chunks waiting between the HTTP side and the SFTP side of one transfer.
pub const QUEUE: usize = 4;
/// Longest a transfer may make no progress (a chunk from or to the browser) before it fails.
pub const STALL: Duration = Duration::from_secs(30);
/// Reads in flight per download, of up to `remote::MAX_IO` bytes each: 2 MiB, the SSH
/// channel's window, so the target always has a request to answer and the window is the limit.
pub const READS: usize = 32;
/// Writes in flight per upload, of up to `remote::MAX_IO` bytes each: 2 MiB, OpenSSH's window.
pub const WRITES: usize = 32;

/// Bytes of an SFTP write request besides its handle and its data: the packet's length, type
/// and id, the handle's length, the offset and the data's length.
const WRITE_HEADER: usize = 4 + 1 + 4 + 4 + 8 + 4;

/// File bytes per write request, so that a whole request is `write_len` bytes. The SSH channel
/// carries the request in packets of the server's maximum (32 KiB for OpenSSH): a request of
/// 64 KiB of data plus its header would take two full packets and a third of ~30 bytes, each
/// costing a system call, a MAC and a round through both SSH stacks; 64 KiB in all takes two.
fn data_per_write(write_len: u32, handle: &str) -> usize {
    (write_len as usize)
        .saturating_sub(WRITE_HEADER + handle.len())
        .max(1)
}

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
        let written = self.auditor.record_in(
            &owner,
            self.entry.org.as_deref(),
            &self.client,
            AuditKind::FileTransferred,
            details,
        );
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

/// Start streaming `path` (`size` bytes, open as `handle`) from the target; the receiver is the
/// response body.
pub fn download(
    sftp: Arc<Sftp>,
    handle: String,
    path: String,
    size: u64,
    ledger: Ledger,
    permit: OwnedSemaphorePermit,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let _permit = permit;
        let mut sha = Sha256::new();
        let mut sent = 0u64;
        let outcome = send_file(&sftp, &handle, size, &tx, &mut sha, &mut sent).await;
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), sftp.close_handle(&handle)).await;
        ledger
            .write(Direction::Download, &path, sent, sha, outcome)
            .await;
    });
    rx
}

/// Read `size` bytes of `handle` into `tx`, [`READS`] requests ahead of the one awaited.
async fn send_file(
    sftp: &Sftp,
    handle: &str,
    size: u64,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    sha: &mut Sha256,
    sent: &mut u64,
) -> Outcome {
    let mut chunk = sftp.read_len.max(1);
    // Where the next request starts; requests are answered in order of offset.
    let mut next = 0u64;
    let mut pending = FuturesOrdered::new();
    while *sent < size {
        while pending.len() < READS && next < size {
            let len = u32::try_from(size - next).unwrap_or(chunk).min(chunk);
            let offset = next;
            pending.push_back(async move { (offset, len, sftp.read(handle, offset, len).await) });
            next += u64::from(len);
        }
        let Some((offset, len, read)) = pending.next().await else {
            break;
        };
        let data = match read {
            Ok(data) if data.is_empty() => {
                tracing::warn!(sent = *sent, size, "file shrank during the download");
                let _ = tx.send(Err(std::io::Error::other("file shrank"))).await;
                return Outcome::Failed;
            }
            Ok(data) => data,
            Err(err) => {
                tracing::warn!(error = %err, "download read failed");
                let _ = tx.send(Err(std::io::Error::other(err.to_string()))).await;
                return Outcome::Failed;
            }
        };
        if data.len() < len as usize {
            // A server that reads less at a time than it said (or a file that shrank): drop
            // the requests beyond the gap and go on from it, at the size it answered.
            pending = FuturesOrdered::new();
            next = offset + data.len() as u64;
            chunk = u32::try_from(data.len()).unwrap_or(chunk).max(1);
        }
        let read = data.len() as u64;
        let bytes = Bytes::from(data);
        sha.update(&bytes);
        match tokio::time::timeout(STALL, tx.send(Ok(bytes))).await {
            Ok(Ok(())) => {
                *sent += read;
                crate::metrics::get().file_bytes_down.inc_by(read);
            }
            // The browser stopped reading, or went away.
            Ok(Err(_)) | Err(_) => return Outcome::Cancelled,
        }
    }
    if *sent >= size {
        Outcome::Completed
    } else {
        Outcome::Failed
    }
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
    sftp: Arc<Sftp>,
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
            let handle = sftp.create(&part).await?;
            let received = receive_file(&sftp, &handle, &mut rx, &mut sha, &mut written).await;
            // Every write acknowledged (or failed), then the handle closed, then the name.
            let closed = sftp.close_handle(&handle).await;
            if !received? {
                return Ok(false);
            }
            closed?;
            if overwrite {
                if !sftp.replace(&part, &path).await? {
                    tracing::info!("the target has no posix-rename: replaced in two steps");
                }
            } else {
                sftp.rename(&part, &path).await?;
            }
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
            let _ = tokio::time::timeout(STALL, sftp.remove_file(&part)).await;
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

/// Write what arrives on `rx` to `handle` in writes of the server's size, up to [`WRITES`]
/// unacknowledged. `Ok(true)`: [`Chunk::End`] came and every write was acknowledged;
/// `Ok(false)`: the sender went away first (the browser cancelled).
async fn receive_file(
    sftp: &Sftp,
    handle: &str,
    rx: &mut mpsc::Receiver<Chunk>,
    sha: &mut Sha256,
    written: &mut u64,
) -> Result<bool, SftpError> {
    let size = data_per_write(sftp.write_len, handle);
    let mut pending = FuturesUnordered::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let mut offset = 0u64;
    let mut ended = false;
    loop {
        if ended && pending.is_empty() {
            return Ok(true);
        }
        tokio::select! {
            Some(acknowledged) = pending.next(), if !pending.is_empty() => acknowledged?,
            chunk = rx.recv(), if !ended && pending.len() < WRITES => match chunk {
                Some(Chunk::Data(bytes)) => {
                    sha.update(&bytes);
                    *written += bytes.len() as u64;
                    crate::metrics::get().file_bytes_up.inc_by(bytes.len() as u64);
                    let mut rest: &[u8] = &bytes;
                    while !rest.is_empty() {
                        let take = (size - buffer.len()).min(rest.len());
                        let (now, later) = rest.split_at_checked(take).unwrap_or((rest, &[]));
                        buffer.extend_from_slice(now);
                        rest = later;
                        if buffer.len() >= size {
                            let data = std::mem::replace(&mut buffer, Vec::with_capacity(size));
                            let at = offset;
                            offset += data.len() as u64;
                            pending.push(sftp.write(handle, at, data));
                        }
                    }
                }
                Some(Chunk::End) => {
                    if !buffer.is_empty() {
                        let data = std::mem::take(&mut buffer);
                        pending.push(sftp.write(handle, offset, data));
                    }
                    ended = true;
                }
                None => return Ok(false),
            },
            else => return Ok(ended),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::{Packet, Write};

    #[test]
    fn a_full_write_request_is_exactly_write_len_bytes() {
        for handle in ["", "1", "a-handle-of-some-length"] {
            for write_len in [32 * 1024, 64 * 1024] {
                let data = vec![0u8; data_per_write(write_len, handle)];
                let request = Packet::Write(Write {
                    id: 7,
                    handle: handle.to_owned(),
                    offset: 1 << 40,
                    data,
                });
                let encoded = bytes::Bytes::try_from(request).expect("encodes");
                assert_eq!(encoded.len(), write_len as usize, "handle {handle:?}");
            }
        }
    }

    #[test]
    fn a_write_carries_at_least_one_byte() {
        assert_eq!(data_per_write(10, "handle"), 1);
    }
}
