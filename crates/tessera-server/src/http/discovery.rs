//! RFC 8414 authorization server metadata, served at both well-known paths.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::AppState;

pub(super) async fn metadata(State(app): State<AppState>) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(app.authority.metadata().await),
    )
        .into_response()
}
