//! The response envelope `{"status","message","data"}` that every answer carries, success or
//! error, 401 and 404 included; errors add `code`, the machine-readable [`ErrorCode`].
//!
//! Handlers return `Result<Reply<T>, ApiError>`; both sides turn into the same envelope here, so
//! no handler ever formats JSON itself and a client can always parse the body.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};

/// The wire shape. `status` is the HTTP reason phrase ("OK", "Not Found", ...).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Envelope<T> {
    pub status: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub data: T,
    /// Errors only: the [`ErrorCode`] clients switch on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Cow<'static, str>>,
}

/// A successful answer: status code, one of the seed's messages, and the payload.
pub struct Reply<T> {
    pub status: StatusCode,
    pub message: &'static str,
    pub data: T,
    /// Expected body size, so a large answer is serialised into one buffer instead of one
    /// that doubles (and copies) its way up.
    pub size_hint: usize,
}

/// Room for the envelope and one machine.
const DEFAULT_SIZE_HINT: usize = 512;

impl<T> Reply<T> {
    pub fn ok(message: &'static str, data: T) -> Self {
        Self {
            status: StatusCode::OK,
            message,
            data,
            size_hint: DEFAULT_SIZE_HINT,
        }
    }

    /// Set the expected body size in bytes (a guess; the buffer still grows if needed).
    #[must_use]
    pub fn with_size_hint(mut self, bytes: usize) -> Self {
        self.size_hint = bytes;
        self
    }
}

fn reason(status: StatusCode) -> Cow<'static, str> {
    Cow::Borrowed(status.canonical_reason().unwrap_or("Unknown"))
}

/// Serialise an envelope into a JSON response. Serialisation of our own types cannot fail in
/// practice; if it ever does, the client still gets a well-formed 500 envelope.
fn sized_json_response<T: Serialize>(
    status: StatusCode,
    message: Cow<'static, str>,
    data: &T,
    code: Option<ErrorCode>,
    size_hint: usize,
) -> Response {
    let envelope = Envelope {
        status: reason(status),
        message,
        data,
        code: code.map(|c| Cow::Borrowed(c.as_str())),
    };
    let mut body = Vec::with_capacity(size_hint);
    let (status, body) = match serde_json::to_writer(&mut body, &envelope) {
        Ok(()) => (status, body),
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            let fallback = br#"{"status":"Internal Server Error","message":"Internal server error","data":null,"code":"internal"}"#;
            (StatusCode::INTERNAL_SERVER_ERROR, fallback.to_vec())
        }
    };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        sized_json_response(
            self.status,
            Cow::Borrowed(self.message),
            &self.data,
            None,
            self.size_hint,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let mut response = sized_json_response(
            status,
            Cow::Owned(self.message().to_owned()),
            self.data(),
            Some(code),
            DEFAULT_SIZE_HINT,
        );
        if let Some(retry_after_secs) = self.retry_after_secs() {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if code == ErrorCode::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
