//! The server's typed configuration, validated before anything starts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::keys::Alg;
use crate::secrets::VerifierLimits;

/// The issuer identifier (RFC 8414 §2): an `https` URL (or `http` for loopback and development)
/// without query or fragment. It appears in tokens and discovery exactly as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

/// A setting that does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The issuer is not an `https://` (or `http://`) URL.
    #[error("issuer '{0}' must start with https:// (or http://)")]
    IssuerScheme(String),
    /// The issuer URL has no host.
    #[error("issuer '{0}' has no host")]
    IssuerNoHost(String),
    /// The issuer URL has a query or fragment.
    #[error("issuer '{0}' must not have a query or fragment (RFC 8414 §2)")]
    IssuerQuery(String),
    /// The issuer URL has spaces or non-ASCII characters.
    #[error("issuer '{0}' contains spaces or non-ASCII characters")]
    IssuerCharacters(String),
    /// A plain-HTTP issuer on a listener other clients reach over a network.
    #[error(
        "refusing to start: the issuer {issuer} is plain HTTP and the server listens on {listen}, \
         which is not a loopback address, so clients would send their secrets over the network in \
         the clear. Serve HTTPS (--tls-cert and --tls-key), or set --issuer to the https:// URL \
         of the proxy that terminates TLS in front of Tessera, or, on a network you trust, pass \
         --insecure-http (TESSERA_INSECURE_HTTP=true)"
    )]
    InsecureHttp {
        /// The issuer.
        issuer: String,
        /// The address the server listens on.
        listen: SocketAddr,
    },
    /// The issuer cannot serve as the default token audience.
    #[error("the issuer is not a valid audience")]
    IssuerNotAnAudience,
}

impl Issuer {
    /// Validate an issuer URL.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| ConfigError::IssuerScheme(s.to_owned()))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(ConfigError::IssuerNoHost(s.to_owned()));
        }
        if s.contains('?') || s.contains('#') {
            return Err(ConfigError::IssuerQuery(s.to_owned()));
        }
        if s.bytes().any(|b| !(0x21..=0x7E).contains(&b)) {
            return Err(ConfigError::IssuerCharacters(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether the issuer is a plain `http://` URL.
    pub fn is_plain_http(&self) -> bool {
        self.0.starts_with("http://")
    }

    /// Refuse a plain-HTTP issuer on a server that listens on `listen`, a non-loopback address,
    /// unless `insecure_http` says the network is trusted: the issuer is where clients send
    /// their secrets.
    pub fn check_transport(
        &self,
        listen: SocketAddr,
        insecure_http: bool,
    ) -> Result<(), ConfigError> {
        if self.is_plain_http() && !listen.ip().is_loopback() && !insecure_http {
            return Err(ConfigError::InsecureHttp {
                issuer: self.0.clone(),
                listen,
            });
        }
        Ok(())
    }

    /// The issuer exactly as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An endpoint URL under the issuer.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.0.trim_end_matches('/'), path)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// The base64 value itself (`--master-key` / `TESSERA_MASTER_KEY`).
    Value(String),
    /// A key file, created with mode 0600 if missing.
    File(PathBuf),
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Everything `tessera serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The issuer; `None` means `http://<bound address>` (`https://` with `tls`).
    pub issuer: Option<Issuer>,
    /// `sqlite://…`.
    pub database_url: String,
    /// Algorithm for newly generated signing keys.
    pub signing_alg: Alg,
    /// The master key that seals signing keys.
    pub master_key: MasterKeySource,
    /// How often to look for changes made by the CLI or other replicas.
    pub refresh_interval: Duration,
    /// `max-age` of `/jwks.json`.
    pub jwks_max_age: u32,
    /// argon2id concurrency and cache bounds.
    pub verifier_limits: VerifierLimits,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The `typ` of access tokens by default (RFC 9068's `at+jwt` unless told otherwise).
    pub access_token_typ: crate::keys::TokenTyp,
    /// Audiences whose tokens carry `typ: JWT` whatever the default (resource servers, such as
    /// Spring Security's defaults, that refuse `at+jwt`).
    pub jwt_typ_audiences: Vec<crate::oauth::Audience>,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one IP address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Time allowed to send the whole request body, from the end of the head.
    pub body_timeout: Duration,
    /// Largest accepted request head (request line and headers), in bytes (≥ 8192).
    pub max_header_bytes: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Rotate the signing key when the active one has signed this long (None: never).
    pub key_rotation_interval: Option<Duration>,
    /// How long a replica keeps serving known clients from its snapshot while the database is
    /// unreachable.
    pub max_stale: Duration,
    /// Most clients held in memory; a larger registry is held in part, the others read from
    /// the database when they call (`--client-cache`).
    pub client_cache: usize,
    /// Tokens per minute for clients without their own quota (`None`: no limit).
    pub default_max_tokens_per_minute: Option<u32>,
    /// Longest `exp - iat` of a `private_key_jwt` client assertion.
    pub max_assertion_lifetime: Duration,
    /// Least time between two fetches of an external key set caused by an unknown `kid` or a
    /// failure (client `jwks_uri`s, trusted issuers).
    pub external_jwks_cooldown: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`, a listener of its own); `None`: no
    /// metrics at all (no recorder is installed).
    pub metrics_listen: Option<SocketAddr>,
    /// Also export per-client series, labelled `client_id` (one series per client and metric).
    pub metrics_per_client: bool,
    /// Serve HTTPS with this certificate and key, re-read when they change (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// Start with a plain `http://` issuer on a non-loopback address (`--insecure-http`).
    pub insecure_http: bool,
}

/// The PEM files of a listener's certificate chain (end-entity certificate first) and private
/// key (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_http_issuer_is_refused_off_loopback_unless_allowed() {
        let http = Issuer::parse("http://tessera:8080").unwrap();
        let https = Issuer::parse("https://tessera.example").unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let e = http.check_transport(any, false).unwrap_err();
        assert!(matches!(e, ConfigError::InsecureHttp { .. }));
        let text = e.to_string();
        assert!(
            text.contains("in the clear") && text.contains("--insecure-http"),
            "{text}"
        );
        assert!(http.check_transport(any, true).is_ok());
        assert!(http.check_transport(lo, false).is_ok());
        assert!(http.check_transport(lo6, false).is_ok());
        assert!(https.check_transport(any, false).is_ok());
    }
}
