//! The admin CLI: create prints the secret once, nothing shows it again, every command has JSON
//! output, and changes reach a running server.

use std::time::Duration;

use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

both_backends! {
    async fn create_prints_a_strong_secret_once_and_never_again(env) {
        let c = env.create_client(&[
                "--name",
                "orders",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://orders",
            ],
        );
        assert!(c.id.starts_with("tc_"));
        // tss_ + 43 base64url characters = 256 bits.
        let b64 = c.secret.strip_prefix("tss_").unwrap();
        assert_eq!(b64.len(), 43);
        assert!(b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

        let list = env.cli(&["client", "list", "--output", "json"]);
        let show = env.cli(&["client", "show", &c.id, "--output", "json"]);
        let show_text = env.cli(&["client", "show", &c.id]);
        for out in [&list, &show, &show_text] {
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains(&c.secret), "secret shown again");
            assert!(!text.contains("argon2"), "hash shown");
        }
        let list: Value = serde_json::from_slice(&list.stdout).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        let show: Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(show["client_id"], c.id.as_str());
        assert_eq!(show["scopes"], serde_json::json!(["s2s:internal"]));
        assert_eq!(show["audiences"], serde_json::json!(["https://orders"]));
        assert_eq!(show["token_ttl"], 300);
        assert_eq!(show["secrets"].as_array().unwrap().len(), 1);
        assert!(show["secrets"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("ts_"));

        // The database holds only the argon2id hash.
        let stored = env.stored_bytes().await;
                    assert!(
                !stored
                    .windows(c.secret.len())
                    .any(|w| w == c.secret.as_bytes()),
                "plaintext secret in the database"
            );
        // Human output of create also prints the secret, once.
        let out = env.cli(&["client", "create", "--name", "h", "--scope", "a"],
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.matches("client_secret: tss_").count(), 1);
    }

    async fn update_disable_enable_delete(env) {
        let c = env.create_client(&["--name", "a", "--scope", "x"]);
        let v = env.cli_json(&[
                "client",
                "update",
                &c.id,
                "--name",
                "b",
                "--scope",
                "y",
                "--scope",
                "z",
                "--audience",
                "https://q",
                "--token-ttl",
                "60",
                "--output",
                "json",
            ],
        );
        assert_eq!(v["name"], "b");
        assert_eq!(v["scopes"], serde_json::json!(["y", "z"]));
        assert_eq!(v["audiences"], serde_json::json!(["https://q"]));
        assert_eq!(v["token_ttl"], 60);
        assert_eq!(
            env.cli_json(&["client", "disable", &c.id, "--output", "json"]
            )["enabled"],
            false
        );
        assert_eq!(
            env.cli_json(&["client", "enable", &c.id, "--output", "json"])["enabled"],
            true
        );
        let v = env.cli_json(&[
                "client",
                "update",
                &c.id,
                "--clear-audiences",
                "--output",
                "json",
            ],
        );
        assert_eq!(v["audiences"], serde_json::json!([]));
        assert_eq!(
            env.cli_json(&["client", "delete", &c.id, "--output", "json"])["deleted"],
            true
        );
        let out = env.cli(&["client", "show", &c.id]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no client with id"));
    }

    async fn bad_cli_input_fails_with_one_clear_line(env) {
        for (args, needle) in [
            (
                vec!["client", "create", "--name", "a", "--scope", "bad scope"],
                "malformed scope",
            ),
            (
                vec![
                    "client",
                    "create",
                    "--name",
                    "a",
                    "--scope",
                    "a",
                    "--token-ttl",
                    "0",
                ],
                "--token-ttl",
            ),
            (
                vec![
                    "client",
                    "create",
                    "--name",
                    "a",
                    "--scope",
                    "a",
                    "--token-ttl",
                    "100000",
                ],
                "--token-ttl",
            ),
            (
                vec!["client", "create", "--name", "", "--scope", "a"],
                "--name",
            ),
            (
                vec![
                    "client",
                    "create",
                    "--name",
                    "a",
                    "--scope",
                    "a",
                    "--audience",
                    "has space",
                ],
                "invalid audience",
            ),
            (
                vec!["client", "update", "tc_missing", "--name", "x"],
                "no client with id",
            ),
            (vec!["client", "delete", "tc_missing"], "no client with id"),
        ] {
            let out = env.cli(&args);
            assert!(!out.status.success(), "{args:?} should fail");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(needle), "{args:?}: {err}");
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{args:?}: one line, got {err}"
            );
        }
    }

    async fn cli_changes_reach_a_running_server_within_five_seconds_by_default(env) {
        // Default refresh interval (2 s), not the fast one other tests use.
        let server = env.start(&["--refresh-interval-ms", "2000"]);
        let c = env.create_client(&["--name", "late", "--scope", "a"]);
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials", 200, Duration::from_secs(5)).await,
            "a client created while the server runs must work within 5 s"
        );
        env.cli_json(&["client", "disable", &c.id, "--output", "json"],
        );
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials", 401, Duration::from_secs(5)).await,
            "a disabled client must be refused within 5 s even though its credential is cached"
        );
        env.cli_json(&["client", "enable", &c.id, "--output", "json"]);
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials", 200, Duration::from_secs(5)).await
        );
        env.cli_json(&[
                "client", "update", &c.id, "--scope", "b", "--output", "json",
            ],
        );
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials&scope=a", 400, Duration::from_secs(5)).await,
            "a removed scope must be refused"
        );
        env.cli_json(&["client", "delete", &c.id, "--output", "json"]);
        assert!(
            status_becomes(&server, &c, "grant_type=client_credentials", 401, Duration::from_secs(5)).await
        );
    }
}
