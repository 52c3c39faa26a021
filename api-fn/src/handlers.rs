//! Route handlers: extract, call the domain, wrap in the envelope. Nothing else.

use axum::extract::State;
use secrecy::SecretString;
use serde_json::Value;
use shared::auth::Caller;
use shared::machine::{MachineView, NewMachine};
use shared::{ApiError, Reply};

use crate::AppState;
use crate::extract::{JsonBody, MachineId};

type Answer<T> = Result<Reply<T>, ApiError>;

/// A typical machine in JSON is 170-250 bytes; sizing the list body from it saves the
/// buffer's doubling copies on the API's largest answer.
const MACHINE_JSON_BYTES: usize = 256;

pub async fn create_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    JsonBody(body): JsonBody,
) -> Answer<MachineView> {
    let new = NewMachine::from_json(&body)?;
    let machine = state.machines.create(&owner, new).await?;
    Ok(Reply::created("Machine created successfully", machine))
}

pub async fn list_machines(
    State(state): State<AppState>,
    Caller(owner): Caller,
) -> Answer<Vec<MachineView>> {
    let machines = state.machines.list(&owner).await?;
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

pub async fn delete_machine(
    State(state): State<AppState>,
    Caller(owner): Caller,
    MachineId(id): MachineId,
) -> Answer<()> {
    state.machines.delete(&owner, id).await?;
    Ok(Reply::ok("Machine deleted successfully", ()))
}

/// `{"password": new, "current_password": old}`; the latter only when changing.
pub async fn set_master_password(
    State(state): State<AppState>,
    Caller(owner): Caller,
    JsonBody(body): JsonBody,
) -> Answer<Value> {
    let Value::Object(fields) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "password" | "current_password"))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown field '{}'",
            unknown.chars().take(64).collect::<String>()
        )));
    }
    let secret = |name: &str| -> Result<Option<SecretString>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(SecretString::from(s.clone()))),
            Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
        }
    };
    let password =
        secret("password")?.ok_or_else(|| ApiError::bad_request("password is required"))?;
    let current = secret("current_password")?;
    let outcome = state
        .machines
        .set_master_password(&owner, password, current)
        .await?;
    let message = if outcome.changed {
        "Master password changed successfully"
    } else {
        "Master password set successfully"
    };
    Ok(Reply::ok(
        message,
        serde_json::json!({ "resealed": outcome.resealed }),
    ))
}

pub async fn health() -> Reply<Value> {
    Reply::ok("OK", serde_json::json!({ "service": "api-fn" }))
}
