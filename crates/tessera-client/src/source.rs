//! The caching token source.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::TokenError;

/// A client secret. `Debug` never shows it; it is sent only to the token endpoint.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// An access token with what the token endpoint said about it. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    token: Arc<str>,
    /// `expires_in` as granted.
    pub expires_in: Duration,
    /// The granted `scope`, if the server said.
    pub scope: Option<String>,
    /// The whole token response as JSON (it contains the token).
    response: Arc<serde_json::Value>,
}

impl AccessToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// The complete token response (contains the token; do not log it).
    pub fn response(&self) -> &serde_json::Value {
        &self.response
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Monotonic time, injectable so tests need not sleep. Expiry is computed from `expires_in` on
/// this clock, so a wrong wall clock on the caller's machine does not matter.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// `Instant::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that runs ahead of the real one by however much it was advanced.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    /// A clock with no offset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move forward by `d`.
    pub fn advance(&self, d: Duration) {
        if let Ok(mut o) = self.0.lock() {
            *o += d;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + self.0.lock().map_or(Duration::ZERO, |o| *o)
    }
}

/// Retries for transient failures: connection errors, 5xx, 503 (honouring `Retry-After`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time, with ±50 % jitter.
    pub base_delay: Duration,
    /// Longest single delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

enum Endpoint {
    Token(String),
    Discover {
        issuer: String,
        resolved: tokio::sync::OnceCell<String>,
    },
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

struct Inner {
    client_id: String,
    secret: ClientSecret,
    scopes: Vec<String>,
    audience: Option<String>,
    endpoint: Endpoint,
    http: reqwest::Client,
    retry: RetryPolicy,
    refresh_ratio: f64,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<Cached>>,
    /// Held while a token request is in flight: the single flight.
    fetching: tokio::sync::Mutex<()>,
}

/// Gets and caches tokens. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.inner.client_id)
            .field("secret", &self.inner.secret)
            .field("scopes", &self.inner.scopes)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`].
pub struct TokenSourceBuilder {
    client_id: String,
    secret: ClientSecret,
    scopes: Vec<String>,
    audience: Option<String>,
    issuer: Option<String>,
    token_url: Option<String>,
    http: Option<reqwest::Client>,
    retry: RetryPolicy,
    refresh_ratio: f64,
    clock: Arc<dyn Clock>,
}

impl TokenSourceBuilder {
    /// Find the token endpoint by RFC 8414 discovery at this issuer (checked to match exactly).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Use this token endpoint directly.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Ask for a scope (repeat for more); none means the client's default scopes.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Ask for an audience (RFC 8707 `resource`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Your own reqwest client (proxies, TLS roots, timeouts).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Retry policy for transient failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Fraction of the lifetime after which a token is refreshed ahead (default 0.8).
    pub fn refresh_ratio(mut self, ratio: f64) -> Self {
        self.refresh_ratio = ratio;
        self
    }

    /// Inject the clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Check the settings and build. Nothing is fetched yet.
    pub fn build(self) -> Result<TokenSource, TokenError> {
        if self.client_id.is_empty() {
            return Err(TokenError::Config("client id is required".into()));
        }
        if !(0.1..=0.95).contains(&self.refresh_ratio) {
            return Err(TokenError::Config(
                "refresh ratio must be between 0.1 and 0.95".into(),
            ));
        }
        let endpoint = match (self.token_url, self.issuer) {
            (Some(url), _) => Endpoint::Token(url),
            (None, Some(issuer)) => Endpoint::Discover {
                issuer,
                resolved: tokio::sync::OnceCell::new(),
            },
            (None, None) => {
                return Err(TokenError::Config(
                    "an issuer or a token URL is required".into(),
                ))
            }
        };
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| TokenError::Config(e.to_string()))?,
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                client_id: self.client_id,
                secret: self.secret,
                scopes: self.scopes,
                audience: self.audience,
                endpoint,
                http,
                retry: self.retry,
                refresh_ratio: self.refresh_ratio,
                clock: self.clock,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

enum Attempt {
    Done(Result<AccessToken, TokenError>),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

impl TokenSource {
    /// Start building a token source for a client id and secret.
    pub fn builder(client_id: impl Into<String>, secret: ClientSecret) -> TokenSourceBuilder {
        TokenSourceBuilder {
            client_id: client_id.into(),
            secret,
            scopes: Vec::new(),
            audience: None,
            issuer: None,
            token_url: None,
            http: None,
            retry: RetryPolicy::default(),
            refresh_ratio: 0.8,
            clock: Arc::new(SystemClock),
        }
    }

    /// A valid access token: from cache while it is younger than the refresh point; refreshed
    /// ahead in the background after it, while still valid; fetched (once, however many callers
    /// wait) when there is none or it expired.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let now = self.inner.clock.now();
        match self.cached(now) {
            Some((token, false)) => return Ok(token),
            Some((token, true)) => {
                // Still valid but due: refresh in the background, answer from cache now.
                if let Ok(guard) = self.inner.fetching.try_lock() {
                    let this = self.clone();
                    drop(guard);
                    tokio::spawn(async move {
                        if let Err(e) = this.refresh_if_due().await {
                            tracing::warn!(error = %e, "background token refresh failed; using the cached token");
                        }
                    });
                }
                return Ok(token);
            }
            None => {}
        }
        let _flight = self.inner.fetching.lock().await;
        // Someone else may have fetched while we waited.
        if let Some((token, _)) = self.cached(self.inner.clock.now()) {
            return Ok(token);
        }
        self.fetch_and_cache().await
    }

    /// Drop the cached token if it is `token` (e.g. a resource server said it is invalid), so the
    /// next [`TokenSource::token`] fetches a new one. Comparing first means many callers reporting
    /// the same bad token cause one refresh.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Ok(mut c) = self.inner.cached.lock() {
            if c.as_ref().is_some_and(|c| c.token.token == token.token) {
                *c = None;
            }
        }
    }

    async fn refresh_if_due(&self) -> Result<(), TokenError> {
        let _flight = self.inner.fetching.lock().await;
        if let Some((_, false)) = self.cached(self.inner.clock.now()) {
            return Ok(());
        }
        self.fetch_and_cache().await.map(|_| ())
    }

    /// (token, due for refresh) if a cached token is still valid at `now`.
    fn cached(&self, now: Instant) -> Option<(AccessToken, bool)> {
        let c = self.inner.cached.lock().ok()?;
        let c = c.as_ref()?;
        (now < c.expires_at).then(|| (c.token.clone(), now >= c.refresh_at))
    }

    async fn fetch_and_cache(&self) -> Result<AccessToken, TokenError> {
        let sent_at = self.inner.clock.now();
        let token = self.fetch_with_retries().await?;
        // Count the lifetime from when the request was sent: never later than the server's.
        let lifetime = token.expires_in;
        let cached = Cached {
            token: token.clone(),
            refresh_at: sent_at + lifetime.mul_f64(self.inner.refresh_ratio),
            expires_at: sent_at + lifetime,
        };
        if let Ok(mut c) = self.inner.cached.lock() {
            *c = Some(cached);
        }
        Ok(token)
    }

    async fn token_url(&self) -> Result<String, TokenError> {
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

    async fn fetch_with_retries(&self) -> Result<AccessToken, TokenError> {
        let policy = self.inner.retry;
        let mut delay = policy.base_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match self.token_url().await {
                Ok(url) => self.attempt(&url).await,
                // Discovery failures caused by the network are transient too.
                Err(TokenError::Discovery(reason)) => Attempt::Retry {
                    reason: format!("discovery: {reason}"),
                    after: None,
                },
                Err(e) => Attempt::Done(Err(e)),
            };
            match outcome {
                Attempt::Done(r) => return r,
                Attempt::Retry { reason, after } => {
                    if attempt >= policy.max_attempts.max(1) {
                        return Err(TokenError::Unavailable {
                            attempts: attempt,
                            last: reason,
                        });
                    }
                    let wait = after.unwrap_or_else(|| jitter(delay)).min(policy.max_delay);
                    tracing::debug!(attempt, ?wait, reason = %reason, "token request failed; retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
            }
        }
    }

    async fn attempt(&self, url: &str) -> Attempt {
        let inner = &self.inner;
        let scope = inner.scopes.join(" ");
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(a) = &inner.audience {
            form.push(("resource", a));
        }
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic's base64.
        let (id, secret) = (form_encode(&inner.client_id), form_encode(&inner.secret.0));
        let resp = match inner
            .http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
        {
            Ok(r) => r,
            // The error text never contains the secret (it is in a header reqwest does not print).
            Err(e) => {
                return Attempt::Retry {
                    reason: e.without_url().to_string(),
                    after: None,
                }
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    reason: e.without_url().to_string(),
                    after: None,
                }
            }
        };
        if status.is_success() {
            return Attempt::Done(parse_token(&body));
        }
        if status.is_server_error() {
            return Attempt::Retry {
                reason: format!("HTTP {status}"),
                after: retry_after,
            };
        }
        Attempt::Done(Err(match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => TokenError::OAuth {
                status: status.as_u16(),
                code: e.error,
                description: e.error_description,
            },
            Err(_) => TokenError::Protocol(format!("HTTP {status} without an RFC 6749 error body")),
        }))
    }
}

fn parse_token(body: &[u8]) -> Result<AccessToken, TokenError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TokenError::Protocol(e.to_string()))?;
    let r: TokenResponse =
        serde_json::from_value(value.clone()).map_err(|e| TokenError::Protocol(e.to_string()))?;
    if !r.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Protocol(format!(
            "token_type {} is not Bearer",
            r.token_type
        )));
    }
    // Without expires_in (it is only RECOMMENDED), assume a short lifetime rather than forever.
    let expires_in = Duration::from_secs(r.expires_in.unwrap_or(60).max(1));
    Ok(AccessToken {
        token: Arc::from(r.access_token),
        expires_in,
        scope: r.scope,
        response: Arc::new(value),
    })
}

/// application/x-www-form-urlencoded, as RFC 6749 §2.3.1 requires for Basic credentials.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `d` scaled by a random factor in [0.5, 1.5).
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let f = 0.5 + f64::from(u16::from_le_bytes(b)) / 65536.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c%d+é"), "a+b%3Ac%25d%2B%C3%A9");
        assert_eq!(form_encode("tss_AZaz09-_"), "tss_AZaz09-_");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = TokenSource::builder("id", ClientSecret::new("hunter2"))
            .token_url("http://x")
            .build()
            .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let t =
            parse_token(br#"{"access_token":"eyJsecret","token_type":"Bearer","expires_in":300}"#)
                .unwrap();
        assert!(!format!("{t:?}").contains("eyJsecret"));
        assert_eq!(t.expires_in, Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j < Duration::from_millis(150));
        }
    }
}
