//! How the admin commands reach the admin API: in-process on the database (the default), or
//! over HTTP to a server's admin listener (`--server URL`, credentials from
//! `TESSERA_CLIENT_ID` + `TESSERA_CLIENT_SECRET`). Both speak the same requests and get the same
//! JSON back, so every command prints the same either way.

use anyhow::Context as _;
use axum::http::{header, Method};
use serde_json::Value;
use tessera_server::admin::Admin;
use tessera_server::audit::Actor;
use tessera_server::http::admin::{AdminState, KeyRotation};

use super::DbArgs;

/// The admin API, local or remote.
pub(crate) enum Api {
    /// The API's router in this process, on the database; changes are made as the OS user.
    Local(axum::Router),
    /// A server's admin listener.
    Remote {
        /// `…/admin/v1`.
        base: String,
        /// The client whose credentials the calls use.
        client_id: String,
        /// Sends requests with a cached token for the admin audience.
        http: tessera_client::AuthorizedClient,
    },
}

/// A 2xx answer: its body (`null` for 204) and `ETag`.
pub(crate) struct Reply {
    pub(crate) body: Value,
    pub(crate) etag: Option<String>,
}

impl Api {
    /// The API on the configured database, with key rotation when `rotation` is given.
    pub(crate) async fn local(db: &DbArgs, rotation: Option<KeyRotation>) -> anyhow::Result<Api> {
        let admin: Admin =
            tessera_server::open_admin(&db.url()?, tessera_server::clock::Clock::system()).await?;
        let state = AdminState {
            admin,
            rotation: rotation.map(std::sync::Arc::new),
            body_timeout: std::time::Duration::from_secs(60),
        };
        Ok(Api::Local(tessera_server::http::admin::local_router(
            state,
            Actor::os_user(),
        )))
    }

    /// The admin API at `server` (the admin listener's URL). Asks it where its tokens come
    /// from, then gets one with the client credentials in `TESSERA_CLIENT_ID` and
    /// `TESSERA_CLIENT_SECRET` (kept for the command's requests and refreshed when it expires).
    pub(crate) async fn remote(server: &str) -> anyhow::Result<Api> {
        let base = format!("{}/admin/v1", server.trim_end_matches('/'));
        let id = std::env::var("TESSERA_CLIENT_ID")
            .context("--server needs TESSERA_CLIENT_ID (a client with the scope tessera:admin or tessera:admin:read and the audience <issuer>/admin)")?;
        let secret = std::env::var("TESSERA_CLIENT_SECRET")
            .context("--server needs TESSERA_CLIENT_SECRET")?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let about: Value = http
            .get(&base)
            .send()
            .await
            .with_context(|| format!("reaching the admin API at {base}"))?
            .error_for_status()
            .with_context(|| format!("{base} is not a Tessera admin API"))?
            .json()
            .await
            .with_context(|| format!("{base} is not a Tessera admin API"))?;
        let field = |name: &str| {
            about[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{base} does not say its {name}"))
        };
        let id_for_caller = id.clone();
        let source =
            tessera_client::TokenSource::builder(id, tessera_client::ClientSecret::new(secret))
                .token_url(field("token_endpoint")?)
                .audience(field("audience")?)
                .http_client(http.clone())
                .build()
                .context("setting up the token source")?;
        Ok(Api::Remote {
            base,
            client_id: id_for_caller,
            http: tessera_client::AuthorizedClient::new(http, source),
        })
    }

    /// Send `method path` (under `/admin/v1`) with an optional JSON body and `If-Match`; a
    /// non-2xx answer is an error carrying the problem's `detail`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let (status, etag, bytes) = match self {
            Api::Local(router) => {
                let mut req = axum::http::Request::builder()
                    .method(method)
                    .uri(format!("/admin/v1{path}"));
                if let Some(m) = if_match {
                    req = req.header(header::IF_MATCH, m);
                }
                let req = match body {
                    Some(b) => req
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(axum::body::Body::from(b.to_string())),
                    None => req.body(axum::body::Body::empty()),
                }
                .context("building the request")?;
                let resp = tower::ServiceExt::oneshot(router.clone(), req)
                    .await
                    .context("calling the admin API")?;
                let status = resp.status().as_u16();
                let etag = etag_of(resp.headers());
                let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                    .await
                    .context("reading the answer")?;
                (status, etag, bytes.to_vec())
            }
            Api::Remote { base, http, .. } => {
                let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
                    .context("HTTP method")?;
                let mut req = http.request(method, format!("{base}{path}"));
                if let Some(m) = if_match {
                    req = req.header("if-match", m);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = http
                    .send(req)
                    .await
                    .with_context(|| format!("calling {base}{path}"))?;
                let status = resp.status().as_u16();
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = resp.bytes().await.context("reading the answer")?;
                (status, etag, bytes.to_vec())
            }
        };
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if !(200..300).contains(&status) {
            let detail = body["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the admin API answered {status}"));
            anyhow::bail!("{detail}");
        }
        Ok(Reply { body, etag })
    }

    /// The client a remote API is called as (`None` locally).
    pub(crate) fn caller_id(&self) -> Option<String> {
        match self {
            Api::Local(_) => None,
            Api::Remote { client_id, .. } => Some(client_id.clone()),
        }
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(Method::GET, path, None, None).await?.body)
    }

    /// `POST path` with `body`.
    pub(crate) async fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        Ok(self.call(Method::POST, path, body, None).await?.body)
    }

    /// `DELETE path`.
    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, path, None, None).await.map(drop)
    }

    /// Change a client: read it for its `ETag`, then `PATCH` with `If-Match`, so a change made
    /// in between by someone else is refused rather than overwritten.
    pub(crate) async fn patch_client(&self, id: &str, body: &Value) -> anyhow::Result<Value> {
        let path = format!("/clients/{}", segment(id));
        let current = self.call(Method::GET, &path, None, None).await?;
        let tag = current.etag.unwrap_or_else(|| "*".to_owned());
        Ok(self
            .call(Method::PATCH, &path, Some(body), Some(&tag))
            .await?
            .body)
    }
}

fn etag_of(h: &axum::http::HeaderMap) -> Option<String> {
    h.get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `s` as one path segment.
pub(crate) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
