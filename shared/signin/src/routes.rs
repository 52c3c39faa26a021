//! `/api/v1/auth/*`: browser sign-in, mapped onto HTTP (the flow lives in [`crate::provider`]).
//!
//! * `GET  /api/v1/auth/providers`: which sign-in buttons to show (and whether development
//!   sign-in is on).
//! * `GET  /api/v1/auth/url?to=github|google|oidc[&return_to=/path]`: the provider URL to send
//!   the browser to, plus the short-lived state cookie (original suSHi shape: URL in `data`).
//! * `GET  /api/v1/auth/callback?code&state`: the provider's redirect back. Success sets the
//!   `jwt` session cookie and answers 303 to the page the sign-in started from; failure
//!   answers the envelope with a message a person can act on. The state cookie is cleared
//!   either way, so one attempt can be finished once.
//! * `POST /api/v1/auth/logout`: revokes the session token (its `jti` is denied until it
//!   expires, everywhere) and clears the cookie. POST, so a link or image cannot sign anyone
//!   out.
//! * `POST /api/v1/auth/dev {"email"}`: development sign-in, present only when
//!   `DevSignIn` exists (never with cloud backends, only on a loopback bind) and answered
//!   only for a loopback `Host`. JSON content type required (415), which a cross-site form
//!   cannot send without a CORS preflight.
//! * `GET  /api/v1/auth/me`: who the session belongs to (the cookie is HttpOnly, so the page
//!   asks).
//!
//! A separate state and router, merged next to the Machines routes, so those handlers and
//! `AppState` stay untouched.
//!
//! A completed sign-in (provider or development) and a sign-out of a token that verifies are
//! recorded in the user's audit log, with where the request came from; a failed write there is
//! logged and counted and the sign-in still completes (see `domain::audit`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::Identity;
use domain::audit::{AuditContext, AuditKind, Auditor};
use edge::auth::{AuthError, Authenticator, single_cookie, token_from_headers};
use edge::extract::{Caller, Client, JsonBody};
use edge::site::host_is_loopback;
use edge::{ApiError, Reply};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::Callback;
use crate::session::{SESSION_COOKIE, clear_cookie, set_cookie};
use crate::state::{STATE_COOKIE, STATE_COOKIE_PATH, STATE_TTL_SECS};
use crate::{SignIn, SignInError};

/// What the auth routes need: the sign-in flow and the authenticator (for `/me`).
#[derive(Clone)]
pub struct AuthState {
    pub sign_in: Arc<SignIn>,
    pub authenticator: Arc<Authenticator>,
    /// Where sign-ins and sign-outs are recorded.
    pub audit: Arc<Auditor>,
}

/// Record a session minted for `email` (a verified email: the session's identity).
async fn record_sign_in(state: &AuthState, client: &AuditContext, email: &str, provider: &str) {
    if let Some(owner) = Identity::email(email) {
        let details = serde_json::json!({ "provider": provider });
        state
            .audit
            .record(&owner, client, AuditKind::SignIn, details)
            .await;
    }
}

impl FromRef<AuthState> for Arc<Authenticator> {
    fn from_ref(state: &AuthState) -> Self {
        Arc::clone(&state.authenticator)
    }
}

pub fn auth_routes(state: AuthState) -> Router {
    Router::new()
        .route("/api/v1/auth/providers", get(providers))
        .route("/api/v1/auth/url", get(start))
        .route("/api/v1/auth/callback", get(callback))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/dev", post(dev))
        .route("/api/v1/auth/me", get(me))
        .with_state(state)
}

fn failure(err: SignInError, cookies: &[String]) -> Response {
    let mut response = ApiError::from(err).into_response();
    append_cookies(&mut response, cookies);
    response
}

fn append_cookies(response: &mut Response, cookies: &[String]) {
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// This site's origin as the browser sees it (for the redirect URI when `PUBLIC_URL` is
/// unset), and whether it is https. The Host header is checked to be a plain host[:port]; a
/// spoofed one only yields a redirect URI the provider has not registered.
fn request_origin(headers: &HeaderMap) -> Result<(String, bool), SignInError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| SignInError::BadRequest("the request has no usable Host header".into()))?;
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    Ok((format!("{scheme}://{host}"), https))
}

fn is_https(headers: &HeaderMap) -> bool {
    request_origin(headers).is_ok_and(|(_, https)| https)
}

/// One sign-in button.
#[derive(Serialize)]
struct ProviderOption {
    id: String,
    name: String,
}

/// `GET /api/v1/auth/providers`.
#[derive(Serialize)]
struct SignInOptions {
    providers: Vec<ProviderOption>,
    /// Whether the development sign-in is on.
    dev: bool,
}

/// `GET /api/v1/auth/url`.
#[derive(Serialize)]
struct SignInUrl {
    url: String,
}

/// Who a session belongs to (`/me`, and the development sign-in's answer).
#[derive(Serialize)]
struct SessionOwner {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'static str>,
}

async fn providers(State(state): State<AuthState>) -> Reply<SignInOptions> {
    let providers = state
        .sign_in
        .providers()
        .into_iter()
        .map(|(id, name)| ProviderOption {
            id: id.to_string(),
            name: name.to_string(),
        })
        .collect();
    Reply::ok(
        "Sign-in options fetched successfully",
        SignInOptions {
            providers,
            dev: state.sign_in.dev().is_some(),
        },
    )
}

#[derive(Deserialize)]
struct StartQuery {
    to: Option<String>,
    return_to: Option<String>,
}

async fn start(
    State(state): State<AuthState>,
    headers: HeaderMap,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return failure(SignInError::BadRequest("invalid query string".into()), &[]);
    };
    let Some(to) = query.to.filter(|t| !t.is_empty()) else {
        return failure(
            SignInError::BadRequest("to is required (github, google or oidc)".into()),
            &[],
        );
    };
    let (origin, https) = match request_origin(&headers) {
        Ok(origin) => origin,
        Err(err) => return failure(err, &[]),
    };
    match state
        .sign_in
        .start(&to, &origin, query.return_to.as_deref())
        .await
    {
        Ok((url, sealed)) => {
            let secure = state.sign_in.secure_cookies(https);
            let mut response =
                Reply::ok("Sign-in URL created successfully", SignInUrl { url }).into_response();
            append_cookies(
                &mut response,
                &[set_cookie(
                    STATE_COOKIE,
                    &sealed,
                    STATE_COOKIE_PATH,
                    STATE_TTL_SECS,
                    secure,
                )],
            );
            response
        }
        Err(err) => failure(err, &[]),
    }
}

async fn callback(
    State(state): State<AuthState>,
    Client(client): Client,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let secure = state.sign_in.secure_cookies(is_https(&headers));
    let clear_state = clear_cookie(STATE_COOKIE, STATE_COOKIE_PATH, secure);
    let Ok(Query(query)) = query else {
        return failure(
            SignInError::BadRequest("invalid callback query string".into()),
            &[clear_state],
        );
    };
    // Two state cookies (one planted by a sibling subdomain) are no state at all.
    let attempt_cookie = single_cookie(&headers, STATE_COOKIE).ok().flatten();
    let signed_in = match state.sign_in.finish(attempt_cookie.as_deref(), query).await {
        Ok(signed_in) => signed_in,
        Err(err) => return failure(err, &[clear_state]),
    };
    let session = match state
        .sign_in
        .session_cookie(&signed_in.email, signed_in.provider, secure)
    {
        Ok(session) => session,
        Err(err) => return failure(err, &[clear_state]),
    };
    tracing::info!(provider = signed_in.provider, "signed in");
    record_sign_in(&state, &client, &signed_in.email, signed_in.provider).await;
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&signed_in.return_to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    append_cookies(&mut response, &[clear_state, session]);
    response
}

/// Revoke the presented session (cookie or bearer) so no copy of it works again, then clear
/// the cookie. A missing or invalid token has nothing to revoke and still signs out; an
/// unreachable deny-list answers 503, because the session would otherwise live on.
async fn logout(
    State(state): State<AuthState>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    if let Ok(token) = token_from_headers(&headers) {
        match state.authenticator.revoke(&token).await {
            Ok(owner) => {
                tracing::info!("session revoked");
                state
                    .audit
                    .record(
                        &owner,
                        &client,
                        AuditKind::Logout,
                        Value::Object(Default::default()),
                    )
                    .await;
            }
            Err(err @ AuthError::RevocationsUnavailable(_)) => {
                return ApiError::from(err).into_response();
            }
            Err(err) => tracing::info!(reason = %err, "sign-out with a token that does not verify"),
        }
    }
    let secure = state.sign_in.secure_cookies(is_https(&headers));
    let mut response = Reply::ok("Signed out successfully", Value::Null).into_response();
    append_cookies(&mut response, &[clear_cookie(SESSION_COOKIE, "/", secure)]);
    response
}

async fn dev(
    State(state): State<AuthState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<JsonBody, ApiError>,
) -> Response {
    let Some(proof) = state.sign_in.dev() else {
        return failure(SignInError::DevDisabled, &[]);
    };
    if !host_is_loopback(&headers) {
        // Defence in depth: the edge already refuses foreign hosts on a loopback server.
        tracing::warn!("development sign-in refused for a non-loopback Host");
        return failure(SignInError::DevDisabled, &[]);
    }
    let JsonBody(body) = match body {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let Some(email) = body.get("email").and_then(Value::as_str) else {
        return failure(SignInError::BadRequest("email is required".into()), &[]);
    };
    let secure = state.sign_in.secure_cookies(is_https(&headers));
    match state.sign_in.dev_session_cookie(proof, email, secure) {
        Ok(session) => {
            record_sign_in(&state, &client, email.trim(), "dev").await;
            let owner = SessionOwner {
                email: email.trim().to_owned(),
                provider: Some("dev"),
            };
            let mut response = Reply::ok("Signed in successfully", owner).into_response();
            append_cookies(&mut response, &[session]);
            response
        }
        Err(err) => failure(err, &[]),
    }
}

async fn me(Caller(identity): Caller) -> Reply<SessionOwner> {
    Reply::ok(
        "Session fetched successfully",
        SessionOwner {
            email: identity.0,
            provider: None,
        },
    )
}
