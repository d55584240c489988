//! What the admin CLI does, as typed operations on the store. The binary only parses arguments
//! and prints results.

use serde::Serialize;

use crate::oauth::{Audience, Client, ClientId, ScopeSet, SecretId, StoredSecret};
use crate::secrets::{ClientSecret, SecretHash};
use crate::store::{ClientUpdate, NewClient, Store};

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
    /// Whether it can authenticate.
    pub enabled: bool,
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
pub async fn create_client(
    store: &Store,
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
        secret: StoredSecret {
            id: SecretId::generate(),
            hash,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        },
    };
    store.create_client(&new, now).await?;
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
}

/// Change a client.
pub async fn update_client(
    store: &Store,
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
    };
    if !store.update_client(&id, &update, now).await? {
        return Err(AdminError::NotFound(id.to_string()));
    }
    show_client(store, id.as_str()).await
}

/// Delete a client and its secrets.
pub async fn delete_client(store: &Store, id: &str) -> Result<(), AdminError> {
    let id = parse_id(id)?;
    if !store.delete_client(&id).await? {
        return Err(AdminError::NotFound(id.to_string()));
    }
    Ok(())
}
