//! Session recording: every terminal recorded as an asciicast v2 stream, sealed in chunks,
//! kept behind a small storage port, and read back only by its owner.
//!
//! The pieces, one concept each: [`cast`] (the plaintext format), [`seal`] (the data key and
//! the chunk AEAD), [`RecordingStore`] (the port: a flat object namespace, files under
//! `DATA_DIR/recordings` or an S3 bucket, in the `backends` crate), [`Writer`] (one recording
//! being written, used by the relay's recorder task) and [`Recordings`] (the service: begin a
//! recording, list, fetch and delete the caller's).
//!
//! Layout, one object per chunk (docs/recording.md says why not S3 multipart: a part is
//! unreadable until the upload completes and must be 5 MiB, which defeats "a crash loses at
//! most the last second"):
//!
//! ```text
//! recordings/<owner-hash>/meta/<recording-id>.json         metadata (not sealed)
//! recordings/<owner-hash>/chunks/<recording-id>/<index>     sealed chunks, index 0 = header
//! ```
//!
//! `<owner-hash>` is SHA-256 of the owner id (ids are emails or issuer-scoped subjects, which
//! have characters a path must not), so every path is built from hex digits and a validated
//! recording id only. Everything is addressed by owner: there is no "get recording by id"
//! without an owner, so another user's recording is absent (404), like a machine.
//!
//! The metadata object is written at the start (with the wrapped data key) and again at the
//! end (end time, duration, bytes, exit status, gaps). It is not sealed so that a listing does
//! not call the key service once per recording; its fields are informational, the stream is
//! what is authenticated.

pub mod cast;
pub mod seal;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DomainError;
use crate::identity::Identity;
use crate::keys::KeyProvider;
use cast::{Code, Utf8Carry};
use seal::{ChunkError, ChunkSealer};

/// The deployment's recording policy, `RECORDING=off|on|required` (default `on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Nothing is recorded, whatever the machines say.
    Off,
    /// Machines with `recording` on are recorded; a storage failure leaves a marked gap and
    /// the session goes on.
    #[default]
    On,
    /// Every session is recorded (the machine's `recording` toggle is ignored); a session that
    /// cannot be recorded does not start, and one whose recording fails is ended.
    Required,
}

impl Policy {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "off" => Some(Self::Off),
            "on" => Some(Self::On),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Required => "required",
        }
    }

    /// Whether a session on a machine with this `recording` toggle is recorded.
    pub fn records(self, machine_recording: bool) -> bool {
        match self {
            Self::Off => false,
            Self::On => machine_recording,
            Self::Required => true,
        }
    }
}

/// The storage port failed (unreachable, refused, timed out).
#[derive(Debug, thiserror::Error)]
#[error("recording storage unavailable: {0}")]
pub struct StorageError(pub String);

/// Where recordings are kept: a flat namespace of objects with `/`-separated names. Names are
/// built by this module only, from hex digits, validated ids and fixed words.
#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// Write `body` under `name`, replacing what was there.
    async fn put(&self, name: &str, body: Vec<u8>) -> Result<(), StorageError>;
    /// The object, or `None` if there is none.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Names under `prefix` (which ends with `/`), at most `limit`, in name order.
    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StorageError>;
    /// Remove the objects; missing ones are not an error.
    async fn delete(&self, names: &[String]) -> Result<(), StorageError>;
    /// One line for the start-up log.
    fn describe(&self) -> String;
}

/// Most chunks one recording may have (one a second is about 1.1 days at the cap; a writer
/// past it stops recording and marks it).
pub const MAX_CHUNKS: u64 = 100_000;
/// Largest plaintext one chunk carries; the writer flushes earlier when output is heavy.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most plaintext one fetch returns (a Lambda answer is capped at 6 MB; see docs/recording.md).
pub const MAX_FETCH_BYTES: usize = 5 * 1024 * 1024;
/// Most recordings a listing reads.
pub const MAX_LISTED: usize = 500;
/// How long one storage or key-service call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A recording's id: a lower-case UUID, so it can be part of an object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingId(String);

impl RecordingId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = raw.len() == 36
            && raw.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
            });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::RecordingNotFound)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn owner_prefix(owner: &Identity) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"sushi-recording-owner\0");
    hasher.update(owner.0.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("recordings/{hex}/")
}

fn meta_name(owner: &Identity, id: &RecordingId) -> String {
    format!("{}meta/{}.json", owner_prefix(owner), id.as_str())
}

fn chunks_prefix(owner: &Identity, id: &RecordingId) -> String {
    format!("{}chunks/{}/", owner_prefix(owner), id.as_str())
}

fn chunk_name(owner: &Identity, id: &RecordingId, index: u64) -> String {
    format!("{}{index:08}", chunks_prefix(owner, id))
}

/// The metadata object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub version: u8,
    pub id: String,
    pub machine_id: u64,
    pub machine_name: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_secs: Option<f64>,
    /// Output bytes recorded.
    pub bytes: u64,
    pub exit_status: Option<u32>,
    /// Places where something was not recorded (storage behind or failing).
    pub gaps: u64,
    pub chunks: u64,
    pub record_input: bool,
    /// The data key as the key service wrapped it, base64.
    pub wrapped_key: String,
}

/// What the API lists: the metadata without the wrapped key.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RecordingView {
    pub id: String,
    pub machine_id: u64,
    pub machine_name: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_secs: Option<f64>,
    pub bytes: u64,
    pub exit_status: Option<u32>,
    pub gaps: u64,
    pub record_input: bool,
}

impl From<RecordingMeta> for RecordingView {
    fn from(m: RecordingMeta) -> Self {
        Self {
            id: m.id,
            machine_id: m.machine_id,
            machine_name: m.machine_name,
            started_at: m.started_at,
            ended_at: m.ended_at,
            duration_secs: m.duration_secs,
            bytes: m.bytes,
            exit_status: m.exit_status,
            gaps: m.gaps,
            record_input: m.record_input,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| StorageError(format!("{what} timed out")))?
}

/// What a recording is of, known at connect.
pub struct Subject<'a> {
    pub machine_id: u64,
    pub machine_name: &'a str,
    pub record_input: bool,
    pub cols: u32,
    pub rows: u32,
}

/// The recording service over the configured storage and key provider.
pub struct Recordings {
    store: Arc<dyn RecordingStore>,
    keys: Arc<dyn KeyProvider>,
    policy: Policy,
}

impl Recordings {
    pub fn new(store: Arc<dyn RecordingStore>, keys: Arc<dyn KeyProvider>, policy: Policy) -> Self {
        Self {
            store,
            keys,
            policy,
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (RECORDING={})",
            self.store.describe(),
            self.policy.as_str()
        )
    }

    /// Start recording: a fresh data key, the metadata and the header chunk written. This is
    /// the probe the `required` policy relies on: if it fails, nothing was recorded and the
    /// caller knows before the terminal opens.
    pub async fn begin(
        &self,
        owner: &Identity,
        id: RecordingId,
        subject: Subject<'_>,
    ) -> Result<Writer, DomainError> {
        let context = seal::context(&owner.0, id.as_str());
        let key = tokio::time::timeout(CALL_TIMEOUT, self.keys.generate_data_key(&context))
            .await
            .map_err(|_| DomainError::RecordingUnavailable("key service timed out".into()))?
            .map_err(|e| DomainError::RecordingUnavailable(e.to_string()))?;
        let sealer = ChunkSealer::new(&key.plaintext, id.as_str());
        let started_at = now_ms();
        let meta = RecordingMeta {
            version: 1,
            id: id.as_str().to_owned(),
            machine_id: subject.machine_id,
            machine_name: subject.machine_name.to_owned(),
            started_at,
            ended_at: None,
            duration_secs: None,
            bytes: 0,
            exit_status: None,
            gaps: 0,
            chunks: 1,
            record_input: subject.record_input,
            wrapped_key: base64::engine::general_purpose::STANDARD.encode(&key.wrapped),
        };
        let header = cast::Header {
            version: 2,
            width: subject.cols,
            height: subject.rows,
            timestamp: started_at / 1000,
            title: subject.machine_name,
            env: cast::Env {
                term: "xterm-256color",
            },
        }
        .line();
        let writer = Writer {
            store: Arc::clone(&self.store),
            sealer,
            owner: owner.clone(),
            id,
            meta,
            next_index: 0,
            pending: header,
            started: Instant::now(),
            output: Utf8Carry::default(),
            input: Utf8Carry::default(),
            finished: false,
        };
        writer
            .put_meta()
            .await
            .map_err(|e| DomainError::RecordingUnavailable(e.0))?;
        let mut writer = writer;
        writer
            .flush()
            .await
            .map_err(|e| DomainError::RecordingUnavailable(e.0))?;
        Ok(writer)
    }

    /// The caller's recordings, newest first.
    pub async fn list(&self, owner: &Identity) -> Result<Vec<RecordingView>, DomainError> {
        let prefix = format!("{}meta/", owner_prefix(owner));
        let names = bounded("list", self.store.list(&prefix, MAX_LISTED))
            .await
            .map_err(unavailable)?;
        let mut reads = tokio::task::JoinSet::new();
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            // At most 16 reads in flight.
            while reads.len() >= 16 {
                if let Some(done) = reads.join_next().await {
                    collect(&mut views, done)?;
                }
            }
            let store = Arc::clone(&self.store);
            reads.spawn(async move { bounded("get", store.get(&name)).await });
        }
        while let Some(done) = reads.join_next().await {
            collect(&mut views, done)?;
        }
        views.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(views)
    }

    async fn meta(&self, owner: &Identity, id: &RecordingId) -> Result<RecordingMeta, DomainError> {
        let raw = bounded("get", self.store.get(&meta_name(owner, id)))
            .await
            .map_err(unavailable)?
            .ok_or(DomainError::RecordingNotFound)?;
        serde_json::from_slice(&raw)
            .map_err(|e| DomainError::RecordingDamaged(format!("metadata is malformed: {e}")))
    }

    /// The recording as asciicast v2, decrypted and verified: every chunk opens at its own
    /// index, the indices have no hole, and the last one carries the final flag. A recording
    /// still being written (or cut short by a crash) has no final chunk and is refused as
    /// incomplete, saying so.
    pub async fn fetch(&self, owner: &Identity, id: &RecordingId) -> Result<Vec<u8>, DomainError> {
        let meta = self.meta(owner, id).await?;
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(&meta.wrapped_key)
            .map_err(|_| DomainError::RecordingDamaged("wrapped key is malformed".into()))?;
        let context = seal::context(&owner.0, id.as_str());
        let key =
            tokio::time::timeout(CALL_TIMEOUT, self.keys.decrypt_data_key(&wrapped, &context))
                .await
                .map_err(|_| DomainError::RecordingUnavailable("key service timed out".into()))?
                .map_err(|e| match e {
                    crate::keys::KeyError::Unavailable(_) => DomainError::Keys(e),
                    crate::keys::KeyError::Denied(_) => DomainError::RecordingDamaged(
                        "the data key does not open for this recording".into(),
                    ),
                })?;
        let sealer = ChunkSealer::new(&key, id.as_str());
        let mut cast = Vec::new();
        for index in 0..MAX_CHUNKS {
            let blob = bounded("get", self.store.get(&chunk_name(owner, id, index)))
                .await
                .map_err(unavailable)?;
            let Some(blob) = blob else {
                let what = if meta.ended_at.is_some() {
                    format!("chunk {index} is missing: the recording was truncated or has a gap")
                } else {
                    format!(
                        "chunk {index} is missing and the recording has no final chunk: \
                         it is still being written or its relay stopped"
                    )
                };
                return Err(DomainError::RecordingDamaged(what));
            };
            let (plaintext, last) = sealer.open(index, &blob).map_err(|e| match e {
                ChunkError::Malformed(_) | ChunkError::Tampered(_) => {
                    DomainError::RecordingDamaged(e.to_string())
                }
            })?;
            if cast.len() + plaintext.len() > MAX_FETCH_BYTES {
                return Err(DomainError::RecordingTooLarge {
                    limit: MAX_FETCH_BYTES,
                });
            }
            cast.extend_from_slice(&plaintext);
            if last {
                return Ok(cast);
            }
        }
        Err(DomainError::RecordingDamaged(format!(
            "more than {MAX_CHUNKS} chunks"
        )))
    }

    /// Remove a recording: its chunks, then its metadata (so a listed recording always has
    /// its chunks, or is being deleted).
    pub async fn delete(&self, owner: &Identity, id: &RecordingId) -> Result<(), DomainError> {
        self.meta(owner, id).await?;
        let prefix = chunks_prefix(owner, id);
        loop {
            let names = bounded("list", self.store.list(&prefix, 1000))
                .await
                .map_err(unavailable)?;
            if names.is_empty() {
                break;
            }
            bounded("delete", self.store.delete(&names))
                .await
                .map_err(unavailable)?;
        }
        bounded("delete", self.store.delete(&[meta_name(owner, id)]))
            .await
            .map_err(unavailable)
    }
}

fn unavailable(err: StorageError) -> DomainError {
    DomainError::RecordingUnavailable(err.0)
}

fn collect(
    views: &mut Vec<RecordingView>,
    done: Result<Result<Option<Vec<u8>>, StorageError>, tokio::task::JoinError>,
) -> Result<(), DomainError> {
    let raw = done
        .map_err(|_| DomainError::Internal("recording listing task failed"))?
        .map_err(unavailable)?;
    // A metadata object deleted between the listing and the read, or one that does not parse
    // (skipped and logged: one bad object must not hide the others).
    if let Some(raw) = raw {
        match serde_json::from_slice::<RecordingMeta>(&raw) {
            Ok(meta) => views.push(meta.into()),
            Err(err) => tracing::warn!(error = %err, "recording metadata does not parse"),
        }
    }
    Ok(())
}

/// How a recorded session ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ending {
    pub exit_status: Option<u32>,
}

/// One recording being written. Events are appended to a plaintext buffer; [`Writer::flush`]
/// seals the buffer as the next chunk and stores it. A failed write keeps the buffer (the
/// chunk index does not advance, so the indices stay gapless); the caller decides when a
/// buffer has grown too big to keep ([`Writer::abandon_pending`], which marks the gap).
pub struct Writer {
    store: Arc<dyn RecordingStore>,
    sealer: ChunkSealer,
    owner: Identity,
    id: RecordingId,
    meta: RecordingMeta,
    next_index: u64,
    pending: Vec<u8>,
    started: Instant,
    output: Utf8Carry,
    input: Utf8Carry,
    finished: bool,
}

impl Writer {
    pub fn id(&self) -> &RecordingId {
        &self.id
    }

    pub fn records_input(&self) -> bool {
        self.meta.record_input
    }

    /// Plaintext waiting for the next flush.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    pub fn gaps(&self) -> u64 {
        self.meta.gaps
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    pub fn output(&mut self, at: Instant, bytes: &[u8]) {
        self.meta.bytes += bytes.len() as u64;
        let text = self.output.decode(bytes);
        if !text.is_empty() {
            let line = cast::event_line(self.seconds(at), Code::Output, &text);
            self.pending.extend_from_slice(&line);
        }
    }

    /// Keystrokes; ignored unless the machine's owner turned `record_input` on.
    pub fn input(&mut self, at: Instant, bytes: &[u8]) {
        if !self.meta.record_input {
            return;
        }
        let text = self.input.decode(bytes);
        if !text.is_empty() {
            let line = cast::event_line(self.seconds(at), Code::Input, &text);
            self.pending.extend_from_slice(&line);
        }
    }

    pub fn resize(&mut self, at: Instant, cols: u32, rows: u32) {
        let line = cast::event_line(self.seconds(at), Code::Resize, &format!("{cols}x{rows}"));
        self.pending.extend_from_slice(&line);
    }

    /// A marker (asciicast `m`) the player shows on its timeline, e.g. a file transfer.
    /// Not a gap: nothing is missing.
    pub fn marker(&mut self, at: Instant, label: &str) {
        let line = cast::event_line(self.seconds(at), Code::Marker, label);
        self.pending.extend_from_slice(&line);
    }

    /// A gap: something was not recorded, and why. Counted in the metadata.
    pub fn gap(&mut self, at: Instant, why: &str) {
        self.meta.gaps += 1;
        let line = cast::event_line(self.seconds(at), Code::Marker, &format!("gap: {why}"));
        self.pending.extend_from_slice(&line);
    }

    /// Throw away the unwritten buffer (storage has been failing and it grew too big), and
    /// mark the gap in its place.
    pub fn abandon_pending(&mut self, at: Instant) {
        let lost = self.pending.len();
        self.pending.clear();
        self.gap(
            at,
            &format!("{lost} bytes of the recording could not be written"),
        );
    }

    /// Seal what is buffered as the next chunk and store it; nothing to do for an empty
    /// buffer. On failure the buffer is kept for the next attempt.
    pub async fn flush(&mut self) -> Result<usize, StorageError> {
        if self.pending.is_empty() || self.finished {
            return Ok(0);
        }
        if self.next_index + 1 >= MAX_CHUNKS {
            // Keep the last index for the final chunk.
            self.pending.clear();
            return Ok(0);
        }
        self.write_chunk(false).await
    }

    async fn write_chunk(&mut self, last: bool) -> Result<usize, StorageError> {
        let blob = self.sealer.seal(self.next_index, last, &self.pending);
        let size = blob.len();
        let name = chunk_name(&self.owner, &self.id, self.next_index);
        bounded("put", self.store.put(&name, blob)).await?;
        self.pending.clear();
        self.next_index += 1;
        Ok(size)
    }

    async fn put_meta(&self) -> Result<(), StorageError> {
        let body = serde_json::to_vec(&self.meta).map_err(|e| StorageError(e.to_string()))?;
        bounded(
            "put",
            self.store.put(&meta_name(&self.owner, &self.id), body),
        )
        .await
    }

    /// End the recording: the final chunk (what is buffered, flagged last) and the completed
    /// metadata. Idempotent once it succeeded.
    pub async fn finish(&mut self, ending: Ending) -> Result<usize, StorageError> {
        if self.finished {
            return Ok(0);
        }
        let now = Instant::now();
        if let Some(rest) = self.output.finish() {
            let line = cast::event_line(self.seconds(now), Code::Output, &rest);
            self.pending.extend_from_slice(&line);
        }
        let written = self.write_chunk(true).await?;
        self.finished = true;
        self.meta.chunks = self.next_index;
        self.meta.ended_at = Some(now_ms());
        self.meta.duration_secs = Some(self.seconds(now));
        self.meta.exit_status = ending.exit_status;
        self.put_meta().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests;
