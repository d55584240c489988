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
//! Beyond that, each opt-in:
//!
//! - **Roles**: a [`RoleMap`] grants names such as `ADMIN` by scopes or claim values
//!   (`groups` contains `git-admins`), built in code or read from JSON; the axum
//!   [`axum::Guard`] checks them with `Requirement::role`.
//! - **Typed claims**: [`AccessToken::claim`] reads one claim as any `Deserialize` type.
//! - **Other issuers**: [`VerifierBuilder::accept_typ_jwt`], [`VerifierBuilder::accept_missing_typ`],
//!   [`VerifierBuilder::scopes_from_scp`] and [`VerifierBuilder::client_id_from_azp`] read the
//!   token shapes of Keycloak, Entra ID, Okta, Auth0 or Ory Hydra; [`Verifier::any_of`] trusts
//!   several issuers, each with its own audience and keys.
//! - **Static API keys**: [`ApiKeyAuthenticator`], one named, scoped key per caller tier.
//!
//! **Metrics**: tokens accepted and rejected (by reason), key fetches and their failures, and
//! key staleness are counted through the [`metrics`](https://docs.rs/metrics) facade; a service
//! exports them with any `metrics` exporter it installs (see [`mod@metrics`] for the series).
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
#[cfg(feature = "reqwest")]
mod managed_keys;
pub mod metrics;
#[cfg(feature = "reqwest")]
mod revocation_feed;
mod roles;
mod token;
mod verifier;

pub use alg::{Algorithm, UnsupportedAlgorithm};
pub use api_key::{ApiKeyAuthenticator, ApiKeyAuthenticatorBuilder, ApiKeySource};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ConfigError, InvalidToken, VerifyError};
#[cfg(feature = "reqwest")]
pub use fetch::ReqwestFetcher;
pub use fetch::{parse_max_age, FetchError, FetchFuture, FetchResponse, Fetcher};
#[cfg(feature = "reqwest")]
pub use managed_keys::{ManagedApiKeys, ManagedApiKeysBuilder};
#[cfg(feature = "reqwest")]
pub use revocation_feed::{RevocationFeed, RevocationFeedBuilder};
pub use roles::{RoleGrants, RoleMap};
pub use tessera_proto::ClientSecret;
pub use token::{AccessToken, ClaimError, ScopeError};
pub use verifier::{Verifier, VerifierBuilder};
