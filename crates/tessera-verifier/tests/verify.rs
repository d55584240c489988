//! Verifier behaviour with an injected clock and fetcher: no sleeps, no network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tessera_verifier::{
    Algorithm, FetchError, FetchFuture, FetchResponse, Fetcher, InvalidToken, ManualClock,
    Verifier, VerifyError,
};
use tokio::sync::Semaphore;

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
const T0: u64 = 1_800_000_000;

struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn es256_key(kid: &str) -> Key {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = kp.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    Key {
        kid: kid.into(),
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk,
    }
}

fn claims(now: u64) -> Value {
    json!({"iss": ISS, "sub": "tc_1", "client_id": "tc_1", "aud": AUD, "exp": now + 300, "iat": now, "nbf": now,
        "jti": "j1", "scope": "s2s:internal reports:read"})
}

fn sign(key: &Key, claims: &Value) -> String {
    sign_with(key, "at+jwt", claims)
}

fn sign_with(key: &Key, typ: &str, claims: &Value) -> String {
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    h.typ = Some(typ.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

/// A fake issuer: serves a JWKS (and discovery), counts fetches, can be down, can hold fetches.
struct FakeIssuer {
    jwks: Mutex<Value>,
    metadata_issuer: Mutex<String>,
    max_age: Mutex<Option<Duration>>,
    fetches: AtomicU64,
    down: AtomicBool,
    gate: Semaphore,
}

impl FakeIssuer {
    fn new(keys: &[&Key]) -> Arc<Self> {
        let f = Arc::new(Self {
            jwks: Mutex::new(json!({"keys": []})),
            metadata_issuer: Mutex::new(ISS.into()),
            max_age: Mutex::new(Some(Duration::from_secs(300))),
            fetches: AtomicU64::new(0),
            down: AtomicBool::new(false),
            gate: Semaphore::new(1_000_000),
        });
        f.publish(keys);
        f
    }

    fn publish(&self, keys: &[&Key]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    fn jwks_fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Let background refreshes run (no clock, no sleep) until `n` fetches were made, or give
    /// up after 100 yields; the caller asserts the count.
    async fn background_fetches_reach(&self, n: u64) {
        for _ in 0..100 {
            if self.jwks_fetches() == n {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Fetcher for FakeIssuer {
    fn get<'a>(&'a self, url: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            let _permit = self.gate.acquire().await.unwrap();
            if self.down.load(Ordering::SeqCst) {
                return Err(FetchError {
                    url: url.into(),
                    reason: "connection refused".into(),
                });
            }
            if url.ends_with("/.well-known/oauth-authorization-server") {
                let doc = json!({"issuer": *self.metadata_issuer.lock().unwrap(), "jwks_uri": "https://issuer.test/keys"});
                return Ok(FetchResponse {
                    body: doc.to_string().into_bytes(),
                    max_age: None,
                });
            }
            assert_eq!(url, "https://issuer.test/keys");
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(FetchResponse {
                body: self.jwks.lock().unwrap().to_string().into_bytes(),
                max_age: *self.max_age.lock().unwrap(),
            })
        })
    }
}

fn setup(keys: &[&Key]) -> (Verifier, Arc<FakeIssuer>, Arc<ManualClock>) {
    let issuer = FakeIssuer::new(keys);
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let v = Verifier::builder(ISS, AUD)
        .fetcher(issuer.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    (v, issuer, clock)
}

fn invalid(r: Result<tessera_verifier::AccessToken, VerifyError>) -> InvalidToken {
    match r {
        Err(VerifyError::InvalidToken(i)) => i,
        other => panic!("expected invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn claims_with_escapes_lists_and_large_payloads_come_through_exactly() {
    let k = es256_key("k1");
    let (v, _, _) = setup(&[&k]);
    // Escaped strings, `aud` as a list, no `client_id` (the subject stands in), and a payload
    // too big for the verifier's stack buffer (it decodes onto the heap instead).
    let mut c = claims(T0);
    let obj = c.as_object_mut().unwrap();
    obj.remove("client_id");
    obj.insert("sub".into(), json!("tc_\"quoted\"_é"));
    obj.insert("aud".into(), json!(["https://other", AUD]));
    obj.insert("scope".into(), json!("a\tb s2s:internal s2s:internal"));
    obj.insert("padding".into(), json!("x".repeat(3000)));
    let token = sign(&k, &c);
    let at = v.verify(&token).await.unwrap();
    assert_eq!(at.subject(), "tc_\"quoted\"_é");
    assert_eq!(at.client_id(), at.subject());
    assert_eq!(
        at.audience().collect::<Vec<_>>(),
        vec!["https://other", AUD]
    );
    assert_eq!(
        at.scopes().into_iter().collect::<Vec<_>>(),
        vec!["a\tb", "s2s:internal"],
        "a set: the repeated scope appears once"
    );
    assert_eq!(at.claims()["padding"].as_str().map(str::len), Some(3000));
    let clone = at.clone();
    drop(at);
    assert_eq!(clone.subject(), "tc_\"quoted\"_é");
}

#[tokio::test]
async fn accepts_a_valid_token_and_exposes_its_claims() {
    let k = es256_key("k1");
    let (v, issuer, _) = setup(&[&k]);
    let at = v.verify(&sign(&k, &claims(T0))).await.unwrap();
    assert_eq!(at.client_id(), "tc_1");
    assert_eq!(at.subject(), "tc_1");
    assert_eq!(at.audience().collect::<Vec<_>>(), vec![AUD]);
    assert_eq!(at.expires_at(), (T0 + 300) as i64);
    assert_eq!(at.jti(), Some("j1"));
    assert!(at.has_scope("s2s:internal"));
    at.require_scope("s2s:internal").unwrap();
    at.require_all(["s2s:internal", "reports:read"]).unwrap();
    at.require_any(["admin", "reports:read"]).unwrap();
    let e = at.require_scope("admin").unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(matches!(e, VerifyError::InsufficientScope { ref required } if required == "admin"));
    assert_eq!(at.claims()["scope"], "s2s:internal reports:read");
    // application/at+jwt is the same type (RFC 9068 §2.1).
    v.verify(&sign_with(&k, "application/at+jwt", &claims(T0)))
        .await
        .unwrap();
    // Discovery once, JWKS once; later verifications are local.
    for _ in 0..10 {
        v.verify(&sign(&k, &claims(T0))).await.unwrap();
    }
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn rejects_every_kind_of_bad_token() {
    let k = es256_key("k1");
    let (v, _, _) = setup(&[&k]);
    let good = sign(&k, &claims(T0));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(T0);
        f(&mut c);
        sign(&k, &c)
    };
    let (h, p, s) = {
        let parts: Vec<&str> = good.split('.').collect();
        (
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        )
    };
    let header = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    // The HS256 attack: a MAC keyed with the issuer's public key.
    let hs256 = {
        let public = serde_json::to_vec(&k.jwk).unwrap();
        let mut hh = Header::new(jsonwebtoken::Algorithm::HS256);
        hh.kid = Some("k1".into());
        hh.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &hh,
            &claims(T0),
            &EncodingKey::from_secret(&public).unwrap(),
        )
        .unwrap()
    };
    let tampered_payload = {
        let mut c = claims(T0);
        c["scope"] = json!("admin");
        format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(c.to_string()))
    };
    let mut sig = URL_SAFE_NO_PAD.decode(&s).unwrap();
    sig[5] ^= 1;
    let tampered_sig = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig));
    let cases: Vec<(&str, String, InvalidToken)> = vec![
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("https://other")),
            InvalidToken::WrongAudience,
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil")),
            InvalidToken::WrongIssuer,
        ),
        (
            "issuer with trailing slash",
            with(&|c| c["iss"] = json!("https://issuer.test/")),
            InvalidToken::WrongIssuer,
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(T0 - 31)),
            InvalidToken::Expired,
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            InvalidToken::MissingExpiry,
        ),
        (
            "nbf in the future",
            with(&|c| c["nbf"] = json!(T0 + 60)),
            InvalidToken::NotYetValid,
        ),
        (
            "iat in the future",
            with(&|c| c["iat"] = json!(T0 + 60)),
            InvalidToken::NotYetValid,
        ),
        (
            "tampered payload",
            tampered_payload,
            InvalidToken::BadSignature,
        ),
        (
            "tampered signature",
            tampered_sig,
            InvalidToken::BadSignature,
        ),
        (
            "alg none",
            format!(
                "{}.{p}.",
                header(json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}))
            ),
            InvalidToken::AlgorithmNotAllowed,
        ),
        (
            "HS256 with the public key",
            hs256,
            InvalidToken::AlgorithmNotAllowed,
        ),
        (
            "RS256 header on an EC key",
            format!(
                "{}.{p}.{s}",
                header(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}))
            ),
            InvalidToken::KeyMismatch,
        ),
        (
            "wrong typ",
            sign_with(&k, "JWT", &claims(T0)),
            InvalidToken::WrongType,
        ),
        (
            "missing typ",
            format!("{}.{p}.{s}", header(json!({"alg": "ES256", "kid": "k1"}))),
            InvalidToken::WrongType,
        ),
        (
            "crit header",
            format!(
                "{}.{p}.{s}",
                header(json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}))
            ),
            InvalidToken::CriticalHeader,
        ),
        (
            "unknown kid",
            format!(
                "{}.{p}.{s}",
                header(json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}))
            ),
            InvalidToken::UnknownKey,
        ),
        ("not a JWT", "hello".into(), InvalidToken::Malformed),
        ("four parts", format!("{good}.x"), InvalidToken::Malformed),
        (
            "header not base64",
            format!("!!.{p}.{s}"),
            InvalidToken::Malformed,
        ),
        (
            "too large",
            format!("{h}.{}.{s}", "A".repeat(10_000)),
            InvalidToken::TooLarge,
        ),
    ];
    for (name, token, want) in cases {
        // Twice: the second time the header's parse is remembered by this thread, and every
        // check must still apply.
        for round in ["first", "repeat"] {
            let got = invalid(v.verify(&token).await);
            assert_eq!(got, want, "{name} ({round})");
            assert_eq!(VerifyError::InvalidToken(got).status(), 401);
        }
    }
    // Leeway: 10 s past exp is still fine with the default 30 s.
    v.verify(&with(&|c| c["exp"] = json!(T0 - 10)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_remembered_header_is_still_held_to_each_verifiers_allowlist() {
    let k = es256_key("k1");
    let (v, _, _) = setup(&[&k]);
    let token = sign(&k, &claims(T0));
    v.verify(&token).await.unwrap();
    // Same thread, same header segment, but this verifier allows RS256 only.
    let strict = Verifier::builder(ISS, AUD)
        .static_jwks(json!({"keys": [k.jwk]}).to_string())
        .algorithms([Algorithm::RS256])
        .clock(Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(T0),
        )))
        .build()
        .unwrap();
    assert_eq!(
        invalid(strict.verify(&token).await),
        InvalidToken::AlgorithmNotAllowed
    );
    v.verify(&token).await.unwrap();
}

#[tokio::test]
async fn jku_x5u_and_jwk_headers_are_never_trusted() {
    let k = es256_key("k1");
    let attacker = es256_key("k1"); // same kid, attacker's key, embedded in the header
    let (v, issuer, _) = setup(&[&k]);
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("at+jwt".into());
    h.jku = Some("https://evil.test/keys".into());
    h.x5u = Some("https://evil.test/cert".into());
    h.jwk = Some(serde_json::from_value(attacker.jwk.clone()).unwrap());
    let forged =
        jsonwebtoken::encode(&h, &claims(T0), &EncodingKey::from_ec_der(&attacker.pkcs8)).unwrap();
    assert_eq!(invalid(v.verify(&forged).await), InvalidToken::BadSignature);
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "a bad signature never causes a refetch, and jku is not followed"
    );
}

#[tokio::test]
async fn random_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let k = es256_key("k1");
    let (v, issuer, clock) = setup(&[&k]);
    v.verify(&sign(&k, &claims(T0))).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);
    let (p, s) = {
        let t = sign(&k, &claims(T0));
        let parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        (parts[1].clone(), parts[2].clone())
    };
    let forged = |i: usize| {
        let h = URL_SAFE_NO_PAD.encode(
            json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("random-{i}")}).to_string(),
        );
        format!("{h}.{p}.{s}")
    };
    // Past the cooldown, so the burst is allowed exactly one refetch between them.
    clock.advance(Duration::from_secs(31));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let (v, t) = (v.clone(), forged(i));
        tasks.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for t in tasks {
        assert_eq!(invalid(t.await.unwrap()), InvalidToken::UnknownKey);
    }
    assert_eq!(issuer.jwks_fetches(), 2, "1000 random kids: one refetch");
    // Within the cooldown, more random kids fetch nothing.
    clock.advance(Duration::from_secs(10));
    for i in 0..100 {
        assert_eq!(
            invalid(v.verify(&forged(2000 + i)).await),
            InvalidToken::UnknownKey
        );
    }
    assert_eq!(issuer.jwks_fetches(), 2);
    // A failed signature never refetches.
    let mut bad = sign(&k, &claims(T0));
    bad.pop();
    bad.push('A');
    clock.advance(Duration::from_secs(60));
    for _ in 0..50 {
        let _ = v.verify(&bad).await;
    }
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_unknown_kid_refresh() {
    let k1 = es256_key("k1");
    let k2 = es256_key("k2");
    let (v, issuer, clock) = setup(&[&k1]);
    v.verify(&sign(&k1, &claims(T0))).await.unwrap();
    issuer.publish(&[&k1, &k2]);
    clock.advance(Duration::from_secs(31));
    let now = T0 + 31;
    v.verify(&sign(&k2, &claims(now))).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 2);
    v.verify(&sign(&k1, &claims(now))).await.unwrap();
}

#[tokio::test]
async fn known_keys_verify_while_a_refresh_is_in_flight() {
    let k = es256_key("k1");
    let (v, issuer, clock) = setup(&[&k]);
    v.verify(&sign(&k, &claims(T0))).await.unwrap();
    // Hold every further fetch at the gate, then ask for an unknown kid (starts a refresh).
    let held = issuer.gate.acquire_many(1_000_000).await.unwrap();
    clock.advance(Duration::from_secs(31));
    let now = T0 + 31;
    let stranger = es256_key("k9");
    let (v2, t) = (v.clone(), sign(&stranger, &claims(now)));
    let waiting = tokio::spawn(async move { v2.verify(&t).await });
    tokio::task::yield_now().await;
    // The known key still verifies at once: no lock is held across the fetch.
    let ok = tokio::time::timeout(Duration::from_secs(5), v.verify(&sign(&k, &claims(now)))).await;
    assert!(ok
        .expect("verification of a known key must not wait for the refresh")
        .is_ok());
    drop(held);
    assert_eq!(invalid(waiting.await.unwrap()), InvalidToken::UnknownKey);
}

#[tokio::test]
async fn issuer_down_serves_cached_keys_until_max_staleness() {
    let k = es256_key("k1");
    let issuer = FakeIssuer::new(&[&k]);
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let v = Verifier::builder(ISS, AUD)
        .fetcher(issuer.clone())
        .clock(clock.clone())
        .max_staleness(Duration::from_secs(600))
        .build()
        .unwrap();
    v.verify(&sign(&k, &claims(T0))).await.unwrap();
    issuer.down.store(true, Ordering::SeqCst);
    // Past max-age (300 s): background refreshes fail, cached keys keep working.
    for step in [250u64, 200, 100] {
        clock.advance(Duration::from_secs(step));
        let now = clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        v.verify(&sign(&k, &claims(now))).await.unwrap();
        tokio::task::yield_now().await;
    }
    // Past max staleness (600 s after the last good fetch): keys unavailable → 503.
    clock.advance(Duration::from_secs(100));
    let now = clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let e = v.verify(&sign(&k, &claims(now))).await.unwrap_err();
    assert!(matches!(e, VerifyError::KeysUnavailable(_)), "{e:?}");
    assert_eq!(e.status(), 503);
    // The issuer returns; after the cooldown the keys come back.
    issuer.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    let now = clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    v.verify(&sign(&k, &claims(now))).await.unwrap();
}

use tessera_verifier::Clock as _;

#[tokio::test]
async fn max_age_drives_background_refresh() {
    let k = es256_key("k1");
    let (v, issuer, clock) = setup(&[&k]);
    *issuer.max_age.lock().unwrap() = Some(Duration::from_secs(100));
    v.verify(&sign(&k, &claims(T0))).await.unwrap();
    clock.advance(Duration::from_secs(70));
    v.verify(&sign(&k, &claims(T0 + 70))).await.unwrap();
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "before 80 % of max-age, nothing is fetched"
    );
    clock.advance(Duration::from_secs(15));
    v.verify(&sign(&k, &claims(T0 + 85))).await.unwrap();
    issuer.background_fetches_reach(2).await;
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "refreshed in the background ahead of expiry"
    );
}

#[tokio::test]
async fn discovery_issuer_must_match_exactly() {
    let k = es256_key("k1");
    let (v, issuer, _) = setup(&[&k]);
    *issuer.metadata_issuer.lock().unwrap() = "https://evil.test".into();
    let e = v.verify(&sign(&k, &claims(T0))).await.unwrap_err();
    assert!(
        matches!(e, VerifyError::KeysUnavailable(ref m) if m.contains("issuer")),
        "{e:?}"
    );
}

#[test]
fn configuration_is_checked() {
    let f = FakeIssuer::new(&[]);
    assert!(Verifier::builder(ISS, "")
        .fetcher(f.clone())
        .build()
        .is_err());
    assert!(Verifier::builder("issuer", AUD)
        .fetcher(f.clone())
        .build()
        .is_err());
    // HS* and none cannot be named, not even from configuration text.
    for name in ["HS256", "HS512", "none"] {
        assert!(name.parse::<Algorithm>().is_err(), "{name}");
    }
    assert!(Verifier::builder(ISS, AUD)
        .fetcher(f)
        .algorithms([])
        .build()
        .is_err());
    let _ = SystemTime::now();
}

/// Regression: the unknown-kid cooldown (30 s) once also spaced out the regular refreshes, so an
/// issuer with a short max-age had its pre-published keys ignored and rotations failed requests.
#[tokio::test]
async fn short_max_age_refreshes_are_not_held_back_by_the_cooldown() {
    let k1 = es256_key("k1");
    let k2 = es256_key("k2");
    let issuer = FakeIssuer::new(&[&k1]);
    *issuer.max_age.lock().unwrap() = Some(Duration::from_secs(2));
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let v = Verifier::builder(ISS, AUD)
        .fetcher(issuer.clone())
        .clock(clock.clone())
        .cache_ttl(
            Duration::from_secs(1),
            Duration::from_secs(3600),
            Duration::from_secs(300),
        )
        .build()
        .unwrap();
    v.verify(&sign(&k1, &claims(T0))).await.unwrap();
    issuer.publish(&[&k1, &k2]); // pre-published by the issuer
    clock.advance(Duration::from_secs(2)); // past 80 % of max-age, well within the cooldown
    v.verify(&sign(&k1, &claims(T0 + 2))).await.unwrap(); // starts the due refresh
    issuer.background_fetches_reach(2).await;
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "the due refresh ran although the cooldown had not passed"
    );
    v.verify(&sign(&k2, &claims(T0 + 2))).await.unwrap();
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "the new key was already known: no unknown-kid fetch"
    );
}

#[tokio::test]
async fn warm_up_fetches_the_keys_once_or_reports_them_unavailable() {
    let k = es256_key("k1");
    let (v, issuer, _) = setup(&[&k]);
    v.warm_up().await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);
    v.verify(&sign(&k, &claims(T0))).await.unwrap();
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "verification after warm-up needs no fetch"
    );

    let (down, issuer, _) = setup(&[&k]);
    issuer.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        down.warm_up().await,
        Err(VerifyError::KeysUnavailable(_))
    ));
}

#[tokio::test]
async fn the_guard_is_a_tower_layer_answering_per_rfc6750() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tessera_verifier::axum::{Guard, Requirement};
    use tessera_verifier::AccessToken;
    use tower::ServiceExt as _;

    let k = es256_key("k1");
    let (v, _, _) = setup(&[&k]);
    let guard = Guard::new(v).realm("orders");
    let app = axum::Router::new()
        .route(
            "/ping",
            get(|t: AccessToken| async move { t.client_id().to_string() }),
        )
        .route_layer(guard.requiring(Requirement::all(["s2s:internal"])))
        .merge(
            axum::Router::new()
                .route("/admin", get(|| async { "admin" }))
                .route_layer(guard.requiring(Requirement::any(["admin", "root"]))),
        );
    let call = |path: &str, auth: Option<String>| {
        let mut req = Request::get(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let token = sign(&k, &claims(T0));

    let ok = call("/ping", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"tc_1", "the handler gets the verified token");

    let none = call("/ping", None).await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"orders\""
    );

    let bad = call("/ping", Some("Bearer not.a.jwt".into()))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let challenge = bad.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"orders\", error=\"invalid_token\""),
        "{challenge}"
    );

    let scope = call("/admin", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(scope.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        scope.headers()["www-authenticate"],
        "Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"admin root\""
    );
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(scope.into_body(), 1024).await.unwrap())
            .unwrap();
    assert_eq!(body["error"], "insufficient_scope");
}

/// The issuer's own check (introspection): any audience, but still the issuer, the keys, the
/// expiry; and only through the explicitly named builder.
#[tokio::test]
async fn any_audience_is_only_for_the_issuer_itself() {
    let k = es256_key("k1");
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let jwks = json!({"keys": [k.jwk]}).to_string();
    let own = Verifier::any_audience_builder(ISS)
        .static_jwks(&jwks)
        .clock(clock.clone())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let resource = Verifier::builder(ISS, AUD)
        .static_jwks(&jwks)
        .clock(clock)
        .build()
        .unwrap();
    let mut other = claims(T0);
    other["aud"] = json!("https://another.service");
    let token = sign(&k, &other);
    own.verify(&token).await.unwrap();
    assert_eq!(
        invalid(resource.verify(&token).await),
        InvalidToken::WrongAudience
    );
    let mut none = claims(T0);
    none.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        invalid(own.verify(&sign(&k, &none)).await),
        InvalidToken::WrongAudience,
        "a token must still name an audience"
    );
    let mut foreign = claims(T0);
    foreign["iss"] = json!("https://other.issuer");
    assert_eq!(
        invalid(own.verify(&sign(&k, &foreign)).await),
        InvalidToken::WrongIssuer
    );
    let mut expired = claims(T0);
    expired["exp"] = json!(T0);
    assert_eq!(
        invalid(own.verify(&sign(&k, &expired)).await),
        InvalidToken::Expired,
        "no leeway: expired at exp"
    );
}

/// `typ: JWT` (Tessera's profile for stacks that refuse `at+jwt`) only where a verifier was told
/// to take it; no `typ`, or another one, still refused.
#[tokio::test]
async fn typ_jwt_only_when_accepted() {
    let k = es256_key("k1");
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let jwks = json!({"keys": [k.jwk]}).to_string();
    let strict = Verifier::builder(ISS, AUD)
        .static_jwks(&jwks)
        .clock(clock.clone())
        .build()
        .unwrap();
    let lenient = Verifier::builder(ISS, AUD)
        .static_jwks(&jwks)
        .clock(clock)
        .accept_typ_jwt()
        .build()
        .unwrap();
    let jwt = sign_with(&k, "JWT", &claims(T0));
    // Twice each, so the second goes through the thread's remembered header.
    for _ in 0..2 {
        assert_eq!(invalid(strict.verify(&jwt).await), InvalidToken::WrongType);
        lenient.verify(&jwt).await.unwrap();
    }
    lenient.verify(&sign(&k, &claims(T0))).await.unwrap();
    assert_eq!(
        invalid(lenient.verify(&sign_with(&k, "id+jwt", &claims(T0))).await),
        InvalidToken::WrongType
    );
}
