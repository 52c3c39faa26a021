//! api-fn: the stateless Machines CRUD API (DESIGN.md section 2) as one axum router.
//!
//! The same router runs under `lambda_http` in AWS Lambda and as a plain server on a laptop
//! (see `main.rs`); the relay's local all-in-one mode mounts it too. Handlers only extract, call
//! `shared::service::Machines` and wrap the result in the envelope.

pub mod auth_routes;
mod extract;
mod handlers;
mod middleware;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post, put};
use shared::auth::Authenticator;
use shared::bootstrap::Services;
use shared::service::Machines;

pub use auth_routes::{AuthState, auth_routes};

/// Request bodies above this are refused with 413 (DESIGN.md section 2).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Whole-request deadline; backend calls have their own, shorter ones.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);

#[derive(Clone)]
pub struct AppState {
    pub machines: Arc<Machines>,
    pub authenticator: Arc<Authenticator>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.authenticator)
    }
}

impl From<Services> for AppState {
    fn from(services: Services) -> Self {
        Self {
            machines: services.machines,
            authenticator: services.authenticator,
        }
    }
}

/// The API routes alone, for mounting into another router (the relay's local mode).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/machine", post(handlers::create_machine))
        .route("/api/v1/machines", get(handlers::list_machines))
        .route(
            "/api/v1/machine/{id}",
            get(handlers::get_machine).delete(handlers::delete_machine),
        )
        .route(
            "/api/v1/master-password",
            put(handlers::set_master_password),
        )
        .route("/api/v1/health", get(handlers::health))
        .route("/health", get(handlers::health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The complete service: routes, JSON 404/405, request ids, tracing, timeout, panic safety net.
pub fn router(services: Services) -> Router {
    middleware::wrap(api_routes(services.into()))
}

/// [`router`] plus the browser sign-in routes (`/api/v1/auth/*`, see `auth_routes`).
pub fn router_with_sign_in(services: Services, sign_in: Arc<shared::oidc::SignIn>) -> Router {
    let auth = AuthState {
        sign_in,
        authenticator: Arc::clone(&services.authenticator),
    };
    middleware::wrap(api_routes(services.into()).merge(auth_routes(auth)))
}
