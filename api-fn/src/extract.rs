//! Extractors whose rejections are envelopes: a JSON body (bounded, parsed to a `Value` so the
//! domain can name bad fields) and a numeric machine id.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use http::StatusCode;
use http::request::Parts;
use serde_json::Value;
use shared::ApiError;

use crate::MAX_BODY_BYTES;

/// A JSON body of at most [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            Bytes::from_request(req, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge {
                            limit: MAX_BODY_BYTES,
                        }
                    } else {
                        ApiError::bad_request("Request body could not be read")
                    }
                })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("Request body is required (JSON)"));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::bad_request(format!("Request body is not valid JSON: {err}")))
    }
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
