//! api-fn: the stateless Machines API as one axum router.
//!
//! The same router runs under `lambda_http` in AWS Lambda and as a plain server on a laptop
//! (see `main.rs`); the local all-in-one `sushi` binary mounts [`api_routes`] too. Handlers only
//! extract (validated request types from the edge), call `domain::Machines` and wrap the
//! result in the envelope: no JSON by hand, no SDK.

mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post, put};
use domain::Machines;
use edge::auth::Authenticator;
use edge::layers;
use edge::site::SitePolicy;
use signin::{AuthState, SignIn, auth_routes};

/// What every API handler needs.
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

/// The Machines and account routes under the API deadline, for mounting (the `sushi` binary
/// merges them with the relay's).
pub fn api_routes(state: AppState) -> Router {
    let routes = Router::new()
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
        .route("/api/v1/openapi.json", get(handlers::openapi_document))
        .with_state(state);
    layers::with_deadline(routes, layers::API_DEADLINE)
}

/// The API routes plus browser sign-in (`/api/v1/auth/*`), both under the API deadline.
pub fn routes_with_sign_in(state: AppState, sign_in: Arc<SignIn>) -> Router {
    let auth = AuthState {
        sign_in,
        authenticator: Arc::clone(&state.authenticator),
    };
    api_routes(state).merge(layers::with_deadline(
        auth_routes(auth),
        layers::API_DEADLINE,
    ))
}

/// The complete service: [`routes_with_sign_in`] inside the edge's layers.
pub fn router(state: AppState, sign_in: Arc<SignIn>) -> Router {
    layers::wrap(routes_with_sign_in(state, sign_in))
}

/// [`router`] for a site whose public origins are given, not read from the environment.
pub fn router_for_site(state: AppState, sign_in: Arc<SignIn>, site: SitePolicy) -> Router {
    layers::wrap_with(routes_with_sign_in(state, sign_in), site)
}
