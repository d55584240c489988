//! The verifier and its builder.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use crate::alg::Algorithm;
use crate::cache::{CachePolicy, JwksCache, KeyEntry, KeySet, Lookup, Source};
use crate::clock::{unix, Clock, SystemClock};
use crate::error::{ConfigError, InvalidToken, VerifyError};
use crate::fetch::Fetcher;
use crate::roles::{Shape, StringOrList};
use crate::token::{AccessToken, Audience, Scopes, Text};

/// Verifies access tokens. Cheap to clone; clones share the key cache.
///
/// One verifier trusts one issuer; [`Verifier::any_of`] makes one that trusts several, each with
/// its own audience, keys and settings.
#[derive(Clone)]
pub struct Verifier {
    kind: Kind,
    /// Revoked token ids to refuse (see [`Verifier::with_revocation_feed`]).
    #[cfg(feature = "reqwest")]
    revocations: Vec<(String, Arc<crate::revocation_feed::RevocationFeed>)>,
}

#[derive(Clone)]
enum Kind {
    One(Arc<Inner>),
    /// Several issuers, told apart by the token's `iss` (distinct, at least one).
    AnyOf(Arc<[Arc<Inner>]>),
}

struct Inner {
    issuer: String,
    /// `None`: any audience, only through [`Verifier::any_audience_builder`].
    audience: Option<String>,
    /// Also take `typ: JWT` (see [`VerifierBuilder::accept_typ_jwt`]).
    accept_typ_jwt: bool,
    /// Also take a header without `typ` (see [`VerifierBuilder::accept_missing_typ`]).
    accept_missing_typ: bool,
    /// Read `scp` when `scope` is absent (see [`VerifierBuilder::scopes_from_scp`]).
    scopes_from_scp: bool,
    /// Read `azp`, `appid`, `cid` when `client_id` is absent (see
    /// [`VerifierBuilder::client_id_from_azp`]).
    client_id_from_azp: bool,
    algorithms: Vec<Algorithm>,
    leeway: i64,
    max_token_bytes: usize,
    cache: Arc<JwksCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::One(inner) => inner.fmt(f),
            Kind::AnyOf(set) => f.debug_list().entries(set.iter()).finish(),
        }
    }
}

enum KeysFrom {
    Discovery,
    JwksUrl(String),
    Static(Vec<u8>),
}

/// Builds a [`Verifier`]. Issuer and audience are required and have no default.
pub struct VerifierBuilder {
    issuer: String,
    audience: Option<String>,
    accept_typ_jwt: bool,
    accept_missing_typ: bool,
    scopes_from_scp: bool,
    client_id_from_azp: bool,
    keys: KeysFrom,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_token_bytes: usize,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    fetcher: Option<Arc<dyn Fetcher>>,
}

/// The asymmetric algorithms Tessera signs with; the default allowlist.
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

impl VerifierBuilder {
    /// Keys come from the JWKS at `url` instead of discovery.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys = KeysFrom::JwksUrl(url.into());
        self
    }

    /// Keys are this fixed set, a JWKS document (`{"keys": [...]}`, RFC 7517 §5) as JSON (tests,
    /// air-gapped setups, an issuer checking its own tokens); nothing is ever fetched. A document
    /// that does not parse, or holds no usable public signing key, fails at
    /// [`VerifierBuilder::build`].
    pub fn static_jwks(mut self, jwks_json: impl AsRef<[u8]>) -> Self {
        self.keys = KeysFrom::Static(jwks_json.as_ref().to_vec());
        self
    }

    /// Also accept tokens whose header says `typ: JWT`, besides RFC 9068's `at+jwt`: for an
    /// issuer told to send `JWT` to this audience (Tessera's `--jwt-typ-audience`, for stacks
    /// such as Spring Security whose defaults refuse `at+jwt`). Off by default: `typ: at+jwt`
    /// is what keeps another kind of JWT from the same issuer (an ID token, say) from passing
    /// for an access token, and a verifier that takes `JWT` gives that protection up.
    pub fn accept_typ_jwt(mut self) -> Self {
        self.accept_typ_jwt = true;
        self
    }

    /// Also accept tokens whose header has no `typ` at all: Okta's access tokens, whose header
    /// is only `{"kid", "alg"}`. Off by default, and more permissive than
    /// [`VerifierBuilder::accept_typ_jwt`]: the issuer's ID tokens carry no `typ` either, so
    /// what keeps one from passing for an access token is then only the audience (an ID
    /// token's `aud` is the client id, never your API's audience) — use it with an issuer
    /// whose tokens for your audience are all access tokens.
    pub fn accept_missing_typ(mut self) -> Self {
        self.accept_missing_typ = true;
        self
    }

    /// Read the granted scopes from `scp` when the token has no `scope` claim: `scp` as one
    /// space-separated string (Entra ID) or as an array of strings (Okta, Ory Hydra). Off by
    /// default: RFC 9068 names `scope` only, and a verifier that reads a second claim trusts
    /// every issuer it accepts to use that claim for scopes. When a token has both, `scope`
    /// wins and `scp` is ignored. An `scp` of another shape grants nothing.
    pub fn scopes_from_scp(mut self) -> Self {
        self.scopes_from_scp = true;
        self
    }

    /// Name the calling client from `azp` (Keycloak, Auth0, Entra ID v2), else `appid` (Entra
    /// ID v1), else `cid` (Okta), when the token has no `client_id` claim (RFC 9068 §2.2).
    /// Without this — the default — a token without `client_id` is named by its `sub`.
    pub fn client_id_from_azp(mut self) -> Self {
        self.client_id_from_azp = true;
        self
    }

    /// Allowed algorithms (default RS256, ES256, EdDSA). [`Algorithm`] names asymmetric
    /// algorithms only: `none` and HS* cannot be allowed, since a verifier holding public keys
    /// must never accept a MAC keyed with one.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// Allowed clock skew for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Largest accepted token in bytes (default 8 KiB).
    pub fn max_token_bytes(mut self, n: usize) -> Self {
        self.max_token_bytes = n;
        self
    }

    /// Bounds applied to the issuer's `Cache-Control: max-age` (default 60 s ..= 1 h; 5 min when
    /// the issuer sends none).
    pub fn cache_ttl(mut self, min: Duration, max: Duration, default: Duration) -> Self {
        self.policy.min_ttl = min;
        self.policy.max_ttl = max.max(min);
        self.policy.default_ttl = default;
        self
    }

    /// Least time between two JWKS fetches caused by unknown `kid`s or failures (default 30 s).
    pub fn unknown_kid_cooldown(mut self, d: Duration) -> Self {
        self.policy.cooldown = d;
        self
    }

    /// How long the last good keys keep working while the issuer cannot be reached (default 1 h
    /// after the last successful fetch).
    pub fn max_staleness(mut self, d: Duration) -> Self {
        self.policy.max_staleness = d;
        self
    }

    /// Inject the clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Inject the fetcher (tests, custom HTTP stacks).
    pub fn fetcher(mut self, fetcher: Arc<dyn Fetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Check the settings and build. Nothing is fetched until the first verification (or
    /// [`Verifier::warm_up`]).
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let issuer_ok = (self.issuer.starts_with("https://") || self.issuer.starts_with("http://"))
            && self.issuer.len() > 8;
        if !issuer_ok {
            return Err(ConfigError::Issuer(self.issuer));
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::Audience);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::Algorithms("empty".into()));
        }
        let fetcher = || -> Result<Arc<dyn Fetcher>, ConfigError> {
            match &self.fetcher {
                Some(f) => Ok(f.clone()),
                #[cfg(feature = "reqwest")]
                None => Ok(Arc::new(
                    crate::fetch::ReqwestFetcher::new().map_err(|_| ConfigError::NoFetcher)?,
                )),
                #[cfg(not(feature = "reqwest"))]
                None => Err(ConfigError::NoFetcher),
            }
        };
        let (source, initial) = match self.keys {
            KeysFrom::Static(json) => {
                let jwks: JwkSet = crate::cache::parse_jwks(&json)
                    .map_err(|e| ConfigError::Jwks(format!("not a JWKS: {e}")))?;
                let mut set = KeySet::from_jwks(&jwks, None);
                if set.keys.is_empty() && set.unnamed.is_empty() {
                    return Err(ConfigError::Jwks("no usable public signing key".into()));
                }
                set.fetched_at = Some(self.clock.now());
                (Source::Static, set)
            }
            KeysFrom::JwksUrl(url) => (
                Source::Remote {
                    fetcher: fetcher()?,
                    jwks_url: Mutex::new(Some(url)),
                    discovery: None,
                },
                KeySet::empty(),
            ),
            KeysFrom::Discovery => {
                let metadata = tessera_proto::metadata_url(&self.issuer);
                (
                    Source::Remote {
                        fetcher: fetcher()?,
                        jwks_url: Mutex::new(None),
                        discovery: Some((self.issuer.clone(), metadata)),
                    },
                    KeySet::empty(),
                )
            }
        };
        // The key series carry the issuer this service trusts (its own configuration).
        let cache = JwksCache::new(
            source,
            initial,
            self.policy,
            None,
            self.clock.clone(),
            Some(&self.issuer),
        );
        Ok(Verifier {
            #[cfg(feature = "reqwest")]
            revocations: Vec::new(),
            kind: Kind::One(Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                accept_typ_jwt: self.accept_typ_jwt,
                accept_missing_typ: self.accept_missing_typ,
                scopes_from_scp: self.scopes_from_scp,
                client_id_from_azp: self.client_id_from_azp,
                algorithms: self.algorithms,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                max_token_bytes: self.max_token_bytes,
                cache,
                clock: self.clock,
            })),
        })
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    crit: Option<serde::de::IgnoredAny>,
}

/// What a header segment says. It is a function of the segment's text alone, and every token
/// signed with one key carries the same header byte for byte, so each thread keeps the answers
/// for the last few headers it parsed ([`HEADER_CACHE`]) and a stream of tokens parses its header
/// once.
struct HeaderFacts {
    /// `None`: not an algorithm this crate knows (so not allowed).
    alg: Option<Algorithm>,
    /// `typ` is `at+jwt` or `application/at+jwt` (RFC 9068 §2.1).
    typ_at_jwt: bool,
    /// `typ` is `JWT` (accepted only by a verifier told to: [`VerifierBuilder::accept_typ_jwt`]).
    typ_jwt: bool,
    /// No `typ` (accepted only by a verifier told to: [`VerifierBuilder::accept_missing_typ`]).
    typ_none: bool,
    crit: bool,
    kid: Option<Box<str>>,
}

/// How many distinct header segments each thread remembers (a key rotation has two in use).
const HEADER_CACHE: usize = 4;
/// Longer header segments are parsed every time rather than remembered.
const HEADER_CACHE_MAX_LEN: usize = 256;

thread_local! {
    static HEADERS: RefCell<HeaderCache> = RefCell::new(HeaderCache::default());
}

#[derive(Default)]
struct HeaderCache {
    entries: [Option<(Box<str>, Rc<HeaderFacts>)>; HEADER_CACHE],
    next: usize,
}

impl HeaderFacts {
    /// The facts of the base64url header segment `h64`, remembered or parsed.
    fn of(h64: &str) -> Result<Rc<HeaderFacts>, InvalidToken> {
        let known = HEADERS.with_borrow(|c| {
            c.entries
                .iter()
                .flatten()
                .find(|(seg, _)| **seg == *h64)
                .map(|(_, facts)| facts.clone())
        });
        if let Some(facts) = known {
            return Ok(facts);
        }
        let facts = Rc::new(Self::parse(h64)?);
        if h64.len() <= HEADER_CACHE_MAX_LEN {
            HEADERS.with_borrow_mut(|c| {
                let slot = c.next % HEADER_CACHE;
                c.entries[slot] = Some((h64.into(), facts.clone()));
                c.next = slot + 1;
            });
        }
        Ok(facts)
    }

    fn parse(h64: &str) -> Result<Self, InvalidToken> {
        let mut buf = [0u8; 512];
        let bytes = b64_decode(h64, &mut buf)?;
        let header: Header = serde_json::from_slice(&bytes).map_err(|_| InvalidToken::Malformed)?;
        Ok(Self {
            alg: header.alg.parse().ok(),
            typ_at_jwt: header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            }),
            typ_jwt: header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("JWT")),
            typ_none: header.typ.is_none(),
            crit: header.crit.is_some(),
            kid: header.kid.map(|k| k.into()),
        })
    }
}

/// The registered claims this crate checks, borrowed from the payload where possible (parsing
/// into a generic map would cost more than an RSA signature check).
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aud: Option<Aud<'a>>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
    // Other issuers' names for the scopes and the client, read only when the verifier is told
    // to; lenient (`scp` of an unexpected shape is not an error) so that a verifier that does
    // not read them accepts what it accepted before.
    #[serde(borrow)]
    scp: Option<StringOrList<'a>>,
    #[serde(borrow)]
    azp: Option<StringOrList<'a>>,
    #[serde(borrow)]
    appid: Option<StringOrList<'a>>,
    #[serde(borrow)]
    cid: Option<StringOrList<'a>>,
}

/// The one claim a [`Kind::AnyOf`] reads before it knows whose keys to check the signature
/// with.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
}

impl<'a> StringOrList<'a> {
    /// The string, if it is one.
    fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Shape::One(s) => Some(s),
            _ => None,
        }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
enum Aud<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

/// One array element of `aud`, borrowed from the claims text when it has no escapes.
#[derive(Deserialize)]
struct AudItem<'a>(#[serde(borrow)] Cow<'a, str>);

// By hand rather than `#[serde(untagged)]`, which buffers the value before trying each form.
impl<'de: 'a, 'a> Deserialize<'de> for Aud<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for AudVisitor<'a> {
            type Value = Aud<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Aud<'a>, E> {
                Ok(Aud::One(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Aud<'a>, E> {
                Ok(Aud::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Aud<'a>, A::Error> {
                let mut list = Vec::new();
                while let Some(AudItem(a)) = seq.next_element()? {
                    list.push(a);
                }
                Ok(Aud::Many(list))
            }
        }
        d.deserialize_any(AudVisitor(std::marker::PhantomData))
    }
}

/// RFC 7519 NumericDate: seconds, possibly fractional.
#[derive(Deserialize, Clone, Copy)]
#[serde(transparent)]
struct NumericDate(f64);

impl NumericDate {
    fn secs(self) -> i64 {
        self.0 as i64
    }
}

/// Why [`Verifier::verify_now`] stopped.
enum Stop {
    Failed(VerifyError),
    /// The key for this `kid` is not at hand: fetch keys (or wait for a fetch), then retry.
    NeedKeys(Option<String>),
}

impl From<VerifyError> for Stop {
    fn from(e: VerifyError) -> Self {
        Stop::Failed(e)
    }
}

impl From<InvalidToken> for Stop {
    fn from(e: InvalidToken) -> Self {
        Stop::Failed(e.into())
    }
}

/// Decode base64url (no padding) into `buf` when it fits, else onto the heap.
fn b64_decode<'b>(s: &str, buf: &'b mut [u8]) -> Result<Cow<'b, [u8]>, InvalidToken> {
    if base64::decoded_len_estimate(s.len()) <= buf.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(s, buf)
            .map_err(|_| InvalidToken::Malformed)?;
        Ok(Cow::Borrowed(&buf[..n]))
    } else {
        URL_SAFE_NO_PAD
            .decode(s)
            .map(Cow::Owned)
            .map_err(|_| InvalidToken::Malformed)
    }
}

impl Verifier {
    /// Start building a verifier for tokens from `issuer` meant for `audience`. By default keys
    /// come from discovery (`{issuer}/.well-known/oauth-authorization-server`).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        Self::builder_with(issuer.into(), Some(audience.into()))
    }

    /// Start building a verifier that accepts `issuer`'s tokens for **any** audience. This is
    /// for the issuer itself (Tessera's introspection and revocation endpoints check tokens it
    /// issued, whoever they were meant for); a resource service must use
    /// [`Verifier::builder`], or it would accept tokens meant for other services.
    pub fn any_audience_builder(issuer: impl Into<String>) -> VerifierBuilder {
        Self::builder_with(issuer.into(), None)
    }

    fn builder_with(issuer: String, audience: Option<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer,
            audience,
            accept_typ_jwt: false,
            accept_missing_typ: false,
            scopes_from_scp: false,
            client_id_from_azp: false,
            keys: KeysFrom::Discovery,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            policy: CachePolicy {
                min_ttl: Duration::from_secs(60),
                max_ttl: Duration::from_secs(3600),
                default_ttl: Duration::from_secs(300),
                cooldown: Duration::from_secs(30),
                max_staleness: Duration::from_secs(3600),
            },
            clock: Arc::new(SystemClock),
            fetcher: None,
        }
    }

    /// A verifier that trusts each of `verifiers`' issuers, each with its own audience, keys and
    /// settings (one built for Tessera, one with [`VerifierBuilder::accept_typ_jwt`] and
    /// [`VerifierBuilder::scopes_from_scp`] for Entra ID, say).
    ///
    /// A token is checked by the member whose issuer its `iss` names exactly; that `iss` is read
    /// before the signature is checked, but it only chooses which issuer's keys and rules the
    /// token must then fully meet, `iss` included, so a forged `iss` gains nothing. A token
    /// naming none of the issuers is [`InvalidToken::WrongIssuer`]. Sets nest (their members
    /// are taken). No verifier, or two for one issuer, is a [`ConfigError`].
    pub fn any_of(verifiers: impl IntoIterator<Item = Verifier>) -> Result<Verifier, ConfigError> {
        let mut members: Vec<Arc<Inner>> = Vec::new();
        #[cfg(feature = "reqwest")]
        let mut revocations = Vec::new();
        for v in verifiers {
            // Each member keeps its own issuer's feed.
            #[cfg(feature = "reqwest")]
            revocations.extend(v.revocations);
            let list = match v.kind {
                Kind::One(inner) => vec![inner],
                Kind::AnyOf(set) => set.to_vec(),
            };
            for inner in list {
                if members.iter().any(|m| m.issuer == inner.issuer) {
                    return Err(ConfigError::DuplicateIssuer(inner.issuer.clone()));
                }
                members.push(inner);
            }
        }
        if members.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        Ok(Verifier {
            #[cfg(feature = "reqwest")]
            revocations,
            kind: Kind::AnyOf(members.into()),
        })
    }

    fn members(&self) -> &[Arc<Inner>] {
        match &self.kind {
            Kind::One(inner) => std::slice::from_ref(inner),
            Kind::AnyOf(set) => set,
        }
    }

    /// The configured issuer (for [`Verifier::any_of`], the first one's: see
    /// [`Verifier::issuers`]).
    pub fn issuer(&self) -> &str {
        self.members().first().map_or("", |m| m.issuer.as_str())
    }

    /// Every issuer this verifier trusts (one, unless built by [`Verifier::any_of`]).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.members().iter().map(|m| m.issuer.as_str())
    }

    /// Fetch the keys now rather than at the first verification (every issuer's, for
    /// [`Verifier::any_of`]; the first failure is returned).
    pub async fn warm_up(&self) -> Result<(), VerifyError> {
        for m in self.members() {
            m.cache
                .usable_keys()
                .await
                .map_err(VerifyError::KeysUnavailable)?;
        }
        Ok(())
    }

    /// How many times discovery/JWKS fetches ran (metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.members().iter().map(|m| m.cache.fetch_count()).sum()
    }

    /// Also refuse tokens on Tessera's revocation feed (401 `invalid_token`), and, in the feed's
    /// strict mode, every token while the feed is stale (503). Start the feed's poller with
    /// [`crate::RevocationFeed::spawn`].
    #[cfg(feature = "reqwest")]
    pub fn with_revocation_feed(
        mut self,
        feed: Arc<crate::revocation_feed::RevocationFeed>,
    ) -> Self {
        // The feed is its issuer's: on a set of issuers, give it to the Tessera member before
        // `Verifier::any_of` (here it covers every member).
        let issuers: Vec<String> = self.members().iter().map(|m| m.issuer.clone()).collect();
        for issuer in issuers {
            self.revocations.push((issuer, feed.clone()));
        }
        self
    }

    /// Verify a compact JWS access token. Checks, in order: size, header (`alg` allowlisted,
    /// `typ` = `at+jwt`, no `crit`), the key named by `kid` (whose type and `alg` must match),
    /// the signature, then `iss`, `aud`, `exp`, `nbf` and `iat` against the injected clock.
    /// `jku`, `x5u` and `jwk` header parameters are never used.
    pub async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        self.verify_from(token, None).await
    }

    /// [`Verifier::verify`], naming in the audit events (target `tessera_verifier::audit`,
    /// field `service`) the service the caller says it is (its `X-Service-Name`).
    pub(crate) async fn verify_from(
        &self,
        token: &str,
        service: Option<&str>,
    ) -> Result<AccessToken, VerifyError> {
        let result = match &self.kind {
            Kind::One(inner) => inner.verify_inner(token).await,
            Kind::AnyOf(set) => match pick(set, token) {
                Ok(inner) => inner.verify_inner(token).await,
                Err(e) => Err(e.into()),
            },
        };
        #[cfg(feature = "reqwest")]
        let result = match result {
            Ok(at) if !self.revocations.is_empty() => {
                // The feed of the issuer that verified the token (each issuer's own).
                let issuer = match &self.kind {
                    Kind::One(inner) => Some(inner.issuer.as_str()),
                    Kind::AnyOf(set) => pick(set, token).ok().map(|m| m.issuer.as_str()),
                };
                match self
                    .revocations
                    .iter()
                    .find(|(i, _)| Some(i.as_str()) == issuer)
                {
                    Some((_, feed)) => feed.check(at.jti()).map(|()| at),
                    None => Ok(at),
                }
            }
            other => other,
        };
        crate::metrics::verified(&result);
        match &result {
            Ok(at) => {
                tracing::debug!(target: "tessera_verifier::audit", client_id = %at.client_id(), service, "token accepted")
            }
            Err(e) => {
                tracing::info!(target: "tessera_verifier::audit", reason = %e, service, "token rejected")
            }
        }
        result
    }
}

/// The member of a set whose issuer the token's (not yet verified) `iss` names.
fn pick<'s>(set: &'s [Arc<Inner>], token: &str) -> Result<&'s Arc<Inner>, InvalidToken> {
    let max = set.iter().map(|m| m.max_token_bytes).max().unwrap_or(0);
    if token.len() > max {
        return Err(InvalidToken::TooLarge);
    }
    let mut segments = token.split('.');
    let p64 = match (segments.next(), segments.next()) {
        (Some(_), Some(p)) => p,
        _ => return Err(InvalidToken::Malformed),
    };
    let mut buf = [0u8; 1024];
    let payload = b64_decode(p64, &mut buf)?;
    let peek: Peek<'_> = serde_json::from_slice(&payload).map_err(|_| InvalidToken::Malformed)?;
    let iss = peek.iss.ok_or(InvalidToken::WrongIssuer)?;
    set.iter()
        .find(|m| m.issuer == *iss)
        .ok_or(InvalidToken::WrongIssuer)
}

impl Inner {
    async fn verify_inner(&self, token: &str) -> Result<AccessToken, VerifyError> {
        // The usual case, keys at hand, never waits, so the decoding buffers stay on the stack
        // of a plain call instead of living in this future.
        let kid = match self.verify_now(token, None) {
            Ok(at) => return Ok(at),
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::NeedKeys(kid)) => kid,
        };
        let entry = match self.cache.lookup(kid.as_deref()).await {
            Lookup::Found(e) => e,
            Lookup::Unknown => return Err(InvalidToken::UnknownKey.into()),
            Lookup::Unavailable(e) => return Err(VerifyError::KeysUnavailable(e)),
        };
        self.verify_now(token, Some(entry))
            .map_err(|stop| match stop {
                Stop::Failed(e) => e,
                Stop::NeedKeys(_) => InvalidToken::UnknownKey.into(),
            })
    }

    /// Verify with `key`, or with the cached key the token's `kid` names; stop with
    /// [`Stop::NeedKeys`] when that needs a fetch first.
    fn verify_now(&self, token: &str, key: Option<Arc<KeyEntry>>) -> Result<AccessToken, Stop> {
        let inner = self;
        if token.len() > inner.max_token_bytes {
            return Err(InvalidToken::TooLarge.into());
        }
        // Compact JWS: header.payload.signature. A fourth segment leaves a '.' in the third,
        // which base64url decoding rejects.
        let bytes = token.as_bytes();
        let dot1 = memchr::memchr(b'.', bytes).ok_or(InvalidToken::Malformed)?;
        let dot2 =
            memchr::memchr(b'.', &bytes[dot1 + 1..]).ok_or(InvalidToken::Malformed)? + dot1 + 1;
        // '.' is ASCII, so these are char boundaries.
        let (h64, p64, sig64) = (&token[..dot1], &token[dot1 + 1..dot2], &token[dot2 + 1..]);
        // The signature covers the first two segments exactly as received (RFC 7515 §5.2).
        let signing_input = &token[..dot2];
        // Header, signature and payload are decoded into stack buffers when they fit (tokens
        // of any usual size): no allocation on the way to the signature check.
        // 1026: the decoder's size estimate for an RSA-8192 signature (1024 bytes).
        let mut sig_buf = [0u8; 1026];
        let sig = b64_decode(sig64, &mut sig_buf)?;
        let header = HeaderFacts::of(h64)?;
        let alg = header.alg.ok_or(InvalidToken::AlgorithmNotAllowed)?;
        if !inner.algorithms.contains(&alg) {
            return Err(InvalidToken::AlgorithmNotAllowed.into());
        }
        if !(header.typ_at_jwt
            || (inner.accept_typ_jwt && header.typ_jwt)
            || (inner.accept_missing_typ && header.typ_none))
        {
            return Err(InvalidToken::WrongType.into());
        }
        if header.crit {
            return Err(InvalidToken::CriticalHeader.into());
        }
        let kid = header.kid.as_deref();
        let Some(entry) = key.or_else(|| inner.cache.lookup_now(kid)) else {
            return Err(Stop::NeedKeys(kid.map(str::to_owned)));
        };
        let key = entry.for_alg(alg).ok_or(InvalidToken::KeyMismatch)?;
        key.verify_sig(signing_input.as_bytes(), &sig)
            .map_err(|_| InvalidToken::BadSignature)?;
        let mut buf = [0u8; 1024];
        let payload = b64_decode(p64, &mut buf)?;
        let text = std::str::from_utf8(&payload).map_err(|_| InvalidToken::Malformed)?;
        let claims: Registered<'_> =
            serde_json::from_str(text).map_err(|_| InvalidToken::Malformed)?;
        Ok(self.check_claims(claims, text)?)
    }

    fn check_claims(&self, c: Registered<'_>, raw: &str) -> Result<AccessToken, VerifyError> {
        let inner = self;
        let now = unix(inner.clock.now());
        if c.iss.as_deref() != Some(inner.issuer.as_str()) {
            return Err(InvalidToken::WrongIssuer.into());
        }
        let aud_ok = match (&c.aud, inner.audience.as_deref()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(Aud::One(a)), Some(want)) => *a == want,
            (Some(Aud::Many(list)), Some(want)) => list.iter().any(|a| *a == want),
        };
        if !aud_ok {
            return Err(InvalidToken::WrongAudience.into());
        }
        let exp = c.exp.ok_or(InvalidToken::MissingExpiry)?.secs();
        if now >= exp.saturating_add(inner.leeway) {
            return Err(InvalidToken::Expired.into());
        }
        if c.nbf
            .is_some_and(|nbf| nbf.secs() > now.saturating_add(inner.leeway))
        {
            return Err(InvalidToken::NotYetValid.into());
        }
        let iat = c.iat.map(NumericDate::secs);
        if iat.is_some_and(|iat| iat > now.saturating_add(inner.leeway)) {
            return Err(InvalidToken::NotYetValid.into());
        }
        let text = |v: &str| Text::of(v, raw);
        let subject = c.sub.as_deref().map(text);
        let foreign_client = || {
            [&c.azp, &c.appid, &c.cid]
                .into_iter()
                .find_map(|claim| claim.as_ref().and_then(StringOrList::as_str))
                .filter(|_| inner.client_id_from_azp)
        };
        let client_id = match c.client_id.as_deref().or_else(foreign_client) {
            Some(id) => text(id),
            None => subject.clone().unwrap_or(Text::Owned("".into())),
        };
        let scope = match (c.scope.as_deref(), &c.scp) {
            (Some(s), _) => Scopes::Joined(text(s)),
            (None, Some(StringOrList(scp))) if inner.scopes_from_scp => match scp {
                Shape::One(s) => Scopes::Joined(text(s)),
                Shape::Many(list) => Scopes::List(list.iter().map(|s| text(s)).collect()),
                Shape::Other => Scopes::None,
            },
            _ => Scopes::None,
        };
        let audience = match &c.aud {
            Some(Aud::One(a)) => Audience::One(text(a)),
            Some(Aud::Many(list)) => Audience::Many(list.iter().map(|a| text(a)).collect()),
            None => Audience::Many(Box::new([])),
        };
        Ok(AccessToken {
            client_id,
            subject,
            scope,
            audience,
            expires_at: exp,
            issued_at: iat,
            jti: c.jti.as_deref().map(text),
            raw: Arc::from(raw),
        })
    }
}
