//! Issue 13, the server's side: custom claims in tokens and introspection, managed API keys
//! checked by introspection, and the revocation feed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::both_backends;
use crate::harness::e2e_test;
use crate::harness::*;
use crate::secretless::post_form;
use crate::verifier::start_example_env;

async fn introspect(server: &Server, rs: &TestClient, token: &str) -> Value {
    let r = http()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn token_of(server: &Server, c: &TestClient) -> String {
    let b: Value = token_basic(server, c, "grant_type=client_credentials")
        .await
        .json()
        .await
        .unwrap();
    b["access_token"].as_str().unwrap().to_owned()
}

async fn feed(server: &Server, rs: &TestClient, since: &str) -> (u16, Value) {
    let r = http()
        .get(server.url(&format!("/oauth/revocations?since={since}")))
        .basic_auth(&rs.id, Some(&rs.secret))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

both_backends! {
    async fn custom_claims_in_tokens_and_introspection(env) {
        let server = env.start(&[]);
        let c = env.create_client(&["--name", "git", "--scope", "s2s:admin", "--audience", "https://git",
            "--claim", "tenant=acme", "--claim-json", r#"groups=["git-admins","ops"]"#]);
        let rs = env.create_client(&["--name", "rs", "--scope", "introspect"]);
        let t = token_of(&server, &c).await;
        let claims = verify(&server, &t, "https://git").await;
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["groups"], json!(["git-admins", "ops"]));
        let v = introspect(&server, &rs, &t).await;
        assert_eq!((&v["tenant"], &v["groups"]), (&json!("acme"), &json!(["git-admins", "ops"])));
        // Reserved names and oversized sets are refused with one clear line.
        for bad in [vec!["--claim", "sub=x"], vec!["--claim", "scope=x"], vec!["--claim-json", "cnf={}"],
            vec!["--claim-json", "groups=[oops"]] {
            let mut args = vec!["client", "create", "--name", "x", "--scope", "a"];
            args.extend(bad.iter().copied());
            assert!(!env.cli(&args).status.success(), "{bad:?}");
        }
        let big = format!("blob={}", "x".repeat(5000));
        assert!(!env.cli(&["client", "create", "--name", "x", "--scope", "a", "--claim", &big]).status.success());
        // Update replaces; --clear-claims removes them.
        assert!(env.cli(&["client", "update", &c.id, "--claim", "tenant=globex"]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            let t = token_of(&server, &c).await;
            let claims = verify(&server, &t, "https://git").await;
            claims["tenant"] == "globex" && claims.get("groups").is_none()
        }).await);
        assert!(env.cli(&["client", "update", &c.id, "--clear-claims"]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            verify(&server, &token_of(&server, &c).await, "https://git").await.get("tenant").is_none()
        }).await);
    }

    async fn api_keys_by_introspection(env) {
        let server = env.start(&[]);
        let rs = env.create_client(&["--name", "orders-service", "--scope", "introspect"]);
        let v = env.cli_json(&["apikey", "create", "--output", "json", "--name", "legacy-billing",
            "--scope", "orders:read", "--audience", "https://orders", "--claim-json", r#"groups=["billing"]"#]);
        let key = v["api_key"].as_str().unwrap().to_owned();
        let id = v["id"].as_str().unwrap().to_owned();
        assert!(key.starts_with("tak_") && key.len() == 47, "{key}");
        // Shown once: never in list/show, and only a hash in the database.
        let listed = env.cli(&["apikey", "list"]);
        assert!(!String::from_utf8_lossy(&listed.stdout).contains(&key));
        let a = introspect(&server, &rs, &key).await;
        assert_eq!(a["active"], true, "{a}");
        assert_eq!((&a["client_id"], &a["scope"], &a["aud"], &a["token_type"]),
            (&json!(id), &json!("orders:read"), &json!("https://orders"), &json!("api_key")));
        assert_eq!(a["groups"], json!(["billing"]));
        // Unknown and malformed keys are just inactive.
        assert_eq!(introspect(&server, &rs, "tak_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await, json!({"active": false}));
        // Revoked: inactive within one refresh.
        assert!(env.cli(&["apikey", "revoke", &id]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            introspect(&server, &rs, &key).await == json!({"active": false})
        }).await);
        let shown = env.cli_json(&["apikey", "show", &id, "--output", "json"]);
        assert_eq!(shown["state"], "revoked");
        // Every use and refusal is audited, never with the key.
        let logs = server.logs();
        assert!(logs.contains("api_key_used") && logs.contains("api_key_refused"), "{logs}");
        assert!(!logs.contains(&key));
        let audit = env.cli_json(&["audit", "list", "--output", "json"]);
        let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"apikey.create") && actions.contains(&"apikey.revoke"));
    }

    async fn revocation_feed(env) {
        let server = env.start(&[]);
        let owner = env.create_client(&["--name", "owner", "--scope", "a"]);
        let rs = env.create_client(&["--name", "rs", "--scope", "introspect"]);
        let (s, b) = feed(&server, &rs, "").await;
        assert_eq!(s, 200);
        assert_eq!(b["revoked"], json!([]));
        let start = b["cursor"].as_str().unwrap().to_owned();
        let t1 = token_of(&server, &owner).await;
        let t2 = token_of(&server, &owner).await;
        for t in [&t1, &t2] {
            let r = http().post(server.url("/oauth/revoke")).basic_auth(&owner.id, Some(&owner.secret))
                .form(&[("token", t.as_str())]).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let jti = |t: &str| verify_jti(t);
        let (s, b) = feed(&server, &rs, &start).await;
        assert_eq!(s, 200, "{b}");
        let listed: Vec<&str> = b["revoked"].as_array().unwrap().iter().map(|e| e["jti"].as_str().unwrap()).collect();
        assert_eq!(listed, vec![jti(&t1).as_str(), jti(&t2).as_str()]);
        assert!(b["revoked"][0]["exp"].is_i64());
        let next = b["cursor"].as_str().unwrap().to_owned();
        assert_eq!(feed(&server, &rs, &next).await.1["revoked"], json!([]), "nothing new after the cursor");
        // From the start: both, whatever came before.
        assert_eq!(feed(&server, &rs, "0").await.1["revoked"].as_array().unwrap().len(), 2);
        // Authenticated like introspection; a bad cursor is invalid_request.
        let r = http().get(server.url("/oauth/revocations")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(feed(&server, &rs, "abc").await.0, 400);
        assert_eq!(feed(&server, &rs, "-1").await.0, 400);
        let (s, _) = post_form(&server, "/oauth/revocations", &[]).await;
        assert_eq!(s, 405);
    }
}

/// The `jti` of a token (read without verifying: the test issued it).
fn verify_jti(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    v["jti"].as_str().unwrap().to_owned()
}

e2e_test! {
    /// Issue 13 end to end through the example resource service: a role from a claim, managed
    /// API keys (accepted, revoked, expired, unknown, a flood of made-up keys, Tessera down),
    /// and a revoked token refused within the feed interval.
    async fn example_service_roles_api_keys_and_revocations() {
        let env = TestEnv::sqlite();
        let server = env.start(&[]);
        let aud = "https://orders.internal";
        let admin = env.create_client(&["--name", "git-admin", "--scope", "s2s:internal", "--audience", aud,
            "--claim-json", r#"groups=["git-admins"]"#]);
        let plain = env.create_client(&["--name", "plain", "--scope", "s2s:internal", "--audience", aud]);
        let own = env.create_client(&["--name", "orders-service", "--scope", "introspect"]);
        let example = start_example_env(&server.base, aud, None, &[
            ("TESSERA_CLIENT_ID", own.id.as_str()), ("TESSERA_CLIENT_SECRET", own.secret.as_str()),
            ("REVOCATION_POLL_MS", "200"), ("API_KEY_CACHE_SECS", "1")]);
        let get = |path: &str, header: (&'static str, String)| {
            let url = format!("{}{path}", example.base);
            async move {
                let r = http().get(url).header(header.0, header.1).send().await.unwrap();
                let status = r.status().as_u16();
                let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                (status, www, r.text().await.unwrap_or_default())
            }
        };
        let bearer = |t: &str| ("authorization", format!("Bearer {t}"));

        // Role ADMIN from the claim groups ∋ git-admins.
        let t_admin = token_of(&server, &admin).await;
        let t_plain = token_of(&server, &plain).await;
        assert_eq!(get("/admin", bearer(&t_admin)).await.0, 200);
        let (s, www, _) = get("/admin", bearer(&t_plain)).await;
        assert_eq!(s, 403);
        assert!(www.contains("insufficient_scope"), "{www}");

        // A revoked token is refused by the service within the feed interval.
        assert_eq!(get("/internal/ping", bearer(&t_plain)).await.0, 200);
        let r = http().post(server.url("/oauth/revoke")).basic_auth(&plain.id, Some(&plain.secret))
            .form(&[("token", t_plain.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let revoked_at = std::time::Instant::now();
        assert!(eventually(Duration::from_secs(3), || async {
            get("/internal/ping", bearer(&t_plain)).await.0 == 401
        }).await, "revoked token refused within the feed interval");
        eprintln!("revocation reached the service in {:?}", revoked_at.elapsed());
        assert_eq!(get("/internal/ping", bearer(&t_admin)).await.0, 200, "others unaffected");

        // Managed API keys: as X-API-Key and as Bearer; the principal is the key's.
        let v = env.cli_json(&["apikey", "create", "--output", "json", "--name", "billing", "--scope", "s2s:internal",
            "--audience", aud]);
        let key = v["api_key"].as_str().unwrap().to_owned();
        let (s, _, body) = get("/internal/ping", ("x-api-key", key.clone())).await;
        assert_eq!((s, body.trim()), (200, format!("pong {}", v["id"].as_str().unwrap()).as_str()));
        assert_eq!(get("/internal/ping", bearer(&key)).await.0, 200);
        assert_eq!(get("/admin", ("x-api-key", key.clone())).await.0, 403, "no role without the claim");
        // A key for another audience is not accepted here.
        let other = env.cli_json(&["apikey", "create", "--output", "json", "--name", "elsewhere", "--scope", "s2s:internal",
            "--audience", "https://billing.internal"]);
        assert_eq!(get("/internal/ping", ("x-api-key", other["api_key"].as_str().unwrap().to_owned())).await.0, 401);
        // Expired: refused once past its time.
        let exp = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 2).to_string();
        let short = env.cli_json(&["apikey", "create", "--output", "json", "--name", "short", "--scope", "s2s:internal",
            "--audience", aud, "--expires-at", &exp]);
        let short = short["api_key"].as_str().unwrap().to_owned();
        assert_eq!(get("/internal/ping", ("x-api-key", short.clone())).await.0, 200);
        assert!(eventually(Duration::from_secs(6), || async {
            get("/internal/ping", ("x-api-key", short.clone())).await.0 == 401
        }).await, "expired key refused");
        // Revoked: refused within the cache bound (1 s here, 60 s at most).
        assert!(env.cli(&["apikey", "revoke", v["id"].as_str().unwrap()]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            get("/internal/ping", ("x-api-key", key.clone())).await.0 == 401
        }).await, "revoked key refused");

        // 1,000 made-up keys: bounded introspection calls (20 a second, a burst of 20), the
        // rest answered 503 by the service without asking Tessera.
        let before = server.count_logs("api_key_refused");
        let started = std::time::Instant::now();
        let mut statuses = std::collections::BTreeMap::new();
        for n in 0..1000 {
            let k = format!("tak_madeup{n:04}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            let (s, _, _) = get("/internal/ping", ("x-api-key", k)).await;
            *statuses.entry(s).or_insert(0) += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = server.count_logs("api_key_refused") - before;
        let bound = 20.0 + 20.0 * secs + 5.0;
        assert!((asked as f64) <= bound, "{asked} introspections for 1000 made-up keys in {secs:.1}s (bound {bound:.0})");
        assert!(statuses.keys().all(|s| *s == 401 || *s == 503), "{statuses:?}");
        eprintln!("1000 made-up keys: {statuses:?}, {asked} introspection calls in {secs:.1}s");

        // Tessera down: a key checked a moment ago keeps working until the cache bound, then 503.
        let v2 = env.cli_json(&["apikey", "create", "--output", "json", "--name", "billing-2", "--scope", "s2s:internal",
            "--audience", aud]);
        let key2 = v2["api_key"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(1100)).await; // let the rate limiter refill
        assert!(eventually(Duration::from_secs(3), || async {
            get("/internal/ping", ("x-api-key", key2.clone())).await.0 == 200
        }).await);
        drop(server);
        assert!(eventually(Duration::from_secs(5), || async {
            get("/internal/ping", ("x-api-key", key2.clone())).await.0 == 503
        }).await, "503 once the cache bound has passed with Tessera down");
    }
}
