//! `POST /oauth/token` (RFC 6749 §4.4).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::extract::{AuthorizationHeader, FromForm, OAuthForm};
use super::{no_store, ApiError, AppState};
use crate::authority::{Origin, Presented};
use crate::oauth::{OAuthError, TokenRequest};

impl FromForm for TokenRequest {
    fn from_form(body: &[u8]) -> Result<Self, OAuthError> {
        TokenRequest::parse(body)
    }
}

pub(super) async fn token(
    State(app): State<AppState>,
    origin: Origin,
    AuthorizationHeader(authorization): AuthorizationHeader,
    OAuthForm(req): OAuthForm<TokenRequest>,
) -> Result<Response, ApiError> {
    let creds = Presented {
        authorization: &authorization,
        client_id: req.client_id.as_deref(),
        client_secret: req.client_secret.as_deref(),
        client_assertion_type: req.client_assertion_type.as_deref(),
        client_assertion: req.client_assertion.as_deref(),
    };
    let issued = app.authority.issue(&creds, &req, &origin).await?;
    Ok(no_store(axum::Json(issued).into_response()))
}
