//! No secret or token ever appears in the server's output, even at the most verbose log level.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

both_backends! {
    async fn no_secret_or_token_in_logs_at_trace_level(env) {
        let mut server = env.start_env(&["--signing-alg", "ES256"],
            &[("TESSERA_LOG", "trace")],
        );
        let c = env.create_client(&["--name", "l", "--scope", "a"]);
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let b: Value = token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .json()
                .await
                .unwrap();
            tokens.push(b["access_token"].as_str().unwrap().to_string());
        }
        let post = http()
            .post(server.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.id.as_str()),
                ("client_secret", c.secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let b: Value = post.json().await.unwrap();
        tokens.push(b["access_token"].as_str().unwrap().to_string());
        let wrong = "tss_ThisIsAWrongSecretThatMustNotBeLogged000000";
        let bad = TestClient {
            id: c.id.clone(),
            secret: wrong.into(),
        };
        assert_eq!(
            token_basic(&server, &bad, "grant_type=client_credentials")
                .await
                .status(),
            401
        );
        assert_eq!(
            token_basic(&server, &c, "grant_type=client_credentials&scope=nope")
                .await
                .status(),
            400
        );
        assert!(server.sigterm().success());

        let logs = server.logs();
        assert!(
            logs.contains("client authentication failed"),
            "failures are logged (without secrets)"
        );
        assert!(logs.contains(&c.id), "client ids are logged");
        let basic = STANDARD.encode(format!("{}:{}", c.id, c.secret));
        for (what, needle) in [
            ("secret", c.secret.as_str()),
            ("wrong secret", wrong),
            ("basic credentials", basic.as_str()),
        ] {
            assert!(!logs.contains(needle), "{what} found in logs");
        }
        for t in &tokens {
            // Neither the token nor its signature part.
            assert!(!logs.contains(t.as_str()), "token found in logs");
            assert!(
                !logs.contains(t.rsplit('.').next().unwrap()),
                "token signature found in logs"
            );
        }
    }
}
