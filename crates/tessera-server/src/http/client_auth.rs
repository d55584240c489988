//! Client authentication at the HTTP edge, shared by the token, revocation and introspection
//! endpoints: read the form body, take the credentials from the `Authorization` header or the
//! body, and check them against the registry.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};

use super::{ApiError, AppState, Origin};
use crate::oauth::client_auth::{self, BodyCredentials};
use crate::oauth::{Client, OAuthError};
use crate::secrets::VerifyError;

/// The body, or 413 when it is over the limit.
pub(super) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
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
    })
}

/// Authenticate the client that sent this request: `client_secret_basic` or `client_secret_post`
/// (exactly one), against the registry, paying argon2id at most once per credential.
pub(super) async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    origin: &Origin,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<Arc<Client>, ApiError> {
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
            client_id,
            client_secret,
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
            tracing::info!(
                target: "tessera::audit",
                event = "client_auth_failed",
                client_id = %creds.client_id,
                method = creds.method.as_str(),
                reason,
                source = origin.source.map(|s| s.ip().to_string()).unwrap_or_default(),
                service = origin.service.as_deref().unwrap_or_default(),
                "client authentication failed"
            );
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
    Ok(client)
}

/// `application/x-www-form-urlencoded` is the only accepted body type (RFC 6749 §4.4.2,
/// RFC 7009 §2.1, RFC 7662 §2.1).
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
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
