//! A test OIDC issuer on 127.0.0.1: discovery and a JWKS over HTTP, keys it can rotate, and
//! tokens it mints shaped like a CI/CD platform's or a cluster's. Also signs `private_key_jwt`
//! assertions with keys the tests register. Runs on its own thread and runtime, so it answers
//! while a test blocks on the CLI.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// A signing key with its public JWK.
pub enum TestKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    pub fn es256() -> TestKey {
        TestKey::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    pub fn ed25519() -> TestKey {
        TestKey::Ed25519(Ed25519KeyPair::generate().unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            TestKey::Es256(_) => "ES256",
            TestKey::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK, with `kid` if given and any extra members (`use`).
    pub fn jwk(&self, kid: Option<&str>, extra: Value) -> Value {
        let mut jwk = match self {
            TestKey::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
            }
            TestKey::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.public_key().as_ref())})
            }
        };
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        if let (Some(obj), Some(extra)) = (jwk.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        jwk
    }

    pub fn sign_bytes(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Es256(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            TestKey::Ed25519(k) => k.sign(msg).as_ref().to_vec(),
        }
    }

    /// A compact JWS of `claims` with `header` (`alg` filled in if absent).
    pub fn sign(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = self.alg().into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// HS256 keyed with `key` (the "public key as HMAC secret" attack).
pub fn hs256(kid: &str, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct State {
    /// (kid, key); the last one signs.
    keys: Vec<(String, TestKey)>,
    /// Answer HTTP at all (false: every request is 503).
    up: bool,
    /// What discovery says the issuer is (tests of the exact-issuer check change it).
    discovery_issuer: Option<String>,
    fetches: usize,
}

/// See the module documentation.
pub struct TestIssuer {
    pub url: String,
    state: Arc<Mutex<State>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestIssuer {
    /// Start serving `/.well-known/openid-configuration` and `/jwks` on 127.0.0.1:0.
    pub fn start() -> TestIssuer {
        let state = Arc::new(Mutex::new(State {
            keys: vec![("k1".into(), TestKey::es256())],
            up: true,
            discovery_issuer: None,
            fetches: 0,
        }));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", listener.local_addr().unwrap());
                addr_tx.send(url.clone()).unwrap();
                let s1 = st.clone();
                let u1 = url.clone();
                let s2 = st.clone();
                let s3 = st.clone();
                let u3 = url.clone();
                let app = axum::Router::new()
                    .route(
                        // A GitHub Actions runner's ID-token endpoint
                        // (ACTIONS_ID_TOKEN_REQUEST_URL), with the request token "runner-token".
                        "/actions-token",
                        axum::routing::get(
                            move |q: axum::extract::Query<std::collections::HashMap<String, String>>,
                                  headers: axum::http::HeaderMap| {
                                let s = s3.clone();
                                let u = u3.clone();
                                async move {
                                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                                    if auth != Some("Bearer runner-token") {
                                        return (axum::http::StatusCode::FORBIDDEN, String::new());
                                    }
                                    let t = now();
                                    let claims = json!({"iss": u, "aud": q.get("audience").cloned().unwrap_or_default(),
                                        "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app",
                                        "repository_owner": "acme", "ref": "refs/heads/main", "iat": t, "nbf": t, "exp": t + 300,
                                        "jti": "gh-runner"});
                                    let g = s.lock().unwrap();
                                    let (kid, key) = g.keys.last().unwrap();
                                    let jwt = key.sign(json!({"typ": "JWT", "kid": kid}), &claims);
                                    (axum::http::StatusCode::OK, json!({"count": 1, "value": jwt}).to_string())
                                }
                            },
                        ),
                    )
                    .route(
                        "/.well-known/openid-configuration",
                        axum::routing::get(move || {
                            let s = s1.clone();
                            let u = u1.clone();
                            async move {
                                let g = s.lock().unwrap();
                                if !g.up {
                                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                                }
                                let iss = g.discovery_issuer.clone().unwrap_or(u.clone());
                                let doc = json!({"issuer": iss, "jwks_uri": format!("{u}/jwks"),
                                    "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                                    "id_token_signing_alg_values_supported": ["ES256"]});
                                (axum::http::StatusCode::OK, doc.to_string())
                            }
                        }),
                    )
                    .route(
                        "/jwks",
                        axum::routing::get(move || {
                            let s = s2.clone();
                            async move {
                                let mut g = s.lock().unwrap();
                                if !g.up {
                                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                                }
                                g.fetches += 1;
                                let keys: Vec<Value> =
                                    g.keys.iter().map(|(kid, k)| k.jwk(Some(kid), json!({"use": "sig"}))).collect();
                                (axum::http::StatusCode::OK, json!({"keys": keys}).to_string())
                            }
                        }),
                    );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let url = addr_rx.recv().unwrap();
        TestIssuer {
            url,
            state,
            _shutdown: stop_tx,
        }
    }

    /// A token signed by the current key, with `kid`.
    pub fn mint(&self, claims: &Value) -> String {
        let g = self.state.lock().unwrap();
        let (kid, key) = g.keys.last().unwrap();
        key.sign(json!({"typ": "JWT", "kid": kid}), claims)
    }

    /// The current key's id.
    pub fn kid(&self) -> String {
        self.state.lock().unwrap().keys.last().unwrap().0.clone()
    }

    /// Publish a new key and sign with it from now on.
    pub fn rotate(&self) {
        let mut g = self.state.lock().unwrap();
        let kid = format!("k{}", g.keys.len() + 1);
        g.keys.push((kid, TestKey::es256()));
    }

    pub fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }

    pub fn set_discovery_issuer(&self, iss: &str) {
        self.state.lock().unwrap().discovery_issuer = Some(iss.into());
    }

    /// The JWKS it serves, as JSON text.
    pub fn jwks_json(&self) -> String {
        let g = self.state.lock().unwrap();
        let keys: Vec<Value> = g
            .keys
            .iter()
            .map(|(kid, k)| k.jwk(Some(kid), json!({"use": "sig"})))
            .collect();
        json!({"keys": keys}).to_string()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }
}
