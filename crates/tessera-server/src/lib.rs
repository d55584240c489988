//! Tessera, the token server, as a library: the `tessera` binary parses its command line into a
//! [`config::ServerConfig`] and calls [`run`], or calls [`admin`] for CLI commands.
//!
//! Layout: [`oauth`] holds the protocol rules (no HTTP, no SQL), [`http`] the wire, [`keys`] the
//! signing keys, [`store`] the data, [`secrets`] client-secret hashing and verification,
//! [`registry`] the in-memory view of clients and keys a running server serves from.
#![deny(missing_docs)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod random;
pub mod registry;
pub mod secrets;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::{Issuer, MasterKeySource, ServerConfig};
use crate::keys::MasterKey;
use crate::oauth::Audience;
use crate::registry::Registry;
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

/// Run the server until `shutdown` resolves. `on_listening` is called with the bound address
/// once the server accepts connections.
pub async fn run(
    config: ServerConfig,
    on_listening: impl FnOnce(SocketAddr, &Issuer),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let master = load_master_key(&config.master_key)?;
    let store = open_store(&config.database_url).await?;
    let clock = Clock::system();
    let verifier = Arc::new(CredentialVerifier::new(config.verifier_limits));
    let registry = Registry::load(
        store,
        master,
        config.signing_alg,
        clock.clone(),
        verifier.clone(),
    )
    .await
    .context("loading clients and signing keys")?;
    let registry = Arc::new(registry);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let issuer = match config.issuer {
        Some(i) => i,
        None => Issuer::parse(&format!("http://{addr}")).map_err(anyhow::Error::msg)?,
    };
    let fallback_audience =
        Audience::parse(issuer.as_str()).context("issuer is not a valid audience")?;
    let state = http::AppState {
        registry: registry.clone(),
        verifier,
        issuer: issuer.clone(),
        fallback_audience,
        jwks_max_age: config.jwks_max_age,
        clock,
    };
    let router = http::router(state, config.max_body_bytes);
    let refresher = registry.clone().spawn_refresher(config.refresh_interval);
    let rotator = match config.key_rotation_interval {
        Some(every) => {
            let timing = admin::RotationTiming {
                publish_ahead: i64::from(config.jwks_max_age) + PUBLISH_MARGIN_SECS,
            };
            let master = load_master_key(&config.master_key)?;
            Some(spawn_key_rotation(
                registry.store().clone(),
                master,
                config.signing_alg,
                every,
                timing,
            ))
        }
        None => None,
    };
    tracing::info!(%addr, %issuer, kid = %registry.key_ring().signer.kid(), "tessera listening");
    on_listening(addr, &issuer);
    let limits = http::ServeLimits {
        max_header_bytes: config.max_header_bytes,
        header_read_timeout: Duration::from_secs(10),
        shutdown_grace: config.shutdown_grace,
    };
    http::serve(listener, router, limits, shutdown).await;
    refresher.abort();
    if let Some(r) = rotator {
        r.abort();
    }
    tracing::info!("tessera stopped");
    Ok(())
}

/// Margin added to the JWKS `max-age` when pre-publishing a new key.
pub const PUBLISH_MARGIN_SECS: i64 = 60;

/// Rotate on a schedule: when the active key has been signing for `every`, start a rotation with
/// the configured algorithm. Every replica may run this; the store's locked rotation (refused
/// while one is pending) makes sure one rotation happens, not one per replica.
fn spawn_key_rotation(
    store: Store,
    master: MasterKey,
    alg: keys::Alg,
    every: Duration,
    timing: admin::RotationTiming,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let check = (every / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        loop {
            tokio::time::sleep(check).await;
            let now = Clock::system().now();
            let Ok(stored) = store.load_keys().await else {
                continue;
            };
            let due = keys::active_key(&stored, now).is_some_and(|k| now - k.activates_at >= every);
            let pending = stored
                .iter()
                .any(|k| k.is_published(now) && k.activates_at > now);
            if due && !pending {
                // Recorded as `keys.rotate_scheduled`, in the rotation's transaction.
                if let Err(e) = admin::rotate_signing_key(
                    &store,
                    &master,
                    &admin::Actor::server(),
                    alg,
                    timing,
                    now,
                )
                .await
                {
                    tracing::debug!(error = %e, "scheduled rotation not started");
                }
            }
        }
    })
}
