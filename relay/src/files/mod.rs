//! Files in the browser: HTTP routes that browse, upload to, download from and change the
//! file system of a live terminal's machine, over an SFTP channel on the terminal's own SSH
//! connection (`docs/files.md`).
//!
//! Routes are keyed by the terminal's session id (the resume id its client already has):
//! `GET /files/{session}/list?path=`, `GET /files/{session}/download?path=` (a streamed body
//! the browser saves itself), `PUT /files/{session}/upload?path=&overwrite=` (a streamed
//! body), `POST /files/{session}/mkdir?path=`, `POST /files/{session}/rename?from=&to=` and
//! `DELETE /files/{session}?path=`. Parameters travel in the query so that no write needs a
//! body besides the upload's own bytes.
//!
//! Who may: only the terminal's owner, proven by a bearer token or the `jwt` cookie (a share
//! viewer holds neither the owner's identity nor the session id's terminal). Anything else —
//! an unknown id, another user's terminal, a terminal that ended — answers the same 404
//! `session_not_found`. `FILES_MAX_BYTES=0` turns the routes off (404 `files_disabled`).
//!
//! Where: the relay holding the terminal serves the request ([`registry`]); any other relay
//! finds the terminal's route in the ticket table (the one resumes use) and forwards the HTTP
//! request there with a files hop proof ([`forward`]). A proven hop is served only here,
//! never forwarded again, so a stale route cannot loop. HTTP rather than a WebSocket because
//! a download must be a plain GET the browser saves with its own download manager.
//!
//! Module map: [`registry`] (terminals reachable here), [`remote`] (the SFTP channel and its
//! errors), [`transfer`] (the streaming, hashing and auditing of one transfer), [`forward`]
//! (relay to relay).

pub mod forward;
pub mod registry;
pub mod remote;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use domain::Identity;
use domain::audit::{AuditContext, AuditKind};
use edge::auth::token_from_headers;
use edge::envelope::Reply;
use edge::extract::Client;
use edge::{ApiError, ErrorCode};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::registry::Entry;
use self::remote::{Sftp, SftpError};
use self::transfer::{Chunk, Ledger, STALL};
use crate::ws::hop::{self, Hop};
use crate::ws::protocol::HOP_HEADER;
use crate::{Relay, RelayState};

/// Longest path accepted (PATH_MAX on Linux).
pub const MAX_PATH: usize = 4096;
/// Most entries one listing answers (the rest is cut, and `truncated` says so).
pub const MAX_ENTRIES: usize = 5000;
/// How long a listing or a change (mkdir, rename, delete) may take.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(30);

/// The query every route takes (each reads the fields it needs).
#[derive(Deserialize, Default)]
pub struct FileQuery {
    path: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// `true` or `1` replaces an existing file.
    overwrite: Option<String>,
}

/// One directory entry.
#[derive(Serialize)]
pub struct DirEntry {
    pub name: String,
    /// `file`, `dir`, `link` or `other`.
    pub kind: &'static str,
    pub size: u64,
    /// Seconds since the epoch, if the server said.
    pub modified: Option<u32>,
    /// The permission bits, e.g. `rwxr-xr-x`.
    pub mode: String,
}

/// A listing: the directory's absolute path and its entries, directories first.
#[derive(Serialize)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<DirEntry>,
    pub truncated: bool,
}

/// Where a changed path now is.
#[derive(Serialize)]
pub struct Changed {
    pub path: String,
}

/// A validated remote path: non-empty, at most [`MAX_PATH`] bytes, no NUL.
fn checked(raw: Option<&str>, name: &'static str) -> Result<String, ApiError> {
    let path = raw.unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad_request(format!("`{name}` is required")));
    }
    if path.len() > MAX_PATH || path.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be at most {MAX_PATH} bytes, without NUL"
        )));
    }
    Ok(path.to_owned())
}

/// Longest path an audit entry keeps, in bytes (an entry's details are at most 1 KiB; a longer
/// path keeps its end, the part that names the file).
const AUDIT_PATH_BYTES: usize = 300;

/// `path` as the audit log keeps it: whole, or `…` and its last [`AUDIT_PATH_BYTES`] bytes.
pub(crate) fn audit_path(path: &str) -> String {
    if path.len() <= AUDIT_PATH_BYTES {
        return path.to_owned();
    }
    let mut start = path.len() - AUDIT_PATH_BYTES;
    while !path.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", path.get(start..).unwrap_or_default())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, "No such terminal session")
}

/// Who asks, and whether another relay forwarded the request (then it is served here or not
/// at all).
async fn caller(relay: &Relay, headers: &HeaderMap, id: Uuid) -> Result<(String, bool), ApiError> {
    if let Some(proof) = headers.get(HOP_HEADER) {
        let key = relay.tickets.hop_key().await.map_err(|err| {
            tracing::error!(error = %err, "hop key unavailable");
            ApiError::unavailable("Session routing is unavailable")
        })?;
        return proof
            .to_str()
            .ok()
            .and_then(|proof| hop::verify(&key, proof, Hop::Files(id)))
            .map(|owner| (owner, true))
            .ok_or_else(|| {
                tracing::warn!("file request refused: invalid relay hop proof");
                ApiError::new(ErrorCode::Forbidden, "Invalid relay hop")
            });
    }
    let token = token_from_headers(headers)?;
    let identity = relay.authenticator.verify(&token).await?;
    tracing::Span::current().record("user", identity.0.as_str());
    Ok((identity.0, false))
}

/// Where a request is served.
enum Reach {
    Here(Arc<Entry>),
    Forward { to: String, caller: String },
}

/// Find the terminal `raw` names for its owner: here, on another relay, or nowhere (404).
async fn reach(relay: &Relay, raw: &str, headers: &HeaderMap) -> Result<(Uuid, Reach), ApiError> {
    if relay.config.files_max_bytes == 0 {
        return Err(ApiError::new(
            ErrorCode::FilesDisabled,
            "File transfer is off on this server",
        ));
    }
    let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
    let (caller, forwarded) = caller(relay, headers, id).await?;
    if let Some(entry) = relay.files.get(id) {
        return if entry.owner == caller {
            Ok((id, Reach::Here(entry)))
        } else {
            tracing::warn!(session = %id, "file request refused: another user's terminal");
            Err(not_found())
        };
    }
    if forwarded {
        return Err(not_found());
    }
    match relay.tickets.find_session(id, relay.clock.now()).await {
        Ok(Some(route)) if route.owner == caller && route.relay != relay.advertise => Ok((
            id,
            Reach::Forward {
                to: route.relay,
                caller,
            },
        )),
        Ok(_) => Err(not_found()),
        Err(err) => {
            tracing::error!(error = %err, "session route lookup failed");
            Err(ApiError::unavailable("Session routing is unavailable"))
        }
    }
}

/// The terminal's SFTP channel; a broken one is forgotten so the next request reopens it.
async fn sftp(entry: &Entry) -> Result<Arc<Sftp>, ApiError> {
    entry.sftp().await.map_err(ApiError::from)
}

/// Map an SFTP failure, forgetting the channel if it broke.
async fn failed(entry: &Entry, err: SftpError) -> ApiError {
    if err.broken() {
        entry.reset().await;
    }
    ApiError::from(err)
}

/// Run a short operation under [`OPERATION_DEADLINE`].
async fn bounded<T>(
    entry: &Entry,
    work: impl Future<Output = Result<T, SftpError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(OPERATION_DEADLINE, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(failed(entry, err).await),
        Err(_) => Err(failed(entry, SftpError::Timeout).await),
    }
}

/// Record a change (mkdir, rename, delete) in the owner's audit log (and the organization's,
/// on one of its machines).
async fn audit_change(
    relay: &Relay,
    entry: &Entry,
    client: &AuditContext,
    details: serde_json::Value,
) {
    let owner = Identity(entry.owner.clone());
    let record = relay.machines.audit().record_in(
        &owner,
        entry.org.as_deref(),
        client,
        AuditKind::FileChanged,
        details,
    );
    if tokio::time::timeout(Duration::from_secs(5), record)
        .await
        .is_err()
    {
        tracing::error!("file change audit entry timed out");
    }
}

/// `GET /files/{session}/list?path=` (empty: the login directory).
pub async fn list(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    request: Request,
) -> Response {
    let (id, reach) = match reach(&relay, &session, request.headers()).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let entry = match reach {
        Reach::Here(entry) => entry,
        Reach::Forward { to, caller } => {
            return forward::run(&relay, request, &to, id, &caller).await;
        }
    };
    let path = match query.path.as_deref() {
        None | Some("") => ".".to_owned(),
        raw => match checked(raw, "path") {
            Ok(path) => path,
            Err(err) => return err.into_response(),
        },
    };
    let sftp = match sftp(&entry).await {
        Ok(sftp) => sftp,
        Err(err) => return err.into_response(),
    };
    let listing = bounded(&entry, async {
        let absolute = sftp.canonicalize(&path).await?;
        let (named, truncated) = sftp.list(&absolute, MAX_ENTRIES).await?;
        let mut entries: Vec<DirEntry> = named
            .into_iter()
            .map(|e| {
                let meta = e.attrs;
                let kind = if meta.is_dir() {
                    "dir"
                } else if meta.is_symlink() {
                    "link"
                } else if meta.is_regular() {
                    "file"
                } else {
                    "other"
                };
                DirEntry {
                    name: e.name,
                    kind,
                    size: meta.size.unwrap_or(0),
                    modified: meta.mtime,
                    mode: meta.permissions().to_string(),
                }
            })
            .collect();
        entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
        Ok(Listing {
            path: absolute,
            entries,
            truncated,
        })
    })
    .await;
    match listing {
        Ok(listing) => Reply::ok("Directory listed successfully", listing).into_response(),
        Err(err) => err.into_response(),
    }
}

/// `Content-Disposition` for `path`'s file name: an ASCII fallback and the exact UTF-8 name.
fn disposition(path: &str) -> HeaderValue {
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /files/{session}/download?path=`: the file as a streamed attachment.
pub async fn download(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    Client(client): Client,
    request: Request,
) -> Response {
    let (id, reach) = match reach(&relay, &session, request.headers()).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let entry = match reach {
        Reach::Here(entry) => entry,
        Reach::Forward { to, caller } => {
            return forward::run(&relay, request, &to, id, &caller).await;
        }
    };
    match start_download(&relay, id, entry, query.path.as_deref(), client).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start_download(
    relay: &Relay,
    id: Uuid,
    entry: Arc<Entry>,
    path: Option<&str>,
    client: AuditContext,
) -> Result<Response, ApiError> {
    let path = checked(path, "path")?;
    let sftp = sftp(&entry).await?;
    let meta = bounded(&entry, sftp.metadata(&path)).await?;
    if meta.is_dir() {
        return Err(ApiError::bad_request("`path` is a directory"));
    }
    let size = meta.size.unwrap_or(0);
    if size > relay.config.files_max_bytes {
        return Err(too_large(relay.config.files_max_bytes));
    }
    let permit = entry.transfer().ok_or_else(busy)?;
    let handle = bounded(&entry, sftp.open_read(&path)).await?;
    let ledger = Ledger {
        auditor: Arc::clone(relay.machines.audit()),
        client,
        entry: Arc::clone(&entry),
        session: id,
    };
    let chunks = transfer::download(sftp, handle, path.clone(), size, ledger, permit);
    let body = Body::from_stream(futures_util::stream::unfold(chunks, |mut chunks| async {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CONTENT_DISPOSITION, disposition(&path));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::FileTooLarge,
        format!("Files are limited to {limit} bytes on this server"),
    )
}

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::TransferLimitReached,
        format!(
            "This terminal already runs {} transfers; retry when one ends",
            registry::MAX_TRANSFERS_PER_TERMINAL
        ),
    )
    .with_retry_after(2)
}

/// `PUT /files/{session}/upload?path=&overwrite=`: the body, streamed into `path`.
pub async fn upload(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    Client(client): Client,
    request: Request,
) -> Response {
    let (id, reach) = match reach(&relay, &session, request.headers()).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let entry = match reach {
        Reach::Here(entry) => entry,
        Reach::Forward { to, caller } => {
            return forward::run(&relay, request, &to, id, &caller).await;
        }
    };
    match receive(&relay, id, entry, query, client, request).await {
        Ok(uploaded) => Reply::ok("File uploaded successfully", uploaded).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn receive(
    relay: &Relay,
    id: Uuid,
    entry: Arc<Entry>,
    query: FileQuery,
    client: AuditContext,
    request: Request,
) -> Result<transfer::Uploaded, ApiError> {
    let path = checked(query.path.as_deref(), "path")?;
    let limit = relay.config.files_max_bytes;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let overwrite = matches!(query.overwrite.as_deref(), Some("true" | "1"));
    let sftp = sftp(&entry).await?;
    if !overwrite {
        let exists = bounded(&entry, sftp.exists(&path)).await?;
        if exists {
            return Err(ApiError::new(
                ErrorCode::RemoteExists,
                "A file of that name exists; upload with overwrite=true to replace it",
            ));
        }
    }
    let permit = entry.transfer().ok_or_else(busy)?;
    let ledger = Ledger {
        auditor: Arc::clone(relay.machines.audit()),
        client,
        entry: Arc::clone(&entry),
        session: id,
    };
    let (chunks, done) = transfer::upload(Arc::clone(&sftp), path, overwrite, ledger, permit);
    let mut body = request.into_body().into_data_stream();
    let mut received = 0u64;
    // Whether the task took every chunk; it stops taking them only when it failed, and then
    // its own error (below) is the answer.
    let mut taken = true;
    // Dropping `chunks` without `Chunk::End` (any early return, or this future being dropped
    // because the browser went away) makes the task delete the `.part` file.
    loop {
        let next = tokio::time::timeout(STALL, body.next())
            .await
            .map_err(|_| ApiError::bad_request("The upload stalled"))?;
        match next {
            None => break,
            Some(Ok(bytes)) => {
                received += bytes.len() as u64;
                if received > limit || announced.is_some_and(|n| received > n) {
                    return Err(too_large(limit));
                }
                if chunks.send(Chunk::Data(bytes)).await.is_err() {
                    taken = false;
                    break;
                }
            }
            Some(Err(_)) => return Err(ApiError::bad_request("The upload was interrupted")),
        }
    }
    if taken {
        if announced.is_some_and(|n| received != n) {
            return Err(ApiError::bad_request("The upload ended early"));
        }
        let _ = chunks.send(Chunk::End).await;
    }
    drop(chunks);
    match done.await {
        Ok(Ok(uploaded)) => Ok(uploaded),
        Ok(Err(err)) => Err(failed(&entry, err).await),
        Err(_) => Err(ApiError::internal()),
    }
}

/// `POST /files/{session}/mkdir?path=`.
pub async fn mkdir(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    Client(client): Client,
    request: Request,
) -> Response {
    change(&relay, &session, request, client, Change::Mkdir(query)).await
}

/// `POST /files/{session}/rename?from=&to=`.
pub async fn rename(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    Client(client): Client,
    request: Request,
) -> Response {
    change(&relay, &session, request, client, Change::Rename(query)).await
}

/// `DELETE /files/{session}?path=`: a file, or an empty directory.
pub async fn remove(
    State(RelayState(relay)): State<RelayState>,
    Path(session): Path<String>,
    Query(query): Query<FileQuery>,
    Client(client): Client,
    request: Request,
) -> Response {
    change(&relay, &session, request, client, Change::Delete(query)).await
}

enum Change {
    Mkdir(FileQuery),
    Rename(FileQuery),
    Delete(FileQuery),
}

async fn change(
    relay: &Relay,
    session: &str,
    request: Request,
    client: AuditContext,
    change: Change,
) -> Response {
    let (id, reach) = match reach(relay, session, request.headers()).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let entry = match reach {
        Reach::Here(entry) => entry,
        Reach::Forward { to, caller } => {
            return forward::run(relay, request, &to, id, &caller).await;
        }
    };
    match apply(&entry, change).await {
        Ok((message, path, details)) => {
            let mut details = details;
            if let Some(object) = details.as_object_mut() {
                object.insert("session".into(), id.to_string().into());
                object.insert("machine_id".into(), entry.machine_id.into());
            }
            audit_change(relay, &entry, &client, details).await;
            Reply::ok(message, Changed { path }).into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn apply(
    entry: &Entry,
    change: Change,
) -> Result<(&'static str, String, serde_json::Value), ApiError> {
    let sftp = sftp(entry).await?;
    match change {
        Change::Mkdir(query) => {
            let path = checked(query.path.as_deref(), "path")?;
            bounded(entry, sftp.create_dir(&path)).await?;
            let details = serde_json::json!({ "action": "mkdir", "path": audit_path(&path) });
            Ok(("Directory created successfully", path, details))
        }
        Change::Rename(query) => {
            let from = checked(query.from.as_deref(), "from")?;
            let to = checked(query.to.as_deref(), "to")?;
            bounded(entry, sftp.rename(&from, &to)).await?;
            let details = serde_json::json!({
                "action": "rename",
                "path": audit_path(&from),
                "to": audit_path(&to),
            });
            Ok(("Renamed successfully", to, details))
        }
        Change::Delete(query) => {
            let path = checked(query.path.as_deref(), "path")?;
            bounded(entry, async {
                let meta = sftp.symlink_metadata(&path).await?;
                if meta.is_dir() {
                    sftp.remove_dir(&path).await
                } else {
                    sftp.remove_file(&path).await
                }
            })
            .await?;
            let details = serde_json::json!({ "action": "delete", "path": audit_path(&path) });
            Ok(("Deleted successfully", path, details))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_keep_their_end_in_the_audit_log() {
        assert_eq!(audit_path("a/b.txt"), "a/b.txt");
        let long = format!("{}/ü-name.bin", "d".repeat(4000));
        let kept = audit_path(&long);
        assert!(
            kept.starts_with('…') && kept.ends_with("/ü-name.bin"),
            "{kept}"
        );
        assert!(kept.len() <= AUDIT_PATH_BYTES + 3);
    }

    #[test]
    fn the_download_name_is_safe_in_a_header() {
        let value = disposition("dir/r\u{e9}sum\u{e9} \"x\";.pdf");
        let text = value.to_str().unwrap();
        assert!(
            text.starts_with("attachment; filename=\"r_sum_ _x__.pdf\""),
            "{text}"
        );
        assert!(
            text.ends_with("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22%3B.pdf"),
            "{text}"
        );
    }
}
