//! Issue 14: per-client token quotas (429 then recovery), the failure budget, availability
//! through a database outage.

use std::time::Duration;

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

both_backends! {
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
