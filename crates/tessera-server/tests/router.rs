//! The whole server in-process: a real SQLite file, the real router driven with
//! `tower::ServiceExt::oneshot`, and a fixed clock moved by hand, so time-dependent behaviour
//! (expiry, grace periods, key activation) is tested without sleeping. The end-to-end suite in
//! `tests/e2e/` covers the same server through the real binary and sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use tessera_server::admin::{Admin, CreateClient};
use tessera_server::audit::Actor;
use tessera_server::clock::Clock;
use tessera_server::config::{Issuer, MasterKeySource, ServerConfig};
use tessera_server::keys::lifecycle::RotationTiming;
use tessera_server::keys::{Alg, MasterKey};
use tessera_server::secrets::VerifierLimits;
use tessera_server::App;
use tower::ServiceExt as _;

const T0: i64 = 1_900_000_000;
const ISSUER: &str = "https://tessera.test";

struct Harness {
    app: App,
    admin: Admin,
    clock: Clock,
    master: MasterKey,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        let master_b64 = STANDARD.encode([42u8; 32]);
        let clock = Clock::fixed(T0);
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: None,
            database_url: url.clone(),
            signing_alg: Alg::Es256,
            master_key: MasterKeySource::Value(master_b64.clone()),
            refresh_interval: Duration::from_secs(2),
            jwks_max_age: 300,
            verifier_limits: VerifierLimits::default(),
            max_body_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            access_token_typ: Default::default(),
            jwt_typ_audiences: vec![],
            max_connections: 100,
            max_connections_per_ip: 25,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(1),
            key_rotation_interval: None,
            default_max_tokens_per_minute: None,
            max_stale: Duration::from_secs(60),
            client_cache: tessera_server::registry::DEFAULT_CLIENT_CACHE,
            max_assertion_lifetime: Duration::from_secs(3600),
            external_jwks_cooldown: Duration::from_secs(30),
            tls: None,
            insecure_http: false,
            metrics_listen: None,
            metrics_per_client: false,
        };
        let app = App::load(config, Issuer::parse(ISSUER).unwrap(), clock.clone())
            .await
            .unwrap();
        let admin = tessera_server::open_admin(&url, clock.clone())
            .await
            .unwrap();
        Harness {
            app,
            admin,
            clock,
            master: MasterKey::from_base64(&master_b64).unwrap(),
            _dir: dir,
        }
    }

    async fn client(&self, ttl: u32, expires_at: Option<i64>) -> (String, String) {
        let (view, secret) = self
            .admin
            .create_client(
                &Actor::Operator("test".into()),
                CreateClient {
                    name: "svc".into(),
                    scopes: vec!["s2s:internal".into()],
                    audiences: vec!["https://api.test".into()],
                    token_ttl: Some(ttl),
                    expires_at,
                    keys: None,
                    claims: Default::default(),
                    max_tokens_per_minute: None,
                },
            )
            .await
            .unwrap();
        (
            view.client_id,
            secret.expect("a secret client").expose().to_owned(),
        )
    }

    /// Make the registry see the database as it is now (the background refresher's job when
    /// the server runs on a listener).
    async fn refresh(&self) {
        self.app.authority().registry().refresh().await.unwrap();
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = self.app.router().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn post(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            req = req.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        self.send(req.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    async fn token(&self, id: &str, secret: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .post(
                "/oauth/token",
                Some((id, secret)),
                "grant_type=client_credentials",
            )
            .await;
        (status, body)
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_times_come_from_the_injected_clock() {
    let h = Harness::new().await;
    let (id, secret) = h.client(120, None).await;
    let (status, body) = h.token(&id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 120);
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["iat"], T0);
    assert_eq!(c["nbf"], T0);
    assert_eq!(c["exp"], T0 + 120);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], "https://api.test");
    assert_eq!(c["sub"], id.as_str());
}

#[tokio::test]
async fn introspection_turns_inactive_at_exp_and_after_revocation() {
    let h = Harness::new().await;
    let (id, secret) = h.client(60, None).await;
    let (_, body) = h.token(&id, &secret).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let form = format!("token={token}");
    let introspect = || h.post("/oauth/introspect", Some((&id, &secret)), &form);

    let (status, headers, body) = introspect().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["exp"], T0 + 60);

    h.clock.set(T0 + 59);
    assert_eq!(introspect().await.2["active"], true);
    h.clock.set(T0 + 60);
    assert_eq!(introspect().await.2["active"], false, "expired at exp");

    // A second token, revoked by its own client, is inactive at once.
    h.clock.set(T0 + 100);
    let (_, body) = h.token(&id, &secret).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let form = format!("token={token}");
    let (status, _, _) = h.post("/oauth/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, body) = h
        .post("/oauth/introspect", Some((&id, &secret)), &form)
        .await;
    assert_eq!(body["active"], false);
}

#[tokio::test]
async fn client_expiry_and_secret_grace_end_exactly_on_time() {
    let h = Harness::new().await;
    let (id, secret) = h.client(300, Some(T0 + 1000)).await;
    assert_eq!(h.token(&id, &secret).await.0, StatusCode::OK);

    // Rotate with 60 s of grace: both secrets work until T0 + 60, then only the new one.
    let new = h
        .admin
        .rotate_secret(&Actor::Operator("test".into()), &id, 60, None)
        .await
        .unwrap();
    let new_secret = new.secret.expose().to_owned();
    // The new secret works on first use, before any refresh (the rejected secret re-reads
    // the client).
    assert_eq!(h.token(&id, &new_secret).await.0, StatusCode::OK);
    h.refresh().await;
    h.clock.set(T0 + 59);
    assert_eq!(h.token(&id, &secret).await.0, StatusCode::OK, "in grace");
    h.clock.set(T0 + 60);
    assert_eq!(
        h.token(&id, &secret).await.0,
        StatusCode::UNAUTHORIZED,
        "grace over"
    );
    assert_eq!(h.token(&id, &new_secret).await.0, StatusCode::OK);

    h.clock.set(T0 + 999);
    assert_eq!(h.token(&id, &new_secret).await.0, StatusCode::OK);
    h.clock.set(T0 + 1000);
    let (status, body) = h.token(&id, &new_secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "client expired: {body}");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_rotated_key_is_published_first_and_signs_from_its_activation() {
    let h = Harness::new().await;
    let (id, secret) = h.client(300, None).await;
    let (_, body) = h.token(&id, &secret).await;
    let old = kid(body["access_token"].as_str().unwrap());

    let plan = h
        .admin
        .rotate_signing_key(
            &Actor::Operator("test".into()),
            &h.master,
            Alg::Es256,
            RotationTiming { publish_ahead: 10 },
        )
        .await
        .unwrap();
    assert_eq!(plan.new.activates_at, T0 + 10);
    h.refresh().await;
    let (_, _, jwks) = h
        .send(Request::get("/jwks.json").body(Body::empty()).unwrap())
        .await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old.as_str()) && kids.contains(&plan.new.kid.as_str()));

    h.clock.set(T0 + 9);
    h.refresh().await;
    let (_, body) = h.token(&id, &secret).await;
    assert_eq!(kid(body["access_token"].as_str().unwrap()), old, "pending");
    h.clock.set(T0 + 10);
    h.refresh().await;
    let (_, body) = h.token(&id, &secret).await;
    assert_eq!(kid(body["access_token"].as_str().unwrap()), plan.new.kid);
}

/// Protocol edge cases at the HTTP edge, table-driven: each request and the status, error code
/// and headers RFC 6749 asks for.
#[tokio::test]
async fn protocol_edge_cases() {
    let h = Harness::new().await;
    let (id, secret) = h.client(300, None).await;
    let basic = Some((id.as_str(), secret.as_str()));
    let wrong = Some((id.as_str(), "tss_wrong"));
    let both = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    // (what, Basic credentials, form, status, error code)
    type Case<'a> = (
        &'a str,
        Option<(&'a str, &'a str)>,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "ok",
            basic,
            "grant_type=client_credentials".into(),
            StatusCode::OK,
            "",
        ),
        (
            "no grant_type",
            basic,
            "".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant type checked before authentication",
            None,
            "grant_type=password".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "two methods",
            basic,
            both,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "repeated known parameter",
            basic,
            "grant_type=client_credentials&scope=a&scope=b".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong secret",
            wrong,
            "grant_type=client_credentials".into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "scope not allowed",
            basic,
            "grant_type=client_credentials&scope=admin".into(),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "audience not allowed",
            basic,
            "grant_type=client_credentials&audience=https%3A%2F%2Fevil".into(),
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            "body over the limit",
            basic,
            format!(
                "grant_type=client_credentials&pad={}",
                "a".repeat(17 * 1024)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
    ];
    for (what, auth, form, status, error) in cases {
        let (got, headers, body) = h.post("/oauth/token", auth, &form).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{what}");
        if error.is_empty() {
            continue;
        }
        assert_eq!(body["error"], error, "{what}");
        let challenge = headers.get(header::WWW_AUTHENTICATE);
        assert_eq!(
            challenge.is_some(),
            status == StatusCode::UNAUTHORIZED,
            "{what}: WWW-Authenticate after Basic on 401 only"
        );
    }

    // Content type and method.
    let req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = h.send(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, headers, _) = h
        .send(Request::get("/oauth/token").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
}
