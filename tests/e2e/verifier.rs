//! tessera-verifier against the real server, and the example resource service end to end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tessera_verifier::{InvalidToken, ManualClock, Verifier, VerifyError};

use crate::harness::both_backends;
use crate::harness::*;

async fn token(server: &Server, c: &TestClient, form: &str) -> String {
    let b: Value = token_basic(server, c, form).await.json().await.unwrap();
    b["access_token"].as_str().unwrap().to_string()
}

pub(crate) struct Example {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binary, built by `cargo test --workspace` next to this test binary.
pub(crate) fn start_example(issuer: &str, audience: &str, api_keys: Option<&str>) -> Example {
    start_example_env(issuer, audience, api_keys, &[])
}

pub(crate) fn start_example_env(
    issuer: &str,
    audience: &str,
    api_keys: Option<&str>,
    env: &[(&str, &str)],
) -> Example {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("resource-service");
    assert!(
        path.exists(),
        "{} missing: run `cargo test --workspace` (it builds the examples)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.envs(env.iter().copied());
    cmd.env("TESSERA_ISSUER", issuer)
        .env("TESSERA_AUDIENCE", audience)
        .env("LISTEN", "127.0.0.1:0");
    if let Some(k) = api_keys {
        cmd.env("API_KEYS", k);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("resource-service listening on ")
        .expect("start line")
        .to_string();
    Example { child, base }
}

both_backends! {
    async fn verifier_accepts_real_tokens_via_discovery_and_refuses_forgeries(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&[
                "--name",
                "v",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://orders",
            ],
        );
        let v = Verifier::builder(server.base.clone(), "https://orders")
            .build()
            .unwrap();
        let t = token(&server, &c, "grant_type=client_credentials").await;
        let at = v.verify(&t).await.unwrap();
        assert_eq!(at.client_id(), c.id);
        at.require_scope("s2s:internal").unwrap();
        assert!(matches!(
            at.require_scope("reports:read"),
            Err(VerifyError::InsufficientScope { .. })
        ));

        // Wrong audience, wrong issuer configured.
        let other_aud = Verifier::builder(server.base.clone(), "https://billing")
            .build()
            .unwrap();
        assert_eq!(
            other_aud.verify(&t).await.unwrap_err(),
            VerifyError::InvalidToken(InvalidToken::WrongAudience)
        );

        // A token from another Tessera (other keys) is refused: unknown kid.
        let env2 = env.sibling().await;
        let other = env2.start(&["--signing-alg", "ES256", "--issuer", &server.base],
        );
        let c2 = env2.create_client(&[
                "--name",
                "v",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://orders",
            ],
        );
        let foreign = token(&other, &c2, "grant_type=client_credentials").await;
        assert_eq!(
            v.verify(&foreign).await.unwrap_err(),
            VerifyError::InvalidToken(InvalidToken::UnknownKey)
        );

        // alg:none and HS256 keyed with the served public key, both with the real kid.
        let parts: Vec<&str> = t.split('.').collect();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let kid = header["kid"].as_str().unwrap();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg":"none","typ":"at+jwt","kid":kid}).to_string()),
            parts[1]
        );
        assert_eq!(
            v.verify(&none).await.unwrap_err(),
            VerifyError::InvalidToken(InvalidToken::AlgorithmNotAllowed)
        );
        let jwks = http()
            .get(server.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let h = URL_SAFE_NO_PAD.encode(json!({"alg":"HS256","typ":"at+jwt","kid":kid}).to_string());
        let signing_input = format!("{h}.{}", parts[1]);
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &jwks),
            signing_input.as_bytes(),
        );
        let hs = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert_eq!(
            v.verify(&hs).await.unwrap_err(),
            VerifyError::InvalidToken(InvalidToken::AlgorithmNotAllowed)
        );
        // Tampered signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 0x80;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(
            v.verify(&tampered).await.unwrap_err(),
            VerifyError::InvalidToken(InvalidToken::BadSignature)
        );
        assert_eq!(
            v.fetch_count(),
            1,
            "one discovery+JWKS fetch for all of the above (others within cooldown)"
        );
    }

    async fn issuer_stopped_cached_keys_work_then_keys_unavailable(env) {
        let mut server = env.start(&["--signing-alg", "RS256"]);
        let c = env.create_client(&[
                "--name",
                "v",
                "--scope",
                "a",
                "--audience",
                "https://orders",
            ],
        );
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let v = Verifier::builder(server.base.clone(), "https://orders")
            .clock(clock.clone())
            .max_staleness(Duration::from_secs(120))
            .build()
            .unwrap();
        let t = token(&server, &c, "grant_type=client_credentials").await;
        v.verify(&t).await.unwrap();
        assert!(server.sigterm().success());
        // Issuer gone; cached keys keep working.
        clock.advance(Duration::from_secs(60));
        v.verify(&t).await.unwrap();
        // Past the maximum staleness: 503-class error, not a 401.
        clock.advance(Duration::from_secs(61));
        let e = v.verify(&t).await.unwrap_err();
        assert!(matches!(e, VerifyError::KeysUnavailable(_)), "{e:?}");
        assert_eq!(e.status(), 503);
    }

    async fn example_resource_service_enforces_scopes_per_rfc6750(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let internal = env.create_client(&[
                "--name",
                "caller",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://orders",
            ],
        );
        let reporter = env.create_client(&[
                "--name",
                "rep",
                "--scope",
                "reports:read",
                "--audience",
                "https://orders",
            ],
        );
        let elsewhere = env.create_client(&[
                "--name",
                "x",
                "--scope",
                "s2s:internal",
                "--audience",
                "https://billing",
            ],
        );
        let ex = start_example(
            &server.base,
            "https://orders",
            Some("legacy-key-1,legacy-key-2"),
        );
        let get = |path: &str, auth: Option<(&str, String)>| {
            let mut r = http().get(format!("{}{path}", ex.base));
            if let Some((h, v)) = auth {
                r = r.header(h, v);
            }
            r.send()
        };
        assert_eq!(get("/health", None).await.unwrap().status(), 200);

        let r = get("/internal/ping", None).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"resource-service\""
        );

        let t = token(&server, &internal, "grant_type=client_credentials").await;
        let r = get(
            "/internal/ping",
            Some(("authorization", format!("Bearer {t}"))),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains(&internal.id));

        let r = get("/reports", Some(("authorization", format!("Bearer {t}"))))
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"reports:read\""),
            "{challenge}"
        );
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "insufficient_scope"
        );

        let rt = token(&server, &reporter, "grant_type=client_credentials").await;
        assert_eq!(
            get("/reports", Some(("authorization", format!("Bearer {rt}"))))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            get(
                "/internal/ping",
                Some(("authorization", format!("Bearer {rt}")))
            )
            .await
            .unwrap()
            .status(),
            403
        );

        let wrong_aud = token(&server, &elsewhere, "grant_type=client_credentials").await;
        let r = get(
            "/internal/ping",
            Some(("authorization", format!("Bearer {wrong_aud}"))),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));
        assert_eq!(
            get(
                "/internal/ping",
                Some(("authorization", "Bearer not.a.jwt".into()))
            )
            .await
            .unwrap()
            .status(),
            401
        );

        // Static API keys, either header, several valid at once.
        assert_eq!(
            get("/internal/ping", Some(("x-api-key", "legacy-key-1".into())))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            get(
                "/internal/ping",
                Some(("authorization", "Bearer legacy-key-2".into()))
            )
            .await
            .unwrap()
            .status(),
            200
        );
        assert_eq!(
            get("/internal/ping", Some(("x-api-key", "legacy-key-3".into())))
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            get("/reports", Some(("x-api-key", "legacy-key-1".into())))
                .await
                .unwrap()
                .status(),
            403,
            "API keys get only their scopes"
        );
    }
}
