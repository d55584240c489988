//! Issue 13, the server's side: custom claims in tokens and introspection, managed API keys
//! checked by introspection, and the revocation feed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::both_backends;
use crate::harness::*;
use crate::secretless::post_form;

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
