//! Pre-signs RFC 7523 assertions for `benches/secretless.sh`, so the load generator sends ready
//! request bodies and the server's cost is what is measured. One form body per line on stdout.
//!
//!   assertions client KEY.pem JWKS.json CLIENT_ID AUD COUNT   # private_key_jwt, a fresh jti each
//!   assertions federated KEY.pem JWKS.json ISS SUB AUD        # one JWT-bearer body (reusable)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pem = std::fs::read_to_string(&args[1]).expect("key file");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &STANDARD.decode(der).unwrap(),
    )
    .expect("an ES256 PKCS#8 key");
    let jwks: Value = serde_json::from_str(&std::fs::read_to_string(&args[2]).unwrap()).unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let rng = SystemRandom::new();
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string());
    let sign = |claims: &Value| {
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args[0].as_str() {
        "client" => {
            let (id, aud, count): (&str, &str, usize) =
                (&args[3], &args[4], args[5].parse().unwrap());
            for n in 0..count {
                // Valid for 10 minutes: long enough for every run of the bench.
                let jwt = sign(
                    &json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 600,
                    "jti": format!("bench-{now}-{n}")}),
                );
                writeln!(out, "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}").unwrap();
            }
        }
        "federated" => {
            let jwt = sign(
                &json!({"iss": args[3], "sub": args[4], "aud": args[5], "iat": now, "exp": now + 3600}),
            );
            writeln!(
                out,
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
            )
            .unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}
