//! `POST /oauth/token` (RFC 6749 §4.4).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::client_auth::{authenticate, check_content_type, read_body};
use super::{ApiError, AppState, Origin};
use crate::oauth::access_token::AccessTokenClaims;
use crate::oauth::{grant, ErrorCode, OAuthError, TokenRequest};

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    scope: &'a str,
}

pub(super) async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match issue(&app, &headers, &origin, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    app: &AppState,
    headers: &HeaderMap,
    origin: &Origin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    check_content_type(headers)?;
    let req = TokenRequest::parse(&body)?;
    req.check_grant_type()?;

    let client = authenticate(
        app,
        headers,
        origin,
        req.client_id.as_deref(),
        req.client_secret.as_deref(),
    )
    .await?;
    let now = app.clock.now();

    let grant = grant::decide(&client, &req, &app.fallback_audience)?;
    let ring = app.registry.key_ring();
    let jti = crate::random::base64url(16);
    let scope = grant.scopes.to_string();
    let claims = AccessTokenClaims::new(app.issuer.as_str(), &client, &grant, &scope, &jti, now);
    let signed = serde_json::to_vec(&claims)
        .map_err(|e| e.to_string())
        .and_then(|json| ring.signer.sign(&json).map_err(|e| e.to_string()));
    let access_token = match signed {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "signing an access token failed");
            return Err(OAuthError::new(ErrorCode::ServerError, "could not sign the token").into());
        }
    };
    // Debug level: at info, every token would write a log line, which costs the endpoint much of
    // its throughput. Enable with TESSERA_LOG=info,tessera::audit=debug.
    tracing::debug!(
        target: "tessera::audit",
        event = "token_issued",
        client_id = %client.id,
        jti = %jti,
        kid = %ring.signer.kid(),
        scope = %scope,
        aud = %grant.audience,
        source = origin.source.map(|s| s.ip().to_string()).unwrap_or_default(),
        service = origin.service.as_deref().unwrap_or_default(),
        "token issued"
    );

    let body = TokenResponse {
        access_token: &access_token,
        token_type: "Bearer",
        expires_in: grant.lifetime,
        scope: &scope,
    };
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
