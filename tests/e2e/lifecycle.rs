//! Start-up, restart, configuration errors and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

e2e_test! {
fn bad_configuration_fails_at_start_with_one_clear_line() {
    let env = TestEnv::sqlite();
    for (args, needle) in [
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--issuer", "ftp://x"],
            "issuer",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--issuer",
                "https://x/?q=1",
            ],
            "query",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--signing-alg", "HS256"],
            "HS256",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--signing-alg", "none"],
            "none",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--master-key",
                "too-short",
            ],
            "master key",
        ),
        (vec!["serve", "--listen", "not-an-address"], "listen"),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                "mysql://x",
            ],
            "unsupported database URL",
        ),
    ] {
        let out = env.cli(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
}

use std::process::Command;

both_backends! {
    async fn restart_keeps_clients_and_keys(env) {
        let mut server = env.start(&["--signing-alg", "ES256", "--issuer", "http://tessera.test"],
        );
        let c = env.create_client(&["--name", "r", "--scope", "a"]);
        let body: Value = token_basic(&server, &c, "grant_type=client_credentials")
            .await
            .json()
            .await
            .unwrap();
        let before = body["access_token"].as_str().unwrap().to_string();
        assert!(server.sigterm().success(), "SIGTERM exits 0");

        let key_file = std::fs::read_to_string(env.data_dir.join("master.key")).unwrap();
        let server = env.start(&["--signing-alg", "ES256", "--issuer", "http://tessera.test"],
        );
        // The token from before the restart verifies against the JWKS served after it.
        let jwks: jsonwebtoken::jwk::JwkSet = get_json(&server, "/jwks.json").await;
        verify_with(&jwks, "http://tessera.test", &before, "http://tessera.test");
        assert_eq!(
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status(),
            200
        );
        assert_eq!(
            std::fs::read_to_string(env.data_dir.join("master.key")).unwrap(),
            key_file,
            "master key not regenerated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(env.data_dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    async fn signing_keys_are_encrypted_at_rest(env) {
        let mut server = env.start(&["--signing-alg", "EdDSA"]);
        assert!(server.sigterm().success());
        // An Ed25519 PKCS#8 v1 private key starts with this DER prefix; it must not be in the file.
        let pkcs8_prefix = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
            0x20,
        ];
        let bytes = env.stored_bytes().await;
        assert!(
            !bytes.windows(pkcs8_prefix.len()).any(|w| w == pkcs8_prefix),
            "plaintext PKCS#8 key in the database"
        );

        // Another master key cannot open the stored key: start-up fails with one clear line.
        let other = STANDARD.encode([9u8; 32]);
        let out = env.cli(&["serve", "--listen", "127.0.0.1:0", "--master-key", &other]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong master key"), "{err}");
        assert!(!err.contains(&other), "the master key must not be echoed");
    }

    async fn sigterm_drains_an_in_flight_request_and_exits_zero(env) {
        let mut server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "d", "--scope", "a"]);
        let addr = server.base.trim_start_matches("http://").to_string();
        let body = "grant_type=client_credentials";
        let auth = STANDARD.encode(format!("{}:{}", c.id, c.secret));
        // Start a request and stop half-way through its body.
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // New connections are no longer accepted…
        assert!(
            TcpStream::connect(&addr).is_err(),
            "listener closed after SIGTERM"
        );
        // …but the request in flight completes.
        s.write_all(&body.as_bytes()[10..]).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "in-flight request answered: {:?}",
            resp.lines().next()
        );
        assert!(resp.contains("access_token"));
        assert!(
            server.wait(Duration::from_secs(30)).success(),
            "exit 0 after draining"
        );
    }

    async fn migrate_command_applies_migrations(env) {
        let out = env.cli(&["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if env.backend == Backend::Sqlite {
            assert!(env.data_dir.join("tessera.db").exists());
        }
        // Idempotent.
        assert!(env.cli(&["migrate"]).status.success());
    }
}

e2e_test! {
/// Regression: the SIGTERM handler was installed only after the start line was printed, so a
/// SIGTERM sent right after it could kill the server with a non-zero status (CI caught it).
fn sigterm_right_after_start_still_exits_zero() {
    let env = TestEnv::sqlite();
    for _ in 0..5 {
        let mut server = env.start(&["--signing-alg", "ES256"]);
        assert!(
            server.sigterm().success(),
            "SIGTERM right after the start line must exit 0"
        );
    }
}
}
