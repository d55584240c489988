//! Get OAuth 2.0 client-credentials access tokens (RFC 6749 §4.4) and cache them, so a calling
//! service pays one token request per token lifetime, not one per outgoing call.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_client::TokenError> {
//! use tessera_client::{AuthorizedClient, ClientSecret, TokenSource};
//!
//! let source = TokenSource::builder("tc_Q2x…", ClientSecret::new(std::env::var("TESSERA_CLIENT_SECRET").unwrap_or_default()))
//!     .issuer("https://auth.example.com")     // discovery finds the token endpoint
//!     .scope("s2s:internal")
//!     .audience("https://orders.internal")
//!     .service_name("billing")                 // optional `X-Service-Name`, for audit logs
//!     .build()?;
//!
//! // A token, from cache while it has more than 20 % of its lifetime left.
//! let token = source.token().await?;
//! println!("Bearer {}", token.secret());
//!
//! // Or let a reqwest wrapper add it (and refresh once on 401 invalid_token):
//! let api = AuthorizedClient::new(reqwest::Client::new(), source);
//! let resp = api.send(api.get("https://orders.internal/internal/ping")).await?;
//! # let _ = resp; Ok(()) }
//! ```
//!
//! Three ways to prove who the caller is, each starting a [`TokenSourceBuilder`]; caching,
//! retries and discovery work the same for all:
//!
//! - [`TokenSource::builder`]: a client id and secret (`client_secret_basic`).
//! - [`TokenSource::private_key_jwt`]: a client id and a [`PrivateKey`] that signs a fresh
//!   assertion per token request (RFC 7523 §2.2). The server holds only the public key.
//! - [`TokenSource::assertion`]: an [`AssertionSource`] — a Kubernetes service account token
//!   file, a callback, or GitHub Actions — traded for tokens with the JWT-bearer grant
//!   (RFC 7523 §2.1). No client id, nothing secret to store.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_client::{AssertionSource, PrivateKey, TokenSource};
//!
//! // A PKCS#8 PEM key, e.g. from `tessera keypair --alg ES256 …`; parsed once, here.
//! let pem = std::fs::read_to_string("/etc/orders/tessera-key.pem")?;
//! let key = PrivateKey::from_pem(&pem, Some("orders-2027".into()))?;
//! let source = TokenSource::private_key_jwt("tc_Q2x…", key)
//!     .issuer("https://auth.example.com")     // also the assertions' `aud`
//!     .scope("s2s:internal")
//!     .build()?;
//! let token = source.token().await?;
//!
//! // In a pod: the projected service account token, re-read for every token request.
//! let k8s = TokenSource::assertion(AssertionSource::file(
//!     "/var/run/secrets/tokens/tessera",
//! ))
//! .issuer("https://auth.example.com")
//! .build()?;
//! # let _ = (token, k8s); Ok(()) }
//! ```
#![deny(missing_docs)]

mod assertion;
mod authorized;
mod clock;
mod credential;
mod discovery;
mod error;
mod key;
mod request;
mod retry;
mod secret;
mod source;

pub use assertion::AssertionSource;
pub use authorized::AuthorizedClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AssertionError, KeyError, TokenError};
pub use key::{KeyAlg, PrivateKey};
pub use retry::RetryPolicy;
pub use secret::AccessToken;
pub use source::{TokenSource, TokenSourceBuilder};
pub use tessera_proto::ClientSecret;
