//! A calling service: gets tokens with tessera-client and calls the example resource service.
//!
//! ```sh
//! TESSERA_ISSUER=http://127.0.0.1:8080 TESSERA_CLIENT_ID=tc_… TESSERA_CLIENT_SECRET=tss_… \
//! TESSERA_AUDIENCE=https://orders.internal RESOURCE_URL=http://127.0.0.1:8081/internal/ping \
//!   cargo run -p tessera-client --example caller
//! ```
//! Makes `CALLS` (default 10) calls; the token is fetched once and reused.

use tessera_client::{AuthorizedClient, ClientSecret, TokenSource};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let var = |k: &str| std::env::var(k).map_err(|_| anyhow::anyhow!("{k} is required"));
    let mut builder = TokenSource::builder(
        var("TESSERA_CLIENT_ID")?,
        ClientSecret::new(var("TESSERA_CLIENT_SECRET")?),
    )
    .issuer(var("TESSERA_ISSUER")?)
    .scope("s2s:internal");
    if let Ok(aud) = var("TESSERA_AUDIENCE") {
        builder = builder.audience(aud);
    }
    let api = AuthorizedClient::new(reqwest::Client::new(), builder.build()?);
    let url = var("RESOURCE_URL")?;
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10);
    for i in 0..calls {
        let resp = api.send(api.get(&url)).await?;
        println!(
            "call {i}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default().trim()
        );
    }
    Ok(())
}
