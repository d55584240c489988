//! `GET /jwks.json` (RFC 7517).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::AppState;

pub(super) async fn jwks(State(app): State<AppState>) -> Response {
    let ring = app.authority.key_ring();
    let cache = HeaderValue::from_str(&format!("public, max-age={}", app.jwks_max_age))
        .unwrap_or(HeaderValue::from_static("public, max-age=300"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache),
        ],
        ring.jwks_json.clone(),
    )
        .into_response()
}
