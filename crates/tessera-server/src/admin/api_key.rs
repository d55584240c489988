//! `apikey create | list | show | revoke`: managed API keys (see [`crate::oauth::api_key`]).

use serde::Serialize;

use super::{future, parse_audiences, parse_claims, parse_name, parse_scopes, Admin, AdminError};
use crate::audit::{announce, Actor};
use crate::oauth::api_key::{self, ApiKey, KeyState};

/// Input for `apikey create`.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyInput {
    /// Who holds it.
    pub name: String,
    /// Scopes it grants (at least one).
    pub scopes: Vec<String>,
    /// Where it may be used.
    pub audiences: Vec<String>,
    /// Stops working then (unix seconds).
    pub expires_at: Option<i64>,
    /// Claims reported with it.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// An API key as `apikey list|show` shows it: never the key.
#[derive(Debug, Serialize)]
pub struct ApiKeyView {
    /// Id (`ak_…`).
    pub id: String,
    /// Holder.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Custom claims.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `active`, `revoked` or `expired`, now.
    pub state: &'static str,
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

impl ApiKeyView {
    fn of(k: &ApiKey, now: i64) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.iter().map(|s| s.to_string()).collect(),
            audiences: k.audiences.iter().map(|a| a.to_string()).collect(),
            claims: k.claims.map().clone(),
            state: match k.state(now) {
                KeyState::Active => "active",
                KeyState::Revoked => "revoked",
                KeyState::Expired => "expired",
            },
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

impl Admin {
    /// Make an API key; returns it and the key itself, the only time the key exists in plain
    /// text (only its SHA-256 is stored).
    pub async fn create_api_key(
        &self,
        by: &Actor,
        input: ApiKeyInput,
    ) -> Result<(ApiKeyView, crate::secrets::ClientSecret), AdminError> {
        let now = self.clock.now();
        let (key, hash) = api_key::generate();
        let k = ApiKey {
            id: format!("ak_{}", crate::random::base64url(12)),
            name: parse_name(&input.name)?,
            hash,
            scopes: parse_scopes(&input.scopes)?,
            audiences: parse_audiences(&input.audiences)?,
            claims: parse_claims(input.claims)?,
            created_at: now,
            expires_at: future(input.expires_at, now)?,
            revoked_at: None,
        };
        let view = ApiKeyView::of(&k, now);
        let mut detail = serde_json::to_value(&view).unwrap_or_default();
        if let Some(obj) = detail.as_object_mut() {
            obj.remove("state");
        }
        let audit = by.record("apikey.create", None, detail, now);
        self.store.create_api_key(&k, &audit).await?;
        announce(&audit);
        Ok((view, crate::secrets::ClientSecret::new(key)))
    }

    /// Every API key.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyView>, AdminError> {
        let now = self.clock.now();
        Ok(self
            .store
            .load_api_keys()
            .await?
            .iter()
            .map(|k| ApiKeyView::of(k, now))
            .collect())
    }

    /// One API key, by id or name (a name shared by several keys is ambiguous: use the id).
    pub async fn show_api_key(&self, id_or_name: &str) -> Result<ApiKeyView, AdminError> {
        let now = self.clock.now();
        let keys = self.store.load_api_keys().await?;
        let found: Vec<&ApiKey> = keys
            .iter()
            .filter(|k| k.id == id_or_name || k.name == id_or_name)
            .collect();
        match found.as_slice() {
            [k] => Ok(ApiKeyView::of(k, now)),
            [] => Err(AdminError::Missing(format!("no API key '{id_or_name}'"))),
            _ => Err(AdminError::Invalid(format!(
                "several API keys are named '{id_or_name}': give the id"
            ))),
        }
    }

    /// Revoke an API key at once; resource services stop accepting it within their cache bound.
    pub async fn revoke_api_key(&self, by: &Actor, id_or_name: &str) -> Result<(), AdminError> {
        let now = self.clock.now();
        let view = self.show_api_key(id_or_name).await?;
        let audit = by.record(
            "apikey.revoke",
            None,
            serde_json::json!({"id": view.id, "name": view.name}),
            now,
        );
        if !self.store.revoke_api_key(&view.id, now, &audit).await? {
            return Err(AdminError::Conflict(format!(
                "API key '{id_or_name}' is already revoked"
            )));
        }
        announce(&audit);
        Ok(())
    }
}
