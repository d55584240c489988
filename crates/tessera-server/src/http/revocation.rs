//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662), both for
//! authenticated clients only.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::client_auth::{authenticate, check_content_type, read_body};
use super::{ApiError, AppState, Origin};
use crate::oauth::access_token::check_issued;
use crate::oauth::form;
use crate::oauth::{ErrorCode, OAuthError};

struct Params {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn params(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Params, ApiError> {
    let body = read_body(body)?;
    check_content_type(headers)?;
    let pairs = form::parse(&body, &[]).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let token = get("token").ok_or_else(|| OAuthError::invalid_request("missing token"))?;
    Ok(Params {
        token,
        client_id: get("client_id"),
        client_secret: get("client_secret"),
    })
}

/// Parse the form and authenticate the client: the common start of both endpoints.
async fn authenticated(
    app: &AppState,
    headers: &HeaderMap,
    origin: &Origin,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Params, std::sync::Arc<crate::oauth::Client>), ApiError> {
    let p = params(headers, body)?;
    let client = authenticate(
        app,
        headers,
        origin,
        p.client_id.as_deref(),
        p.client_secret.as_deref(),
    )
    .await?;
    Ok((p, client))
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// RFC 7009: a client revokes one of its own tokens. An invalid or unknown token is answered
/// 200 like a revoked one (§2.2), so the endpoint reveals nothing about tokens; a valid token of
/// another client is refused with `unauthorized_client`.
pub(super) async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (p, client) = authenticated(&app, &headers, &origin, body).await?;
        let ring = app.registry.key_ring();
        let now = app.clock.now();
        if let Some(claims) = check_issued(&p.token, &ring.public_jwks, app.issuer.as_str(), now) {
            if claims.client_id != client.id.as_str() {
                return Err(ApiError::from(OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "the token was not issued to this client",
                )));
            }
            app.registry
                .store()
                .revoke_token(&claims.jti, &client.id, claims.exp)
                .await
                .map_err(|_| {
                    ApiError::from(OAuthError::unavailable(
                        "cannot record the revocation; retry shortly",
                        2,
                    ))
                })?;
            tracing::info!(target: "tessera::audit", client_id = %client.id, jti = %claims.jti, "token revoked");
        }
        Ok::<_, ApiError>(no_store(axum::http::StatusCode::OK.into_response()))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// RFC 7662: any authenticated client may ask whether a token is active. Revoked, expired,
/// foreign, forged and malformed tokens are all just `{"active": false}`.
pub(super) async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (p, _client) = authenticated(&app, &headers, &origin, body).await?;
        let ring = app.registry.key_ring();
        let inactive = serde_json::json!({"active": false});
        let Some(c) = check_issued(
            &p.token,
            &ring.public_jwks,
            app.issuer.as_str(),
            app.clock.now(),
        ) else {
            return Ok(no_store(axum::Json(inactive).into_response()));
        };
        let revoked = app.registry.store().is_revoked(&c.jti).await.map_err(|_| {
            ApiError::from(OAuthError::unavailable(
                "cannot check revocations; retry shortly",
                2,
            ))
        })?;
        if revoked {
            return Ok(no_store(axum::Json(inactive).into_response()));
        }
        let body = serde_json::json!({
            "active": true, "scope": c.scope, "client_id": c.client_id, "token_type": "Bearer",
            "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "sub": c.sub, "aud": c.aud, "iss": c.iss, "jti": c.jti,
        });
        Ok::<_, ApiError>(no_store(axum::Json(body).into_response()))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
