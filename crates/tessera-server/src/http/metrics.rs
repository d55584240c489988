//! Metrics over HTTP: the router of the metrics listener (`GET /metrics`) with the scrape that
//! sets the gauges derived from the services' state, and the layer that times each request of
//! the main router by its matched route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::authority::Authority;
use crate::clock::Clock;
use crate::keys::active_key;
use crate::metrics::{
    expiry, per_client, route_histogram, ExpiryKind, Exporter, ARGON2_CHECKS, ARGON2_QUEUED,
    ARGON2_REFUSED, ARGON2_RUNNING, CREDENTIALS_EXPIRING, CREDENTIALS_SOONEST_EXPIRY,
    KEY_ROTATION_DUE_IN, PER_CLIENT_EXPIRY, REGISTRY_CLIENTS, REGISTRY_SNAPSHOT_AGE,
    SIGNING_KEY_RETIRES_IN,
};

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
    // The expiry gauges need every client: walked in memory when the registry is held whole,
    // read from the database (indexed on the expiring rows) when it is not.
    let now = scrape.clock.now();
    let registry = scrape.authority.registry();
    let expiries = if registry.is_complete() {
        Expiries::InMemory
    } else {
        match registry.credential_expiries(now).await {
            Ok((clients, secrets)) => Expiries::Read { clients, secrets },
            Err(_) => Expiries::Unknown,
        }
    };
    // A scrape walks the registry for the expiry gauges (100k clients: milliseconds): on the
    // blocking pool, not on a worker that serves token requests.
    match tokio::task::spawn_blocking(move || scrape.render(now, expiries)).await {
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

/// Where a scrape takes the expiring credentials from.
pub enum Expiries {
    /// The registry in memory, which holds every client.
    InMemory,
    /// As read from the database: (client, end) for clients and for secrets.
    Read {
        /// Expiring clients.
        clients: Vec<(crate::oauth::ClientId, i64)>,
        /// Clients whose usable secrets all expire, with the last end.
        secrets: Vec<(crate::oauth::ClientId, i64)>,
    },
    /// The database could not be read: the expiry gauges keep their last values.
    Unknown,
}

/// A scrape: the gauges derived from the services' state are set, then the recorder rendered.
pub struct Scrape {
    exporter: Exporter,
    authority: Arc<Authority>,
    clock: Clock,
    rotation_every: Option<Duration>,
}

impl Scrape {
    /// A scrape of `exporter` and the state of `authority`, on `clock`; `rotation_every` is
    /// `--key-rotation-interval`.
    pub fn new(
        exporter: Exporter,
        authority: Arc<Authority>,
        clock: Clock,
        rotation_every: Option<Duration>,
    ) -> Self {
        Self {
            exporter,
            authority,
            clock,
            rotation_every,
        }
    }

    /// The Prometheus text exposition of every series, state gauges as of `now`, the expiry
    /// gauges from `expiries`.
    pub fn render(&self, now: i64, expiries: Expiries) -> String {
        self.observe_services();
        self.observe_keys(now);
        match expiries {
            Expiries::InMemory => {
                let clients = self.authority.registry().clients_snapshot();
                let each = clients.iter().flat_map(|c| {
                    [ExpiryKind::Client, ExpiryKind::Secret]
                        .into_iter()
                        .filter_map(move |k| expiry(c, k, now).map(|at| (c.id.as_str(), k, at)))
                });
                observe_expiries(each, now);
            }
            Expiries::Read { clients, secrets } => {
                let each = clients
                    .iter()
                    .map(|(id, at)| (id.as_str(), ExpiryKind::Client, *at))
                    .chain(
                        secrets
                            .iter()
                            .map(|(id, at)| (id.as_str(), ExpiryKind::Secret, *at)),
                    );
                observe_expiries(each, now);
            }
            Expiries::Unknown => {}
        }
        crate::metrics::process::observe();
        self.exporter.render()
    }

    fn observe_services(&self) {
        let registry = self.authority.registry();
        metrics::gauge!(REGISTRY_SNAPSHOT_AGE).set(registry.snapshot_age().as_secs_f64());
        metrics::gauge!(REGISTRY_CLIENTS).set(registry.cached_clients() as f64);
        let credentials = self.authority.credentials();
        let (running, queued) = credentials.in_flight();
        metrics::gauge!(ARGON2_RUNNING).set(running as f64);
        metrics::gauge!(ARGON2_QUEUED).set(queued as f64);
        metrics::counter!(ARGON2_CHECKS).absolute(credentials.argon2_runs());
        metrics::counter!(ARGON2_REFUSED, "reason" => "queue_full")
            .absolute(credentials.busy_checks());
        metrics::counter!(ARGON2_REFUSED, "reason" => "failure_budget")
            .absolute(credentials.throttled_checks());
    }

    fn observe_keys(&self, now: i64) {
        let keys = self.authority.registry().stored_keys();
        if let Some(retires) = active_key(&keys, now).and_then(|k| k.retires_at) {
            metrics::gauge!(SIGNING_KEY_RETIRES_IN).set((retires - now) as f64);
        }
        if let Some(every) = self.rotation_every {
            // The schedule rotates once the newest key (the active one, or a pending one that
            // will be) has signed for `every`.
            let newest = keys
                .iter()
                .filter(|k| k.is_published(now))
                .map(|k| k.activates_at)
                .max();
            if let Some(activated) = newest {
                let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
                metrics::gauge!(KEY_ROTATION_DUE_IN)
                    .set(activated.saturating_add(every).saturating_sub(now) as f64);
            }
        }
    }
}

/// Set the expiry gauges from every expiring credential: (client id, kind, end).
fn observe_expiries<'a>(each: impl Iterator<Item = (&'a str, ExpiryKind, i64)>, now: i64) {
    let per_client = per_client();
    let mut summary = [ExpirySummary::default(), ExpirySummary::default()];
    for (id, kind, at) in each {
        let left = at - now;
        summary[kind as usize].add(left);
        if per_client {
            metrics::gauge!(PER_CLIENT_EXPIRY,
                "client_id" => id.to_owned(),
                "kind" => kind.as_str())
            .set(left as f64);
        }
    }
    for (s, kind) in summary.iter().zip([ExpiryKind::Client, ExpiryKind::Secret]) {
        if let Some(soonest) = s.soonest {
            metrics::gauge!(CREDENTIALS_SOONEST_EXPIRY, "kind" => kind.as_str())
                .set(soonest as f64);
        }
        metrics::gauge!(CREDENTIALS_EXPIRING, "kind" => kind.as_str(), "within" => "1d")
            .set(s.within_day as f64);
        metrics::gauge!(CREDENTIALS_EXPIRING, "kind" => kind.as_str(), "within" => "7d")
            .set(s.within_week as f64);
    }
}

/// The soonest expiry of one kind and the counts within a day and a week.
#[derive(Default)]
struct ExpirySummary {
    soonest: Option<i64>,
    within_day: u64,
    within_week: u64,
}

impl ExpirySummary {
    fn add(&mut self, left: i64) {
        self.soonest = Some(self.soonest.map_or(left, |s| s.min(left)));
        if left <= 86_400 {
            self.within_day += 1;
        }
        if left <= 7 * 86_400 {
            self.within_week += 1;
        }
    }
}

/// Times each request into [`crate::metrics::HTTP_REQUEST_DURATION`] under its matched route.
/// Added with `Router::route_layer`, so it runs only for requests a route matched: a path no
/// route knows (a scan, a typo) is never a label.
#[derive(Clone, Copy, Default)]
pub struct RequestTimer;

impl<S> tower::Layer<S> for RequestTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner }
    }
}

/// A service timed by [`RequestTimer`].
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Timed<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let histogram = req
            .extensions()
            .get::<MatchedPath>()
            .and_then(|route| route_histogram(route.as_str()));
        TimedFuture {
            inner: self.inner.call(req),
            histogram,
            started: Instant::now(),
        }
    }
}

/// The response of a timed request: records the time when the inner one is ready. (No box: the
/// router's futures are `Unpin`, so this one is too.)
pub struct TimedFuture<F> {
    inner: F,
    histogram: Option<&'static metrics::Histogram>,
    started: Instant,
}

impl<F, E> Future for TimedFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        if let Some(h) = self.histogram.take() {
            h.record(self.started.elapsed());
        }
        Poll::Ready(out)
    }
}
