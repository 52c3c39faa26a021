//! Extractors whose rejections are envelopes, shared by every route of every binary: the
//! caller's identity, a bounded JSON body turned into a validated domain request, a numeric
//! machine id, and where a request came from ([`Client`], for the audit log).
//!
//! The body extractor parses JSON and then hands the value to the domain's
//! [`FromJson`](domain::requests::FromJson), so a handler receives `NewMachine` or
//! `ConnectRequest`, never a raw object, and every binary refuses the same bodies with the same
//! messages.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Request};
use domain::Identity;
use domain::audit::AuditContext;
use domain::requests::FromJson;
use http::StatusCode;
use http::request::Parts;
use serde_json::Value;

use crate::auth::{Authenticator, token_from_parts};
use crate::error::ApiError;

/// Request bodies above this are refused with 413 (connect, host-key and create bodies are
/// small; a 32 KiB private key is the largest field).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The authenticated caller, from `Authorization: Bearer` or the `jwt` cookie. Records the
/// identity on the request span.
pub struct Caller(pub Identity);

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        let token = token_from_parts(parts)?;
        let identity = authenticator.verify(&token).await?;
        tracing::Span::current().record("user", identity.0.as_str());
        Ok(Caller(identity))
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`], validated into `T`.
pub struct JsonBody<T = Value>(pub T);

impl<S: Send + Sync, T: FromJson> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("Request body is required (JSON)"));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be absent: an empty body (with or without `Content-Type`; the web
/// app types every write) is `None`; any other is held to [`JsonBody`]'s rules (415 without
/// the JSON type, 400, 413).
pub struct OptionalJsonBody<T = Value>(pub Option<T>);

impl<S: Send + Sync, T: FromJson> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        if !json {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&bytes).map(|body| OptionalJsonBody(Some(body)))
    }
}

/// The body, at most [`MAX_BODY_BYTES`] (the router's limit layer), else 413.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(MAX_BODY_BYTES)
            } else {
                ApiError::bad_request("Request body could not be read")
            }
        })
}

fn parse_json<T: FromJson>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("Request body is not valid JSON: {err}")))?;
    T::from_json(value).map_err(ApiError::from)
}

/// Whether the request says its body is JSON: `application/json`, parameters allowed. A JSON
/// body under any other type is refused (415) from every client: `text/plain` and form types
/// are what a cross-site form can send without a CORS preflight.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `{id}` as a machine id: decimal digits only, no sign, fits u64.
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

/// `/api/v1/orgs/{slug}[/…/{member}]`: the organization's slug and, on member and invitation
/// routes, the person the route names (`{member}` or `{email}`). A slug that cannot be one
/// answers the 404 of an organization the caller does not belong to; the person is bounded to
/// an email's length and refused with 400 when it carries control characters.
pub struct OrgPath {
    pub slug: domain::orgs::Slug,
    pub person: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for OrgPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let not_found = || ApiError::from(domain::DomainError::OrgNotFound);
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let mut slug = None;
        let mut person = None;
        for (name, value) in params {
            match name.as_str() {
                "slug" => slug = Some(domain::orgs::Slug::parse(&value).map_err(|_| not_found())?),
                "member" | "email" => {
                    if value.is_empty() || value.len() > 254 || value.chars().any(char::is_control)
                    {
                        return Err(ApiError::bad_request(
                            "The member must be an identity of at most 254 bytes",
                        ));
                    }
                    person = Some(value);
                }
                _ => {}
            }
        }
        let slug = slug.ok_or_else(not_found)?;
        Ok(OrgPath { slug, person })
    }
}

/// The request id the edge's layer chose (incoming `x-request-id`, API Gateway's, or fresh).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's address as a binary's front door saw it, when that is not the TCP peer: api-fn
/// in Lambda inserts API Gateway's `sourceIp` here, and the edge the address trusted proxies
/// report (which then wins). It wins over the connection address.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// Where a request came from, for the audit log: the client address ([`ClientAddr`], else the
/// TCP peer), the `User-Agent` and the request id, each bounded by [`AuditContext::new`].
/// Never rejects: a field that is not known is absent.
///
/// `X-Forwarded-For` is read only as far as the deployment says proxies it trusts append to it
/// (`TRUSTED_PROXY_HOPS`, [`crate::forwarded`]); with none declared (the default) any client
/// could write any address into their own log, so it is not read at all.
pub struct Client(pub AuditContext);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_context(parts)))
    }
}

/// [`Client`]'s reading of a request's parts.
pub fn client_context(parts: &Parts) -> AuditContext {
    let ip = parts
        .extensions
        .get::<ClientAddr>()
        .map(|addr| addr.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        })
        .map(|ip| ip.to_canonical().to_string());
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.as_str());
    AuditContext::new(ip.as_deref(), user_agent, request_id)
}
