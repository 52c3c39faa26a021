//! `GET /api/v1/audit`, `/audit/export` and `/audit/verify`: the caller's own audit log (see
//! `domain::audit` and docs/audit.md). Only the caller's chain is ever read: the owner comes
//! from the session, never from the request.
//!
//! Every input is bounded: `limit` is 1..=200 (default 50), cursors are sequence numbers. The
//! export is bounded too (at most [`EXPORT_LIMIT`] entries per request, continued with
//! `?after=`): a Lambda answer is buffered and capped at 6 MB, so a stream would not help there.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::audit::{AuditEntry, DEFAULT_PAGE, MAX_PAGE, Verification};
use edge::extract::Caller;
use edge::{ApiError, Reply};
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Entries one export answer holds (about 2.5 MB of JSON lines at the bounded entry size).
pub const EXPORT_LIMIT: usize = 5_000;
/// Set on an export answer that stopped at [`EXPORT_LIMIT`]: the `after` to ask for next.
pub static NEXT_AFTER: HeaderName = HeaderName::from_static("x-audit-next-after");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    after: Option<u64>,
}

/// One page of the caller's entries, newest first.
#[derive(Serialize)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<u64>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|_| ApiError::bad_request("Invalid query: limit, cursor and after are numbers"))
}

pub async fn list(
    State(state): State<AppState>,
    Caller(owner): Caller,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Reply<AuditPage>, ApiError> {
    let page = query(page)?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let entries = state
        .machines
        .audit()
        .page(&owner, page.cursor, limit)
        .await?;
    let next_cursor = match entries.last() {
        Some(last) if entries.len() == limit && last.seq > 1 => Some(last.seq),
        _ => None,
    };
    let size_hint = 128 + entries.len() * 512;
    Ok(Reply::ok(
        "Audit log fetched successfully",
        AuditPage {
            entries,
            next_cursor,
        },
    )
    .with_size_hint(size_hint))
}

pub async fn verify(
    State(state): State<AppState>,
    Caller(owner): Caller,
) -> Result<Reply<Verification>, ApiError> {
    let verification = state.machines.audit().verify(&owner).await?;
    if !verification.ok {
        tracing::warn!(
            broken_seq = verification.broken_seq,
            reason = verification.reason,
            "audit chain does not verify"
        );
    }
    Ok(Reply::ok("Audit log verified", verification))
}

/// JSON lines, oldest first, from `after` (exclusive): the entries as the list shows them.
pub async fn export(
    State(state): State<AppState>,
    Caller(owner): Caller,
    after: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut after = query(after)?.after.unwrap_or(0);
    let audit = state.machines.audit();
    let mut body = Vec::new();
    let mut written = 0;
    let mut more = false;
    while written < EXPORT_LIMIT {
        let chunk = audit.chunk(&owner, after).await?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        for entry in &chunk {
            serde_json::to_writer(&mut body, entry)
                .map_err(|_| ApiError::from(domain::DomainError::Internal("audit export")))?;
            body.push(b'\n');
        }
        written += chunk.len();
        more = chunk.len() == domain::audit::CHAIN_CHUNK;
    }
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        body,
    )
        .into_response();
    if more && written >= EXPORT_LIMIT {
        if let Ok(value) = HeaderValue::from_str(&after.to_string()) {
            response.headers_mut().insert(NEXT_AFTER.clone(), value);
        }
    }
    Ok(response)
}
