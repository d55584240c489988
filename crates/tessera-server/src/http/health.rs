//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Alive: the process answers HTTP.
pub(super) async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// Ready: the database answers within a second and a signing key is loaded (the registry cannot
/// exist without one). While the database is unreachable but the snapshot is within
/// `--max-stale`, the replica still serves known clients, so it stays ready (status
/// `degraded`): a balancer that routes only to ready replicas would otherwise take away the
/// traffic `--max-stale` is there to serve.
pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    let database = app.authority.ready(Duration::from_secs(1)).await;
    if !database && !app.authority.registry().is_stale() {
        return (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "degraded", "reason": "database unreachable; serving known clients from the snapshot",
                "signing_kid": app.authority.key_ring().signer.kid().as_str()})),
        )
            .into_response();
    }
    if database {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "signing_kid": app.authority.key_ring().signer.kid().as_str()})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"status": "not ready", "reason": "database unreachable"}),
            ),
        )
            .into_response()
    }
}
