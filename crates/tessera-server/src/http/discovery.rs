//! RFC 8414 authorization server metadata, served at both well-known paths.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::oauth::AuthMethod;

pub(super) async fn metadata(State(app): State<AppState>) -> Response {
    let ring = app.authority.key_ring();
    let issuer = app.authority.issuer();
    let algs: Vec<&str> = ring.algs.iter().map(|a| a.as_str()).collect();
    let scopes: Vec<String> = app
        .authority
        .registry()
        .scopes_supported()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let doc = serde_json::json!({
        "issuer": issuer.as_str(),
        "token_endpoint": issuer.endpoint("/oauth/token"),
        "jwks_uri": issuer.endpoint("/jwks.json"),
        "revocation_endpoint": issuer.endpoint("/oauth/revoke"),
        "introspection_endpoint": issuer.endpoint("/oauth/introspect"),
        "revocation_endpoint_auth_methods_supported": [
            AuthMethod::ClientSecretBasic.as_str(),
            AuthMethod::ClientSecretPost.as_str(),
        ],
        "introspection_endpoint_auth_methods_supported": [
            AuthMethod::ClientSecretBasic.as_str(),
            AuthMethod::ClientSecretPost.as_str(),
        ],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            AuthMethod::ClientSecretBasic.as_str(),
            AuthMethod::ClientSecretPost.as_str(),
        ],
        // No authorization endpoint: this server issues tokens to machines only.
        "response_types_supported": [],
        "scopes_supported": scopes,
        // Extension metadata (RFC 8414 §2 allows it): the algorithms access tokens are signed
        // with, so verifiers can build their allowlist.
        "access_token_signing_alg_values_supported": algs,
    });
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(doc),
    )
        .into_response()
}
