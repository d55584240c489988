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

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tessera_verifier::axum::{Guard, Requirement};
use tessera_verifier::{AccessToken, ApiKeyAuthenticator, ApiKeySource, RoleMap, Verifier};

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
    let mut builder = Verifier::builder(issuer, audience);
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
    let verifier = builder.build()?;
    let roles = RoleMap::new().role("ADMIN", |r| r.claim("groups", "git-admins"));
    let mut guard = Guard::new(verifier)
        .realm("resource-service")
        .with_roles(Arc::new(roles));
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
