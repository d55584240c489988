//! RFC 7009 revocation and RFC 7662 introspection.

use std::time::Duration;

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

async fn post(
    server: &Server,
    path: &str,
    c: &TestClient,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http()
        .post(server.url(path))
        .basic_auth(&c.id, Some(&c.secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn introspect(server: &Server, c: &TestClient, token: &str) -> Value {
    let r = post(server, "/oauth/introspect", c, &[("token", token)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn token(server: &Server, c: &TestClient) -> String {
    let b: Value = token_basic(server, c, "grant_type=client_credentials")
        .await
        .json()
        .await
        .unwrap();
    b["access_token"].as_str().unwrap().to_string()
}

both_backends! {
    async fn revoke_and_introspect(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let owner = env.create_client(&["--name", "owner", "--scope", "s2s:internal", "--audience", "https://orders"]);
        let other = env.create_client(&["--name", "other", "--scope", "a"]);
        let rs = env.create_client(&["--name", "resource", "--scope", "introspect"]);
        let t = token(&server, &owner).await;

        let v = introspect(&server, &rs, &t).await;
        assert_eq!(v["active"], true);
        assert_eq!(v["client_id"], owner.id.as_str());
        assert_eq!(v["sub"], owner.id.as_str());
        assert_eq!(v["scope"], "s2s:internal");
        assert_eq!(v["aud"], "https://orders");
        assert_eq!(v["iss"], server.base.as_str());
        assert_eq!(v["token_type"], "Bearer");
        assert!(v["exp"].is_i64() && v["iat"].is_i64() && v["jti"].is_string());

        // Only the owner may revoke it.
        let r = post(&server, "/oauth/revoke", &other, &[("token", &t)]).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
        assert_eq!(introspect(&server, &rs, &t).await["active"], true);

        let r = post(&server, "/oauth/revoke", &owner, &[("token", &t), ("token_type_hint", "access_token")]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(introspect(&server, &rs, &t).await, serde_json::json!({"active": false}));
        assert_eq!(post(&server, "/oauth/revoke", &owner, &[("token", &t)]).await.status(), 200, "revoking twice is fine");

        // Garbage, forged and foreign tokens: revoke says 200, introspection says inactive.
        let mut forged = token(&server, &owner).await;
        forged.pop();
        forged.push(if forged.ends_with('A') { 'B' } else { 'A' });
        let env2 = env.sibling().await;
        let foreign_server = env2.start(&["--signing-alg", "ES256", "--issuer", &server.base]);
        let fc = env2.create_client(&["--name", "f", "--scope", "a"]);
        let foreign = token(&foreign_server, &fc).await;
        for bad in ["not-a-token", "a.b.c", forged.as_str(), foreign.as_str()] {
            assert_eq!(post(&server, "/oauth/revoke", &owner, &[("token", bad)]).await.status(), 200, "{bad}");
            assert_eq!(introspect(&server, &rs, bad).await, serde_json::json!({"active": false}), "{bad}");
        }

        // Expired tokens are inactive.
        let short = env.create_client(&["--name", "short", "--scope", "a", "--token-ttl", "1"]);
        let st = token(&server, &short).await;
        assert!(eventually(Duration::from_secs(5), || async { introspect(&server, &rs, &st).await["active"] == false }).await);

        // Both endpoints need client authentication and a token parameter.
        let r = http().post(server.url("/oauth/introspect")).form(&[("token", t.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let wrong = TestClient { id: rs.id.clone(), secret: "tss_wrong".into() };
        assert_eq!(post(&server, "/oauth/revoke", &wrong, &[("token", &t)]).await.status(), 401);
        let r = post(&server, "/oauth/introspect", &rs, &[]).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
        assert_eq!(http().get(server.url("/oauth/revoke")).send().await.unwrap().status(), 405);

        // Both in discovery.
        let doc: Value = get_json(&server, "/.well-known/oauth-authorization-server").await;
        assert_eq!(doc["revocation_endpoint"], format!("{}/oauth/revoke", server.base));
        assert_eq!(doc["introspection_endpoint"], format!("{}/oauth/introspect", server.base));
    }
}

both_backends! {
    async fn expired_revocations_are_purged_and_live_ones_kept(env) {
        use tessera_server::oauth::client::ClientId;
        use tessera_server::store::Store;

        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "svc", "--scope", "introspect"]);
        let live = token(&server, &c).await;
        let meta = introspect(&server, &c, &live).await;
        let (jti, exp) = (meta["jti"].as_str().unwrap().to_string(), meta["exp"].as_i64().unwrap());
        let r = post(&server, "/oauth/revoke", &c, &[("token", &live)]).await;
        assert_eq!(r.status(), 200);

        let store = Store::connect(&env.database()).await.unwrap();
        let id = ClientId::parse(&c.id).unwrap();
        // A revocation whose token has already expired: nothing needs it any more.
        store.revoke_token("gone-jti", &id, exp - 3600).await.unwrap();
        assert!(store.is_revoked("gone-jti").await.unwrap());
        assert!(store.is_revoked(&jti).await.unwrap());

        let now = exp - 300;
        assert_eq!(store.purge_revocations(now).await.unwrap(), 1);
        assert!(!store.is_revoked("gone-jti").await.unwrap());
        assert!(store.is_revoked(&jti).await.unwrap(), "a revocation is kept while its token could still be used");
        assert_eq!(introspect(&server, &c, &live).await["active"], false);

        // Once the token's own exp has passed, its revocation goes too.
        assert_eq!(store.purge_revocations(exp + 1).await.unwrap(), 1);
        assert!(!store.is_revoked(&jti).await.unwrap());
    }
}
