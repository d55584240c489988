//! Tessera, the token server, as a library. The `tessera` binary parses its command line into a
//! [`config::ServerConfig`], binds the listener and calls [`run`], or calls the
//! [`admin::Admin`] service for CLI commands.
//!
//! Layers, each calling only the ones below it:
//! - adapters: [`http`] (axum extractors and handlers);
//! - services: [`authority`] (the protocol: authenticate, issue, revoke, introspect) and
//!   [`admin`] (every admin change with its audit record);
//! - domain: [`registry`] (the in-memory snapshot), [`keys`] (ring, signer, lifecycle),
//!   [`secrets`], [`revocations`], [`replay`], [`audit`], [`oauth`] (protocol rules, no HTTP, no SQL);
//! - storage: [`store`], the only code that speaks SQL.
#![deny(missing_docs)]

pub mod admin;
pub mod audit;
pub mod authority;
pub mod clock;
pub mod config;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod quota;
pub mod random;
pub mod registry;
pub mod replay;
pub mod revocations;
pub mod secrets;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::authority::Authority;
use crate::clock::Clock;
use crate::config::{Issuer, MasterKeySource, ServerConfig};
use crate::keys::lifecycle::{self, RotationTiming};
use crate::keys::MasterKey;
use crate::registry::Registry;
use crate::revocations::Revocations;
use crate::secrets::CredentialVerifier;
use crate::store::Store;

/// Load the master key as configured.
pub fn load_master_key(source: &MasterKeySource) -> anyhow::Result<MasterKey> {
    match source {
        MasterKeySource::Value(v) => {
            MasterKey::from_base64(v).context("TESSERA_MASTER_KEY / --master-key")
        }
        MasterKeySource::File(p) => MasterKey::load_or_create_file(p).map_err(anyhow::Error::from),
    }
}

/// Open the database and apply migrations.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .with_context(|| format!("opening database {}", store::redact_url(url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Apply the database's pending migrations (`tessera migrate`).
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    open_store(url).await.map(drop)
}

/// The admin service on the database at `url` (migrated first), with `clock`.
pub async fn open_admin(url: &str, clock: Clock) -> anyhow::Result<admin::Admin> {
    Ok(admin::Admin::new(open_store(url).await?, clock))
}

/// A server, loaded and ready to serve: its registry is in memory and its first signing key
/// exists. [`App::router`] answers requests in-process (tests drive it with
/// `tower::ServiceExt::oneshot`); [`App::serve`] runs it on a listener.
pub struct App {
    config: ServerConfig,
    authority: Arc<Authority>,
    registry: Arc<Registry>,
    store: Store,
    clock: Clock,
    tls: Option<Arc<http::Tls>>,
    /// The metrics listener and the installed recorder (`--metrics-listen`), if any.
    metrics: Option<(TcpListener, metrics::Exporter)>,
}

impl App {
    /// Open the database, load clients and keys (generating the first key if there is none) and
    /// build the services, with `issuer` and `clock`.
    pub async fn load(config: ServerConfig, issuer: Issuer, clock: Clock) -> anyhow::Result<App> {
        let tls = config
            .tls
            .as_ref()
            .map(http::Tls::load)
            .transpose()
            .context("loading the TLS certificate and key")?;
        let master = load_master_key(&config.master_key)?;
        let store = open_store(&config.database_url).await?;
        let credentials = Arc::new(CredentialVerifier::new(config.verifier_limits));
        let registry = Registry::load(
            store.clone(),
            master,
            config.signing_alg,
            clock.clone(),
            credentials.clone(),
            config.client_cache,
        )
        .await
        .context("loading clients and signing keys")?;
        let registry = Arc::new(registry);
        let authority = Authority::new(
            registry.clone(),
            credentials,
            Revocations::new(store.clone()),
            clock.clone(),
            issuer,
            authority::TokenPolicy {
                typ: authority::TypPolicy {
                    default: config.access_token_typ,
                    jwt_audiences: config.jwt_typ_audiences.clone(),
                },
                default_max_tokens_per_minute: config.default_max_tokens_per_minute,
            },
            authority::Secretless::new(
                replay::ReplayGuard::spawn(store.clone()),
                clock.clone(),
                config.external_jwks_cooldown,
                config.max_assertion_lifetime,
            ),
        )?;
        Ok(App {
            config,
            authority: Arc::new(authority),
            registry,
            store,
            clock,
            tls,
            metrics: None,
        })
    }

    /// Serve Prometheus metrics on `listener` as well (`--metrics-listen`): installs this
    /// process's metrics recorder (per-client series if the configuration asks for them), and
    /// times the main router's requests.
    pub fn with_metrics(mut self, listener: TcpListener) -> anyhow::Result<App> {
        let exporter = metrics::Exporter::install(self.config.metrics_per_client)?;
        self.metrics = Some((listener, exporter));
        Ok(self)
    }

    /// The protocol service.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// Every endpoint, as one router.
    pub fn router(&self) -> axum::Router {
        let state = http::AppState {
            authority: self.authority.clone(),
            jwks_max_age: self.config.jwks_max_age,
            body: http::BodyRules {
                max_bytes: self.config.max_body_bytes,
                timeout: self.config.body_timeout,
            },
        };
        let router = http::router(state);
        // Timed only when metrics are served: otherwise the layer would be pure cost.
        match self.metrics {
            Some(_) => router.route_layer(http::RequestTimer),
            None => router,
        }
    }

    /// The admin API (`/admin/v1`), for the admin listener.
    pub fn admin_router(&self) -> anyhow::Result<axum::Router> {
        let state = http::admin::AdminState {
            admin: admin::Admin::new(self.store.clone(), self.clock.clone()),
            rotation: Some(Arc::new(http::admin::KeyRotation {
                master: load_master_key(&self.config.master_key)?,
                alg: self.config.signing_alg,
                timing: RotationTiming::for_jwks_max_age(self.config.jwks_max_age),
            })),
            body_timeout: self.config.body_timeout,
        };
        Ok(http::admin::router(state, self.authority.clone()))
    }

    /// Serve on `listener` (and the admin API on `admin`, if given) until `shutdown` resolves,
    /// refreshing the registry in the background and rotating keys on the configured schedule;
    /// then drain in-flight requests.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let router = self.router();
        // One shutdown signal for every listener.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let admin_task = match admin {
            Some(admin) => {
                let addr = admin.local_addr().context("reading the admin address")?;
                tracing::info!(%addr, audience = %self.authority.admin_audience(), "admin API listening");
                let router = self.admin_router()?;
                let limits = self.limits();
                Some(tokio::spawn(http::serve(
                    admin,
                    router,
                    limits,
                    self.tls.clone(),
                    stopped(),
                )))
            }
            None => None,
        };
        let metrics_tasks = match self.metrics.take() {
            Some((metrics_listener, exporter)) => {
                let addr = metrics_listener
                    .local_addr()
                    .context("reading the metrics address")?;
                let scrape = http::Scrape::new(
                    exporter.clone(),
                    self.authority.clone(),
                    self.clock.clone(),
                    self.config.key_rotation_interval,
                );
                let limits = http::ServeLimits {
                    max_connections: 64,
                    max_connections_per_ip: 0,
                    max_header_bytes: 8192,
                    header_read_timeout: Duration::from_secs(10),
                    shutdown_grace: Duration::from_secs(1),
                };
                let server = http::serve(
                    metrics_listener,
                    http::metrics_router(Arc::new(scrape)),
                    limits,
                    None,
                    std::future::pending(),
                );
                tracing::info!(%addr, "serving metrics at /metrics");
                Some([exporter.spawn_upkeep(), tokio::spawn(server)])
            }
            None => None,
        };
        let refresher = self
            .registry
            .clone()
            .spawn_refresher(self.config.refresh_interval, self.config.max_stale);
        let rotator = match self.config.key_rotation_interval {
            Some(every) => Some(lifecycle::spawn_schedule(
                self.store.clone(),
                load_master_key(&self.config.master_key)?,
                self.config.signing_alg,
                every,
                RotationTiming::for_jwks_max_age(self.config.jwks_max_age),
                self.clock.clone(),
            )),
            None => None,
        };
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, issuer = %self.authority.issuer(), kid = %self.registry.key_ring().signer.kid(), "tessera listening");
        let limits = self.limits();
        if let Some(tls) = &self.tls {
            tracing::info!(
                cert = %tls.files().cert.display(),
                sha256 = %tls.certificate_sha256(),
                "serving HTTPS; the certificate files are re-read when they change"
            );
        }
        let tls_reloader = self
            .tls
            .as_ref()
            .map(|tls| tls.spawn_reloader(http::Tls::RELOAD_EVERY));
        let main = http::serve(listener, router, limits, self.tls.clone(), stopped());
        tokio::pin!(main);
        tokio::select! {
            () = &mut main => {}
            () = shutdown => {
                let _ = stop_tx.send(true);
                main.await;
            }
        }
        let _ = stop_tx.send(true);
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        refresher.abort();
        if let Some(r) = tls_reloader {
            r.abort();
        }
        if let Some(r) = rotator {
            r.abort();
        }
        for task in metrics_tasks.into_iter().flatten() {
            task.abort();
        }
        tracing::info!("tessera stopped");
        Ok(())
    }
}

impl App {
    /// The connection limits of every listener.
    fn limits(&self) -> http::ServeLimits {
        http::ServeLimits {
            max_connections: self.config.max_connections,
            max_connections_per_ip: self.config.max_connections_per_ip,
            max_header_bytes: self.config.max_header_bytes,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: self.config.shutdown_grace,
        }
    }
}

/// The issuer for a server bound to `listener`: the configured one, or `http://<bound address>`
/// (`https://` with TLS). A plain-HTTP issuer on a non-loopback address is refused unless
/// `config.insecure_http` allows it ([`Issuer::check_transport`]).
pub fn issuer_for(config: &ServerConfig, listener: &TcpListener) -> anyhow::Result<Issuer> {
    let addr = listener.local_addr().context("reading the bound address")?;
    let issuer = match &config.issuer {
        Some(i) => i.clone(),
        None => {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Issuer::parse(&format!("{scheme}://{addr}"))?
        }
    };
    issuer.check_transport(addr, config.insecure_http)?;
    Ok(issuer)
}

/// Run the server on `listener` with `clock` until `shutdown` resolves (mini-redis'
/// `server::run`): [`App::load`], then [`App::serve`].
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let issuer = issuer_for(&config, &listener)?;
    App::load(config, issuer, clock)
        .await?
        .serve(listener, None, shutdown)
        .await
}
