//! A registered machine client, as the protocol sees it.

use std::fmt;

use crate::oauth::ScopeSet;
use crate::secrets::SecretHash;

/// A client identifier. Server-generated ids are `tc_` plus 22 base64url characters; the parser
/// accepts any printable ASCII without space up to 128 bytes, so that ids survive the RFC 6749
/// §2.3.1 form-encoding unchanged.
///
/// Shared text (`Arc<str>`): the registry's map key and the client's own id are one copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(std::sync::Arc<str>);

impl ClientId {
    /// Parse a client id.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| (0x21..=0x7E).contains(&b));
        ok.then(|| Self(std::sync::Arc::from(s)))
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(std::sync::Arc::from(format!(
            "tc_{}",
            crate::random::base64url(16)
        )))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

/// An audience (RFC 8707 resource indicator or logical name). Absolute URIs are expected but any
/// printable ASCII without space is accepted, as RFC 7519 `aud` is a StringOrURI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience(String);

impl Audience {
    /// Parse an audience value.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| (0x21..=0x7E).contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    /// The audience as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one secret of a client (a client has several during a rotation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretId(String);

impl SecretId {
    /// Wrap a stored secret id.
    pub fn new(id: String) -> Self {
        Self(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(format!("ts_{}", crate::random::base64url(9)))
    }
}

/// A secret as stored: its id, argon2id hash and validity window (unix seconds).
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The secret's id.
    pub id: SecretId,
    /// argon2id PHC string.
    pub hash: SecretHash,
    /// When it was created.
    pub created_at: i64,
    /// When it stops working, if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl StoredSecret {
    /// Whether the secret authenticates at `now`.
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// How a client authenticates. A client has exactly one method; switching is an explicit update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A shared secret, by `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1).
    Secret,
    /// `private_key_jwt` (RFC 7523 §2.2): a JWT signed with one of these public keys.
    PrivateKeyJwt(ClientKeys),
}

impl ClientAuth {
    /// The RFC 7591 `token_endpoint_auth_method` (a secret client takes `client_secret_post`
    /// as well).
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::Secret => "client_secret_basic",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// Where a `private_key_jwt` client's public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeys {
    /// A JWKS document, registered as is (RFC 7591 `jwks`).
    Jwks(String),
    /// A JWKS URL, fetched and cached (RFC 7591 `jwks_uri`).
    JwksUri(String),
}

/// Most keys a registered JWKS may hold (an assertion without `kid` is tried against each).
pub const MAX_CLIENT_KEYS: usize = 10;

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id (`sub` and `client_id` of its tokens).
    pub id: ClientId,
    /// Human name.
    pub name: String,
    /// Scopes it may request; also what it gets when it asks for none.
    pub scopes: ScopeSet,
    /// Audiences it may request; the first is the default.
    pub audiences: Vec<Audience>,
    /// Access-token lifetime in seconds.
    pub token_ttl: u32,
    /// Disabled clients cannot authenticate.
    pub enabled: bool,
    /// After this time (unix seconds) the client cannot authenticate.
    pub expires_at: Option<i64>,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// Claims added to every token it gets.
    pub claims: crate::oauth::claims::CustomClaims,
    /// Its token quota per minute (`None`: the server's default).
    pub max_tokens_per_minute: Option<u32>,
    /// Its secrets, including revoked and expired ones.
    pub secrets: Vec<StoredSecret>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
}

impl Client {
    /// Whether the client may authenticate at `now`: enabled and not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.enabled && self.expires_at.is_none_or(|e| now < e)
    }

    /// The secrets that authenticate at `now`.
    pub fn usable_secrets(&self, now: i64) -> impl Iterator<Item = &StoredSecret> {
        self.secrets.iter().filter(move |s| s.is_usable(now))
    }

    /// Whether the secret with this id authenticates at `now`.
    pub fn secret_usable(&self, id: &SecretId, now: i64) -> bool {
        self.secrets.iter().any(|s| &s.id == id && s.is_usable(now))
    }
}
