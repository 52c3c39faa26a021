//! `GET /api/v1/recordings`, `GET|DELETE /api/v1/recording/{id}`: the caller's own session
//! recordings, and `GET /api/v1/orgs/{slug}/recordings` with the fetch of those: the
//! recordings of sessions on an organization's machines, which belong to the organization and
//! are read by its owners, admins and auditors (see `domain::recording`, docs/recording.md and
//! docs/organizations.md). Who may read is decided from the session, never from the request
//! (`Machines::recording_owner`); another user's recording, or an organization's for a plain
//! member or an outsider, answers 404 exactly like a missing one (the storage is addressed by
//! owner, so it *is* missing for them). An id that is not a lower-case UUID is a 404 too: it
//! cannot name a recording.
//!
//! The fetch answers the decrypted asciicast v2 text itself (`application/x-asciicast`), not
//! an envelope, so a player can load the URL directly; errors are envelopes as everywhere.
//! A recording that fails verification (its metadata or a chunk tampered with, reordered,
//! missing, or no final chunk) is refused with `recording_damaged` and the chunk named.
//!
//! Without `from_chunk` the fetch is all or nothing, up to 5 MiB (a Lambda answer is capped at
//! 6 MB). With `?from_chunk=N` it answers a window of whole chunks from N, at most 5 MiB, and
//! the chunk the next window starts at in the `X-Recording-Next-Chunk` header (absent on the
//! window that ends the recording): the windows from 0 concatenated are the recording.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::recording::{RecordingId, RecordingView, Recordings};
use domain::service::RecordingUse;
use edge::extract::{Caller, OrgPath};
use edge::{ApiError, ErrorCode, Reply};
use std::sync::Arc;

use crate::AppState;

fn service(state: &AppState) -> Result<&Arc<Recordings>, ApiError> {
    state.machines.recordings().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "Recording is not enabled on this server",
        )
    })
}

fn id(raw: &str) -> Result<RecordingId, ApiError> {
    RecordingId::parse(raw).map_err(ApiError::from)
}

pub async fn list(
    State(state): State<AppState>,
    Caller(owner): Caller,
) -> Result<Reply<Vec<RecordingView>>, ApiError> {
    let recordings = service(&state)?.list(&owner).await?;
    let size_hint = 64 + recordings.len() * 256;
    Ok(Reply::ok("Recordings fetched successfully", recordings).with_size_hint(size_hint))
}

/// `GET /api/v1/orgs/{slug}/recordings`: the organization's recordings, for its owners,
/// admins and auditors.
pub async fn list_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
) -> Result<Reply<Vec<RecordingView>>, ApiError> {
    service(&state)?;
    let recordings = state.machines.org_recordings(&caller, &path.slug).await?;
    let size_hint = 64 + recordings.len() * 320;
    Ok(Reply::ok("Recordings fetched successfully", recordings).with_size_hint(size_hint))
}

/// The header naming where the next window starts.
pub const NEXT_CHUNK_HEADER: &str = "x-recording-next-chunk";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    from_chunk: Option<u64>,
}

fn asciicast(cast: Vec<u8>, next: Option<u64>) -> Response {
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-asciicast"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        cast,
    )
        .into_response();
    if let Some(next) = next {
        response
            .headers_mut()
            .insert(NEXT_CHUNK_HEADER, HeaderValue::from(next));
    }
    response
}

pub async fn fetch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
    query: Result<Query<FetchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = id(&raw)?;
    let Query(query) = query.map_err(|_| {
        ApiError::bad_request("Invalid query: from_chunk is a chunk number (0 or more)")
    })?;
    let recordings = service(&state)?;
    let owner = state
        .machines
        .recording_owner(&caller, &id, RecordingUse::Read)
        .await?;
    match query.from_chunk {
        None => Ok(asciicast(recordings.fetch(&owner, &id).await?, None)),
        Some(from) => {
            let window = recordings.fetch_window(&owner, &id, from).await?;
            Ok(asciicast(window.cast, window.next))
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Result<Reply<()>, ApiError> {
    let id = id(&raw)?;
    let recordings = service(&state)?;
    let owner = state
        .machines
        .recording_owner(&caller, &id, RecordingUse::Delete)
        .await?;
    recordings.delete(&owner, &id).await?;
    Ok(Reply::ok("Recording deleted successfully", ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_id_is_not_found() {
        let err = id("../../x").err().map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::RecordingNotFound));
    }
}
