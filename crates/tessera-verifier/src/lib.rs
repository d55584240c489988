//! Validate OAuth 2.0 JWT access tokens (RFC 9068) in a resource service, against the issuer's
//! JWKS cached in memory, and enforce scopes.
//!
//! Works with Tessera and with any RFC 9068 issuer that publishes a JWKS. Verification is local
//! crypto: the issuer is contacted only to fetch keys — once, then ahead of the cache expiry, and
//! when a token names a key id the cache has not seen (at most once per cooldown).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_verifier::Verifier;
//!
//! // Discovery: fetch the issuer's RFC 8414 metadata, check its issuer, use its jwks_uri.
//! let verifier = Verifier::builder("https://auth.example.com", "https://orders.internal").build()?;
//!
//! let token = "eyJ…"; // from `Authorization: Bearer …`
//! match verifier.verify(token).await {
//!     Ok(at) => {
//!         at.require_scope("s2s:internal")?;
//!         println!("call from {}", at.client_id());
//!     }
//!     Err(e) => println!("refuse with {}", e.status()),
//! }
//! # Ok(()) }
//! ```
//!
//! For tests and air-gapped setups, [`VerifierBuilder::static_jwks`] takes the keys directly and
//! [`VerifierBuilder::clock`] / [`VerifierBuilder::fetcher`] inject time and the HTTP fetch.
#![deny(missing_docs)]

mod alg;
mod api_key;
#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod clock;
mod error;
mod fetch;
pub mod keys;
mod token;
mod verifier;

pub use alg::{Algorithm, UnsupportedAlgorithm};
pub use api_key::{ApiKeyAuthenticator, ApiKeySource};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ConfigError, InvalidToken, VerifyError};
#[cfg(feature = "reqwest")]
pub use fetch::ReqwestFetcher;
pub use fetch::{parse_max_age, FetchError, FetchFuture, FetchResponse, Fetcher};
pub use token::{AccessToken, ScopeError};
pub use verifier::{Verifier, VerifierBuilder};
