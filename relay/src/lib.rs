//! relay: the long-lived half of the product. It serves
//! `POST /api/v1/machine/{id}/connect`, `PUT /api/v1/machine/{id}/host-key`, the terminal
//! WebSocket `GET /ssh?uuid=…` (and its resume, `GET /ssh?session=…`, and a share's viewers,
//! `GET /ssh?share=…`) and the owner's live shares (`GET /api/v1/shares`,
//! `DELETE /api/v1/share/{id}`), holds live SSH sessions in memory, and routes tickets through
//! a [`TicketTable`] (Redis across replicas, in-process for one).
//!
//! The crate is a library so that the all-in-one local binary (`sushi`, in `relay/sushi/`) can
//! mount [`routes`] next to api-fn's, while `main.rs` stays a thin production entry point that
//! does not contain the API. Module map: `config` (the relay's settings), `connect` (HTTP
//! handlers), `ssh/` (russh client, target policy), `tickets/` (the ticket table), `ws/` (the
//! terminal: protocol, liveness, pump, forwarding, sharing), `share_api` (live shares over HTTP), `sessions` (pending sessions and capacity), `org_access` (ending a removed organization member's terminals),
//! `drain` (SIGTERM), `metrics` (the relay's Prometheus metrics), `redis` (the Redis connection behind the ticket table), `web` (the
//! embedded web app). HTTP plumbing (envelope, auth, layers, serve)
//! comes from the `edge` crate, the machine/vault logic from `domain`.

pub mod config;
mod connect;
pub mod drain;
pub mod files;
pub mod metrics;
pub mod org_access;
pub mod recording;
pub mod redis;
pub mod sessions;
pub mod share_api;
pub mod ssh;
pub mod tickets;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post, put};
use domain::Machines;
use domain::config::{Config, ConfigError};
use edge::auth::Authenticator;
use edge::layers;
use tokio::sync::watch;

pub use config::RelayConfig;
pub use drain::{Phase, drain};
use tickets::{InProcessTickets, RedisTickets, TicketClock, TicketTable};

/// Everything a relay request needs. Shared by `Arc`; handlers never lock it.
pub struct Relay {
    pub machines: Arc<Machines>,
    pub authenticator: Arc<Authenticator>,
    pub tickets: Arc<dyn TicketTable>,
    pub sessions: Arc<sessions::Sessions>,
    /// Connects in progress, per user (`MAX_CONNECTS_PER_USER`).
    pub connects: Arc<sessions::PerUser>,
    pub config: RelayConfig,
    /// This relay's base URL as other relays reach it, stored in every route it registers.
    pub advertise: String,
    pub clock: TicketClock,
    pub phase: watch::Sender<Phase>,
    /// Live terminals a resume can reach.
    pub terminals: Arc<ws::resume::Terminals>,
    /// What all terminals' resume buffers may hold together.
    pub resume_budget: Arc<ws::ring::Budget>,
    /// Live shares of this relay's terminals, which a viewer's socket can join.
    pub shares: Arc<ws::share::Shares>,
    /// Relay-to-relay HTTP (a share revoke forwarded to the relay holding it): no redirects,
    /// bounded connect and request times.
    pub http: reqwest::Client,
    /// This relay's terminals whose files can be browsed and transferred.
    pub files: Arc<files::registry::Registry>,
    /// This relay's terminals on organization machines, ended when their user loses access.
    pub org_terminals: Arc<org_access::OrgTerminals>,
}

#[derive(Clone)]
pub struct RelayState(pub Arc<Relay>);

impl FromRef<RelayState> for Arc<Authenticator> {
    fn from_ref(state: &RelayState) -> Self {
        Arc::clone(&state.0.authenticator)
    }
}

/// The backends a relay runs on, wired from configuration: the domain service (store, keys
/// and the guess limiter, which lives in the store so the API and every relay share it) and
/// the ticket table: with `REDIS_URL`, Redis (TLS trusting `REDIS_CA_FILE` when set), shared by
/// replicas; without it, in-process.
pub async fn wire(
    shared_config: &Config,
    config: &RelayConfig,
) -> Result<(Arc<Machines>, Arc<dyn TicketTable>), ConfigError> {
    let ca = match &config.redis_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| ConfigError(format!("REDIS_CA_FILE={}: {e}", path.display())))?,
        ),
        None => None,
    };
    let tickets: Arc<dyn TicketTable> = match &config.redis_url {
        Some(url) => {
            let conn =
                redis::connect(url, ca.as_deref()).map_err(|e| ConfigError(e.to_string()))?;
            Arc::new(RedisTickets::new(conn, url))
        }
        None => Arc::new(InProcessTickets::new()),
    };
    let machines = backends::wire(shared_config).await?;
    tracing::info!(tickets = %tickets.describe(), "ticket table selected");
    Ok((machines, tickets))
}

impl Relay {
    /// A relay on `listening` (the bound address, advertised unless `RELAY_ADVERTISE_URL` says
    /// otherwise), wired from configuration.
    pub async fn start(
        shared_config: &Config,
        config: RelayConfig,
        listening: std::net::SocketAddr,
    ) -> Result<Arc<Self>, ConfigError> {
        let (machines, tickets) = wire(shared_config, &config).await?;
        let authenticator = Arc::new(Authenticator::from_config(
            shared_config,
            Arc::clone(machines.store()),
        )?);
        let advertise = config
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}"));
        tracing::info!(%advertise, "relay advertises");
        Ok(Self::new(
            machines,
            authenticator,
            tickets,
            config,
            advertise,
        ))
    }

    pub fn new(
        machines: Arc<Machines>,
        authenticator: Arc<Authenticator>,
        tickets: Arc<dyn TicketTable>,
        config: RelayConfig,
        advertise: String,
    ) -> Arc<Self> {
        let (phase, _) = drain::channel();
        let sessions = sessions::Sessions::new(config.max_sessions, config.max_sessions_per_user);
        let resume_budget = ws::ring::Budget::new(config.resume_buffer_total_bytes);
        metrics::watch(&sessions, machines.kdf(), &resume_budget);
        edge::metrics::watch_audit(machines.audit());
        let org_terminals = org_access::OrgTerminals::new();
        org_access::spawn_sweep(
            Arc::clone(&machines),
            Arc::clone(&sessions),
            &org_terminals,
            config.org_access_check,
        );
        Arc::new(Self {
            machines,
            authenticator,
            tickets,
            sessions,
            connects: sessions::PerUser::new(config.max_connects_per_user),
            clock: TicketClock::new(config.ticket_bucket_secs),
            terminals: ws::resume::Terminals::new(),
            shares: ws::share::Shares::new(),
            http: relay_client(),
            files: files::registry::Registry::new(),
            org_terminals,
            resume_budget,
            config,
            advertise,
            phase,
        })
    }

    pub fn draining(&self) -> bool {
        !matches!(*self.phase.borrow(), Phase::Running)
    }

    /// What each terminal pump needs to know.
    pub fn pump_settings(&self) -> ws::pump::PumpSettings {
        ws::pump::PumpSettings {
            keepalive: self.config.keepalive,
            idle_timeout: self.config.idle_timeout,
            resume_grace: self.config.resume_grace,
            ring_bytes: self.config.resume_buffer_bytes,
        }
    }

    /// Connect's whole-request bound: the SSH dial and handshake under their own timeouts,
    /// plus room for the vault (Argon2id, KMS) and the ticket registration.
    fn connect_deadline(&self) -> Duration {
        self.config.ssh_connect_timeout
            + self.config.ssh_handshake_timeout
            + Duration::from_secs(15)
    }
}

fn relay_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(share_api::FORWARD_TIMEOUT)
        .build()
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "relay HTTP client could not be configured; using defaults");
            reqwest::Client::new()
        })
}

/// Resolves once a shutdown signal arrived and the relay has drained: what `serve` waits for.
pub async fn shutdown(relay: Arc<Relay>) {
    edge::serve::terminated().await;
    drain(&relay).await;
}

/// Choose rustls's process-wide crypto provider before any TLS client exists (the Redis
/// `rediss://` connection relies on the default). Idempotent.
pub fn install_tls_provider() {
    edge::tls::install_crypto_provider();
}

/// The relay's routes, for mounting (the local binary merges them with api-fn's). Connect and
/// host-key answer within [`Relay::connect_deadline`]; the WebSocket's deadline covers only
/// its upgrade answer.
pub fn routes(relay: Arc<Relay>) -> Router {
    let deadline = relay.connect_deadline();
    let routes = Router::new()
        .route("/api/v1/machine/{id}/connect", post(connect::connect))
        .route("/api/v1/machine/{id}/host-key", put(connect::set_host_key))
        .route("/ssh", get(ws::terminal))
        .route("/api/v1/shares", get(share_api::list))
        .route("/api/v1/share/{id}", delete(share_api::revoke))
        .route("/relay/health", get(connect::health))
        .with_state(RelayState(Arc::clone(&relay)));
    // Files: browsing and changes under their own deadline; transfers under none (a download
    // answers at once and streams after; an upload answers after its body), each chunk bounded
    // by its own stall timeout instead.
    let changes = Router::new()
        .route("/files/{session}/list", get(files::list))
        .route("/files/{session}/mkdir", post(files::mkdir))
        .route("/files/{session}/rename", post(files::rename))
        .route("/files/{session}", delete(files::remove))
        .with_state(RelayState(Arc::clone(&relay)));
    let transfers = Router::new()
        .route("/files/{session}/download", get(files::download))
        .route("/files/{session}/upload", put(files::upload))
        .with_state(RelayState(relay));
    layers::with_deadline(routes, deadline)
        .merge(layers::with_deadline(
            changes,
            files::OPERATION_DEADLINE + Duration::from_secs(20),
        ))
        .merge(transfers)
}

/// The relay as a complete service: its routes, the plain `/health` load balancers and the
/// container health check probe (the local binary serves api-fn's there instead), the web app,
/// inside the edge's layers.
pub fn router(relay: Arc<Relay>) -> Router {
    let health = Router::new()
        .route("/health", get(connect::health))
        .with_state(RelayState(Arc::clone(&relay)));
    layers::wrap(routes(relay).merge(health).merge(web::routes()))
}
