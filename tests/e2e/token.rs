//! Tokens are issued per RFC 6749 §4.4 / RFC 9068 and verify with an independent JWT library.

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

async fn issue_and_verify(env: &TestEnv, alg: &str) {
    let server = env.start(&["--signing-alg", alg]);
    let c = env.create_client(&[
        "--name",
        "billing",
        "--scope",
        "s2s:internal",
        "--scope",
        "reports:read",
        "--audience",
        "https://api.example",
        "--audience",
        "https://other.example",
        "--token-ttl",
        "120",
    ]);
    // Basic, default scopes and audience.
    let resp = token_basic(&server, &c, "grant_type=client_credentials").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["scope"], "reports:read s2s:internal");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        alg.parse().unwrap()
    );
    let claims = verify(&server, token, "https://api.example").await;
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["sub"], c.id.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["scope"], "reports:read s2s:internal");
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].as_str().unwrap().len() >= 22);

    // client_secret_post, a scope subset and another allowed audience (RFC 8707 `resource`).
    let resp = http()
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_str()),
            ("scope", "s2s:internal"),
            ("resource", "https://other.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let claims = verify(
        &server,
        body["access_token"].as_str().unwrap(),
        "https://other.example",
    )
    .await;
    assert_eq!(claims["scope"], "s2s:internal");
    // `audience` works the same way, and two tokens never share a jti.
    let b2: Value = token_basic(
        &server,
        &c,
        "grant_type=client_credentials&audience=https%3A%2F%2Fother.example",
    )
    .await
    .json()
    .await
    .unwrap();
    let c2 = verify(
        &server,
        b2["access_token"].as_str().unwrap(),
        "https://other.example",
    )
    .await;
    assert_ne!(c2["jti"], claims["jti"]);
}

both_backends! {
    async fn es256_tokens_verify_against_jwks(env) {
        issue_and_verify(&env, "ES256").await;
    }

    async fn rs256_tokens_verify_against_jwks(env) {
        issue_and_verify(&env, "RS256").await;
    }

    async fn eddsa_tokens_verify_against_jwks(env) {
        issue_and_verify(&env, "EdDSA").await;
    }

    async fn client_without_audience_gets_the_issuer_as_aud(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "x", "--scope", "a"]);
        let body: Value = token_basic(&server, &c, "grant_type=client_credentials")
            .await
            .json()
            .await
            .unwrap();
        let claims = verify(
            &server,
            body["access_token"].as_str().unwrap(),
            &server.base,
        )
        .await;
        assert_eq!(claims["aud"], server.base.as_str());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300,
            "default lifetime"
        );
    }

    async fn jwks_discovery_and_health(env) {
        let issuer = "https://auth.example.test";
        let server = env.start(&["--issuer", issuer, "--jwks-max-age", "120"]);
        let resp = http().get(server.url("/jwks.json")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "public, max-age=120");
        let jwks: Value = resp.json().await.unwrap();
        // The same set, with the same caching, at the well-known path libraries default to.
        let well_known = http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(well_known.status(), 200);
        assert_eq!(well_known.headers()["cache-control"], "public, max-age=120");
        assert_eq!(well_known.json::<Value>().await.unwrap(), jwks);
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA", "RS256 is the default");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                key.get(private).is_none(),
                "JWKS must not carry private member {private}"
            );
        }
        for path in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let doc: Value = get_json(&server, path).await;
            assert_eq!(
                doc["issuer"], issuer,
                "issuer equals the configured one exactly"
            );
            assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth/token"));
            assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks.json"));
            assert_eq!(
                doc["grant_types_supported"],
                serde_json::json!([
                    "client_credentials",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer"
                ])
            );
            assert_eq!(
                doc["token_endpoint_auth_methods_supported"],
                serde_json::json!([
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt"
                ])
            );
            assert_eq!(
                doc["access_token_signing_alg_values_supported"],
                serde_json::json!(["RS256"])
            );
            // What OIDC libraries read at start-up: every algorithm the server can sign with,
            // whatever the current key, and the subject type.
            assert_eq!(
                doc["id_token_signing_alg_values_supported"],
                serde_json::json!(["RS256", "ES256", "EdDSA"])
            );
            assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
            assert_eq!(doc["response_types_supported"], serde_json::json!([]));
        }
        assert_eq!(
            http()
                .get(server.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let ready = http().get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready["signing_kid"], key["kid"]);
        // Tokens carry the configured issuer too.
        let c = env.create_client(&["--name", "x", "--scope", "a"]);
        let body: Value = token_basic(&server, &c, "grant_type=client_credentials")
            .await
            .json()
            .await
            .unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        verify_with(
            &jwks,
            issuer,
            body["access_token"].as_str().unwrap(),
            issuer,
        );
    }

    async fn a_flood_of_wrong_secrets_gets_503_while_cached_clients_keep_working(env) {
        // No waiting room: at most `cores` argon2 checks at once, everything beyond is refused.
        let server = env.start(&["--auth-queue", "0", "--signing-alg", "ES256"]);
        let good = env.create_client(&["--name", "good", "--scope", "a"]);
        let victim = env.create_client(&["--name", "victim", "--scope", "a"]);
        assert_eq!(
            token_basic(&server, &good, "grant_type=client_credentials")
                .await
                .status(),
            200
        );

        let mut flood = Vec::new();
        for i in 0..60 {
            let (url, id) = (server.url("/oauth/token"), victim.id.clone());
            flood.push(tokio::spawn(async move {
                http()
                    .post(url)
                    .basic_auth(id, Some(format!("wrong-{i}")))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap()
            }));
        }
        // While the flood runs, the cached client is answered without waiting for argon2.
        for _ in 0..5 {
            assert_eq!(
                token_basic(&server, &good, "grant_type=client_credentials")
                    .await
                    .status(),
                200
            );
        }
        let (mut busy, mut rejected) = (0, 0);
        for f in flood {
            let r = f.await.unwrap();
            match r.status().as_u16() {
                503 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    let b: Value = r.json().await.unwrap();
                    assert_eq!(b["error"], "temporarily_unavailable");
                    busy += 1;
                }
                401 => rejected += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert!(
            busy > 0,
            "60 simultaneous argon2 checks with no queue must refuse some (got {rejected} x 401)"
        );
    }
}

both_backends! {
    /// Issue 18: `typ: JWT` for the audiences (or all tokens) a deployment names, for resource
    /// servers whose defaults refuse RFC 9068's `at+jwt`; every other token keeps `at+jwt`, and
    /// nothing else in the token changes. tessera-verifier takes `JWT` only when told to.
    async fn typ_jwt_for_the_audiences_that_need_it(env) {
        let issuer_server = env.start(&["--jwt-typ-audience", "https://spring.api"]);
        let c = env.create_client(&[
            "--name", "x", "--scope", "s",
            "--audience", "https://other.api", "--audience", "https://spring.api",
        ]);
        let header = |t: &str| -> Value {
            let h = t.split('.').next().unwrap();
            serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h)
                    .unwrap(),
            )
            .unwrap()
        };
        let get = |form: &'static str| {
            let (server, c) = (&issuer_server, &c);
            async move {
                let r = token_basic(server, c, form).await;
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let other = get("grant_type=client_credentials").await;
        let spring =
            get("grant_type=client_credentials&resource=https%3A%2F%2Fspring.api").await;
        assert_eq!(header(&other)["typ"], "at+jwt");
        assert_eq!(header(&spring)["typ"], "JWT");
        assert_eq!(header(&spring)["kid"], header(&other)["kid"]);
        assert_eq!(header(&spring).as_object().unwrap().len(), 3);
        // The issuer's own introspection takes both.
        for t in [&other, &spring] {
            let r = http()
                .post(issuer_server.url("/oauth/introspect"))
                .basic_auth(&c.id, Some(&c.secret))
                .form(&[("token", t.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
        }
        // tessera-verifier: refused by default, accepted when told to.
        let issuer = issuer_server.base.clone();
        let strict = tessera_verifier::Verifier::builder(&issuer, "https://spring.api")
            .jwks_url(issuer_server.url("/jwks.json"))
            .build()
            .unwrap();
        let lenient = tessera_verifier::Verifier::builder(&issuer, "https://spring.api")
            .jwks_url(issuer_server.url("/jwks.json"))
            .accept_typ_jwt()
            .build()
            .unwrap();
        assert!(strict.verify(&spring).await.is_err());
        let at = lenient.verify(&spring).await.unwrap();
        assert!(at.has_scope("s"));
        drop(issuer_server);

        // --access-token-typ jwt: every token.
        let all = env.start(&["--access-token-typ", "jwt"]);
        let r = token_basic(&all, &c, "grant_type=client_credentials").await;
        let t = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(header(&t)["typ"], "JWT");
    }
}
