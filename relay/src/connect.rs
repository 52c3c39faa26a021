//! `connect` and the host-key pin endpoint: authenticate, open the vault, open SSH, pin the
//! host key, register the ticket, answer with the uuid.
//!
//! Order matters and is the security argument: the master password is checked by the vault
//! (an AEAD tag, rate-limited per user) before the key provider is called and long before any
//! TCP connection to the target; the host key is verified inside the SSH handshake, before any
//! credential is sent; the ticket is registered only once the shell is running, and if that
//! registration fails (Redis down) the SSH connection is closed and the answer is 503.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use http::request::Parts;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::auth::{Caller, Identity};
use shared::machine::{MachineView, is_valid_fingerprint};
use shared::routes::Route;
use shared::{ApiError, Reply};
use uuid::Uuid;

use crate::sessions::Session;
use crate::ssh::{self, Limits, Target};
use crate::{Relay, RelayState};

/// The PTY size a session starts with; the browser sends its real size on open.
const INITIAL_PTY: (u32, u32) = (80, 24);

/// `{id}` as a machine id: decimal digits only.
pub struct MachineId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for MachineId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::bad_request("Machine id must be a positive integer");
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        raw.parse().map(MachineId).map_err(|_| invalid())
    }
}

fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Request body is required (JSON)"));
    }
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("Request body is not valid JSON: {err}")))
}

fn not_draining(relay: &Relay) -> Result<(), ApiError> {
    if relay.draining() {
        return Err(ApiError::Unavailable(Cow::Borrowed(
            "This relay is shutting down; retry to reach another relay",
        )));
    }
    Ok(())
}

pub async fn connect(
    State(RelayState(relay)): State<RelayState>,
    Caller(owner): Caller,
    MachineId(id): MachineId,
    body: Bytes,
) -> Result<Reply<String>, ApiError> {
    not_draining(&relay)?;
    let mut body = json_body(&body)?;
    // Moved out of the parsed JSON, not copied, so the `SecretString` (zeroized on drop) is the
    // only copy of the master password this handler owns. Not covered: the request body bytes
    // (hyper's buffer, which we do not own) and serde_json's scratch buffer for strings with
    // escapes.
    let password = match body.get_mut("password") {
        Some(Value::String(p)) if !p.is_empty() => SecretString::from(std::mem::take(p)),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::bad_request(
                "password (the master password) is required",
            ));
        }
        Some(_) => return Err(ApiError::bad_request("password must be a string")),
    };
    let (machine, secrets) = relay.machines.open(&owner, id, password).await?;
    let slot = relay
        .sessions
        .reserve()
        .ok_or(ApiError::Unavailable(Cow::Borrowed(
            "This relay is at its session limit; try again shortly",
        )))?;
    let opened = ssh::open(
        Target {
            host: &machine.hostname,
            port: machine.port,
            username: &machine.username,
            pin: machine.host_key_fingerprint.as_deref(),
        },
        secrets,
        &relay.config.target_policy,
        &Limits {
            connect_timeout: relay.config.ssh_connect_timeout,
            handshake_timeout: relay.config.ssh_handshake_timeout,
        },
        INITIAL_PTY,
    )
    .await?;
    if machine.host_key_fingerprint.is_none() {
        if let Err(err) = pin_first_key(&relay, &owner, id, &opened.fingerprint).await {
            ssh::disconnect(&opened.handle).await;
            return Err(err);
        }
    }
    let ticket = Uuid::new_v4();
    let bucket = relay.clock.now();
    let route = Route {
        relay: relay.advertise.clone(),
        owner: owner.0.clone(),
    };
    if let Err(err) = relay.routes.register(ticket, &route, bucket).await {
        ssh::disconnect(&opened.handle).await;
        return Err(err.into());
    }
    relay.sessions.park(
        ticket,
        Session {
            owner: owner.0,
            machine_id: id,
            handle: opened.handle,
            channel: opened.channel,
            slot,
        },
        bucket.remaining(),
    );
    tracing::info!(machine_id = id, "ssh session ready; ticket issued");
    Ok(Reply::ok(
        "Connected to machine successfully",
        ticket.to_string(),
    ))
}

/// Trust on first use: store the key seen on the first successful login. A concurrent connect
/// may have pinned first; then its pin must be the key we saw.
async fn pin_first_key(
    relay: &Relay,
    owner: &Identity,
    id: u64,
    fingerprint: &str,
) -> Result<(), ApiError> {
    match relay
        .machines
        .set_host_key(owner, id, None, Some(fingerprint))
        .await
    {
        Ok(()) => {
            tracing::info!(
                machine_id = id,
                fingerprint,
                "host key pinned on first connect"
            );
            Ok(())
        }
        Err(ApiError::Conflict(_)) => {
            let current = relay.machines.load(owner, id).await?.host_key_fingerprint;
            match current {
                Some(pin) if pin == fingerprint => Ok(()),
                Some(pin) => Err(ApiError::HostKeyChanged {
                    expected: pin,
                    presented: fingerprint.to_owned(),
                }),
                None => Err(ApiError::Conflict(Cow::Borrowed(
                    "The host key pin was changed concurrently; retry",
                ))),
            }
        }
        Err(other) => Err(other),
    }
}

/// `PUT /api/v1/machine/{id}/host-key {"fingerprint": "SHA256:…" | null}`: pre-set, re-pin
/// after a legitimate key rotation, or clear (the next connect pins again).
pub async fn set_host_key(
    State(RelayState(relay)): State<RelayState>,
    Caller(owner): Caller,
    MachineId(id): MachineId,
    body: Bytes,
) -> Result<Reply<MachineView>, ApiError> {
    let body = json_body(&body)?;
    let fingerprint = match body.get("fingerprint") {
        Some(Value::Null) => None,
        Some(Value::String(fp)) if is_valid_fingerprint(fp.trim()) => Some(fp.trim().to_owned()),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request(
                "fingerprint must look like SHA256:<43 base64 characters> (as ssh-keygen -lf prints it)",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "fingerprint is required (a SHA256:… string, or null to clear the pin)",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "fingerprint must be a string or null",
            ));
        }
    };
    let machine = relay.machines.load(&owner, id).await?;
    relay
        .machines
        .set_host_key(
            &owner,
            id,
            machine.host_key_fingerprint.as_deref(),
            fingerprint.as_deref(),
        )
        .await?;
    let view = relay.machines.get(&owner, id).await?;
    tracing::info!(
        machine_id = id,
        pinned = fingerprint.is_some(),
        "host key pin set"
    );
    Ok(Reply::ok("Host key pin updated", view))
}

pub async fn health(State(RelayState(relay)): State<RelayState>) -> Reply<Value> {
    let relay: Arc<Relay> = relay;
    Reply::ok(
        "OK",
        json!({
            "sessions": relay.sessions.live(),
            "draining": relay.draining(),
        }),
    )
}
