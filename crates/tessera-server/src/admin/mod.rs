//! What the admin CLI does, as typed operations on the store. The binary only parses arguments
//! and prints results.

use serde::Serialize;

use crate::keys::{self, Alg, Kid, MasterKey, StoredKey};
use crate::oauth::{Audience, Client, ClientId, ScopeSet, SecretId, StoredSecret};
use crate::secrets::{ClientSecret, SecretHash};
use crate::store::{AuditEvent, ClientUpdate, NewClient, Rotation, Store};

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
    pub expires_at: Option<i64>,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Last changed, unix seconds.
    pub updated_at: i64,
    /// Its secrets' ids and validity, never their values.
    pub secrets: Vec<SecretView>,
}

/// A secret's metadata.
#[derive(Debug, Serialize)]
pub struct SecretView {
    /// Secret id.
    pub id: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Expires, unix seconds.
    pub expires_at: Option<i64>,
    /// Revoked, unix seconds.
    pub revoked_at: Option<i64>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
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
                    id: s.id.0.clone(),
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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

fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, AdminError> {
    if scopes.is_empty() {
        return Err(AdminError::Invalid(
            "at least one --scope is required".into(),
        ));
    }
    ScopeSet::from_tokens(scopes).map_err(|e| AdminError::Invalid(e.to_string()))
}

fn parse_audiences(auds: &[String]) -> Result<Vec<Audience>, AdminError> {
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

/// Register a client; returns it and its secret, the only time the secret exists in plain text.
/// The client, its secret and the audit record are written in one transaction.
pub async fn create_client(
    store: &Store,
    by: &Actor,
    input: CreateClient,
    now: i64,
) -> Result<(ClientView, ClientSecret), AdminError> {
    let secret = ClientSecret::generate();
    let hash = SecretHash::create(&secret)
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
    let new = NewClient {
        id: ClientId::generate(),
        name: parse_name(&input.name)?,
        scopes: parse_scopes(&input.scopes)?,
        audiences: parse_audiences(&input.audiences)?,
        token_ttl: parse_ttl(input.token_ttl.unwrap_or(300))?,
        expires_at: future(input.expires_at, now)?,
        secret: StoredSecret {
            id: SecretId::generate(),
            hash,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        },
    };
    let detail = serde_json::json!({"name": new.name, "scopes": new.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "audiences": new.audiences.iter().map(|a| a.to_string()).collect::<Vec<_>>(), "token_ttl": new.token_ttl,
        "expires_at": new.expires_at, "secret_id": new.secret.id.0});
    let audit = by.record("client.create", Some(&new.id), detail, now);
    store.create_client(&new, now, &audit).await?;
    announce(&audit);
    let client = store
        .get_client(&new.id)
        .await?
        .ok_or_else(|| AdminError::NotFound(new.id.to_string()))?;
    Ok((ClientView::from(&client), secret))
}

/// Every client.
pub async fn list_clients(store: &Store) -> Result<Vec<ClientView>, AdminError> {
    Ok(store
        .load_clients()
        .await?
        .iter()
        .map(ClientView::from)
        .collect())
}

/// One client.
pub async fn show_client(store: &Store, id: &str) -> Result<ClientView, AdminError> {
    let id = parse_id(id)?;
    let c = store
        .get_client(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    Ok(ClientView::from(&c))
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
}

/// Change a client (`client update`).
pub async fn update_client(
    store: &Store,
    by: &Actor,
    id: &str,
    input: UpdateClient,
    now: i64,
) -> Result<ClientView, AdminError> {
    change_client(store, by, "client.update", id, input, now).await
}

/// Enable or disable a client (`client enable|disable`).
pub async fn set_enabled(
    store: &Store,
    by: &Actor,
    id: &str,
    enabled: bool,
    now: i64,
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
    change_client(store, by, action, id, input, now).await
}

/// Apply `input` to a client and record it as `action`; the audit detail is the change.
async fn change_client(
    store: &Store,
    by: &Actor,
    action: &str,
    id: &str,
    input: UpdateClient,
    now: i64,
) -> Result<ClientView, AdminError> {
    let id = parse_id(id)?;
    let update = ClientUpdate {
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
    let audit = by.record(action, Some(&id), detail.into(), now);
    if !store.update_client(&id, &update, now, &audit).await? {
        return Err(AdminError::NotFound(id.to_string()));
    }
    announce(&audit);
    show_client(store, id.as_str()).await
}

/// Delete a client and its secrets.
pub async fn delete_client(
    store: &Store,
    by: &Actor,
    id: &str,
    now: i64,
) -> Result<(), AdminError> {
    let id = parse_id(id)?;
    let audit = by.record("client.delete", Some(&id), serde_json::json!({}), now);
    if !store.delete_client(&id, &audit).await? {
        return Err(AdminError::NotFound(id.to_string()));
    }
    announce(&audit);
    Ok(())
}

fn future(t: Option<i64>, now: i64) -> Result<Option<i64>, AdminError> {
    match t {
        Some(t) if t <= now => Err(AdminError::Invalid(
            "--expires-at must be in the future".into(),
        )),
        other => Ok(other),
    }
}

/// A secret just created by [`rotate_secret`]: shown once.
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

/// Give a client a new secret. Its other secrets keep working for `grace_secs` (0: they stop at
/// once), so callers can be moved over without a failed request.
pub async fn rotate_secret(
    store: &Store,
    by: &Actor,
    id: &str,
    grace_secs: u64,
    expires_at: Option<i64>,
    now: i64,
) -> Result<NewSecret, AdminError> {
    let id = parse_id(id)?;
    let expires_at = future(expires_at, now)?;
    let secret = ClientSecret::generate();
    let hash = SecretHash::create(&secret)
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
    let stored = StoredSecret {
        id: SecretId::generate(),
        hash,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let previous_expire_at = now.saturating_add(i64::try_from(grace_secs).unwrap_or(i64::MAX));
    let detail = serde_json::json!({"secret_id": stored.id.0, "grace_secs": grace_secs, "expires_at": expires_at,
        "previous_secrets_expire_at": previous_expire_at});
    let audit = by.record("client.rotate_secret", Some(&id), detail, now);
    if !store
        .add_secret(&id, &stored, Some(previous_expire_at), now, &audit)
        .await?
    {
        return Err(AdminError::NotFound(id.to_string()));
    }
    announce(&audit);
    Ok(NewSecret {
        id: stored.id.0,
        secret,
        expires_at,
        previous_expire_at,
    })
}

/// End one secret at once.
pub async fn revoke_secret(
    store: &Store,
    by: &Actor,
    id: &str,
    secret_id: &str,
    now: i64,
) -> Result<(), AdminError> {
    let id = parse_id(id)?;
    let audit = by.record(
        "client.revoke_secret",
        Some(&id),
        serde_json::json!({"secret_id": secret_id}),
        now,
    );
    if !store.revoke_secret(&id, secret_id, now, &audit).await? {
        return Err(AdminError::Invalid(format!(
            "client '{id}' has no unrevoked secret '{secret_id}'"
        )));
    }
    announce(&audit);
    Ok(())
}

/// A signing key as `keys list` shows it (never the private key).
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `pending` (published, not signing yet), `active`, `retiring` (published, no longer
    /// signing), `retired`.
    pub state: &'static str,
    /// Published from.
    pub created_at: i64,
    /// Signs from.
    pub activates_at: i64,
    /// Unpublished from.
    pub retires_at: Option<i64>,
    /// `sealed` (held encrypted under the master key) or `erased` (retired keys).
    pub private_key_state: &'static str,
}

/// Every signing key with its state at `now`.
pub async fn list_keys(store: &Store, now: i64) -> Result<Vec<KeyView>, AdminError> {
    let stored = store.load_keys().await?;
    let active = keys::active_key(&stored, now).map(|k| k.kid.clone());
    Ok(stored
        .iter()
        .map(|k| KeyView {
            kid: k.kid.0.clone(),
            alg: k.alg.as_str().into(),
            state: k.state(now, active.as_ref()),
            created_at: k.created_at,
            activates_at: k.activates_at,
            retires_at: k.retires_at,
            private_key_state: if k.private_key_erased() {
                "erased"
            } else {
                "sealed"
            },
        })
        .collect())
}

/// Clock skew allowed to verifiers, added to every retirement time.
pub const VERIFIER_LEEWAY_SECS: i64 = 60;

/// How a rotation is timed.
#[derive(Debug, Clone, Copy)]
pub struct RotationTiming {
    /// Seconds the new key is published before it signs: at least the JWKS `max-age` the servers
    /// advertise plus a margin, so every verifier's cache has it before any token uses it.
    pub publish_ahead: i64,
}

/// What [`rotate_signing_key`] did.
#[derive(Debug)]
pub struct RotationPlan {
    /// The new key.
    pub new: KeyView,
    /// When the keys that sign until then leave the JWKS.
    pub previous_retire_at: i64,
}

/// Start a rotation: generate a key for `alg`, publish it now, let it sign after
/// `timing.publish_ahead`, and retire the current key once every token it can still sign has
/// expired (activation + the longest client token lifetime + leeway). The schedule is stored in
/// the database, so every replica switches at the same moment.
pub async fn rotate_signing_key(
    store: &Store,
    master: &MasterKey,
    by: &Actor,
    alg: Alg,
    timing: RotationTiming,
    now: i64,
) -> Result<RotationPlan, AdminError> {
    erase_retired_keys(store, now).await?;
    let generated = keys::generate(alg).map_err(|e| AdminError::Invalid(e.to_string()))?;
    // Strictly after the current key's activation: keys are ordered by activation time (whole
    // seconds), so a tie would leave the choice of signer to kid order.
    let current = store.load_keys().await?;
    let after_current = keys::active_key(&current, now).map_or(i64::MIN, |k| k.activates_at + 1);
    let activates_at = (now + timing.publish_ahead.max(0)).max(after_current);
    let longest = store
        .load_clients()
        .await?
        .iter()
        .map(|c| i64::from(c.token_ttl))
        .max()
        .unwrap_or(300)
        .max(300);
    let retire_at = activates_at + longest + VERIFIER_LEEWAY_SECS;
    let key = StoredKey {
        sealed_private_key: master
            .encrypt(&generated.kid.0, &generated.pkcs8)
            .map_err(|e| AdminError::Invalid(e.to_string()))?,
        kid: generated.kid,
        alg,
        public_jwk: generated.public_jwk,
        created_at: now,
        activates_at,
        retires_at: None,
    };
    // Recorded as scheduled when the server rotates on its own.
    let action = if by.is_server() {
        "keys.rotate_scheduled"
    } else {
        "keys.rotate"
    };
    let detail = serde_json::json!({"kid": key.kid.0, "alg": alg.as_str(), "activates_at": activates_at,
        "previous_retire_at": retire_at});
    let audit = by.record(action, None, detail, now);
    match store.rotate_key(&key, retire_at, now, &audit).await? {
        Rotation::Scheduled { retires_at } => {
            announce(&audit);
            Ok(RotationPlan {
                new: KeyView {
                    kid: key.kid.0.clone(),
                    alg: alg.as_str().into(),
                    state: "pending",
                    created_at: now,
                    activates_at,
                    retires_at: None,
                    private_key_state: "sealed",
                },
                previous_retire_at: retires_at,
            })
        }
        Rotation::AlreadyPending(Kid(kid)) => Err(AdminError::Invalid(format!(
            "a rotation is already under way: key {kid} is published and not yet signing"
        ))),
    }
}

/// Erase the private keys of keys retired by `now` (see
/// [`Store::erase_retired_private_keys`]), logging how many.
pub async fn erase_retired_keys(store: &Store, now: i64) -> Result<u64, AdminError> {
    let n = store.erase_retired_private_keys(now).await?;
    if n > 0 {
        tracing::info!(erased = n, "private keys of retired signing keys erased");
    }
    Ok(n)
}

/// Who makes a change, as its audit record names them.
#[derive(Debug, Clone)]
pub struct Actor(String);

impl Actor {
    /// The OS user running this process (`USER`, else `LOGNAME`): the CLI's operator.
    pub fn os_user() -> Self {
        Self(
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
        )
    }

    /// The server's own scheduled work.
    pub fn server() -> Self {
        Self("tessera-server".into())
    }

    fn is_server(&self) -> bool {
        self.0 == "tessera-server"
    }

    /// The audit record of `action` by this actor. `detail` must never hold a secret or a token.
    fn record(
        &self,
        action: &str,
        client_id: Option<&ClientId>,
        detail: serde_json::Value,
        now: i64,
    ) -> AuditEvent {
        AuditEvent {
            at: now,
            actor: self.0.clone(),
            action: action.to_owned(),
            client_id: client_id.map(ToString::to_string),
            detail,
        }
    }
}

/// Emit a committed change as a `tessera::audit` event (its row was written with the change).
fn announce(e: &AuditEvent) {
    tracing::info!(target: "tessera::audit", event = "admin_change", actor = %e.actor, action = %e.action,
        client_id = e.client_id.as_deref().unwrap_or_default(), detail = %e.detail, "admin change");
}
