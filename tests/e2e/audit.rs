//! Audit: admin changes stored with the acting OS user; structured events for failed
//! authentications and issued tokens; never a secret or a token.

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

both_backends! {
    async fn admin_changes_are_recorded_with_the_os_user(env) {
        let as_auditor = |args: &[&str]| {
            let out = env.cli_env(args, &[("USER", "auditor")]);
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        };
        let created = as_auditor(&["client", "create", "--name", "svc", "--scope", "a", "--output", "json"]);
        let id = created["client_id"].as_str().unwrap().to_string();
        let first_secret = created["client_secret"].as_str().unwrap().to_string();
        let rotated = as_auditor(&["client", "rotate-secret", &id, "--grace", "1h", "--output", "json"]);
        let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
        as_auditor(&["client", "revoke-secret", &id, rotated["secret_id"].as_str().unwrap(), "--output", "json"]);
        as_auditor(&["client", "disable", &id, "--output", "json"]);
        as_auditor(&["keys", "rotate", "--alg", "ES256", "--output", "json"]);

        let out = env.cli(&["audit", "list", "--output", "json"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!text.contains(&first_secret) && !text.contains(&new_secret), "no secret in the audit trail");
        let events: Value = serde_json::from_str(&text).unwrap();
        let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["client.create", "client.rotate_secret", "client.revoke_secret", "client.disable", "keys.rotate"]);
        for e in events.as_array().unwrap() {
            assert_eq!(e["actor"], "auditor");
            assert!(e["at"].as_str().unwrap().ends_with('Z'), "RFC 3339: {e}");
        }
        assert_eq!(events[1]["detail"]["grace_secs"], 3600);
        let mine = env.cli_json(&["audit", "list", "--client", &id, "--output", "json"]);
        assert_eq!(mine.as_array().unwrap().len(), 4, "keys.rotate has no client");
        let later = env.cli_json(&["audit", "list", "--since", "2099-01-01T00:00:00Z", "--output", "json"]);
        assert_eq!(later, serde_json::json!([]));
        let table = env.cli(&["audit", "list"]);
        assert!(String::from_utf8_lossy(&table.stdout).contains("client.rotate_secret"));
    }

    async fn a_change_whose_audit_record_cannot_be_written_does_not_happen(env) {
        let first = env.create_client(&["--name", "first", "--scope", "a"]);
        // Break the audit trail: every change must now fail as a whole.
        env.sql("ALTER TABLE audit_events RENAME TO audit_events_away").await;
        let out = env.cli(&["client", "create", "--name", "second", "--scope", "a"]);
        assert!(!out.status.success(), "create refused");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("tss_"), "no secret shown for a client that was not made");
        assert!(!env.cli(&["client", "disable", &first.id]).status.success());
        assert!(!env.cli(&["client", "rotate-secret", &first.id]).status.success());
        assert!(!env.cli(&["client", "delete", &first.id]).status.success());
        assert!(!env.cli(&["keys", "rotate", "--alg", "ES256"]).status.success());
        let keys_before = env.cli_json(&["keys", "list", "--output", "json"]).as_array().unwrap().len();

        env.sql("ALTER TABLE audit_events_away RENAME TO audit_events").await;
        let list = env.cli_json(&["client", "list", "--output", "json"]);
        let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["first"], "the refused create left nothing behind");
        let shown = env.cli_json(&["client", "show", &first.id, "--output", "json"]);
        assert_eq!(shown["enabled"], true, "the refused disable changed nothing");
        assert_eq!(shown["secrets"].as_array().unwrap().len(), 1, "the refused rotation added no secret");
        assert_eq!(env.cli_json(&["keys", "list", "--output", "json"]).as_array().unwrap().len(), keys_before);
        let actions: Vec<String> = env.cli_json(&["audit", "list", "--output", "json"]).as_array().unwrap().iter()
            .map(|e| e["action"].as_str().unwrap().to_string()).collect();
        assert_eq!(actions, ["client.create"], "only the change that happened is recorded");
    }

    async fn failed_authentications_and_issued_tokens_are_structured_events(env) {
        let server = env.start_env(&["--signing-alg", "ES256", "--log-format", "json"], &[("TESSERA_LOG", "info,tessera::audit=debug")]);
        let c = env.create_client(&["--name", "svc", "--scope", "a"]);
        let r = http()
            .post(server.url("/oauth/token"))
            .basic_auth(&c.id, Some("tss_wrong-secret-value"))
            .header("x-service-name", "billing-worker")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let ok = http()
            .post(server.url("/oauth/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .header("x-service-name", "billing-worker")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let token = ok.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
        let find = |event: &str| {
            server.logs().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["fields"]["event"] == event)
        };
        assert!(eventually(std::time::Duration::from_secs(3), || async { find("token_issued").is_some() }).await);
        let failed = find("client_auth_failed").expect("a JSON event for the failed authentication");
        let f = &failed["fields"];
        assert_eq!(f["client_id"], c.id.as_str());
        assert_eq!(f["reason"], "wrong or expired secret");
        assert_eq!(f["source"], "127.0.0.1");
        assert_eq!(f["service"], "billing-worker");
        assert_eq!(failed["target"], "tessera::audit");
        let issued = find("token_issued").unwrap();
        assert_eq!(issued["fields"]["client_id"], c.id.as_str());
        assert_eq!(issued["fields"]["service"], "billing-worker");
        let logs = server.logs();
        assert!(!logs.contains("tss_wrong-secret-value") && !logs.contains(&c.secret) && !logs.contains(&token));
    }
}
