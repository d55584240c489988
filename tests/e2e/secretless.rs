//! `private_key_jwt` client authentication (RFC 7523 §2.2): registration, the accepted shapes,
//! a negative table with one request per row, replay across replicas, `jwks_uri` keys.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::both_backends;
use crate::harness::*;
use crate::issuer::{hs256, now, unsigned, TestIssuer, TestKey};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// POST `form` (no Authorization header) to `path`; status and JSON body.
pub async fn post_form(server: &Server, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(server.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn with_assertion(server: &Server, jwt: &str) -> (u16, Value) {
    post_form(
        server,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", jwt),
        ],
    )
    .await
}

fn jti() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Claims as openid-client signs them: `aud` the issuer, 60 s, `nbf`.
fn claims(id: &str, aud: &str) -> Value {
    let t = now();
    json!({"iss": id, "sub": id, "aud": aud, "iat": t, "nbf": t, "exp": t + 60, "jti": jti()})
}

/// Register a `private_key_jwt` client whose JWKS is `jwks`; returns its id.
fn register(env: &EnvConfig, jwks: &Value, dir: &std::path::Path, extra: &[&str]) -> String {
    let file = dir.join(format!("jwks-{}.json", jti()));
    std::fs::write(&file, jwks.to_string()).unwrap();
    let mut args = vec![
        "client",
        "create",
        "--output",
        "json",
        "--name",
        "signer",
        "--scope",
        "s2s:internal",
        "--audience",
        "https://orders",
        "--auth",
        "private_key_jwt",
        "--jwks-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let v = env.cli_json(&args);
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert!(v.get("client_secret").is_none(), "no secret is made: {v}");
    v["client_id"].as_str().unwrap().to_owned()
}

both_backends! {
    async fn private_key_jwt(env) {
        let server = env.start(&["--external-jwks-cooldown", "1s"]);
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::es256();
        let jwks = json!({"keys": [key.jwk(Some("c1"), json!({"use": "sig", "alg": "ES256"}))]});
        let id = register(&env, &jwks, dir.path(), &[]);
        let issuer = server.base.clone();
        let token_endpoint = server.url("/oauth/token");
        let sign = |c: &Value| key.sign(json!({"typ": "JWT", "kid": "c1"}), c);

        // Discovery says so (RFC 8414 §2: the signing algorithms are required with it).
        let meta: Value = get_json(&server, "/.well-known/oauth-authorization-server").await;
        for field in ["token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported"] {
            assert!(meta[field].as_array().unwrap().contains(&json!("private_key_jwt")), "{field}");
        }
        for field in ["token_endpoint_auth_signing_alg_values_supported",
            "revocation_endpoint_auth_signing_alg_values_supported",
            "introspection_endpoint_auth_signing_alg_values_supported"] {
            assert_eq!(meta[field], json!(["RS256", "PS256", "ES256", "EdDSA"]), "{field}");
        }
        assert!(meta["grant_types_supported"].as_array().unwrap()
            .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")));

        // Accepted: aud = issuer (openid-client), aud = token endpoint (Authlib), a one-element
        // array; client_id in the body naming the same client.
        let good = sign(&claims(&id, &issuer));
        let (s, b) = with_assertion(&server, &good).await;
        assert_eq!(s, 200, "{b}");
        let at = verify(&server, b["access_token"].as_str().unwrap(), "https://orders").await;
        assert_eq!(at["sub"], id.as_str());
        assert_eq!(at["scope"], "s2s:internal");
        let mut authlib = claims(&id, &token_endpoint);
        authlib["exp"] = json!(now() + 3600);
        authlib.as_object_mut().unwrap().remove("nbf");
        assert_eq!(with_assertion(&server, &sign(&authlib)).await.0, 200);
        assert_eq!(with_assertion(&server, &sign(&claims(&id, &json!([issuer]).to_string()))).await.0, 401,
            "a JSON text is not an array");
        let mut one = claims(&id, &issuer);
        one["aud"] = json!([issuer]);
        assert_eq!(with_assertion(&server, &sign(&one)).await.0, 200);
        let (s, _) = post_form(&server, "/oauth/token", &[("grant_type", "client_credentials"), ("client_id", &id),
            ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &sign(&claims(&id, &issuer)))]).await;
        assert_eq!(s, 200);

        // The same assertion twice: refused, whatever else is right about it.
        let (s, b) = with_assertion(&server, &good).await;
        assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "replay");

        // One request per row, each 401 invalid_client.
        let other_key = TestKey::es256();
        let t = now();
        let with = |k: &str, v: Value| { let mut c = claims(&id, &issuer); c[k] = v; c };
        let without = |k: &str| { let mut c = claims(&id, &issuer); c.as_object_mut().unwrap().remove(k); c };
        let secret_client = env.create_client(&["--name", "secret", "--scope", "s2s:internal"]);
        let rows: Vec<(&str, String)> = vec![
            ("wrong iss", sign(&with("iss", json!("tc_other")))),
            ("wrong sub", sign(&with("sub", json!("tc_other")))),
            ("wrong aud", sign(&with("aud", json!("https://elsewhere")))),
            ("aud array of two", sign(&with("aud", json!([issuer, token_endpoint])))),
            ("expired", sign(&with("exp", json!(t - 120)))),
            ("nbf 2 min ahead", sign(&with("nbf", json!(t + 120)))),
            ("iat 2 min ahead", sign(&with("iat", json!(t + 120)))),
            ("missing iat", sign(&without("iat"))),
            ("missing exp", sign(&without("exp"))),
            ("missing jti", sign(&without("jti"))),
            ("lifetime over 1 h", sign(&with("exp", json!(t + 3700)))),
            ("alg none", unsigned(&claims(&id, &issuer))),
            ("HS256 keyed with the JWKS", hs256("c1", &claims(&id, &issuer), jwks.to_string().as_bytes())),
            ("HS256 keyed with the public point", hs256("c1", &claims(&id, &issuer), &{
                let jwk = key.jwk(None, json!({}));
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap()
            })),
            ("unknown kid", key.sign(json!({"kid": "nope"}), &claims(&id, &issuer))),
            ("another key under its kid", other_key.sign(json!({"kid": "c1"}), &claims(&id, &issuer))),
            ("a secret client's id", sign(&claims(&secret_client.id, &issuer))),
            ("unknown client", sign(&claims("tc_nobody", &issuer))),
            ("garbage", "not.a.jwt".into()),
        ];
        for (name, jwt) in &rows {
            let (s, b) = with_assertion(&server, jwt).await;
            assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "{name}: {b}");
        }
        // client_id naming another client than the assertion.
        let (s, b) = post_form(&server, "/oauth/token", &[("grant_type", "client_credentials"), ("client_id", &secret_client.id),
            ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &sign(&claims(&id, &issuer)))]).await;
        assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
        // Two methods at once, and a wrong assertion type.
        let r = http().post(server.url("/oauth/token")).basic_auth(&secret_client.id, Some(&secret_client.secret))
            .form(&[("grant_type", "client_credentials"), ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &sign(&claims(&id, &issuer)))]).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
        let (s, b) = post_form(&server, "/oauth/token", &[("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"), ("client_assertion", &sign(&claims(&id, &issuer)))]).await;
        assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
        // Over the body limit: 413 before anything is parsed.
        let huge = format!("{}{}", sign(&claims(&id, &issuer)), "A".repeat(20_000));
        assert_eq!(with_assertion(&server, &huge).await.0, 413);

        // Introspection and revocation take the same authentication.
        let token = {
            let (s, b) = with_assertion(&server, &sign(&claims(&id, &issuer))).await;
            assert_eq!(s, 200);
            b["access_token"].as_str().unwrap().to_owned()
        };
        let (s, b) = post_form(&server, "/oauth/introspect", &[("token", &token),
            ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &sign(&claims(&id, &issuer)))]).await;
        assert_eq!((s, &b["active"]), (200, &json!(true)));
        let (s, _) = post_form(&server, "/oauth/revoke", &[("token", &token),
            ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &sign(&claims(&id, &issuer)))]).await;
        assert_eq!(s, 200);

        // `client show` lists the key ids.
        let out = env.cli(&["client", "show", &id]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("auth_method:   private_key_jwt") && text.contains("key_ids:       c1"), "{text}");

        // New keys replace the old ones (rotation by update): the old key stops working.
        let key2 = TestKey::ed25519();
        let file = dir.path().join("new.json");
        std::fs::write(&file, json!({"keys": [key2.jwk(Some("c2"), json!({}))]}).to_string()).unwrap();
        let out = env.cli(&["client", "update", &id, "--jwks-file", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(eventually(Duration::from_secs(5), || async {
            // openid-client signs Ed25519 keys with the RFC 9864 name.
            with_assertion(&server, &key2.sign(json!({"alg": "Ed25519", "kid": "c2"}), &claims(&id, &issuer))).await.0 == 200
        }).await);
        assert_eq!(with_assertion(&server, &sign(&claims(&id, &issuer))).await.0, 401, "old key");

        // A disabled client is refused.
        assert!(env.cli(&["client", "disable", &id]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            with_assertion(&server, &key2.sign(json!({"kid": "c2"}), &claims(&id, &issuer))).await.0 == 401
        }).await);

        // Nothing of any assertion reaches the logs.
        let logs = server.logs();
        for (_, jwt) in &rows {
            if let Some(sig) = jwt.rsplit('.').next().filter(|s| s.len() > 20) {
                assert!(!logs.contains(sig), "an assertion was logged");
            }
        }
        assert!(!logs.contains(good.rsplit('.').next().unwrap()));
        assert!(logs.contains("jti replayed") && logs.contains("wrong aud"), "audit says which check failed");
    }

    async fn private_key_jwt_without_kid(env) {
        // Authlib sends no kid: each registered key of the right type is tried, so a client
        // holding two keys mid-rotation keeps working with either.
        let server = env.start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (TestKey::es256(), TestKey::ed25519());
        let jwks = json!({"keys": [old.jwk(None, json!({})), new.jwk(None, json!({}))]});
        let id = register(&env, &jwks, dir.path(), &[]);
        for k in [&old, &new] {
            let (s, b) = with_assertion(&server, &k.sign(json!({"typ": "JWT"}), &claims(&id, &server.base))).await;
            assert_eq!(s, 200, "{}: {b}", k.alg());
        }
        // A secret client is switched to keys only when asked in so many words.
        let secret = env.create_client(&["--name", "s", "--scope", "a"]);
        let file = dir.path().join("pub.json");
        std::fs::write(&file, json!({"keys": [old.jwk(None, json!({}))]}).to_string()).unwrap();
        let out = env.cli(&["client", "update", &secret.id, "--jwks-file", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--auth private_key_jwt"));
        let v = env.cli_json(&["client", "update", &secret.id, "--auth", "private_key_jwt", "--jwks-file",
            file.to_str().unwrap(), "--output", "json"]);
        assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
        assert!(v["secrets"].as_array().unwrap().iter().all(|s| s["revoked_at"].is_string()), "secrets revoked: {v}");
        // A private JWKS is refused at registration: only public keys are stored.
        let file = dir.path().join("private.json");
        let mut private = old.jwk(None, json!({}));
        private["d"] = json!("AAAA");
        std::fs::write(&file, json!({"keys": [private]}).to_string()).unwrap();
        let out = env.cli(&["client", "create", "--name", "x", "--scope", "a", "--auth", "private_key_jwt",
            "--jwks-file", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("private key"));
    }

    async fn private_key_jwt_from_jwks_uri(env) {
        // Keys from a URL: fetched, cached, refetched for a new kid; a URL that is down with
        // nothing cached is 503 within the 5 s bound, never 401 or 500.
        let keys = TestIssuer::start();
        let server = env.start(&["--external-jwks-cooldown", "1s"]);
        let v = env.cli_json(&["client", "create", "--output", "json", "--name", "uri", "--scope", "a",
            "--auth", "private_key_jwt", "--jwks-uri", &format!("{}/jwks", keys.url)]);
        let id = v["client_id"].as_str().unwrap().to_owned();
        assert_eq!(v["jwks_uri"], format!("{}/jwks", keys.url));
        let (s, b) = with_assertion(&server, &keys.mint(&claims(&id, &server.base))).await;
        assert_eq!(s, 200, "{b}");
        keys.rotate();
        assert!(eventually(Duration::from_secs(5), || async {
            with_assertion(&server, &keys.mint(&claims(&id, &server.base))).await.0 == 200
        }).await, "a new kid is fetched");

        let down = TestIssuer::start();
        down.set_up(false);
        let v = env.cli_json(&["client", "create", "--output", "json", "--name", "down", "--scope", "a",
            "--auth", "private_key_jwt", "--jwks-uri", &format!("{}/jwks", down.url)]);
        let id = v["client_id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        let r = http().post(server.url("/oauth/token")).form(&[("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &down.mint(&claims(&id, &server.base)))])
            .send().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(6));
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");

        // http:// only on loopback.
        let out = env.cli(&["client", "create", "--name", "x", "--scope", "a", "--auth", "private_key_jwt",
            "--jwks-uri", "http://keys.example.com/jwks"]);
        assert!(!out.status.success());
    }
}

e2e_test! {
    /// One assertion sent to two replicas on one PostgreSQL database at once: exactly one token.
    /// The primary key of the shared jti table decides, whichever replica asks first.
    postgres async fn private_key_jwt_replay_across_replicas() {
        let env = TestEnv::postgres().await;
        let master = crate::replicas::master_key();
        let menv = [("TESSERA_MASTER_KEY", master.as_str())];
        let issuer = "http://tessera.replicas";
        let a = env.start_env(&["--issuer", issuer], &menv);
        let (replica, _dir) = env.replica();
        let b = replica.start_env(&["--issuer", issuer], &menv);
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::es256();
        let id = register(&env, &json!({"keys": [key.jwk(Some("r1"), json!({}))]}), dir.path(), &[]);
        assert!(eventually(Duration::from_secs(5), || async {
            let jwt = key.sign(json!({"kid": "r1"}), &claims(&id, issuer));
            with_assertion(&a, &jwt).await.0 == 200 && with_assertion(&b, &jwt).await.0 == 401
        }).await, "both replicas know the client; the second use is refused");
        for _ in 0..10 {
            let jwt = key.sign(json!({"kid": "r1"}), &claims(&id, issuer));
            let (r1, r2) = tokio::join!(with_assertion(&a, &jwt), with_assertion(&b, &jwt));
            let ok = [r1.0, r2.0].iter().filter(|s| **s == 200).count();
            assert_eq!(ok, 1, "exactly one replica accepts it: {r1:?} {r2:?}");
            assert_eq!(with_assertion(&b, &jwt).await.0, 401);
        }
    }
}

e2e_test! {
    /// The one-line CI steps: `tessera keypair` then `tessera token --private-key-file`; a
    /// Kubernetes-style token file; a GitHub Actions runner's token endpoint. No stored secret.
    async fn cli_callers_without_a_secret() {
        let env = TestEnv::sqlite();
        let server = env.start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let (key_file, jwks_file) = (dir.path().join("key.pem"), dir.path().join("jwks.json"));
        let out = env.cli(&["keypair", "--alg", "ES256", "--private-key-out", key_file.to_str().unwrap(),
            "--jwks-out", jwks_file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let v = env.cli_json(&["client", "create", "--output", "json", "--name", "ci", "--scope", "deploy:write",
            "--auth", "private_key_jwt", "--jwks-file", jwks_file.to_str().unwrap()]);
        let id = v["client_id"].as_str().unwrap();
        let token = |args: &[&str]| {
            let mut all = vec!["token", "--issuer", server.base.as_str()];
            all.extend_from_slice(args);
            let out = env.cli_env(&all, &[("TESSERA_CLIENT_SECRET", "")]);
            assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let at = token(&["--client-id", id, "--private-key-file", key_file.to_str().unwrap()]);
        let jwks: jsonwebtoken::jwk::JwkSet = get_json(&server, "/jwks.json").await;
        let claims = verify_with(&jwks, &server.base, &at, &server.base);
        assert_eq!(claims["sub"], id);
        // Twice in a row: a fresh assertion (new jti) each time.
        token(&["--client-id", id, "--private-key-file", key_file.to_str().unwrap()]);
        // Refuses to overwrite a key.
        let out = env.cli(&["keypair", "--private-key-out", key_file.to_str().unwrap(), "--jwks-out",
            dir.path().join("other.json").to_str().unwrap()]);
        assert!(!out.status.success());

        // Federated: an assertion file (re-read every time), and a GitHub Actions runner.
        let gh = TestIssuer::start();
        let deploy = env.create_client(&["--name", "deploy", "--scope", "deploy:write"]);
        env.cli_json(&["trust", "add", "--output", "json", "--name", "gh", "--issuer", &gh.url, "--audience", "tessera",
            "--subject", "repo:acme/app:ref:refs/heads/main", "--client", &deploy.id]);
        let file = dir.path().join("token");
        let t = now();
        std::fs::write(&file, gh.mint(&json!({"iss": gh.url, "aud": "tessera", "sub": "repo:acme/app:ref:refs/heads/main",
            "iat": t, "exp": t + 300})) + "\n").unwrap();
        assert!(eventually(Duration::from_secs(3), || async {
            let out = env.cli(&["token", "--issuer", &server.base, "--assertion-file", file.to_str().unwrap()]);
            out.status.success()
        }).await);
        let at = token(&["--assertion-file", file.to_str().unwrap()]);
        assert_eq!(verify_with(&jwks, &server.base, &at, &server.base)["sub"], deploy.id.as_str());
        let out = env.cli_env(&["token", "--issuer", &server.base, "--github-actions", "--assertion-audience", "tessera"],
            &[("ACTIONS_ID_TOKEN_REQUEST_URL", &format!("{}/actions-token?api-version=2.0", gh.url)),
              ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-token")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let at = String::from_utf8(out.stdout).unwrap();
        assert_eq!(verify_with(&jwks, &server.base, at.trim(), &server.base)["sub"], deploy.id.as_str());
        // Outside a runner: one clear line.
        let out = env.cli_env(&["token", "--issuer", &server.base, "--github-actions", "--assertion-audience", "tessera"],
            &[("ACTIONS_ID_TOKEN_REQUEST_URL", ""), ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("ACTIONS_ID_TOKEN_REQUEST"));
    }
}
