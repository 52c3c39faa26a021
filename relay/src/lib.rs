//! relay: the long-lived half of the product (DESIGN.md section 4). It serves
//! `POST /api/v1/machine/{id}/connect`, `PUT /api/v1/machine/{id}/host-key` and the terminal
//! WebSocket `GET /ssh?uuid=…`, holds live SSH sessions in memory, and routes tickets through
//! a [`RouteTable`] (Redis across replicas, in-process for one).
//!
//! The crate is a library so that the all-in-one local binary (`sushi`, in `relay/local/`) can mount
//! [`routes`] next to api-fn's, while `main.rs` stays a thin production entry point that does
//! not contain the API. Module map: `config` (environment), `connect` (HTTP handlers), `ssh`
//! (russh client), `ws` (upgrade, ticket checks, the terminal pump), `forward` (relay to relay),
//! `sessions` (pending sessions and capacity), `drain` (SIGTERM), `http` (common layers).

pub mod config;
mod connect;
pub mod drain;
mod forward;
pub mod http;
pub mod sessions;
pub mod ssh;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post, put};
use shared::auth::Authenticator;
use shared::bootstrap::Services;
use shared::config::{Config, ConfigError};
use shared::ratelimit::{AttemptLimiter, InProcessLimiter};
use shared::routes::{InProcessRoutes, RedisRoutes, RouteTable, TicketClock};
use shared::service::Machines;
use tokio::sync::watch;

pub use config::RelayConfig;
pub use drain::{Phase, drain};

/// Request bodies above this are refused (connect and host-key bodies are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a relay request needs. Shared by `Arc`; handlers never lock it.
pub struct Relay {
    pub machines: Arc<Machines>,
    pub authenticator: Arc<Authenticator>,
    pub routes: Arc<dyn RouteTable>,
    pub sessions: Arc<sessions::Sessions>,
    pub config: RelayConfig,
    /// This relay's base URL as other relays reach it, stored in every route it registers.
    pub advertise: String,
    pub clock: TicketClock,
    pub phase: watch::Sender<Phase>,
}

#[derive(Clone)]
pub struct RelayState(pub Arc<Relay>);

impl FromRef<RelayState> for Arc<Authenticator> {
    fn from_ref(state: &RelayState) -> Self {
        Arc::clone(&state.0.authenticator)
    }
}

/// The shared services plus the route table, wired from configuration: with `REDIS_URL`, the
/// Redis route table and a Redis-backed attempt limiter (so the limit holds across replicas),
/// over TLS trusting `REDIS_CA_FILE` when set; without it, both in-process.
pub async fn backends(
    shared_config: &Config,
    config: &RelayConfig,
) -> Result<(Services, Arc<dyn RouteTable>), ConfigError> {
    let ca = match &config.redis_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| ConfigError(format!("REDIS_CA_FILE={}: {e}", path.display())))?,
        ),
        None => None,
    };
    let (limiter, routes): (Arc<dyn AttemptLimiter>, Arc<dyn RouteTable>) = match &config.redis_url
    {
        Some(url) => {
            let conn = shared::routes::redis::connect(url, ca.as_deref())
                .map_err(|e| ConfigError(e.to_string()))?;
            (
                Arc::new(shared::ratelimit_redis::RedisLimiter::with_defaults(
                    conn.clone(),
                )),
                Arc::new(RedisRoutes::new(conn, url)),
            )
        }
        None => (
            Arc::new(InProcessLimiter::default()),
            Arc::new(InProcessRoutes::new()),
        ),
    };
    let services = shared::bootstrap::build_with_limiter(shared_config, limiter).await?;
    tracing::info!(routes = %routes.describe(), "route table selected");
    Ok((services, routes))
}

impl Relay {
    pub fn new(
        services: &Services,
        routes: Arc<dyn RouteTable>,
        config: RelayConfig,
        advertise: String,
    ) -> Arc<Self> {
        let (phase, _) = drain::channel();
        Arc::new(Self {
            machines: Arc::clone(&services.machines),
            authenticator: Arc::clone(&services.authenticator),
            routes,
            sessions: sessions::Sessions::new(config.max_sessions),
            clock: TicketClock::new(config.ticket_bucket_secs),
            config,
            advertise,
            phase,
        })
    }

    pub fn draining(&self) -> bool {
        !matches!(*self.phase.borrow(), Phase::Running)
    }
}

/// Choose rustls's process-wide crypto provider before any TLS client exists. Several crates
/// here enable different rustls back ends (aws-lc-rs through the AWS SDK, ring through reqwest);
/// with more than one compiled in, clients that rely on the default (the Redis `rediss://`
/// connection) would otherwise refuse to start. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The relay's routes, for mounting (the local binary merges them with api-fn's).
pub fn routes(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/api/v1/machine/{id}/connect", post(connect::connect))
        .route("/api/v1/machine/{id}/host-key", put(connect::set_host_key))
        .route("/ssh", get(ws::terminal))
        .route("/relay/health", get(connect::health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(RelayState(relay))
}

/// The relay as a complete service: its routes, the plain `/health` load balancers and the
/// container health check probe (the local binary serves api-fn's there instead), and the
/// common layers.
pub fn router(relay: Arc<Relay>) -> Router {
    let health = Router::new()
        .route("/health", get(connect::health))
        .with_state(RelayState(Arc::clone(&relay)));
    http::wrap(routes(relay).merge(health).merge(web::routes()))
}
