//! Metrics over HTTP: the router of the metrics listener (`GET /metrics`), and the layer that
//! times each request of the main router by its matched route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::{EndpointTimers, Scrape};

/// The metrics listener's router: `GET /metrics` in the Prometheus text format (0.0.4),
/// anything else 404. Served on its own listener (`--metrics-listen`), never on the main one,
/// so it can be kept off the public network.
pub fn metrics_router(scrape: Arc<Scrape>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .fallback(super::error::not_found)
        .with_state(scrape)
}

async fn render(State(scrape): State<Arc<Scrape>>) -> Response {
    // A scrape walks the registry for the expiry gauges (100k clients: milliseconds): on the
    // blocking pool, not on a worker that serves token requests.
    match tokio::task::spawn_blocking(move || scrape.render()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Times each request into [`crate::metrics::HTTP_REQUEST_DURATION`] under its matched route.
/// Added with `Router::route_layer`, so it runs only for requests a route matched: a path no
/// route knows (a scan, a typo) is never a label.
#[derive(Clone, Default)]
pub struct RequestTimer {
    timers: EndpointTimers,
}

impl<S> tower::Layer<S> for RequestTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            timers: self.timers.clone(),
        }
    }
}

/// A service timed by [`RequestTimer`].
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    timers: EndpointTimers,
}

impl<S> tower::Service<Request> for Timed<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let histogram = req
            .extensions()
            .get::<MatchedPath>()
            .map(|route| self.timers.histogram(route.as_str()));
        let started = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await;
            if let Some(h) = histogram {
                h.record(started.elapsed());
            }
            response
        })
    }
}
