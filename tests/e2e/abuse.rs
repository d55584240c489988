//! Issue 14: per-client token quotas (429 then recovery), the failure budget, availability
//! through a database outage.

use std::time::Duration;

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

both_backends! {
    async fn incremental_refresh(env) {
        // Changes reach the server one client at a time (no full reload): an update among
        // many clients is seen, a deleted client disappears, discovery's scopes follow.
        let mut clients = Vec::new();
        for i in 0..12 {
            clients.push(env.create_client(&["--name", &format!("c{i}"), "--scope", &format!("s{i}")]));
        }
        let server = env.start(&[]);
        let form = "grant_type=client_credentials";
        for c in &clients {
            assert_eq!(token_basic(&server, c, form).await.status(), 200);
        }
        assert!(env.cli(&["client", "update", &clients[3].id, "--scope", "fresh"]).status.success());
        assert!(status_becomes(&server, &clients[3], "grant_type=client_credentials&scope=fresh", 200, Duration::from_secs(5)).await);
        assert!(env.cli(&["client", "delete", &clients[7].id]).status.success());
        assert!(status_becomes(&server, &clients[7], form, 401, Duration::from_secs(5)).await);
        let meta: Value = get_json(&server, "/.well-known/oauth-authorization-server").await;
        let scopes: Vec<&str> = meta["scopes_supported"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        assert!(scopes.contains(&"fresh") && !scopes.contains(&"s3") && !scopes.contains(&"s7"), "{scopes:?}");
        // Everyone else untouched, their credentials still cached.
        for (i, c) in clients.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 7) {
            assert_eq!(token_basic(&server, c, form).await.status(), 200, "client {i}");
        }
        // Paginated listing: pages in id order, without repeats or gaps.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let mut args = vec!["client", "list", "--output", "json", "--limit", "5"];
            if !after.is_empty() { args.extend(["--after", after.as_str()]); }
            let page = env.cli_json(&args);
            let ids: Vec<String> = page.as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
            if ids.is_empty() { break; }
            after = ids.last().unwrap().clone();
            seen.extend(ids);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "id order, no repeats");
        assert_eq!(seen.len(), 11);
    }

    async fn client_cache_smaller_than_registry(env) {
        // `--client-cache 4` with 12 clients: the server holds 4 at start, reads the others
        // when they call and evicts to make room; every client works, a change to one not in
        // memory is seen at its next call, a deleted one is refused, and discovery's
        // `scopes_supported` (read from the database now) still covers every enabled client.
        let mut clients = Vec::new();
        for i in 0..12 {
            clients.push(env.create_client(&["--name", &format!("c{i}"), "--scope", &format!("s{i}")]));
        }
        let server = env.start(&["--client-cache", "4"]);
        // (The log is read as the process writes it: poll.)
        let logged = eventually(Duration::from_secs(5), || async { server.count_logs("more clients than --client-cache") == 1 }).await;
        assert!(logged, "{}", server.logs());
        let form = "grant_type=client_credentials";
        for round in 0..2 {
            for (i, c) in clients.iter().enumerate() {
                assert_eq!(token_basic(&server, c, form).await.status(), 200, "round {round}, client {i}");
            }
        }
        // The last ones to call are in memory, the first ones most likely not: both kinds change.
        for i in [0, 11] {
            assert!(env.cli(&["client", "update", &clients[i].id, "--scope", &format!("fresh{i}")]).status.success());
            let fresh = format!("grant_type=client_credentials&scope=fresh{i}");
            assert!(status_becomes(&server, &clients[i], &fresh, 200, Duration::from_secs(5)).await, "client {i}");
            let old = format!("grant_type=client_credentials&scope=s{i}");
            assert_eq!(token_basic(&server, &clients[i], &old).await.status(), 400, "client {i}");
        }
        for i in [1, 10] {
            assert!(env.cli(&["client", "delete", &clients[i].id]).status.success());
            assert!(status_becomes(&server, &clients[i], form, 401, Duration::from_secs(5)).await, "client {i}");
        }
        assert!(env.cli(&["client", "disable", &clients[2].id]).status.success());
        assert!(status_becomes(&server, &clients[2], form, 401, Duration::from_secs(5)).await);
        let meta: Value = get_json(&server, "/.well-known/oauth-authorization-server").await;
        let mut scopes: Vec<&str> = meta["scopes_supported"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        scopes.sort_unstable();
        assert_eq!(scopes, ["fresh0", "fresh11", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]);
        // A wrong secret for a client not in memory is still refused, a new one still unknown.
        let wrong = TestClient { id: clients[5].id.clone(), secret: "wrong".into() };
        assert_eq!(token_basic(&server, &wrong, form).await.status(), 401);
        let stranger = TestClient { id: "tc_nobody_registered_this".into(), secret: "x".into() };
        assert_eq!(token_basic(&server, &stranger, form).await.status(), 401);
        let late = env.create_client(&["--name", "late", "--scope", "s2s:internal"]);
        assert_eq!(token_basic(&server, &late, form).await.status(), 200);
    }

    async fn failure_budget(env) {
        let server = env.start(&["--auth-failure-budget", "3", "--auth-failure-window", "2s"]);
        let c = env.create_client(&["--name", "target", "--scope", "a"]);
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
        let wrong = TestClient { id: c.id.clone(), secret: "wrong".into() };
        for _ in 0..3 {
            assert_eq!(token_basic(&server, &wrong, "grant_type=client_credentials").await.status(), 401);
        }
        // The budget is used up: refused at once, without argon2id, with Retry-After.
        let r = token_basic(&server, &wrong, "grant_type=client_credentials").await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");
        assert!(eventually(Duration::from_secs(2), || async { server.count_logs("client_auth_throttled") == 1 }).await);
        // The caller whose secret is verified is not affected.
        for _ in 0..5 {
            assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
        }
        // A new correct secret is throttled inside the window and accepted after it.
        let v = env.cli_json(&["client", "rotate-secret", &c.id, "--output", "json"]);
        let new = TestClient { id: c.id.clone(), secret: v["client_secret"].as_str().unwrap().into() };
        assert_eq!(token_basic(&server, &new, "grant_type=client_credentials").await.status(), 429);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(token_basic(&server, &new, "grant_type=client_credentials").await.status(), 200);
        // Unknown ids have budgets too, so the throttle does not reveal which ids exist.
        let ghost = TestClient { id: "tc_ghost".into(), secret: "x".into() };
        for _ in 0..3 {
            assert_eq!(token_basic(&server, &ghost, "grant_type=client_credentials").await.status(), 401);
        }
        assert_eq!(token_basic(&server, &ghost, "grant_type=client_credentials").await.status(), 429);
    }

    async fn token_quotas(env) {
        // A server default of 3 a minute; one client with its own 120.
        let server = env.start(&["--max-tokens-per-minute", "3"]);
        let plain = env.create_client(&["--name", "plain", "--scope", "a"]);
        let busy = env.create_client(&["--name", "busy", "--scope", "a", "--max-tokens-per-minute", "120"]);
        for _ in 0..3 {
            assert_eq!(token_basic(&server, &plain, "grant_type=client_credentials").await.status(), 200);
        }
        let r = token_basic(&server, &plain, "grant_type=client_credentials").await;
        assert_eq!(r.status(), 429);
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&wait), "3 a minute: the next in ≤ 20 s, said {wait}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"], "temporarily_unavailable");
        // Another client is not affected; its own quota applies.
        // 120 at once, then the bucket refills at 2 a second while the loop runs.
        let mut issued = 0;
        let r = loop {
            let r = token_basic(&server, &busy, "grant_type=client_credentials").await;
            if r.status() != 200 {
                break r;
            }
            issued += 1;
            assert!(issued < 200, "no quota applied");
        };
        assert_eq!(r.status(), 429);
        assert!((120..140).contains(&issued), "{issued} tokens before the 429");
        assert_eq!(r.headers()["retry-after"], "1", "120 a minute: one every half second");
        // Recovery: after the wait, tokens again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(token_basic(&server, &busy, "grant_type=client_credentials").await.status(), 200);
        // Refusals (a wrong scope) cost no quota; the quota shows in `client show`.
        let v = env.cli_json(&["client", "show", &busy.id, "--output", "json"]);
        assert_eq!(v["max_tokens_per_minute"], 120);
        // 0 returns the client to the server's default.
        assert!(env.cli(&["client", "update", &busy.id, "--max-tokens-per-minute", "0"]).status.success());
        assert!(env.cli_json(&["client", "show", &busy.id, "--output", "json"]).get("max_tokens_per_minute").is_none());
        assert!(!env.cli(&["client", "create", "--name", "x", "--scope", "a", "--max-tokens-per-minute", "0"]).status.success());
    }
}
