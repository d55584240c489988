//! Each credential on the wire, against a fake token endpoint (and a fake GitHub Actions
//! runner) on 127.0.0.1: the exact form, the headers, and assertions that verify with the
//! published public key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::assertion::Env;
use crate::{
    AssertionError, AssertionSource, AuthorizedClient, ClientSecret, KeyAlg, PrivateKey,
    RetryPolicy, TokenError, TokenSource,
};

/// One request the fake server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
    /// `X-Service-Name`.
    service: Option<String>,
    body: String,
}

#[derive(Default)]
struct Fake {
    base: String,
    seen: Mutex<Vec<Seen>>,
    issued: AtomicUsize,
    /// Status of the fake runner's answers (200 unless a test says otherwise).
    runner_status: AtomicU16,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn token_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.uri == "/token")
            .collect()
    }
}

/// Serves discovery at `/.well-known/oauth-authorization-server` (issuer = the base URL), a
/// token endpoint at `/token`, and a GitHub Actions ID token endpoint at `/runner`.
async fn fake_server() -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        base,
        runner_status: AtomicU16::new(200),
        ..Fake::default()
    });
    let state = fake.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let fake = state.clone();
            async move { answer(&fake, method, uri, headers, body) }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn answer(fake: &Fake, method: Method, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let uri = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    fake.seen.lock().unwrap().push(Seen {
        method,
        uri: uri.clone(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        service: headers
            .get("x-service-name")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    });
    let json = |status: u16, v: Value| {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    if uri == "/.well-known/oauth-authorization-server" {
        let token_endpoint = format!("{}/token", fake.base);
        json(
            200,
            json!({"issuer": fake.base, "token_endpoint": token_endpoint}),
        )
    } else if uri == "/token" {
        let n = fake.issued.fetch_add(1, Ordering::SeqCst);
        json(
            200,
            json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 300}),
        )
    } else if uri.starts_with("/runner") {
        let status = fake.runner_status.load(Ordering::SeqCst);
        json(status, json!({"value": "gh.id.token"}))
    } else {
        json(404, json!({}))
    }
}

/// The form fields in order, decoded.
fn fields(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                    .iter()
                    .map(|&c| c as char)
                    .collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

fn segment(jws: &str, i: usize) -> Value {
    let part = jws.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Check the JWS signature with the public JWK, as a server holding only that would.
fn verify_with_jwk(jwk: &Value, jws: &str) {
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let b = |m: &str| URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap();
    let ok = match jwk["kty"].as_str().unwrap() {
        "EC" => {
            let point = [vec![4u8], b("x"), b("y")].concat();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
        }
        "OKP" => UnparsedPublicKey::new(&signature::ED25519, b("x")).verify(input.as_bytes(), &sig),
        "RSA" => RsaPublicKeyComponents {
            n: b("n"),
            e: b("e"),
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &sig,
        ),
        kty => panic!("kty {kty}"),
    };
    ok.unwrap_or_else(|_| panic!("{} signature does not verify", jwk["alg"]));
}

fn unix_now() -> u64 {
    super::unix_now()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    }
}

#[tokio::test]
async fn private_key_jwt_sends_a_verifiable_assertion_and_no_secret() {
    let fake = fake_server().await;
    let token_url = format!("{}/token", fake.base);
    for alg in [KeyAlg::Es256, KeyAlg::EdDsa, KeyAlg::Rs256] {
        let key = PrivateKey::generate(alg, Some("k-1".into())).unwrap();
        let jwk = key.public_jwk();
        let source = TokenSource::private_key_jwt("tc_1", key)
            .token_url(&token_url)
            .scope("s2s:read")
            .scope("s2s:write")
            .audience("https://orders.internal")
            .build()
            .unwrap();
        source.token().await.unwrap();
        let sent = fake.token_requests().pop().unwrap();
        assert_eq!(sent.method, Method::POST);
        assert_eq!(sent.authorization, None, "{alg}: no Authorization header");
        assert!(sent.body.starts_with(
            "grant_type=client_credentials&client_id=tc_1\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion="
        ));
        assert!(sent
            .body
            .ends_with("&scope=s2s%3Aread+s2s%3Awrite&resource=https%3A%2F%2Forders.internal"));
        let f = fields(&sent.body);
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "grant_type",
                "client_id",
                "client_assertion_type",
                "client_assertion",
                "scope",
                "resource"
            ]
        );
        let jws = &f[3].1;
        assert_eq!(
            segment(jws, 0),
            json!({"alg": alg.as_str(), "typ": "JWT", "kid": "k-1"})
        );
        let claims = segment(jws, 1);
        assert_eq!(claims["iss"], "tc_1");
        assert_eq!(claims["sub"], "tc_1");
        // No issuer configured: the token endpoint URL is the audience.
        assert_eq!(claims["aud"], token_url.as_str());
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(iat.abs_diff(unix_now()) <= 5);
        assert_eq!(exp, iat + 60);
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap();
        assert_eq!(jti.len(), 16);
        verify_with_jwk(&jwk, jws);
    }
}

#[tokio::test]
async fn private_key_jwt_audience_is_the_issuer_when_known() {
    let fake = fake_server().await;
    let key = PrivateKey::generate(KeyAlg::Es256, None).unwrap();
    for builder in [
        TokenSource::private_key_jwt("tc_1", key.clone()).issuer(&fake.base),
        // Both set: the endpoint is used as given, the audience is still the issuer.
        TokenSource::private_key_jwt("tc_1", key.clone())
            .issuer(&fake.base)
            .token_url(format!("{}/token", fake.base)),
    ] {
        builder.build().unwrap().token().await.unwrap();
        let sent = fake.token_requests().pop().unwrap();
        let claims = segment(&fields(&sent.body)[3].1, 1);
        assert_eq!(claims["aud"], fake.base.as_str());
    }
}

#[tokio::test]
async fn every_token_request_signs_a_new_assertion() {
    let fake = fake_server().await;
    let key = PrivateKey::generate(KeyAlg::EdDsa, None).unwrap();
    let source = TokenSource::private_key_jwt("tc_1", key)
        .token_url(format!("{}/token", fake.base))
        .build()
        .unwrap();
    let mut jtis = Vec::new();
    for _ in 0..3 {
        let token = source.token().await.unwrap();
        source.invalidate(&token);
    }
    for sent in fake.token_requests() {
        let claims = segment(&fields(&sent.body)[3].1, 1);
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 3);
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 3, "a jti was reused");
}

#[tokio::test]
async fn assertion_file_is_read_again_for_every_token_request() {
    let fake = fake_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "eyJ.one.sig\n").unwrap();
    let source = TokenSource::assertion(AssertionSource::file(&path))
        .token_url(format!("{}/token", fake.base))
        .scope("s2s:read")
        .audience("https://orders.internal")
        .build()
        .unwrap();
    let token = source.token().await.unwrap();
    // The kubelet rotates the file.
    std::fs::write(&path, "eyJ.two.sig").unwrap();
    source.invalidate(&token);
    source.token().await.unwrap();
    let bodies: Vec<(String, Option<String>)> = fake
        .token_requests()
        .into_iter()
        .map(|s| (s.body, s.authorization))
        .collect();
    let grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
    let rest = "&scope=s2s%3Aread&resource=https%3A%2F%2Forders.internal";
    assert_eq!(
        bodies,
        [
            (format!("{grant}&assertion=eyJ.one.sig{rest}"), None),
            (format!("{grant}&assertion=eyJ.two.sig{rest}"), None),
        ]
    );
}

#[tokio::test]
async fn assertion_failures_are_reported_not_retried() {
    let fake = fake_server().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    type Expect = fn(&AssertionError) -> bool;
    let cases: [(AssertionSource, Expect); 3] = [
        (AssertionSource::file(dir.path().join("missing")), |e| {
            matches!(e, AssertionError::File { .. })
        }),
        (AssertionSource::file(&empty), |e| {
            matches!(e, AssertionError::Empty)
        }),
        (
            AssertionSource::from_fn(|| {
                std::future::ready(Err::<String, _>(std::io::Error::other("vault sealed")))
            }),
            |e| matches!(e, AssertionError::Callback(c) if c.to_string() == "vault sealed"),
        ),
    ];
    for (source, expected) in cases {
        let err = TokenSource::assertion(source.clone())
            .token_url(format!("{}/token", fake.base))
            .build()
            .unwrap()
            .token()
            .await
            .unwrap_err();
        match &err {
            TokenError::Assertion(e) => assert!(expected(e), "{source:?}: {e:?}"),
            other => panic!("{source:?}: {other:?}"),
        }
    }
    assert!(fake.token_requests().is_empty());
}

#[tokio::test]
async fn assertion_callback_is_called_for_every_token_request() {
    let fake = fake_server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let source = TokenSource::assertion(AssertionSource::from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(format!("eyJ.call{n}.sig")) }
    }))
    .token_url(format!("{}/token", fake.base))
    .build()
    .unwrap();
    let token = source.token().await.unwrap();
    source.invalidate(&token);
    source.token().await.unwrap();
    let assertions: Vec<String> = fake
        .token_requests()
        .iter()
        .map(|s| fields(&s.body)[1].1.clone())
        .collect();
    assert_eq!(assertions, ["eyJ.call0.sig", "eyJ.call1.sig"]);
}

fn runner_env(fake: &Fake) -> Env {
    let vars: HashMap<&str, String> = [
        (
            crate::assertion::GITHUB_URL_VAR,
            format!("{}/runner?api-version=2.0", fake.base),
        ),
        (crate::assertion::GITHUB_TOKEN_VAR, "runner-secret".into()),
    ]
    .into();
    Arc::new(move |k| vars.get(k).cloned())
}

#[tokio::test]
async fn github_actions_asks_the_runner_with_its_token_and_audience() {
    let fake = fake_server().await;
    let source =
        AssertionSource::github_actions_with_env("https://auth.example.com", runner_env(&fake));
    TokenSource::assertion(source)
        .token_url(format!("{}/token", fake.base))
        .build()
        .unwrap()
        .token()
        .await
        .unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(
        seen[0].uri,
        "/runner?api-version=2.0&audience=https%3A%2F%2Fauth.example.com"
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer runner-secret")
    );
    assert_eq!(
        seen[1].body,
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=gh.id.token"
    );
    assert_eq!(seen[1].authorization, None);
}

#[tokio::test]
async fn github_actions_outside_a_job_says_what_is_missing() {
    let source = AssertionSource::github_actions_with_env("aud", Arc::new(|_| None));
    let err = TokenSource::assertion(source)
        .token_url("http://127.0.0.1:9/token")
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Assertion(AssertionError::GitHubActionsUnavailable {
                variable: "ACTIONS_ID_TOKEN_REQUEST_URL"
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("id-token: write"), "{err}");
}

#[tokio::test]
async fn github_actions_runner_failures_are_retried() {
    let fake = fake_server().await;
    fake.runner_status.store(503, Ordering::SeqCst);
    let source = AssertionSource::github_actions_with_env("aud", runner_env(&fake));
    let err = TokenSource::assertion(source)
        .token_url(format!("{}/token", fake.base))
        .retry(fast_retry())
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TokenError::Unavailable { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 2);
    // A refusal (403: the job lacks the permission) is not retried.
    fake.runner_status.store(403, Ordering::SeqCst);
    let source = AssertionSource::github_actions_with_env("aud", runner_env(&fake));
    let err = TokenSource::assertion(source)
        .token_url(format!("{}/token", fake.base))
        .retry(fast_retry())
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Assertion(AssertionError::GitHubActions {
                status: Some(403),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 3);
}

#[test]
fn debug_shows_no_key_or_runner_token() {
    let key = PrivateKey::generate(KeyAlg::Es256, None).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let body = pem.lines().nth(1).unwrap();
    let source = TokenSource::private_key_jwt("tc_1", key)
        .token_url("http://x")
        .build()
        .unwrap();
    let shown = format!("{source:?}");
    assert!(
        shown.contains("tc_1") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(!shown.contains(&body[..16]), "{shown}");
    let vars: HashMap<&str, String> =
        [(crate::assertion::GITHUB_TOKEN_VAR, "runner-secret".into())].into();
    let gh =
        AssertionSource::github_actions_with_env("aud", Arc::new(move |k| vars.get(k).cloned()));
    assert!(!format!("{gh:?}").contains("runner-secret"));
}

#[tokio::test]
async fn service_name_goes_on_token_requests_and_authorized_calls_only_when_set() {
    let fake = fake_server().await;
    let token_url = format!("{}/token", fake.base);
    let named = TokenSource::builder("tc_1", ClientSecret::new("s"))
        .token_url(&token_url)
        .service_name("billing worker")
        .build()
        .unwrap();
    let api = AuthorizedClient::new(reqwest::Client::new(), named);
    api.send(api.get(format!("{}/api/orders", fake.base)))
        .await
        .unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].uri, "/token");
    assert_eq!(seen[1].uri, "/api/orders");
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer at-0"));
    for s in &seen {
        assert_eq!(s.service.as_deref(), Some("billing worker"), "{}", s.uri);
    }

    let anonymous = TokenSource::builder("tc_1", ClientSecret::new("s"))
        .token_url(&token_url)
        .build()
        .unwrap();
    let api = AuthorizedClient::new(reqwest::Client::new(), anonymous);
    api.send(api.get(format!("{}/api/orders", fake.base)))
        .await
        .unwrap();
    assert!(fake.seen()[2..].iter().all(|s| s.service.is_none()));

    for bad in ["", "line\nbreak", "é", &"x".repeat(65)] {
        let r = TokenSource::builder("tc_1", ClientSecret::new("s"))
            .token_url(&token_url)
            .service_name(bad)
            .build();
        assert!(matches!(r, Err(TokenError::Config(_))), "{bad:?}");
    }
}
