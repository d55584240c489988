//! What resource services read from Tessera: the revocation feed and managed API keys.

use serde::{Deserialize, Serialize};

/// Every managed API key starts with this, so a resource service tells a key from a JWT at a
/// glance.
pub const API_KEY_PREFIX: &str = "tak_";

/// `token_type` of an introspection answer about a managed API key.
pub const API_KEY_TOKEN_TYPE: &str = "api_key";

/// One page of `GET /oauth/revocations?since=CURSOR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationPage {
    /// Revoked tokens that have not expired yet, oldest revocation first.
    pub revoked: Vec<RevokedToken>,
    /// Ask from here next time (decimal digits).
    pub cursor: String,
    /// More entries follow at once.
    #[serde(default)]
    pub has_more: bool,
}

/// One revoked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`: after this, nobody needs to remember it.
    pub exp: i64,
}
