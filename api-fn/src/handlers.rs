//! Route handlers: extract, call the domain, wrap in the envelope. Nothing else.
//! Handlers that change an account pass where the request came from ([`Client`]) to the
//! domain, which records the change in the audit log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use domain::DomainError;
use domain::machine::MachineView;
use domain::orgs::Slug;
use domain::requests::{MachinePatch, MasterPasswordChange, NewMachine};
use domain::service::MasterPasswordOutcome;
use edge::extract::{Caller, Client, JsonBody, MachineId};
use edge::{ApiError, Reply};
use serde::{Deserialize, Serialize};

use crate::AppState;

pub(crate) type Answer<T> = Result<Reply<T>, ApiError>;

/// A typical machine in JSON is 170-250 bytes; sizing the list body from it saves the
/// buffer's doubling copies on the API's largest answer.
const MACHINE_JSON_BYTES: usize = 256;

pub async fn create_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Client(client): Client,
    JsonBody(new): JsonBody<NewMachine>,
) -> Answer<MachineView> {
    let machine = state.machines.create(&owner, &client, new).await?;
    // 200 "OK", not 201 "Created": the seed answers so, and clients written against it check
    // `status == "OK"`.
    Ok(Reply::ok("Machine created successfully", machine))
}

/// `GET /api/v1/machines[?organization=slug]`.
#[derive(Deserialize)]
pub struct ListQuery {
    organization: Option<String>,
}

/// The caller's machines and their organizations'; `?organization=` only that one's (a slug
/// that cannot be one answers the 404 of an organization the caller does not belong to).
pub async fn list_machines(
    State(state): State<AppState>,
    Caller(owner): Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Answer<Vec<MachineView>> {
    let Query(query) =
        query.map_err(|_| ApiError::bad_request("Invalid query: organization is a slug"))?;
    let organization = match query.organization.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Slug::parse(raw).map_err(|_| DomainError::OrgNotFound)?),
    };
    let machines = state.machines.list(&owner, organization.as_ref()).await?;
    let size_hint = 64 + machines.len() * MACHINE_JSON_BYTES;
    Ok(Reply::ok("Machines fetched successfully", machines).with_size_hint(size_hint))
}

pub async fn get_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    MachineId(id): MachineId,
) -> Answer<MachineView> {
    let machine = state.machines.get(&owner, id).await?;
    Ok(Reply::ok("Machine fetched successfully", machine))
}

/// `PATCH /api/v1/machine/{id}`: change some fields (see `Machines::update`).
pub async fn update_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Client(client): Client,
    MachineId(id): MachineId,
    JsonBody(patch): JsonBody<MachinePatch>,
) -> Answer<MachineView> {
    let machine = state.machines.update(&owner, &client, id, patch).await?;
    Ok(Reply::ok("Machine updated successfully", machine))
}

pub async fn delete_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Client(client): Client,
    MachineId(id): MachineId,
) -> Answer<()> {
    state.machines.delete(&owner, &client, id).await?;
    Ok(Reply::ok("Machine deleted successfully", ()))
}

/// `PUT /api/v1/master-password`: set it, or change it (re-sealing every machine).
pub async fn set_master_password(
    State(state): State<AppState>,
    Caller(owner): Caller,
    Client(client): Client,
    JsonBody(change): JsonBody<MasterPasswordChange>,
) -> Answer<MasterPasswordOutcome> {
    let outcome = state
        .machines
        .set_master_password(&owner, &client, change)
        .await?;
    let message = if outcome.changed {
        "Master password changed successfully"
    } else {
        "Master password set successfully"
    };
    Ok(Reply::ok(message, outcome))
}

/// Which service answered (the local binary serves the API's health).
#[derive(Serialize)]
pub struct Health {
    service: &'static str,
}

pub async fn health() -> Reply<Health> {
    Reply::ok("OK", Health { service: "api-fn" })
}

/// `GET /api/v1/openapi.json`: the product's contract (the `openapi` crate), unauthenticated,
/// served as built: it is not an envelope, since it describes the envelopes.
pub async fn openapi_document() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi::json(),
    )
}
