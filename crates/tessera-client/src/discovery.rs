//! Finding the token endpoint: configured, or by RFC 8414 discovery at the issuer, whose
//! metadata must name exactly that issuer.

use crate::{TokenError, TokenSource};

/// Where the token endpoint is.
pub(crate) enum Endpoint {
    Token(String),
    Discover {
        issuer: String,
        resolved: tokio::sync::OnceCell<String>,
    },
}

impl TokenSource {
    pub(crate) async fn token_url(&self) -> Result<String, TokenError> {
        match &self.inner.endpoint {
            Endpoint::Token(u) => Ok(u.clone()),
            Endpoint::Discover { issuer, resolved } => resolved
                .get_or_try_init(|| async {
                    let url = format!(
                        "{}/.well-known/oauth-authorization-server",
                        issuer.trim_end_matches('/')
                    );
                    let doc: serde_json::Value = self
                        .inner
                        .http
                        .get(&url)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| TokenError::Discovery(e.to_string()))?
                        .json()
                        .await
                        .map_err(|e| TokenError::Discovery(e.to_string()))?;
                    if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer.as_str()) {
                        return Err(TokenError::Discovery(
                            "metadata issuer does not equal the configured issuer".into(),
                        ));
                    }
                    doc.get("token_endpoint")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            TokenError::Discovery("metadata has no token_endpoint".into())
                        })
                })
                .await
                .cloned(),
        }
    }
}
