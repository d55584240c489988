//! Verification throughput of `Verifier::verify` next to the raw aws-lc-rs signature check it
//! is built on, measured in the same run, single-threaded.
//!
//! `verify` is awaited the way a handler awaits it: polled in place, where it completes at once
//! when the keys are cached. A `block_on` per call (shown in its own column) adds the cost of
//! entering an executor, which a running service does not pay per request.
//!
//! A second table measures the path a service runs per request, `Guard::check` on the request
//! headers: a plain scope requirement next to `Requirement::role("ADMIN")` with the role granted
//! by a claim (`groups` contains `git-admins`, so the claims are read) and by a scope.
//!
//! The second table's last column adds a revocation feed holding 10,000 revoked ids to the
//! role-from-a-claim guard (issue 13: roles and the revocation set together). A third line
//! measures managed API keys answered from the cache (after one introspection by a local
//! stand-in for Tessera).
//!
//! `cargo bench -p tessera-verifier --bench verify` (add `-- 5` for 5 s per measurement;
//! `BENCH_ONLY=RS256` to run one algorithm).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
};
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tessera_verifier::axum::{Guard, Requirement};
use tessera_verifier::{RoleMap, Verifier};

struct Case {
    name: &'static str,
    /// Distinct tokens (each its own `jti` and signature), used in turn.
    tokens: Vec<String>,
    jwk: serde_json::Value,
    public: Vec<u8>,
    alg: &'static dyn signature::VerificationAlgorithm,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// How many distinct tokens each measurement cycles through.
const TOKENS: usize = 64;

fn tokens(alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<String> {
    (0..TOKENS).map(|i| token(alg, i, &sign)).collect()
}

fn token(alg: &str, i: usize, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let h = b64(json!({"alg": alg, "typ": "at+jwt", "kid": "k"})
        .to_string()
        .as_bytes());
    let c = b64(json!({"iss": "https://issuer.bench", "sub": "tc_bench", "aud": "https://api.bench", "exp": now + 3600,
        "iat": now, "nbf": now, "jti": format!("jti-{i:018}"), "client_id": "tc_bench", "scope": "s2s:internal reports:read",
        "groups": ["developers", "on-call", "git-admins"]})
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
    let tokens = tokens("ES256", |m| kp.sign(&rng, m).unwrap().as_ref().to_vec());
    Case {
        name: "ES256",
        tokens,
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
    let tokens = tokens("RS256", |m| {
        let mut sig = vec![0; kp.public_modulus_len()];
        kp.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
            .unwrap();
        sig
    });
    Case {
        name: "RS256",
        tokens,
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

/// Poll `f` once in place, as `.await` does inside a running task. The benchmark's futures never
/// wait (the keys are static), so one poll must finish them.
fn poll_now<T>(f: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("verify waited with static keys"),
    }
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
    println!("| alg | raw aws-lc-rs, key parsed per call /s | raw aws-lc-rs, key parsed once /s | Verifier::verify /s | Verifier vs best raw | added per token | with a block_on per call /s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let only = std::env::var("BENCH_ONLY").ok();
    let mut guard_rows = Vec::new();
    for case in [es256(), rs256()] {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        let signed: Vec<(&str, Vec<u8>)> = case
            .tokens
            .iter()
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').unwrap();
                (input, URL_SAFE_NO_PAD.decode(sig).unwrap())
            })
            .collect();
        // Each candidate walks the tokens in turn with its own cursor.
        let next = |i: &mut usize| {
            *i = (*i + 1) % TOKENS;
            *i
        };
        let (mut a, mut b, mut c, mut d) = (0, 0, 0, 0);
        let key = UnparsedPublicKey::new(case.alg, case.public.clone());
        let parsed_key = ParsedPublicKey::new(case.alg, &case.public).unwrap();
        let jwks = json!({"keys": [case.jwk]}).to_string();
        let v = Verifier::builder("https://issuer.bench", "https://api.bench")
            .static_jwks(jwks)
            .build()
            .unwrap();
        let r = rates(
            dur,
            &mut [
                &mut || {
                    let (input, sig) = &signed[next(&mut a)];
                    key.verify(input.as_bytes(), sig).unwrap();
                },
                &mut || {
                    let (input, sig) = &signed[next(&mut b)];
                    parsed_key.verify_sig(input.as_bytes(), sig).unwrap();
                },
                &mut || {
                    poll_now(v.verify(&case.tokens[next(&mut c)])).unwrap();
                },
                &mut || {
                    rt.block_on(v.verify(&case.tokens[next(&mut d)])).unwrap();
                },
            ],
        );
        let (unparsed, parsed, full, blocking) = (r[0], r[1], r[2], r[3]);
        let raw = unparsed.max(parsed);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.0} ns | {:.0} |",
            case.name,
            unparsed,
            parsed,
            full,
            100.0 * full / raw,
            1e9 / full - 1e9 / raw,
            blocking
        );

        // The per-request path of a service: headers in, Guard::check, token out.
        let headers: Vec<HeaderMap> = case
            .tokens
            .iter()
            .map(|t| {
                let mut h = HeaderMap::new();
                h.insert("authorization", format!("Bearer {t}").parse().unwrap());
                h
            })
            .collect();
        let guard = Guard::new(v.clone()).with_roles(Arc::new(
            RoleMap::new()
                .role("ADMIN", |r| {
                    r.scope("s2s:admin").claim("groups", "git-admins")
                })
                .role("INTERNAL", |r| r.scope("s2s:internal")),
        ));
        let plain = guard.requiring(Requirement::all(["s2s:internal"]));
        let by_claim = guard.requiring(Requirement::role("ADMIN"));
        let by_scope = guard.requiring(Requirement::role("INTERNAL"));
        // Roles and a revocation set of 10,000 ids (none of them these tokens').
        let feed = rt.block_on(async {
            tessera_verifier::RevocationFeed::builder(
                "https://issuer.bench",
                "rs",
                tessera_verifier::ClientSecret::new("x"),
            )
            .build()
            .unwrap()
        });
        for i in 0..10_000 {
            feed.insert(format!("revoked-{i:05}-aaaaaaaaaaaaaaaa"), i64::MAX);
        }
        feed.mark_fresh();
        let with_feed = Guard::new(v.clone().with_revocation_feed(feed))
            .with_roles(Arc::new(RoleMap::new().role("ADMIN", |r| {
                r.scope("s2s:admin").claim("groups", "git-admins")
            })))
            .requiring(Requirement::role("ADMIN"));
        let (mut e, mut f, mut g, mut h) = (0, 0, 0, 0);
        let r = rates(
            dur,
            &mut [
                &mut || {
                    poll_now(plain.check(&headers[next(&mut e)])).unwrap();
                },
                &mut || {
                    poll_now(by_claim.check(&headers[next(&mut f)])).unwrap();
                },
                &mut || {
                    poll_now(by_scope.check(&headers[next(&mut g)])).unwrap();
                },
                &mut || {
                    poll_now(with_feed.check(&headers[next(&mut h)])).unwrap();
                },
            ],
        );
        guard_rows.push((case.name, r[0], r[1], r[2], r[3]));
    }
    println!();
    println!("| alg | Guard::check, scope requirement /s | Guard::check, role from a claim /s | role from claim vs scope | added per request | Guard::check, role from a scope /s | role from a claim + 10k revoked ids /s | vs scope requirement |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, plain, claim, scope, fed) in guard_rows {
        println!(
            "| {name} | {plain:.0} | {claim:.0} | {:.1} % | {:.0} ns | {scope:.0} | {fed:.0} | {:.1} % |",
            100.0 * claim / plain,
            1e9 / claim - 1e9 / plain,
            100.0 * fed / plain,
        );
    }
    api_key_cache(&rt, dur);
}

/// Managed API keys answered from the cache: one introspection by a local stand-in for Tessera,
/// then every check a cache hit.
fn api_key_cache(rt: &tokio::runtime::Runtime, dur: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route(
                "/oauth/introspect",
                axum::routing::post(|| async {
                    axum::Json(
                        json!({"active": true, "token_type": "api_key", "client_id": "ak_bench",
                        "sub": "ak_bench", "scope": "s2s:internal", "aud": "https://api.bench"}),
                    )
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let keys = rt.block_on(async {
        tessera_verifier::ManagedApiKeys::builder(
            &format!("http://{addr}"),
            "https://api.bench",
            "rs",
            tessera_verifier::ClientSecret::new("x"),
        )
        .build()
        .unwrap()
    });
    let key = "tak_benchbenchbenchbenchbenchbenchbenchbenchb";
    rt.block_on(keys.check(key)).unwrap();
    let r = rates(
        dur,
        &mut [&mut || {
            poll_now(keys.check(key)).unwrap();
        }],
    );
    println!();
    println!(
        "Managed API keys answered from the cache: {:.0} checks/s (introspections: {})",
        r[0],
        keys.introspections()
    );
}
