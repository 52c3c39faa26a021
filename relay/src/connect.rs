//! `connect` and the host-key pin endpoint: authenticate, open the vault, open SSH, pin the
//! host key, register the ticket, answer with the uuid.
//!
//! Order matters and is the security argument: capacity is taken first (the user's connects in
//! progress, then a session slot: cheap counters, so a burst is refused before any Argon2id
//! runs); the master password is checked by the vault (an AEAD tag, one attempt reserved from
//! the user's guess budget first) before the key provider is called and long before any TCP
//! connection to the target; the host key is verified inside the SSH handshake, before any
//! credential is sent; the ticket is registered only once the shell is running, and if that
//! registration fails (Redis down) the SSH connection is closed and the answer is 503.
//!
//! A persistent-shell machine runs its terminal inside a tmux session on the target (see
//! `ssh::persistent`): named by the request's `reattach` (a client naming its session up front,
//! or re-attaching after a relay was lost), else a fresh random name. `reattach` on a machine
//! without a persistent shell is refused (400) rather than ignored, so a client cannot believe
//! it re-attached when it got a new shell; that check follows the master password check, as
//! the machine's settings are only read with it.
//!
//! Every connect that reaches [`open_session`] is recorded in the caller's audit log by its
//! outcome (succeeded, wrong master password, rate-limited, refused with the error code), after
//! the answer is decided, and in the organization's log too when the machine is one of its
//! (`Auditor::record_in`); a first-use host key pin is recorded by the domain. Terminal session
//! events (started, resumed, ended) are for the WebSocket side to record through
//! `relay.machines.audit()`, the same [`domain::audit::Auditor`].

use axum::extract::State;
use domain::DomainError;
use domain::Identity;
use domain::audit::{AuditContext, AuditKind};
use domain::machine::MachineView;
use domain::requests::{ConnectRequest, HostKeyPin, SessionName};
use edge::extract::{Caller, Client, JsonBody, MachineId};
use edge::{ApiError, ErrorCode, Reply};
use serde::Serialize;
use uuid::Uuid;

use crate::sessions::{Full, Session};
use crate::ssh::{self, Limits, Target};
use crate::tickets::Route;
use crate::{Relay, RelayState};

/// The PTY size a session starts with; the browser sends its real size on open.
const INITIAL_PTY: (u32, u32) = (80, 24);

fn not_draining(relay: &Relay) -> Result<(), ApiError> {
    if relay.draining() {
        return Err(ApiError::unavailable(
            "This relay is shutting down; retry to reach another relay",
        ));
    }
    Ok(())
}

/// Capacity refusals: the relay is full (503) or this user holds their share (429); both say
/// when to retry.
fn full(what: &'static str) -> impl Fn(Full) -> ApiError {
    move |full| match full {
        Full::Relay => {
            ApiError::unavailable("This relay is at its session limit; try again shortly")
        }
        Full::User { limit } => ApiError::new(
            ErrorCode::UserLimitReached,
            format!(
                "You already have {limit} {what} on this relay; close one or try again shortly"
            ),
        )
        .with_retry_after(5),
    }
}

/// `POST /api/v1/machine/{id}/connect`: [`open_session`], counted and timed by its answer.
/// (Requests refused by the extractors — no token, a bad body — never reach a connect and are
/// counted only by the HTTP metrics.)
pub async fn connect(
    State(RelayState(relay)): State<RelayState>,
    Caller(owner): Caller,
    Client(client): Client,
    MachineId(id): MachineId,
    JsonBody(request): JsonBody<ConnectRequest>,
) -> Result<Reply<String>, ApiError> {
    let started = std::time::Instant::now();
    let answer = open_session(&relay, owner.clone(), &client, id, request).await;
    crate::metrics::get().connect_answered(&answer, started.elapsed());
    let (kind, details) = connect_event(id, &answer);
    let org = match &answer {
        Ok((_, org)) => org.clone(),
        Err(err) if err.code() == ErrorCode::MachineNotFound => None,
        // Refused before or while the machine was opened: find whose it is (reads on the
        // refusal path only, never on a successful connect's).
        Err(_) => relay.machines.audit_org_of_machine(&owner, id).await,
    };
    relay
        .machines
        .audit()
        .record_in(&owner, org.as_deref(), &client, kind, details)
        .await;
    answer.map(|(reply, _)| reply)
}

/// The audit event a connect's answer is recorded as.
fn connect_event<T>(id: u64, answer: &Result<T, ApiError>) -> (AuditKind, serde_json::Value) {
    match answer {
        Ok(_) => (
            AuditKind::ConnectSucceeded,
            serde_json::json!({ "machine_id": id }),
        ),
        Err(err) => {
            let kind = match err.code() {
                ErrorCode::InvalidMasterPassword => AuditKind::ConnectWrongPassword,
                ErrorCode::TooManyAttempts => AuditKind::ConnectRateLimited,
                _ => AuditKind::ConnectRefused,
            };
            let details = serde_json::json!({ "machine_id": id, "code": err.code().as_str() });
            (kind, details)
        }
    }
}

async fn open_session(
    relay: &Relay,
    owner: Identity,
    client: &AuditContext,
    id: u64,
    request: ConnectRequest,
) -> Result<(Reply<String>, Option<String>), ApiError> {
    not_draining(relay)?;
    let _connecting = relay
        .connects
        .take(&owner.0)
        .map_err(full("connects in progress"))?;
    let slot = relay
        .sessions
        .reserve(&owner.0)
        .map_err(full("open sessions"))?;
    let (machine, secrets) = relay
        .machines
        .open(&owner, id, request.master_password)
        .await?;
    let persistent = persistent_session(machine.persistent_shell, request.reattach)?;
    let shell = match &persistent {
        Some(name) => ssh::Shell::Persistent(name),
        None => ssh::Shell::Login,
    };
    let credentials = ssh::Credentials::prepare(secrets, relay.machines.kdf()).await?;
    let opened = ssh::open(
        Target {
            host: &machine.hostname,
            port: machine.port,
            username: &machine.username,
            pin: machine.host_key_fingerprint.as_deref(),
        },
        credentials,
        &relay.config.target_policy,
        &Limits {
            connect_timeout: relay.config.ssh_connect_timeout,
            handshake_timeout: relay.config.ssh_handshake_timeout,
        },
        INITIAL_PTY,
        shell,
    )
    .await?;
    if machine.host_key_fingerprint.is_none() {
        if let Err(err) = pin_first_key(relay, &owner, client, id, &opened.fingerprint).await {
            ssh::disconnect(&opened.handle).await;
            return Err(err);
        }
    }
    // Recording begins before the ticket exists: under RECORDING=required a session that
    // cannot be recorded is refused here, with SSH closed, and never reaches a terminal.
    // An organization machine's session is recorded as the organization's.
    let org = domain::vault::org_slug_of(&machine.owner_id).map(|_| machine.owner_id.clone());
    let keeper = match &org {
        Some(org) => Identity(org.clone()),
        None => owner.clone(),
    };
    let recorder = crate::recording::begin(
        relay.machines.recordings(),
        machine.recording,
        crate::recording::Context {
            auditor: std::sync::Arc::clone(relay.machines.audit()),
            owner: owner.clone(),
            keeper,
            client: client.clone(),
            machine_id: id,
            machine_name: machine.name.clone(),
            record_input: machine.record_input,
            size: INITIAL_PTY,
        },
    )
    .await;
    let recorder = match recorder {
        Ok(recorder) => recorder,
        Err(err) => {
            ssh::disconnect(&opened.handle).await;
            return Err(err.into());
        }
    };
    let ticket = Uuid::new_v4();
    let bucket = relay.clock.now();
    let route = Route {
        relay: relay.advertise.clone(),
        owner: owner.0.clone(),
    };
    if let Err(err) = relay.tickets.register(ticket, &route, bucket).await {
        ssh::disconnect(&opened.handle).await;
        return Err(err.into());
    }
    // The connect's own audit entry goes to the organization's log by its slug.
    let org_slug = org
        .as_deref()
        .and_then(domain::vault::org_slug_of)
        .map(str::to_owned);
    relay.sessions.park(
        ticket,
        Session {
            owner: owner.0,
            machine_id: id,
            org,
            handle: std::sync::Arc::new(opened.handle),
            channel: opened.channel,
            slot,
            persistent: persistent.as_ref().map(|name| name.as_str().to_owned()),
            recorder,
        },
        bucket.remaining(),
    );
    tracing::info!(
        machine_id = id,
        persistent = persistent.as_ref().map(SessionName::as_str),
        "ssh session ready; ticket issued"
    );
    let reply = Reply::ok("Connected to machine successfully", ticket.to_string());
    Ok((reply, org_slug))
}

/// The tmux session a terminal runs in: none for a plain machine (where `reattach` is a 400),
/// the requested one, or a new random name.
fn persistent_session(
    persistent_shell: bool,
    reattach: Option<SessionName>,
) -> Result<Option<SessionName>, ApiError> {
    match (persistent_shell, reattach) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(DomainError::invalid(
            "reattach is only for machines with a persistent shell",
        )
        .into()),
        (true, Some(name)) => Ok(Some(name)),
        (true, None) => Ok(Some(SessionName::random())),
    }
}

/// Trust on first use: store the key seen on the first successful login. A concurrent connect
/// may have pinned first; then its pin must be the key we saw.
async fn pin_first_key(
    relay: &Relay,
    owner: &Identity,
    client: &AuditContext,
    id: u64,
    fingerprint: &str,
) -> Result<(), ApiError> {
    match relay
        .machines
        .set_host_key(owner, client, id, None, Some(fingerprint))
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
        Err(DomainError::Conflict(_)) => {
            let current = relay.machines.load(owner, id).await?.host_key_fingerprint;
            match current {
                Some(pin) if pin == fingerprint => Ok(()),
                Some(pin) => Err(ApiError::host_key_changed(pin, fingerprint.to_owned())),
                None => Err(ApiError::from(DomainError::Conflict(
                    "The host key pin was changed concurrently; retry".into(),
                ))),
            }
        }
        Err(other) => Err(other.into()),
    }
}

/// `PUT /api/v1/machine/{id}/host-key {"fingerprint": "SHA256:…" | null, "master_password"}`:
/// pre-set, re-pin after a legitimate key rotation, or clear (the next connect pins again).
/// Replacing or clearing a pin needs the master password (see `Machines::change_host_key`).
pub async fn set_host_key(
    State(RelayState(relay)): State<RelayState>,
    Caller(owner): Caller,
    Client(client): Client,
    MachineId(id): MachineId,
    JsonBody(pin): JsonBody<HostKeyPin>,
) -> Result<Reply<MachineView>, ApiError> {
    let view = relay
        .machines
        .change_host_key(
            &owner,
            &client,
            id,
            pin.fingerprint.as_deref(),
            pin.master_password,
        )
        .await?;
    Ok(Reply::ok("Host key pin updated", view))
}

/// What the relay's health check reports.
#[derive(Serialize)]
pub struct Health {
    /// Pending and open SSH sessions on this relay.
    sessions: usize,
    draining: bool,
}

pub async fn health(State(RelayState(relay)): State<RelayState>) -> Reply<Health> {
    Reply::ok(
        "OK",
        Health {
            sessions: relay.sessions.live(),
            draining: relay.draining(),
        },
    )
}
