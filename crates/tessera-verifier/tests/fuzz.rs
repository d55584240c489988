//! Property tests of the verifier's parsers of untrusted input (issue 14, item 5): the token
//! decoder behind [`Verifier::verify`] and the JWKS parsers.
//!
//! Each `#[test]` is one fuzz target run through [`fuzz`]: 1,024 cases in the normal
//! suite, `TESSERA_FUZZ_CASES` of them when set (`benches/fuzz.sh` runs millions in release).
//! The keys are generated here, so a real token can be signed: it must be accepted, and any
//! change to one byte of it refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tessera_verifier::keys::{check_jwks, KeyCacheSettings, KeySource, Keys};
use tessera_verifier::{ManualClock, Verifier, VerifyError};

/// Cases per target in the normal suite: each target stays well under a second in debug.
const SUITE_CASES: u32 = 1024;

/// Run one fuzz target: `SUITE_CASES` cases, or `TESSERA_FUZZ_CASES` when set. Prints one line
/// `fuzz NAME: N cases in S s` (read by `benches/fuzz.sh`) and fails with the shrunk input.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SUITE_CASES);
    // No regression files written into the source tree: a failure prints its minimal input.
    let config = Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    };
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, test);
    println!(
        "fuzz {name}: {cases} cases in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
const T0: u64 = 1_800_000_000;
const ES_KID: &str = "es-1";
const ED_KID: &str = "ed-1";

/// The issuer's two signing keys (ES256 and Ed25519), generated for this run.
struct Issuer {
    es: EcdsaKeyPair,
    ed: Ed25519KeyPair,
    es_jwk: Value,
    ed_jwk: Value,
}

impl Issuer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let es =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = es.public_key().as_ref();
        let es_jwk = json!({"kty": "EC", "crv": "P-256", "kid": ES_KID, "alg": "ES256",
            "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": ED_KID, "alg": "EdDSA",
            "use": "sig", "x": b64(ed.public_key().as_ref())});
        Self {
            es,
            ed,
            es_jwk,
            ed_jwk,
        }
    }

    fn jwks(&self) -> String {
        json!({"keys": [self.es_jwk, self.ed_jwk]}).to_string()
    }

    /// `header.payload.signature` over exactly these header and payload bytes, with the key
    /// named by `ed` (Ed25519) or not (ES256).
    fn sign_bytes(&self, ed: bool, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = if ed {
            self.ed.sign(input.as_bytes()).as_ref().to_vec()
        } else {
            let sig = self
                .es
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            sig.as_ref().to_vec()
        };
        format!("{input}.{}", b64(&sig))
    }

    fn sign(&self, ed: bool, claims: &Value) -> String {
        let header = if ed {
            json!({"alg": "EdDSA", "kid": ED_KID, "typ": "at+jwt"})
        } else {
            json!({"alg": "ES256", "kid": ES_KID, "typ": "at+jwt"})
        };
        self.sign_bytes(
            ed,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
    }

    fn verifier(&self) -> Verifier {
        Verifier::builder(ISS, AUD)
            .static_jwks(self.jwks())
            .clock(Arc::new(ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(T0),
            )))
            .build()
            .unwrap()
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A runtime to drive `verify` (with a static JWKS it never waits on anything).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Claims the verifier accepts: right issuer, audience and times, with anything else beside.
fn good_claims(
    (client_id, scopes, jti): (String, Vec<String>, String),
    (ttl, age): (u64, u64),
    extra: Vec<(String, Value)>,
) -> Value {
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": client_id, "client_id": client_id,
        "exp": T0 + ttl, "iat": T0 - age, "nbf": T0 - age, "jti": jti,
        "scope": scopes.join(" ")});
    for (k, v) in extra {
        c[format!("x_{k}")] = v;
    }
    c
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z\"\\\\/]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn claim_parts() -> impl Strategy<Value = (String, Vec<String>, String)> {
    (
        prop_oneof!["tc_[A-Za-z0-9_-]{22}", any::<String>(), "[a-z\"\\\\é]{1,8}"],
        prop::collection::vec("[!#-\\[\\]-~]{1,12}", 0..4),
        prop_oneof!["[A-Za-z0-9]{1,16}", any::<String>()],
    )
}

// ---------------------------------------------------------------------------------------------
// The token decoder.

#[test]
fn verify_refuses_arbitrary_strings() {
    let issuer = Issuer::new();
    let verifier = issuer.verifier();
    let rt = runtime();
    let strategy = prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=+/-]{0,200}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,90}",
        "\\.{0,4}",
    ];
    fuzz("verify_refuses_arbitrary_strings", strategy, |token| {
        let got = rt.block_on(verifier.verify(&token));
        prop_assert!(
            matches!(got, Err(VerifyError::InvalidToken(_))),
            "{:?}",
            got
        );
        Ok(())
    });
}

/// One segment of a near-JWT: a real one, or one that looks like it.
#[derive(Debug, Clone)]
enum Segment {
    RealHeader(bool),
    RealPayload(bool),
    RealSignature(bool),
    /// A real signature, cut short by this many characters (at least one).
    Truncated(bool, usize),
    /// A header of chosen `alg`, `typ`, `kid` and `crit`.
    Header(Value),
    Json(Value),
    Bytes(Vec<u8>),
    Text(String),
}

fn header_value() -> impl Strategy<Value = Value> {
    let alg = select(
        &[
            "ES256", "EdDSA", "Ed25519", "RS256", "PS256", "ES384", "none", "HS256", "es256", "",
        ][..],
    );
    let typ = prop::option::of(select(
        &["at+jwt", "application/at+jwt", "AT+JWT", "JWT", "jwt", ""][..],
    ));
    let kid = prop::option::of(prop_oneof![
        select(&[ES_KID, ED_KID, "other"][..]).prop_map(Value::from),
        json_value(),
    ]);
    let crit = prop::option::weighted(0.2, json_value());
    (alg, typ, kid, crit).prop_map(|(alg, typ, kid, crit)| {
        let mut h = json!({"alg": alg});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        if let Some(k) = kid {
            h["kid"] = k;
        }
        if let Some(c) = crit {
            h["crit"] = c;
        }
        h
    })
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        2 => any::<bool>().prop_map(Segment::RealHeader),
        2 => any::<bool>().prop_map(Segment::RealPayload),
        2 => any::<bool>().prop_map(Segment::RealSignature),
        1 => (any::<bool>(), 1usize..90).prop_map(|(ed, n)| Segment::Truncated(ed, n)),
        2 => header_value().prop_map(Segment::Header),
        1 => json_value().prop_map(Segment::Json),
        1 => prop::collection::vec(any::<u8>(), 0..100).prop_map(Segment::Bytes),
        1 => prop_oneof!["[A-Za-z0-9_-]{0,90}", "[A-Za-z0-9+/=]{0,12}", any::<String>()]
            .prop_map(Segment::Text),
    ]
}

#[test]
fn verify_accepts_only_the_tokens_signed_here() {
    let issuer = Issuer::new();
    let verifier = issuer.verifier();
    let rt = runtime();
    let claims = good_claims(
        ("tc_fuzz".into(), vec!["a".into()], "j".into()),
        (300, 0),
        vec![],
    );
    // The real tokens, one per key, and their segments.
    let real = [issuer.sign(false, &claims), issuer.sign(true, &claims)];
    let parts: Vec<Vec<&str>> = real.iter().map(|t| t.split('.').collect()).collect();
    let strategy = prop_oneof![
        4 => prop::collection::vec(segment(), 3..=3),
        1 => prop::collection::vec(segment(), 0..6),
    ];
    fuzz(
        "verify_accepts_only_the_tokens_signed_here",
        strategy,
        |segments| {
            let text: Vec<String> = segments
                .iter()
                .map(|s| match s {
                    Segment::RealHeader(ed) => parts[usize::from(*ed)][0].to_owned(),
                    Segment::RealPayload(ed) => parts[usize::from(*ed)][1].to_owned(),
                    Segment::RealSignature(ed) => parts[usize::from(*ed)][2].to_owned(),
                    Segment::Truncated(ed, n) => {
                        let sig = parts[usize::from(*ed)][2];
                        sig[..sig.len().saturating_sub(*n)].to_owned()
                    }
                    Segment::Header(v) | Segment::Json(v) => b64(v.to_string()),
                    Segment::Bytes(b) => b64(b),
                    Segment::Text(t) => t.clone(),
                })
                .collect();
            let token = text.join(".");
            let got = rt.block_on(verifier.verify(&token));
            if real.contains(&token) {
                prop_assert!(got.is_ok(), "{:?}", got);
            } else {
                prop_assert!(
                    matches!(got, Err(VerifyError::InvalidToken(_))),
                    "accepted {} as {:?}",
                    token,
                    got
                );
            }
            Ok(())
        },
    );
}

/// Where to change a signed token.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte of the decoded header, payload or signature (segment 0, 1 or 2) with a
    /// non-zero value and re-encode.
    Byte(usize, Index, u8),
    /// Replace one character of the token text with another.
    Char(Index, char),
    /// Drop the last characters.
    Truncate(usize),
    /// Append characters.
    Append(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0usize..3, any::<Index>(), 1u8..=255).prop_map(|(s, i, x)| Mutation::Byte(s, i, x)),
        2 => (any::<Index>(), prop_oneof![
            select(&b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "[..])
                .prop_map(char::from),
            any::<char>(),
        ]).prop_map(|(i, c)| Mutation::Char(i, c)),
        1 => (1usize..8).prop_map(Mutation::Truncate),
        1 => "[A-Za-z0-9_.=-]{1,4}".prop_map(Mutation::Append),
    ]
}

fn mutate(token: &str, m: &Mutation) -> String {
    match m {
        Mutation::Byte(segment, at, x) => {
            let mut parts: Vec<Vec<u8>> = token
                .split('.')
                .map(|p| URL_SAFE_NO_PAD.decode(p).unwrap())
                .collect();
            let bytes = &mut parts[*segment];
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            parts.iter().map(b64).collect::<Vec<_>>().join(".")
        }
        Mutation::Char(at, c) => {
            let mut chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            chars[i] = *c;
            chars.into_iter().collect()
        }
        Mutation::Truncate(n) => token[..token.len() - n].to_owned(),
        Mutation::Append(s) => format!("{token}{s}"),
    }
}

#[test]
fn verify_accepts_a_signed_token_and_refuses_any_one_byte_change() {
    let issuer = Issuer::new();
    let verifier = issuer.verifier();
    let rt = runtime();
    let strategy = (
        any::<bool>(),
        claim_parts(),
        (1u64..86_400, 0u64..600),
        prop::collection::vec(("[a-z]{1,6}", json_value()), 0..4),
        mutation(),
    );
    fuzz(
        "verify_accepts_a_signed_token_and_refuses_any_one_byte_change",
        strategy,
        |(ed, parts, times, extra, m)| {
            let claims = good_claims(parts.clone(), times, extra);
            let token = issuer.sign(ed, &claims);
            let at = rt
                .block_on(verifier.verify(&token))
                .map_err(|e| TestCaseError::fail(format!("signed token refused: {e:?}")))?;
            let (client_id, scopes, jti) = parts;
            prop_assert_eq!(at.client_id(), client_id.as_str());
            prop_assert_eq!(at.subject(), client_id.as_str());
            prop_assert_eq!(at.jti(), Some(jti.as_str()));
            prop_assert_eq!(at.expires_at(), (T0 + times.0) as i64);
            let want: std::collections::BTreeSet<&str> =
                scopes.iter().map(String::as_str).collect();
            prop_assert_eq!(at.scopes(), want);
            prop_assert_eq!(at.audience().collect::<Vec<_>>(), vec![AUD]);
            let changed = mutate(&token, &m);
            if changed != token {
                let got = rt.block_on(verifier.verify(&changed));
                prop_assert!(
                    matches!(got, Err(VerifyError::InvalidToken(_))),
                    "changed token accepted: {:?} -> {:?}",
                    m,
                    got
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The JWKS parsers.

/// A JWK-shaped object: each member right for some key type, wrong for another, or missing.
fn jwk() -> impl Strategy<Value = Value> {
    let text = |options: &'static [&'static str]| {
        prop::option::weighted(
            0.8,
            prop_oneof![
                8 => select(options).prop_map(Value::from),
                1 => json_value(),
            ],
        )
    };
    let bytes = prop::option::weighted(
        0.8,
        prop_oneof![
            prop_oneof![Just(32usize), Just(48), 0usize..300]
                .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
                .prop_map(|b| Value::from(b64(b))),
            "[A-Za-z0-9_=+/-]{0,50}".prop_map(Value::from),
            json_value(),
        ],
    );
    (
        (
            text(&["EC", "RSA", "OKP", "oct", "ec", ""]),
            text(&["P-256", "P-384", "P-521", "Ed25519", "X25519", "secp256k1"]),
            text(&[
                "ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS512", "HS256", "none", "RSA-OAEP",
            ]),
            text(&["sig", "enc", "jwt-svid", ""]),
        ),
        (
            bytes.clone(),
            bytes.clone(),
            bytes.clone(),
            bytes.clone(),
            bytes,
        ),
        prop::option::weighted(0.7, "[a-z0-9-]{0,6}"),
        prop::option::weighted(0.2, json_value()),
    )
        .prop_map(|((kty, crv, alg, key_use), (x, y, n, e, k), kid, ops)| {
            let mut o = serde_json::Map::new();
            let members = [
                ("kty", kty),
                ("crv", crv),
                ("alg", alg),
                ("use", key_use),
                ("x", x),
                ("y", y),
                ("n", n),
                ("e", e),
                ("k", k),
                ("kid", kid.map(Value::from)),
                ("key_ops", ops),
            ];
            for (name, value) in members {
                if let Some(v) = value {
                    o.insert(name.into(), v);
                }
            }
            Value::Object(o)
        })
}

/// A JWKS document: made-up keys (never named with a real key's `kid`), maybe with the real
/// ones, or some other JSON, or not JSON at all.
#[derive(Debug, Clone)]
struct Jwks {
    json: String,
    with_es: bool,
    with_ed: bool,
    /// Whether the made-up keys alone are a JWKS the JWK parser reads (each may still be
    /// unusable). A member of the wrong JSON type (`"alg": false`, `"kid": 5`, `"use": 1`,
    /// `"key_ops": "sign"`) makes it refuse the whole set, real keys and all.
    others_read: bool,
}

fn jwks_text(issuer: &Issuer) -> impl Strategy<Value = Jwks> {
    let es = issuer.es_jwk.clone();
    let ed = issuer.ed_jwk.clone();
    prop_oneof![
        6 => (
            prop::collection::vec(jwk(), 0..5),
            any::<bool>(),
            any::<bool>(),
            any::<Index>(),
        )
            .prop_map(move |(mut keys, with_es, with_ed, at)| {
                let others_read =
                    serde_json::from_value::<JwkSet>(json!({"keys": keys.clone()})).is_ok();
                if with_es {
                    keys.insert(at.index(keys.len() + 1), es.clone());
                }
                if with_ed {
                    keys.insert(at.index(keys.len() + 1), ed.clone());
                }
                Jwks {
                    json: json!({"keys": keys}).to_string(),
                    with_es,
                    with_ed,
                    others_read,
                }
            }),
        1 => json_value().prop_map(|v| Jwks::other(json!({"keys": v}).to_string())),
        1 => json_value().prop_map(|v| Jwks::other(v.to_string())),
        1 => any::<String>().prop_map(Jwks::other),
    ]
}

impl Jwks {
    fn other(json: String) -> Self {
        Self {
            json,
            with_es: false,
            with_ed: false,
            others_read: true,
        }
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn jwks_parsers_agree_and_refuse_sets_without_usable_keys() {
    let issuer = Issuer::new();
    let rt = runtime();
    let claims = good_claims(("tc_1".into(), vec![], "j".into()), (300, 0), vec![]);
    let tokens = [issuer.sign(false, &claims), issuer.sign(true, &claims)];
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let svid = KeyCacheSettings {
        key_use: Some("jwt-svid".into()),
        ..KeyCacheSettings::default()
    };
    fuzz(
        "jwks_parsers_agree_and_refuse_sets_without_usable_keys",
        jwks_text(&issuer),
        |jwks| {
            let Jwks {
                json,
                with_es,
                with_ed,
                others_read,
            } = jwks;
            let checked = check_jwks(&json, None);
            let keys = Keys::new(
                KeySource::Static(json.clone()),
                &KeyCacheSettings::default(),
                None,
                clock.clone(),
            );
            let built = Verifier::builder(ISS, AUD)
                .static_jwks(&json)
                .clock(clock.clone())
                .build();
            // The three readers of a static JWKS agree on whether it is usable.
            prop_assert_eq!(checked.is_ok(), keys.is_ok(), "{}", json);
            prop_assert_eq!(checked.is_ok(), built.is_ok(), "{}", json);
            let svid_checked = check_jwks(&json, Some("jwt-svid"));
            let svid_keys = Keys::new(KeySource::Static(json.clone()), &svid, None, clock.clone());
            prop_assert_eq!(svid_checked.is_ok(), svid_keys.is_ok());
            if let Ok((kids, count)) = &checked {
                // A set with no usable key is an error, never an empty success.
                prop_assert!(*count >= 1);
                prop_assert!(kids.len() <= *count);
                prop_assert_eq!(kids, &sorted(keys.unwrap().key_ids()));
            }
            // The real keys, when present, are usable, and a verifier built on the set
            // accepts what they signed. (Not when a made-up key has a member of the wrong
            // JSON type: the set is then refused whole, where RFC 7517 §5 says such a key
            // SHOULD be ignored; reported, not pinned here.)
            if (with_es || with_ed) && others_read {
                let (kids, _) = checked.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let verifier = built.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                for (present, kid, token) in
                    [(with_es, ES_KID, &tokens[0]), (with_ed, ED_KID, &tokens[1])]
                {
                    if present {
                        prop_assert!(kids.iter().any(|k| k == kid));
                        let got = rt.block_on(verifier.verify(token));
                        prop_assert!(got.is_ok(), "{:?}", got);
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn jwks_of_unusable_keys_is_an_error() {
    // Keys a verifier must never use: symmetric, for encryption, of unknown curves, with
    // coordinates of the wrong length, or whose `alg` does not fit their type.
    let issuer = Issuer::new();
    let es = issuer.es_jwk.clone();
    let ed = issuer.ed_jwk.clone();
    let unusable = prop_oneof![
        "[A-Za-z0-9_-]{0,60}".prop_map(|k| json!({"kty": "oct", "k": k, "alg": "HS256"})),
        select(&["enc", "", "SIG", "jwt-svid"][..]).prop_map(move |u| {
            let mut k = es.clone();
            k["use"] = json!(u);
            k
        }),
        select(&["ES256", "RS256", "HS256", "none", "ES384"][..]).prop_map(move |a| {
            let mut k = ed.clone();
            k["alg"] = json!(a);
            k
        }),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_filter("right length", |b| b.len() != 32)
            .prop_map(|x| json!({"kty": "EC", "crv": "P-256", "x": b64(&x), "y": b64(&x)})),
        prop::collection::vec(any::<u8>(), 32..=32)
            .prop_map(|x| json!({"kty": "OKP", "crv": "X25519", "x": b64(x)})),
    ];
    fuzz(
        "jwks_of_unusable_keys_is_an_error",
        prop::collection::vec(unusable, 0..5),
        |keys| {
            let json = json!({"keys": keys}).to_string();
            prop_assert!(check_jwks(&json, None).is_err(), "{}", json);
            let built = Verifier::builder(ISS, AUD).static_jwks(&json).build();
            prop_assert!(built.is_err(), "{}", json);
            Ok(())
        },
    );
}
