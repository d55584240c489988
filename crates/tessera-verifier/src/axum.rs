//! axum/tower integration: a layer that authenticates `Authorization: Bearer` (and optionally
//! `X-API-Key`) and requires scopes, answering per RFC 6750, and an extractor for the verified
//! [`AccessToken`].
//!
//! A [`Guard`] is a `tower::Layer`, so it goes straight on a route group:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tessera_verifier::axum::{Guard, Requirement};
//! use tessera_verifier::{AccessToken, Verifier};
//!
//! # fn app(verifier: Verifier) -> Router {
//! let guard = Guard::new(verifier);
//! Router::new()
//!     .route("/internal/ping", get(|token: AccessToken| async move { format!("pong, {}", token.client_id()) }))
//!     .route_layer(guard.requiring(Requirement::all(["s2s:internal"])))
//! # }
//! ```
//!
//! The same check is available as axum middleware,
//! `axum::middleware::from_fn_with_state(guard, require)`, and as [`Guard::check`] on a header
//! map for other frameworks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AccessToken, ApiKeyAuthenticator, Verifier, VerifyError};

/// Which scopes a route needs.
#[derive(Debug, Clone, Default)]
pub enum Requirement {
    /// A valid token is enough.
    #[default]
    Authenticated,
    /// Every one of these scopes.
    All(Vec<String>),
    /// At least one of these scopes.
    Any(Vec<String>),
}

impl Requirement {
    /// Require every scope.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(s: I) -> Self {
        Self::All(s.into_iter().map(Into::into).collect())
    }

    /// Require at least one scope.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(s: I) -> Self {
        Self::Any(s.into_iter().map(Into::into).collect())
    }

    fn check(&self, t: &AccessToken) -> Result<(), VerifyError> {
        match self {
            Self::Authenticated => Ok(()),
            Self::All(s) => t.require_all(s.iter().map(String::as_str)),
            Self::Any(s) => t.require_any(s.iter().map(String::as_str)),
        }
    }
}

/// The middleware state: a verifier, an optional API-key authenticator, and a requirement.
#[derive(Clone)]
pub struct Guard {
    verifier: Verifier,
    api_keys: Option<Arc<ApiKeyAuthenticator>>,
    requirement: Requirement,
    realm: Arc<str>,
}

impl Guard {
    /// A guard that requires a valid token.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            api_keys: None,
            requirement: Requirement::Authenticated,
            realm: Arc::from("api"),
        }
    }

    /// Also accept static API keys (off unless called).
    pub fn with_api_keys(mut self, keys: Arc<ApiKeyAuthenticator>) -> Self {
        self.api_keys = Some(keys);
        self
    }

    /// The `realm` in `WWW-Authenticate`.
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Arc::from(realm);
        self
    }

    /// A copy of this guard with another requirement (one guard per route group).
    pub fn requiring(&self, requirement: Requirement) -> Self {
        Self {
            requirement,
            ..self.clone()
        }
    }

    /// Authenticate a request's headers and check the requirement.
    pub async fn check(&self, headers: &axum::http::HeaderMap) -> Result<AccessToken, Rejection> {
        let realm = self.realm.clone();
        if let (Some(keys), Some(key)) = (
            &self.api_keys,
            headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        ) {
            let token = keys.authenticate(key).ok_or_else(|| {
                tracing::info!(target: "tessera_verifier::audit", reason = "unknown API key", "authentication failed");
                Rejection::invalid(realm.clone(), "invalid API key")
            })?;
            self.requirement
                .check(&token)
                .map_err(|e| Rejection::from_error(realm.clone(), e))?;
            return Ok(token);
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(bearer) = bearer else {
            return Err(Rejection::missing(realm));
        };
        // A static API key may also come as a bearer token; JWTs have two dots, keys need not.
        let token = match &self.api_keys {
            Some(keys) if bearer.matches('.').count() != 2 => keys
                .authenticate(bearer)
                .ok_or_else(|| Rejection::invalid(realm.clone(), "invalid API key"))?,
            _ => self
                .verifier
                .verify(bearer)
                .await
                .map_err(|e| Rejection::from_error(realm.clone(), e))?,
        };
        if let Err(e) = self.requirement.check(&token) {
            tracing::info!(target: "tessera_verifier::audit", client_id = %token.client_id(), reason = %e, "authorization failed");
            return Err(Rejection::from_error(realm, e));
        }
        Ok(token)
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, require)`. On success the
/// [`AccessToken`] is put in the request extensions for handlers to extract.
pub async fn require(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    match guard.check(req.headers()).await {
        Ok(token) => {
            req.extensions_mut().insert(token);
            next.run(req).await
        }
        Err(r) => r.into_response(),
    }
}

impl<S> tower_layer::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            guard: self.clone(),
            inner,
        }
    }
}

/// A service behind a [`Guard`]: requests that pass reach it with the [`AccessToken`] in their
/// extensions; the others are answered per RFC 6750 without reaching it.
#[derive(Clone)]
pub struct Guarded<S> {
    guard: Guard,
    inner: S,
}

impl<S> tower_service::Service<Request> for Guarded<S>
where
    S: tower_service::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was driven to readiness serves this request; a fresh clone stays.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.check(req.headers()).await {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(r) => Ok(r.into_response()),
            }
        })
    }
}

/// An RFC 6750 refusal.
#[derive(Debug)]
pub struct Rejection {
    status: StatusCode,
    challenge: String,
    error: &'static str,
    description: String,
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl Rejection {
    fn missing(realm: Arc<str>) -> Self {
        // RFC 6750 §3.1: no error code when the request had no authentication at all.
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenge: format!("Bearer realm=\"{}\"", quote(&realm)),
            error: "invalid_token",
            description: "missing bearer token".into(),
        }
    }

    fn invalid(realm: Arc<str>, description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenge: format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
                quote(&realm),
                quote(description)
            ),
            error: "invalid_token",
            description: description.into(),
        }
    }

    fn from_error(realm: Arc<str>, e: VerifyError) -> Self {
        match e {
            VerifyError::InvalidToken(reason) => Self::invalid(realm, &reason.to_string()),
            VerifyError::InsufficientScope { required } => Self {
                status: StatusCode::FORBIDDEN,
                challenge: format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                    quote(&realm),
                    quote(&required)
                ),
                error: "insufficient_scope",
                description: format!("requires scope: {required}"),
            },
            VerifyError::KeysUnavailable(_) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                challenge: String::new(),
                error: "temporarily_unavailable",
                description: "token signing keys unavailable".into(),
            },
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "error_description": self.description});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if !self.challenge.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// Extract the token the [`require`] middleware verified. Without the middleware on the route,
/// the request is refused with 401 (fail closed).
impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessToken>()
            .cloned()
            .ok_or_else(|| Rejection::missing(Arc::from("api")))
    }
}
