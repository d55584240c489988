//! JWS compact signing with aws-lc-rs keys parsed once.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::keys::{Alg, Jwk, Kid};

/// Key generation, parsing or signing failed inside aws-lc.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Generating a key pair failed (`what` names the step).
    #[error("generating a {alg} key failed ({what})")]
    Generate {
        /// The algorithm.
        alg: Alg,
        /// The step that failed.
        what: &'static str,
    },
    /// aws-lc refused a stored private key.
    #[error("{alg} key rejected: {reason}")]
    Rejected {
        /// The algorithm.
        alg: Alg,
        /// aws-lc's reason.
        reason: String,
    },
    /// Computing a signature failed.
    #[error("signing failed")]
    Sign,
}

enum KeyPair {
    Rsa(signature::RsaKeyPair),
    Ec(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
}

/// The JOSE `typ` an access token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenTyp {
    /// `at+jwt`, RFC 9068 §2.1 (the default): a resource server that checks it can never take
    /// another kind of JWT for an access token.
    #[default]
    AtJwt,
    /// `JWT`, for resource servers whose defaults refuse `at+jwt` (Spring Security's).
    Jwt,
}

impl TokenTyp {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtJwt => "at+jwt",
            Self::Jwt => "JWT",
        }
    }
}

/// A parsed private key that signs JWTs. Parsing a key is far costlier than signing with it, so
/// a `Signer` is built once when keys load and shared by every request.
pub struct Signer {
    kid: Kid,
    alg: Alg,
    key: KeyPair,
    /// base64url of the protected header with `typ: at+jwt`, precomputed: it is the same for
    /// every token.
    header_at_jwt: String,
    /// The same with `typ: JWT`.
    header_jwt: String,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

pub(crate) fn generate_pkcs8(alg: Alg) -> Result<Vec<u8>, SignError> {
    let err = |what: &'static str| SignError::Generate { alg, what };
    let rng = SystemRandom::new();
    Ok(match alg {
        Alg::Rs256 => {
            let kp = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| err("rsa"))?;
            kp.as_der().map_err(|_| err("pkcs8"))?.as_ref().to_vec()
        }
        Alg::Es256 => signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|_| err("ecdsa"))?
        .as_ref()
        .to_vec(),
        Alg::EdDsa => signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| err("ed25519"))?
            .as_ref()
            .to_vec(),
    })
}

impl Signer {
    /// Parse a PKCS#8 private key for `alg`.
    pub fn from_pkcs8(alg: Alg, kid: Kid, pkcs8: &[u8]) -> Result<Self, SignError> {
        let bad = |e: aws_lc_rs::error::KeyRejected| SignError::Rejected {
            alg,
            reason: e.to_string(),
        };
        let key = match alg {
            Alg::Rs256 => KeyPair::Rsa(signature::RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?),
            Alg::Es256 => KeyPair::Ec(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8,
                )
                .map_err(bad)?,
            ),
            Alg::EdDsa => KeyPair::Ed(signature::Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?),
        };
        let header = |typ: TokenTyp| {
            let h =
                serde_json::json!({"alg": alg.as_str(), "typ": typ.as_str(), "kid": kid.as_str()});
            URL_SAFE_NO_PAD.encode(h.to_string())
        };
        Ok(Self {
            header_at_jwt: header(TokenTyp::AtJwt),
            header_jwt: header(TokenTyp::Jwt),
            kid,
            alg,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public JWK of this key.
    pub fn public_jwk(&self) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            kid: (!self.kid.as_str().is_empty()).then(|| self.kid.as_str().to_owned()),
            use_: Some("sig".into()),
            alg: Some(self.alg.as_str().into()),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match &self.key {
            KeyPair::Rsa(kp) => {
                let pk = kp.public_key();
                jwk.kty = "RSA".into();
                jwk.n = Some(Jwk::b64(pk.modulus().big_endian_without_leading_zero()));
                jwk.e = Some(Jwk::b64(pk.exponent().big_endian_without_leading_zero()));
            }
            KeyPair::Ec(kp) => {
                // Uncompressed SEC1 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
                let point = kp.public_key().as_ref();
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = point.get(1..33).map(Jwk::b64);
                jwk.y = point.get(33..65).map(Jwk::b64);
            }
            KeyPair::Ed(kp) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(Jwk::b64(kp.public_key().as_ref()));
            }
        }
        jwk
    }

    /// Sign `claims` (a JSON object, already serialised) into a compact JWS with `typ`.
    pub fn sign(&self, claims_json: &[u8], typ: TokenTyp) -> Result<String, SignError> {
        let header = match typ {
            TokenTyp::AtJwt => &self.header_at_jwt,
            TokenTyp::Jwt => &self.header_jwt,
        };
        let payload_len = base64::encoded_len(claims_json.len(), false).unwrap_or(0);
        let mut out = String::with_capacity(header.len() + payload_len + 400);
        out.push_str(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
        let fail = |_| SignError::Sign;
        let sig: Vec<u8> = match &self.key {
            KeyPair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    out.as_bytes(),
                    &mut sig,
                )
                .map_err(fail)?;
                sig
            }
            KeyPair::Ec(kp) => kp
                .sign(&self.rng, out.as_bytes())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            KeyPair::Ed(kp) => kp.sign(out.as_bytes()).as_ref().to_vec(),
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn signs_verifiable_jws_for_every_alg() {
        for alg in Alg::ALL {
            let g = generate(alg).unwrap();
            let s = Signer::from_pkcs8(alg, g.kid.clone(), &g.pkcs8).unwrap();
            assert_eq!(s.public_jwk(), g.public_jwk);
            for typ in [TokenTyp::AtJwt, TokenTyp::Jwt] {
                let jws = s.sign(br#"{"sub":"x"}"#, typ).unwrap();
                let parts: Vec<&str> = jws.split('.').collect();
                assert_eq!(parts.len(), 3);
                let header: serde_json::Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
                assert_eq!(header["typ"], typ.as_str());
                assert_eq!(header["kid"], g.kid.as_str());
                assert_eq!(header["alg"], alg.as_str());
                assert_eq!(header.as_object().unwrap().len(), 3, "nothing else changes");
            }
        }
    }
}
