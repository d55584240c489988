//! The admin HTTP API, `/admin/v1` (described in `openapi/tessera.yaml`): the admin service
//! ([`crate::admin`]) over JSON, on its own listener (`--admin-listen`).
//!
//! - Every request carries one of this server's own access tokens (RFC 6750 `Bearer`) for the
//!   audience `<issuer>/admin`: scope `tessera:admin` for everything, `tessera:admin:read` for
//!   `GET` only ([`Authority::authorize_admin`]). The audit records' actor is the token's client.
//! - Errors are RFC 9457 problem details (`application/problem+json`); 401 and 403 also carry
//!   RFC 6750's `WWW-Authenticate`.
//! - A client's representation has an `ETag` (its version); `PATCH` needs `If-Match` (428
//!   without, 412 when stale), so two operators cannot silently overwrite each other.
//! - A new secret or API key is in the create/rotate response only, never again.
//! - Times are RFC 3339 (UTC) both ways.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::admin::{
    Admin, AdminError, ApiKeyInput, CreateClient, KeysInput, TrustInput, UpdateClient,
};
use crate::audit::Actor;
use crate::authority::{AdminDenied, Authority, ADMIN_SCOPE};
use crate::keys::lifecycle::{LifecycleError, RotationTiming};
use crate::keys::{Alg, MasterKey};

/// Largest admin request body: a JWKS of ten RSA keys fits with room to spare.
const MAX_ADMIN_BODY: usize = 64 * 1024;
/// Default and largest page of `GET /clients` and `GET /audit`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// What the admin API's handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The admin service.
    pub admin: Admin,
    /// What `POST /keys/rotate` needs (`None`: this router cannot rotate keys).
    pub rotation: Option<Arc<KeyRotation>>,
    /// Time allowed for a request body.
    pub body_timeout: std::time::Duration,
}

/// A signing-key rotation's settings, as the server was started with.
pub struct KeyRotation {
    /// Seals the new private key.
    pub master: MasterKey,
    /// The algorithm of new keys unless the request names one.
    pub alg: Alg,
    /// Publish-ahead and retire-after times.
    pub timing: RotationTiming,
}

/// The admin API for the admin listener: every operation under `/admin/v1`, each behind the
/// token check of `authority`.
pub fn router(state: AdminState, authority: Arc<Authority>) -> Router {
    let authority_for_about = authority.clone();
    let api = operations()
        .route_layer(middleware::from_fn_with_state(authority, authorize))
        .with_state(state);
    // The one unauthenticated resource: where to get a token for the rest.
    let about = Router::new()
        .route("/admin/v1", get(about))
        .route("/admin/v1/", get(about))
        .with_state(authority_for_about);
    about.nest("/admin/v1", api).fallback(not_found)
}

/// The same API in-process for the CLI on the database, every change made as `actor` (the
/// operator at the terminal): no token, since whoever can open the database is trusted
/// already. The CLI speaks to this and to a remote admin listener the same way.
pub fn local_router(state: AdminState, actor: Actor) -> Router {
    let api = operations().route_layer(Extension(actor)).with_state(state);
    Router::new().nest("/admin/v1", api).fallback(not_found)
}

fn operations() -> Router<AdminState> {
    Router::new()
        .route("/clients", get(list_clients).post(create_client))
        .route(
            "/clients/{id}",
            get(show_client).patch(update_client).delete(delete_client),
        )
        .route("/clients/{id}/enable", post(enable_client))
        .route("/clients/{id}/disable", post(disable_client))
        .route("/clients/{id}/secrets", post(rotate_secret))
        .route(
            "/clients/{id}/secrets/{secret_id}",
            axum::routing::delete(revoke_secret),
        )
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_key))
        .route("/trusts", get(list_trusts).post(add_trust))
        .route("/trusts/{id}", get(show_trust).delete(remove_trust))
        .route("/api-keys", get(list_api_keys).post(create_api_key))
        .route("/api-keys/{id}", get(show_api_key).delete(revoke_api_key))
        .route("/audit", get(list_audit))
        .method_not_allowed_fallback(method_not_allowed)
}

/// `GET /admin/v1`: where this API's tokens come from (no token needed).
async fn about(State(authority): State<Arc<Authority>>) -> Response {
    ok_json(
        StatusCode::OK,
        json!({
            "issuer": authority.issuer().as_str(),
            "token_endpoint": authority.issuer().endpoint("/oauth/token"),
            "audience": authority.admin_audience(),
            "scopes": [ADMIN_SCOPE, crate::authority::ADMIN_READ_SCOPE],
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Problems (RFC 9457)

/// An RFC 9457 problem: every admin API error.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    /// RFC 6750 `WWW-Authenticate` (401, 403).
    challenge: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            challenge: None,
        }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // RFC 9110 §10.2.3: when to retry (the token endpoint's 503s say the same).
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        r
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match &e {
            AdminError::Invalid(_) => Self::bad_request(e.to_string()),
            AdminError::NotFound(_) | AdminError::Missing(_) => {
                Self::new(StatusCode::NOT_FOUND, e.to_string())
            }
            AdminError::Keys(LifecycleError::AlreadyPending(_)) | AdminError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            AdminError::Stale(_) => Self::new(StatusCode::PRECONDITION_FAILED, e.to_string()),
            AdminError::Store(_) if e.is_unavailable() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be reached; retry shortly",
            ),
            AdminError::Store(_) | AdminError::Hash | AdminError::Keys(_) => {
                // The details go to the log, not to the caller.
                tracing::error!(error = %e, "admin API operation failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the operation failed; see the server log",
                )
            }
        }
    }
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such admin API resource")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
    )
}

// ---------------------------------------------------------------------------------------------
// Authentication (RFC 6750)

const REALM: &str = "tessera-admin";

/// Check the caller's token; writes need `tessera:admin`. The caller goes into the request's
/// extensions for the handler.
async fn authorize(
    State(authority): State<Arc<Authority>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = match bearer(req.headers()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            // RFC 6750 §3.1: no error code when the request has no credentials.
            let mut p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "an access token for the admin API is required (Authorization: Bearer)",
            );
            p.challenge = Some(format!("Bearer realm=\"{REALM}\""));
            return p.into_response();
        }
        Err(p) => return p.into_response(),
    };
    let caller = match authority.authorize_admin(&token).await {
        Ok(c) => c,
        Err(AdminDenied::InvalidToken(why)) => {
            let mut p = Problem::new(StatusCode::UNAUTHORIZED, why);
            p.challenge = Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{why}\""
            ));
            return p.into_response();
        }
        Err(AdminDenied::InsufficientScope) => return insufficient_scope(),
        Err(AdminDenied::Unavailable) => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the access token now; retry shortly",
            )
            .into_response()
        }
    };
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    if !read_only && !caller.can_write {
        return insufficient_scope();
    }
    req.extensions_mut().insert(Actor::Client(caller.client_id));
    next.run(req).await
}

fn insufficient_scope() -> Response {
    let mut p = Problem::new(
        StatusCode::FORBIDDEN,
        format!("this operation needs the scope {ADMIN_SCOPE}"),
    );
    p.challenge = Some(format!(
        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\""
    ));
    p.into_response()
}

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any case): `None` when
/// there is no `Authorization` header; 400 for two headers or another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::bad_request("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Problem::bad_request("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => {
            let mut p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "the admin API takes a Bearer access token",
            );
            p.challenge = Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\""
            ));
            Err(p)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies and queries

/// A JSON body: `application/json`, at most [`MAX_ADMIN_BODY`] bytes, within the body timeout,
/// unknown fields refused.
async fn json_body<T: DeserializeOwned>(
    s: &AdminState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<T, Problem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    let bytes: Bytes = match tokio::time::timeout(
        s.body_timeout,
        axum::body::to_bytes(body, MAX_ADMIN_BODY),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_ADMIN_BODY} bytes"),
            ))
        }
        Err(_) => {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| Problem::bad_request(format!("body: {e}")))
}

/// A query string this API cannot read: a 400 problem like every other error (axum's own
/// rejection is `text/plain`).
fn query_problem(e: QueryRejection) -> Problem {
    Problem::bad_request(format!("query: {}", e.body_text()))
}

/// An RFC 3339 time in a body or query.
fn time(s: &str, field: &str) -> Result<i64, Problem> {
    crate::clock::parse_rfc3339(s).ok_or_else(|| {
        Problem::bad_request(format!(
            "{field} must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"
        ))
    })
}

/// Tells a field given as `null` from one left out (JSON merge patch, RFC 7396).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A client's public keys as a body gives them.
fn keys_input(jwks: Option<Value>, jwks_uri: Option<String>) -> Result<Option<KeysInput>, Problem> {
    match (jwks, jwks_uri) {
        (Some(_), Some(_)) => Err(Problem::bad_request("give jwks or jwks_uri, not both")),
        (Some(j), None) => Ok(Some(KeysInput::Jwks(j.to_string()))),
        (None, Some(u)) => Ok(Some(KeysInput::JwksUri(u))),
        (None, None) => Ok(None),
    }
}

/// `token_endpoint_auth_method` in a body: whether it names `private_key_jwt`.
fn wants_keys(method: Option<&str>) -> Result<Option<bool>, Problem> {
    match method {
        None => Ok(None),
        Some("private_key_jwt") => Ok(Some(true)),
        Some("client_secret_basic" | "client_secret_post") => Ok(Some(false)),
        Some(other) => Err(Problem::bad_request(format!(
            "token_endpoint_auth_method '{other}' is not supported (client_secret_basic, client_secret_post, private_key_jwt)"
        ))),
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version `If-Match` names: `None` for `*` (any) or no header when `required` is false.
fn if_match(headers: &HeaderMap, required: bool) -> Result<Option<i64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        if required {
            return Err(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "send If-Match with the ETag of the client as last read (GET), so a change made meanwhile is not overwritten",
            ));
        }
        return Ok(None);
    };
    let v = v.to_str().unwrap_or_default().trim();
    if v == "*" {
        return Ok(None);
    }
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        // An ETag this server never gave cannot match.
        .ok_or_else(|| {
            Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "If-Match names no version of this client",
            )
        })
}

/// A client's JSON with its `ETag`.
async fn client_response(s: &AdminState, status: StatusCode, view: Value, id: &str) -> Response {
    let mut r = (status, axum::Json(view)).into_response();
    if let Ok(v) = s.admin.client_version(id).await {
        r.headers_mut().insert(header::ETAG, etag(v));
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A 200/201 JSON answer that is never cached (it may hold a secret).
/// `r` with `Location: location` (RFC 9110 §10.2.2: where a created resource is).
fn with_location(mut r: Response, location: &str) -> Response {
    if let Ok(loc) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    r
}

fn ok_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_clients(
    State(s): State<AdminState>,
    q: Result<Query<Page>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let list = s.admin.list_clients_page(q.after.as_deref(), limit).await?;
    let next = (list.len() == limit as usize)
        .then(|| list.last().map(|c| c.client_id.clone()))
        .flatten();
    Ok(ok_json(
        StatusCode::OK,
        json!({"clients": to_value(&list), "next_after": next}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateClientBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    token_ttl: Option<u32>,
    expires_at: Option<String>,
    token_endpoint_auth_method: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    #[serde(default)]
    claims: Map<String, Value>,
    max_tokens_per_minute: Option<u32>,
}

async fn create_client(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let b: CreateClientBody = json_body(&s, &headers, body).await?;
    let keys = keys_input(b.jwks, b.jwks_uri)?;
    match (wants_keys(b.token_endpoint_auth_method.as_deref())?, &keys) {
        (Some(true), None) => {
            return Err(Problem::bad_request(
                "private_key_jwt needs jwks or jwks_uri",
            ))
        }
        (None | Some(false), Some(_)) => {
            return Err(Problem::bad_request(
                "jwks and jwks_uri need token_endpoint_auth_method private_key_jwt",
            ))
        }
        _ => {}
    }
    let input = CreateClient {
        name: b.name,
        scopes: b.scopes,
        audiences: b.audiences,
        token_ttl: b.token_ttl,
        expires_at: b
            .expires_at
            .as_deref()
            .map(|t| time(t, "expires_at"))
            .transpose()?,
        keys,
        claims: b.claims,
        max_tokens_per_minute: b.max_tokens_per_minute,
    };
    let (view, secret) = s.admin.create_client(&by, input).await?;
    let id = view.client_id.clone();
    let mut v = to_value(&view);
    if let Some(secret) = &secret {
        v["client_secret"] = Value::from(secret.expose());
    }
    let r = client_response(&s, StatusCode::CREATED, v, &id).await;
    Ok(with_location(r, &format!("/admin/v1/clients/{id}")))
}

async fn show_client(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = s.admin.show_client(&id).await?;
    Ok(client_response(&s, StatusCode::OK, to_value(&view), &id).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateClientBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    token_ttl: Option<u32>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
    token_endpoint_auth_method: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    claims: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    max_tokens_per_minute: Option<Option<u32>>,
}

async fn update_client(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let expect = if_match(&headers, true)?;
    let b: UpdateClientBody = json_body(&s, &headers, body).await?;
    let keys = keys_input(b.jwks, b.jwks_uri)?;
    let method = wants_keys(b.token_endpoint_auth_method.as_deref())?;
    if method == Some(true) && keys.is_none() {
        return Err(Problem::bad_request(
            "private_key_jwt needs jwks or jwks_uri",
        ));
    }
    if keys.is_some() && method != Some(true) {
        // Switching revokes the client's secrets at once: only when asked in so many words.
        let current = s.admin.show_client(&id).await?;
        if current.token_endpoint_auth_method != "private_key_jwt" {
            return Err(Problem::bad_request(
                "the client uses a secret; add \"token_endpoint_auth_method\": \"private_key_jwt\" to switch it to keys (its secrets are revoked at once)",
            ));
        }
    }
    let input = UpdateClient {
        name: b.name,
        scopes: b.scopes,
        audiences: b.audiences,
        token_ttl: b.token_ttl,
        enabled: b.enabled,
        expires_at: match b.expires_at {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(time(&t, "expires_at")?)),
        },
        keys,
        use_secret: method == Some(false),
        claims: b.claims,
        max_tokens_per_minute: b.max_tokens_per_minute,
    };
    let view = s.admin.update_client(&by, &id, input, expect).await?;
    Ok(client_response(&s, StatusCode::OK, to_value(&view), &id).await)
}

async fn set_enabled(
    s: AdminState,
    by: Actor,
    id: String,
    headers: HeaderMap,
    enabled: bool,
) -> Result<Response, Problem> {
    let expect = if_match(&headers, false)?;
    let view = s.admin.set_enabled(&by, &id, enabled, expect).await?;
    Ok(client_response(&s, StatusCode::OK, to_value(&view), &id).await)
}

async fn enable_client(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_enabled(s, by, id, headers, true).await
}

async fn disable_client(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_enabled(s, by, id, headers, false).await
}

async fn delete_client(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let expect = if_match(&headers, false)?;
    s.admin.delete_client(&by, &id, expect).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    /// Seconds the previous secrets keep working (default one day).
    grace_seconds: Option<u64>,
    expires_at: Option<String>,
}

async fn rotate_secret(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let b: RotateSecretBody = if headers.contains_key(header::CONTENT_TYPE) {
        json_body(&s, &headers, body).await?
    } else {
        RotateSecretBody::default()
    };
    let grace = b.grace_seconds.unwrap_or(86_400);
    if grace > 90 * 86_400 {
        return Err(Problem::bad_request(
            "grace_seconds must be at most 90 days",
        ));
    }
    let expires_at = b
        .expires_at
        .as_deref()
        .map(|t| time(t, "expires_at"))
        .transpose()?;
    let new = s.admin.rotate_secret(&by, &id, grace, expires_at).await?;
    Ok(ok_json(
        StatusCode::CREATED,
        crate::admin::rotated_secret_json(&id, &new),
    ))
}

async fn revoke_secret(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path((id, secret_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    s.admin.revoke_secret(&by, &id, &secret_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Signing keys

async fn list_keys(State(s): State<AdminState>) -> Result<Response, Problem> {
    let keys = s.admin.list_keys().await?;
    Ok(ok_json(StatusCode::OK, json!({"keys": to_value(&keys)})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateKeyBody {
    alg: Option<String>,
    /// Seconds the new key is published before it signs (default: the server's JWKS max-age
    /// plus a margin).
    publish_ahead_seconds: Option<u32>,
}

async fn rotate_key(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let b: RotateKeyBody = if headers.contains_key(header::CONTENT_TYPE) {
        json_body(&s, &headers, body).await?
    } else {
        RotateKeyBody::default()
    };
    let Some(rotation) = &s.rotation else {
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "this API cannot rotate signing keys (no master key)",
        ));
    };
    let mut timing = rotation.timing;
    if let Some(ahead) = b.publish_ahead_seconds {
        timing.publish_ahead = i64::from(ahead);
    }
    let alg = match b.alg.as_deref() {
        None => rotation.alg,
        Some(a) => a.parse::<Alg>().map_err(|_| {
            Problem::bad_request(format!("alg '{a}' is not supported (RS256, ES256, EdDSA)"))
        })?,
    };
    let plan = s
        .admin
        .rotate_signing_key(&by, &rotation.master, alg, timing)
        .await?;
    Ok(ok_json(
        StatusCode::CREATED,
        crate::admin::rotation_json(&plan),
    ))
}

// ---------------------------------------------------------------------------------------------
// Trusts

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustBody {
    name: String,
    issuer: Option<String>,
    spiffe_trust_domain: Option<String>,
    audience: String,
    subject: String,
    #[serde(default)]
    claims: Map<String, Value>,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    max_token_age: Option<u32>,
    client_id: String,
}

async fn list_trusts(State(s): State<AdminState>) -> Result<Response, Problem> {
    let list = s.admin.list_trusts().await?;
    Ok(ok_json(StatusCode::OK, json!({"trusts": to_value(&list)})))
}

async fn add_trust(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let b: TrustBody = json_body(&s, &headers, body).await?;
    let claims = b
        .claims
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(v) => Ok(format!("{k}={v}")),
            _ => Err(Problem::bad_request(format!(
                "claim '{k}': a trust's required claims are strings"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let input = TrustInput {
        name: b.name,
        issuer: b.issuer,
        spiffe_trust_domain: b.spiffe_trust_domain,
        audience: b.audience,
        subject: b.subject,
        claims,
        jwks_uri: b.jwks_uri,
        jwks: b.jwks.map(|j| j.to_string()),
        max_token_age: b.max_token_age,
        client: b.client_id,
    };
    let view = s.admin.add_trust(&by, input).await?;
    let location = format!("/admin/v1/trusts/{}", view.id);
    Ok(with_location(
        ok_json(StatusCode::CREATED, to_value(&view)),
        &location,
    ))
}

async fn show_trust(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(ok_json(
        StatusCode::OK,
        to_value(&s.admin.show_trust(&id).await?),
    ))
}

async fn remove_trust(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    s.admin.remove_trust(&by, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// API keys

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    expires_at: Option<String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

async fn list_api_keys(State(s): State<AdminState>) -> Result<Response, Problem> {
    let list = s.admin.list_api_keys().await?;
    Ok(ok_json(
        StatusCode::OK,
        json!({"api_keys": to_value(&list)}),
    ))
}

async fn create_api_key(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let b: ApiKeyBody = json_body(&s, &headers, body).await?;
    let input = ApiKeyInput {
        name: b.name,
        scopes: b.scopes,
        audiences: b.audiences,
        expires_at: b
            .expires_at
            .as_deref()
            .map(|t| time(t, "expires_at"))
            .transpose()?,
        claims: b.claims,
    };
    let (view, key) = s.admin.create_api_key(&by, input).await?;
    let location = format!("/admin/v1/api-keys/{}", view.id);
    let mut v = to_value(&view);
    v["api_key"] = Value::from(key.expose());
    Ok(with_location(ok_json(StatusCode::CREATED, v), &location))
}

async fn show_api_key(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(ok_json(
        StatusCode::OK,
        to_value(&s.admin.show_api_key(&id).await?),
    ))
}

async fn revoke_api_key(
    State(s): State<AdminState>,
    Extension(by): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    s.admin.revoke_api_key(&by, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Audit

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    client_id: Option<String>,
    action: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

async fn list_audit(
    State(s): State<AdminState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let since = q.since.as_deref().map(|t| time(t, "since")).transpose()?;
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let events = s
        .admin
        .list_audit(q.client_id.as_deref(), since.unwrap_or(0))
        .await?;
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| q.action.as_deref().is_none_or(|a| e.action == a))
        .take(limit as usize)
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"events": to_value(&events)}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_the_status_and_retry_after_on_503() {
        let unavailable = AdminError::Store(crate::store::StoreError::Unavailable("down".into()));
        let r = Problem::from(unavailable).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );

        let taken = AdminError::Conflict("a trust named 'ci' exists already".into());
        let r = Problem::from(taken).into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());

        let bad = Problem::from(AdminError::Invalid("no".into())).into_response();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.headers().get(header::RETRY_AFTER).is_none());
    }
}
