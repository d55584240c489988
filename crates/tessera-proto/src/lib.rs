//! The wire types of the Tessera protocol, written once and shared by the server
//! (`tessera-server`), the resource-server library (`tessera-verifier`) and the caller library
//! (`tessera-client`):
//!
//! - [`TokenResponse`]: the RFC 6749 §5.1 success body of the token endpoint;
//! - [`ErrorBody`]: the RFC 6749 §5.2 error body;
//! - [`Metadata`]: RFC 8414 authorization-server metadata, with [`Metadata::from_json`] making
//!   the exact-issuer check of RFC 8414 §3.3 that discovery must never skip;
//! - [`ClientSecret`]: a client secret whose `Debug` never shows it;
//! - [`RevocationPage`] (the revocation feed) and [`API_KEY_PREFIX`] (managed API keys), what
//!   resource services read from Tessera.
//!
//! ```
//! use tessera_proto::Metadata;
//!
//! let doc = br#"{"issuer":"https://auth.example","token_endpoint":"https://auth.example/oauth/token",
//!              "jwks_uri":"https://auth.example/jwks.json"}"#;
//! let m = Metadata::from_json(doc, "https://auth.example").unwrap();
//! assert_eq!(m.token_endpoint.as_deref(), Some("https://auth.example/oauth/token"));
//! assert!(Metadata::from_json(doc, "https://evil.example").is_err());
//! ```
#![deny(missing_docs)]

mod error;
mod metadata;
mod resource;
mod secret;
mod token;

pub use error::ErrorBody;
pub use metadata::{metadata_url, Metadata, MetadataError};
pub use resource::{RevocationPage, RevokedToken, API_KEY_PREFIX, API_KEY_TOKEN_TYPE};
pub use secret::ClientSecret;
pub use token::TokenResponse;
