//! The admin CLI: create prints the secret once, nothing shows it again, every command has JSON
//! output, and changes reach a running server.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

#[test]
fn create_prints_a_strong_secret_once_and_never_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = create_client(
        dir.path(),
        &[
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

    let list = cli(dir.path(), &["client", "list", "--output", "json"]);
    let show = cli(dir.path(), &["client", "show", &c.id, "--output", "json"]);
    let show_text = cli(dir.path(), &["client", "show", &c.id]);
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
    let db = std::fs::read(dir.path().join("tessera.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tessera.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes
                .windows(c.secret.len())
                .any(|w| w == c.secret.as_bytes()),
            "plaintext secret in the database"
        );
    }
    // Human output of create also prints the secret, once.
    let out = cli(
        dir.path(),
        &["client", "create", "--name", "h", "--scope", "a"],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("client_secret: tss_").count(), 1);
}

#[test]
fn update_disable_enable_delete() {
    let dir = tempfile::tempdir().unwrap();
    let c = create_client(dir.path(), &["--name", "a", "--scope", "x"]);
    let v = cli_json(
        dir.path(),
        &[
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
        cli_json(
            dir.path(),
            &["client", "disable", &c.id, "--output", "json"]
        )["enabled"],
        false
    );
    assert_eq!(
        cli_json(dir.path(), &["client", "enable", &c.id, "--output", "json"])["enabled"],
        true
    );
    let v = cli_json(
        dir.path(),
        &[
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
        cli_json(dir.path(), &["client", "delete", &c.id, "--output", "json"])["deleted"],
        true
    );
    let out = cli(dir.path(), &["client", "show", &c.id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client with id"));
}

#[test]
fn bad_cli_input_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
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
        let out = cli(dir.path(), &args);
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

#[tokio::test]
async fn cli_changes_reach_a_running_server_within_five_seconds_by_default() {
    let dir = tempfile::tempdir().unwrap();
    // Default refresh interval (2 s), not the fast one other tests use.
    let server = Server::start(dir.path(), &["--refresh-interval-ms", "2000"]);
    let c = create_client(dir.path(), &["--name", "late", "--scope", "a"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status()
                == 200
        })
        .await,
        "a client created while the server runs must work within 5 s"
    );
    cli_json(
        dir.path(),
        &["client", "disable", &c.id, "--output", "json"],
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status()
                == 401
        })
        .await,
        "a disabled client must be refused within 5 s even though its credential is cached"
    );
    cli_json(dir.path(), &["client", "enable", &c.id, "--output", "json"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status()
                == 200
        })
        .await
    );
    cli_json(
        dir.path(),
        &[
            "client", "update", &c.id, "--scope", "b", "--output", "json",
        ],
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_basic(&server, &c, "grant_type=client_credentials&scope=a")
                .await
                .status()
                == 400
        })
        .await,
        "a removed scope must be refused"
    );
    cli_json(dir.path(), &["client", "delete", &c.id, "--output", "json"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status()
                == 401
        })
        .await
    );
}
