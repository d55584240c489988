//! The admin HTTP API (`/admin/v1` on `--admin-listen`): authenticated by the server's own
//! tokens (RFC 6750), RFC 9457 problems, ETag/If-Match, and the CLI's `--server` mode.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::*;
use crate::harness::{both_backends, e2e_test};

/// A token for `c` at `server` with `form` (e.g. a `resource` or `scope`).
async fn token_for(server: &Server, c: &TestClient, form: &str) -> String {
    let r = token_basic(server, c, form).await;
    assert_eq!(r.status(), 200, "token for {}", c.id);
    let b: Value = r.json().await.unwrap();
    b["access_token"].as_str().unwrap().to_string()
}

/// A client with `scope` for the admin audience, once the server knows it.
async fn admin_client(env: &EnvConfig, server: &Server, scope: &str) -> (TestClient, String) {
    let audience = format!("{}/admin", server.base);
    let c = env.create_client(&["--name", "ops", "--scope", scope, "--audience", &audience]);
    let form = format!("grant_type=client_credentials&resource={audience}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            token_basic(server, &c, &form).await.status() == 200
        })
        .await,
        "the ops client gets tokens"
    );
    let token = token_for(server, &c, &form).await;
    (c, token)
}

fn admin_url(server: &Server, path: &str) -> String {
    format!(
        "{}/admin/v1{path}",
        server.admin.as_deref().expect("the admin listener is on")
    )
}

async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = http().request(method, admin_url(server, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// An RFC 9457 problem with `status`; returns its body.
async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "RFC 9457 media type"
    );
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], status, "{b}");
    assert!(b["title"].is_string() && b["detail"].is_string(), "{b}");
    b
}

both_backends! {
    async fn admin_api_round_trip(env) {
        let cfg = &env.config;
        let server = cfg.start(&["--admin-listen", "127.0.0.1:0"]);
        let (ops, token) = admin_client(cfg, &server, "tessera:admin").await;
        let t = Some(token.as_str());

        // Where to get a token, without one.
        let about: Value = http().get(admin_url(&server, "")).send().await.unwrap().json().await.unwrap();
        assert_eq!(about["audience"], format!("{}/admin", server.base));
        assert_eq!(about["token_endpoint"], server.url("/oauth/token"));

        // Create: the secret is in this answer only; the client gets tokens at once.
        let r = call(&server, reqwest::Method::POST, "/clients", t, Some(json!({
            "name": "billing", "scopes": ["s2s:internal"], "audiences": ["https://billing.internal"],
            "token_ttl": 120, "expires_at": "2099-01-01T00:00:00Z"}))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let created: Value = r.json().await.unwrap();
        let id = created["client_id"].as_str().unwrap().to_string();
        let secret = created["client_secret"].as_str().unwrap().to_string();
        assert_eq!(created["expires_at"], "2099-01-01T00:00:00Z", "RFC 3339 out");
        assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
        let billing = TestClient { id: id.clone(), secret: secret.clone() };
        assert_eq!(token_basic(&server, &billing, "grant_type=client_credentials").await.status(), 200,
            "a client created through the API gets a token at once");

        // Show and list never carry the secret.
        let r = call(&server, reqwest::Method::GET, &format!("/clients/{id}"), t, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag, "unchanged: same ETag");
        let shown = r.text().await.unwrap();
        assert!(!shown.contains(&secret), "no secret in show");
        let page: Value = call(&server, reqwest::Method::GET, "/clients?limit=1", t, None).await.json().await.unwrap();
        assert_eq!(page["clients"].as_array().unwrap().len(), 1);
        let next = page["next_after"].as_str().expect("a full page names the next one");
        let rest: Value = call(&server, reqwest::Method::GET, &format!("/clients?limit=10&after={next}"), t, None).await.json().await.unwrap();
        assert_eq!(rest["clients"].as_array().unwrap().len(), 1, "two clients in all");
        assert!(rest["next_after"].is_null());

        // PATCH needs If-Match; a stale one is 412 and changes nothing.
        let patch = |tag: Option<String>, body: Value| {
            let mut req = http().patch(admin_url(&server, &format!("/clients/{id}"))).bearer_auth(&token).json(&body);
            if let Some(tag) = tag {
                req = req.header("if-match", tag);
            }
            req.send()
        };
        problem(patch(None, json!({"token_ttl": 60})).await.unwrap(), 428).await;
        let r = patch(Some(etag.clone()), json!({"token_ttl": 60, "name": "billing-v2"})).await.unwrap();
        assert_eq!(r.status(), 200);
        let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_ne!(new_etag, etag, "a change makes a new ETag");
        let updated: Value = r.json().await.unwrap();
        assert_eq!(updated["token_ttl"], 60);
        // The second operator still holds the old ETag.
        let stale = problem(patch(Some(etag.clone()), json!({"token_ttl": 30})).await.unwrap(), 412).await;
        assert!(stale["detail"].as_str().unwrap().contains("changed"), "{stale}");
        let now: Value = call(&server, reqwest::Method::GET, &format!("/clients/{id}"), t, None).await.json().await.unwrap();
        assert_eq!(now["token_ttl"], 60, "the stale write changed nothing");
        problem(patch(Some("\"garbage\"".into()), json!({"token_ttl": 30})).await.unwrap(), 412).await;
        // null clears (JSON merge patch).
        let r = patch(Some(new_etag), json!({"expires_at": null})).await.unwrap();
        assert_eq!(r.status(), 200);
        let cleared: Value = r.json().await.unwrap();
        assert!(cleared["expires_at"].is_null(), "{cleared}");

        // Bad input is a 400 problem, never a 500.
        for body in [json!({"name": "x"}), json!({"name": "x", "scopes": ["a"], "color": "red"}),
                     json!({"name": "x", "scopes": ["a"], "expires_at": "tomorrow"}),
                     json!({"name": "x", "scopes": ["a"], "token_ttl": 999999})] {
            problem(call(&server, reqwest::Method::POST, "/clients", t, Some(body)).await, 400).await;
        }
        let r = http().post(admin_url(&server, "/clients")).bearer_auth(&token).body("name=x").send().await.unwrap();
        problem(r, 415).await;
        problem(call(&server, reqwest::Method::GET, "/clients/tc_nosuchclient0000000000", t, None).await, 404).await;
        problem(call(&server, reqwest::Method::GET, "/nothing-here", t, None).await, 404).await;

        // Secrets: rotate (shown once), revoke.
        let r = call(&server, reqwest::Method::POST, &format!("/clients/{id}/secrets"), t,
            Some(json!({"grace_seconds": 0}))).await;
        assert_eq!(r.status(), 201);
        let rotated: Value = r.json().await.unwrap();
        let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
        let fresh = TestClient { id: id.clone(), secret: new_secret };
        assert!(status_becomes(&server, &fresh, "grant_type=client_credentials", 200, Duration::from_secs(5)).await);
        let secret_id = rotated["secret_id"].as_str().unwrap();
        assert_eq!(call(&server, reqwest::Method::DELETE, &format!("/clients/{id}/secrets/{secret_id}"), t, None).await.status(), 204);
        assert!(status_becomes(&server, &fresh, "grant_type=client_credentials", 401, Duration::from_secs(5)).await,
            "a secret revoked through the API stops working");

        // Disable, enable, keys, audit.
        let r: Value = call(&server, reqwest::Method::POST, &format!("/clients/{id}/disable"), t, None).await.json().await.unwrap();
        assert_eq!(r["enabled"], false);
        let r: Value = call(&server, reqwest::Method::POST, &format!("/clients/{id}/enable"), t, None).await.json().await.unwrap();
        assert_eq!(r["enabled"], true);
        let keys: Value = call(&server, reqwest::Method::GET, "/keys", t, None).await.json().await.unwrap();
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
        let r = call(&server, reqwest::Method::POST, "/keys/rotate", t, Some(json!({"alg": "ES256"}))).await;
        assert_eq!(r.status(), 201);
        let plan: Value = r.json().await.unwrap();
        assert_eq!(plan["new"]["alg"], "ES256");
        let audit: Value = call(&server, reqwest::Method::GET, &format!("/audit?client_id={id}"), t, None).await.json().await.unwrap();
        let events = audit["events"].as_array().unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["client.create", "client.update", "client.update", "client.rotate_secret",
            "client.revoke_secret", "client.disable", "client.enable"]);
        assert!(events.iter().all(|e| e["actor"] == ops.id.as_str()), "the actor is the calling client: {audit}");
        assert!(events.iter().all(|e| e["at"].as_str().unwrap().ends_with('Z')));
        let audit_text = serde_json::to_string(&audit).unwrap();
        assert!(!audit_text.contains(&secret) && !audit_text.contains(&token), "no secret or token in the audit trail");
        let only: Value = call(&server, reqwest::Method::GET, "/audit?action=keys.rotate", t, None).await.json().await.unwrap();
        assert_eq!(only["events"].as_array().unwrap().len(), 1);

        // Trusts and API keys.
        let r = call(&server, reqwest::Method::POST, "/api-keys", t, Some(json!({"name": "legacy", "scopes": ["s2s:internal"]}))).await;
        assert_eq!(r.status(), 201);
        let key: Value = r.json().await.unwrap();
        assert!(key["api_key"].as_str().unwrap().starts_with("tak_"));
        let listed = call(&server, reqwest::Method::GET, "/api-keys", t, None).await.text().await.unwrap();
        assert!(!listed.contains(key["api_key"].as_str().unwrap()), "the key is shown once");
        let kid = key["id"].as_str().unwrap();
        assert_eq!(call(&server, reqwest::Method::DELETE, &format!("/api-keys/{kid}"), t, None).await.status(), 204);
        let r = call(&server, reqwest::Method::POST, "/trusts", t, Some(json!({"name": "ci", "issuer": "https://token.actions.example",
            "audience": "tessera", "subject": "repo:acme/app:*", "claims": {"ref": "refs/heads/main"}, "client_id": id}))).await;
        assert_eq!(r.status(), 201);
        let trust: Value = r.json().await.unwrap();
        assert_eq!(trust["claims"]["ref"], "refs/heads/main");
        let trusts: Value = call(&server, reqwest::Method::GET, "/trusts", t, None).await.json().await.unwrap();
        assert_eq!(trusts["trusts"].as_array().unwrap().len(), 1);
        assert_eq!(call(&server, reqwest::Method::DELETE, "/trusts/ci", t, None).await.status(), 204);

        // Delete.
        assert_eq!(call(&server, reqwest::Method::DELETE, &format!("/clients/{id}"), t, None).await.status(), 204);
        problem(call(&server, reqwest::Method::GET, &format!("/clients/{id}"), t, None).await, 404).await;

        // The admin API is not on the public listener.
        let r = http().get(server.url("/admin/v1/clients")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(!server.logs().contains(&token) && !server.logs().contains(&secret), "no token or secret in the logs");
    }

    async fn admin_api_refuses_wrong_tokens(env) {
        let cfg = &env.config;
        let server = cfg.start(&["--admin-listen", "127.0.0.1:0"]);
        // No token: 401 with a bare challenge (RFC 6750 §3.1).
        let r = call(&server, reqwest::Method::GET, "/clients", None, None).await;
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tessera-admin\"");
        problem(r, 401).await;
        let r = http().get(admin_url(&server, "/clients")).basic_auth("a", Some("b")).send().await.unwrap();
        problem(r, 401).await;
        // Garbage.
        let r = call(&server, reqwest::Method::GET, "/clients", Some("not.a.token"), None).await;
        assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
        problem(r, 401).await;

        // Read-only: GET yes, writes 403 insufficient_scope.
        let (_ro, read) = admin_client(cfg, &server, "tessera:admin:read").await;
        assert_eq!(call(&server, reqwest::Method::GET, "/clients", Some(&read), None).await.status(), 200);
        for (method, path, body) in [
            (reqwest::Method::POST, "/clients", Some(json!({"name": "x", "scopes": ["a"]}))),
            (reqwest::Method::POST, "/keys/rotate", None),
            (reqwest::Method::DELETE, "/trusts/x", None),
        ] {
            let r = call(&server, method, path, Some(&read), body).await;
            let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
            assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"tessera:admin\""), "{challenge}");
            problem(r, 403).await;
        }

        // A token of this server for another audience, or without an admin scope.
        let other = cfg.create_client(&["--name", "svc", "--scope", "tessera:admin", "--audience", "https://billing.internal"]);
        assert!(status_becomes(&server, &other, "grant_type=client_credentials", 200, Duration::from_secs(10)).await);
        let wrong_aud = token_for(&server, &other, "grant_type=client_credentials").await;
        let r = call(&server, reqwest::Method::GET, "/clients", Some(&wrong_aud), None).await;
        assert!(problem(r, 401).await["detail"].as_str().unwrap().contains("audience"));
        let audience = format!("{}/admin", server.base);
        let plain = cfg.create_client(&["--name", "noscope", "--scope", "s2s:internal", "--audience", &audience]);
        assert!(status_becomes(&server, &plain, "grant_type=client_credentials", 200, Duration::from_secs(10)).await);
        let no_scope = token_for(&server, &plain, "grant_type=client_credentials").await;
        problem(call(&server, reqwest::Method::GET, "/clients", Some(&no_scope), None).await, 403).await;

        // Expired: a one-second token, a moment later.
        let short = cfg.create_client(&["--name", "brief", "--scope", "tessera:admin", "--audience", &audience, "--token-ttl", "1"]);
        assert!(status_becomes(&server, &short, "grant_type=client_credentials", 200, Duration::from_secs(10)).await);
        let brief = token_for(&server, &short, "grant_type=client_credentials").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        problem(call(&server, reqwest::Method::GET, "/clients", Some(&brief), None).await, 401).await;

        // Disabling the admin client cuts its access though its token has not expired.
        let (ops, token) = admin_client(cfg, &server, "tessera:admin").await;
        assert_eq!(call(&server, reqwest::Method::GET, "/clients", Some(&token), None).await.status(), 200);
        assert!(cfg.cli(&["client", "disable", &ops.id]).status.success());
        assert!(eventually(Duration::from_secs(10), || async {
            call(&server, reqwest::Method::GET, "/clients", Some(&token), None).await.status() == 401
        }).await, "a disabled client's admin token stops working");

        // A server without --admin-listen has no admin listener.
        let plain_server = cfg.start(&[]);
        assert!(plain_server.admin.is_none());
    }

    async fn cli_server_mode_matches_local(env) {
        let cfg = &env.config;
        let server = cfg.start(&["--admin-listen", "127.0.0.1:0"]);
        let (ops, _) = admin_client(cfg, &server, "tessera:admin").await;
        let admin = server.admin.clone().unwrap();
        let remote_env = [("TESSERA_CLIENT_ID", ops.id.as_str()), ("TESSERA_CLIENT_SECRET", ops.secret.as_str())];
        // No database URL or master key on the operator's side: a data directory that does not exist.
        let remote = |args: &[&str]| {
            let out = std::process::Command::new(BIN)
                .args(["--server", admin.as_str(), "--data-dir", "/nonexistent/tessera"])
                .args(args)
                .env_remove("TESSERA_DATABASE_URL")
                .env_remove("TESSERA_MASTER_KEY")
                .envs(remote_env)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let created: Value = serde_json::from_str(&remote(&["client", "create", "--name", "remote", "--scope", "a", "--output", "json"])).unwrap();
        let id = created["client_id"].as_str().unwrap().to_string();
        let c = TestClient { id: id.clone(), secret: created["client_secret"].as_str().unwrap().into() };
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
        // Same output as the local CLI, text and JSON.
        for args in [vec!["client", "show", id.as_str()], vec!["client", "show", id.as_str(), "--output", "json"],
                     vec!["client", "list"], vec!["keys", "list", "--output", "json"], vec!["trust", "list"]] {
            let local = cfg.cli(&args);
            assert!(local.status.success());
            assert_eq!(remote(&args), String::from_utf8(local.stdout).unwrap(), "{args:?}");
        }
        remote(&["client", "update", &id, "--token-ttl", "90"]);
        let shown = cfg.cli_json(&["client", "show", &id, "--output", "json"]);
        assert_eq!(shown["token_ttl"], 90);
        remote(&["client", "disable", &id]);
        assert!(status_becomes(&server, &c, "grant_type=client_credentials", 401, Duration::from_secs(5)).await);
        let audit = remote(&["audit", "list", "--client", &id, "--output", "json"]);
        let events: Value = serde_json::from_str(&audit).unwrap();
        assert!(events.as_array().unwrap().iter().all(|e| e["actor"] == ops.id.as_str()), "{events}");
        remote(&["client", "delete", &id]);
        // Without credentials the CLI says what it needs.
        let out = cfg.cli(&["--server", &admin, "client", "list"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("TESSERA_CLIENT_ID"));
        // A read-only client can read but not write.
        let (ro, _) = admin_client(cfg, &server, "tessera:admin:read").await;
        let ro_env = [("TESSERA_CLIENT_ID", ro.id.as_str()), ("TESSERA_CLIENT_SECRET", ro.secret.as_str())];
        assert!(cfg.cli_env(&["--server", &admin, "client", "list"], &ro_env).status.success());
        let out = cfg.cli_env(&["--server", &admin, "client", "create", "--name", "x", "--scope", "a"], &ro_env);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("tessera:admin"));
    }
}

both_backends! {
    async fn apply_reconciles_a_file(env) {
        let cfg = &env.config;
        let server = cfg.start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.yaml");
        let secrets = dir.path().join("secrets.json");
        let stray = cfg.create_client(&["--name", "hand-made", "--scope", "a"]);
        std::fs::write(&file, r#"
clients:
  - name: billing
    scopes: [s2s:internal]
    audiences: [https://billing.internal]
    token_ttl: 120
  - name: reports
    scopes: [reports:read]
    claims: {team: data}
trusts:
  - name: ci
    issuer: https://token.actions.example
    audience: tessera
    subject: "repo:acme/app:*"
    claims: {ref: refs/heads/main}
    client: billing
"#).unwrap();
        let apply = |extra: &[&str]| {
            let path = file.to_str().unwrap();
            let mut args = vec!["apply", "-f", path];
            args.extend_from_slice(extra);
            let out = cfg.cli(&args);
            assert!(out.status.success(), "apply {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        // The plan first; a dry run changes nothing.
        let dry = apply(&["--dry-run"]);
        assert!(dry.contains("+ client billing") && dry.contains("+ client reports") && dry.contains("+ trust ci"), "{dry}");
        assert!(dry.contains("- client hand-made (disable"), "{dry}");
        assert_eq!(cfg.cli_json(&["client", "list", "--output", "json"]).as_array().unwrap().len(), 1);

        let out = apply(&["--secrets-out", secrets.to_str().unwrap()]);
        assert!(out.contains("applied") && !out.contains("tc_"), "secrets are not printed with --secrets-out: {out}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&secrets).unwrap()).unwrap();
        let billing = TestClient {
            id: written["billing"]["client_id"].as_str().unwrap().into(),
            secret: written["billing"]["client_secret"].as_str().unwrap().into(),
        };
        assert!(status_becomes(&server, &billing, "grant_type=client_credentials", 200, Duration::from_secs(5)).await,
            "a client created by apply gets tokens");
        assert!(status_becomes(&server, &stray, "grant_type=client_credentials", 401, Duration::from_secs(5)).await,
            "a client not in the file is disabled");
        let shown = cfg.cli_json(&["client", "show", &billing.id, "--output", "json"]);
        assert_eq!(shown["token_ttl"], 120);
        let trust = cfg.cli_json(&["trust", "show", "ci", "--output", "json"]);
        assert_eq!(trust["client_id"], billing.id.as_str());

        // Idempotent: the second apply changes nothing and says so.
        let again = apply(&[]);
        assert!(again.starts_with("no changes"), "{again}");
        let audit_before = cfg.cli_json(&["audit", "list", "--output", "json"]).as_array().unwrap().len();
        apply(&[]);
        assert_eq!(cfg.cli_json(&["audit", "list", "--output", "json"]).as_array().unwrap().len(), audit_before, "no change recorded");

        // A change in the file is a change of that field only; a client gone from the file is
        // deleted with --prune, and so is a trust.
        std::fs::write(&file, r#"
clients:
  - name: billing
    scopes: [s2s:internal]
    audiences: [https://billing.internal]
    token_ttl: 600
"#).unwrap();
        let plan = apply(&["--dry-run", "--prune"]);
        assert!(plan.contains("~ client billing: token_ttl 120 -> 600"), "{plan}");
        assert!(plan.contains("- client reports (delete") && plan.contains("- client hand-made (delete") && plan.contains("- trust ci (remove"), "{plan}");
        apply(&["--prune"]);
        let left = cfg.cli_json(&["client", "list", "--output", "json"]);
        assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
        assert_eq!(left[0]["token_ttl"], 600);
        assert_eq!(cfg.cli_json(&["trust", "list", "--output", "json"]), json!([]));
        assert!(token_basic(&server, &billing, "grant_type=client_credentials").await.status() == 200, "the secret survives an update");

        // A file with an unknown field is refused before anything changes.
        std::fs::write(&file, "clients:\n  - name: x\n    scopes: [a]\n    colour: red\n").unwrap();
        let out = cfg.cli(&["apply", "-f", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
    }

    async fn apply_through_the_admin_api(env) {
        let cfg = &env.config;
        let server = cfg.start(&["--admin-listen", "127.0.0.1:0"]);
        let (ops, _) = admin_client(cfg, &server, "tessera:admin").await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.yaml");
        std::fs::write(&file, "clients:\n  - name: remote-made\n    scopes: [a]\n").unwrap();
        let run = || {
            std::process::Command::new(BIN)
                .args(["--server", server.admin.as_deref().unwrap(), "--data-dir", "/nonexistent/tessera", "apply", "-f", file.to_str().unwrap()])
                .env_remove("TESSERA_DATABASE_URL")
                .envs([("TESSERA_CLIENT_ID", ops.id.as_str()), ("TESSERA_CLIENT_SECRET", ops.secret.as_str())])
                .output()
                .unwrap()
        };
        let out = run();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("+ client remote-made") && text.contains("secret of remote-made"), "{text}");
        assert!(!text.contains("- client ops"), "the calling client is never disabled: {text}");
        let again = run();
        assert!(String::from_utf8_lossy(&again.stdout).starts_with("no changes"));
        let audit = cfg.cli_json(&["audit", "list", "--output", "json"]);
        assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "client.create" && e["actor"] == ops.id.as_str()));
    }
}

e2e_test! {
    fn admin_listener_off_loopback_needs_tls() {
        let env = TestEnv::sqlite();
        let out = std::process::Command::new(BIN)
            .args(["--data-dir", env.data_dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0",
                   "--admin-listen", "0.0.0.0:0"])
            .env_remove("TESSERA_INSECURE_HTTP")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--admin-listen") && err.contains("--tls-cert"), "{err}");
    }
}
