//! Workload identity federation (RFC 7523 §2.1): trusts, the JWT-bearer grant, and each preset
//! with a token shaped exactly like the platform's, minted by a test issuer on 127.0.0.1.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::both_backends;
use crate::harness::*;
use crate::issuer::{hs256, now, unsigned, TestIssuer, TestKey};
use crate::secretless::post_form;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

async fn exchange(server: &Server, assertion: &str) -> (u16, Value) {
    post_form(
        server,
        "/oauth/token",
        &[("grant_type", JWT_BEARER), ("assertion", assertion)],
    )
    .await
}

/// The first exchange after a trust is added: the server sees the trust at once on a miss (or
/// within one refresh interval), so allow it a moment.
async fn accepted_soon(server: &Server, assertion: &str) -> bool {
    eventually(Duration::from_secs(3), || async {
        exchange(server, assertion).await.0 == 200
    })
    .await
}

/// A client for federated callers (it never needs its secret).
fn deploy_client(env: &EnvConfig) -> String {
    env.create_client(&[
        "--name",
        "deploy",
        "--scope",
        "deploy:write",
        "--audience",
        "https://deploy.internal",
    ])
    .id
}

fn trust(env: &EnvConfig, args: &[&str]) -> Value {
    let mut all = vec!["trust", "add", "--output", "json"];
    all.extend_from_slice(args);
    env.cli_json(&all)
}

/// A GitHub Actions OIDC token's claims (the documented layout).
fn github(iss: &str, sub: &str, environment: &str) -> Value {
    let t = now();
    json!({
        "jti": "3e8d8a4e-6c0a-4b0e-9c6c-6a2f0d6b1f7e",
        "sub": sub,
        "aud": "https://tessera.test",
        "ref": "refs/heads/main",
        "sha": "d6f1c6c2e1b1f3e8d7f6a5b4c3d2e1f0a9b8c7d6",
        "repository": "acme/app",
        "repository_owner": "acme",
        "repository_owner_id": "1234",
        "run_id": "6010101010",
        "run_number": "42",
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": "5678",
        "actor_id": "91011",
        "actor": "octocat",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_protected": "true",
        "ref_type": "branch",
        "environment": environment,
        "workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "runner_environment": "github-hosted",
        "iss": iss,
        "nbf": t - 5,
        "exp": t + 300,
        "iat": t - 5
    })
}

both_backends! {
    async fn github_actions_preset_and_negative_table(env) {
        let gh = TestIssuer::start();
        // Successful exchanges are audited at debug level, like every issued token.
        let server = env.start_env(&["--external-jwks-cooldown", "1s"], &[("TESSERA_LOG", "info,tessera::audit=debug")]);
        let client = deploy_client(&env);
        let main_sub = "repo:acme/app:environment:prod";
        let v = trust(&env, &["--name", "github-deploy", "--issuer", &gh.url, "--audience", "https://tessera.test",
            "--subject", "repo:acme/app:*", "--claim", "repository_owner=acme", "--claim", "ref_protected=true",
            "--client", &client]);
        assert_eq!(v["keys_from"], "discovery");

        let good = gh.mint(&github(&gh.url, main_sub, "prod"));
        assert!(accepted_soon(&server, &good).await);
        let (s, b) = exchange(&server, &good).await;
        assert_eq!(s, 200, "{b}");
        let at = verify(&server, b["access_token"].as_str().unwrap(), "https://deploy.internal").await;
        assert_eq!(at["sub"], client.as_str());
        assert_eq!(at["scope"], "deploy:write");
        // The same external token may be exchanged again until it expires (no jti check here).
        assert_eq!(exchange(&server, &good).await.0, 200);
        // A client_id alone names the caller (a public client): it must be the trust's client.
        let (s, _) = post_form(&server, "/oauth/token", &[("grant_type", JWT_BEARER), ("assertion", &good),
            ("client_id", &client)]).await;
        assert_eq!(s, 200);
        let (s, b) = post_form(&server, "/oauth/token", &[("grant_type", JWT_BEARER), ("assertion", &good),
            ("client_id", "tc_someone_else")]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
        // scope and resource follow the client-credentials rules.
        let (s, b) = post_form(&server, "/oauth/token", &[("grant_type", JWT_BEARER), ("assertion", &good),
            ("scope", "admin")]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));

        // One request per row, each 400 invalid_grant.
        let t = now();
        let with = |k: &str, v: Value| { let mut c = github(&gh.url, main_sub, "prod"); c[k] = v; c };
        let stranger = TestKey::es256();
        let rows: Vec<(&str, String)> = vec![
            ("untrusted iss", gh.mint(&with("iss", json!("https://token.example")))),
            ("wrong aud", gh.mint(&with("aud", json!("https://other.test")))),
            ("expired", gh.mint(&with("exp", json!(t - 10)))),
            ("missing exp", gh.mint(&{ let mut c = github(&gh.url, main_sub, "prod"); c.as_object_mut().unwrap().remove("exp"); c })),
            ("nbf 2 min ahead", gh.mint(&with("nbf", json!(t + 120)))),
            ("repo:acme/app-evil", gh.mint(&with("sub", json!("repo:acme/app-evil:environment:prod")))),
            ("another owner", gh.mint(&with("repository_owner", json!("evil")))),
            ("unprotected ref", gh.mint(&with("ref_protected", json!("false")))),
            ("alg none", unsigned(&github(&gh.url, main_sub, "prod"))),
            ("HS256 keyed with the JWKS", hs256(&gh.kid(), &github(&gh.url, main_sub, "prod"), gh.jwks_json().as_bytes())),
            ("unknown kid", stranger.sign(json!({"kid": "nope"}), &github(&gh.url, main_sub, "prod"))),
            ("another issuer's key", stranger.sign(json!({"kid": gh.kid()}), &github(&gh.url, main_sub, "prod"))),
            ("garbage", "a.b.c".into()),
        ];
        for (name, jwt) in &rows {
            let (s, b) = exchange(&server, jwt).await;
            assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "{name}: {b}");
        }
        // Missing assertion, and one over the body limit.
        let (s, b) = post_form(&server, "/oauth/token", &[("grant_type", JWT_BEARER)]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
        let huge = format!("{good}{}", "A".repeat(20_000));
        assert_eq!(exchange(&server, &huge).await.0, 413);

        // The issuer rotates its key: the new kid is fetched (after the 1 s cooldown).
        gh.rotate();
        assert!(eventually(Duration::from_secs(5), || async {
            exchange(&server, &gh.mint(&github(&gh.url, main_sub, "prod"))).await.0 == 200
        }).await, "a rotated issuer key is picked up");

        // A disabled client, then a removed trust: refused within one refresh interval.
        assert!(env.cli(&["client", "disable", &client]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            exchange(&server, &gh.mint(&github(&gh.url, main_sub, "prod"))).await.0 == 400
        }).await, "disabled client");
        assert!(env.cli(&["client", "enable", &client]).status.success());
        assert!(eventually(Duration::from_secs(5), || async {
            exchange(&server, &gh.mint(&github(&gh.url, main_sub, "prod"))).await.0 == 200
        }).await);
        let out = env.cli(&["trust", "remove", "github-deploy"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(eventually(Duration::from_secs(5), || async {
            exchange(&server, &gh.mint(&github(&gh.url, main_sub, "prod"))).await.0 == 400
        }).await, "removed trust");

        // The audit trail: the exchange names the trust and the external subject; the admin
        // changes are recorded; no token text in any log line.
        let logs = server.logs();
        assert!(logs.contains("github-deploy") && logs.contains(main_sub), "exchange audited");
        assert!(!logs.contains(good.rsplit('.').next().unwrap()), "no token in the logs");
        let audit = env.cli_json(&["audit", "list", "--output", "json"]);
        let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"trust.add") && actions.contains(&"trust.remove"), "{actions:?}");
    }

    async fn gitlab_kubernetes_and_spiffe_presets(env) {
        let server = env.start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let client = deploy_client(&env);
        let t = now();

        // GitLab CI: project_path and ref_protected (GitLab sends it as the string "true").
        let gl = TestIssuer::start();
        trust(&env, &["--name", "gitlab", "--issuer", &gl.url, "--audience", "https://tessera.test",
            "--subject", "project_path:acme/app:ref_type:branch:ref:main", "--claim", "project_path=acme/app",
            "--claim", "ref_protected=true", "--client", &client]);
        let gitlab = |protected: Value| json!({"namespace_id": "72", "namespace_path": "acme", "project_id": "20",
            "project_path": "acme/app", "user_id": "1", "user_login": "dev", "pipeline_id": "574", "pipeline_source": "push",
            "job_id": "302", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": protected,
            "runner_id": 1, "runner_environment": "gitlab-hosted", "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "project_visibility": "private", "ci_config_ref_uri": "gitlab.example/acme/app//.gitlab-ci.yml@refs/heads/main",
            "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b", "iss": gl.url, "iat": t, "nbf": t - 5, "exp": t + 300,
            "sub": "project_path:acme/app:ref_type:branch:ref:main", "aud": "https://tessera.test"});
        assert!(accepted_soon(&server, &gl.mint(&gitlab(json!("true")))).await);
        assert_eq!(exchange(&server, &gl.mint(&gitlab(json!(true)))).await.0, 200, "a JSON boolean matches too");
        assert_eq!(exchange(&server, &gl.mint(&gitlab(json!("false")))).await.0, 400);

        // Kubernetes service-account token, keys from a file (a private cluster's JWKS), with
        // an opt-in age limit.
        let cluster = TestIssuer::start();
        let jwks_file = dir.path().join("cluster-jwks.json");
        std::fs::write(&jwks_file, cluster.jwks_json()).unwrap();
        let k8s_iss = "https://kubernetes.default.svc.cluster.local";
        let v = trust(&env, &["--name", "payments-api", "--issuer", k8s_iss, "--audience", "tessera",
            "--subject", "system:serviceaccount:payments:api", "--jwks-file", jwks_file.to_str().unwrap(),
            "--max-token-age", "3600", "--client", &client]);
        assert_eq!(v["keys_from"], "jwks");
        let sa = |iat: i64| json!({"aud": ["tessera"], "exp": iat + 3607, "iat": iat, "iss": k8s_iss, "nbf": iat,
            "jti": "0d8e43a0-7ff0-4a4b-8a8f-3c6e8b5e6a10",
            "kubernetes.io": {"namespace": "payments", "node": {"name": "node-1", "uid": "f1"},
                "pod": {"name": "api-7d9f", "uid": "a1"}, "serviceaccount": {"name": "api", "uid": "b2"}},
            "sub": "system:serviceaccount:payments:api"});
        assert!(accepted_soon(&server, &cluster.mint(&sa(t - 1800))).await, "half-way through its life");
        let (s, b) = exchange(&server, &cluster.mint(&sa(t - 3700))).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "older than --max-token-age");
        let mut other_sa = sa(t);
        other_sa["sub"] = json!("system:serviceaccount:payments:other");
        assert_eq!(exchange(&server, &cluster.mint(&other_sa)).await.0, 400);

        // SPIFFE JWT-SVID: no iss; the trust names the trust domain and the bundle; only the
        // bundle's `use: jwt-svid` keys count (SPIRE signs ES256 by default).
        let (svid_key, x509_key) = (TestKey::es256(), TestKey::es256());
        let bundle = json!({"keys": [svid_key.jwk(Some("svid1"), json!({"use": "jwt-svid"})),
            x509_key.jwk(Some("x1"), json!({"use": "x509-svid"}))], "spiffe_sequence": 3});
        let bundle_file = dir.path().join("bundle.json");
        std::fs::write(&bundle_file, bundle.to_string()).unwrap();
        trust(&env, &["--name", "spiffe-api", "--spiffe-trust-domain", "example.org", "--audience", "tessera",
            "--subject", "spiffe://example.org/ns/prod/sa/api", "--jwks-file", bundle_file.to_str().unwrap(),
            "--client", &client]);
        let svid = json!({"sub": "spiffe://example.org/ns/prod/sa/api", "aud": ["tessera"], "exp": t + 300, "iat": t});
        assert!(accepted_soon(&server, &svid_key.sign(json!({"kid": "svid1", "typ": "JWT"}), &svid)).await);
        assert_eq!(exchange(&server, &x509_key.sign(json!({"kid": "x1", "typ": "JWT"}), &svid)).await.0, 400,
            "an x509-svid key does not sign JWT-SVIDs");
        let mut other_domain = svid.clone();
        other_domain["sub"] = json!("spiffe://evil.org/ns/prod/sa/api");
        assert_eq!(exchange(&server, &svid_key.sign(json!({"kid": "svid1"}), &other_domain)).await.0, 400);

        // Listing shows all three presets.
        let list = env.cli_json(&["trust", "list", "--output", "json"]);
        assert_eq!(list.as_array().unwrap().len(), 3);
        // Bad trusts are refused at the CLI with one clear line.
        for (args, why) in [
            (vec!["--issuer", "http://issuer.example.com"], "https://"),
            (vec!["--issuer", "https://x.example", "--subject", "repo:*:ref:*"], "trailing '*'"),
            (vec!["--spiffe-trust-domain", "example.org"], "bundle"),
            (vec!["--issuer", "https://x.example", "--claim", "groups=a", "--claim", "groups=b"], "twice"),
        ] {
            let mut all = vec!["trust", "add", "--name", "bad", "--audience", "a", "--client", &client];
            if !args.contains(&"--subject") { all.extend(["--subject", "spiffe://example.org/x"]); }
            all.extend(args.iter().copied());
            let out = env.cli(&all);
            assert!(!out.status.success(), "{all:?}");
            assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    async fn issuer_down_is_503_and_discovery_issuer_must_match(env) {
        let server = env.start(&[]);
        let client = deploy_client(&env);
        let down = TestIssuer::start();
        down.set_up(false);
        trust(&env, &["--name", "down", "--issuer", &down.url, "--audience", "https://tessera.test",
            "--subject", "repo:acme/app:*", "--client", &client]);
        // Let the server see the trust (a refresh interval) so the request below is about keys.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let r = http().post(server.url("/oauth/token"))
            .form(&[("grant_type", JWT_BEARER), ("assertion", &down.mint(&github(&down.url, "repo:acme/app:x", "prod")))])
            .send().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(6), "answered within the 5 s bound");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");

        // Discovery that names another issuer is not trusted (RFC 8414 §3.3 / OIDC §4.3).
        let liar = TestIssuer::start();
        liar.set_discovery_issuer("https://token.actions.githubusercontent.com");
        trust(&env, &["--name", "liar", "--issuer", &liar.url, "--audience", "https://tessera.test",
            "--subject", "repo:acme/app:*", "--client", &client]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (s, b) = exchange(&server, &liar.mint(&github(&liar.url, "repo:acme/app:x", "prod"))).await;
        assert_eq!((s, b["error"].as_str()), (503, Some("temporarily_unavailable")), "the keys cannot be had");
        assert_eq!(liar.jwks_fetches(), 0, "keys are never fetched from a mismatched discovery document");
    }
}
