//! Live sharing of a running terminal: its owner lets others watch it, or type in it once
//! granted, through a link (`docs/websocket-protocol.md`, Sharing).
//!
//! Everything about a share lives with the terminal, on the relay holding it, and dies with it:
//! the owner creates, revokes and grants through events on the terminal's own WebSocket (which
//! always ends at that relay, forwarded or not), and a revoke takes effect where the viewers'
//! sockets are. Only the route `share id → {relay, owner}` and the owner's listing of it are
//! published in the ticket table (Redis: minute buckets, refreshed while the share lives), so a
//! viewer's socket, `GET /ssh?share=<id>`, is forwarded from any replica to that relay with a
//! share hop proof naming the viewer the forwarding relay verified (or nobody). An owner whose
//! terminal is parked, or who is on another device, revokes over HTTP
//! (`DELETE /api/v1/share/{id}`, `crate::share_api`): that request reaches this relay the same
//! way and arrives here as [`Shares::revoke`], which the terminal's supervisor acts on even
//! while no client is attached.
//!
//! The secret: 256 random bits, sent once to the owner (`share_created`), kept here only as its
//! SHA-256 and compared in constant time. The link carries it in its fragment, which browsers
//! never send to a server, and the viewer's client sends it as its first frame (`join`) — it is
//! never in a URL that a proxy or a log can see. A share for named users (emails) also needs
//! the viewer's `jwt` cookie to name one of them; a link share (anyone with the link) is
//! view-only.
//!
//! What a joining viewer sees: the current screen, not a blank terminal. While a terminal has a
//! share, the output task also feeds a headless terminal emulator ([`Mirror`], the `vt100`
//! crate) under the lock it appends to the ring under; a join takes the emulator's screen as
//! escape sequences and installs the viewer's queue under that same lock, so the snapshot and
//! the live output meet exactly. The emulator starts when the first share is created, seeded
//! with the session's whole output when the ring still holds it from byte 0, else with the
//! owner's serialised screen (`share_create`'s `screen` at `offset`) plus the ring from there.
//! An unshared terminal pays one `Option` check per output frame; the emulator's parsing cost
//! is paid only while a share exists.
//!
//! A viewer never slows the owner: each has a bounded queue ([`VIEWER_QUEUE`] frames) filled
//! with `try_send`; a viewer whose queue is full is dropped (4017) rather than waited for.
//! Viewers' keystrokes go to the shell only while the owner has granted control (a flag the
//! viewer's task checks per frame; taking control back clears it before the viewer is told);
//! otherwise they are dropped and answered with an `error` event. They are not counted in the
//! keystroke offset a resume reports, which is the owner's alone.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::forward;
use super::hop::Hop;
use super::liveness::{Liveness, Verdict, within_stall};
use super::protocol::{
    ClientEvent, Close, ServerEvent, ShareMode, ViewerInfo, close_message, refuse,
};
use super::pump::{Input, SessionAudit, Shared};
use super::resume::RouteKeeper;
use crate::Relay;
use crate::tickets::ShareListing;
use domain::Identity;
use domain::audit::{AuditContext, AuditKind};

/// Live shares one terminal may have.
pub const MAX_SHARES: usize = 8;
/// Viewers one terminal may have, over all its shares.
pub const MAX_VIEWERS: usize = 50;
/// Emails one share may name.
pub const MAX_EMAILS: usize = 20;
/// Longest email accepted in a share.
const MAX_EMAIL_LEN: usize = 254;
/// A share's lifetime when `share_create` names none, and the longest allowed.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);
pub const MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Frames queued for one viewer; a viewer this far behind is dropped (4017).
pub const VIEWER_QUEUE: usize = 64;
/// How long a viewer's socket may take to send its `join` frame.
pub const JOIN_FRAME_WAIT: Duration = Duration::from_secs(10);
/// Largest `join` frame read (the secret is 43 characters).
const MAX_JOIN_FRAME: usize = 512;

/// The PTY size a terminal starts with, until its owner's client sends a resize.
const INITIAL_SIZE: (u16, u16) = (80, 24);

/// How a viewer's socket is told to close.
type Ending = watch::Sender<Option<(Close, &'static str)>>;

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Who may join a share.
#[derive(Clone, Debug)]
enum Audience {
    /// Anyone holding the link (view-only shares only).
    Link,
    /// Signed-in users with one of these emails (lower-cased).
    Named(Vec<String>),
}

impl Audience {
    fn admits(&self, caller: Option<&str>) -> bool {
        match self {
            Audience::Link => true,
            Audience::Named(emails) => caller.is_some_and(|caller| {
                emails
                    .iter()
                    .any(|email| email.eq_ignore_ascii_case(caller))
            }),
        }
    }

    fn emails(&self) -> Vec<String> {
        match self {
            Audience::Link => Vec::new(),
            Audience::Named(emails) => emails.clone(),
        }
    }
}

/// A viewer's socket on its way to the terminal, checked.
pub struct Join {
    socket: Box<WebSocket>,
    share: Uuid,
    who: Option<String>,
}

struct Entry {
    session: Uuid,
    owner: String,
    secret_digest: [u8; 32],
    audience: Audience,
    expires: Instant,
    join: mpsc::Sender<Join>,
    revoke: mpsc::Sender<Revoke>,
}

/// An owner's revoke that did not come from the terminal's own socket (HTTP): the terminal's
/// supervisor ends the share and answers whether it was still there.
pub struct Revoke {
    id: Uuid,
    done: oneshot::Sender<bool>,
}

/// What [`Shares::revoke`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The share ended; its viewers are being closed.
    Done,
    /// No such share of the caller's on this relay.
    NotHere,
    /// The terminal did not answer in time.
    Busy,
}

/// How long an HTTP revoke waits for the terminal's supervisor.
const REVOKE_WAIT: Duration = Duration::from_secs(3);

/// This relay's live shares that a viewer's socket can reach.
#[derive(Default)]
pub struct Shares {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

/// Why a join was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Unknown, expired or revoked share, or the wrong secret: all look alike.
    Invalid,
    /// The right secret, but the share names other users.
    NotForYou,
}

impl Shares {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn holds(&self, id: Uuid) -> bool {
        self.entries
            .lock()
            .is_ok_and(|entries| entries.contains_key(&id))
    }

    fn insert(&self, id: Uuid, entry: Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, entry);
        }
    }

    fn remove(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    /// End share `id` if it is `caller`'s and its terminal is on this relay, whether or not
    /// the owner's client is attached.
    pub async fn revoke(&self, id: Uuid, caller: &str) -> Revoked {
        let terminal = self.entries.lock().ok().and_then(|entries| {
            entries
                .get(&id)
                .filter(|entry| entry.owner == caller)
                .map(|entry| entry.revoke.clone())
        });
        let Some(terminal) = terminal else {
            return Revoked::NotHere;
        };
        let (done, answer) = oneshot::channel();
        let asked = tokio::time::timeout(REVOKE_WAIT, terminal.send(Revoke { id, done })).await;
        match asked {
            Ok(Ok(())) => {}
            // The terminal is ending: its shares go with it.
            Ok(Err(_)) => return Revoked::NotHere,
            Err(_) => return Revoked::Busy,
        }
        match tokio::time::timeout(REVOKE_WAIT, answer).await {
            Ok(Ok(true)) => Revoked::Done,
            Ok(Ok(false) | Err(_)) => Revoked::NotHere,
            Err(_) => Revoked::Busy,
        }
    }

    /// The share's owner and its terminal's join channel, if `secret` opens it for `caller`.
    fn unlock(
        &self,
        id: Uuid,
        secret: &str,
        caller: Option<&str>,
    ) -> Result<(Uuid, String, mpsc::Sender<Join>), Refusal> {
        let entries = self.entries.lock().map_err(|_| Refusal::Invalid)?;
        let entry = entries.get(&id).ok_or(Refusal::Invalid)?;
        let matches: bool = entry.secret_digest.ct_eq(&digest(secret)).into();
        if !matches || entry.expires <= Instant::now() {
            return Err(Refusal::Invalid);
        }
        if !entry.audience.admits(caller) {
            return Err(Refusal::NotForYou);
        }
        Ok((entry.session, entry.owner.clone(), entry.join.clone()))
    }
}

/// Where a viewer's socket goes.
enum Destination {
    Here,
    Elsewhere(String),
    Gone,
    Unknown,
}

async fn locate(relay: &Relay, id: Uuid) -> Destination {
    if relay.shares.holds(id) {
        return Destination::Here;
    }
    match relay.tickets.find_share(id, relay.clock.now()).await {
        Ok(Some(route)) if route.relay != relay.advertise => Destination::Elsewhere(route.relay),
        Ok(_) => Destination::Gone,
        Err(err) => {
            tracing::error!(error = %err, "share route lookup failed");
            Destination::Unknown
        }
    }
}

/// A viewer's socket for share `id`: joined here, or forwarded to the relay holding the
/// terminal. `caller` is the verified identity (cookie or hop proof), if any.
pub async fn open(
    relay: &Relay,
    socket: WebSocket,
    id: Uuid,
    caller: Option<String>,
    forwarded: bool,
    client: &AuditContext,
) {
    match locate(relay, id).await {
        Destination::Here => join_here(relay, socket, id, caller.as_deref(), client).await,
        Destination::Elsewhere(to) if !forwarded => {
            tracing::info!(to = %to, "forwarding a share viewer to the relay holding the terminal");
            let vouch = caller.as_deref().unwrap_or_default();
            forward::run_as(relay, socket, &to, Hop::Share(id), vouch).await;
        }
        Destination::Elsewhere(_) | Destination::Gone => {
            refuse(socket, Close::ShareInvalid, "share no longer exists").await;
        }
        Destination::Unknown => {
            refuse(socket, Close::RoutingUnavailable, "routing unavailable").await;
        }
    }
}

/// Read the `join` frame, check the secret, the expiry and the audience, and hand the socket
/// to the terminal.
async fn join_here(
    relay: &Relay,
    mut socket: WebSocket,
    id: Uuid,
    caller: Option<&str>,
    client: &AuditContext,
) {
    let Some(secret) = join_frame(&mut socket).await else {
        return refuse(socket, Close::ShareInvalid, "expected a join frame").await;
    };
    let (session, owner, join) = match relay.shares.unlock(id, &secret, caller) {
        Ok(found) => found,
        Err(Refusal::Invalid) => {
            tracing::warn!(share = %id, "share join refused: unknown share or wrong secret");
            return refuse(socket, Close::ShareInvalid, "share invalid or expired").await;
        }
        Err(Refusal::NotForYou) => {
            tracing::warn!(share = %id, "share join refused: not an invited user");
            return refuse(socket, Close::ShareNotForYou, "share is for other users").await;
        }
    };
    let who = caller.map(str::to_owned);
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        join.send(Join {
            socket: Box::new(socket),
            share: id,
            who: who.clone(),
        }),
    )
    .await;
    match sent {
        Ok(Ok(())) => {
            relay
                .machines
                .audit()
                .record(
                    &Identity(owner),
                    client,
                    AuditKind::ShareJoined,
                    serde_json::json!({
                        "session": session.to_string(),
                        "share": id.to_string(),
                        "viewer": who.as_deref().unwrap_or("anonymous"),
                    }),
                )
                .await;
        }
        Ok(Err(mpsc::error::SendError(Join { socket, .. }))) => {
            refuse(*socket, Close::ShareInvalid, "share no longer exists").await;
        }
        Err(_) => tracing::warn!(share = %id, "share join dropped: terminal busy"),
    }
}

/// The secret of a valid first frame, within [`JOIN_FRAME_WAIT`].
async fn join_frame(socket: &mut WebSocket) -> Option<Zeroizing<String>> {
    let message = tokio::time::timeout(JOIN_FRAME_WAIT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = message else {
        return None;
    };
    if text.len() > MAX_JOIN_FRAME {
        return None;
    }
    match serde_json::from_str::<ClientEvent>(text.as_str()).ok()? {
        ClientEvent::Join { secret } => Some(Zeroizing::new(secret)),
        _ => None,
    }
}

/// The headless terminal fed while a terminal has a share, and the viewers' queues. Lives in
/// the pump's outlet, under its lock.
pub struct Mirror {
    parser: vt100::Parser,
    taps: Vec<Tap>,
}

/// One viewer's queue, as the output task sees it.
struct Tap {
    id: u64,
    out: mpsc::Sender<Message>,
    end: Ending,
}

fn size(cols: u16, rows: u16) -> (NonZeroU16, NonZeroU16) {
    (
        NonZeroU16::new(rows).unwrap_or(NonZeroU16::MIN),
        NonZeroU16::new(cols).unwrap_or(NonZeroU16::MIN),
    )
}

impl Mirror {
    fn new((cols, rows): (u16, u16)) -> Self {
        let (rows, cols) = size(cols, rows);
        Self {
            parser: vt100::Parser::new(rows, cols, 0),
            taps: Vec::new(),
        }
    }

    /// One output frame: into the emulator, and onto every viewer's queue without waiting.
    /// A viewer whose queue is full is dropped and told why.
    pub fn output(&mut self, frame: &Bytes) {
        self.parser.process(frame);
        self.taps.retain(
            |tap| match tap.out.try_send(Message::Binary(frame.clone())) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tap.end
                        .send_replace(Some((Close::ViewerTooSlow, "viewer fell behind")));
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            },
        );
    }

    fn resize(&mut self, (cols, rows): (u16, u16)) {
        let (r, c) = size(cols, rows);
        self.parser.screen_mut().set_size(r, c);
        let event = ServerEvent::Size { cols, rows }.to_message();
        for tap in &self.taps {
            let _ = tap.out.try_send(event.clone());
        }
    }

    /// The current screen as bytes that redraw it on a fresh terminal.
    fn snapshot(&self) -> Bytes {
        Bytes::from(self.parser.screen().state_formatted().into_bytes())
    }

    fn untap(&mut self, id: u64) {
        self.taps.retain(|tap| tap.id != id);
    }
}

/// One of this terminal's shares.
struct MyShare {
    mode: ShareMode,
    expires: Instant,
    /// What its owner's listing shows, republished with its route.
    listing: ShareListing,
}

/// One viewer, as the supervisor sees it.
struct Viewer {
    share: Uuid,
    who: Option<String>,
    mode: ShareMode,
    control: Arc<AtomicBool>,
    out: mpsc::Sender<Message>,
    end: Ending,
    task: JoinHandle<()>,
}

/// What the sharing side of a terminal needs the supervisor to act on.
pub enum ShareEvent {
    Join(Join),
    Left(u64),
    Expired,
    Revoke(Revoke),
}

/// An owner's request, parsed from its socket.
pub enum Request {
    Create {
        mode: ShareMode,
        emails: Vec<String>,
        expires_in_secs: Option<u64>,
        screen: Option<String>,
        offset: Option<u64>,
    },
    Revoke(String),
    Grant(u64),
    TakeBack(u64),
}

impl Request {
    pub fn parse(event: ClientEvent) -> Option<Self> {
        Some(match event {
            ClientEvent::ShareCreate {
                mode,
                emails,
                expires_in_secs,
                screen,
                offset,
            } => Request::Create {
                mode,
                emails,
                expires_in_secs,
                screen,
                offset,
            },
            ClientEvent::ShareRevoke { id } => Request::Revoke(id),
            ClientEvent::ControlGrant { viewer } => Request::Grant(viewer),
            ClientEvent::ControlRevoke { viewer } => Request::TakeBack(viewer),
            _ => return None,
        })
    }
}

/// The audience and lifetime a `share_create` asks for, checked.
fn checked(
    mode: ShareMode,
    emails: Vec<String>,
    expires_in_secs: Option<u64>,
) -> Result<(Audience, Duration), &'static str> {
    let expiry = expires_in_secs.map_or(DEFAULT_EXPIRY, Duration::from_secs);
    if expiry.is_zero() || expiry > MAX_EXPIRY {
        return Err("a share expires after 1 to 86400 seconds");
    }
    if emails.len() > MAX_EMAILS {
        return Err("a share names at most 20 emails");
    }
    let mut named = Vec::with_capacity(emails.len());
    for email in emails {
        let email = email.trim().to_lowercase();
        if email.is_empty() || email.len() > MAX_EMAIL_LEN || !email.contains('@') {
            return Err("a share's emails must be email addresses");
        }
        named.push(email);
    }
    let audience = if named.is_empty() {
        if mode == ShareMode::Control {
            return Err("a control share must name its users (emails)");
        }
        Audience::Link
    } else {
        Audience::Named(named)
    };
    Ok((audience, expiry))
}

/// The sharing side of one terminal, owned by its supervisor.
pub struct Sharing {
    shares: Arc<Shares>,
    route: RouteKeeper,
    audit: Arc<SessionAudit>,
    input: mpsc::Sender<Input>,
    keepalive: Duration,
    /// Created with the first share: most terminals are never shared, and each channel costs
    /// its first block of slots the moment it exists.
    inbox: Option<Inbox>,
    mine: HashMap<Uuid, MyShare>,
    viewers: BTreeMap<u64, Viewer>,
    next_viewer: u64,
    size: (u16, u16),
}

/// How viewers (joining, leaving) and the HTTP API (revoking) reach a shared terminal.
struct Inbox {
    joins_tx: mpsc::Sender<Join>,
    joins: mpsc::Receiver<Join>,
    revokes_tx: mpsc::Sender<Revoke>,
    revokes: mpsc::Receiver<Revoke>,
    left_tx: mpsc::Sender<u64>,
    left: mpsc::Receiver<u64>,
}

impl Inbox {
    fn new() -> Self {
        let (joins_tx, joins) = mpsc::channel(4);
        let (revokes_tx, revokes) = mpsc::channel(4);
        let (left_tx, left) = mpsc::channel(MAX_VIEWERS);
        Self {
            joins_tx,
            joins,
            revokes_tx,
            revokes,
            left_tx,
            left,
        }
    }
}

/// The owner's attached client, if any, to answer.
pub type Owner<'a> = Option<&'a mpsc::Sender<Message>>;

fn tell(owner: Owner<'_>, event: ServerEvent) {
    if let Some(owner) = owner {
        let _ = owner.try_send(event.to_message());
    }
}

/// Like [`tell`], but waits (briefly) for room behind queued output: for what the owner must
/// not miss, a share's secret and its end.
async fn tell_surely(owner: Owner<'_>, event: ServerEvent) {
    if let Some(owner) = owner {
        let sent = tokio::time::timeout(Duration::from_secs(2), owner.send(event.to_message()));
        if !matches!(sent.await, Ok(Ok(()))) {
            tracing::warn!("the owner's client did not take a sharing event");
        }
    }
}

impl Sharing {
    pub fn new(
        shares: Arc<Shares>,
        route: RouteKeeper,
        audit: Arc<SessionAudit>,
        input: mpsc::Sender<Input>,
        keepalive: Duration,
    ) -> Self {
        Self {
            shares,
            route,
            audit,
            input,
            keepalive,
            inbox: None,
            mine: HashMap::new(),
            viewers: BTreeMap::new(),
            next_viewer: 1,
            size: INITIAL_SIZE,
        }
    }

    /// The next thing to act on: a viewer joining or leaving, or a share expiring.
    pub async fn next(&mut self) -> ShareEvent {
        let deadline = self.mine.values().map(|share| share.expires).min();
        let Some(inbox) = self.inbox.as_mut() else {
            // Never shared: no share can expire either, so this waits forever.
            sleep_until(deadline).await;
            return ShareEvent::Expired;
        };
        tokio::select! {
            Some(join) = inbox.joins.recv() => ShareEvent::Join(join),
            Some(revoke) = inbox.revokes.recv() => ShareEvent::Revoke(revoke),
            Some(id) = inbox.left.recv() => ShareEvent::Left(id),
            () = sleep_until(deadline) => ShareEvent::Expired,
        }
    }

    pub async fn handle(&mut self, event: ShareEvent, owner: Owner<'_>, outlet: &Shared) {
        match event {
            ShareEvent::Join(join) => self.join(join, owner, outlet),
            ShareEvent::Left(id) => {
                if self.viewers.remove(&id).is_some() {
                    if let Ok(mut outlet) = outlet.outlet.lock() {
                        if let Some(mirror) = outlet.mirror.as_mut() {
                            mirror.untap(id);
                        }
                    }
                    self.tell_viewers(owner);
                }
            }
            ShareEvent::Expired => {
                let now = Instant::now();
                let expired: Vec<Uuid> = self
                    .mine
                    .iter()
                    .filter(|(_, share)| share.expires <= now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    self.end_share(id, "expired", owner, outlet).await;
                }
            }
            ShareEvent::Revoke(Revoke { id, done }) => {
                let mine = self.mine.contains_key(&id);
                if mine {
                    tracing::info!(share = %id, "share revoked over HTTP");
                    self.end_share(id, "revoked", owner, outlet).await;
                }
                let _ = done.send(mine);
            }
        }
    }

    /// An owner's request from its socket.
    pub async fn request(&mut self, request: Request, owner: Owner<'_>, outlet: &Shared) {
        match request {
            Request::Create {
                mode,
                emails,
                expires_in_secs,
                screen,
                offset,
            } => {
                let (audience, expiry) = match checked(mode, emails, expires_in_secs) {
                    Ok(checked) => checked,
                    Err(message) => return tell(owner, ServerEvent::error(message)),
                };
                if self.mine.len() >= MAX_SHARES {
                    return tell(
                        owner,
                        ServerEvent::error("this terminal already has 8 shares"),
                    );
                }
                let seed = screen.zip(offset);
                self.create(mode, audience, expiry, seed, owner, outlet)
                    .await;
            }
            Request::Revoke(id) => match Uuid::parse_str(&id) {
                Ok(id) if self.mine.contains_key(&id) => {
                    self.end_share(id, "revoked", owner, outlet).await;
                }
                _ => tell(owner, ServerEvent::error("no such share")),
            },
            Request::Grant(viewer) => self.control(viewer, true, owner).await,
            Request::TakeBack(viewer) => self.control(viewer, false, owner).await,
        }
    }

    async fn create(
        &mut self,
        mode: ShareMode,
        audience: Audience,
        expiry: Duration,
        seed: Option<(String, u64)>,
        owner: Owner<'_>,
        outlet: &Shared,
    ) {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut_slice());
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()));
        let id = Uuid::new_v4();
        let expires = Instant::now() + expiry;
        if let Ok(mut outlet) = outlet.outlet.lock() {
            if outlet.mirror.is_none() {
                let mut mirror = Mirror::new(self.size);
                seed_mirror(&mut mirror, &outlet.ring, seed);
                outlet.mirror = Some(Box::new(mirror));
            }
        }
        let emails = audience.emails();
        let inbox = self.inbox.get_or_insert_with(Inbox::new);
        self.shares.insert(
            id,
            Entry {
                session: self.route.id,
                owner: self.audit.owner.0.clone(),
                secret_digest: digest(&secret),
                audience,
                expires,
                join: inbox.joins_tx.clone(),
                revoke: inbox.revokes_tx.clone(),
            },
        );
        let listing = ShareListing {
            id: id.to_string(),
            session: self.route.id.to_string(),
            mode: mode.as_str().to_owned(),
            emails: emails.clone(),
            expires_at: unix_secs().saturating_add(expiry.as_secs()),
        };
        self.mine.insert(
            id,
            MyShare {
                mode,
                expires,
                listing: listing.clone(),
            },
        );
        let route = self.route.clone();
        tokio::spawn(async move { publish(&route, id, &listing).await });
        tracing::info!(share = %id, ?mode, named = emails.len(), "terminal shared");
        tell_surely(
            owner,
            ServerEvent::ShareCreated {
                id: id.to_string(),
                secret: secret.to_string(),
                mode,
                emails: emails.clone(),
                expires_in_secs: expiry.as_secs(),
            },
        )
        .await;
        self.record(
            AuditKind::ShareCreated,
            serde_json::json!({
                "session": self.route.id.to_string(),
                "share": id.to_string(),
                "mode": mode,
                // The first few; the count says how many (details are bounded to 1 KiB).
                "emails": emails.iter().take(4).collect::<Vec<_>>(),
                "named": emails.len(),
                "expires_in_secs": expiry.as_secs(),
            }),
        );
    }

    /// End share `id` (revoked or expired): its viewers are closed with 4016 at once.
    async fn end_share(
        &mut self,
        id: Uuid,
        reason: &'static str,
        owner: Owner<'_>,
        outlet: &Shared,
    ) {
        self.shares.remove(id);
        self.mine.remove(&id);
        let ending: Vec<u64> = self
            .viewers
            .iter()
            .filter(|(_, viewer)| viewer.share == id)
            .map(|(viewer, _)| *viewer)
            .collect();
        for viewer in &ending {
            if let Some(viewer) = self.viewers.remove(viewer) {
                viewer.control.store(false, Ordering::SeqCst);
                viewer
                    .end
                    .send_replace(Some((Close::ShareEnded, "the owner stopped sharing")));
            }
        }
        if let Ok(mut outlet) = outlet.outlet.lock() {
            if let Some(mirror) = outlet.mirror.as_mut() {
                for viewer in &ending {
                    mirror.untap(*viewer);
                }
            }
            if self.mine.is_empty() && self.viewers.is_empty() {
                outlet.mirror = None;
            }
        }
        let route = self.route.clone();
        tokio::spawn(async move { forget(&route, id).await });
        tracing::info!(share = %id, reason, viewers = ending.len(), "share ended");
        tell_surely(
            owner,
            ServerEvent::ShareEnded {
                id: id.to_string(),
                reason: reason.into(),
            },
        )
        .await;
        self.tell_viewers(owner);
        self.record(
            AuditKind::ShareRevoked,
            serde_json::json!({
                "session": self.route.id.to_string(),
                "share": id.to_string(),
                "reason": reason,
                "viewers": ending.len(),
            }),
        );
    }

    async fn control(&mut self, id: u64, granted: bool, owner: Owner<'_>) {
        let Some(viewer) = self
            .viewers
            .get(&id)
            .filter(|viewer| viewer.mode == ShareMode::Control)
        else {
            return tell(
                owner,
                ServerEvent::error("no such viewer, or its share is view-only"),
            );
        };
        // The flag first: a viewer told it lost control can no longer type.
        viewer.control.store(granted, Ordering::SeqCst);
        let _ = viewer
            .out
            .try_send(ServerEvent::Control { granted }.to_message());
        let who = viewer.who.clone().unwrap_or_else(|| "anonymous".to_owned());
        let share = viewer.share.to_string();
        self.tell_viewers(owner);
        self.record(
            if granted {
                AuditKind::ControlGranted
            } else {
                AuditKind::ControlRevoked
            },
            serde_json::json!({
                "session": self.route.id.to_string(),
                "share": share,
                "viewer": who,
            }),
        );
    }

    fn join(&mut self, join: Join, owner: Owner<'_>, outlet: &Shared) {
        let Join { socket, share, who } = join;
        let Some(mode) = self.mine.get(&share).map(|share| share.mode) else {
            tokio::spawn(refuse(
                *socket,
                Close::ShareInvalid,
                "share no longer exists",
            ));
            return;
        };
        if self.viewers.len() >= MAX_VIEWERS {
            tokio::spawn(refuse(*socket, Close::ShareFull, "too many viewers"));
            return;
        }
        let id = self.next_viewer;
        self.next_viewer += 1;
        let (out, queue) = mpsc::channel::<Message>(VIEWER_QUEUE);
        let (end, ended) = watch::channel(None);
        // The snapshot and the viewer's queue under the lock the output is appended under: every
        // byte is either in the snapshot or in the queue, never both or neither.
        let snapshot = {
            let Ok(mut outlet) = outlet.outlet.lock() else {
                return;
            };
            let Some(mirror) = outlet.mirror.as_mut() else {
                return;
            };
            mirror.taps.push(Tap {
                id,
                out: out.clone(),
                end: end.clone(),
            });
            mirror.snapshot()
        };
        let (cols, rows) = self.size;
        let preamble = vec![
            ServerEvent::Joined {
                viewer: id,
                mode,
                cols,
                rows,
            }
            .to_message(),
            Message::Binary(snapshot),
        ];
        let control = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch_terminal(
            *socket,
            Watcher {
                id,
                who: Arc::from(who.as_deref().unwrap_or("anonymous")),
                mode,
                control: Arc::clone(&control),
                input: self.input.clone(),
                left: self.inbox.get_or_insert_with(Inbox::new).left_tx.clone(),
                keepalive: self.keepalive,
            },
            preamble,
            queue,
            ended,
        ));
        tracing::info!(share = %share, viewer = id, ?mode, "viewer joined");
        self.viewers.insert(
            id,
            Viewer {
                share,
                who,
                mode,
                control,
                out,
                end,
                task,
            },
        );
        self.tell_viewers(owner);
    }

    /// The owner's terminal was resized: the emulator and the viewers follow.
    pub fn resize(&mut self, cols: u32, rows: u32, outlet: &Shared) {
        let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        self.size = (clamp(cols), clamp(rows));
        if let Ok(mut outlet) = outlet.outlet.lock() {
            if let Some(mirror) = outlet.mirror.as_mut() {
                mirror.resize(self.size);
            }
        }
    }

    /// A re-attached owner: who is watching, if the terminal is shared.
    pub fn greet(&self, owner: Owner<'_>) {
        if !(self.viewers.is_empty() && self.mine.is_empty()) {
            self.tell_viewers(owner);
        }
    }

    /// Tell the owner who is watching.
    fn tell_viewers(&self, owner: Owner<'_>) {
        let viewers = self
            .viewers
            .iter()
            .map(|(id, viewer)| ViewerInfo {
                id: *id,
                share: viewer.share.to_string(),
                who: viewer.who.clone().unwrap_or_else(|| "anonymous".to_owned()),
                mode: viewer.mode,
                control: viewer.control.load(Ordering::SeqCst),
            })
            .collect();
        tell(owner, ServerEvent::Viewers { viewers });
    }

    /// Refresh the routes of the live shares (every bucket, with the session's).
    pub fn refresh(&self) {
        for (id, share) in &self.mine {
            let (id, route, listing) = (*id, self.route.clone(), share.listing.clone());
            tokio::spawn(async move { publish(&route, id, &listing).await });
        }
    }

    /// The terminal ended: every viewer gets `last` (the exit event, if any) and the same
    /// close; the shares and their routes go with it. Bounded: the viewers are closed together
    /// within about a second, whatever their sockets do.
    pub async fn end(&mut self, last: Option<Message>, close: Close, reason: &'static str) {
        for id in std::mem::take(&mut self.mine).into_keys() {
            self.shares.remove(id);
            let route = self.route.clone();
            tokio::spawn(async move { forget(&route, id).await });
        }
        let viewers = std::mem::take(&mut self.viewers);
        for viewer in viewers.values() {
            viewer.control.store(false, Ordering::SeqCst);
            if let Some(last) = &last {
                let _ = viewer.out.try_send(last.clone());
            }
            viewer.end.send_replace(Some((close, reason)));
        }
        let mut tasks: Vec<JoinHandle<()>> = viewers.into_values().map(|v| v.task).collect();
        let all = futures_util::future::join_all(tasks.iter_mut());
        if tokio::time::timeout(Duration::from_millis(1500), all)
            .await
            .is_err()
        {
            for task in &tasks {
                task.abort();
            }
        }
    }

    fn record(&self, kind: AuditKind, details: serde_json::Value) {
        let audit = Arc::clone(&self.audit);
        tokio::spawn(async move { audit.record(kind, details).await });
    }
}

/// Feed a new mirror what it needs to show the current screen: the session's whole output
/// when the ring still has it from byte 0; else the owner's screen and the ring after it;
/// else whatever the ring holds (the screen may then be incomplete until redrawn).
fn seed_mirror(mirror: &mut Mirror, ring: &super::ring::Ring, seed: Option<(String, u64)>) {
    let from_start = ring
        .replay_from(0)
        .ok()
        .filter(|replay| replay.dropped == 0);
    let replay = match (from_start, seed) {
        (Some(replay), _) => replay,
        (None, Some((screen, offset))) => {
            mirror.parser.process(screen.as_bytes());
            match ring.replay_from(offset) {
                Ok(replay) => replay,
                Err(_) => return,
            }
        }
        (None, None) => match ring.replay_from(0) {
            Ok(replay) => replay,
            Err(_) => return,
        },
    };
    for frame in &replay.frames {
        mirror.parser.process(frame);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn publish(route: &RouteKeeper, id: Uuid, listing: &ShareListing) {
    if let Err(err) = route
        .tickets
        .publish_share(id, &route.route, listing, route.clock.now())
        .await
    {
        tracing::warn!(error = %err, "could not publish the share route");
    }
}

async fn forget(route: &RouteKeeper, id: Uuid) {
    if let Err(err) = route
        .tickets
        .forget_share(id, &route.route.owner, route.clock.now())
        .await
    {
        tracing::warn!(error = %err, "could not delete the share route");
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// What a viewer's task needs besides its socket.
struct Watcher {
    id: u64,
    /// Who the viewer is, as the recording names them when they type.
    who: Arc<str>,
    mode: ShareMode,
    control: Arc<AtomicBool>,
    input: mpsc::Sender<Input>,
    left: mpsc::Sender<u64>,
    keepalive: Duration,
}

/// One viewer's socket, for its life: the preamble (joined, the screen), then what the output
/// task queues; its keystrokes go to the shell only while it has control. Ends when told to
/// (revoked, too slow, the terminal ended), when the viewer leaves or stops answering, then
/// tells the supervisor.
async fn watch_terminal(
    socket: WebSocket,
    watcher: Watcher,
    preamble: Vec<Message>,
    mut queue: mpsc::Receiver<Message>,
    mut ended: watch::Receiver<Option<(Close, &'static str)>>,
) {
    let (mut sink, mut stream) = socket.split();
    let liveness = Liveness::new(watcher.keepalive, None);
    let mut tick = tokio::time::interval(liveness.tick_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut close = None;
    let mut sent = true;
    for message in preamble {
        if !matches!(within_stall(sink.feed(message)).await, Some(Ok(()))) {
            sent = false;
            break;
        }
    }
    if sent && !matches!(within_stall(sink.flush()).await, Some(Ok(()))) {
        sent = false;
    }
    if sent {
        loop {
            tokio::select! {
                biased;
                changed = ended.changed() => {
                    close = if changed.is_ok() { *ended.borrow() } else { None };
                    break;
                }
                message = queue.recv() => {
                    let Some(message) = message else { break };
                    let send = if queue.is_empty() {
                        sink.send(message).left_future()
                    } else {
                        sink.feed(message).right_future()
                    };
                    tokio::select! {
                        biased;
                        changed = ended.changed() => {
                            close = if changed.is_ok() { *ended.borrow() } else { None };
                            break;
                        }
                        result = within_stall(send) => match result {
                            Some(Ok(())) => liveness.delivered(),
                            Some(Err(_)) => break,
                            None => {
                                close = Some((Close::ClientUnresponsive, "viewer stopped reading"));
                                break;
                            }
                        },
                    }
                }
                frame = stream.next() => {
                    liveness.heard();
                    let Some(Ok(message)) = frame else { break };
                    match viewer_frame(message, &watcher).await {
                        Reply::Answer(answer) => {
                            let _ = within_stall(sink.send(answer.to_message())).await;
                        }
                        Reply::Leave => break,
                        Reply::Nothing => {}
                    }
                }
                _ = tick.tick() => match liveness.check() {
                    Verdict::Gone => {
                        close = Some((Close::ClientUnresponsive, "viewer stopped answering pings"));
                        break;
                    }
                    Verdict::Ping => {
                        let _ = within_stall(sink.send(Message::Ping(Bytes::new()))).await;
                    }
                    Verdict::Alive | Verdict::Idle => {}
                },
            }
        }
    }
    if let Some((code, reason)) = close {
        tracing::info!(
            viewer = watcher.id,
            code = code.code(),
            reason,
            "viewer closed"
        );
        // What was queued before the end (an `exit` event) goes first.
        while let Ok(message) = queue.try_recv() {
            if matches!(message, Message::Text(_)) {
                let _ = tokio::time::timeout(Duration::from_millis(500), sink.feed(message)).await;
            }
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(close_message(code, reason)),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    let _ = watcher.left.try_send(watcher.id);
}

/// What a viewer's frame calls for.
enum Reply {
    Nothing,
    Answer(ServerEvent),
    /// The viewer left (a close frame), or the shell's input is gone.
    Leave,
}

/// A viewer's frame: keystrokes go to the shell only while the viewer has control.
async fn viewer_frame(message: Message, watcher: &Watcher) -> Reply {
    let keystrokes = match message {
        Message::Binary(bytes) => bytes,
        Message::Text(text) => match serde_json::from_str::<ClientEvent>(text.as_str()) {
            Ok(ClientEvent::Data { data } | ClientEvent::Input { data }) => Bytes::from(data),
            Ok(ClientEvent::Ping { id }) => return Reply::Answer(ServerEvent::Pong { id }),
            Ok(ClientEvent::Heartbeat | ClientEvent::Ack { .. } | ClientEvent::Resize { .. }) => {
                return Reply::Nothing;
            }
            _ => {
                return Reply::Answer(ServerEvent::error(
                    "a viewer may send only keystrokes, ping and heartbeat",
                ));
            }
        },
        Message::Close(_) => return Reply::Leave,
        Message::Ping(_) | Message::Pong(_) => return Reply::Nothing,
    };
    if watcher.mode == ShareMode::View {
        return Reply::Answer(ServerEvent::error(
            "view-only share: input is not sent to the terminal",
        ));
    }
    if !watcher.control.load(Ordering::SeqCst) {
        return Reply::Answer(ServerEvent::error(
            "the owner has not given you control; input is not sent",
        ));
    }
    let sent = tokio::time::timeout(
        Duration::from_secs(5),
        watcher
            .input
            .send(Input::Viewer(Arc::clone(&watcher.who), keystrokes)),
    )
    .await;
    match sent {
        Ok(Ok(())) => Reply::Nothing,
        _ => Reply::Leave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_share_is_view_only_and_emails_are_checked() {
        assert!(checked(ShareMode::Control, vec![], None).is_err());
        assert!(matches!(
            checked(ShareMode::View, vec![], None),
            Ok((Audience::Link, DEFAULT_EXPIRY))
        ));
        assert!(checked(ShareMode::View, vec!["nobody".into()], None).is_err());
        assert!(checked(ShareMode::View, vec![], Some(0)).is_err());
        assert!(checked(ShareMode::View, vec![], Some(86_401)).is_err());
        let (audience, _) = checked(
            ShareMode::Control,
            vec![" Bob@Example.com ".into()],
            Some(60),
        )
        .unwrap();
        assert!(audience.admits(Some("bob@example.com")));
        assert!(audience.admits(Some("BOB@example.com")));
        assert!(!audience.admits(Some("eve@example.com")));
        assert!(!audience.admits(None));
    }

    #[test]
    fn the_mirror_redraws_what_was_printed() {
        let mut mirror = Mirror::new((80, 24));
        mirror.output(&Bytes::from_static(b"hello \x1b[1mworld\x1b[0m\r\n$ "));
        let mut fresh = vt100::Parser::new(size(80, 24).0, size(80, 24).1, 0);
        fresh.process(&mirror.snapshot());
        assert_eq!(fresh.screen().contents(), mirror.parser.screen().contents());
        assert!(fresh.screen().contents().contains("hello world"));
        assert_eq!(
            fresh.screen().cursor_position(),
            mirror.parser.screen().cursor_position()
        );
    }

    #[tokio::test]
    async fn a_full_viewer_queue_drops_that_viewer_only() {
        let mut mirror = Mirror::new((80, 24));
        let (slow_out, _slow_queue) = mpsc::channel(1);
        let (slow_end, slow_ended) = watch::channel(None);
        let (fast_out, mut fast_queue) = mpsc::channel(4);
        let (fast_end, _fast_ended) = watch::channel(None);
        mirror.taps.push(Tap {
            id: 1,
            out: slow_out,
            end: slow_end,
        });
        mirror.taps.push(Tap {
            id: 2,
            out: fast_out,
            end: fast_end,
        });
        mirror.output(&Bytes::from_static(b"a"));
        let _ = fast_queue.recv().await;
        mirror.output(&Bytes::from_static(b"b"));
        assert_eq!(mirror.taps.len(), 1);
        assert_eq!(mirror.taps[0].id, 2);
        assert_eq!(
            slow_ended.borrow().map(|(code, _)| code),
            Some(Close::ViewerTooSlow)
        );
    }
}
