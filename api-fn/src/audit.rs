//! `GET /api/v1/audit`, `/audit/export` and `/audit/verify`: the caller's own audit log (see
//! `domain::audit` and docs/audit.md). Only the caller's chain is ever read: the owner comes
//! from the session, never from the request.
//!
//! `GET /api/v1/orgs/{slug}/audit`, `/audit/export` and `/audit/verify`: an organization's log,
//! the same answers, for its owners, admins and auditors. Whose chain is read is decided by
//! the domain from the caller's role (`Machines::org_audit_owner`) before the query is looked
//! at: a non-member gets the 404 of an organization, a plain member 403.
//!
//! Every input is bounded: `limit` is 1..=200 (default 50), cursors are sequence numbers. The
//! export is bounded too (at most [`EXPORT_LIMIT`] entries per request, continued with
//! `?after=`): a Lambda answer is buffered and capped at 6 MB, so a stream would not help there.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::Identity;
use domain::audit::{AuditEntry, DEFAULT_PAGE, MAX_PAGE, Verification};
use edge::extract::{Caller, OrgPath};
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
    page_of(&state, &owner, query(page)?).await
}

pub async fn verify(
    State(state): State<AppState>,
    Caller(owner): Caller,
) -> Result<Reply<Verification>, ApiError> {
    verify_chain(&state, &owner).await
}

pub async fn export(
    State(state): State<AppState>,
    Caller(owner): Caller,
    after: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    export_chain(&state, &owner, query(after)?).await
}

/// `GET /api/v1/orgs/{slug}/audit`: a page of the organization's log.
pub async fn list_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Reply<AuditPage>, ApiError> {
    let owner = state.machines.org_audit_owner(&caller, &path.slug).await?;
    page_of(&state, &owner, query(page)?).await
}

/// `GET /api/v1/orgs/{slug}/audit/verify`.
pub async fn verify_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
) -> Result<Reply<Verification>, ApiError> {
    let owner = state.machines.org_audit_owner(&caller, &path.slug).await?;
    verify_chain(&state, &owner).await
}

/// `GET /api/v1/orgs/{slug}/audit/export`.
pub async fn export_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
    after: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let owner = state.machines.org_audit_owner(&caller, &path.slug).await?;
    export_chain(&state, &owner, query(after)?).await
}

/// One page of `owner`'s entries, newest first.
async fn page_of(
    state: &AppState,
    owner: &Identity,
    page: PageQuery,
) -> Result<Reply<AuditPage>, ApiError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let entries = state
        .machines
        .audit()
        .page(owner, page.cursor, limit)
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

async fn verify_chain(state: &AppState, owner: &Identity) -> Result<Reply<Verification>, ApiError> {
    let verification = state.machines.audit().verify(owner).await?;
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
async fn export_chain(
    state: &AppState,
    owner: &Identity,
    export: ExportQuery,
) -> Result<Response, ApiError> {
    let mut after = export.after.unwrap_or(0);
    let audit = state.machines.audit();
    let mut body = Vec::new();
    let mut written = 0;
    let mut more = false;
    while written < EXPORT_LIMIT {
        let chunk = audit.chunk(owner, after).await?;
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
