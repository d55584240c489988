//! Where the JWT-bearer grant's assertion (RFC 7523 §2.1) comes from: a file that a platform
//! keeps fresh, the caller's own callback, or the GitHub Actions runner. Asked again for every
//! token request, because these assertions are short-lived and rotated behind our back.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::request::form_encode;
use crate::AssertionError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Callback =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>> + Send + Sync>;
/// Reads an environment variable (injected in tests, which must not touch the process's).
pub(crate) type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub(crate) const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub(crate) const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

#[derive(Clone)]
enum Kind {
    File(PathBuf),
    Callback(Callback),
    GitHubActions { audience: String, env: Env },
}

/// Where a [`crate::TokenSource`] built with [`crate::TokenSource::assertion`] gets its
/// assertion. `Debug` never shows an assertion.
#[derive(Clone)]
pub struct AssertionSource(Kind);

impl fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::File(path) => f.debug_tuple("File").field(path).finish(),
            Kind::Callback(_) => f.write_str("Callback"),
            Kind::GitHubActions { audience, .. } => f
                .debug_struct("GitHubActions")
                .field("audience", audience)
                .finish_non_exhaustive(),
        }
    }
}

impl AssertionSource {
    /// Read the assertion from a file on every token request, surrounding whitespace trimmed:
    /// Kubernetes rewrites a projected service account token file before the token expires.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self(Kind::File(path.into()))
    }

    /// Call `f` for an assertion on every token request. For a synchronous function, return
    /// `std::future::ready(result)`.
    pub fn from_fn<F, Fut, E>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self(Kind::Callback(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(Into::into) })
        })))
    }

    /// Ask the GitHub Actions runner for an OIDC ID token with this `aud` on every token
    /// request. The runner's endpoint and bearer token are read from
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` at that time; the job
    /// needs `permissions: id-token: write` for GitHub to set them.
    pub fn github_actions(audience: impl Into<String>) -> Self {
        Self::github_actions_with_env(audience, Arc::new(|k| std::env::var(k).ok()))
    }

    pub(crate) fn github_actions_with_env(audience: impl Into<String>, env: Env) -> Self {
        Self(Kind::GitHubActions {
            audience: audience.into(),
            env,
        })
    }

    /// The assertion to send now.
    pub(crate) async fn fetch(&self, http: &reqwest::Client) -> Result<String, AssertionError> {
        let assertion = match &self.0 {
            Kind::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|source| AssertionError::File {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
            Kind::Callback(f) => f().await.map_err(AssertionError::Callback)?,
            Kind::GitHubActions { audience, env } => github_id_token(http, audience, env).await?,
        };
        if assertion.is_empty() {
            return Err(AssertionError::Empty);
        }
        Ok(assertion)
    }
}

/// GET `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the runner's bearer token; the answer is
/// `{"value": "<jwt>"}` (what `@actions/core`'s `getIDToken` does).
async fn github_id_token(
    http: &reqwest::Client,
    audience: &str,
    env: &Env,
) -> Result<String, AssertionError> {
    let var = |variable| {
        env(variable)
            .filter(|v| !v.is_empty())
            .ok_or(AssertionError::GitHubActionsUnavailable { variable })
    };
    let (url, token) = (var(GITHUB_URL_VAR)?, var(GITHUB_TOKEN_VAR)?);
    // The runner's URL already carries a query (`?api-version=…`).
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}audience={}", form_encode(audience));
    let failed =
        |status: Option<u16>, reason: String| AssertionError::GitHubActions { status, reason };
    let resp = http
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| failed(None, e.without_url().to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(failed(Some(status.as_u16()), format!("HTTP {status}")));
    }
    #[derive(serde::Deserialize)]
    struct IdToken {
        value: String,
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| failed(None, e.without_url().to_string()))?;
    // serde's message could quote the body, which may hold a token: say only what failed.
    let id: IdToken = serde_json::from_slice(&body).map_err(|_| {
        failed(
            Some(status.as_u16()),
            "the answer is not {\"value\": \"<jwt>\"}".into(),
        )
    })?;
    Ok(id.value)
}
