//! The HTTP surface: thin adapters over the protocol service ([`crate::authority`]). Extractors
//! parse a request once ([`extract`]); each handler makes one call into the service and maps its
//! result to a response, its error to the one [`ApiError`]. Knows nothing about SQL.

pub mod admin;
mod discovery;
mod error;
mod extract;
mod health;
mod jwks;
mod metrics;
mod revocation;
mod serve;
mod tls;
mod token;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::authority::Authority;

pub use error::ApiError;
pub use metrics::{metrics_router, RequestTimer, Scrape};
pub use serve::{default_max_connections, serve, ServeLimits};
pub use tls::{Reload, Tls, TlsError};

/// The peer address of a request's connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The protocol service.
    pub authority: Arc<Authority>,
    /// `Cache-Control: max-age` for the JWKS.
    pub jwks_max_age: u32,
    /// How request bodies are read.
    pub body: BodyRules,
}

/// How a request body is read (see [`extract`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// Largest body, in bytes: beyond it 413, at once when `Content-Length` says so.
    pub max_bytes: usize,
    /// Time allowed for the whole body, from the end of the request head: beyond it 408 and the
    /// connection is closed. A total deadline, so a slow drip cannot extend it.
    pub timeout: std::time::Duration,
}

impl FromRef<AppState> for BodyRules {
    fn from_ref(state: &AppState) -> Self {
        state.body
    }
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
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
        .route(
            "/oauth/revocations",
            get(revocation::feed).fallback(error::get_only),
        )
        .route("/jwks.json", get(jwks::jwks))
        // The same key set where several libraries look by default.
        .route("/.well-known/jwks.json", get(jwks::jwks))
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
        .with_state(state)
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): on every response that
/// carries a token or an error.
pub(crate) fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
