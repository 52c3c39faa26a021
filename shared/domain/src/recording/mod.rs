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
//! recordings/<owner-hash>/meta/<recording-id>.json         metadata (facts sealed)
//! recordings/<owner-hash>/chunks/<recording-id>/<index>     sealed chunks, index 0 = header
//! ```
//!
//! `<owner-hash>` is SHA-256 of the owner id (ids are emails or issuer-scoped subjects, which
//! have characters a path must not), so every path is built from hex digits and a validated
//! recording id only. Everything is addressed by owner: there is no "get recording by id"
//! without an owner, so another user's recording is absent (404), like a machine.
//!
//! The metadata object is written at the start (with the wrapped data key) and again at the
//! end (end time, duration, bytes, exit status, gaps). Its facts are sealed under the
//! recording's data key and bound to the recording id, so a changed, swapped or forged
//! metadata object is refused like a changed chunk; the price is one key-service call per
//! recording listed.

pub mod cast;
pub mod seal;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
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
    /// Write `body` under `name`, replacing what was there. `Bytes`, so that a chunk kept for
    /// a retry is handed to the write without a copy.
    async fn put(&self, name: &str, body: Bytes) -> Result<(), StorageError>;
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
/// Plaintext past which the recorder seals a chunk before its once-a-second tick (a chunk is
/// at most this plus what arrived while the previous chunk was being written).
pub const CHUNK_BYTES: usize = 512 * 1024;
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

/// A recording's facts, kept in its metadata object sealed under the recording's data key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingMeta {
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
    /// Who opened the session. For a user's own machine it is the recording's owner; for an
    /// organization machine the recording belongs to the organization and this names the
    /// member. Absent in recordings made before it was kept.
    #[serde(default)]
    pub user: Option<String>,
}

/// The metadata object as stored: the wrapped data key in the clear (a reader needs it to
/// open anything), the facts sealed under the data key and bound to the recording id
/// ([`ChunkSealer::seal_meta`]). Version 1 objects (facts in the clear) are refused as
/// damaged: accepting them would let anyone who can write storage replace sealed facts.
#[derive(Serialize, Deserialize)]
struct StoredMeta {
    version: u8,
    /// The data key as the key service wrapped it, base64.
    wrapped_key: String,
    /// `nonce || ciphertext+tag` of the facts' JSON, base64.
    sealed: String,
}

const META_VERSION: u8 = 2;

/// What the API lists: a recording's facts, or, for one whose metadata does not verify, its
/// id and why (`damaged`), so that a tampered object is reported and can be deleted, and
/// does not hide the others.
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
    /// Who opened the session (sealed with the facts; `null` for a damaged recording or one
    /// made before it was kept).
    pub user: Option<String>,
    /// Set when the metadata failed verification: the reason; the other fields are then
    /// zero or empty.
    pub damaged: Option<String>,
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
            user: m.user,
            damaged: None,
        }
    }
}

impl RecordingView {
    fn damaged(id: &RecordingId, why: String) -> Self {
        Self {
            id: id.as_str().to_owned(),
            machine_id: 0,
            machine_name: String::new(),
            started_at: 0,
            ended_at: None,
            duration_secs: None,
            bytes: 0,
            exit_status: None,
            gaps: 0,
            record_input: false,
            user: None,
            damaged: Some(why),
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
    /// Who opened the session (kept in the sealed facts).
    pub user: &'a str,
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
            user: Some(subject.user.to_owned()),
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
            wrapped_key: base64::engine::general_purpose::STANDARD.encode(&key.wrapped),
            next_index: 0,
            pending: header,
            sealed: None,
            started: Instant::now(),
            open_output: None,
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

    /// The caller's recordings, newest first. Each metadata object is opened with its
    /// recording's data key (one key-service call each, at most 16 at a time); one that does
    /// not verify is listed with `damaged` set rather than left out.
    pub async fn list(&self, owner: &Identity) -> Result<Vec<RecordingView>, DomainError> {
        let prefix = format!("{}meta/", owner_prefix(owner));
        let names = bounded("list", self.store.list(&prefix, MAX_LISTED))
            .await
            .map_err(unavailable)?;
        let mut reads = tokio::task::JoinSet::new();
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            // Only names this module wrote: `<prefix><uuid>.json`.
            let Some(id) = name
                .strip_prefix(&prefix)
                .and_then(|file| file.strip_suffix(".json"))
                .and_then(|raw| RecordingId::parse(raw).ok())
            else {
                tracing::warn!(name, "unexpected object among recording metadata");
                continue;
            };
            // At most 16 reads in flight.
            while reads.len() >= 16 {
                if let Some(done) = reads.join_next().await {
                    collect(&mut views, done)?;
                }
            }
            let (store, keys, owner) = (
                Arc::clone(&self.store),
                Arc::clone(&self.keys),
                owner.clone(),
            );
            reads.spawn(async move {
                let read = open_meta(store.as_ref(), keys.as_ref(), &owner, &id).await;
                (id, read.map(|(meta, _)| meta))
            });
        }
        while let Some(done) = reads.join_next().await {
            collect(&mut views, done)?;
        }
        views.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(views)
    }

    /// The recording as asciicast v2, decrypted and verified: the metadata opens under the
    /// data key, every chunk opens at its own index, the indices have no hole, and the last
    /// one carries the final flag. A recording still being written (or cut short by a crash)
    /// has no final chunk and is refused as incomplete, saying so.
    pub async fn fetch(&self, owner: &Identity, id: &RecordingId) -> Result<Vec<u8>, DomainError> {
        let (meta, sealer) = open_meta(self.store.as_ref(), self.keys.as_ref(), owner, id).await?;
        let mut cast = Vec::new();
        for index in 0..MAX_CHUNKS {
            let (plaintext, last) = self.chunk(owner, id, &meta, &sealer, index).await?;
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

    /// Part of a recording, for recordings longer than one answer carries: whole chunks from
    /// `from_chunk` on, as many as fit in [`MAX_FETCH_BYTES`] (at least one), each verified
    /// like [`Recordings::fetch`] does, and the chunk the next window starts at (`None` once
    /// the window holds the final chunk). The windows from 0 concatenated are the recording,
    /// byte for byte; a reader has the whole, verified recording only once a window without
    /// `next` arrived (a missing or changed chunk fails the window that reaches it).
    pub async fn fetch_window(
        &self,
        owner: &Identity,
        id: &RecordingId,
        from_chunk: u64,
    ) -> Result<Window, DomainError> {
        let (meta, sealer) = open_meta(self.store.as_ref(), self.keys.as_ref(), owner, id).await?;
        let past_end = meta.ended_at.is_some() && from_chunk >= meta.chunks;
        if from_chunk >= MAX_CHUNKS || past_end {
            return Err(DomainError::invalid(format!(
                "from_chunk {from_chunk} is past the recording's last chunk"
            )));
        }
        let mut cast = Vec::new();
        for index in from_chunk..MAX_CHUNKS {
            let (plaintext, last) = self.chunk(owner, id, &meta, &sealer, index).await?;
            if cast.len() + plaintext.len() > MAX_FETCH_BYTES {
                if cast.is_empty() {
                    return Err(DomainError::RecordingTooLarge {
                        limit: MAX_FETCH_BYTES,
                    });
                }
                return Ok(Window {
                    cast,
                    next: Some(index),
                });
            }
            cast.extend_from_slice(&plaintext);
            if last {
                return Ok(Window { cast, next: None });
            }
        }
        Err(DomainError::RecordingDamaged(format!(
            "more than {MAX_CHUNKS} chunks"
        )))
    }

    /// Chunk `index`, opened: its plaintext and whether it is the final one. A final chunk
    /// must be where the (sealed) metadata of an ended recording says the recording ends.
    async fn chunk(
        &self,
        owner: &Identity,
        id: &RecordingId,
        meta: &RecordingMeta,
        sealer: &ChunkSealer,
        index: u64,
    ) -> Result<(Vec<u8>, bool), DomainError> {
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
        if last && meta.ended_at.is_some() && meta.chunks != index + 1 {
            return Err(DomainError::RecordingDamaged(format!(
                "the metadata names {} chunks, the final chunk is chunk {index}",
                meta.chunks
            )));
        }
        Ok((plaintext, last))
    }

    /// Whether `owner` has a recording `id` (its metadata object exists, verified or not): how
    /// a fetch finds which of the owners the caller may read holds it, before opening it.
    pub async fn exists(&self, owner: &Identity, id: &RecordingId) -> Result<bool, DomainError> {
        let found = bounded("get", self.store.get(&meta_name(owner, id)))
            .await
            .map_err(unavailable)?;
        Ok(found.is_some())
    }

    /// Remove a recording: its chunks, then its metadata (so a listed recording always has
    /// its chunks, or is being deleted).
    pub async fn delete(&self, owner: &Identity, id: &RecordingId) -> Result<(), DomainError> {
        // Existence only: a recording whose metadata is damaged can be deleted too.
        bounded("get", self.store.get(&meta_name(owner, id)))
            .await
            .map_err(unavailable)?
            .ok_or(DomainError::RecordingNotFound)?;
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

/// Read and open a recording's metadata: the facts, verified, and the sealer for its chunks.
async fn open_meta(
    store: &dyn RecordingStore,
    keys: &dyn KeyProvider,
    owner: &Identity,
    id: &RecordingId,
) -> Result<(RecordingMeta, ChunkSealer), DomainError> {
    let damaged = |why: &str| DomainError::RecordingDamaged(format!("metadata {why}"));
    let raw = bounded("get", store.get(&meta_name(owner, id)))
        .await
        .map_err(unavailable)?
        .ok_or(DomainError::RecordingNotFound)?;
    let stored: StoredMeta =
        serde_json::from_slice(&raw).map_err(|_| damaged("is malformed or not sealed"))?;
    if stored.version != META_VERSION {
        return Err(damaged("has an unknown version"));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let wrapped = engine
        .decode(&stored.wrapped_key)
        .map_err(|_| damaged("has a malformed wrapped key"))?;
    let sealed = engine
        .decode(&stored.sealed)
        .map_err(|_| damaged("is malformed"))?;
    let context = seal::context(&owner.0, id.as_str());
    let key = tokio::time::timeout(CALL_TIMEOUT, keys.decrypt_data_key(&wrapped, &context))
        .await
        .map_err(|_| DomainError::RecordingUnavailable("key service timed out".into()))?
        .map_err(|e| match e {
            crate::keys::KeyError::Unavailable(_) => DomainError::Keys(e),
            crate::keys::KeyError::Denied(_) => DomainError::RecordingDamaged(
                "the data key does not open for this recording".into(),
            ),
        })?;
    let sealer = ChunkSealer::new(&key, id.as_str());
    let facts = sealer
        .open_meta(&sealed)
        .ok_or_else(|| damaged("failed authentication (changed, or from another recording)"))?;
    let meta: RecordingMeta =
        serde_json::from_slice(&facts).map_err(|_| damaged("is malformed"))?;
    if meta.id != id.as_str() {
        return Err(damaged("names another recording"));
    }
    Ok((meta, sealer))
}

type MetaRead = (RecordingId, Result<RecordingMeta, DomainError>);

fn collect(
    views: &mut Vec<RecordingView>,
    done: Result<MetaRead, tokio::task::JoinError>,
) -> Result<(), DomainError> {
    let (id, read) = done.map_err(|_| DomainError::Internal("recording listing task failed"))?;
    match read {
        Ok(meta) => views.push(meta.into()),
        // Deleted between the listing and the read.
        Err(DomainError::RecordingNotFound) => {}
        Err(DomainError::RecordingDamaged(why)) => {
            tracing::warn!(
                recording = id.as_str(),
                why,
                "recording metadata does not verify"
            );
            views.push(RecordingView::damaged(&id, why));
        }
        Err(other) => return Err(other),
    }
    Ok(())
}

/// A window of a recording ([`Recordings::fetch_window`]).
#[derive(Debug)]
pub struct Window {
    /// The asciicast text of the window's chunks (the first window starts with the header).
    pub cast: Vec<u8>,
    /// Where the next window starts; `None` when this one ends the recording.
    pub next: Option<u64>,
}

/// How a recorded session ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ending {
    pub exit_status: Option<u32>,
}

/// A chunk sealed and not yet stored: [`Writer::seal_chunk`] makes it, the caller stores it
/// with [`Chunk::store`] (possibly while more events are buffered) and reports the outcome
/// with [`Writer::stored`] or [`Writer::not_stored`].
pub struct Chunk {
    index: u64,
    name: String,
    /// Shared with the write in flight, and kept for a retry if it fails.
    blob: Bytes,
}

impl Chunk {
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Sealed size.
    pub fn len(&self) -> usize {
        self.blob.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// A future that writes the chunk (bounded by [`CALL_TIMEOUT`]) and owns what it needs,
    /// so the caller can keep buffering events while it runs.
    pub fn store(
        &self,
        store: Arc<dyn RecordingStore>,
    ) -> impl std::future::Future<Output = Result<usize, StorageError>> + Send + 'static {
        let (name, blob) = (self.name.clone(), self.blob.clone());
        let size = blob.len();
        async move {
            bounded("put", store.put(&name, blob)).await?;
            Ok(size)
        }
    }
}

/// One recording being written. Events are appended to a plaintext buffer; consecutive output
/// frames within [`cast::COALESCE`] of each other are written as one event (the event is
/// left open at the end of the buffer and closed by the next other event or the next seal).
///
/// Sealing and storing are separate steps so that the relay's recorder can buffer events
/// while a chunk is being written: [`Writer::seal_chunk`] seals the buffer as the next chunk,
/// [`Writer::stored`] advances the index once it is written, [`Writer::not_stored`] keeps it
/// to be written again (so the indices stay gapless). [`Writer::flush`] does both in one go.
/// The caller decides when a buffer has grown too big to keep ([`Writer::abandon_pending`],
/// which marks the gap).
pub struct Writer {
    store: Arc<dyn RecordingStore>,
    sealer: ChunkSealer,
    owner: Identity,
    id: RecordingId,
    meta: RecordingMeta,
    wrapped_key: String,
    next_index: u64,
    pending: Vec<u8>,
    /// A sealed chunk not yet stored (being written, or its write failed).
    sealed: Option<Chunk>,
    started: Instant,
    /// When the output event open at the end of `pending` began.
    open_output: Option<Instant>,
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

    /// Plaintext waiting to be sealed.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    pub fn gaps(&self) -> u64 {
        self.meta.gaps
    }

    /// The storage, for [`Chunk::store`].
    pub fn store(&self) -> Arc<dyn RecordingStore> {
        Arc::clone(&self.store)
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    fn close_output(&mut self) {
        if self.open_output.take().is_some() {
            cast::close_event(&mut self.pending);
        }
    }

    fn event(&mut self, at: Instant, code: Code, data: &str) {
        self.close_output();
        let seconds = self.seconds(at);
        cast::open_event(&mut self.pending, seconds, code);
        cast::escape_into(data.as_bytes(), &mut self.pending);
        cast::close_event(&mut self.pending);
    }

    /// Output as the client received it. Written into the open output event if that began
    /// less than [`cast::COALESCE`] before `at`, else as a new event.
    pub fn output(&mut self, at: Instant, bytes: &[u8]) {
        self.meta.bytes += bytes.len() as u64;
        let joins = self
            .open_output
            .is_some_and(|began| at.saturating_duration_since(began) < cast::COALESCE);
        if joins {
            self.output.decode_escaped(bytes, &mut self.pending);
            return;
        }
        self.close_output();
        let mark = self.pending.len();
        let seconds = self.seconds(at);
        cast::open_event(&mut self.pending, seconds, Code::Output);
        let data = self.pending.len();
        self.output.decode_escaped(bytes, &mut self.pending);
        if self.pending.len() == data {
            // Only part of a character, carried to the next frame: no event yet.
            self.pending.truncate(mark);
        } else {
            self.open_output = Some(at);
        }
    }

    /// Keystrokes; ignored unless the machine's owner turned `record_input` on.
    pub fn input(&mut self, at: Instant, bytes: &[u8]) {
        if !self.meta.record_input {
            return;
        }
        self.close_output();
        let mark = self.pending.len();
        let seconds = self.seconds(at);
        cast::open_event(&mut self.pending, seconds, Code::Input);
        let data = self.pending.len();
        self.input.decode_escaped(bytes, &mut self.pending);
        if self.pending.len() == data {
            self.pending.truncate(mark);
        } else {
            cast::close_event(&mut self.pending);
        }
    }

    pub fn resize(&mut self, at: Instant, cols: u32, rows: u32) {
        self.event(at, Code::Resize, &format!("{cols}x{rows}"));
    }

    /// A marker: a labelled moment (`m` event) the player shows on its timeline, such as who
    /// types from here on or a file transfer. Written whether or not input is recorded; not a
    /// gap (nothing is missing). It ends an open output event first, like every other event.
    pub fn marker(&mut self, at: Instant, label: &str) {
        self.event(at, Code::Marker, label);
    }

    /// A gap: something was not recorded, and why. Counted in the metadata.
    pub fn gap(&mut self, at: Instant, why: &str) {
        self.meta.gaps += 1;
        self.event(at, Code::Marker, &format!("gap: {why}"));
    }

    /// Throw away the unsealed buffer (storage has been failing and it grew too big), and
    /// mark the gap in its place.
    pub fn abandon_pending(&mut self, at: Instant) {
        let lost = self.pending.len();
        self.pending.clear();
        self.open_output = None;
        self.gap(
            at,
            &format!("{lost} bytes of the recording could not be written"),
        );
    }

    /// The chunk to write next: the one sealed earlier and not yet stored if there is one,
    /// else the buffer sealed as the next chunk (`None` when there is nothing to write).
    /// Until [`Writer::stored`] or [`Writer::not_stored`] is called, nothing new is sealed.
    pub fn seal_chunk(&mut self) -> Option<Chunk> {
        if self.finished {
            return None;
        }
        if let Some(chunk) = self.sealed.take() {
            return Some(chunk);
        }
        if self.pending.is_empty() {
            return None;
        }
        if self.next_index + 1 >= MAX_CHUNKS {
            // Keep the last index for the final chunk.
            self.pending.clear();
            self.open_output = None;
            return None;
        }
        Some(self.seal(false))
    }

    fn seal(&mut self, last: bool) -> Chunk {
        self.close_output();
        let index = self.next_index;
        let blob = Bytes::from(self.sealer.seal(index, last, &self.pending));
        self.pending.clear();
        Chunk {
            index,
            name: chunk_name(&self.owner, &self.id, index),
            blob,
        }
    }

    /// `chunk` was written: the next chunk gets the next index.
    pub fn stored(&mut self, chunk: Chunk) {
        self.next_index = self.next_index.max(chunk.index + 1);
    }

    /// `chunk` could not be written: it is written again, as it is, before anything else.
    pub fn not_stored(&mut self, chunk: Chunk) {
        self.sealed = Some(chunk);
    }

    /// Store a chunk whose write failed earlier, then seal what is buffered as the next
    /// chunk and store it. On failure the sealed chunk is kept for the next attempt.
    pub async fn flush(&mut self) -> Result<usize, StorageError> {
        let mut written = 0;
        // At most twice: the chunk kept from a failed write, then the buffer.
        for _ in 0..2 {
            let Some(chunk) = self.seal_chunk() else {
                break;
            };
            match chunk.store(self.store()).await {
                Ok(size) => {
                    written += size;
                    self.stored(chunk);
                }
                Err(err) => {
                    self.not_stored(chunk);
                    return Err(err);
                }
            }
        }
        Ok(written)
    }

    async fn put_meta(&self) -> Result<(), StorageError> {
        let facts = serde_json::to_vec(&self.meta).map_err(|e| StorageError(e.to_string()))?;
        let stored = StoredMeta {
            version: META_VERSION,
            wrapped_key: self.wrapped_key.clone(),
            sealed: base64::engine::general_purpose::STANDARD.encode(self.sealer.seal_meta(&facts)),
        };
        let body = serde_json::to_vec(&stored).map_err(|e| StorageError(e.to_string()))?;
        bounded(
            "put",
            self.store
                .put(&meta_name(&self.owner, &self.id), Bytes::from(body)),
        )
        .await
    }

    /// End the recording: a chunk sealed earlier and not yet stored, then the final chunk
    /// (what is buffered, flagged last) and the completed metadata. Idempotent once it
    /// succeeded. The caller must not have a chunk write in flight.
    pub async fn finish(&mut self, ending: Ending) -> Result<usize, StorageError> {
        if self.finished {
            return Ok(0);
        }
        let mut written = 0;
        if let Some(chunk) = self.sealed.take() {
            match chunk.store(self.store()).await {
                Ok(size) => {
                    written += size;
                    self.stored(chunk);
                }
                Err(err) => {
                    self.not_stored(chunk);
                    return Err(err);
                }
            }
        }
        let now = Instant::now();
        if let Some(rest) = self.output.finish() {
            self.event(now, Code::Output, &rest);
        }
        let chunk = self.seal(true);
        match chunk.store(self.store()).await {
            Ok(size) => {
                written += size;
                self.stored(chunk);
            }
            Err(err) => {
                self.not_stored(chunk);
                return Err(err);
            }
        }
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
