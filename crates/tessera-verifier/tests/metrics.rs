//! The verifier's metrics, caught by a local recorder (no exporter, no global state): what a
//! verification counts, what a key fetch counts, and the key staleness gauge on the injected
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde_json::json;
use support::{Key as SigningKey, T0};
use tessera_verifier::metrics::{
    JWKS_REFRESHES, JWKS_REFRESH_FAILURES, KEY_STALENESS, TOKENS_ACCEPTED, TOKENS_REJECTED,
};
use tessera_verifier::{FetchError, FetchFuture, FetchResponse, Fetcher, ManualClock, Verifier};

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";

/// A recorder that keeps every counter and gauge in a map, keyed `name{label=value,…}`.
#[derive(Default)]
struct TestRecorder {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values.lock().unwrap().entry(name).or_default().clone()
    }

    fn counter(&self, name: &str, labels: &str) -> u64 {
        let key = format!("{name}{{{labels}}}");
        self.values
            .lock()
            .unwrap()
            .get(&key)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &str) -> Option<f64> {
        let key = format!("{name}{{{labels}}}");
        self.values
            .lock()
            .unwrap()
            .get(&key)
            .map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    fn names(&self) -> Vec<String> {
        self.values.lock().unwrap().keys().cloned().collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// An issuer serving discovery and its JWKS, which can be taken down.
struct Issuer {
    jwks: String,
    down: AtomicBool,
}

impl Fetcher for Issuer {
    fn get<'a>(&'a self, url: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(FetchError {
                    url: url.into(),
                    reason: "connection refused".into(),
                });
            }
            let body = if url.ends_with("/.well-known/oauth-authorization-server") {
                json!({"issuer": ISS, "jwks_uri": "https://issuer.test/keys"}).to_string()
            } else {
                self.jwks.clone()
            };
            Ok(FetchResponse {
                body: body.into_bytes(),
                max_age: Some(Duration::from_secs(300)),
            })
        })
    }
}

fn claims(exp: u64, aud: &str) -> serde_json::Value {
    json!({"iss": ISS, "sub": "svc", "client_id": "svc", "aud": aud, "iat": T0, "exp": exp,
        "jti": "j1", "scope": "s2s:internal"})
}

#[test]
fn verifications_and_key_fetches_are_counted() {
    let recorder = TestRecorder::default();
    let key = SigningKey::new("k1");
    let issuer = Arc::new(Issuer {
        jwks: key.jwks(),
        down: AtomicBool::new(false),
    });
    let clock: Arc<ManualClock> = support::clock();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let verifier = Verifier::builder(ISS, AUD)
                .fetcher(issuer.clone())
                .clock(clock.clone())
                .unknown_kid_cooldown(Duration::from_secs(1))
                .build()
                .unwrap();
            let good = key.sign(Some("at+jwt"), &claims(T0 + 3600, AUD));
            verifier.verify(&good).await.unwrap();
            verifier.verify(&good).await.unwrap();
            let expired = key.sign(Some("at+jwt"), &claims(T0 - 600, AUD));
            let elsewhere = key.sign(Some("at+jwt"), &claims(T0 + 3600, "https://other.test"));
            assert!(verifier.verify(&expired).await.is_err());
            assert!(verifier.verify(&elsewhere).await.is_err());
            assert!(verifier.verify("not.a.token").await.is_err());

            assert_eq!(recorder.counter(TOKENS_ACCEPTED, ""), 2);
            assert_eq!(recorder.counter(TOKENS_REJECTED, "reason=expired"), 1);
            assert_eq!(
                recorder.counter(TOKENS_REJECTED, "reason=wrong_audience"),
                1
            );
            assert_eq!(recorder.counter(TOKENS_REJECTED, "reason=malformed"), 1);
            let iss = format!("issuer={ISS}");
            assert_eq!(recorder.counter(JWKS_REFRESHES, &iss), 1);
            assert_eq!(recorder.counter(JWKS_REFRESH_FAILURES, &iss), 0);
            assert_eq!(recorder.gauge(KEY_STALENESS, &iss), Some(0.0));

            // 100 s later the keys are 100 s old, as the next verification reports.
            clock.advance(Duration::from_secs(100));
            verifier.verify(&good).await.unwrap();
            assert_eq!(recorder.gauge(KEY_STALENESS, &iss), Some(100.0));

            // Past the refresh time (80 % of max-age) with the issuer down: the background
            // refresh fails, the last good keys stay in use and keep ageing.
            issuer.down.store(true, Ordering::SeqCst);
            clock.advance(Duration::from_secs(200));
            verifier.verify(&good).await.unwrap();
            for _ in 0..100 {
                if recorder.counter(JWKS_REFRESH_FAILURES, &iss) > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(recorder.counter(JWKS_REFRESHES, &iss), 2);
            assert_eq!(recorder.counter(JWKS_REFRESH_FAILURES, &iss), 1);
            assert_eq!(recorder.gauge(KEY_STALENESS, &iss), Some(300.0));
            assert_eq!(recorder.counter(TOKENS_ACCEPTED, ""), 4);
        });
    });
    // Nothing from a token is a label: the series are exactly these.
    let names = recorder.names();
    assert!(
        names.iter().all(|n| n.starts_with("tessera_verifier_")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("svc")), "{names:?}");
}

#[test]
fn a_static_jwks_has_no_key_series() {
    let recorder = TestRecorder::default();
    let key = SigningKey::new("k1");
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let verifier = support::builder(ISS, AUD, &key).build().unwrap();
            let token = key.sign(Some("JWT"), &claims(T0 + 3600, AUD));
            let err = verifier.verify(&token).await.unwrap_err();
            assert_eq!(err.reason(), "wrong_type");
        });
    });
    assert_eq!(recorder.counter(TOKENS_REJECTED, "reason=wrong_type"), 1);
    assert_eq!(
        recorder.names(),
        [format!("{TOKENS_REJECTED}{{reason=wrong_type}}")]
    );
}

/// Every reason is a fixed snake_case word, whatever the token said.
#[test]
fn reasons_are_fixed_names() {
    use tessera_verifier::{InvalidToken, VerifyError};
    let errors = [
        VerifyError::InvalidToken(InvalidToken::BadSignature),
        VerifyError::InvalidToken(InvalidToken::Revoked),
        VerifyError::InsufficientScope {
            required: "attacker chosen".into(),
        },
        VerifyError::KeysUnavailable("https://evil.example down".into()),
        VerifyError::RevocationsUnavailable,
    ];
    for e in errors {
        let r = e.reason();
        assert!(
            r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{r}"
        );
    }
}
