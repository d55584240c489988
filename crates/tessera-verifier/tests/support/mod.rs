//! Test issuers: keys, JWKS and tokens signed with any header, shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tessera_verifier::{ManualClock, VerifierBuilder};

pub const T0: u64 = 1_800_000_000;

/// An ES256 signing key and its public JWK.
pub struct Key {
    pub kid: String,
    pair: EcdsaKeyPair,
    pub jwk: Value,
}

impl Key {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        Self {
            kid: kid.into(),
            pair,
            jwk,
        }
    }

    pub fn jwks(&self) -> String {
        json!({"keys": [self.jwk]}).to_string()
    }

    /// A compact JWS of `claims` under exactly `header` (nothing added).
    pub fn sign_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_text(header, &claims.to_string())
    }

    /// A compact JWS whose payload is exactly `payload` (for JSON a `Value` cannot hold, such
    /// as a repeated name).
    pub fn sign_text(&self, header: &Value, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Header `{"alg": "ES256", "kid", "typ"}`, `typ` left out when `None`.
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut h = json!({"alg": "ES256", "kid": self.kid});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        self.sign_header(&h, claims)
    }
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)))
}

/// A builder for `issuer`/`audience` with `key` as its static JWKS and the test clock.
pub fn builder(issuer: &str, audience: &str, key: &Key) -> VerifierBuilder {
    tessera_verifier::Verifier::builder(issuer, audience)
        .static_jwks(key.jwks())
        .clock(clock())
}
