//! An example resource service protected by tessera-verifier.
//!
//! ```sh
//! TESSERA_ISSUER=http://127.0.0.1:8080 TESSERA_AUDIENCE=https://orders.internal \
//!   cargo run -p tessera-verifier --example resource-service
//! ```
//!
//! - `GET /health`: public.
//! - `GET /internal/ping`: requires scope `s2s:internal`.
//! - `GET /reports`: requires scope `reports:read`.
//! - `GET /admin`: requires role `ADMIN`, held by tokens whose `groups` claim contains
//!   `git-admins`.
//!
//! Optional: `JWKS_CACHE_MIN_TTL=SECONDS` lowers the floor on the JWKS cache lifetime (default 60).
//! `API_KEYS=key1,key2` also accepts those static keys (as `X-API-Key` or Bearer) as the caller
//! `static:legacy`, with the scopes in `API_KEY_SCOPES` (default `s2s:internal`); set but empty,
//! it stops the service at start-up.
//!
//! With its own Tessera client (`TESSERA_CLIENT_ID` and `TESSERA_CLIENT_SECRET`), the service
//! also accepts Tessera-managed API keys (`tak_…`, checked by introspection, cached ≤ 60 s) and
//! follows the revocation feed (`REVOCATION_POLL_MS`, default 5000; `REVOCATION_STRICT=1` answers
//! 503 once the feed has been unreachable for `REVOCATION_MAX_STALE_SECS`, default 60).
//! `API_KEY_CACHE_SECS` (default and maximum 60) bounds how long an accepted key is trusted
//! without asking again.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tessera_verifier::axum::{Guard, Requirement};
use tessera_verifier::{
    AccessToken, ApiKeyAuthenticator, ApiKeySource, ManagedApiKeys, RevocationFeed, RoleMap,
    Verifier,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let issuer = std::env::var("TESSERA_ISSUER")
        .map_err(|_| anyhow::anyhow!("TESSERA_ISSUER is required"))?;
    let audience = std::env::var("TESSERA_AUDIENCE")
        .map_err(|_| anyhow::anyhow!("TESSERA_AUDIENCE is required"))?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let mut builder = Verifier::builder(issuer.clone(), audience.clone());
    if let Some(min) = std::env::var("JWKS_CACHE_MIN_TTL")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // The issuer's max-age is honoured down to this many seconds (default 60).
        builder = builder.cache_ttl(
            Duration::from_secs(min),
            Duration::from_secs(3600),
            Duration::from_secs(300),
        );
    }
    let mut verifier = builder.build()?;
    // The service's own Tessera credentials turn on what needs a call to Tessera.
    let own = match (
        std::env::var("TESSERA_CLIENT_ID"),
        std::env::var("TESSERA_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) if !id.is_empty() => Some((id, secret)),
        _ => None,
    };
    let mut managed = None;
    if let Some((id, secret)) = &own {
        let env_num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let mut feed = RevocationFeed::builder(
            &issuer,
            id.clone(),
            tessera_verifier::ClientSecret::new(secret.clone()),
        )
        .interval(Duration::from_millis(env_num("REVOCATION_POLL_MS", 5000)))
        .max_staleness(Duration::from_secs(env_num(
            "REVOCATION_MAX_STALE_SECS",
            60,
        )));
        if std::env::var("REVOCATION_STRICT").is_ok_and(|v| v == "1") {
            feed = feed.strict();
        }
        let feed = feed.build()?;
        feed.spawn();
        verifier = verifier.with_revocation_feed(feed);
        managed = Some(
            ManagedApiKeys::builder(
                &issuer,
                audience.clone(),
                id.clone(),
                tessera_verifier::ClientSecret::new(secret.clone()),
            )
            .positive_ttl(Duration::from_secs(env_num("API_KEY_CACHE_SECS", 60)))
            .build()?,
        );
    }
    let roles = RoleMap::new().role("ADMIN", |r| r.claim("groups", "git-admins"));
    let mut guard = Guard::new(verifier)
        .realm("resource-service")
        .with_roles(Arc::new(roles));
    if let Some(keys) = managed {
        guard = guard.with_managed_keys(keys);
    }
    if std::env::var("API_KEYS").is_ok() {
        let scopes = std::env::var("API_KEY_SCOPES").unwrap_or_else(|_| "s2s:internal".into());
        let keys = ApiKeyAuthenticator::builder()
            .key(
                "legacy",
                ApiKeySource::Env("API_KEYS".into()),
                scopes.split_whitespace().map(str::to_owned),
            )
            .build()?;
        guard = guard.with_api_keys(Arc::new(keys));
    }

    let internal = Router::new()
        .route(
            "/internal/ping",
            get(|t: AccessToken| async move { format!("pong {}\n", t.client_id()) }),
        )
        .route_layer(guard.requiring(Requirement::all(["s2s:internal"])));
    let reports = Router::new()
        .route(
            "/reports",
            get(|t: AccessToken| async move {
                axum::Json(serde_json::json!({"reports": [], "for": t.client_id()}))
            }),
        )
        .route_layer(guard.requiring(Requirement::all(["reports:read"])));
    let admin = Router::new()
        .route(
            "/admin",
            get(|t: AccessToken| async move { format!("admin {}\n", t.client_id()) }),
        )
        .route_layer(guard.requiring(Requirement::role("ADMIN")));
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(internal)
        .merge(reports)
        .merge(admin);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "resource-service listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
