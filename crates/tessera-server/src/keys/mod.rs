//! Signing keys: generation, JWK publication, JWS signing, and encryption at rest.

mod jwk;
pub mod lifecycle;
mod master;
mod ring;
mod signer;

use std::fmt;
use std::str::FromStr;

pub use jwk::{jwk_thumbprint, Jwk};
pub use master::{MasterKey, MasterKeyError};
pub use ring::{active_key, KeyRing, KeyRingError, KeyState, StoredKey};
pub use signer::{SignError, Signer, TokenTyp};

/// The signing algorithms Tessera issues tokens with (all asymmetric: a verifier only ever holds
/// public keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys. The most widely supported.
    Rs256,
    /// ECDSA P-256 with SHA-256. ~20x faster to sign than RS256.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// All supported algorithms.
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name Tessera does not sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm '{0}' (use RS256, ES256 or EdDSA)")]
pub struct UnknownAlg(pub String);

impl FromStr for Alg {
    type Err = UnknownAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(UnknownAlg(other.to_owned())),
        }
    }
}

/// A key id: the RFC 7638 JWK thumbprint of the public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kid(String);

impl Kid {
    /// Wrap a key id (a thumbprint computed here, or one read back from the store).
    pub fn new(kid: String) -> Self {
        Self(kid)
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A newly generated key pair: the PKCS#8 private key (to encrypt and store) and its public JWK.
pub struct GeneratedKey {
    /// Key id (JWK thumbprint).
    pub kid: Kid,
    /// Algorithm.
    pub alg: Alg,
    /// PKCS#8 v1 DER of the private key. Never stored unencrypted, never logged.
    pub pkcs8: Vec<u8>,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub public_jwk: Jwk,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Generate a key pair for `alg`.
pub fn generate(alg: Alg) -> Result<GeneratedKey, SignError> {
    let pkcs8 = signer::generate_pkcs8(alg)?;
    let signer = Signer::from_pkcs8(alg, Kid::new(String::new()), &pkcs8)?;
    let mut public_jwk = signer.public_jwk();
    let kid = Kid::new(jwk_thumbprint(&public_jwk));
    public_jwk.kid = Some(kid.as_str().to_owned());
    Ok(GeneratedKey {
        kid,
        alg,
        pkcs8,
        public_jwk,
    })
}
