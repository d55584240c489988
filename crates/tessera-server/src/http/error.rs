//! RFC 6749 §5.2 error responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::oauth::error::wire_description;
use crate::oauth::{ErrorCode, OAuthError};

/// The one error type at the HTTP edge.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The protocol error.
    pub error: OAuthError,
    /// Answer with `Connection: close`: the request body was not (entirely) read, so the
    /// connection cannot carry another request.
    pub close_connection: bool,
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        let status = match error.code {
            _ if error.too_many => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            close_connection: false,
        }
    }
}

impl ApiError {
    /// An error with an explicit status (413, 405, 404).
    pub fn with_status(status: StatusCode, error: OAuthError) -> Self {
        Self {
            status,
            error,
            close_connection: false,
        }
    }

    /// The same error, closing the connection after it.
    pub fn closing(mut self) -> Self {
        self.close_connection = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::metrics::oauth_error(self.error.code);
        let body = tessera_proto::ErrorBody {
            error: self.error.code.as_str().into(),
            error_description: Some(wire_description(&self.error.description)),
        };
        let mut resp = super::no_store((self.status, axum::Json(body)).into_response());
        let h = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED && self.error.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        if self.close_connection {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.error.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub(super) async fn method_not_allowed() -> Response {
    let mut r = ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        OAuthError::invalid_request("this endpoint accepts POST only"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// 405 for an endpoint that answers GET only.
pub(super) async fn get_only() -> Response {
    let mut r = ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        OAuthError::invalid_request("this endpoint accepts GET only"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

pub(super) async fn not_found() -> Response {
    let body = serde_json::json!({"error": "not_found", "error_description": "no such endpoint"});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}
