//! `/api/v1/orgs…` and `/api/v1/invitations…`: organizations, their members and invitations
//! (see `domain::orgs` and docs/organizations.md). Thin: each handler names the caller, the
//! path and the validated body, calls the domain and wraps its answer in the envelope.

use std::sync::Arc;

use axum::extract::State;
use domain::orgs::{InvitationView, OrgDetails, OrgSummary, Organizations};
use domain::requests::{NewOrg, OrgInvite, OrgKeyAction, RoleUpdate};
use domain::service::{OrgKeyRotation, OrgKeyStatus};
use edge::extract::{Caller, Client, JsonBody, OptionalJsonBody, OrgPath};
use edge::{ApiError, ErrorCode, Reply};

use crate::AppState;
use crate::handlers::Answer;

fn service(state: &AppState) -> Result<&Arc<Organizations>, ApiError> {
    state.machines.orgs().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "Organizations are not enabled on this server",
        )
    })
}

/// The member or email a member/invitation route names (the router guarantees one).
fn person(path: &OrgPath) -> Result<&str, ApiError> {
    path.person
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("The route names no member"))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    JsonBody(new): JsonBody<NewOrg>,
) -> Answer<OrgSummary> {
    let org = service(&state)?.create(&caller, &client, new).await?;
    Ok(Reply::ok("Organization created successfully", org))
}

pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Answer<Vec<OrgSummary>> {
    let orgs = service(&state)?.list(&caller).await?;
    Ok(Reply::ok("Organizations fetched successfully", orgs))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
) -> Answer<OrgDetails> {
    let org = service(&state)?.get(&caller, &path.slug).await?;
    Ok(Reply::ok("Organization fetched successfully", org))
}

pub async fn invite(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
    JsonBody(invite): JsonBody<OrgInvite>,
) -> Answer<InvitationView> {
    let invitation = service(&state)?
        .invite(&caller, &client, &path.slug, invite)
        .await?;
    Ok(Reply::ok("Invitation created successfully", invitation))
}

pub async fn withdraw(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
) -> Answer<()> {
    service(&state)?
        .cancel_invitation(&caller, &client, &path.slug, person(&path)?)
        .await?;
    Ok(Reply::ok("Invitation withdrawn successfully", ()))
}

pub async fn set_role(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
    JsonBody(update): JsonBody<RoleUpdate>,
) -> Answer<()> {
    service(&state)?
        .set_role(&caller, &client, &path.slug, person(&path)?, update.role)
        .await?;
    Ok(Reply::ok("Role changed successfully", ()))
}

/// Removing a member who holds the organization's key takes the caller's master password
/// (`{"password"}`) and rotates the key; leaving or removing anyone else takes no body.
pub async fn remove(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
    OptionalJsonBody(body): OptionalJsonBody<OrgKeyAction>,
) -> Answer<OrgKeyRotation> {
    service(&state)?;
    let rotation = state
        .machines
        .remove_org_member(
            &caller,
            &client,
            &path.slug,
            person(&path)?,
            body.map(|b| b.password),
        )
        .await?;
    Ok(Reply::ok("Member removed successfully", rotation))
}

/// `GET /api/v1/orgs/{slug}/key`: who holds the organization's key (owners and admins).
pub async fn key_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    path: OrgPath,
) -> Answer<OrgKeyStatus> {
    service(&state)?;
    let status = state.machines.org_key_status(&caller, &path.slug).await?;
    Ok(Reply::ok("Organization key fetched successfully", status))
}

/// `POST /api/v1/orgs/{slug}/members/{member}/key {"password"}`: grant the key to a member.
pub async fn grant_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
    JsonBody(body): JsonBody<OrgKeyAction>,
) -> Answer<OrgKeyStatus> {
    service(&state)?;
    let status = state
        .machines
        .grant_org_key(&caller, &client, &path.slug, person(&path)?, body.password)
        .await?;
    Ok(Reply::ok("Organization key granted successfully", status))
}

/// `POST /api/v1/orgs/{slug}/key/rotate {"password"}`: rotate the key now.
pub async fn rotate_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
    JsonBody(body): JsonBody<OrgKeyAction>,
) -> Answer<OrgKeyRotation> {
    service(&state)?;
    let rotation = state
        .machines
        .rotate_org_key(&caller, &client, &path.slug, body.password)
        .await?;
    Ok(Reply::ok("Organization key rotated successfully", rotation))
}

pub async fn my_invitations(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Answer<Vec<InvitationView>> {
    let invitations = service(&state)?.my_invitations(&caller).await?;
    Ok(Reply::ok("Invitations fetched successfully", invitations))
}

pub async fn accept(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    path: OrgPath,
) -> Answer<OrgSummary> {
    let org = service(&state)?
        .accept(&caller, &client, &path.slug)
        .await?;
    Ok(Reply::ok("Invitation accepted successfully", org))
}
