//! api-fn: the stateless Machines API as one axum router.
//!
//! The same router runs under `lambda_http` in AWS Lambda and as a plain server on a laptop
//! (see `main.rs`); the local all-in-one `sushi` binary mounts [`api_routes`] too. Handlers only
//! extract (validated request types from the edge), call `domain::Machines` and wrap the
//! result in the envelope: no JSON by hand, no SDK.

mod audit;
mod handlers;
mod orgs;
mod recordings;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post, put};
use domain::Machines;
use edge::auth::Authenticator;
use edge::extract::ClientAddr;
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
            get(handlers::get_machine)
                .patch(handlers::update_machine)
                .delete(handlers::delete_machine),
        )
        .route(
            "/api/v1/master-password",
            put(handlers::set_master_password),
        )
        .route("/api/v1/orgs", post(orgs::create).get(orgs::list))
        .route("/api/v1/orgs/{slug}", get(orgs::get))
        .route("/api/v1/orgs/{slug}/invitations", post(orgs::invite))
        .route(
            "/api/v1/orgs/{slug}/invitations/{email}",
            delete(orgs::withdraw),
        )
        .route(
            "/api/v1/orgs/{slug}/members/{member}",
            put(orgs::set_role).delete(orgs::remove),
        )
        .route(
            "/api/v1/orgs/{slug}/members/{member}/key",
            post(orgs::grant_key),
        )
        .route("/api/v1/orgs/{slug}/key", get(orgs::key_status))
        .route("/api/v1/orgs/{slug}/recordings", get(recordings::list_org))
        .route("/api/v1/orgs/{slug}/audit", get(audit::list_org))
        .route("/api/v1/orgs/{slug}/audit/export", get(audit::export_org))
        .route("/api/v1/orgs/{slug}/audit/verify", get(audit::verify_org))
        .route("/api/v1/orgs/{slug}/key/rotate", post(orgs::rotate_key))
        .route("/api/v1/invitations", get(orgs::my_invitations))
        .route("/api/v1/invitations/{slug}/accept", post(orgs::accept))
        .route("/api/v1/recordings", get(recordings::list))
        .route(
            "/api/v1/recording/{id}",
            get(recordings::fetch).delete(recordings::delete),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/export", get(audit::export))
        .route("/api/v1/audit/verify", get(audit::verify))
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
        audit: Arc::clone(state.machines.audit()),
    };
    api_routes(state).merge(layers::with_deadline(
        auth_routes(auth),
        layers::API_DEADLINE,
    ))
}

/// The complete service: [`routes_with_sign_in`] inside the edge's layers.
pub fn router(state: AppState, sign_in: Arc<SignIn>) -> Router {
    layers::wrap(with_source_ip(routes_with_sign_in(state, sign_in)))
}

/// [`router`] for a site whose public origins are given, not read from the environment.
pub fn router_for_site(state: AppState, sign_in: Arc<SignIn>, site: SitePolicy) -> Router {
    layers::wrap_with(with_source_ip(routes_with_sign_in(state, sign_in)), site)
}

/// In Lambda there is no TCP peer: the client address is API Gateway's `sourceIp` (HTTP API
/// and REST API events; an ALB event carries none), handed to the edge's `Client` extractor as
/// [`ClientAddr`]. Elsewhere the request has no Lambda context and passes unchanged.
fn with_source_ip(routes: Router) -> Router {
    routes.layer(axum::middleware::from_fn(
        |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
            // Trusted proxies' report (the edge, `TRUSTED_PROXY_HOPS`) outranks API Gateway's
            // peer, which behind CloudFront is CloudFront.
            let reported = request.extensions().get::<ClientAddr>().is_some();
            if let (false, Some(ip)) = (reported, source_ip(&request)) {
                request.extensions_mut().insert(ClientAddr(ip));
            }
            next.run(request).await
        },
    ))
}

fn source_ip(request: &axum::extract::Request) -> Option<std::net::IpAddr> {
    use lambda_http::request::RequestContext;
    let raw = match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.as_deref(),
        _ => None,
    }?;
    raw.parse().ok()
}
