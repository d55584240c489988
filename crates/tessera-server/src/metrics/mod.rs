//! Prometheus metrics (`tessera serve --metrics-listen ADDR`): the name and meaning of every
//! series the server exports, their label sets, and the exporter behind the listener.
//!
//! The code records through the `metrics` facade. Without `--metrics-listen` no recorder is
//! installed: the macros are no-ops and the helpers below return after one atomic load, so the
//! metrics cost nothing when they are off.
//!
//! **Label values come from fixed sets** (`grant`, `alg`, `auth_method`, `reason`, `error`,
//! `kind`, `endpoint`: the matched route) **or, only with `--metrics-per-client`, from the ids of
//! registered clients**, never from what a caller sent: a flood of made-up client ids or paths
//! cannot create series, and no secret or token is ever a label.
//!
//! Three kinds of series:
//! - events (counters and the latency histogram), recorded where they happen;
//! - state (ages, expiries, the argon2id pool, counts the services keep anyway), read when
//!   Prometheus asks (`http::Scrape`), so they cost the request path nothing;
//! - the process (CPU, memory, file descriptors, threads; [`process`]), read at scrape time too.
//!
//! Per-client series (`tessera_per_client_*`) are off by default: 100k clients would make 100k
//! series per metric, which is the monitoring system's problem more than this server's.

pub mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::keys::Alg;
use crate::oauth::{AuthMethod, Client, ClientAuth, ClientId, ErrorCode};

/// Counter: access tokens issued. Labels: `grant` ([`GrantKind`]), `alg` (`RS256`, `ES256`,
/// `EdDSA`), `auth_method` (`client_secret_basic`, `client_secret_post`, `private_key_jwt`, or
/// `none` for a JWT-bearer grant presented without client authentication).
pub const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";

/// Counter: failed client authentications (token, revocation, introspection and revocation
/// feed endpoints). Label: `reason`, one of [`AuthFailure`].
pub const CLIENT_AUTH_FAILURES: &str = "tessera_client_auth_failures_total";

/// Counter: OAuth error responses. Label: `error`, the RFC 6749 §5.2 (or RFC 8707) code on the
/// wire: `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
/// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `temporarily_unavailable`,
/// `server_error`.
pub const OAUTH_ERRORS: &str = "tessera_oauth_errors_total";

/// Histogram: seconds from a request's arrival at the router to its response head, per endpoint.
/// Label: `endpoint`, the matched route (`/oauth/token`, `/jwks.json`, …). Requests no route
/// matches are not timed, so unknown paths create no series.
pub const HTTP_REQUEST_DURATION: &str = "tessera_http_request_duration_seconds";

/// Gauge: argon2id secret checks running now (at most `--argon2-workers`).
pub const ARGON2_RUNNING: &str = "tessera_argon2_checks_running";

/// Gauge: argon2id secret checks waiting for a worker (at most `--auth-queue`).
pub const ARGON2_QUEUED: &str = "tessera_argon2_checks_queued";

/// Counter: secret checks refused before argon2id. Label: `reason`, `queue_full` (the queue was
/// full: 503 with `Retry-After`) or `failure_budget` (the client id used up its failure budget:
/// 429).
pub const ARGON2_REFUSED: &str = "tessera_argon2_checks_refused_total";

/// Counter: argon2id verifications run (one per candidate secret: two during a rotation).
pub const ARGON2_CHECKS: &str = "tessera_argon2_checks_total";

/// Gauge: seconds since the registry last reached the database (every `--refresh-interval-ms`
/// while it answers). Past `--max-stale` the token endpoint answers 503.
pub const REGISTRY_SNAPSHOT_AGE: &str = "tessera_registry_snapshot_age_seconds";

/// Counter: registry refreshes that failed or timed out (the server kept its last good state).
pub const REGISTRY_REFRESH_FAILURES: &str = "tessera_registry_refresh_failures_total";

/// Gauge: clients held in memory (at most `--client-cache`; below the registry's size when it
/// is larger, see `tessera_registry_evicted_total`).
pub const REGISTRY_CLIENTS: &str = "tessera_registry_clients";

/// Counter: clients removed from memory to make room (`--client-cache` reached); they are read
/// from the database again when they call.
pub const REGISTRY_EVICTED: &str = "tessera_registry_evicted_total";

/// Counter: database errors. Label: `kind`, one of [`DbErrorKind`].
pub const DATABASE_ERRORS: &str = "tessera_database_errors_total";

/// Gauge: seconds until the active signing key leaves the JWKS. Absent while none is scheduled
/// (a key retires only once a rotation has started).
pub const SIGNING_KEY_RETIRES_IN: &str = "tessera_signing_key_retires_in_seconds";

/// Gauge: seconds until `--key-rotation-interval` starts the next rotation (counted from the
/// newest key's activation); negative when one is overdue. Absent without a schedule.
pub const KEY_ROTATION_DUE_IN: &str = "tessera_key_rotation_due_in_seconds";

/// Gauge: seconds until the soonest expiry. Label: `kind`, one of [`ExpiryKind`]. Absent when
/// nothing of that kind expires.
pub const CREDENTIALS_SOONEST_EXPIRY: &str = "tessera_credentials_soonest_expiry_seconds";

/// Gauge: how many expire within a window. Labels: `kind` ([`ExpiryKind`]), `within` (`1d`,
/// `7d`).
pub const CREDENTIALS_EXPIRING: &str = "tessera_credentials_expiring";

/// Counter, `--metrics-per-client` only: tokens issued to each client. Label: `client_id`.
pub const PER_CLIENT_TOKENS_ISSUED: &str = "tessera_per_client_tokens_issued_total";

/// Counter, `--metrics-per-client` only: failed authentications of each registered client
/// (an id nobody registered is never a label). Labels: `client_id`, `reason` ([`AuthFailure`]).
pub const PER_CLIENT_AUTH_FAILURES: &str = "tessera_per_client_auth_failures_total";

/// Gauge, `--metrics-per-client` only: seconds until each client's expiry. Labels: `client_id`,
/// `kind` ([`ExpiryKind`]). Only clients that expire have one.
pub const PER_CLIENT_EXPIRY: &str = "tessera_per_client_expiry_seconds";

/// Gauge: CPU time the process used, user and system, in seconds. A gauge with fractional
/// seconds (the `metrics` facade's counters are integers); `rate()` reads it as usual. The
/// `process_*` names are the ones every Prometheus client library uses, so standard dashboards
/// work unchanged.
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";

/// Gauge: resident memory, in bytes.
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// Gauge: virtual memory, in bytes.
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";

/// Gauge: open file descriptors (sockets included).
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";

/// Gauge: the open-file limit (soft).
pub const PROCESS_MAX_FDS: &str = "process_max_fds";

/// Gauge: threads.
pub const PROCESS_THREADS: &str = "process_threads";

/// Gauge: when the process started, unix seconds.
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";

/// Upper bounds of the latency histogram's buckets, in seconds: a cached secret is answered in
/// well under a millisecond, an argon2id check takes tens of milliseconds, a queue for the
/// argon2id workers or the database a second or more.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a gauge nobody sets stays in the output: every gauge is set at each scrape, so one
/// left unset (a client deleted, nothing expiring any more) drops out after this.
const GAUGE_IDLE: Duration = Duration::from_secs(60);

/// The grant a token was issued under (label `grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1).
    JwtBearer,
}

impl GrantKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "jwt_bearer",
        }
    }
}

/// Why a client authentication failed (label `reason`). A small fixed set, so the label cannot
/// grow; the audit log has the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No client has the claimed id.
    UnknownClient,
    /// A wrong secret (or one revoked) for a registered client.
    BadSecret,
    /// A `private_key_jwt` assertion that does not verify or is refused (signature, claims,
    /// replay, malformed).
    BadAssertion,
    /// The client is disabled.
    Disabled,
    /// The client has expired, or every secret it has left has.
    Expired,
    /// The client authenticates another way (a secret for a `private_key_jwt` client, or the
    /// other way round).
    WrongMethod,
    /// No credentials, or a broken `Authorization` header or assertion type.
    Malformed,
    /// The client id used up its failure budget: refused without a check (429).
    Throttled,
}

impl AuthFailure {
    /// Every reason, in label order.
    pub const ALL: [AuthFailure; 8] = [
        Self::UnknownClient,
        Self::BadSecret,
        Self::BadAssertion,
        Self::Disabled,
        Self::Expired,
        Self::WrongMethod,
        Self::Malformed,
        Self::Throttled,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::BadSecret => "bad_secret",
            Self::BadAssertion => "bad_assertion",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::WrongMethod => "wrong_method",
            Self::Malformed => "malformed",
            Self::Throttled => "throttled",
        }
    }

    /// Why a registered client's credential was refused at `now`, once the check said no: its
    /// state explains the refusal when it is disabled, expired or of the other method;
    /// otherwise the credential was wrong (`wrong`).
    pub fn of_client(client: &Client, now: i64, wrong: AuthFailure) -> AuthFailure {
        let presented_secret = matches!(wrong, AuthFailure::BadSecret);
        let is_secret_client = client.auth == ClientAuth::Secret;
        if !client.enabled {
            Self::Disabled
        } else if client.expires_at.is_some_and(|e| now >= e) {
            Self::Expired
        } else if presented_secret != is_secret_client {
            Self::WrongMethod
        } else if is_secret_client
            && client.usable_secrets(now).next().is_none()
            && client
                .secrets
                .iter()
                .any(|s| s.revoked_at.is_none() && s.expires_at.is_some_and(|e| now >= e))
        {
            Self::Expired
        } else {
            wrong
        }
    }
}

/// What kind of database error (label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The database cannot be reached (connection, pool exhausted or closed).
    Unavailable,
    /// A statement failed.
    Query,
    /// A look-up, refresh or readiness check did not answer in time.
    Timeout,
}

impl DbErrorKind {
    /// Every kind, in label order.
    pub const ALL: [DbErrorKind; 3] = [Self::Unavailable, Self::Query, Self::Timeout];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Query => "query",
            Self::Timeout => "timeout",
        }
    }
}

/// What expires (label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryKind {
    /// An enabled client's own expiry (`--expires-at` on `client create` / `update`).
    Client,
    /// When an enabled secret client's last usable secret expires: the moment it can no longer
    /// authenticate unless it gets a new secret. (During a rotation the old secret's end is not
    /// an outage, so only the last one counts.)
    Secret,
}

impl ExpiryKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Secret => "secret",
        }
    }
}

/// The OAuth error codes, in label order.
const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::InvalidRequest,
    ErrorCode::InvalidClient,
    ErrorCode::InvalidGrant,
    ErrorCode::UnauthorizedClient,
    ErrorCode::UnsupportedGrantType,
    ErrorCode::InvalidScope,
    ErrorCode::InvalidTarget,
    ErrorCode::TemporarilyUnavailable,
    ErrorCode::ServerError,
];

fn error_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::InvalidRequest => 0,
        ErrorCode::InvalidClient => 1,
        ErrorCode::InvalidGrant => 2,
        ErrorCode::UnauthorizedClient => 3,
        ErrorCode::UnsupportedGrantType => 4,
        ErrorCode::InvalidScope => 5,
        ErrorCode::InvalidTarget => 6,
        ErrorCode::TemporarilyUnavailable => 7,
        ErrorCode::ServerError => 8,
    }
}

const METHODS: usize = 4;

fn method_index(m: Option<AuthMethod>) -> usize {
    match m {
        Some(AuthMethod::ClientSecretBasic) => 0,
        Some(AuthMethod::ClientSecretPost) => 1,
        Some(AuthMethod::PrivateKeyJwt) => 2,
        None => 3,
    }
}

fn alg_index(alg: Alg) -> usize {
    match alg {
        Alg::Rs256 => 0,
        Alg::Es256 => 1,
        Alg::EdDsa => 2,
    }
}

/// The handles of the hot-path series, registered once with the installed recorder, so that
/// recording is an index and an atomic add, with no key to build or look up per request.
struct Handles {
    /// `grant × alg × auth_method`, registered at first use (a series appears with its first
    /// token rather than 24 zeros at start).
    tokens: [OnceLock<Counter>; 2 * 3 * METHODS],
    /// One per [`AuthFailure`], registered at install (zeros from the start, so `rate()` works
    /// from the first failure).
    auth_failures: [Counter; AuthFailure::ALL.len()],
    /// One per [`ERROR_CODES`], registered at install.
    oauth_errors: [Counter; ERROR_CODES.len()],
    /// Per-client series are exported (`--metrics-per-client`).
    per_client: AtomicBool,
}

/// Set once, when [`Exporter::install`] installs the recorder.
static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The Prometheus recorder of this process: the registry every `metrics` macro writes to, and
/// the handle that renders it.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

/// Set once: a process has one global recorder.
static EXPORTER: OnceLock<Exporter> = OnceLock::new();

impl Exporter {
    /// Install the Prometheus recorder as this process's `metrics` recorder (or return the one
    /// installed before), with per-client series when `per_client`. Fails if another recorder
    /// is installed.
    pub fn install(per_client: bool) -> anyhow::Result<Exporter> {
        if let Some(e) = EXPORTER.get() {
            if let Some(h) = HANDLES.get() {
                h.per_client.store(per_client, Ordering::Relaxed);
            }
            return Ok(e.clone());
        }
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                &LATENCY_BUCKETS,
            )
            .context("latency buckets")?
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
            .install_recorder()
            .context("installing the metrics recorder (is another one installed?)")?;
        describe();
        let _ = HANDLES.set(Handles {
            tokens: std::array::from_fn(|_| OnceLock::new()),
            auth_failures: AuthFailure::ALL
                .map(|r| metrics::counter!(CLIENT_AUTH_FAILURES, "reason" => r.as_str())),
            oauth_errors: ERROR_CODES
                .map(|c| metrics::counter!(OAUTH_ERRORS, "error" => c.as_str())),
            per_client: AtomicBool::new(per_client),
        });
        for kind in DbErrorKind::ALL {
            metrics::counter!(DATABASE_ERRORS, "kind" => kind.as_str()).absolute(0);
        }
        for reason in ["queue_full", "failure_budget"] {
            metrics::counter!(ARGON2_REFUSED, "reason" => reason).absolute(0);
        }
        metrics::counter!(REGISTRY_REFRESH_FAILURES).absolute(0);
        metrics::counter!(REGISTRY_EVICTED).absolute(0);
        let exporter = Exporter { handle };
        let _ = EXPORTER.set(exporter.clone());
        Ok(exporter)
    }

    /// The Prometheus text exposition of every series recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drain the histograms' recent samples into their buckets, so memory stays bounded when
    /// nobody scrapes; every few seconds until the task is aborted.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }
}

/// `# HELP` text for every series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        TOKENS_ISSUED,
        "Access tokens issued, by grant, signing algorithm and client authentication method."
    );
    describe_counter!(
        CLIENT_AUTH_FAILURES,
        "Failed client authentications, by reason."
    );
    describe_counter!(OAUTH_ERRORS, "OAuth error responses, by error code.");
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by endpoint (matched route)."
    );
    describe_gauge!(ARGON2_RUNNING, "argon2id secret checks running now.");
    describe_gauge!(
        ARGON2_QUEUED,
        "argon2id secret checks waiting for a worker."
    );
    describe_counter!(
        ARGON2_REFUSED,
        "Secret checks refused before argon2id: queue full (503) or failure budget used up (429)."
    );
    describe_counter!(ARGON2_CHECKS, "argon2id verifications run.");
    describe_gauge!(
        REGISTRY_SNAPSHOT_AGE,
        Unit::Seconds,
        "Seconds since the client registry last reached the database."
    );
    describe_counter!(
        REGISTRY_REFRESH_FAILURES,
        "Registry refreshes that failed or timed out."
    );
    describe_gauge!(REGISTRY_CLIENTS, "Clients held in memory.");
    describe_counter!(
        REGISTRY_EVICTED,
        "Clients removed from memory to make room (--client-cache reached)."
    );
    describe_counter!(DATABASE_ERRORS, "Database errors, by kind.");
    describe_gauge!(
        SIGNING_KEY_RETIRES_IN,
        Unit::Seconds,
        "Seconds until the active signing key leaves the JWKS (absent while none is scheduled)."
    );
    describe_gauge!(
        KEY_ROTATION_DUE_IN,
        Unit::Seconds,
        "Seconds until the next scheduled key rotation (negative when overdue)."
    );
    describe_gauge!(
        CREDENTIALS_SOONEST_EXPIRY,
        Unit::Seconds,
        "Seconds until the soonest client expiry (kind=client) or last-secret expiry (kind=secret)."
    );
    describe_gauge!(
        CREDENTIALS_EXPIRING,
        "Clients (kind=client) or clients' last secrets (kind=secret) expiring within 1d or 7d."
    );
    describe_counter!(PER_CLIENT_TOKENS_ISSUED, "Access tokens issued, by client.");
    describe_counter!(
        PER_CLIENT_AUTH_FAILURES,
        "Failed authentications of registered clients, by client and reason."
    );
    describe_gauge!(
        PER_CLIENT_EXPIRY,
        Unit::Seconds,
        "Seconds until a client's expiry (kind=client) or its last secret's (kind=secret)."
    );
    process::describe();
    // Introspection and revocation check this server's own tokens with tessera-verifier, whose
    // token counters then land here too.
    tessera_verifier::metrics::describe();
}

fn handles() -> Option<&'static Handles> {
    HANDLES.get()
}

/// Whether per-client series are exported (`--metrics-per-client`).
pub fn per_client() -> bool {
    handles().is_some_and(|h| h.per_client.load(Ordering::Relaxed))
}

/// Count a token issued to `client` under `grant`, signed with `alg`, after the client
/// authenticated with `method` (`None`: a JWT-bearer grant without client authentication).
pub fn token_issued(grant: GrantKind, alg: Alg, method: Option<AuthMethod>, client: &ClientId) {
    let Some(h) = handles() else { return };
    let g = match grant {
        GrantKind::ClientCredentials => 0,
        GrantKind::JwtBearer => 1,
    };
    let i = (g * 3 + alg_index(alg)) * METHODS + method_index(method);
    h.tokens[i]
        .get_or_init(|| {
            metrics::counter!(TOKENS_ISSUED,
                "grant" => grant.as_str(),
                "alg" => alg.as_str(),
                "auth_method" => method.map_or("none", AuthMethod::as_str))
        })
        .increment(1);
    if h.per_client.load(Ordering::Relaxed) {
        metrics::counter!(PER_CLIENT_TOKENS_ISSUED, "client_id" => client.as_str().to_owned())
            .increment(1);
    }
}

/// Count a failed client authentication. `registered` is the client when the claimed id is a
/// registered one (the only case a per-client series may name it).
pub fn auth_failed(reason: AuthFailure, registered: Option<&ClientId>) {
    let Some(h) = handles() else { return };
    if let Some(i) = AuthFailure::ALL.iter().position(|r| *r == reason) {
        h.auth_failures[i].increment(1);
    }
    if let Some(id) = registered.filter(|_| h.per_client.load(Ordering::Relaxed)) {
        metrics::counter!(PER_CLIENT_AUTH_FAILURES,
            "client_id" => id.as_str().to_owned(),
            "reason" => reason.as_str())
        .increment(1);
    }
}

/// Count an OAuth error response.
pub fn oauth_error(code: ErrorCode) {
    if let Some(h) = handles() {
        h.oauth_errors[error_index(code)].increment(1);
    }
}

/// Count a database error.
pub fn database_error(kind: DbErrorKind) {
    metrics::counter!(DATABASE_ERRORS, "kind" => kind.as_str()).increment(1);
}

/// Count clients removed from memory to make room.
pub fn registry_evicted(n: usize) {
    metrics::counter!(REGISTRY_EVICTED).increment(n as u64);
}

/// Count a failed registry refresh.
pub fn registry_refresh_failed() {
    metrics::counter!(REGISTRY_REFRESH_FAILURES).increment(1);
}

/// Most routes the latency histogram tells apart (the router has about a dozen); requests of
/// routes past these are not timed.
const MAX_TIMED_ROUTES: usize = 32;

/// The latency histograms, one per matched route, each registered at its route's first request.
/// A fixed table of write-once slots, so that finding a route's histogram takes no lock and no
/// reference count: requests on every core only read it.
static ROUTE_TIMERS: [OnceLock<(Box<str>, Histogram)>; MAX_TIMED_ROUTES] =
    [const { OnceLock::new() }; MAX_TIMED_ROUTES];

/// The latency histogram of the matched route `route` ([`HTTP_REQUEST_DURATION`]); `None` when
/// no recorder is installed or the table is full.
pub fn route_histogram(route: &str) -> Option<&'static Histogram> {
    handles()?;
    for slot in &ROUTE_TIMERS {
        // The first free slot is claimed for `route`; if another request claimed it first,
        // for this route or another, the answer is the same after it: read on.
        let (r, h) = slot.get_or_init(|| {
            (
                route.into(),
                metrics::histogram!(HTTP_REQUEST_DURATION, "endpoint" => route.to_owned()),
            )
        });
        if &**r == route {
            return Some(h);
        }
    }
    None
}

/// When `client`'s `kind` expires, if it does and has not yet (an enabled client only: a
/// disabled one cannot authenticate anyway).
pub fn expiry(client: &Client, kind: ExpiryKind, now: i64) -> Option<i64> {
    if !client.is_active(now) {
        return None;
    }
    match kind {
        ExpiryKind::Client => client.expires_at,
        ExpiryKind::Secret => {
            if client.auth != ClientAuth::Secret {
                return None;
            }
            // The last usable secret's end; none if any usable secret never expires.
            let mut last: Option<i64> = None;
            for s in client.usable_secrets(now) {
                let e = s.expires_at?;
                last = Some(last.map_or(e, |l| l.max(e)));
            }
            last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{SecretId, StoredSecret};
    use crate::secrets::SecretHash;

    fn client(expires_at: Option<i64>, secrets: &[(Option<i64>, Option<i64>)]) -> Client {
        Client {
            id: ClientId::parse("tc_x").unwrap(),
            name: "x".into(),
            scopes: Default::default(),
            audiences: vec![],
            token_ttl: 300,
            enabled: true,
            expires_at,
            auth: ClientAuth::Secret,
            claims: Default::default(),
            max_tokens_per_minute: None,
            secrets: secrets
                .iter()
                .enumerate()
                .map(|(i, (expires_at, revoked_at))| StoredSecret {
                    id: SecretId::new(format!("ts_{i}")),
                    hash: SecretHash::from_stored(String::new()),
                    created_at: 0,
                    expires_at: *expires_at,
                    revoked_at: *revoked_at,
                })
                .collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_secret_expiry_is_the_last_usable_secrets() {
        // A rotation with grace: the old secret ends at 150, the new one at 900.
        let c = client(None, &[(Some(150), None), (Some(900), None)]);
        assert_eq!(expiry(&c, ExpiryKind::Secret, 100), Some(900));
        assert_eq!(expiry(&c, ExpiryKind::Client, 100), None);
        // One secret that never expires: the client's credentials do not.
        let c = client(Some(500), &[(Some(150), None), (None, None)]);
        assert_eq!(expiry(&c, ExpiryKind::Secret, 100), None);
        assert_eq!(expiry(&c, ExpiryKind::Client, 100), Some(500));
        // Revoked secrets do not count; an expired client has nothing left to expire.
        let c = client(None, &[(Some(150), None), (Some(900), Some(50))]);
        assert_eq!(expiry(&c, ExpiryKind::Secret, 100), Some(150));
        let c = client(Some(50), &[(Some(150), None)]);
        assert_eq!(expiry(&c, ExpiryKind::Secret, 100), None);
    }

    #[test]
    fn failure_reasons_follow_the_clients_state() {
        let ok = client(None, &[(None, None)]);
        let wrong = AuthFailure::BadSecret;
        assert_eq!(
            AuthFailure::of_client(&ok, 100, wrong),
            AuthFailure::BadSecret
        );
        let expired = client(Some(50), &[(None, None)]);
        assert_eq!(
            AuthFailure::of_client(&expired, 100, wrong),
            AuthFailure::Expired
        );
        let secrets_gone = client(None, &[(Some(50), None)]);
        assert_eq!(
            AuthFailure::of_client(&secrets_gone, 100, wrong),
            AuthFailure::Expired
        );
        let revoked = client(None, &[(None, Some(50))]);
        assert_eq!(
            AuthFailure::of_client(&revoked, 100, wrong),
            AuthFailure::BadSecret
        );
        let mut disabled = client(None, &[(None, None)]);
        disabled.enabled = false;
        assert_eq!(
            AuthFailure::of_client(&disabled, 100, wrong),
            AuthFailure::Disabled
        );
        // A secret client presenting an assertion, and the other way round.
        assert_eq!(
            AuthFailure::of_client(&ok, 100, AuthFailure::BadAssertion),
            AuthFailure::WrongMethod
        );
        let mut keyed = client(None, &[]);
        keyed.auth =
            ClientAuth::PrivateKeyJwt(crate::oauth::ClientKeys::JwksUri("https://k".into()));
        assert_eq!(
            AuthFailure::of_client(&keyed, 100, wrong),
            AuthFailure::WrongMethod
        );
        assert_eq!(
            AuthFailure::of_client(&keyed, 100, AuthFailure::BadAssertion),
            AuthFailure::BadAssertion
        );
    }

    #[test]
    fn every_label_set_is_fixed_and_distinct() {
        let reasons: Vec<_> = AuthFailure::ALL.iter().map(|r| r.as_str()).collect();
        let mut unique = reasons.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), reasons.len());
        for (i, c) in ERROR_CODES.iter().enumerate() {
            assert_eq!(error_index(*c), i);
        }
        let mut seen = std::collections::HashSet::new();
        for g in [GrantKind::ClientCredentials, GrantKind::JwtBearer] {
            for a in Alg::ALL {
                for m in [
                    Some(AuthMethod::ClientSecretBasic),
                    Some(AuthMethod::ClientSecretPost),
                    Some(AuthMethod::PrivateKeyJwt),
                    None,
                ] {
                    let gi = usize::from(g == GrantKind::JwtBearer);
                    assert!(seen.insert((gi * 3 + alg_index(a)) * METHODS + method_index(m)));
                }
            }
        }
        assert_eq!(seen.len(), 24);
        assert!(seen.iter().all(|i| *i < 24));
    }
}
