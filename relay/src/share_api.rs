//! An owner's live shares over HTTP: `GET /api/v1/shares` lists them, `DELETE
//! /api/v1/share/{id}` revokes one at once, for an owner whose terminal is parked (the tab
//! closed, within the resume grace) or who is on another device. The terminal's own socket
//! remains the usual way (`share_revoke`); both end the share the same way and audit
//! `share_revoked`.
//!
//! Why it is shaped so: a share lives on the relay holding its terminal ([`crate::ws::share`]),
//! but the request lands on any replica. The listing needs no relay at all: every live share
//! is listed under its owner in the ticket table with its route ([`TicketTable::list_shares`]).
//! A revoke is acted on where the share lives: here if this relay holds it; otherwise the
//! share's route names the owner relay and the request is forwarded there as the same `DELETE`,
//! over plain HTTP with a hop proof ([`Hop::Revoke`]) naming the owner this relay verified, the
//! way terminal sockets are forwarded. A forwarded request is never forwarded again. One
//! request, one answer: the caller learns whether the share ended, and its viewers are closed
//! (4016) by the time the answer arrives. Redis pub/sub would also reach the owner relay, but
//! gives no answer, and needs a subscriber connection per relay that has to be kept alive.
//!
//! Another user's share, an ended one and an unknown id all answer 404 `share_not_found`.
//!
//! [`TicketTable::list_shares`]: crate::tickets::TicketTable::list_shares

use std::time::Duration;

use axum::extract::{Path, State};
use domain::Identity;
use edge::auth::token_from_headers;
use edge::extract::Caller;
use edge::{ApiError, ErrorCode, Reply};
use http::HeaderMap;
use uuid::Uuid;

use crate::tickets::ShareListing;
use crate::ws::hop::{self, Hop};
use crate::ws::protocol::HOP_HEADER;
use crate::ws::share::Revoked;
use crate::{Relay, RelayState};

/// How long a forwarded revoke may take on the owner relay.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);

/// Success messages.
const LISTED: &str = "Shares retrieved";
const REVOKED: &str = "Share revoked";

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ShareNotFound, "Share not found")
}

/// `GET /api/v1/shares`: the caller's live shares, on every relay.
pub async fn list(
    State(RelayState(relay)): State<RelayState>,
    Caller(owner): Caller,
) -> Result<Reply<Vec<ShareListing>>, ApiError> {
    let mut shares = relay
        .tickets
        .list_shares(&owner.0, relay.clock.now())
        .await?;
    shares.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
    Ok(Reply::ok(LISTED, shares))
}

/// `DELETE /api/v1/share/{id}`: end the caller's share `id` and close its viewers.
pub async fn revoke(
    State(RelayState(relay)): State<RelayState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Reply<()>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let (owner, forwarded) = match headers.get(HOP_HEADER) {
        Some(proof) => (verified_hop(&relay, proof, id).await?, true),
        None => {
            let token = token_from_headers(&headers)?;
            (relay.authenticator.verify(&token).await?, false)
        }
    };
    tracing::Span::current().record("user", owner.0.as_str());
    match relay.shares.revoke(id, &owner.0).await {
        Revoked::Done => return Ok(Reply::ok(REVOKED, ())),
        Revoked::Busy => {
            return Err(ApiError::unavailable(
                "The shared terminal did not answer; try again shortly",
            ));
        }
        Revoked::NotHere if forwarded => return Err(not_found()),
        Revoked::NotHere => {}
    }
    let route = relay
        .tickets
        .find_share(id, relay.clock.now())
        .await?
        .filter(|route| route.owner == owner.0 && route.relay != relay.advertise)
        .ok_or_else(not_found)?;
    forward(&relay, &route.relay, id, &owner).await
}

/// The owner a valid hop proof for revoking `id` names; 403 otherwise (the header is never a
/// way in from outside).
async fn verified_hop(
    relay: &Relay,
    proof: &http::HeaderValue,
    id: Uuid,
) -> Result<Identity, ApiError> {
    let forbidden = || ApiError::new(ErrorCode::Forbidden, "Invalid relay hop");
    let proof = proof.to_str().map_err(|_| forbidden())?;
    let key = relay.tickets.hop_key().await?;
    match hop::verify(&key, proof, Hop::Revoke(id)) {
        Some(owner) if !owner.is_empty() => Ok(Identity(owner)),
        _ => {
            tracing::warn!("share revoke refused: invalid relay hop proof");
            Err(forbidden())
        }
    }
}

/// The same `DELETE` on the relay holding the share, as `owner`; its answer, mapped.
async fn forward(
    relay: &Relay,
    to: &str,
    id: Uuid,
    owner: &Identity,
) -> Result<Reply<()>, ApiError> {
    let unreachable = || ApiError::unavailable("The relay holding the share is unreachable");
    if !to.starts_with("http://") {
        tracing::error!(to = %to, "cannot forward: only http:// relay addresses are supported");
        return Err(unreachable());
    }
    let key = relay.tickets.hop_key().await?;
    let proof = hop::sign(&key, Hop::Revoke(id), &owner.0).ok_or_else(unreachable)?;
    tracing::info!(to = %to, share = %id, "forwarding a share revoke to the relay holding it");
    let answer = relay
        .http
        .delete(format!("{to}/api/v1/share/{id}"))
        .header(HOP_HEADER, proof)
        .timeout(FORWARD_TIMEOUT)
        .send()
        .await;
    match answer.map(|answer| answer.status()) {
        Ok(status) if status.is_success() => Ok(Reply::ok(REVOKED, ())),
        Ok(http::StatusCode::NOT_FOUND) => Err(not_found()),
        Ok(status) => {
            tracing::warn!(%status, "the relay holding the share refused the revoke");
            Err(unreachable())
        }
        Err(err) => {
            tracing::warn!(error = %err, "share revoke could not be forwarded");
            Err(unreachable())
        }
    }
}
