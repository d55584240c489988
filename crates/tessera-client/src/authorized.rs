//! A reqwest wrapper that authorizes outgoing requests with tokens from a [`TokenSource`].

use reqwest::{header, RequestBuilder, Response, StatusCode};

use crate::{TokenError, TokenSource};

/// Adds `Authorization: Bearer …` (and `X-Service-Name` when the source has a
/// [`crate::TokenSourceBuilder::service_name`]) to requests and, when the resource answers 401
/// with `error="invalid_token"` (RFC 6750), refreshes the token once and retries once.
#[derive(Debug, Clone)]
pub struct AuthorizedClient {
    http: reqwest::Client,
    source: TokenSource,
}

impl AuthorizedClient {
    /// Wrap a reqwest client.
    pub fn new(http: reqwest::Client, source: TokenSource) -> Self {
        Self { http, source }
    }

    /// A GET request builder (send it with [`AuthorizedClient::send`]).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.http.get(url)
    }

    /// A POST request builder.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.http.post(url)
    }

    /// Any request builder.
    pub fn request(&self, method: reqwest::Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Authorize and send. A request whose body cannot be cloned (a stream) is not retried.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, TokenError> {
        let token = self.source.token().await?;
        let req = match &self.source.inner.service_name {
            Some(name) => req.header("x-service-name", name),
            None => req,
        };
        let retry = req.try_clone();
        let resp = req.bearer_auth(token.secret()).send().await?;
        if resp.status() != StatusCode::UNAUTHORIZED || !invalid_token(&resp) {
            return Ok(resp);
        }
        let Some(retry) = retry else { return Ok(resp) };
        self.source.invalidate(&token);
        let fresh = self.source.token().await?;
        Ok(retry.bearer_auth(fresh.secret()).send().await?)
    }
}

fn invalid_token(resp: &Response) -> bool {
    resp.headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("invalid_token"))
}
