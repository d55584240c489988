//! The HTTP surface: axum routes, the RFC 6749 error responses, and the listener. Knows nothing
//! about SQL; protocol decisions are delegated to `oauth/`.

mod client_auth;
mod discovery;
mod error;
mod health;
mod jwks;
mod revocation;
mod serve;
mod token;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::clock::Clock;
use crate::config::Issuer;
use crate::oauth::Audience;
use crate::registry::Registry;
use crate::secrets::CredentialVerifier;

pub use error::ApiError;
pub use serve::{serve, ServeLimits};

/// The peer address of a request's connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Where a request came from, for audit events: the peer address and the caller's optional
/// `X-Service-Name` (free text from the client, logged as given, cut to 64 characters).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Peer address, when known.
    pub source: Option<std::net::SocketAddr>,
    /// `X-Service-Name`.
    pub service: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let service = parts
            .headers
            .get("x-service-name")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect());
        Ok(Origin {
            source: parts.extensions.get::<Peer>().map(|p| p.0),
            service,
        })
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Clients and keys.
    pub registry: Arc<Registry>,
    /// Secret verification with its cache.
    pub verifier: Arc<CredentialVerifier>,
    /// The issuer.
    pub issuer: Issuer,
    /// `aud` for clients with no audiences registered: the issuer.
    pub fallback_audience: Audience,
    /// `Cache-Control: max-age` for the JWKS.
    pub jwks_max_age: u32,
    /// Time.
    pub clock: Clock,
}

/// The router with every endpoint, with the body limit applied.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/oauth/token",
            post(token::token).fallback(error::method_not_allowed),
        )
        .route(
            "/oauth/revoke",
            post(revocation::revoke).fallback(error::method_not_allowed),
        )
        .route(
            "/oauth/introspect",
            post(revocation::introspect).fallback(error::method_not_allowed),
        )
        .route("/jwks.json", get(jwks::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
