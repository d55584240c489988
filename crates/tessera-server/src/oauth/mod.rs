//! The OAuth 2.0 protocol rules of the token endpoint, independent of HTTP.
//!
//! Everything here works on bytes and typed values; `http/` turns requests into these inputs and
//! these errors into responses.

pub mod access_token;
pub mod api_key;
pub mod assertion;
pub mod claims;
pub mod client;
pub mod client_auth;
pub mod error;
pub mod form;
pub mod grant;
pub mod revocation;
pub mod scope;
pub mod trust;

pub use client::{Audience, Client, ClientAuth, ClientId, ClientKeys, SecretId, StoredSecret};
pub use client_auth::{AuthMethod, ClientCredentials};
pub use error::{ErrorCode, OAuthError};
pub use grant::{Grant, TokenRequest};
pub use revocation::TokenParams;
pub use scope::{Scope, ScopeSet};
