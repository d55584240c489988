//! The admin service: every operation an operator performs (the CLI today, the admin HTTP API
//! next) as one typed call that validates its input, makes the change, and writes the change's
//! audit record in the same transaction. Adapters only parse their input and print or serialise
//! the result.

use serde::Serialize;

use crate::audit::{announce, Actor};
use crate::clock::Clock;
use crate::keys::lifecycle::{self, LifecycleError, RotationTiming};
use crate::keys::{self, Alg, KeyState, MasterKey};
use crate::oauth::{
    Audience, Client, ClientAuth, ClientId, ClientKeys, ScopeSet, SecretId, StoredSecret,
};

mod api_key;
mod trust;
use crate::secrets::{ClientSecret, SecretHash};
use crate::store::{AuditEvent, ClientUpdate, NewClient, Store};
pub use api_key::{ApiKeyInput, ApiKeyView};
pub use trust::{TrustInput, TrustView};

/// Longest token lifetime a client may have: one day. Short-lived tokens are the point.
pub const MAX_TOKEN_TTL: u32 = 86_400;

/// A client as the CLI shows it: never a secret or a hash.
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Allowed audiences, default first.
    pub audiences: Vec<String>,
    /// Token lifetime, seconds.
    pub token_ttl: u32,
    /// Whether it can authenticate (see also `expires_at`).
    pub enabled: bool,
    /// When it stops working, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::option")]
    pub expires_at: Option<i64>,
    /// Created, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub created_at: i64,
    /// Last changed, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub updated_at: i64,
    /// RFC 7591 `token_endpoint_auth_method`: `client_secret_basic` (a secret client, which
    /// may also use `client_secret_post`) or `private_key_jwt`.
    pub token_endpoint_auth_method: &'static str,
    /// RFC 7591 `jwks_uri` of a `private_key_jwt` client whose keys are fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 7591 `jwks` of a `private_key_jwt` client whose keys are registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// The `kid`s of the registered keys (`jwks` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    /// Custom claims added to its tokens.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Its own token quota per minute (absent: the server's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_minute: Option<u32>,
    /// Its secrets' ids and validity, never their values.
    pub secrets: Vec<SecretView>,
}

/// A secret's metadata.
#[derive(Debug, Serialize)]
pub struct SecretView {
    /// Secret id.
    pub id: String,
    /// Created, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub created_at: i64,
    /// Expires, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::option")]
    pub expires_at: Option<i64>,
    /// Revoked, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::option")]
    pub revoked_at: Option<i64>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        let (jwks_uri, jwks, key_ids) = match &c.auth {
            ClientAuth::Secret => (None, None, Vec::new()),
            ClientAuth::PrivateKeyJwt(ClientKeys::JwksUri(u)) => {
                (Some(u.clone()), None, Vec::new())
            }
            ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(j)) => (
                None,
                serde_json::from_str(j).ok(),
                tessera_verifier::keys::check_jwks(j, None)
                    .map(|(kids, _)| kids)
                    .unwrap_or_default(),
            ),
        };
        Self {
            claims: c.claims.map().clone(),
            max_tokens_per_minute: c.max_tokens_per_minute,
            token_endpoint_auth_method: c.auth.method_name(),
            jwks_uri,
            jwks,
            key_ids,
            client_id: c.id.to_string(),
            name: c.name.clone(),
            scopes: c.scopes.iter().map(|s| s.to_string()).collect(),
            audiences: c.audiences.iter().map(|a| a.to_string()).collect(),
            token_ttl: c.token_ttl,
            enabled: c.enabled,
            expires_at: c.expires_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            secrets: c
                .secrets
                .iter()
                .map(|s| SecretView {
                    id: s.id.as_str().to_owned(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    revoked_at: s.revoked_at,
                })
                .collect(),
        }
    }
}

/// Input for `client create`.
#[derive(Debug, Clone)]
pub struct CreateClient {
    /// Name.
    pub name: String,
    /// Scopes (at least one).
    pub scopes: Vec<String>,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Token lifetime; default 300 s.
    pub token_ttl: Option<u32>,
    /// When the client stops working (unix seconds).
    pub expires_at: Option<i64>,
    /// `Some`: a `private_key_jwt` client with these keys (no secret is made); `None`: a secret.
    pub keys: Option<KeysInput>,
    /// Custom claims for its tokens (empty: none).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Its token quota per minute (`None`: the server's default).
    pub max_tokens_per_minute: Option<u32>,
}

/// A `private_key_jwt` client's public keys, as the operator gives them.
#[derive(Debug, Clone)]
pub enum KeysInput {
    /// A JWKS document (JSON text).
    Jwks(String),
    /// A JWKS URL (`https://`, or `http://` on loopback).
    JwksUri(String),
}

/// Check a client's keys: a JWKS of 1 to 10 usable public signing keys and no private key
/// material (a private JWKS given by mistake must not be stored), or an allowed URL.
fn parse_keys(input: &KeysInput) -> Result<ClientKeys, AdminError> {
    match input {
        KeysInput::JwksUri(u) => {
            if !crate::oauth::trust::url_allowed(u) || u.len() > 2048 {
                return Err(AdminError::Invalid(format!(
                    "--jwks-uri must be an https:// URL (http:// only on loopback): '{u}'"
                )));
            }
            Ok(ClientKeys::JwksUri(u.clone()))
        }
        KeysInput::Jwks(json) => Ok(ClientKeys::Jwks(checked_jwks(json, None)?)),
    }
}

/// A JWKS document checked for registration (see [`parse_keys`]), compacted.
fn checked_jwks(json: &str, key_use: Option<&str>) -> Result<String, AdminError> {
    let bad = |why: String| AdminError::Invalid(format!("JWKS: {why}"));
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let keys = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| bad("no \"keys\" array".into()))?;
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err(bad(
            "it holds a private key (\"d\"): register the public keys only".into(),
        ));
    }
    if keys.len() > crate::oauth::client::MAX_CLIENT_KEYS {
        return Err(bad(format!(
            "at most {} keys",
            crate::oauth::client::MAX_CLIENT_KEYS
        )));
    }
    tessera_verifier::keys::check_jwks(json, key_use).map_err(|e| bad(e.to_string()))?;
    Ok(doc.to_string())
}

/// A CLI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input, with the reason.
    #[error("{0}")]
    Invalid(String),
    /// No such client.
    #[error("no client with id '{0}'")]
    NotFound(String),
    /// No such trust, API key or secret, with what was looked for.
    #[error("{0}")]
    Missing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Hashing a new secret failed.
    #[error("hashing the new secret failed")]
    Hash,
    /// A signing-key operation failed.
    #[error(transparent)]
    Keys(#[from] LifecycleError),
    /// The change conflicts with the current state (a name taken, a key revoked already).
    #[error("{0}")]
    Conflict(String),
    /// The client changed since the version the change was made against (`If-Match`).
    #[error("client '{0}' changed since the version given; read it again and retry")]
    Stale(String),
}

fn parse_name(name: &str) -> Result<String, AdminError> {
    let n = name.trim();
    if n.is_empty() || n.len() > 200 || n.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "--name must be 1 to 200 printable characters".into(),
        ));
    }
    Ok(n.to_owned())
}

pub(crate) fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, AdminError> {
    if scopes.is_empty() {
        return Err(AdminError::Invalid(
            "at least one --scope is required".into(),
        ));
    }
    ScopeSet::from_tokens(scopes).map_err(|e| AdminError::Invalid(e.to_string()))
}

pub(crate) fn parse_audiences(auds: &[String]) -> Result<Vec<Audience>, AdminError> {
    let mut out: Vec<Audience> = Vec::new();
    for a in auds {
        let a = Audience::parse(a)
            .ok_or_else(|| AdminError::Invalid(format!("invalid audience '{a}'")))?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

fn parse_quota(n: u32) -> Result<u32, AdminError> {
    if n == 0 || n > 1_000_000 {
        return Err(AdminError::Invalid(
            "--max-tokens-per-minute must be between 1 and 1000000".into(),
        ));
    }
    Ok(n)
}

pub(crate) fn parse_claims(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<crate::oauth::claims::CustomClaims, AdminError> {
    crate::oauth::claims::CustomClaims::new(map).map_err(|e| AdminError::Invalid(e.to_string()))
}

fn parse_ttl(ttl: u32) -> Result<u32, AdminError> {
    if ttl == 0 || ttl > MAX_TOKEN_TTL {
        return Err(AdminError::Invalid(format!(
            "--token-ttl must be between 1 and {MAX_TOKEN_TTL} seconds"
        )));
    }
    Ok(ttl)
}

fn parse_id(id: &str) -> Result<ClientId, AdminError> {
    ClientId::parse(id).ok_or_else(|| AdminError::NotFound(id.to_owned()))
}

/// Input for `client update`; `None` keeps a field, lists replace.
#[derive(Debug, Clone, Default)]
pub struct UpdateClient {
    /// New name.
    pub name: Option<String>,
    /// New scopes (replace).
    pub scopes: Option<Vec<String>>,
    /// New audiences (replace).
    pub audiences: Option<Vec<String>>,
    /// New lifetime.
    pub token_ttl: Option<u32>,
    /// Enable/disable.
    pub enabled: Option<bool>,
    /// Set (`Some(Some(t))`) or clear (`Some(None)`) the expiry.
    pub expires_at: Option<Option<i64>>,
    /// Switch to `private_key_jwt` with these keys, or replace its keys. Its secrets are
    /// revoked in the same transaction.
    pub keys: Option<KeysInput>,
    /// Switch a `private_key_jwt` client back to a secret (give it one with `rotate-secret`).
    pub use_secret: bool,
    /// New custom claims (replace the old ones; an empty map clears them).
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// Set (`Some(Some(n))`) or clear (`Some(None)`) the token quota.
    pub max_tokens_per_minute: Option<Option<u32>>,
}

/// A secret just created by [`Admin::rotate_secret`]: shown once.
#[derive(Debug)]
pub struct NewSecret {
    /// Its id.
    pub id: String,
    /// The secret itself.
    pub secret: ClientSecret,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// When the client's previous secrets stop working.
    pub previous_expire_at: i64,
}

/// A signing key as `keys list` shows it (never the private key).
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// Where the key is in its life.
    pub state: KeyState,
    /// Published from.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub created_at: i64,
    /// Signs from.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub activates_at: i64,
    /// Unpublished from.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::option")]
    pub retires_at: Option<i64>,
    /// Whether the private key is still held (sealed) or erased (retired keys).
    pub private_key_state: PrivateKeyState,
}

/// Whether a key's private half is still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivateKeyState {
    /// Held, encrypted under the master key.
    Sealed,
    /// Overwritten with nothing (retired keys).
    Erased,
}

impl PrivateKeyState {
    /// The name `keys list` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::Erased => "erased",
        }
    }
}

/// What [`Admin::rotate_signing_key`] did.
#[derive(Debug)]
pub struct RotationPlan {
    /// The new key.
    pub new: KeyView,
    /// When the keys that sign until then leave the JWKS.
    pub previous_retire_at: i64,
}

/// The admin service. See the module documentation.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The database every change goes to.
    store: Store,
    /// Time, for `created_at`, expiries and audit records.
    clock: Clock,
}

impl Admin {
    /// The service over an open (migrated) store.
    pub fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// Register a client; returns it and its secret (none for `private_key_jwt`), the only
    /// time the secret exists in plain text. The client, its secret and the audit record are
    /// written in one transaction.
    pub async fn create_client(
        &self,
        by: &Actor,
        input: CreateClient,
    ) -> Result<(ClientView, Option<ClientSecret>), AdminError> {
        let now = self.clock.now();
        let (auth, secret, stored) = match &input.keys {
            Some(keys) => (ClientAuth::PrivateKeyJwt(parse_keys(keys)?), None, None),
            None => {
                let (secret, stored) = new_secret(now, None)?;
                (ClientAuth::Secret, Some(secret), Some(stored))
            }
        };
        let new = NewClient {
            auth,
            claims: parse_claims(input.claims)?,
            max_tokens_per_minute: input.max_tokens_per_minute.map(parse_quota).transpose()?,
            id: ClientId::generate(),
            name: parse_name(&input.name)?,
            scopes: parse_scopes(&input.scopes)?,
            audiences: parse_audiences(&input.audiences)?,
            token_ttl: parse_ttl(input.token_ttl.unwrap_or(300))?,
            expires_at: future(input.expires_at, now)?,
            secret: stored,
        };
        let detail = serde_json::json!({"name": new.name, "scopes": new.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "audiences": new.audiences.iter().map(|a| a.to_string()).collect::<Vec<_>>(), "token_ttl": new.token_ttl,
            "expires_at": new.expires_at, "secret_id": new.secret.as_ref().map(|s| s.id.as_str()),
            "token_endpoint_auth_method": new.auth.method_name(), "claims": new.claims.map()});
        let audit = by.record("client.create", Some(&new.id), detail, now);
        self.store.create_client(&new, now, &audit).await?;
        announce(&audit);
        let view = self.show_client(new.id.as_str()).await?;
        Ok((view, secret))
    }

    /// One page of clients in id order: up to `limit` (1..=10,000) after the id `after`.
    pub async fn list_clients_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientView>, AdminError> {
        if limit == 0 || limit > 10_000 {
            return Err(AdminError::Invalid(
                "--limit must be between 1 and 10000".into(),
            ));
        }
        Ok(self
            .store
            .list_clients_page(after.unwrap_or(""), i64::from(limit))
            .await?
            .iter()
            .map(ClientView::from)
            .collect())
    }

    /// One client.
    pub async fn show_client(&self, id: &str) -> Result<ClientView, AdminError> {
        let id = parse_id(id)?;
        let c = self
            .store
            .get_client(&id)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
        Ok(ClientView::from(&c))
    }

    /// Change a client (`client update`); with `expect`, only if it is still at that version
    /// ([`Admin::client_version`]), else [`AdminError::Stale`].
    pub async fn update_client(
        &self,
        by: &Actor,
        id: &str,
        input: UpdateClient,
        expect: Option<i64>,
    ) -> Result<ClientView, AdminError> {
        self.change_client(by, "client.update", id, input, expect)
            .await
    }

    /// A client's version, which changes with every change recorded for it (the admin API's
    /// `ETag`).
    pub async fn client_version(&self, id: &str) -> Result<i64, AdminError> {
        let id = parse_id(id)?;
        self.store
            .client_version(&id)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_string()))
    }

    /// Enable or disable a client (`client enable|disable`).
    pub async fn set_enabled(
        &self,
        by: &Actor,
        id: &str,
        enabled: bool,
        expect: Option<i64>,
    ) -> Result<ClientView, AdminError> {
        let action = if enabled {
            "client.enable"
        } else {
            "client.disable"
        };
        let input = UpdateClient {
            enabled: Some(enabled),
            ..Default::default()
        };
        self.change_client(by, action, id, input, expect).await
    }

    /// Apply `input` to a client and record it as `action`; the audit detail is the change.
    async fn change_client(
        &self,
        by: &Actor,
        action: &str,
        id: &str,
        input: UpdateClient,
        expect: Option<i64>,
    ) -> Result<ClientView, AdminError> {
        let now = self.clock.now();
        let id = parse_id(id)?;
        let update = ClientUpdate {
            claims: input.claims.map(parse_claims).transpose()?,
            max_tokens_per_minute: match input.max_tokens_per_minute {
                Some(Some(n)) => Some(Some(parse_quota(n)?)),
                other => other,
            },
            name: input.name.as_deref().map(parse_name).transpose()?,
            scopes: input.scopes.as_deref().map(parse_scopes).transpose()?,
            audiences: input
                .audiences
                .as_deref()
                .map(parse_audiences)
                .transpose()?,
            token_ttl: input.token_ttl.map(parse_ttl).transpose()?,
            enabled: input.enabled,
            expires_at: match input.expires_at {
                Some(Some(t)) => Some(future(Some(t), now)?),
                other => other,
            },
            auth: match (&input.keys, input.use_secret) {
                (Some(_), true) => {
                    return Err(AdminError::Invalid(
                        "a client has one authentication method: keys or a secret, not both".into(),
                    ))
                }
                (Some(k), false) => Some(ClientAuth::PrivateKeyJwt(parse_keys(k)?)),
                (None, true) => Some(ClientAuth::Secret),
                (None, false) => None,
            },
        };
        let mut detail = serde_json::Map::new();
        if let Some(n) = &update.name {
            detail.insert("name".into(), n.as_str().into());
        }
        if let Some(s) = &update.scopes {
            detail.insert("scopes".into(), s.iter().map(|s| s.to_string()).collect());
        }
        if let Some(a) = &update.audiences {
            detail.insert(
                "audiences".into(),
                a.iter().map(|a| a.to_string()).collect(),
            );
        }
        if let Some(t) = update.token_ttl {
            detail.insert("token_ttl".into(), t.into());
        }
        if let Some(e) = update.enabled {
            detail.insert("enabled".into(), e.into());
        }
        if let Some(e) = update.expires_at {
            detail.insert("expires_at".into(), e.into());
        }
        if let Some(q) = update.max_tokens_per_minute {
            detail.insert("max_tokens_per_minute".into(), q.into());
        }
        if let Some(c) = &update.claims {
            detail.insert("claims".into(), c.map().clone().into());
        }
        if let Some(a) = &update.auth {
            detail.insert("token_endpoint_auth_method".into(), a.method_name().into());
            if let ClientAuth::PrivateKeyJwt(ClientKeys::JwksUri(u)) = a {
                detail.insert("jwks_uri".into(), u.as_str().into());
            }
        }
        let audit = by.record(action, Some(&id), detail.into(), now);
        if !self
            .store
            .update_client(&id, &update, now, &audit, expect)
            .await
            .map_err(|e| stale(e, &id))?
        {
            return Err(AdminError::NotFound(id.to_string()));
        }
        announce(&audit);
        self.show_client(id.as_str()).await
    }

    /// Delete a client and its secrets (with `expect`: as for [`Admin::update_client`]).
    pub async fn delete_client(
        &self,
        by: &Actor,
        id: &str,
        expect: Option<i64>,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let id = parse_id(id)?;
        let audit = by.record("client.delete", Some(&id), serde_json::json!({}), now);
        if !self
            .store
            .delete_client(&id, &audit, expect)
            .await
            .map_err(|e| stale(e, &id))?
        {
            return Err(AdminError::NotFound(id.to_string()));
        }
        announce(&audit);
        Ok(())
    }

    /// Give a client a new secret. Its other secrets keep working for `grace_secs` (0: they stop
    /// at once), so callers can be moved over without a failed request.
    pub async fn rotate_secret(
        &self,
        by: &Actor,
        id: &str,
        grace_secs: u64,
        expires_at: Option<i64>,
    ) -> Result<NewSecret, AdminError> {
        let now = self.clock.now();
        let id = parse_id(id)?;
        if let Some(c) = self.store.get_client(&id).await? {
            if c.auth != ClientAuth::Secret {
                return Err(AdminError::Invalid(format!(
                    "client '{id}' authenticates with private_key_jwt; switch it with `client update {id} --auth client_secret` first"
                )));
            }
        }
        let expires_at = future(expires_at, now)?;
        let (secret, stored) = new_secret(now, expires_at)?;
        let previous_expire_at = now.saturating_add(i64::try_from(grace_secs).unwrap_or(i64::MAX));
        let detail = serde_json::json!({"secret_id": stored.id.as_str(), "grace_secs": grace_secs, "expires_at": expires_at,
            "previous_secrets_expire_at": previous_expire_at});
        let audit = by.record("client.rotate_secret", Some(&id), detail, now);
        if !self
            .store
            .add_secret(&id, &stored, Some(previous_expire_at), now, &audit)
            .await?
        {
            return Err(AdminError::NotFound(id.to_string()));
        }
        announce(&audit);
        Ok(NewSecret {
            id: stored.id.as_str().to_owned(),
            secret,
            expires_at,
            previous_expire_at,
        })
    }

    /// End one secret at once.
    pub async fn revoke_secret(
        &self,
        by: &Actor,
        id: &str,
        secret_id: &str,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let id = parse_id(id)?;
        let audit = by.record(
            "client.revoke_secret",
            Some(&id),
            serde_json::json!({"secret_id": secret_id}),
            now,
        );
        if !self
            .store
            .revoke_secret(&id, secret_id, now, &audit)
            .await?
        {
            return Err(AdminError::Missing(format!(
                "client '{id}' has no unrevoked secret '{secret_id}'"
            )));
        }
        announce(&audit);
        Ok(())
    }

    /// Every signing key with its state now.
    pub async fn list_keys(&self) -> Result<Vec<KeyView>, AdminError> {
        let now = self.clock.now();
        let stored = self.store.load_keys().await?;
        let active = keys::active_key(&stored, now).map(|k| k.kid.clone());
        Ok(stored
            .iter()
            .map(|k| KeyView {
                kid: k.kid.as_str().to_owned(),
                alg: k.alg.as_str().into(),
                state: k.state(now, active.as_ref()),
                created_at: k.created_at,
                activates_at: k.activates_at,
                retires_at: k.retires_at,
                private_key_state: if k.private_key_erased() {
                    PrivateKeyState::Erased
                } else {
                    PrivateKeyState::Sealed
                },
            })
            .collect())
    }

    /// Start a rotation (see [`lifecycle::rotate`]).
    pub async fn rotate_signing_key(
        &self,
        by: &Actor,
        master: &MasterKey,
        alg: Alg,
        timing: RotationTiming,
    ) -> Result<RotationPlan, AdminError> {
        let now = self.clock.now();
        let rotated = lifecycle::rotate(&self.store, master, by, alg, timing, now).await?;
        Ok(RotationPlan {
            new: KeyView {
                kid: rotated.key.kid.as_str().to_owned(),
                alg: alg.as_str().into(),
                state: KeyState::Pending,
                created_at: rotated.key.created_at,
                activates_at: rotated.key.activates_at,
                retires_at: None,
                private_key_state: PrivateKeyState::Sealed,
            },
            previous_retire_at: rotated.previous_retire_at,
        })
    }

    /// Admin changes, oldest first, optionally for one client, from `since` (unix seconds).
    pub async fn list_audit(
        &self,
        client: Option<&str>,
        since: i64,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        Ok(self.store.list_audit(client, since).await?)
    }
}

/// A fresh secret and its stored form (argon2id hash), created at `now`: the one place secrets
/// are made.
fn new_secret(
    now: i64,
    expires_at: Option<i64>,
) -> Result<(ClientSecret, StoredSecret), AdminError> {
    let secret = crate::secrets::generate_secret();
    let hash = SecretHash::create(&secret).map_err(|_| AdminError::Hash)?;
    let stored = StoredSecret {
        id: SecretId::generate(),
        hash,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    Ok((secret, stored))
}

/// What a secret rotation made, as the CLI's `--output json` and the admin API show it: the
/// only place the new secret is ever shown.
pub fn rotated_secret_json(client_id: &str, new: &NewSecret) -> serde_json::Value {
    serde_json::json!({
        "client_id": client_id,
        "secret_id": new.id,
        "client_secret": new.secret.expose(),
        "expires_at": new.expires_at.map(crate::clock::rfc3339),
        "previous_secrets_expire_at": crate::clock::rfc3339(new.previous_expire_at),
    })
}

/// What a signing-key rotation did, as the CLI's `--output json` and the admin API show it.
pub fn rotation_json(plan: &RotationPlan) -> serde_json::Value {
    serde_json::json!({
        "new": plan.new,
        "previous_retire_at": crate::clock::rfc3339(plan.previous_retire_at),
    })
}

impl AdminError {
    /// Whether the database could not be reached (worth a retry), as opposed to a failure.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(crate::store::StoreError::Unavailable(_)))
    }
}

/// A store error, with a failed version check named for the client.
fn stale(e: crate::store::StoreError, id: &ClientId) -> AdminError {
    match e {
        crate::store::StoreError::Stale => AdminError::Stale(id.to_string()),
        other => AdminError::Store(other),
    }
}

pub(crate) fn future(t: Option<i64>, now: i64) -> Result<Option<i64>, AdminError> {
    match t {
        Some(t) if t <= now => Err(AdminError::Invalid(
            "--expires-at must be in the future".into(),
        )),
        other => Ok(other),
    }
}
