//! The terminal WebSocket, `GET /ssh?uuid=…` (protocol: [`protocol`],
//! `docs/websocket-protocol.md`).
//!
//! A ticket alone opens a terminal only for a non-browser client (no `Origin`); a browser must
//! also send the owner's `jwt` cookie, so a ticket copied out of a URL is useless elsewhere.
//!
//! Before the upgrade, only what a browser can act on as an HTTP answer: a forged relay hop
//! (403), the Origin check (403) and draining (503). Ticket problems are reported *after* the
//! upgrade as close codes, because a browser's WebSocket API never shows the status of a
//! refused handshake; a close code is the only way to say "expired" rather than "failed".
//!
//! After the upgrade, one ticket-table call decides everything ([`TicketTable::open`]): the
//! ticket is consumed here and the pump runs, or another relay holds it and the socket is
//! forwarded there with a hop proof ([`hop`]) carrying the identity verified here, so the owner
//! relay neither verifies the JWT again nor looks the ticket up twice.
//!
//! On an organization machine the user's membership is read again before a ticket opens (and
//! before a resume attaches): someone removed since connect gets 4021 ([`crate::org_access`]).
//!
//! A resume, `GET /ssh?session=<id>`, passes the same checks (Origin, cookie) and then goes
//! where the session lives: [`resume`] hands the socket to the terminal here, or it is
//! forwarded to the relay holding it. Resumes are accepted while draining: parked terminals
//! are served until the drain grace ends.
//!
//! A share's viewer, `GET /ssh?share=<id>`, passes the Origin check too, but a cookie is
//! optional (a link share admits anyone holding its secret); [`share`] joins it to the terminal
//! here, or it is forwarded to the relay holding it with a proof naming the viewer, if any.
//!
//! Module map: [`protocol`] (the wire format, imported by everything else), [`liveness`] (when
//! a client is gone), [`pump`] (one terminal), [`ring`] (its output kept for a resume),
//! [`resume`] (the registry and the resume handshake), [`share`] (viewers of a shared
//! terminal), [`forward`] (relay to relay), [`hop`] (the forwarded identity's proof).

pub mod forward;
pub mod hop;
pub mod liveness;
pub mod protocol;
pub mod pump;
pub mod resume;
pub mod ring;
pub mod share;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use domain::Identity;
use domain::audit::AuditContext;
use edge::auth::{SESSION_COOKIE, single_cookie};
use edge::extract::Client;
use edge::{ApiError, ErrorCode};
use http::HeaderMap;
use tracing::Instrument;
use uuid::Uuid;

use self::hop::Hop;
use self::protocol::{
    Close, HOP_HEADER, INPUT_BUFFER_BYTES, MAX_MESSAGE_BYTES, MAX_WRITE_BUFFER_BYTES,
    OUTPUT_BUFFER_BYTES, refuse,
};
use self::resume::Destination;
use crate::config::Origins;
use crate::org_access;
use crate::tickets::Opening;
use crate::{Phase, Relay, RelayState};

/// Who is opening the ticket, as far as this relay knows before touching the ticket table.
enum Opener {
    /// A browser or client connected here; `caller` is the `jwt` cookie, if any; `browser`
    /// when the request carries an `Origin` (browsers always send one on a WebSocket).
    Direct {
        caller: Option<String>,
        browser: bool,
    },
    /// Another relay forwarded the socket, vouching for `owner` with a valid hop proof.
    Hop { owner: String },
}

/// Is this Origin allowed? Absent Origin means a non-browser client (no ambient cookies to
/// abuse), which the ticket alone authorises.
fn origin_allowed(origins: &Origins, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    match origins {
        Origins::Any => true,
        Origins::List(list) => list
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        Origins::SameOrigin => {
            let host = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or_default();
            !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
        }
    }
}

pub async fn terminal(
    State(RelayState(relay)): State<RelayState>,
    Client(client): Client,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let requested = std::time::Instant::now();
    let wanted = match (query.get("share"), query.get("session"), query.get("uuid")) {
        (Some(share), _, _) => Uuid::parse_str(share).map(Hop::Share),
        (None, Some(session), _) => Uuid::parse_str(session).map(Hop::Session),
        (None, None, ticket) => Uuid::parse_str(ticket.map_or("", String::as_str)).map(Hop::Ticket),
    }
    .ok();
    let opener = match headers.get(HOP_HEADER) {
        // A relay hop: the forwarding relay checked the Origin and the cookie; the proof says so.
        Some(proof) => match verified_hop(&relay, proof, wanted).await {
            Some(owner) => Opener::Hop { owner },
            None => {
                tracing::warn!("websocket refused: invalid relay hop proof");
                return ApiError::new(ErrorCode::Forbidden, "Invalid relay hop").into_response();
            }
        },
        None => {
            if !origin_allowed(&relay.config.allowed_origins, &headers) {
                tracing::info!("websocket refused: origin not allowed");
                return ApiError::new(ErrorCode::OriginNotAllowed, "Origin is not allowed")
                    .into_response();
            }
            // Two session cookies (one planted by a sibling subdomain) prove nothing.
            match single_cookie(&headers, SESSION_COOKIE) {
                Ok(caller) => Opener::Direct {
                    caller,
                    browser: headers.contains_key(http::header::ORIGIN),
                },
                Err(err) => return ApiError::from(err).into_response(),
            }
        }
    };
    // A draining relay still serves its terminals' resumes, until the drain grace ends.
    let resuming = matches!(wanted, Some(Hop::Session(_)));
    if relay.draining() && !(resuming && matches!(*relay.phase.borrow(), Phase::Draining { .. })) {
        return ApiError::unavailable("This relay is shutting down; retry to reach another relay")
            .into_response();
    }
    let Ok(upgrade) = upgrade else {
        return ApiError::bad_request("Expected a WebSocket upgrade on /ssh").into_response();
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(INPUT_BUFFER_BYTES)
        .write_buffer_size(OUTPUT_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        // `open`'s future itself, not an `async move` block awaiting it: such a block keeps its
        // captures beside the future it awaits, for the terminal's whole life.
        .on_upgrade(move |socket| open(relay, socket, wanted, opener, requested, client))
}

/// The owner a hop proof vouches for, if it is valid for this ticket or session.
async fn verified_hop(
    relay: &Relay,
    proof: &http::HeaderValue,
    wanted: Option<Hop>,
) -> Option<String> {
    let wanted = wanted?;
    let proof = proof.to_str().ok()?;
    let key = match relay.tickets.hop_key().await {
        Ok(key) => key,
        Err(err) => {
            tracing::error!(error = %err, "hop key unavailable");
            return None;
        }
    };
    hop::verify(&key, proof, wanted)
}

/// One WebSocket, from the upgrade to its close. This future is the terminal's task for as long
/// as the terminal lives, sized by its largest state: the share, resume and forwarding branches
/// are boxed when taken, so a plain terminal does not carry their space.
async fn open(
    relay: Arc<Relay>,
    socket: WebSocket,
    wanted: Option<Hop>,
    opener: Opener,
    requested: std::time::Instant,
    client: AuditContext,
) {
    let ticket = match wanted {
        Some(Hop::Ticket(ticket)) => ticket,
        Some(Hop::Share(id)) => {
            let (viewer, forwarded) = identify_viewer(&relay, opener).await;
            return Box::pin(share::open(&relay, socket, id, viewer, forwarded, &client)).await;
        }
        Some(Hop::Session(id)) => {
            let Some((caller, forwarded)) = identify(&relay, opener).await else {
                return refuse(
                    socket,
                    Close::TicketNotYours,
                    "sign in: cookie missing or invalid",
                )
                .await;
            };
            return Box::pin(resume(&relay, socket, id, caller, forwarded, &client)).await;
        }
        Some(Hop::Revoke(_)) | Some(Hop::Files(_)) | None => {
            return refuse(socket, Close::TicketInvalid, "invalid ticket").await;
        }
    };
    let Some((caller, forwarded)) = identify(&relay, opener).await else {
        return refuse(
            socket,
            Close::TicketNotYours,
            "sign in: cookie missing or invalid",
        )
        .await;
    };
    let opening = relay
        .tickets
        .open(
            ticket,
            relay.clock.now(),
            &relay.advertise,
            caller.as_deref(),
        )
        .await;
    let route = match opening {
        Ok(Opening::Opened(route)) => route,
        Ok(Opening::Elsewhere(route)) if !forwarded => {
            tracing::info!(to = %route.relay, "forwarding websocket to the relay holding the session");
            return Box::pin(forward::run(&relay, socket, &route, Hop::Ticket(ticket))).await;
        }
        Ok(Opening::Elsewhere(_)) => {
            // A stale route must never bounce a socket between relays.
            return refuse(socket, Close::TicketInvalid, "ticket is not held here").await;
        }
        Ok(Opening::Used) => return refuse(socket, Close::TicketUsed, "ticket already used").await,
        Ok(Opening::Missing) => {
            return refuse(socket, Close::TicketInvalid, "unknown or expired ticket").await;
        }
        Ok(Opening::NotYours) => {
            tracing::warn!("websocket refused: ticket belongs to another user");
            return refuse(
                socket,
                Close::TicketNotYours,
                "ticket belongs to another user",
            )
            .await;
        }
        Err(err) => {
            tracing::error!(error = %err, "ticket open failed");
            return refuse(socket, Close::RoutingUnavailable, "routing unavailable").await;
        }
    };
    let Some(session) = relay.sessions.take(ticket) else {
        return refuse(socket, Close::TicketInvalid, "session no longer available").await;
    };
    if session.owner != route.owner {
        return refuse(
            socket,
            Close::TicketNotYours,
            "ticket belongs to another user",
        )
        .await;
    }
    // A member removed from the organization since connect: the ticket does not open.
    if let Some(org) = &session.org {
        if let Err(denied) = org_access::check(&relay.machines, &session.owner, org).await {
            crate::ssh::disconnect(&session.handle).await;
            return refuse_denied(socket, denied).await;
        }
    }
    crate::metrics::get()
        .websocket_open_seconds
        .observe(requested.elapsed().as_secs_f64());
    let (credentials, attach) = relay
        .terminals
        .register(&session.owner, session.org.as_deref());
    let credentials_id = credentials.id;
    let watch = session.org.as_deref().map(|org| {
        relay
            .org_terminals
            .watch(credentials_id, org, &session.owner)
    });
    let resumable = pump::Resumable {
        route: resume::RouteKeeper {
            tickets: Arc::clone(&relay.tickets),
            clock: relay.clock,
            route: route.clone(),
            id: credentials.id,
        },
        credentials,
        attach,
        terminals: Arc::clone(&relay.terminals),
        budget: Arc::clone(&relay.resume_budget),
        shares: Arc::clone(&relay.shares),
        access: watch,
        audit: pump::SessionAudit {
            auditor: Arc::clone(relay.machines.audit()),
            owner: Identity(session.owner.clone()),
            context: client,
            machine_id: session.machine_id,
            org: session.org_slug(),
        },
    };
    // Its files are reachable while the pump runs (the guard unregisters them).
    let _files = relay.files.register(
        credentials_id,
        &session.owner,
        session.org_slug().as_deref(),
        session.machine_id,
        &session.handle,
        session.recorder.tap(),
    );
    let span = tracing::info_span!("terminal", machine_id = session.machine_id);
    pump::run(
        relay.pump_settings(),
        relay.phase.subscribe(),
        socket,
        session,
        resumable,
    )
    .instrument(span)
    .await;
}

/// Refuse a socket whose user may not (or, the store unreadable, may not be shown to) use an
/// organization machine's terminal.
async fn refuse_denied(socket: WebSocket, denied: org_access::Denied) {
    match denied {
        org_access::Denied::Revoked => {
            tracing::info!("websocket refused: organization access removed");
            refuse(socket, Close::AccessRevoked, "organization access removed").await;
        }
        org_access::Denied::Unknown => {
            refuse(
                socket,
                Close::RoutingUnavailable,
                "organization membership unavailable",
            )
            .await;
        }
    }
}

/// A resume of session `id`: handed to the terminal here, or forwarded to its relay.
async fn resume(
    relay: &Arc<Relay>,
    socket: WebSocket,
    id: Uuid,
    caller: Option<String>,
    forwarded: bool,
    client: &AuditContext,
) {
    match resume::locate(relay, id, caller.as_deref()).await {
        Destination::Here => {
            resume::attach_here(relay, socket, id, caller.as_deref(), client).await;
        }
        Destination::Elsewhere(route) if !forwarded => {
            tracing::info!(to = %route.relay, "forwarding a resume to the relay holding the session");
            forward::run(relay, socket, &route, Hop::Session(id)).await;
        }
        Destination::Elsewhere(_) | Destination::Gone => {
            refuse(socket, Close::SessionGone, "session no longer exists").await;
        }
        Destination::Unknown => {
            refuse(socket, Close::RoutingUnavailable, "routing unavailable").await;
        }
    }
}

/// Who is asking, and whether another relay forwarded the socket; `None` refuses it (a
/// browser without the session cookie, or an invalid cookie).
async fn identify(relay: &Relay, opener: Opener) -> Option<(Option<String>, bool)> {
    match opener {
        Opener::Hop { owner } => Some((Some(owner), true)),
        // A ticket or session id in a leaked URL (history, a screenshot, a proxy log) opened
        // from another browser: the browser's own session must vouch for it. Checked before
        // the ticket table, so the refusal does not consume the ticket.
        Opener::Direct {
            caller: None,
            browser: true,
        } => {
            tracing::warn!("websocket refused: a browser without the session cookie");
            None
        }
        Opener::Direct {
            caller: None,
            browser: false,
        } => Some((None, false)),
        Opener::Direct {
            caller: Some(token),
            ..
        } => match relay.authenticator.verify(&token).await {
            Ok(identity) => Some((Some(identity.0), false)),
            Err(_) => {
                tracing::warn!("websocket refused: jwt cookie is not valid");
                None
            }
        },
    }
}

/// A share viewer's identity, if any, and whether another relay forwarded the socket. Unlike a
/// ticket's, no cookie is required (a link share admits anyone with its secret), and an invalid
/// one counts as none: a share naming its users then refuses the viewer itself (4015).
async fn identify_viewer(relay: &Relay, opener: Opener) -> (Option<String>, bool) {
    match opener {
        Opener::Hop { owner } => ((!owner.is_empty()).then_some(owner), true),
        Opener::Direct { caller: None, .. } => (None, false),
        Opener::Direct {
            caller: Some(token),
            ..
        } => match relay.authenticator.verify(&token).await {
            Ok(identity) => (Some(identity.0), false),
            Err(_) => {
                tracing::info!("share viewer's jwt cookie is not valid; joining as anonymous");
                (None, false)
            }
        },
    }
}
