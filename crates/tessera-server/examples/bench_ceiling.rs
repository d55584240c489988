//! The benchmark ceiling: the least an HTTP endpoint can do to hand out an ES256 JWT on this
//! machine — axum, one route, a key parsed once, sign a fixed-shape claim set, answer JSON. No
//! authentication, no parsing, no storage. `benches/run.sh` measures it beside the real token
//! endpoint so the two numbers come from the same run.
//!
//! `cargo run --release -p tessera-server --example bench_ceiling -- 127.0.0.1:18099`

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18099".into());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("keygen"))?;
    let key = Arc::new(
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("parse"))?,
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k"}"#);
    let app = axum::Router::new().route(
        "/token",
        post(move || {
            let (key, header) = (key.clone(), header.clone());
            async move {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let claims = format!(
                    r#"{{"iss":"http://127.0.0.1","sub":"c","aud":"a","exp":{},"iat":{now},"nbf":{now},"jti":"{}","client_id":"c","scope":"s"}}"#,
                    now + 300,
                    tessera_server::random::base64url(16)
                );
                let mut jws = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
                let sig = key.sign(&SystemRandom::new(), jws.as_bytes()).map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)?;
                jws.push('.');
                jws.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
                Ok::<_, axum::http::StatusCode>(axum::Json(serde_json::json!({
                    "access_token": jws, "token_type": "Bearer", "expires_in": 300, "scope": "s"
                })))
            }
        }),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("ceiling listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
