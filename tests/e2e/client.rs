//! tessera-client and `tessera token` against the real server. Token requests are counted at
//! the server, from its debug log ("token issued" per token).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tessera_client::{
    AuthorizedClient, ClientSecret, ManualClock, RetryPolicy, TokenError, TokenSource,
};

use crate::harness::both_backends;
use crate::harness::*;

const COUNTING: &[(&str, &str)] = &[("TESSERA_LOG", "info,tessera::audit=debug")];
const ISSUED: &str = "token issued";

fn source(server: &Server, c: &TestClient) -> tessera_client::TokenSourceBuilder {
    TokenSource::builder(c.id.clone(), ClientSecret::new(c.secret.clone()))
        .issuer(server.base.clone())
}

both_backends! {
    async fn cache_hits_make_no_request_and_a_cold_cache_makes_one(env) {
        let server = env.start_env(&["--signing-alg", "ES256"], COUNTING);
        let c = env.create_client(&[
                "--name",
                "caller",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://orders",
            ],
        );
        let src = source(&server, &c)
            .scope("s2s:internal")
            .audience("https://orders")
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let s = src.clone();
            tasks.push(tokio::spawn(async move {
                s.token().await.map(|t| t.secret().to_string())
            }));
        }
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap().unwrap());
        }
        assert!(
            tokens.windows(2).all(|w| w[0] == w[1]),
            "all callers share one token"
        );
        assert!(
            eventually(Duration::from_secs(2), || async {
                server.count_logs(ISSUED) >= 1
            })
            .await
        );
        assert_eq!(
            server.count_logs(ISSUED),
            1,
            "100 concurrent callers on a cold cache: one token request"
        );
        for _ in 0..50 {
            assert_eq!(src.token().await.unwrap().secret(), tokens[0]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(server.count_logs(ISSUED), 1, "cache hits make no request");
        // The token is what the server issued, for the requested audience and scope.
        let claims = verify(&server, &tokens[0], "https://orders").await;
        assert_eq!(claims["scope"], "s2s:internal");
    }

    async fn refreshes_ahead_of_expiry(env) {
        let server = env.start_env(&["--signing-alg", "ES256"], COUNTING);
        let c = env.create_client(&["--name", "caller", "--scope", "a", "--token-ttl", "100"],
        );
        let clock = Arc::new(ManualClock::new());
        let src = source(&server, &c).clock(clock.clone()).build().unwrap();
        let first = src.token().await.unwrap();
        assert_eq!(first.expires_in, Duration::from_secs(100));
        clock.advance(Duration::from_secs(79));
        assert_eq!(
            src.token().await.unwrap().secret(),
            first.secret(),
            "before 80 %: cached"
        );
        clock.advance(Duration::from_secs(2));
        // At 81 % the cached token (still valid) is returned while a refresh runs in the background.
        assert_eq!(src.token().await.unwrap().secret(), first.secret());
        let refreshed = eventually(Duration::from_secs(5), || async {
            src.token().await.unwrap().secret() != first.secret()
        })
        .await;
        assert!(refreshed, "a new token before the old one expired");
        assert!(
            eventually(Duration::from_secs(2), || async {
                server.count_logs(ISSUED) >= 2
            })
            .await
        );
        assert_eq!(server.count_logs(ISSUED), 2);
    }

    async fn a_server_restart_is_survived_by_retry(env) {
        let mut server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "caller", "--scope", "a"]);
        let clock = Arc::new(ManualClock::new());
        let retry = RetryPolicy {
            max_attempts: 30,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(300),
        };
        let src = source(&server, &c)
            .clock(clock.clone())
            .retry(retry)
            .build()
            .unwrap();
        src.token().await.unwrap();
        let addr = server.base.trim_start_matches("http://").to_string();
        assert!(server.sigterm().success());
        clock.advance(Duration::from_secs(301)); // the cached token has expired
        let cfg = env.config.clone();
        let restart = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            cfg.start(&["--signing-alg", "ES256", "--listen", &addr])
        });
        let t = src.token().await.expect("token after the server came back");
        let server = restart.join().unwrap();
        verify(&server, t.secret(), &server.base).await;
    }

    async fn rfc6749_errors_are_typed_and_not_retried(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&["--name", "caller", "--scope", "a"]);
        let wrong = TestClient {
            id: c.id.clone(),
            secret: "tss_wrong".into(),
        };
        let err = source(&server, &wrong)
            .build()
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert_eq!(err.oauth_code(), Some("invalid_client"));
        assert!(matches!(err, TokenError::OAuth { status: 401, .. }));
        assert!(
            !format!("{err} {err:?}").contains("tss_wrong"),
            "the secret is never in an error"
        );
        assert!(
            eventually(Duration::from_secs(5), || async {
                server.count_logs("client authentication failed") >= 1
            })
            .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            server.count_logs("client authentication failed"),
            1,
            "invalid_client is not retried"
        );
        let err = source(&server, &c)
            .scope("admin")
            .build()
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert_eq!(err.oauth_code(), Some("invalid_scope"));
        let err = source(&server, &c)
            .audience("https://elsewhere")
            .build()
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert_eq!(err.oauth_code(), Some("invalid_target"));
    }

    async fn authorized_client_refreshes_once_on_invalid_token(env) {
        let server = env.start_env(&["--signing-alg", "ES256"], COUNTING);
        let c = env.create_client(&["--name", "caller", "--scope", "a"]);
        // A resource that says the first token it sees is invalid (as after a revocation).
        let first_seen: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let seen = first_seen.clone();
        let app = axum::Router::new().route(
            "/r",
            axum::routing::get(move |h: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let auth = h
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let mut first = seen.lock().unwrap();
                    if first.is_none() {
                        *first = Some(auth);
                        return (
                            StatusCode::UNAUTHORIZED,
                            [("www-authenticate", "Bearer error=\"invalid_token\"")],
                            "no",
                        )
                            .into_response();
                    }
                    if Some(&auth) == first.as_ref() {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [("www-authenticate", "Bearer error=\"invalid_token\"")],
                            "no",
                        )
                            .into_response();
                    }
                    (StatusCode::OK, "yes").into_response()
                }
            }),
        );
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let api = AuthorizedClient::new(http(), source(&server, &c).build().unwrap());
        let resp = api.send(api.get(format!("http://{addr}/r"))).await.unwrap();
        assert_eq!(resp.status(), 200);
        // The server's log line can trail its response: wait for it, then check there is no third.
        assert!(
            eventually(Duration::from_secs(5), || async {
                server.count_logs(ISSUED) >= 2
            })
            .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            server.count_logs(ISSUED),
            2,
            "one refresh after invalid_token"
        );
    }

    async fn tessera_token_command_for_scripts(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&[
                "--name",
                "ci",
                "--scope",
                "deploy",
                "--audience",
                "https://orders",
            ],
        );
        let secret_file = env.data_dir.join("secret");
        std::fs::write(&secret_file, format!("{}\n", c.secret)).unwrap();
        let run = |args: &[&str], env: &[(&str, &str)]| {
            std::process::Command::new(BIN)
                .args(["token", "--issuer", &server.base, "--client-id", &c.id])
                .args(args)
                .env_remove("TESSERA_CLIENT_SECRET")
                .envs(env.iter().copied())
                .output()
                .unwrap()
        };
        let out = run(
            &["--client-secret-file", secret_file.to_str().unwrap()],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            token.trim().matches('.').count(),
            2,
            "prints the bare token"
        );
        verify(&server, token.trim(), "https://orders").await;

        let out = run(
            &["--output", "json", "--scope", "deploy"],
            &[("TESSERA_CLIENT_SECRET", c.secret.as_str())],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "deploy");

        // The secret is never a flag value; a missing secret and a wrong one fail with one line.
        let out = run(&["--client-secret", &c.secret], &[]);
        assert!(!out.status.success());
        let out = run(&[], &[]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no client secret"));
        let out = run(&[], &[("TESSERA_CLIENT_SECRET", "tss_wrong")]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid_client") && !err.contains("tss_wrong"),
            "{err}"
        );
    }
}
