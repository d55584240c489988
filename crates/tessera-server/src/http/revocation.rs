//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662), both for
//! authenticated clients only.

use axum::extract::{RawQuery, State};
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
        Introspection::Active(c) => {
            let mut body = serde_json::json!({
                "active": true, "scope": c.scope, "client_id": c.client_id, "token_type": "Bearer",
                "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "sub": c.sub, "aud": c.aud, "iss": c.iss, "jti": c.jti,
            });
            // The client's custom claims, as in the token (none can shadow the ones above).
            if let Some(obj) = body.as_object_mut() {
                for (k, v) in c.extra {
                    obj.entry(k).or_insert(v);
                }
            }
            body
        }
        Introspection::ApiKey(k) => {
            // Like a token's `aud`: the one audience, or all of them, or the issuer when none.
            let aud = match k.audiences.as_slice() {
                [] => serde_json::Value::from(app.authority.issuer().as_str()),
                [one] => serde_json::Value::from(one.as_str()),
                many => many.iter().map(|a| a.as_str()).collect(),
            };
            let mut body = serde_json::json!({
                "active": true, "token_type": tessera_proto::API_KEY_TOKEN_TYPE, "client_id": k.id, "sub": k.id,
                "name": k.name, "scope": k.scopes.to_string(), "aud": aud,
                "iss": app.authority.issuer().as_str(), "iat": k.created_at,
            });
            if let Some(obj) = body.as_object_mut() {
                if let Some(exp) = k.expires_at {
                    obj.insert("exp".into(), exp.into());
                }
                for (name, v) in k.claims.map() {
                    obj.entry(name.clone()).or_insert(v.clone());
                }
            }
            body
        }
    };
    Ok(no_store(axum::Json(body).into_response()))
}

/// `GET /oauth/revocations?since=CURSOR`: revoked token ids with their expiry, for resource
/// services that check tokens locally. Authenticated like introspection, with the
/// `Authorization` header (a GET has no body).
pub(super) async fn feed(
    State(app): State<AppState>,
    origin: Origin,
    AuthorizationHeader(authorization): AuthorizationHeader,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let since = parse_since(query.as_deref())?;
    let creds = Presented {
        authorization: &authorization,
        client_id: None,
        client_secret: None,
        client_assertion_type: None,
        client_assertion: None,
    };
    let page = app
        .authority
        .revocation_feed(&creds, since, &origin)
        .await?;
    let body = tessera_proto::RevocationPage {
        revoked: page
            .revoked
            .into_iter()
            .map(|(jti, exp)| tessera_proto::RevokedToken { jti, exp })
            .collect(),
        cursor: page.cursor.to_string(),
        has_more: page.more,
    };
    Ok(no_store(axum::Json(body).into_response()))
}

/// `since`: absent (from the start) or a cursor this endpoint gave, decimal digits.
fn parse_since(query: Option<&str>) -> Result<i64, OAuthError> {
    let mut since = 0;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "since" && !value.is_empty() {
            since = value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    OAuthError::invalid_request("since must be a cursor this endpoint returned")
                })?;
        }
    }
    Ok(since)
}
