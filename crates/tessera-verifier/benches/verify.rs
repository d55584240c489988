//! Verification throughput of `Verifier::verify` next to the raw aws-lc-rs signature check it
//! is built on, measured in the same run, single-threaded.
//!
//! `cargo bench -p tessera-verifier --bench verify` (add `-- 5` for 5 s per measurement;
//! `BENCH_ONLY=RS256` to run one algorithm).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tessera_verifier::Verifier;

struct Case {
    name: &'static str,
    token: String,
    jwk: serde_json::Value,
    public: Vec<u8>,
    alg: &'static dyn signature::VerificationAlgorithm,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn token(alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let h = b64(json!({"alg": alg, "typ": "at+jwt", "kid": "k"})
        .to_string()
        .as_bytes());
    let c = b64(json!({"iss": "https://issuer.bench", "sub": "tc_bench", "aud": "https://api.bench", "exp": now + 3600,
        "iat": now, "nbf": now, "jti": "abcdefghijklmnopqrstuv", "client_id": "tc_bench", "scope": "s2s:internal reports:read"})
        .to_string()
        .as_bytes());
    let input = format!("{h}.{c}");
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn es256() -> Case {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .unwrap();
    let p = kp.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256", "x": b64(&p[1..33]), "y": b64(&p[33..65])});
    let token = token("ES256", |m| kp.sign(&rng, m).unwrap().as_ref().to_vec());
    Case {
        name: "ES256",
        token,
        jwk,
        public: p,
        alg: &signature::ECDSA_P256_SHA256_FIXED,
    }
}

fn rs256() -> Case {
    let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let kp = RsaKeyPair::from_pkcs8(kp.as_der().unwrap().as_ref()).unwrap();
    let pk = kp.public_key();
    let jwk = json!({"kty": "RSA", "kid": "k", "alg": "RS256",
        "n": b64(pk.modulus().big_endian_without_leading_zero()), "e": b64(pk.exponent().big_endian_without_leading_zero())});
    let rng = SystemRandom::new();
    let token = token("RS256", |m| {
        let mut sig = vec![0; kp.public_modulus_len()];
        kp.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
            .unwrap();
        sig
    });
    Case {
        name: "RS256",
        token,
        jwk,
        public: pk.as_ref().to_vec(),
        alg: &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// Rates (ops/s) of several closures, measured in interleaved rounds of 200 ms so that drift
/// in the machine's speed (other processes, frequency) hits every candidate alike.
fn rates(dur: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for f in fs.iter_mut() {
        for _ in 0..200 {
            f();
        }
    }
    let round = Duration::from_millis(200);
    let rounds = (dur.as_millis() / round.as_millis()).max(1);
    let mut totals = vec![(0u64, Duration::ZERO); fs.len()];
    for _ in 0..rounds {
        for (f, t) in fs.iter_mut().zip(totals.iter_mut()) {
            let start = Instant::now();
            while start.elapsed() < round {
                for _ in 0..50 {
                    f();
                }
                t.0 += 50;
            }
            t.1 += start.elapsed();
        }
    }
    totals
        .iter()
        .map(|(n, d)| *n as f64 / d.as_secs_f64())
        .collect()
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let dur = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| alg | raw aws-lc-rs, key parsed per call /s | raw aws-lc-rs, key parsed once /s | Verifier::verify /s | Verifier vs best raw |");
    println!("|---|---:|---:|---:|---:|");
    let only = std::env::var("BENCH_ONLY").ok();
    for case in [es256(), rs256()] {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        let (input, sig) = case.token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let key = UnparsedPublicKey::new(case.alg, case.public.clone());
        let parsed_key = ParsedPublicKey::new(case.alg, &case.public).unwrap();
        let jwks = serde_json::from_value(json!({"keys": [case.jwk]})).unwrap();
        let v = Verifier::builder("https://issuer.bench", "https://api.bench")
            .static_jwks(jwks)
            .build()
            .unwrap();
        let r = rates(
            dur,
            &mut [
                &mut || key.verify(input.as_bytes(), &sig).unwrap(),
                &mut || parsed_key.verify_sig(input.as_bytes(), &sig).unwrap(),
                &mut || {
                    rt.block_on(v.verify(&case.token)).unwrap();
                },
            ],
        );
        let (unparsed, parsed, full) = (r[0], r[1], r[2]);
        let raw = unparsed.max(parsed);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} % |",
            case.name,
            unparsed,
            parsed,
            full,
            100.0 * full / raw
        );
    }
}
