//! The protocol service: every decision the token, revocation and introspection endpoints make,
//! in one place and independent of HTTP. `http/` parses a request into the typed inputs below,
//! calls one method, and turns the result (or the [`OAuthError`]) into a response.
//!
//! A token request reads top-down: [`Authority::issue`] checks the grant type (before any costly
//! work), [`Authority::authenticate`]s the client with whichever method it presented, decides the
//! grant ([`grant::decide`]), and signs the RFC 9068 claims with the key ring's active key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::config::Issuer;
use crate::keys::{KeyRing, TokenTyp};
use crate::metrics::{AuthFailure, GrantKind};
use crate::oauth::access_token::{AccessTokenClaims, IssuedClaims};
use crate::oauth::assertion::{self, ClientAssertionRules, Refusal};
use crate::oauth::client_auth::{
    self, Authorization, BodyCredentials, ClientAssertion, ClientCredentials, Credentials,
};
use crate::oauth::trust::{Trust, TrustIssuer, TrustKeys};
use crate::oauth::{
    grant, Audience, AuthMethod, Client, ClientAuth, ClientId, ClientKeys, ErrorCode, OAuthError,
    TokenRequest,
};
use crate::registry::Registry;
use crate::revocations::Revocations;
use crate::secrets::{CredentialVerifier, VerifyError};
use tessera_proto::{Metadata, TokenResponse};
use tessera_verifier::keys::{KeyCaches, KeySource, Keys};
use tessera_verifier::{Algorithm, Verifier};

/// Where a request came from, for audit events: the peer address and the caller's optional
/// `X-Service-Name` (free text from the client, cut to 64 printable characters by the adapter).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Peer address, when known.
    pub source: Option<std::net::SocketAddr>,
    /// `X-Service-Name`.
    pub service: Option<String>,
}

impl Origin {
    fn source_ip(&self) -> String {
        self.source.map(|s| s.ip().to_string()).unwrap_or_default()
    }
}

/// The client credentials a request presented, as raw as they arrived: the `Authorization`
/// header(s) and the body's `client_id` / `client_secret`. Which method they amount to (and
/// whether that is exactly one) is decided by [`Authority::authenticate`].
pub struct Presented<'a> {
    /// The `Authorization` header.
    pub authorization: &'a Authorization,
    /// `client_id` from the body, if present and non-empty.
    pub client_id: Option<&'a str>,
    /// `client_secret` from the body, if present and non-empty.
    pub client_secret: Option<&'a str>,
    /// `client_assertion_type` from the body, if present and non-empty.
    pub client_assertion_type: Option<&'a str>,
    /// `client_assertion` from the body, if present and non-empty.
    pub client_assertion: Option<&'a str>,
}

impl Presented<'_> {
    /// Whether the request carries client authentication (a `client_id` alone only names a
    /// client).
    fn any_authentication(&self) -> bool {
        *self.authorization != Authorization::None
            || self.client_secret.is_some()
            || self.client_assertion_type.is_some()
            || self.client_assertion.is_some()
    }
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What introspection (RFC 7662) answers.
#[derive(Debug)]
pub enum Introspection {
    /// A live token this server issued and nobody revoked.
    Active(IssuedClaims),
    /// A managed API key that is neither revoked nor expired.
    ApiKey(Arc<crate::oauth::api_key::ApiKey>),
    /// Anything else: revoked, expired, foreign, forged or malformed.
    Inactive,
}

/// The protocol service. See the module documentation.
pub struct Authority {
    /// Clients and keys, as of the last refresh.
    registry: Arc<Registry>,
    /// Secret checks with their cache and the bounded argon2id pool.
    credentials: Arc<CredentialVerifier>,
    /// Revoked token ids.
    revocations: Revocations,
    /// Time.
    clock: Clock,
    /// The issuer, exactly as configured.
    issuer: Issuer,
    /// `aud` for clients with no audiences registered: the issuer.
    fallback_audience: Audience,
    /// Which `typ` each token gets.
    typ: TypPolicy,
    /// Per-client token quotas (this replica's counts).
    quotas: crate::quota::Quotas,
    /// The quota of clients without their own (`None`: no limit).
    default_quota: Option<u32>,
    /// The verifier of this server's own tokens (any audience) over the key ring it was built
    /// from; rebuilt when the published keys change.
    own_tokens: Mutex<Option<(Arc<KeyRing>, Verifier)>>,
    /// Secretless-caller keys and settings.
    secretless: Secretless,
}

/// The scope that allows every admin API operation.
pub const ADMIN_SCOPE: &str = "tessera:admin";
/// The scope that allows the admin API's reads (`GET`) only.
pub const ADMIN_READ_SCOPE: &str = "tessera:admin:read";

/// An admin API caller whose token passed [`Authority::authorize_admin`].
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// The client the token was issued to: the audit records' actor.
    pub client_id: String,
    /// Whether the token has [`ADMIN_SCOPE`] (else only [`ADMIN_READ_SCOPE`]).
    pub can_write: bool,
}

/// Why an admin API token was refused (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminDenied {
    /// `invalid_token`, with the reason (never the token).
    InvalidToken(&'static str),
    /// `insufficient_scope`: neither admin scope.
    InsufficientScope,
    /// The check needs the database or the keys, which cannot be reached now.
    Unavailable,
}

/// The secretless methods (RFC 7523): their key caches and settings.
#[derive(Debug)]
pub struct Secretless {
    /// Public keys of `private_key_jwt` clients and of trusted external issuers, cached per
    /// source by `tessera-verifier`'s JWKS cache.
    pub key_caches: KeyCaches,
    /// Assertion ids seen, in the shared database.
    pub replays: crate::replay::ReplayGuard,
    /// Longest `exp - iat` of a `private_key_jwt` assertion (default 1 h: Authlib signs
    /// `exp = iat + 3600`).
    pub max_assertion_lifetime: Duration,
    /// How long a key check may wait for an issuer or `jwks_uri` before the answer is 503.
    pub key_fetch_timeout: Duration,
}

impl Secretless {
    /// Replays checked by `replays`; key caches on `clock` with `cooldown` between fetches caused by unknown `kid`s or failures, assertions
    /// living at most `max_assertion_lifetime`, key fetches bounded by 5 s.
    pub fn new(
        replays: crate::replay::ReplayGuard,
        clock: Clock,
        cooldown: Duration,
        max_assertion_lifetime: Duration,
    ) -> Self {
        Self {
            replays,
            key_caches: KeyCaches::new(
                tessera_verifier::keys::KeyCacheSettings {
                    cooldown,
                    ..Default::default()
                },
                None,
            )
            // Key ages and cooldowns on the server's clock, which tests fix.
            .with_clock(Arc::new(VerifierClock(clock))),
            max_assertion_lifetime,
            key_fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Algorithms a `private_key_jwt` assertion may use (`Ed25519`, RFC 9864, is read as EdDSA).
/// Never `none`, never HS*: [`Algorithm`] cannot name them.
pub const CLIENT_ASSERTION_ALGS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Algorithms an external identity token may use.
pub const FEDERATED_ALGS: [Algorithm; 9] = Algorithm::ALL;

/// Why an assertion could not be checked (as opposed to failing a check): answered 503.
struct CannotCheck(&'static str);

/// How tokens are issued: their `typ`, and the default quota.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// Which `typ` each token gets.
    pub typ: TypPolicy,
    /// Tokens per minute for a client without its own quota (`None`: no limit).
    pub default_max_tokens_per_minute: Option<u32>,
}

/// Which `typ` a token gets: RFC 9068's `at+jwt` unless the deployment asked for `JWT`, for
/// every token or for the audiences whose resource servers refuse `at+jwt`.
#[derive(Debug, Clone, Default)]
pub struct TypPolicy {
    /// The `typ` of every other token.
    pub default: TokenTyp,
    /// Audiences whose tokens carry `typ: JWT`.
    pub jwt_audiences: Vec<Audience>,
}

impl TypPolicy {
    /// The `typ` of a token for `audience`.
    pub fn for_audience(&self, audience: &Audience) -> TokenTyp {
        if self.jwt_audiences.contains(audience) {
            TokenTyp::Jwt
        } else {
            self.default
        }
    }
}

/// The server's clock as `tessera-verifier` reads time.
struct VerifierClock(Clock);

impl tessera_verifier::Clock for VerifierClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

impl Authority {
    /// A service over `registry`, checking secrets with `credentials`.
    pub fn new(
        registry: Arc<Registry>,
        credentials: Arc<CredentialVerifier>,
        revocations: Revocations,
        clock: Clock,
        issuer: Issuer,
        policy: TokenPolicy,
        secretless: Secretless,
    ) -> Result<Self, crate::config::ConfigError> {
        let fallback_audience = Audience::parse(issuer.as_str())
            .ok_or(crate::config::ConfigError::IssuerNotAnAudience)?;
        Ok(Self {
            registry,
            credentials,
            revocations,
            clock,
            issuer,
            fallback_audience,
            typ: policy.typ,
            quotas: crate::quota::Quotas::default(),
            default_quota: policy.default_max_tokens_per_minute,
            own_tokens: Mutex::new(None),
            secretless,
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The registry this service answers from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The secret checks (their cache and the argon2id pool).
    pub fn credentials(&self) -> &CredentialVerifier {
        &self.credentials
    }

    /// The current key ring (JWKS, signing algorithms).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.registry.key_ring()
    }

    /// The RFC 8414 metadata document, as of the current clients and keys.
    pub async fn metadata(&self) -> Metadata {
        let scopes = self.registry.scopes_supported().await;
        let ring = self.registry.key_ring();
        let endpoint = |path: &str| Some(self.issuer.endpoint(path));
        // The methods every authenticated endpoint takes.
        let auth_methods = || {
            vec![
                AuthMethod::ClientSecretBasic.as_str().to_owned(),
                AuthMethod::ClientSecretPost.as_str().to_owned(),
                AuthMethod::PrivateKeyJwt.as_str().to_owned(),
            ]
        };
        // RFC 8414 §2: required when private_key_jwt is listed.
        let assertion_algs = || {
            CLIENT_ASSERTION_ALGS
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        Metadata {
            issuer: self.issuer.as_str().to_owned(),
            token_endpoint: endpoint("/oauth/token"),
            jwks_uri: endpoint("/jwks.json"),
            revocation_endpoint: endpoint("/oauth/revoke"),
            introspection_endpoint: endpoint("/oauth/introspect"),
            revocation_endpoint_auth_methods_supported: auth_methods(),
            introspection_endpoint_auth_methods_supported: auth_methods(),
            grant_types_supported: vec![
                grant::CLIENT_CREDENTIALS.to_owned(),
                grant::JWT_BEARER.to_owned(),
            ],
            token_endpoint_auth_signing_alg_values_supported: assertion_algs(),
            revocation_endpoint_auth_signing_alg_values_supported: assertion_algs(),
            introspection_endpoint_auth_signing_alg_values_supported: assertion_algs(),
            token_endpoint_auth_methods_supported: auth_methods(),
            // No authorization endpoint: this server issues tokens to machines only.
            response_types_supported: Vec::new(),
            scopes_supported: scopes.iter().map(|s| s.to_string()).collect(),
            access_token_signing_alg_values_supported: ring
                .algs
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            // Every algorithm this server can sign with, not just the current key's: libraries
            // read this once at start-up as their allowlist, so following the current key would
            // make them refuse tokens for minutes after a rotation to another algorithm. (OIDC
            // Discovery also requires RS256 in it.)
            id_token_signing_alg_values_supported: crate::keys::Alg::ALL
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            subject_types_supported: vec!["public".to_owned()],
        }
    }

    /// Whether the database answers within `limit` (readiness).
    pub async fn ready(&self, limit: Duration) -> bool {
        self.registry.ping(limit).await
    }

    /// RFC 6749 §4.4: issue an access token to the client that presented `creds`.
    pub async fn issue(
        &self,
        creds: &Presented<'_>,
        req: &TokenRequest,
        origin: &Origin,
    ) -> Result<TokenResponse, OAuthError> {
        // Before any (costly) client authentication.
        req.check_grant_type()?;
        let (client, method, via) = match req.grant_type.as_deref() {
            Some(grant::JWT_BEARER) => {
                let f = self.federate(creds, req, origin).await?;
                (f.client, f.method, Some((f.trust, f.iss, f.sub)))
            }
            _ => {
                let (client, method) = self.authenticate_method(creds, origin).await?;
                (client, Some(method), None)
            }
        };
        // Debug level, like `token_issued`: at info every exchange would write a log line, which
        // costs the endpoint about a quarter of its throughput. Refusals stay at info.
        if let Some((trust, iss, sub)) = &via {
            tracing::debug!(
                target: "tessera::audit",
                event = "assertion_exchanged",
                client_id = %client.id,
                trust = %trust,
                external_iss = %iss,
                external_sub = %sub,
                source = origin.source_ip(),
                "external identity token exchanged"
            );
        }
        let now = self.clock.now();
        let grant = grant::decide(&client, req, &self.fallback_audience)?;
        // Counted only for requests that would get a token: refusals cost a quota nothing.
        if let Some(per_minute) = client.max_tokens_per_minute.or(self.default_quota) {
            let now_ms = now.saturating_mul(1000);
            if let Err(wait) = self.quotas.take(&client.id, per_minute, now_ms) {
                tracing::info!(
                    target: "tessera::audit",
                    event = "quota_exceeded",
                    client_id = %client.id,
                    per_minute,
                    source = origin.source_ip(),
                    "token quota exceeded"
                );
                return Err(OAuthError::quota_exceeded(wait));
            }
        }
        let ring = self.registry.key_ring();
        let jti = crate::random::base64url(16);
        let scope = grant.scopes.to_string();
        let claims =
            AccessTokenClaims::new(self.issuer.as_str(), &client, &grant, &scope, &jti, now);
        let signed = serde_json::to_vec(&claims)
            .map_err(|e| e.to_string())
            .and_then(|mut json| {
                client.claims.splice_into(&mut json);
                let typ = self.typ.for_audience(&grant.audience);
                ring.signer.sign(&json, typ).map_err(|e| e.to_string())
            });
        let access_token = match signed {
            Ok(t) => {
                let kind = match via {
                    Some(_) => GrantKind::JwtBearer,
                    None => GrantKind::ClientCredentials,
                };
                crate::metrics::token_issued(kind, ring.signer.alg(), method, &client.id);
                t
            }
            Err(e) => {
                tracing::error!(error = %e, "signing an access token failed");
                return Err(OAuthError::new(
                    ErrorCode::ServerError,
                    "could not sign the token",
                ));
            }
        };
        // Debug level: at info, every token would write a log line, which costs the endpoint
        // much of its throughput. Enable with TESSERA_LOG=info,tessera::audit=debug.
        tracing::debug!(
            target: "tessera::audit",
            event = "token_issued",
            client_id = %client.id,
            jti = %jti,
            kid = %ring.signer.kid(),
            scope = %scope,
            aud = %grant.audience,
            source = origin.source_ip(),
            service = origin.service.as_deref().unwrap_or_default(),
            "token issued"
        );
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: Some(u64::from(grant.lifetime)),
            scope: Some(scope),
        })
    }

    /// RFC 7009: a client revokes one of its own tokens. An invalid or unknown token is answered
    /// like a revoked one (§2.2), so the endpoint reveals nothing about tokens; a valid token of
    /// another client is refused with `unauthorized_client`.
    pub async fn revoke(
        &self,
        creds: &Presented<'_>,
        token: &str,
        origin: &Origin,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(creds, origin).await?;
        let Some(claims) = self.check_issued(token).await else {
            return Ok(());
        };
        if claims.client_id != client.id.as_str() {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            ));
        }
        self.revocations
            .revoke(&claims.jti, &client.id, claims.exp)
            .await
            .map_err(|_| {
                OAuthError::unavailable("cannot record the revocation; retry shortly", 2)
            })?;
        tracing::info!(target: "tessera::audit", client_id = %client.id, jti = %claims.jti, "token revoked");
        Ok(())
    }

    /// RFC 7662: any authenticated client may ask whether a token is active.
    pub async fn introspect(
        &self,
        creds: &Presented<'_>,
        token: &str,
        origin: &Origin,
    ) -> Result<Introspection, OAuthError> {
        let caller = self.authenticate(creds, origin).await?;
        if token.starts_with(crate::oauth::api_key::PREFIX) {
            return self.introspect_api_key(token, &caller, origin).await;
        }
        let Some(claims) = self.check_issued(token).await else {
            return Ok(Introspection::Inactive);
        };
        let revoked = self
            .revocations
            .is_revoked(&claims.jti)
            .await
            .map_err(|_| OAuthError::unavailable("cannot check revocations; retry shortly", 2))?;
        Ok(if revoked {
            Introspection::Inactive
        } else {
            Introspection::Active(claims)
        })
    }

    /// A managed API key, for a resource service that was handed one. Every use and every
    /// refusal is an audit event (info level): resource services cache the answer, so this runs
    /// once per key per cache period, not per request.
    async fn introspect_api_key(
        &self,
        key: &str,
        caller: &Client,
        origin: &Origin,
    ) -> Result<Introspection, OAuthError> {
        use crate::oauth::api_key::{hash, KeyState};
        let found = self
            .registry
            .find_api_key(&hash(key))
            .await
            .map_err(|_| registry_unavailable())?;
        let now = self.clock.now();
        let (id, name, state) = match &found {
            Some(k) => (k.id.as_str(), k.name.as_str(), k.state(now)),
            None => ("", "", KeyState::Revoked),
        };
        if found.is_some() && state == KeyState::Active {
            tracing::info!(
                target: "tessera::audit",
                event = "api_key_used",
                api_key = id,
                name,
                resource_client = %caller.id,
                source = origin.source_ip(),
                service = origin.service.as_deref().unwrap_or_default(),
                "API key accepted"
            );
        } else {
            let reason = match (&found, state) {
                (None, _) => "unknown key",
                (_, KeyState::Expired) => "expired",
                _ => "revoked",
            };
            tracing::info!(
                target: "tessera::audit",
                event = "api_key_refused",
                api_key = id,
                name,
                reason,
                resource_client = %caller.id,
                source = origin.source_ip(),
                service = origin.service.as_deref().unwrap_or_default(),
                "API key refused"
            );
        }
        Ok(match found {
            Some(k) if state == KeyState::Active => Introspection::ApiKey(k),
            _ => Introspection::Inactive,
        })
    }

    /// The revocation feed (`GET /oauth/revocations?since=`): for any authenticated client, as
    /// introspection is, so resource services can refuse revoked tokens locally.
    pub async fn revocation_feed(
        &self,
        creds: &Presented<'_>,
        since: i64,
        origin: &Origin,
    ) -> Result<crate::revocations::FeedPage, OAuthError> {
        self.authenticate(creds, origin).await?;
        self.revocations
            .since(since, self.clock.now(), 1000)
            .await
            .map_err(|_| OAuthError::unavailable("cannot read revocations; retry shortly", 2))
    }

    /// A live token this server issued: checked by `tessera-verifier` against the published
    /// keys (the key's own algorithm, `typ` at+jwt, `iss` exactly this issuer, any audience,
    /// expiry on this server's clock with no leeway). Anything else (another issuer, a retired
    /// key, a forgery, garbage) is `None`: RFC 7662 answers all of those `active: false`.
    async fn check_issued(&self, token: &str) -> Option<IssuedClaims> {
        let verifier = self.own_tokens_verifier()?;
        let checked = verifier.verify(token).await.ok()?;
        serde_json::from_str(checked.raw_claims()).ok()
    }

    /// The admin API's check of an access token (RFC 6750): one of this server's own tokens
    /// (see `check_issued`), for the audience `<issuer>/admin`, with the scope
    /// [`ADMIN_SCOPE`] or [`ADMIN_READ_SCOPE`], not revoked, of a client that still exists
    /// and is usable now (disabling the client cuts its admin access at once).
    pub async fn authorize_admin(&self, token: &str) -> Result<AdminCaller, AdminDenied> {
        let verifier = self.own_tokens_verifier().ok_or(AdminDenied::Unavailable)?;
        let checked = verifier
            .verify(token)
            .await
            .map_err(|_| AdminDenied::InvalidToken("the access token is invalid or expired"))?;
        let audience = self.admin_audience();
        if !checked.audience().any(|a| a == audience) {
            return Err(AdminDenied::InvalidToken(
                "the access token is not for the admin API (audience <issuer>/admin)",
            ));
        }
        let can_write = checked.has_scope(ADMIN_SCOPE);
        if !can_write && !checked.has_scope(ADMIN_READ_SCOPE) {
            return Err(AdminDenied::InsufficientScope);
        }
        let id = ClientId::parse(checked.client_id()).ok_or(AdminDenied::InvalidToken(
            "the access token names no client",
        ))?;
        match self.registry.find_client(&id).await {
            Ok(Some(c)) if c.is_active(self.clock.now()) => {}
            Ok(_) => {
                return Err(AdminDenied::InvalidToken(
                    "the client of the access token is disabled, expired or deleted",
                ))
            }
            Err(_) => return Err(AdminDenied::Unavailable),
        }
        if let Some(jti) = checked.jti() {
            match self.revocations.is_revoked(jti).await {
                Ok(false) => {}
                Ok(true) => return Err(AdminDenied::InvalidToken("the access token was revoked")),
                Err(_) => return Err(AdminDenied::Unavailable),
            }
        }
        Ok(AdminCaller {
            client_id: id.to_string(),
            can_write,
        })
    }

    /// The audience of admin API tokens: `<issuer>/admin`.
    pub fn admin_audience(&self) -> String {
        self.issuer.endpoint("/admin")
    }

    /// The verifier for the published keys, built again only when they change.
    fn own_tokens_verifier(&self) -> Option<Verifier> {
        let ring = self.registry.key_ring();
        let mut cached = self.own_tokens.lock().ok()?;
        if let Some((built_for, verifier)) = cached.as_ref() {
            // The registry rebuilds the ring on every refresh; the keys are what matters.
            if built_for.jwks_json == ring.jwks_json {
                return Some(verifier.clone());
            }
        }
        // Every token this server issues is its own, whichever `typ` it was given.
        let verifier = Verifier::any_audience_builder(self.issuer.as_str())
            .accept_typ_jwt()
            .static_jwks(&ring.jwks_json)
            .algorithms(ring.algs.iter().filter_map(|a| a.as_str().parse().ok()))
            .leeway(Duration::ZERO)
            .max_token_bytes(16 * 1024)
            .clock(Arc::new(VerifierClock(self.clock.clone())))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the verifier of this server's own tokens"))
            .ok()?;
        *cached = Some((ring, verifier.clone()));
        Some(verifier)
    }

    /// Authenticate the client that presented `creds`: exactly one of `client_secret_basic`,
    /// `client_secret_post` (checked against the registry, paying argon2id at most once per
    /// credential) or `private_key_jwt`.
    pub async fn authenticate(
        &self,
        creds: &Presented<'_>,
        origin: &Origin,
    ) -> Result<Arc<Client>, OAuthError> {
        Ok(self.authenticate_method(creds, origin).await?.0)
    }

    /// [`Authority::authenticate`], also saying which method the client used.
    async fn authenticate_method(
        &self,
        creds: &Presented<'_>,
        origin: &Origin,
    ) -> Result<(Arc<Client>, AuthMethod), OAuthError> {
        let creds = client_auth::extract_any(
            creds.authorization,
            BodyCredentials {
                client_id: creds.client_id,
                client_secret: creds.client_secret,
                client_assertion_type: creds.client_assertion_type,
                client_assertion: creds.client_assertion,
            },
        )
        .inspect_err(|e| {
            if e.code == ErrorCode::InvalidClient {
                crate::metrics::auth_failed(AuthFailure::Malformed, None);
            }
        })?;
        match creds {
            Credentials::Secret(c) => {
                let method = c.method;
                Ok((self.authenticate_secret(c, origin).await?, method))
            }
            Credentials::Assertion(a) => Ok((
                self.authenticate_assertion(a, origin).await?,
                AuthMethod::PrivateKeyJwt,
            )),
        }
    }

    /// `private_key_jwt` (RFC 7523 §2.2, §3): the assertion names its client in `sub`; its
    /// signature is checked with that client's registered keys, then its claims, then its
    /// `jti` is recorded in the shared store (a replay on any replica is refused).
    async fn authenticate_assertion(
        &self,
        a: ClientAssertion,
        origin: &Origin,
    ) -> Result<Arc<Client>, OAuthError> {
        // Read before the signature is checked, only to find the client and its keys; used as
        // the claims once the signature over these very bytes has verified.
        let peeked = assertion::peek_claims(&a.jwt);
        let claimed = peeked
            .as_ref()
            .and_then(|c| assertion::string(c, "sub").and_then(ClientId::parse));
        let now = self.clock.now();
        // `known` is the registered client the assertion names, when it names one.
        let refuse = |reason: Refusal, id: Option<&ClientId>, known: Option<&Client>| {
            let failure = match known {
                Some(c) => AuthFailure::of_client(c, now, AuthFailure::BadAssertion),
                None if reason == Refusal::Client => AuthFailure::UnknownClient,
                None => AuthFailure::BadAssertion,
            };
            crate::metrics::auth_failed(failure, known.map(|c| &c.id));
            tracing::info!(
                target: "tessera::audit",
                event = "client_auth_failed",
                client_id = %id.map(ClientId::as_str).unwrap_or_default(),
                method = AuthMethod::PrivateKeyJwt.as_str(),
                reason = reason.as_str(),
                source = origin.source_ip(),
                service = origin.service.as_deref().unwrap_or_default(),
                "client authentication failed"
            );
            OAuthError::invalid_client()
        };
        let Some(id) = claimed else {
            return Err(refuse(Refusal::Malformed, None, None));
        };
        // openid-client also sends client_id: it must name the same client.
        if a.client_id.as_deref().is_some_and(|c| c != id.as_str()) {
            return Err(refuse(Refusal::IssuerOrSubject, Some(&id), None));
        }
        if self.registry.is_stale() {
            return Err(registry_unavailable());
        }
        let client = self
            .registry
            .find_client(&id)
            .await
            .map_err(|_| registry_unavailable())?;
        let (client, keys) = match client {
            Some(c) if c.is_active(now) => match &c.auth {
                ClientAuth::PrivateKeyJwt(keys) => {
                    let keys = keys.clone();
                    (c, keys)
                }
                ClientAuth::Secret => return Err(refuse(Refusal::Client, Some(&id), Some(&c))),
            },
            Some(c) => return Err(refuse(Refusal::Client, Some(&id), Some(&c))),
            None => return Err(refuse(Refusal::Client, Some(&id), None)),
        };
        let source = match keys {
            ClientKeys::Jwks(json) => KeySource::Static(json),
            ClientKeys::JwksUri(url) => KeySource::JwksUrl(url),
        };
        match self
            .verify_signature(&source, None, &a.jwt, &CLIENT_ASSERTION_ALGS)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(refuse(Refusal::Signature, Some(&id), Some(&client))),
            Err(CannotCheck(why)) => {
                tracing::warn!(client_id = %id, why, "cannot check a client assertion");
                return Err(OAuthError::unavailable(
                    "the client's keys cannot be fetched; retry shortly",
                    5,
                ));
            }
        };
        let Some(claims) = peeked else {
            return Err(refuse(Refusal::Malformed, Some(&id), Some(&client)));
        };
        let token_endpoint = self.issuer.endpoint("/oauth/token");
        let rules = ClientAssertionRules {
            client_id: id.as_str(),
            audiences: [self.issuer.as_str(), &token_endpoint],
            max_lifetime: i64::try_from(self.secretless.max_assertion_lifetime.as_secs())
                .unwrap_or(i64::MAX),
            now,
        };
        let accepted = assertion::check_client_assertion(&claims, &rules)
            .map_err(|r| refuse(r, Some(&id), Some(&client)))?;
        // Recorded before it is accepted: an assertion whose jti could not be recorded is
        // never accepted, so a replay cannot slip through a database hiccup.
        match self
            .secretless
            .replays
            .record(&id, &accepted.jti, accepted.remember_until)
            .await
        {
            Ok(true) => Ok(client),
            Ok(false) => Err(refuse(Refusal::Replayed, Some(&id), Some(&client))),
            Err(_) => Err(OAuthError::unavailable(
                "cannot record the client assertion; retry shortly",
                2,
            )),
        }
    }

    /// Check a JWS signature with the keys of `source`: `Ok(true)` when it verifies,
    /// `Ok(false)` when it does not (bad signature, unknown key, algorithm not allowed),
    /// `Err` when the keys cannot be had within the fetch timeout.
    async fn verify_signature(
        &self,
        source: &KeySource,
        key_use: Option<&str>,
        jws: &str,
        algs: &[Algorithm],
    ) -> Result<bool, CannotCheck> {
        let keys: Keys = match self.secretless.key_caches.get_with(source, key_use) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "a registered key set is unusable");
                return Ok(false);
            }
        };
        let check = keys.verify(jws, algs, assertion::MAX_ASSERTION_BYTES);
        match tokio::time::timeout(self.secretless.key_fetch_timeout, check).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(tessera_verifier::VerifyError::KeysUnavailable(_))) => {
                Err(CannotCheck("keys unavailable"))
            }
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(CannotCheck("key fetch timed out")),
        }
    }

    /// The JWT-bearer grant (RFC 7523 §2.1): find the trusts for the external token's issuer,
    /// check its signature with that issuer's keys, and take the first trust whose audience,
    /// times, subject and claims match. Returns the bound client, how the caller authenticated,
    /// the trust's name and the token's `iss` and `sub` (for the audit event). Client
    /// authentication is optional; when presented it must succeed and name the trust's client.
    async fn federate(
        &self,
        creds: &Presented<'_>,
        req: &TokenRequest,
        origin: &Origin,
    ) -> Result<Federated, OAuthError> {
        // RFC 7521 §4.1: client authentication is optional here. A `client_id` alone (what a
        // public client sends) identifies the caller; anything more must authenticate. Either
        // way the trust's client must be that client.
        let mut method = None;
        let caller: Option<ClientId> = if creds.any_authentication() {
            let (client, m) = self.authenticate_method(creds, origin).await?;
            method = Some(m);
            Some(client.id.clone())
        } else {
            match creds.client_id {
                Some(id) => Some(ClientId::parse(id).ok_or_else(|| {
                    OAuthError::new(ErrorCode::InvalidGrant, "the assertion is not accepted")
                })?),
                None => None,
            }
        };
        let jwt = req.assertion.as_deref().unwrap_or_default();
        let refuse = |reason: Refusal, iss: &str, trust: Option<&str>| {
            tracing::info!(
                target: "tessera::audit",
                event = "assertion_refused",
                reason = reason.as_str(),
                external_iss = iss,
                trust = trust.unwrap_or_default(),
                source = origin.source_ip(),
                "external identity token refused"
            );
            OAuthError::new(ErrorCode::InvalidGrant, "the assertion is not accepted")
        };
        let Some(peeked) = assertion::peek_claims(jwt) else {
            return Err(refuse(Refusal::Malformed, "", None));
        };
        let iss = assertion::string(&peeked, "iss")
            .unwrap_or_default()
            .to_owned();
        if self.registry.is_stale() {
            return Err(registry_unavailable());
        }
        let mut trusts = self.registry.trusts();
        if !trusts.iter().any(|t| t.covers(&peeked)) && self.registry.reread_trusts().await {
            trusts = self.registry.trusts();
        }
        let candidates: Vec<&Trust> = trusts.iter().filter(|t| t.covers(&peeked)).collect();
        if candidates.is_empty() {
            return Err(refuse(Refusal::UntrustedIssuer, &iss, None));
        }
        let now = self.clock.now();
        // Each key source is asked once, whatever the number of trusts sharing it.
        let mut verified: Vec<(KeySource, bool)> = Vec::new();
        let mut unavailable = false;
        let mut last = Refusal::Signature;
        let mut last_trust = None;
        for trust in candidates {
            let (source, key_use) = trust_key_source(trust);
            let signed = match verified.iter().find(|(s, _)| *s == source) {
                Some((_, ok)) => *ok,
                None => {
                    let ok = match self
                        .verify_signature(&source, key_use, jwt, &FEDERATED_ALGS)
                        .await
                    {
                        Ok(ok) => ok,
                        Err(CannotCheck(why)) => {
                            tracing::warn!(trust = %trust.name, why, "cannot check an external token");
                            unavailable = true;
                            false
                        }
                    };
                    verified.push((source, ok));
                    ok
                }
            };
            if !signed {
                continue;
            }
            // The signature covers the payload these claims were read from.
            let claims = &peeked;
            last_trust = Some(trust.name.clone());
            if let Err(r) = trust.check(claims, now) {
                last = r;
                continue;
            }
            let client = self
                .registry
                .find_client(&trust.client_id)
                .await
                .map_err(|_| registry_unavailable())?;
            let Some(client) = client.filter(|c| c.is_active(now)) else {
                last = Refusal::BoundClient;
                continue;
            };
            if caller.as_ref().is_some_and(|c| *c != client.id) {
                last = Refusal::BoundClient;
                continue;
            }
            let sub = assertion::string(claims, "sub")
                .unwrap_or_default()
                .to_owned();
            return Ok(Federated {
                client,
                method,
                trust: trust.name.clone(),
                iss,
                sub,
            });
        }
        if unavailable && verified.iter().all(|(_, ok)| !ok) {
            return Err(OAuthError::unavailable(
                "the issuer's keys cannot be fetched; retry shortly",
                5,
            ));
        }
        Err(refuse(last, &iss, last_trust.as_deref()))
    }

    /// Authenticate a client secret (Basic or in the body).
    async fn authenticate_secret(
        &self,
        creds: ClientCredentials,
        origin: &Origin,
    ) -> Result<Arc<Client>, OAuthError> {
        // RFC 6749 §5.2: a 401 after HTTP Basic carries `WWW-Authenticate: Basic`.
        let basic = creds.method == AuthMethod::ClientSecretBasic;
        let now = self.clock.now();
        if self.registry.is_stale() {
            return Err(registry_unavailable());
        }
        if self.registry.is_degraded() {
            // The database cannot be asked (a failover, say): serve what the snapshot can
            // answer, a known client whose secret is already verified; everything else would
            // need the database, and is "retry", never "wrong secret" (--max-stale).
            let known = self.registry.client(&creds.client_id);
            let verified = known.as_deref().and_then(|c| {
                self.credentials
                    .verify_cached(c, &creds.client_id, &creds.secret, now)
            });
            return match (known, verified) {
                (Some(c), Some(_)) => Ok(c),
                _ => Err(OAuthError::unavailable(
                    "this credential cannot be checked while the database is unreachable; retry shortly",
                    2,
                )),
            };
        }
        let mut client = self
            .registry
            .find_client(&creds.client_id)
            .await
            .map_err(|_| registry_unavailable())?;
        let mut outcome = self
            .credentials
            .verify(client.as_deref(), &creds.client_id, &creds.secret, now)
            .await;
        if let (Err(VerifyError::Rejected), Some(known)) = (&outcome, &client) {
            // The snapshot may predate a secret added by the CLI: re-read this client once.
            // A database that cannot be asked is "retry" (503), never "wrong secret": the
            // secret may be one made a moment ago.
            let reloaded = self
                .registry
                .reload_client(&known.id)
                .await
                .map_err(|_| registry_unavailable())?;
            if let Some(fresh) = reloaded {
                let changed = fresh.updated_at != known.updated_at
                    || fresh.secrets.len() != known.secrets.len();
                if changed {
                    outcome = self
                        .credentials
                        .verify(Some(&fresh), &creds.client_id, &creds.secret, now)
                        .await;
                }
                client = Some(fresh);
            }
        }
        match (outcome, client) {
            (Ok(_), Some(client)) => Ok(client),
            (Err(VerifyError::Busy), _) => Err(OAuthError::unavailable(
                "too many client authentications in progress; retry shortly",
                1,
            )),
            (Err(VerifyError::Throttled(wait)), client) => {
                crate::metrics::auth_failed(AuthFailure::Throttled, client.as_ref().map(|c| &c.id));
                tracing::info!(
                    target: "tessera::audit",
                    event = "client_auth_throttled",
                    client_id = %creds.client_id,
                    retry_after = wait,
                    source = origin.source_ip(),
                    "client authentication refused: failure budget used up"
                );
                Err(OAuthError {
                    too_many: true,
                    ..OAuthError::unavailable(
                        "too many failed authentications for this client; retry later",
                        wait,
                    )
                })
            }
            (_, client) => {
                self.credentials.record_failure(&creds.client_id);
                match &client {
                    Some(c) => crate::metrics::auth_failed(
                        AuthFailure::of_client(c, now, AuthFailure::BadSecret),
                        Some(&c.id),
                    ),
                    None => crate::metrics::auth_failed(AuthFailure::UnknownClient, None),
                }
                let reason = match &client {
                    None => "unknown client",
                    Some(c) if !c.enabled => "client disabled",
                    Some(_) => "wrong or expired secret",
                };
                tracing::info!(
                    target: "tessera::audit",
                    event = "client_auth_failed",
                    client_id = %creds.client_id,
                    method = creds.method.as_str(),
                    reason,
                    source = origin.source_ip(),
                    service = origin.service.as_deref().unwrap_or_default(),
                    "client authentication failed"
                );
                Err(OAuthError::invalid_client().with_basic_challenge(basic))
            }
        }
    }
}

/// What the JWT-bearer grant accepted.
struct Federated {
    /// The client the trust binds.
    client: Arc<Client>,
    /// How the caller authenticated, if it did.
    method: Option<AuthMethod>,
    /// The trust's name.
    trust: String,
    /// The external token's `iss`.
    iss: String,
    /// The external token's `sub`.
    sub: String,
}

/// The key source of a trust, and the key `use` it takes (SPIFFE bundles: `jwt-svid`).
fn trust_key_source(trust: &Trust) -> (KeySource, Option<&'static str>) {
    let key_use = match trust.issuer {
        TrustIssuer::SpiffeTrustDomain(_) => Some(crate::oauth::trust::SPIFFE_JWT_SVID_USE),
        TrustIssuer::Issuer(_) => None,
    };
    let source = match (&trust.keys, &trust.issuer) {
        (TrustKeys::Jwks(json), _) => KeySource::Static(json.clone()),
        (TrustKeys::JwksUri(url), _) => KeySource::JwksUrl(url.clone()),
        (TrustKeys::Discovery, TrustIssuer::Issuer(iss)) => KeySource::oidc_discovery(iss.clone()),
        // A SPIFFE trust always has a bundle (checked when it is added).
        (TrustKeys::Discovery, TrustIssuer::SpiffeTrustDomain(d)) => {
            KeySource::Static(format!("{{\"keys\":[],\"domain\":\"{d}\"}}"))
        }
    };
    (source, key_use)
}

/// 503 when the registry cannot ask its database: "retry", never "unknown client".
fn registry_unavailable() -> OAuthError {
    OAuthError::unavailable(
        "the client registry cannot reach its database; retry shortly",
        2,
    )
}
