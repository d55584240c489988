//! Key and secret lifecycle: rotation without a failed request, secret rotation with grace,
//! revocation and expiry that the verified-credential cache cannot outlive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tessera_client::{ClientSecret, TokenSource};

use crate::harness::both_backends;
use crate::harness::*;
use crate::verifier::start_example_env;

async fn signing_kid(server: &Server) -> String {
    let v: Value = get_json(server, "/readyz").await;
    v["signing_kid"].as_str().unwrap().to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

both_backends! {
    async fn rotating_twice_under_load_fails_no_request(env) {
        // JWKS max-age 1 s; new keys published 3 s before they sign.
        let server = env.start(&["--signing-alg", "ES256", "--jwks-max-age", "1"]);
        let c = env.create_client(&["--name", "caller", "--scope", "s2s:internal", "--audience", "https://orders", "--token-ttl", "3"]);
        let example = start_example_env(&server.base, "https://orders", None, &[("JWKS_CACHE_MIN_TTL", "1")]);
        let source = TokenSource::builder(c.id.clone(), ClientSecret::new(c.secret.clone())).issuer(server.base.clone()).audience("https://orders").build().unwrap();

        // Continuous load: one caller, tessera-client tokens, no retry on failure (a retry would hide one).
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let kids: Arc<Mutex<Vec<String>>> = Arc::default();
        let load = {
            let (stop, ok, failed, kids, url) = (stop.clone(), ok.clone(), failed.clone(), kids.clone(), format!("{}/internal/ping", example.base));
            tokio::spawn(async move {
                let client = http();
                while !stop.load(Ordering::SeqCst) {
                    let t = source.token().await.expect("token");
                    let kid = jsonwebtoken::decode_header(t.secret()).unwrap().kid.unwrap();
                    let r = client.get(&url).bearer_auth(t.secret()).send().await.unwrap();
                    if r.status() == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                        let mut k = kids.lock().unwrap();
                        if !k.contains(&kid) {
                            k.push(kid);
                        }
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("failed: {} {}", r.status(), r.text().await.unwrap_or_default());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        for alg in ["RS256", "EdDSA"] {
            let before = signing_kid(&server).await;
            let out = env.cli(&["keys", "rotate", "--alg", alg, "--publish-ahead", "3", "--output", "json"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
            let new_kid = plan["new"]["kid"].as_str().unwrap().to_string();
            assert_eq!(plan["new"]["state"], "pending");
            // Published at once, not yet signing.
            // Published within a refresh interval (SQLite) or at once (PostgreSQL NOTIFY).
            let published = eventually(Duration::from_secs(2), || async {
                let jwks: Value = get_json(&server, "/jwks.json").await;
                jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == new_kid.as_str())
            })
            .await;
            assert!(published, "pre-published");
            assert_eq!(signing_kid(&server).await, before, "not signing before its activation time");
            assert!(eventually(Duration::from_secs(10), || async { signing_kid(&server).await == new_kid }).await, "activated");
            assert!(eventually(Duration::from_secs(10), || async { kids.lock().unwrap().contains(&new_kid) }).await, "callers use the new key");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
        let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
        assert_eq!(failed, 0, "zero failed requests across two rotations ({ok} succeeded)");
        assert!(ok >= 50, "the load really ran: {ok}");
        assert_eq!(kids.lock().unwrap().len(), 3, "three keys (ES256, RS256, EdDSA) signed accepted tokens");

        let list = env.cli_json(&["keys", "list", "--output", "json"]);
        // Keys made in the same second list in kid order, so compare by algorithm.
        let states: std::collections::BTreeMap<String, String> =
            list.as_array().unwrap().iter().map(|k| (k["alg"].as_str().unwrap().into(), k["state"].as_str().unwrap().into())).collect();
        let want: std::collections::BTreeMap<String, String> =
            [("ES256", "retiring"), ("RS256", "retiring"), ("EdDSA", "active")].iter().map(|(a, s)| (a.to_string(), s.to_string())).collect();
        assert_eq!(states, want);
        for k in list.as_array().unwrap() {
            assert!(k.get("private_key").is_none());
        }
    }

    async fn retired_keys_lose_their_private_keys(env) {
        let server = env.start(&["--signing-alg", "ES256", "--refresh-interval-ms", "200"]);
        let old = signing_kid(&server).await;
        assert!(env.cli(&["keys", "rotate", "--alg", "ES256", "--publish-ahead", "0"]).status.success());
        assert!(eventually(Duration::from_secs(10), || async { signing_kid(&server).await != old }).await, "the new key signs");
        let new = signing_kid(&server).await;
        let store = tessera_server::store::Store::connect(&env.database()).await.unwrap();
        let sealed = |keys: &[tessera_server::keys::StoredKey], kid: &str| {
            keys.iter().find(|k| k.kid.as_str() == kid).unwrap().sealed_private_key.clone()
        };
        assert!(!sealed(&store.load_keys().await.unwrap(), &old).is_empty());
        let state = |list: &Value, kid: &str| {
            let k = list.as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone();
            (k["state"].as_str().unwrap().to_string(), k["private_key_state"].as_str().unwrap().to_string())
        };
        let list = env.cli_json(&["keys", "list", "--output", "json"]);
        assert_eq!(state(&list, &old), ("retiring".into(), "sealed".into()), "still published: kept");

        // Move the old key's retirement into the past rather than wait for it.
        env.sql(&format!("UPDATE signing_keys SET retires_at = {} WHERE kid = '{old}'", now() - 1)).await;
        // As every write does, so servers reload (time alone retires a key in real life).
        env.sql("UPDATE meta SET revision = revision + 1 WHERE id = 1").await;
        let erased = eventually(Duration::from_secs(10), || async {
            state(&env.cli_json(&["keys", "list", "--output", "json"]), &old).1 == "erased"
        })
        .await;
        assert!(erased, "the server's housekeeping erases a retired key's private key");
        let list = env.cli_json(&["keys", "list", "--output", "json"]);
        assert_eq!(state(&list, &old).0, "retired");
        assert_eq!(state(&list, &new), ("active".into(), "sealed".into()));
        let keys = store.load_keys().await.unwrap();
        assert!(sealed(&keys, &old).is_empty(), "the sealed bytes are gone");
        assert!(!sealed(&keys, &new).is_empty());

        // The server keeps signing with the active key, and a restart still opens it.
        let c = env.create_client(&["--name", "svc", "--scope", "a"]);
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
        drop(server);
        let server = env.start(&["--signing-alg", "ES256"]);
        assert_eq!(signing_kid(&server).await, new);
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
    }

    async fn a_rotation_is_refused_while_another_is_pending(env) {
        let _server = env.start(&["--signing-alg", "ES256"]);
        assert!(env.cli(&["keys", "rotate", "--alg", "ES256"]).status.success());
        let out = env.cli(&["keys", "rotate", "--alg", "ES256"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("already under way"));
    }

    async fn scheduled_rotation_uses_the_same_states(env) {
        let server = env.start(&["--signing-alg", "ES256", "--key-rotation-interval", "2s", "--jwks-max-age", "1"]);
        let pending = eventually(Duration::from_secs(10), || async {
            let list = env.cli_json(&["keys", "list", "--output", "json"]);
            list.as_array().unwrap().iter().any(|k| k["state"] == "pending" && k["alg"] == "ES256")
        })
        .await;
        assert!(pending, "a pending key appears once the active one has signed for the interval");
        assert_eq!(signing_kid(&server).await.len(), 43, "the old key keeps signing during pre-publication");
    }

    async fn secret_rotation_grace_revocation_and_expiry(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let old = env.create_client(&["--name", "svc", "--scope", "a"]);
        assert_eq!(token_basic(&server, &old, "grant_type=client_credentials").await.status(), 200, "old secret cached");

        let r = env.cli_json(&["client", "rotate-secret", &old.id, "--grace", "2s", "--output", "json"]);
        let new = TestClient { id: old.id.clone(), secret: r["client_secret"].as_str().unwrap().into() };
        assert_ne!(new.secret, old.secret);
        assert_eq!(token_basic(&server, &new, "grant_type=client_credentials").await.status(), 200, "new secret works at once");
        assert_eq!(token_basic(&server, &old, "grant_type=client_credentials").await.status(), 200, "old secret works during the grace");
        assert!(
            status_becomes(&server, &old, "grant_type=client_credentials", 401, Duration::from_secs(8)).await,
            "after the grace the old secret stops, although it was cached"
        );
        assert_eq!(token_basic(&server, &new, "grant_type=client_credentials").await.status(), 200);

        // show lists both secrets with their validity, never a value.
        let out = env.cli(&["client", "show", &old.id, "--output", "json"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!text.contains(&new.secret) && !text.contains(&old.secret));
        let show: Value = serde_json::from_str(&text).unwrap();
        let secrets = show["secrets"].as_array().unwrap();
        assert_eq!(secrets.len(), 2);
        let new_id = r["secret_id"].as_str().unwrap();
        // Same-second secrets are ordered by id, so find each by its id.
        let old_entry = secrets.iter().find(|s| s["id"] != new_id).unwrap();
        let new_entry = secrets.iter().find(|s| s["id"] == new_id).expect("the new secret is listed");
        assert!(old_entry["expires_at"].is_string(), "the old secret has an expiry");
        assert!(new_entry["expires_at"].is_null(), "the new one does not");

        // Revocation ends a (cached) secret at once, within the refresh bound.
        env.cli_json(&["client", "revoke-secret", &old.id, new_id, "--output", "json"]);
        assert!(
            status_becomes(&server, &new, "grant_type=client_credentials", 401, Duration::from_secs(5)).await,
            "a revoked secret is refused though cached"
        );
        let again = env.cli(&["client", "revoke-secret", &old.id, new_id]);
        assert!(!again.status.success(), "revoking twice is an error");

        // Client expiry.
        let c = env.create_client(&["--name", "temp", "--scope", "a", "--expires-at", &(now() + 2).to_string()]);
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials", 401, Duration::from_secs(8)).await,
            "an expired client is refused though cached"
        );
        let past = env.cli(&["client", "create", "--name", "x", "--scope", "a", "--expires-at", "2001-01-01T00:00:00Z"]);
        assert!(!past.status.success() && String::from_utf8_lossy(&past.stderr).contains("future"));
        let with_expiry = env.cli_json(&["client", "rotate-secret", &c.id, "--grace", "0s", "--expires-at", "2099-01-01T00:00:00Z", "--output", "json"]);
        assert_eq!(with_expiry["expires_at"], "2099-01-01T00:00:00Z");
    }
}

both_backends! {
    async fn verifier_picks_up_an_unannounced_key_via_unknown_kid_refresh(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "svc", "--scope", "a", "--audience", "https://orders"]);
        let v = tessera_verifier::Verifier::builder(server.base.clone(), "https://orders")
            .unknown_kid_cooldown(Duration::from_secs(1))
            .build()
            .unwrap();
        let first: Value = token_basic(&server, &c, "grant_type=client_credentials").await.json().await.unwrap();
        v.verify(first["access_token"].as_str().unwrap()).await.unwrap();
        assert_eq!(v.fetch_count(), 1);
        // No pre-publication: the new key signs at once, so the verifier has never seen it.
        let out = env.cli(&["keys", "rotate", "--alg", "RS256", "--publish-ahead", "0", "--output", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let new_kid = serde_json::from_slice::<Value>(&out.stdout).unwrap()["new"]["kid"].as_str().unwrap().to_string();
        assert!(eventually(Duration::from_secs(5), || async { signing_kid(&server).await == new_kid }).await);
        tokio::time::sleep(Duration::from_millis(1100)).await; // past the (test-sized) cooldown
        let second: Value = token_basic(&server, &c, "grant_type=client_credentials").await.json().await.unwrap();
        let at = v.verify(second["access_token"].as_str().unwrap()).await.expect("new key fetched on its unknown kid");
        assert_eq!(at.client_id(), c.id);
        assert_eq!(v.fetch_count(), 2, "exactly one refetch");
        // The old key's tokens still verify: it stays published until they expire.
        v.verify(first["access_token"].as_str().unwrap()).await.unwrap();
    }
}
