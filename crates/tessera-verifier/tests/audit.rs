//! `X-Service-Name` in the audit events, for tokens and static API keys. Alone in its test
//! binary: tracing caches per call site whether anyone listens, and tests on other threads
//! hitting the same call sites without a subscriber would race with the one installed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::{json, Value};
use support::{builder, Key, T0};
use tessera_verifier::axum::{Guard, Requirement};
use tessera_verifier::{AccessToken, ApiKeyAuthenticator, ApiKeySource, RoleMap};
use tower::ServiceExt as _;

/// Request headers, name and value.
type Headers = Vec<(&'static str, String)>;

/// Captures what tracing writes, for the audit assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn audit_events_carry_the_callers_service_name_for_tokens_and_keys() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = Key::new("k1");
    let verifier = builder("https://issuer.test", "https://api.test", &key)
        .build()
        .unwrap();
    std::env::set_var("TESSERA_VERIFIER_TEST_AUDIT_KEYS", "billing-key");
    let keys = ApiKeyAuthenticator::builder()
        .key(
            "billing",
            ApiKeySource::Env("TESSERA_VERIFIER_TEST_AUDIT_KEYS".into()),
            ["s2s:internal"],
        )
        .build()
        .unwrap();
    let guard = Guard::new(verifier)
        .with_api_keys(Arc::new(keys))
        .with_roles(Arc::new(
            RoleMap::new().role("ADMIN", |r| r.scope("s2s:admin")),
        ));
    let who = |t: AccessToken| async move { t.client_id().to_string() };
    let app = axum::Router::new()
        .route("/ping", get(who))
        .route_layer(guard.requiring(Requirement::all(["s2s:internal"])))
        .merge(
            axum::Router::new()
                .route("/admin", get(who))
                .route_layer(guard.requiring(Requirement::role("ADMIN"))),
        );
    let long = format!("billing\tworker-{}", "x".repeat(100));
    let svc = |name: &str| ("x-service-name", name.to_string());
    let token = key.sign(
        Some("at+jwt"),
        &json!({"iss": "https://issuer.test", "aud": "https://api.test", "sub": "tc_1",
            "client_id": "tc_1", "exp": T0 + 300, "scope": "s2s:internal"}),
    );
    let calls: Vec<(&str, Headers, StatusCode)> = vec![
        (
            "/ping",
            vec![
                ("authorization", format!("Bearer {token}")),
                svc("orders-web"),
            ],
            StatusCode::OK,
        ),
        (
            "/ping",
            vec![("authorization", "Bearer a.b.c".into()), svc("orders-web")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/ping",
            vec![("x-api-key", "billing-key".into()), svc(&long)],
            StatusCode::OK,
        ),
        (
            "/ping",
            vec![("authorization", "Bearer wrong-key".into()), svc("billing")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/admin",
            vec![("x-api-key", "billing-key".into()), svc("billing")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ping",
            vec![("authorization", format!("Bearer {token}"))],
            StatusCode::OK,
        ),
    ];
    for (path, headers, want) in &calls {
        let mut req = Request::get(*path);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), *want, "{path} {headers:?}");
    }
    let events: Vec<(String, Option<String>, Option<String>)> = captured
        .lines()
        .into_iter()
        .filter(|e| e["target"] == "tessera_verifier::audit")
        .map(|e| {
            let f = &e["fields"];
            (
                f["message"].as_str().unwrap().to_owned(),
                f["service"].as_str().map(str::to_owned),
                f["client_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let cut = format!("billingworker-{}", "x".repeat(50));
    assert_eq!(cut.chars().count(), 64);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        events,
        vec![
            ("token accepted".into(), s("orders-web"), s("tc_1")),
            ("token rejected".into(), s("orders-web"), None),
            ("API key accepted".into(), Some(cut), s("static:billing")),
            ("authentication failed".into(), s("billing"), None),
            ("API key accepted".into(), s("billing"), s("static:billing")),
            (
                "authorization failed".into(),
                s("billing"),
                s("static:billing")
            ),
            ("token accepted".into(), None, s("tc_1")),
        ]
    );
}
