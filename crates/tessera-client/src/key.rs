//! Private keys for `private_key_jwt` client authentication (RFC 7523 §2.2): parsed from PKCS#8
//! once, then signing one short-lived JWT per token request. Keys can also be generated here and
//! their public JWK rendered, so an operator can make a key pair with the `tessera` binary itself.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use crate::KeyError;

/// The JWS algorithm a [`PrivateKey`] signs with, fixed by the key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlg {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4); the signature is r ‖ s.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 bits or more.
    Rs256,
}

impl KeyAlg {
    /// The JOSE `alg` name: `ES256`, `EdDSA` or `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlg {
    type Err = KeyError;

    /// The JOSE name, in any case (`ES256`, `es256`, `EdDSA`, `RS256`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Es256, Self::EdDsa, Self::Rs256]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| KeyError::UnknownAlg { name: s.to_owned() })
    }
}

enum Pair {
    Ec(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

impl Pair {
    /// The RFC 7638 thumbprint of the public key.
    fn thumbprint(&self) -> String {
        // serde_json's map is sorted (no `preserve_order`), so this is RFC 7638's canonical
        // form: required members only, in lexicographic order, no whitespace.
        let canonical = serde_json::Value::Object(self.required_members()).to_string();
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The public members RFC 7638 §3.2 requires for the key's type.
    fn required_members(&self) -> serde_json::Map<String, serde_json::Value> {
        let b64 = |b: &[u8]| serde_json::Value::String(URL_SAFE_NO_PAD.encode(b));
        let mut m = serde_json::Map::new();
        match self {
            Self::Ec(k) => {
                // Uncompressed SEC1 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
                let point = k.public_key().as_ref();
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), "P-256".into());
                m.insert("x".into(), b64(point.get(1..33).unwrap_or_default()));
                m.insert("y".into(), b64(point.get(33..65).unwrap_or_default()));
            }
            Self::Ed(k) => {
                m.insert("kty".into(), "OKP".into());
                m.insert("crv".into(), "Ed25519".into());
                m.insert("x".into(), b64(k.public_key().as_ref()));
            }
            Self::Rsa(k) => {
                let pk = k.public_key();
                m.insert("kty".into(), "RSA".into());
                m.insert(
                    "n".into(),
                    b64(pk.modulus().big_endian_without_leading_zero()),
                );
                m.insert(
                    "e".into(),
                    b64(pk.exponent().big_endian_without_leading_zero()),
                );
            }
        }
        m
    }
}

struct Parsed {
    alg: KeyAlg,
    kid: Option<String>,
    pair: Pair,
    /// base64url of the JWS header: the same for every assertion, so encoded once.
    header: String,
}

/// A private key that signs client assertions. Parsed once (parsing costs far more than
/// signing); cheap to clone. `Debug` shows the algorithm and key id, never the key.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<Parsed>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl PrivateKey {
    /// Parse an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as
    /// `openssl genpkey` and `tessera keypair` write them. The type — P-256 (ES256), Ed25519
    /// (EdDSA) or RSA (RS256) — is found from the key. `kid` goes into each assertion's header
    /// so the server can pick the matching public key; without one the server tries them all.
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(&pem_body(pem)?, kid)
    }

    /// Parse an unencrypted PKCS#8 private key in DER; see [`PrivateKey::from_pem`].
    pub fn from_pkcs8_der(der: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        // Each parser checks the key's algorithm identifier (and the EC parser its curve), so
        // trying them in turn cannot take one type of key for another.
        let (alg, pair) = if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8(der) {
            (KeyAlg::EdDsa, Pair::Ed(k))
        } else if let Ok(k) =
            signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            (KeyAlg::Es256, Pair::Ec(k))
        } else if let Ok(k) = signature::RsaKeyPair::from_pkcs8(der) {
            (KeyAlg::Rs256, Pair::Rsa(k))
        } else {
            return Err(KeyError::Unsupported);
        };
        Ok(Self::new(alg, pair, kid))
    }

    /// Generate a new key. Without `kid`, the key id is the RFC 7638 thumbprint of the public
    /// key, which stays the same wherever the key is published.
    pub fn generate(alg: KeyAlg, kid: Option<String>) -> Result<Self, KeyError> {
        let fail = |_| KeyError::Crypto {
            alg,
            what: "generating",
        };
        let pair = match alg {
            KeyAlg::Es256 => Pair::Ec(
                signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(fail)?,
            ),
            KeyAlg::EdDsa => Pair::Ed(signature::Ed25519KeyPair::generate().map_err(fail)?),
            KeyAlg::Rs256 => Pair::Rsa(
                signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(fail)?,
            ),
        };
        let kid = kid.unwrap_or_else(|| pair.thumbprint());
        Ok(Self::new(alg, pair, Some(kid)))
    }

    fn new(alg: KeyAlg, pair: Pair, kid: Option<String>) -> Self {
        let kid = kid.filter(|k| !k.is_empty());
        let header = match &kid {
            Some(kid) => serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid}),
            None => serde_json::json!({"alg": alg.as_str(), "typ": "JWT"}),
        };
        Self {
            inner: Arc::new(Parsed {
                alg,
                kid,
                pair,
                header: URL_SAFE_NO_PAD.encode(header.to_string()),
            }),
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> KeyAlg {
        self.inner.alg
    }

    /// The key id put in assertion headers, if any.
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The RFC 7638 JWK thumbprint (base64url SHA-256 of the required public members, sorted).
    pub fn thumbprint(&self) -> String {
        self.inner.pair.thumbprint()
    }

    /// The public JWK (RFC 7517) to register with the server: `kty` and the key members
    /// (`crv`/`x`/`y` or `n`/`e`), with `alg`, `use: sig` and `kid` when there is one.
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = self.inner.pair.required_members();
        jwk.insert("alg".into(), self.inner.alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        if let Some(kid) = &self.inner.kid {
            jwk.insert("kid".into(), kid.as_str().into());
        }
        serde_json::Value::Object(jwk)
    }

    /// The private key as PKCS#8 v1 PEM, for [`PrivateKey::from_pem`] and OpenSSL. This is the
    /// secret: write it to a file only the caller can read, and never log it.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let alg = self.inner.alg;
        let fail = |_| KeyError::Crypto {
            alg,
            what: "serializing",
        };
        let der: Vec<u8> = match &self.inner.pair {
            Pair::Ec(k) => k.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
            Pair::Ed(k) => k.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
            Pair::Rsa(k) => k.as_der().map_err(fail)?.as_ref().to_vec(),
        };
        let body = STANDARD.encode(der);
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        // RFC 7468 §2: 64 characters a line. base64 is ASCII, so byte chunks are whole chars.
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        Ok(pem)
    }

    /// A compact JWS of `claims`, signed with this key.
    pub(crate) fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let p = &*self.inner;
        let mut out = p.header.clone();
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        let fail = |_| KeyError::Crypto {
            alg: p.alg,
            what: "signing",
        };
        let rng = SystemRandom::new();
        let sig = match &p.pair {
            Pair::Ec(k) => k
                .sign(&rng, out.as_bytes())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            Pair::Ed(k) => k.sign(out.as_bytes()).as_ref().to_vec(),
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, out.as_bytes(), &mut sig)
                    .map_err(fail)?;
                sig
            }
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

/// The DER inside the first PEM block, which must be an unencrypted PKCS#8 `PRIVATE KEY`.
fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    let no_block = KeyError::Pem {
        reason: "no -----BEGIN PRIVATE KEY----- block",
    };
    let start = pem.find("-----BEGIN ").ok_or(no_block)?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or(KeyError::Pem {
        reason: "unterminated BEGIN line",
    })?;
    let label = &rest[..label_end];
    if label != PEM_LABEL {
        return Err(KeyError::NotPkcs8 {
            label: label.to_owned(),
        });
    }
    let body = &rest[label_end + "-----".len()..];
    let end = body.find("-----END ").ok_or(KeyError::Pem {
        reason: "no END line",
    })?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    // The decoder's error would quote a character of the key; say only what is wrong.
    STANDARD.decode(b64).map_err(|_| KeyError::Pem {
        reason: "the body is not base64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::UnparsedPublicKey;

    const ALL: [KeyAlg; 3] = [KeyAlg::Es256, KeyAlg::EdDsa, KeyAlg::Rs256];

    fn verify(key: &PrivateKey, jws: &str) {
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let pair = &key.inner.pair;
        let result = match pair {
            Pair::Ec(k) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                    .verify(input.as_bytes(), &sig)
            }
            Pair::Ed(k) => UnparsedPublicKey::new(&signature::ED25519, k.public_key().as_ref())
                .verify(input.as_bytes(), &sig),
            Pair::Rsa(k) => UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                k.public_key().as_ref(),
            )
            .verify(input.as_bytes(), &sig),
        };
        result.unwrap();
    }

    #[test]
    fn generated_keys_round_trip_through_pem_and_sign() {
        for alg in ALL {
            let key = PrivateKey::generate(alg, None).unwrap();
            assert_eq!(key.kid(), Some(key.thumbprint().as_str()));
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let parsed = PrivateKey::from_pem(&pem, Some("k1".into())).unwrap();
            assert_eq!(parsed.alg(), alg);
            assert_eq!(parsed.thumbprint(), key.thumbprint());
            let jws = parsed.sign_jwt(&serde_json::json!({"sub": "x"})).unwrap();
            let header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(jws.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(
                header,
                serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": "k1"})
            );
            verify(&parsed, &jws);
        }
    }

    #[test]
    fn public_jwk_has_the_members_of_its_type() {
        let ec = PrivateKey::generate(KeyAlg::Es256, Some("ec".into())).unwrap();
        let jwk = ec.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            (&jwk["alg"], &jwk["use"], &jwk["kid"]),
            (&"ES256".into(), &"sig".into(), &"ec".into())
        );
        assert!(jwk.get("d").is_none());
        let rsa = PrivateKey::generate(KeyAlg::Rs256, None)
            .unwrap()
            .public_jwk();
        assert_eq!(rsa["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(rsa["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        let ed = PrivateKey::generate(KeyAlg::EdDsa, None)
            .unwrap()
            .public_jwk();
        assert_eq!((&ed["kty"], &ed["crv"]), (&"OKP".into(), &"Ed25519".into()));
    }

    #[test]
    fn no_kid_means_no_kid_header() {
        let pem = PrivateKey::generate(KeyAlg::EdDsa, None)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        let key = PrivateKey::from_pem(&pem, None).unwrap();
        assert_eq!(key.kid(), None);
        let jws = key.sign_jwt(&serde_json::json!({})).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(jws.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"EdDSA","typ":"JWT"}"#);
    }

    #[test]
    fn debug_redacts_the_key() {
        for alg in ALL {
            let key = PrivateKey::generate(alg, Some("k".into())).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let body: String = pem.lines().nth(1).unwrap().to_owned();
            let shown = format!("{key:?}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(!shown.contains(&body[..20]), "{shown}");
            // aws-lc's own Debug prints the public key; ours prints no key bytes at all.
            assert!(!shown.contains("public_key"), "{shown}");
        }
    }

    /// Throwaway keys made by `openssl genpkey` (test fixtures only), to prove keys we did not
    /// generate ourselves parse: OpenSSL's P-256 PKCS#8 embeds the public key, its Ed25519 is
    /// PKCS#8 v1.
    const OPENSSL_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUdEcA9VbNlns+Iar
18L4kkd910NBWrwaH5KALqEkQQehRANCAASgN0/9faGZ4B1ZnLEyYO+W1Rfq0yCT
TZSjowREYVtyaLqYC6O2rwHv+PqaKLb7gnnjS/97MkTXCM+OGn1gWhO+
-----END PRIVATE KEY-----
";
    const OPENSSL_ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIO5HDIExU7z02LctG34qUaulIC3ydEnv0ZT2MzBT61j/
-----END PRIVATE KEY-----
";
    const OPENSSL_P384: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCNBodEmlNDYmSNmrpx
ZBh4uDMmeyQIIBNbp3migO09AU8V/jihRSuLk+5jVJnQJgGhZANiAAQbWnlJJwyd
lRkwUts0Hb/CcU5Vro/sgRC7qARWeHsVxmvaI53g/jhPCCpfGZZFd0bgRNe+jPoC
HBmWyFafeeeeq9ONMXn1jcd3qgWRQpF4Rn0TDm1iBhzGZRf2z8IF0KQ=
-----END PRIVATE KEY-----
";

    #[test]
    fn parses_openssl_keys_by_type() {
        for (pem, alg) in [
            (OPENSSL_P256, KeyAlg::Es256),
            (OPENSSL_ED25519, KeyAlg::EdDsa),
        ] {
            let key = PrivateKey::from_pem(pem, None).unwrap();
            assert_eq!(key.alg(), alg);
            verify(
                &key,
                &key.sign_jwt(&serde_json::json!({"sub": "x"})).unwrap(),
            );
        }
        // P-384 is PKCS#8 EC too, but ES256 is P-256 only.
        assert!(matches!(
            PrivateKey::from_pem(OPENSSL_P384, None),
            Err(KeyError::Unsupported)
        ));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        type Expect = fn(&KeyError) -> bool;
        let cases: [(&str, Expect); 5] = [
            ("", |e| matches!(e, KeyError::Pem { .. })),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                |e| matches!(e, KeyError::NotPkcs8 { label } if label == "RSA PRIVATE KEY"),
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                |e| matches!(e, KeyError::Pem { .. }),
            ),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n", |e| {
                matches!(e, KeyError::Pem { .. })
            }),
            (
                "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
                |e| matches!(e, KeyError::Unsupported),
            ),
        ];
        for (pem, expected) in cases {
            let err = PrivateKey::from_pem(pem, None).unwrap_err();
            assert!(expected(&err), "{pem:?}: {err:?}");
        }
    }

    #[test]
    fn alg_names_parse() {
        assert_eq!("ES256".parse::<KeyAlg>().unwrap(), KeyAlg::Es256);
        assert_eq!("eddsa".parse::<KeyAlg>().unwrap(), KeyAlg::EdDsa);
        assert_eq!("RS256".parse::<KeyAlg>().unwrap(), KeyAlg::Rs256);
        assert!(matches!(
            "HS256".parse::<KeyAlg>(),
            Err(KeyError::UnknownAlg { .. })
        ));
    }
}
