//! The caching token source: a token from cache while it is fresh, refreshed ahead in the
//! background, fetched once however many callers wait. The wire request is in `request`,
//! retries in `retry`, endpoint discovery in `discovery`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::credential::Credential;
use crate::discovery::Endpoint;
use crate::retry::RetryPolicy;
use crate::{AccessToken, AssertionSource, ClientSecret, PrivateKey, TokenError};

pub(crate) struct Cached {
    pub(crate) token: AccessToken,
    pub(crate) refresh_at: Instant,
    pub(crate) expires_at: Instant,
}

pub(crate) struct Inner {
    pub(crate) credential: Credential,
    /// The issuer, when configured: the `aud` of client assertions.
    pub(crate) issuer: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    /// Sent as `X-Service-Name` (see [`TokenSourceBuilder::service_name`]).
    pub(crate) service_name: Option<String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    pub(crate) refresh_ratio: f64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cached: Mutex<Option<Cached>>,
    /// Held while a token request is in flight: the single flight.
    pub(crate) fetching: tokio::sync::Mutex<()>,
}

/// Gets and caches tokens. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenSource {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credential", &self.inner.credential)
            .field("scopes", &self.inner.scopes)
            .field("audience", &self.inner.audience)
            .field("service_name", &self.inner.service_name)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`].
pub struct TokenSourceBuilder {
    pub(crate) credential: Credential,
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) service_name: Option<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) retry: RetryPolicy,
    pub(crate) refresh_ratio: f64,
    pub(crate) clock: Arc<dyn Clock>,
}

impl TokenSourceBuilder {
    /// Find the token endpoint by RFC 8414 discovery at this issuer (checked to match exactly).
    /// With [`TokenSource::private_key_jwt`], this is also the assertions' `aud`, even when
    /// [`TokenSourceBuilder::token_url`] is set too.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Use this token endpoint directly. With [`TokenSource::private_key_jwt`] and no
    /// [`TokenSourceBuilder::issuer`], the assertions' `aud` is this URL.
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

    /// Name this caller in an `X-Service-Name` header on token requests and on the calls of an
    /// [`crate::AuthorizedClient`] built on this source (default: no header). Tessera's and
    /// tessera-verifier's audit logs record it (as `service`) next to the authenticated
    /// client; it is a label for reading logs, never a credential. 1 to 64 printable ASCII
    /// characters, checked by [`TokenSourceBuilder::build`].
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
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
        if self.credential.client_id().is_some_and(str::is_empty) {
            return Err(TokenError::Config("client id is required".into()));
        }
        if !(0.1..=0.95).contains(&self.refresh_ratio) {
            return Err(TokenError::Config(
                "refresh ratio must be between 0.1 and 0.95".into(),
            ));
        }
        if let Some(name) = &self.service_name {
            let printable = |c: char| c.is_ascii_graphic() || c == ' ';
            if name.is_empty() || name.len() > 64 || !name.chars().all(printable) {
                return Err(TokenError::Config(
                    "service name must be 1 to 64 printable ASCII characters".into(),
                ));
            }
        }
        let issuer = self.issuer.clone();
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
                credential: self.credential,
                issuer,
                scopes: self.scopes,
                audience: self.audience,
                service_name: self.service_name,
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

impl TokenSource {
    /// Start building a token source that authenticates with a client id and secret
    /// (`client_secret_basic`).
    pub fn builder(client_id: impl Into<String>, secret: ClientSecret) -> TokenSourceBuilder {
        Self::with_credential(Credential::Secret {
            client_id: client_id.into(),
            secret,
        })
    }

    /// Start building a token source that authenticates with a JWT signed by `key`
    /// (`private_key_jwt`, RFC 7523 §2.2): no secret is stored or sent. The server must know
    /// the key's public half for this client. Each token request carries a new assertion
    /// (`iss` = `sub` = `client_id`, `aud` = the issuer, 60 s lifetime, fresh `jti`).
    pub fn private_key_jwt(client_id: impl Into<String>, key: PrivateKey) -> TokenSourceBuilder {
        Self::with_credential(Credential::PrivateKeyJwt {
            client_id: client_id.into(),
            key,
        })
    }

    /// Start building a token source that trades an assertion from elsewhere (a Kubernetes
    /// service account token, a GitHub Actions ID token, …) for access tokens with the
    /// JWT-bearer grant (RFC 7523 §2.1). No client id or secret: the server finds the client
    /// from the assertion's issuer and subject.
    pub fn assertion(source: AssertionSource) -> TokenSourceBuilder {
        Self::with_credential(Credential::Assertion(source))
    }

    fn with_credential(credential: Credential) -> TokenSourceBuilder {
        TokenSourceBuilder {
            credential,
            scopes: Vec::new(),
            audience: None,
            issuer: None,
            service_name: None,
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
}
