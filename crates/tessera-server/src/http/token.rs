//! `POST /oauth/token` (RFC 6749 §4.4).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::oauth::access_token::AccessTokenClaims;
use crate::oauth::client_auth::{self, BodyCredentials};
use crate::oauth::{grant, ErrorCode, OAuthError, TokenRequest};
use crate::secrets::VerifyError;

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
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match issue(&app, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                OAuthError::invalid_request("request body too large"),
            )
        } else {
            ApiError::from(OAuthError::invalid_request(
                "could not read the request body",
            ))
        }
    })?;
    check_content_type(headers)?;
    let req = TokenRequest::parse(&body)?;
    req.check_grant_type()?;

    let authorization = match headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => None,
        [one] => Some(one.as_bytes()),
        _ => return Err(OAuthError::invalid_request("more than one Authorization header").into()),
    };
    let creds = client_auth::extract(
        authorization,
        BodyCredentials {
            client_id: req.client_id.as_deref(),
            client_secret: req.client_secret.as_deref(),
        },
    )?;
    let basic = authorization.is_some();
    let now = app.clock.now();
    let unavailable = || -> ApiError {
        OAuthError::unavailable(
            "the client registry cannot reach its database; retry shortly",
            2,
        )
        .into()
    };
    if app.registry.is_stale() {
        return Err(unavailable());
    }
    let client = app
        .registry
        .find_client(creds.client_id.as_str())
        .await
        .map_err(|_| unavailable())?;
    let mut outcome = app
        .verifier
        .verify(
            client.as_deref(),
            creds.client_id.as_str(),
            &creds.secret,
            now,
        )
        .await;
    let mut client = client;
    if let (Err(VerifyError::Rejected), Some(known)) = (&outcome, &client) {
        // The snapshot may predate a secret added by the CLI: re-read this client once.
        if let Some(fresh) = app.registry.reload_client(known.id.as_str()).await {
            let changed =
                fresh.updated_at != known.updated_at || fresh.secrets.len() != known.secrets.len();
            if changed {
                outcome = app
                    .verifier
                    .verify(Some(&fresh), creds.client_id.as_str(), &creds.secret, now)
                    .await;
            }
            client = Some(fresh);
        }
    }
    match outcome {
        Ok(_) => {}
        Err(VerifyError::Busy) => {
            return Err(OAuthError::unavailable(
                "too many client authentications in progress; retry shortly",
                1,
            )
            .into())
        }
        Err(VerifyError::Rejected) => {
            let reason = match &client {
                None => "unknown client",
                Some(c) if !c.enabled => "client disabled",
                Some(_) => "wrong or expired secret",
            };
            tracing::info!(client_id = %creds.client_id, method = creds.method.as_str(), reason, "client authentication failed");
            return Err(OAuthError::invalid_client()
                .with_basic_challenge(basic)
                .into());
        }
    }
    // The verifier only succeeds for a known, enabled client.
    let Some(client) = client else {
        return Err(OAuthError::invalid_client()
            .with_basic_challenge(basic)
            .into());
    };

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
    tracing::debug!(client_id = %client.id, kid = %ring.signer.kid(), scope = %scope, aud = %grant.audience, "token issued");

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

fn check_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ))
    }
}
