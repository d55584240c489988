//! Fetching discovery documents and JWKS. A trait so tests (and unusual deployments) can inject
//! their own; the default uses reqwest.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A fetched document and its `Cache-Control: max-age`, if any.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// The body.
    pub body: Vec<u8>,
    /// `max-age` from `Cache-Control`.
    pub max_age: Option<Duration>,
}

/// A fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetching {url}: {reason}")]
pub struct FetchError {
    /// What was fetched.
    pub url: String,
    /// Why it failed.
    pub reason: String,
}

/// Boxed future returned by [`Fetcher::get`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FetchResponse, FetchError>> + Send + 'a>>;

/// Gets a URL. Implementations must bound their own time (the default: 5 s) and body size.
pub trait Fetcher: Send + Sync + 'static {
    /// GET `url`.
    fn get<'a>(&'a self, url: &'a str) -> FetchFuture<'a>;
}

/// Parse `max-age` out of a `Cache-Control` value.
pub fn parse_max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("max-age").then(|| {
            v.trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        })?
    })
}

/// The default fetcher: reqwest with rustls (aws-lc-rs), a 5 s timeout, no redirects to other
/// hosts' keys, bodies capped at 1 MiB.
#[cfg(feature = "reqwest")]
#[derive(Debug, Clone)]
pub struct ReqwestFetcher {
    client: reqwest::Client,
}

#[cfg(feature = "reqwest")]
impl ReqwestFetcher {
    /// A fetcher with the default client settings.
    pub fn new() -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self { client })
    }

    /// A fetcher using your own client.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

#[cfg(feature = "reqwest")]
impl Fetcher for ReqwestFetcher {
    fn get<'a>(&'a self, url: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            const MAX: usize = 1024 * 1024;
            let err = |reason: String| FetchError {
                url: url.to_owned(),
                reason,
            };
            let resp = self
                .client
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| err(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(err(format!("HTTP {}", resp.status())));
            }
            let max_age = resp
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_max_age);
            if resp.content_length().is_some_and(|l| l > MAX as u64) {
                return Err(err("response too large".into()));
            }
            let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
            if body.len() > MAX {
                return Err(err("response too large".into()));
            }
            Ok(FetchResponse {
                body: body.to_vec(),
                max_age,
            })
        })
    }
}

/// The HTTP client a resource service uses to ask Tessera itself (introspection of managed
/// keys, the revocation feed): a 5 s timeout, no redirects; `url` must be http(s).
#[cfg(feature = "reqwest")]
pub(crate) fn tessera_client(url: &str) -> Result<reqwest::Client, crate::error::ConfigError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(crate::error::ConfigError::Issuer(url.to_owned()));
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| crate::error::ConfigError::NoFetcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
