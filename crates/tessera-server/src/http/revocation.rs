//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662), both for
//! authenticated clients only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::extract::{AuthorizationHeader, FromForm, OAuthForm};
use super::{no_store, ApiError, AppState};
use crate::authority::{Introspection, Origin, Presented};
use crate::oauth::{OAuthError, TokenParams};

impl FromForm for TokenParams {
    fn from_form(body: &[u8]) -> Result<Self, OAuthError> {
        TokenParams::parse(body)
    }
}

fn presented<'a>(authorization: &'a AuthorizationHeader, p: &'a TokenParams) -> Presented<'a> {
    Presented {
        authorization: &authorization.0,
        client_id: p.client_id.as_deref(),
        client_secret: p.client_secret.as_deref(),
        client_assertion_type: p.client_assertion_type.as_deref(),
        client_assertion: p.client_assertion.as_deref(),
    }
}

/// RFC 7009 §2.2: 200 whether or not the token was valid.
pub(super) async fn revoke(
    State(app): State<AppState>,
    origin: Origin,
    authorization: AuthorizationHeader,
    OAuthForm(p): OAuthForm<TokenParams>,
) -> Result<Response, ApiError> {
    let creds = presented(&authorization, &p);
    app.authority.revoke(&creds, &p.token, &origin).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// RFC 7662 §2.2: revoked, expired, foreign, forged and malformed tokens are all just
/// `{"active": false}`.
pub(super) async fn introspect(
    State(app): State<AppState>,
    origin: Origin,
    authorization: AuthorizationHeader,
    OAuthForm(p): OAuthForm<TokenParams>,
) -> Result<Response, ApiError> {
    let creds = presented(&authorization, &p);
    let body = match app.authority.introspect(&creds, &p.token, &origin).await? {
        Introspection::Inactive => serde_json::json!({"active": false}),
        Introspection::Active(c) => serde_json::json!({
            "active": true, "scope": c.scope, "client_id": c.client_id, "token_type": "Bearer",
            "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "sub": c.sub, "aud": c.aud, "iss": c.iss, "jti": c.jti,
        }),
    };
    Ok(no_store(axum::Json(body).into_response()))
}
