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
//! Roles ([`RoleMap`]) name what a route needs in the service's own terms, granted by scopes or
//! by claims, and combine with scopes:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{routing::get, Router};
//! # use tessera_verifier::axum::{Guard, Requirement};
//! # use tessera_verifier::{RoleMap, Verifier};
//! # fn app(verifier: Verifier) -> Router {
//! let roles = RoleMap::new().role("ADMIN", |r| r.scope("s2s:admin").claim("groups", "git-admins"));
//! let guard = Guard::new(verifier).with_roles(Arc::new(roles));
//! Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(guard.requiring(Requirement::all(["s2s:internal"]).and(Requirement::role("ADMIN"))))
//! # }
//! ```
//!
//! Callers may name themselves with `X-Service-Name` (free text, cut to 64 printable
//! characters); the audit events (target `tessera_verifier::audit`) carry it as `service`, for
//! tokens and static API keys alike. It is a label, never an identity: nothing is decided by it.
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

use crate::roles::RoleCheck;
use crate::{AccessToken, ApiKeyAuthenticator, RoleMap, Verifier, VerifyError};

/// What a route needs: scopes, roles, or combinations of them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Requirement {
    /// A valid token is enough.
    #[default]
    Authenticated,
    /// Every one of these scopes.
    All(Vec<String>),
    /// At least one of these scopes.
    Any(Vec<String>),
    /// This role, as the guard's [`RoleMap`] grants it ([`Guard::with_roles`]). Without a role
    /// map, or with one that does not define the role, no one holds it (fail closed; the guard
    /// logs a warning when it is set up).
    Role(String),
    /// Every one of these requirements.
    AllOf(Vec<Requirement>),
    /// At least one of these requirements.
    AnyOf(Vec<Requirement>),
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

    /// Require a role (see [`Requirement::Role`]).
    pub fn role(name: impl Into<String>) -> Self {
        Self::Role(name.into())
    }

    /// Require every one of `requirements`.
    pub fn all_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AllOf(requirements.into_iter().collect())
    }

    /// Require at least one of `requirements`.
    pub fn any_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AnyOf(requirements.into_iter().collect())
    }

    /// This and `other`.
    pub fn and(self, other: Requirement) -> Self {
        match self {
            Self::AllOf(mut list) => {
                list.push(other);
                Self::AllOf(list)
            }
            this => Self::AllOf(vec![this, other]),
        }
    }

    /// This or `other`.
    pub fn or(self, other: Requirement) -> Self {
        match self {
            Self::AnyOf(mut list) => {
                list.push(other);
                Self::AnyOf(list)
            }
            this => Self::AnyOf(vec![this, other]),
        }
    }

    /// Whether `token` meets the requirement, roles granted by `roles`: `Ok`, or the 403 error
    /// ([`VerifyError::InsufficientScope`] or [`VerifyError::MissingRole`]). This is the check
    /// a [`Guard`] makes, for use outside axum. The token's claims are read at most once, and
    /// only when a role is not granted by a scope.
    pub fn check(&self, token: &AccessToken, roles: Option<&RoleMap>) -> Result<(), VerifyError> {
        let mut roles = roles.map(|m| RoleCheck::new(m, token));
        self.check_with(token, &mut roles)
    }

    fn check_with(
        &self,
        t: &AccessToken,
        roles: &mut Option<RoleCheck<'_, '_>>,
    ) -> Result<(), VerifyError> {
        match self {
            Self::Authenticated => Ok(()),
            Self::All(s) => t.require_all(s.iter().map(String::as_str)),
            Self::Any(s) => t.require_any(s.iter().map(String::as_str)),
            Self::Role(role) => {
                if roles.as_mut().and_then(|r| r.grants(role)) == Some(true) {
                    Ok(())
                } else {
                    Err(VerifyError::MissingRole {
                        required: role.clone(),
                    })
                }
            }
            Self::AllOf(list) => list.iter().try_for_each(|r| r.check_with(t, roles)),
            Self::AnyOf(list) => {
                let mut failures = Vec::with_capacity(list.len());
                for r in list {
                    match r.check_with(t, roles) {
                        Ok(()) => return Ok(()),
                        Err(e) => failures.push(e),
                    }
                }
                Err(any_of_failure(failures))
            }
        }
    }

    /// The roles this requirement names, in order.
    fn roles(&self) -> Vec<&str> {
        match self {
            Self::Role(r) => vec![r.as_str()],
            Self::AllOf(list) | Self::AnyOf(list) => list.iter().flat_map(Self::roles).collect(),
            _ => Vec::new(),
        }
    }
}

/// One error for "none of the alternatives": the scopes that would each do when every
/// alternative wanted scopes (as [`Requirement::Any`] reports them), else the roles that would.
fn any_of_failure(failures: Vec<VerifyError>) -> VerifyError {
    let mut scopes = Vec::new();
    let mut roles = Vec::new();
    for f in failures {
        match f {
            VerifyError::InsufficientScope { required } => scopes.push(required),
            VerifyError::MissingRole { required } => roles.push(required),
            other => return other,
        }
    }
    if roles.is_empty() {
        VerifyError::InsufficientScope {
            required: scopes.join(" "),
        }
    } else {
        VerifyError::MissingRole {
            required: roles.join(" "),
        }
    }
}

/// The caller's `X-Service-Name`: free text, so only printable characters and at most 64 of
/// them reach the logs.
fn service_name(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get("x-service-name")?.to_str().ok()?;
    let s: String = v.chars().filter(|c| !c.is_control()).take(64).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The middleware state: a verifier, an optional API-key authenticator, an optional role map,
/// and a requirement.
#[derive(Clone)]
pub struct Guard {
    verifier: Verifier,
    api_keys: Option<Arc<ApiKeyAuthenticator>>,
    /// Tessera-managed keys (`tak_…`), checked by introspection.
    #[cfg(feature = "reqwest")]
    managed_keys: Option<Arc<crate::ManagedApiKeys>>,
    roles: Option<Arc<RoleMap>>,
    requirement: Requirement,
    realm: Arc<str>,
}

impl Guard {
    /// A guard that requires a valid token.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            api_keys: None,
            #[cfg(feature = "reqwest")]
            managed_keys: None,
            roles: None,
            requirement: Requirement::Authenticated,
            realm: Arc::from("api"),
        }
    }

    /// Also accept static API keys (off unless called).
    pub fn with_api_keys(mut self, keys: Arc<ApiKeyAuthenticator>) -> Self {
        self.api_keys = Some(keys);
        self
    }

    /// Also accept Tessera-managed API keys (`tak_…`, as `X-API-Key` or `Authorization: Bearer`),
    /// checked by introspection with a bounded cache (see [`crate::ManagedApiKeys`]). The
    /// requirement, roles included, applies to a key's principal as to a token's.
    #[cfg(feature = "reqwest")]
    pub fn with_managed_keys(mut self, keys: Arc<crate::ManagedApiKeys>) -> Self {
        self.managed_keys = Some(keys);
        self
    }

    /// Grant roles by `roles`, for [`Requirement::role`]. Set it before
    /// [`Guard::requiring`], which copies the guard.
    pub fn with_roles(mut self, roles: Arc<RoleMap>) -> Self {
        self.roles = Some(roles);
        self
    }

    /// The `realm` in `WWW-Authenticate`.
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Arc::from(realm);
        self
    }

    /// A copy of this guard with another requirement (one guard per route group). A role the
    /// requirement names that the role map does not define (or a role without a role map) is
    /// logged as a warning now, and held by no one.
    pub fn requiring(&self, requirement: Requirement) -> Self {
        for role in requirement.roles() {
            if !self.roles.as_ref().is_some_and(|m| m.defines(role)) {
                tracing::warn!(role, "a route requires a role the guard's role map does not define: no caller can hold it");
            }
        }
        Self {
            requirement,
            ..self.clone()
        }
    }

    /// Authenticate a request's headers and check the requirement.
    pub async fn check(&self, headers: &axum::http::HeaderMap) -> Result<AccessToken, Rejection> {
        let realm = self.realm.clone();
        let service = service_name(headers);
        let service = service.as_deref();
        #[cfg(feature = "reqwest")]
        if let Some(managed) = &self.managed_keys {
            let presented = headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .or_else(|| {
                    headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split_once(' '))
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map(|(_, t)| t.trim())
                })
                .filter(|k| crate::ManagedApiKeys::is_managed_key(k));
            if let Some(key) = presented {
                let token = match managed.check(key).await {
                    Ok(t) => {
                        tracing::debug!(target: "tessera_verifier::audit", client_id = %t.client_id(), service, "managed API key accepted");
                        t
                    }
                    Err(e) => {
                        tracing::info!(target: "tessera_verifier::audit", reason = %e, service, "authentication failed");
                        return Err(Rejection::from_error(realm, e));
                    }
                };
                return self.authorize(token, service, realm);
            }
        }
        if let (Some(keys), Some(key)) = (
            &self.api_keys,
            headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        ) {
            let token = self.api_key(keys, key, service, &realm)?;
            return self.authorize(token, service, realm);
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
            Some(keys) if bearer.matches('.').count() != 2 => {
                self.api_key(keys, bearer, service, &realm)?
            }
            _ => self
                .verifier
                .verify_from(bearer, service)
                .await
                .map_err(|e| Rejection::from_error(realm.clone(), e))?,
        };
        self.authorize(token, service, realm)
    }

    fn api_key(
        &self,
        keys: &ApiKeyAuthenticator,
        key: &str,
        service: Option<&str>,
        realm: &Arc<str>,
    ) -> Result<AccessToken, Rejection> {
        match keys.authenticate(key) {
            Some(token) => {
                tracing::debug!(target: "tessera_verifier::audit", client_id = %token.client_id(), service, "API key accepted");
                Ok(token)
            }
            None => {
                tracing::info!(target: "tessera_verifier::audit", reason = "unknown API key", service, "authentication failed");
                Err(Rejection::invalid(realm.clone(), "invalid API key"))
            }
        }
    }

    fn authorize(
        &self,
        token: AccessToken,
        service: Option<&str>,
        realm: Arc<str>,
    ) -> Result<AccessToken, Rejection> {
        if let Err(e) = self.requirement.check(&token, self.roles.as_deref()) {
            tracing::info!(target: "tessera_verifier::audit", client_id = %token.client_id(), reason = %e, service, "authorization failed");
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
            VerifyError::MissingRole { required } => {
                let description = format!("requires role: {}", required.replace(' ', " or "));
                Self {
                    status: StatusCode::FORBIDDEN,
                    challenge: format!(
                        "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{}\"",
                        quote(&realm),
                        quote(&description)
                    ),
                    error: "insufficient_scope",
                    description,
                }
            }
            VerifyError::KeysUnavailable(_) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                challenge: String::new(),
                error: "temporarily_unavailable",
                description: "token signing keys unavailable".into(),
            },
            VerifyError::RevocationsUnavailable => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                challenge: String::new(),
                error: "temporarily_unavailable",
                description: "revocations cannot be checked now".into(),
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
