//! `tessera serve`: its flags, the typed configuration built from them, and the signal handling.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tessera_server::clock::Clock;
use tessera_server::config::{Issuer, MasterKeySource, ServerConfig, TlsFiles};
use tessera_server::keys::{Alg, TokenTyp};
use tessera_server::oauth::Audience;
use tessera_server::secrets::VerifierLimits;

use super::{ensure_data_dir, DbArgs, LogFormat};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Address of the admin API (`/admin/v1`, authenticated by this server's own access tokens
    /// for the audience <issuer>/admin); off by default. Keep it off the public network.
    #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// Issuer URL placed in tokens and discovery (default: http://<listen address>, https://
    /// with --tls-cert).
    #[arg(long, env = "TESSERA_ISSUER")]
    pub(crate) issuer: Option<String>,
    /// Algorithm for newly generated signing keys.
    #[arg(long, env = "TESSERA_SIGNING_ALG", default_value = "RS256")]
    pub(crate) signing_alg: Alg,
    #[command(flatten)]
    pub(crate) master: MasterKeyArgs,
    /// Rotate the signing key automatically when the active one has signed this long (e.g. 30d);
    /// off by default.
    #[arg(long, env = "TESSERA_KEY_ROTATION_INTERVAL", value_parser = humantime::parse_duration)]
    pub(crate) key_rotation_interval: Option<Duration>,
    /// How often to pick up changes made by the CLI or other replicas, in milliseconds.
    #[arg(long, env = "TESSERA_REFRESH_INTERVAL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub(crate) refresh_interval_ms: u64,
    /// `Cache-Control: max-age` of /jwks.json, in seconds.
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", default_value_t = 300)]
    pub(crate) jwks_max_age: u32,
    /// Requests allowed to wait for an argon2id secret check before the server answers 503.
    #[arg(long, env = "TESSERA_AUTH_QUEUE", default_value_t = 128)]
    pub(crate) auth_queue: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub(crate) max_body_bytes: usize,
    /// The `typ` header of access tokens: `at+jwt` (RFC 9068, the default) or `jwt`, for
    /// resource servers whose defaults refuse `at+jwt` (Spring Security's).
    #[arg(
        long,
        env = "TESSERA_ACCESS_TOKEN_TYP",
        value_enum,
        default_value = "at+jwt"
    )]
    pub(crate) access_token_typ: TypArg,
    /// An audience whose tokens carry `typ: JWT` whatever --access-token-typ says (repeat for
    /// more; the variable takes a comma-separated list).
    #[arg(
        long = "jwt-typ-audience",
        env = "TESSERA_JWT_TYP_AUDIENCES",
        value_delimiter = ','
    )]
    pub(crate) jwt_typ_audiences: Vec<String>,
    /// Connections open at once; more are closed at once, unread (default: what the open-file
    /// limit allows after a margin, at most 4096).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Connections open at once from one IP address (default: a quarter of --max-connections;
    /// 0 turns the per-address limit off, e.g. behind a proxy that every connection comes from).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_IP")]
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Time allowed to send the whole request body, from the end of the head (e.g. 10s); past it
    /// 408 and the connection is closed.
    #[arg(long, env = "TESSERA_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) body_timeout: Duration,
    /// Largest request head (request line + headers), in bytes (at least 8192).
    #[arg(long, env = "TESSERA_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(8192..))]
    pub(crate) max_header_bytes: u64,
    /// How long to keep serving known clients whose secrets are already verified, from the
    /// last snapshot, while the database is unreachable (a failover). Unknown ids and secrets
    /// not yet verified get 503 meanwhile; past this bound, everything does.
    #[arg(long, env = "TESSERA_MAX_STALE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) max_stale: Duration,
    /// Most clients held in memory (about 620 bytes each). A registry up to this size is held
    /// whole; a larger one in part: the first this many at start, then those that call, the
    /// others read from the database when they call (and kept, evicting clients unused since).
    #[arg(long, env = "TESSERA_CLIENT_CACHE", default_value_t = tessera_server::registry::DEFAULT_CLIENT_CACHE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) client_cache: u64,
    /// argon2id checks run at once (default: the number of cores less one, at least 1, so a
    /// flood of new or wrong secrets always leaves a core to callers whose secret is cached).
    #[arg(long, env = "TESSERA_ARGON2_WORKERS")]
    pub(crate) argon2_workers: Option<usize>,
    /// Failed authentications one client id may have per --auth-failure-window before a secret
    /// not already verified is refused without a check (429 + Retry-After); 0 turns it off.
    #[arg(long, env = "TESSERA_AUTH_FAILURE_BUDGET", default_value_t = 5)]
    pub(crate) auth_failure_budget: u32,
    /// The failure budget's window.
    #[arg(long, env = "TESSERA_AUTH_FAILURE_WINDOW", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) auth_failure_window: Duration,
    /// Tokens per minute a client may get from this replica unless it has its own
    /// `--max-tokens-per-minute` (0: no limit). Beyond it: 429 with Retry-After.
    #[arg(long, env = "TESSERA_MAX_TOKENS_PER_MINUTE", default_value_t = 0)]
    pub(crate) max_tokens_per_minute: u32,
    /// Longest lifetime (`exp - iat`) of a `private_key_jwt` client assertion (default 1h:
    /// Authlib signs assertions valid for an hour).
    #[arg(long, env = "TESSERA_MAX_ASSERTION_LIFETIME", default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) max_assertion_lifetime: Duration,
    /// Least time between two fetches of a client's `jwks_uri` or a trusted issuer's keys caused
    /// by an unknown `kid` or a failed fetch.
    #[arg(long, env = "TESSERA_EXTERNAL_JWKS_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) external_jwks_cooldown: Duration,
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Serve HTTPS with this PEM certificate chain (end-entity first); with --tls-key. Re-read
    /// when it changes, for renewals without a restart.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Allow a plain http:// issuer on a non-loopback --listen address (refused otherwise:
    /// clients would send their secrets over the network in the clear).
    #[arg(long, env = "TESSERA_INSECURE_HTTP", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) insecure_http: bool,
    /// Serve Prometheus metrics at GET /metrics on this address, a listener of its own (keep it
    /// off the public network); off by default.
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Also export per-client series labelled client_id (tokens issued, authentication
    /// failures, expiries): one series per client and metric, so off by default.
    #[arg(long, env = "TESSERA_METRICS_PER_CLIENT", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) metrics_per_client: bool,
}

#[derive(Args)]
pub(crate) struct MasterKeyArgs {
    /// Master key, 32 bytes base64 (default: <data-dir>/master.key, generated on first start).
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    pub(crate) master_key: Option<String>,
    /// File holding the master key (created with mode 0600 if missing).
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE")]
    pub(crate) master_key_file: Option<PathBuf>,
}

impl MasterKeyArgs {
    pub(crate) fn source(self, db: &DbArgs) -> anyhow::Result<MasterKeySource> {
        Ok(match (self.master_key, self.master_key_file) {
            (Some(v), _) => MasterKeySource::Value(v),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) => {
                ensure_data_dir(&db.data_dir)?;
                MasterKeySource::File(db.data_dir.join("master.key"))
            }
        })
    }
}

pub(crate) async fn run(db: &DbArgs, args: ServeArgs) -> anyhow::Result<()> {
    let database_url = db.url()?;
    let master_key = args.master.source(db)?;
    let issuer = args.issuer.as_deref().map(Issuer::parse).transpose()?;
    let jwt_typ_audiences = args
        .jwt_typ_audiences
        .iter()
        .map(|a| {
            Audience::parse(a.trim())
                .ok_or_else(|| anyhow::anyhow!("--jwt-typ-audience '{a}' is not a valid audience"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.body_timeout.is_zero() {
        anyhow::bail!("--body-timeout must be more than 0s");
    }
    let max_connections = args
        .max_connections
        .unwrap_or_else(tessera_server::http::default_max_connections);
    if max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    // Bad configuration fails at start-up, not at the first request.
    if args.max_assertion_lifetime < Duration::from_secs(10)
        || args.max_assertion_lifetime > Duration::from_secs(86_400)
    {
        anyhow::bail!("--max-assertion-lifetime must be between 10s and 24h");
    }
    if args.external_jwks_cooldown > Duration::from_secs(3600) {
        anyhow::bail!("--external-jwks-cooldown must be at most 1h");
    }
    if args.metrics_per_client && args.metrics_listen.is_none() {
        anyhow::bail!("--metrics-per-client needs --metrics-listen");
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = ServerConfig {
        listen: args.listen,
        issuer,
        database_url,
        signing_alg: args.signing_alg,
        master_key,
        refresh_interval: Duration::from_millis(args.refresh_interval_ms),
        jwks_max_age: args.jwks_max_age,
        verifier_limits: VerifierLimits {
            max_concurrent: args
                .argon2_workers
                .unwrap_or(cores.saturating_sub(1))
                .max(1),
            max_waiting: args.auth_queue,
            max_cached: 100_000,
            failure_budget: args.auth_failure_budget,
            failure_window: args.auth_failure_window,
        },
        max_body_bytes: args.max_body_bytes,
        body_timeout: args.body_timeout,
        access_token_typ: match args.access_token_typ {
            TypArg::AtJwt => TokenTyp::AtJwt,
            TypArg::Jwt => TokenTyp::Jwt,
        },
        jwt_typ_audiences,
        max_connections,
        max_connections_per_ip: args
            .max_connections_per_ip
            .unwrap_or((max_connections / 4).max(1)),
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        shutdown_grace: Duration::from_secs(30),
        key_rotation_interval: args.key_rotation_interval.filter(|d| !d.is_zero()),
        max_stale: args.max_stale,
        client_cache: usize::try_from(args.client_cache).unwrap_or(usize::MAX),
        default_max_tokens_per_minute: (args.max_tokens_per_minute > 0)
            .then_some(args.max_tokens_per_minute),
        max_assertion_lifetime: args.max_assertion_lifetime,
        external_jwks_cooldown: args.external_jwks_cooldown,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        insecure_http: args.insecure_http,
        metrics_listen: args.metrics_listen,
        metrics_per_client: args.metrics_per_client,
    };
    let tls = config.tls.is_some();
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let metrics_note = match &metrics_listener {
        Some(l) => format!(
            " metrics=http://{}",
            l.local_addr().context("reading the metrics address")?
        ),
        None => String::new(),
    };
    let issuer = tessera_server::issuer_for(&config, &listener)?;
    if let Some(a) = args.admin_listen {
        // Admin tokens are bearer credentials for everything: never in the clear on a network.
        if !tls && !a.ip().is_loopback() && !args.insecure_http {
            anyhow::bail!(
                "--admin-listen {a} would serve the admin API over plain HTTP on a network, where its bearer tokens can be read: \
                 give --tls-cert/--tls-key, listen on a loopback address, or pass --insecure-http if the network is trusted"
            );
        }
    }
    let admin = match args.admin_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the admin listener {a}"))?,
        ),
        None => None,
    };
    let mut app = tessera_server::App::load(config, issuer.clone(), Clock::system()).await?;
    if let Some(l) = metrics_listener {
        app = app.with_metrics(l)?;
    }
    // Machine-readable start line on stdout, once the server is ready (tests and scripts wait
    // for it).
    let scheme = if tls { "https" } else { "http" };
    let mut line = format!("tessera listening on {scheme}://{addr} issuer={issuer}");
    if let Some(a) = &admin {
        let a = a.local_addr().context("reading the admin address")?;
        line.push_str(&format!(" admin={scheme}://{a}"));
    }
    line.push_str(&metrics_note);
    println!("{line}");
    app.serve(listener, admin, shutdown).await
}

/// Register SIGTERM and SIGINT handlers now, and return a future that resolves on either.
/// Registering here, before the server announces that it listens, matters: a signal that
/// arrived before registration would take the default action and kill the process with a
/// non-zero status instead of draining (a race CI caught).
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// `--access-token-typ`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TypArg {
    /// `typ: at+jwt` (RFC 9068).
    #[value(name = "at+jwt")]
    AtJwt,
    /// `typ: JWT`.
    Jwt,
}
