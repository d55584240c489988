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
#![deny(missing_docs)]

mod authorized;
mod clock;
mod discovery;
mod error;
mod request;
mod retry;
mod secret;
mod source;

pub use authorized::AuthorizedClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::TokenError;
pub use retry::RetryPolicy;
pub use secret::AccessToken;
pub use source::{TokenSource, TokenSourceBuilder};
pub use tessera_proto::ClientSecret;
