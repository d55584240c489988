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
                    let body = self
                        .inner
                        .http
                        .get(tessera_proto::metadata_url(issuer))
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| TokenError::Discovery(e.to_string()))?
                        .bytes()
                        .await
                        .map_err(|e| TokenError::Discovery(e.to_string()))?;
                    tessera_proto::Metadata::from_json(&body, issuer)
                        .map_err(|e| TokenError::Discovery(e.to_string()))?
                        .token_endpoint
                        .ok_or_else(|| {
                            TokenError::Discovery("metadata has no token_endpoint".into())
                        })
                })
                .await
                .cloned(),
        }
    }
}
