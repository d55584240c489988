//! Issue 18, item 5: standard resource-server libraries, set up the way their docs show, accept
//! Tessera tokens and refuse bad ones (tampered, expired, for another audience, without the
//! scope), for each signing algorithm.
//!
//! The libraries run in their own languages: `tests/interop/check_python.py` (Authlib's RFC 9068
//! validator, PyJWT with PyJWKClient) and `tests/interop/check_node.mjs`
//! (express-oauth2-jwt-bearer, jose, @fastify/jwt with get-jwks). This test starts the real
//! server, mints the tokens over HTTP, writes them with the issuer's URLs to a JSON file, runs
//! both checkers on it and compares what they report with [`expected`]. The pinned packages are
//! installed into the checkout (`tests/interop/.pydeps`, `tests/interop/node_modules`, both
//! git-ignored) the first time; an install that fails fails the test, it is never skipped.
//!
//! Stacks that cannot be installed here (Spring Security, ASP.NET Core) get one test that pins
//! what their documented set-ups read from Tessera.
//!
//! The other direction, callers without a shared secret: client libraries authenticate with
//! `private_key_jwt` (RFC 7523 §2.2) on their own defaults and get tokens, and the same
//! assertion sent twice is refused (`tests/interop/pkjwt_python.py`: Authlib;
//! `tests/interop/pkjwt_node.mjs`: openid-client v6).

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::e2e_test;
use crate::harness::*;

const INTEROP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
const AUDIENCE: &str = "https://api.interop";
const OTHER_AUDIENCE: &str = "https://other.interop";
const SCOPE: &str = "s2s:internal";

/// The longest clock tolerance among the libraries' defaults: express-oauth2-jwt-bearer's
/// `clockTolerance` (5 s). The others use none (PyJWT `leeway`, joserfc, jose, fast-jwt: 0).
/// The expired token is handed over only once it is past `exp` by more than this.
const MAX_DEFAULT_LEEWAY_SECS: u64 = 5;

/// Bounds on the subprocesses: a first install, and one checker run.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

/// The token cases, and the kind of refusal each must get from a library that takes the
/// algorithm (the checkers read the kind from the library's own error).
const CASES: [(&str, Option<&str>); 5] = [
    ("valid", None),
    ("tampered", Some("signature")),
    ("expired", Some("expired")),
    ("wrong_audience", Some("audience")),
    ("missing_scope", Some("scope")),
];

const LIBRARIES: [&str; 5] = [
    "authlib",
    "pyjwt",
    "express-oauth2-jwt-bearer",
    "jose",
    "fastify-jwt-get-jwks",
];

/// What a library does with tokens of one algorithm, set up as its docs show.
#[derive(Debug)]
enum Expect {
    /// The valid token is accepted; every bad one is refused for its own reason.
    Verifies,
    /// The library's documented default refuses the algorithm itself: every token, the valid
    /// one included, is refused with kind `algorithm` and a reason containing this text.
    RefusesAlgorithm(&'static str),
}

/// The expected table (tests/interop/README.md shows it with the versions).
fn expected(library: &str, alg: &str) -> Expect {
    match (library, alg) {
        // Authlib's JWTBearerTokenValidator (authlib.oauth2.rfc9068) calls joserfc's
        // jwt.decode(token, key) without `algorithms`, and joserfc then allows only its
        // "recommended" algorithms: HS256, RS256, ES256. joserfc 1.x deprecates "EdDSA" in favour
        // of RFC 9864's fully specified "Ed25519", so an EdDSA token is refused with
        // UnsupportedAlgorithmError before its signature is looked at.
        ("authlib", "EdDSA") => Expect::RefusesAlgorithm("Algorithm of 'EdDSA' is not recommended"),
        // get-jwks' getPublicKey (what @fastify/jwt's README passes as `secret`) converts the
        // JWK to PEM with jwk-to-pem, which knows only RSA and EC keys; for Tessera's OKP
        // (Ed25519) key it throws, and fastify answers 500 (the error has no status code).
        ("fastify-jwt-get-jwks", "EdDSA") => {
            Expect::RefusesAlgorithm("Unsupported key type \"OKP\"")
        }
        _ => Expect::Verifies,
    }
}

e2e_test! {
    async fn libraries_rs256() {
        libraries_check("RS256").await;
    }
}

e2e_test! {
    async fn libraries_es256() {
        libraries_check("ES256").await;
    }
}

e2e_test! {
    async fn libraries_eddsa() {
        libraries_check("EdDSA").await;
    }
}

async fn libraries_check(alg: &str) {
    let env = TestEnv::sqlite();
    let server = env.start(&["--signing-alg", alg]);

    // The token that must expire first, so that waiting for it overlaps everything else. Same
    // scope and audiences as the main client: only its lifetime differs.
    let short = create_client(
        &env,
        "--name short-lived --scope s2s:internal --audience https://api.interop \
         --audience https://other.interop --token-ttl 1",
    );
    let expired = mint(
        &server,
        &short,
        "grant_type=client_credentials&scope=s2s%3Ainternal",
    )
    .await;
    let main = create_client(
        &env,
        "--name main --scope s2s:internal --audience https://api.interop \
         --audience https://other.interop",
    );
    let valid = mint(
        &server,
        &main,
        "grant_type=client_credentials&scope=s2s%3Ainternal&resource=https%3A%2F%2Fapi.interop",
    )
    .await;
    let wrong_audience = mint(
        &server,
        &main,
        "grant_type=client_credentials&scope=s2s%3Ainternal&resource=https%3A%2F%2Fother.interop",
    )
    .await;
    let other = create_client(
        &env,
        "--name other --scope other --audience https://api.interop",
    );
    let missing_scope = mint(&server, &other, "grant_type=client_credentials").await;
    let tampered = tamper(&valid);

    // What the tokens are, checked here so that a library's verdict is about the one difference.
    assert_eq!(header(&valid)["alg"], alg);
    assert_eq!(claims(&valid)["aud"], AUDIENCE);
    assert_eq!(claims(&valid)["scope"], SCOPE);
    assert_eq!(claims(&expired)["aud"], AUDIENCE);
    assert_eq!(claims(&wrong_audience)["aud"], OTHER_AUDIENCE);
    assert_eq!(claims(&wrong_audience)["scope"], SCOPE);
    assert_eq!(claims(&missing_scope)["aud"], AUDIENCE);
    assert_eq!(claims(&missing_scope)["scope"], "other");

    install_libraries();

    // Past `exp` by more than the most lenient default clock tolerance.
    let exp = claims(&expired)["exp"].as_u64().unwrap();
    let until = UNIX_EPOCH + Duration::from_secs(exp + MAX_DEFAULT_LEEWAY_SECS + 1);
    if let Ok(wait) = until.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }

    let input = json!({
        "issuer": server.base,
        "jwks_uri": server.url("/jwks.json"),
        "well_known_jwks": server.url("/.well-known/jwks.json"),
        "audience": AUDIENCE,
        "scope": SCOPE,
        "alg": alg,
        "tokens": {
            "valid": valid,
            "tampered": tampered,
            "expired": expired,
            "wrong_audience": wrong_audience,
            "missing_scope": missing_scope,
        },
    });
    let input_path = env.data_dir.join(format!("interop-{alg}.json"));
    std::fs::write(&input_path, serde_json::to_vec_pretty(&input).unwrap()).unwrap();

    // Both checkers at once (one per core).
    let (python, node) = std::thread::scope(|s| {
        let python = s.spawn(|| run_python_checker(&input_path));
        let node = s.spawn(|| run_node_checker(&input_path));
        (python.join().unwrap(), node.join().unwrap())
    });
    let mut results = serde_json::Map::new();
    let mut reasons = serde_json::Map::new();
    for report in [python, node] {
        results.extend(report["results"].as_object().unwrap().clone());
        reasons.extend(report["reasons"].as_object().unwrap().clone());
    }

    let mut wrong = Vec::new();
    for library in LIBRARIES {
        let expect = expected(library, alg);
        for (case, refusal) in CASES {
            let got = results
                .get(library)
                .and_then(|r| r.get(case))
                .and_then(Value::as_str)
                .unwrap_or("(no result)");
            let reason = reasons
                .get(library)
                .and_then(|r| r.get(case))
                .and_then(Value::as_str)
                .unwrap_or("");
            let ok = match (&expect, refusal) {
                (Expect::Verifies, None) => got == "accepted",
                (Expect::Verifies, Some(kind)) => {
                    got == "refused" && reason.starts_with(&format!("{kind}: "))
                }
                (Expect::RefusesAlgorithm(why), _) => {
                    got == "refused" && reason.starts_with("algorithm: ") && reason.contains(why)
                }
            };
            if !ok {
                let want = match (&expect, refusal) {
                    (Expect::Verifies, None) => "accepted".to_owned(),
                    (Expect::Verifies, Some(kind)) => format!("refused ({kind})"),
                    (Expect::RefusesAlgorithm(why), _) => format!("refused (algorithm: {why})"),
                };
                wrong.push(format!(
                    "{library} {alg} {case}: expected {want}, got {got} {reason}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "interop {alg}: {} result(s) differ from the expected table:\n{}\n\nall results: {}\nreasons: {}",
        wrong.len(),
        wrong.join("\n"),
        Value::Object(results),
        serde_json::to_string_pretty(&Value::Object(reasons)).unwrap()
    );
}

e2e_test! {
    /// What the documented set-ups of stacks that cannot be installed here read from Tessera.
    /// Spring Security's resource server (`spring.security.oauth2.resourceserver.jwt.issuer-uri`)
    /// reads the OpenID discovery document (falling back to RFC 8414's) and needs `issuer` equal
    /// to the configured one, `jwks_uri`, and `subject_types_supported` (Nimbus' OIDC metadata
    /// parser requires it); it takes `id_token_signing_alg_values_supported` as the allowed
    /// algorithms, and its default JWT validator refuses `typ: at+jwt` (hence
    /// `--jwt-typ-audience`). ASP.NET Core's JwtBearer (`Authority`) reads the same document and
    /// its JWKS, and picks the key by `kid`.
    async fn what_spring_and_dotnet_recipes_rely_on() {
        let env = TestEnv::sqlite();
        let server = env.start(&["--jwt-typ-audience", "https://spring.interop"]);
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            let doc: Value = get_json(&server, path).await;
            assert_eq!(doc["issuer"], server.base.as_str(), "{path}");
            assert_eq!(doc["jwks_uri"], server.url("/jwks.json"), "{path}");
            let algs = doc["id_token_signing_alg_values_supported"].as_array().unwrap();
            for alg in ["RS256", "ES256", "EdDSA"] {
                assert!(algs.contains(&json!(alg)), "{path}: {alg} missing from {algs:?}");
            }
            assert_eq!(doc["subject_types_supported"], json!(["public"]), "{path}");
            assert!(doc["response_types_supported"].is_array(), "{path}");
        }

        let c = create_client(
            &env,
            "--name spring-and-dotnet --scope s2s:internal --audience https://api.interop \
             --audience https://spring.interop",
        );
        let jwks: Value = get_json(&server, "/jwks.json").await;
        let at_jwt = mint(&server, &c, "grant_type=client_credentials").await;
        let jwt = mint(
            &server,
            &c,
            "grant_type=client_credentials&resource=https%3A%2F%2Fspring.interop",
        )
        .await;
        assert_eq!(header(&at_jwt)["typ"], "at+jwt", "RFC 9068 by default");
        assert_eq!(header(&jwt)["typ"], "JWT", "--jwt-typ-audience");
        assert_eq!(claims(&jwt)["aud"], "https://spring.interop");
        for token in [&at_jwt, &jwt] {
            let h = header(token);
            let kid = h["kid"].as_str().expect("kid");
            let key = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == kid)
                .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
            assert_eq!(key["alg"], h["alg"]);
            assert_eq!(key["use"], "sig");
        }
    }
}

// --- Callers without a shared secret: private_key_jwt (RFC 7523 §2.2) from client libraries ---
//
// The libraries sign the client assertion themselves, with keys they generate, on their own
// defaults: `tests/interop/pkjwt_python.py` (Authlib) and `tests/interop/pkjwt_node.mjs`
// (openid-client v6 on oauth4webapi). Each test runs its script twice: `keygen` writes a
// private key and a public JWKS, the test registers the JWKS with `tessera client create
// --auth private_key_jwt --jwks-file`, and `token` gets a token with the library and sends the
// same assertion a second time. The test then checks what the library sent, that the token
// verifies against the server's JWKS (jsonwebtoken, see `harness::verify`), and that the
// replay was refused.

e2e_test! {
    /// Authlib's `PrivateKeyJWT` on its defaults (RS256, `aud` = the token endpoint URL, `exp` =
    /// `iat` + 3600, no `kid`) as the client authentication of its requests `OAuth2Session`:
    /// `fetch_token(token_endpoint, grant_type="client_credentials")` gets a token, the same
    /// assertion sent again is refused, and introspection and revocation through the same
    /// session work too. The registered JWKS holds two RSA keys without `kid`, the signing one
    /// second (an old and a new key during a rotation), so the server has to try each.
    async fn private_key_jwt_authlib() {
        let env = TestEnv::sqlite();
        let server = env.start(&[]);
        install_libraries();

        let dir = key_dir(&env);
        let keys = run_script(
            &mut python_script(&["keygen", &dir]),
            "python3 tests/interop/pkjwt_python.py keygen",
        );
        let created = register_private_key_jwt(&env, "authlib", &keys["jwks_file"]);
        assert_eq!(created["jwks"]["keys"].as_array().map(Vec::len), Some(2), "{created}");
        let client_id = created["client_id"].as_str().unwrap();

        let input = json!({
            "issuer": server.base,
            "client_id": client_id,
            "private_key_file": keys["private_key_file"],
            "scope": SCOPE,
        });
        let input_path = env.data_dir.join("pkjwt-authlib.json");
        std::fs::write(&input_path, input.to_string()).unwrap();
        let report = run_script(
            &mut python_script(&["token", input_path.to_str().unwrap()]),
            "python3 tests/interop/pkjwt_python.py token",
        );
        let context = serde_json::to_string_pretty(&report).unwrap();

        // What Authlib sent: its defaults, unchanged.
        let header = &report["assertion"]["header"];
        let claims = &report["assertion"]["claims"];
        assert_eq!(header["alg"], "RS256", "{context}");
        assert!(header.get("kid").is_none(), "Authlib sends no kid: {context}");
        assert_eq!(claims["aud"], server.url("/oauth/token"), "{context}");
        assert_eq!(claims["iss"], client_id, "{context}");
        assert_eq!(claims["sub"], client_id, "{context}");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 3600, "Authlib signs exp = iat + 3600: {context}");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "{context}");
        assert_eq!(
            report["assertion"]["form_fields"],
            json!(["client_assertion", "client_assertion_type", "grant_type", "scope"]),
            "{context}"
        );

        // The token Authlib got.
        assert_eq!(report["token"]["token_type"], "Bearer", "{context}");
        let token = report["token"]["access_token"].as_str().expect("access_token");
        check_token(&server, token, client_id).await;

        assert_replay_refused(&server, &report["replay"], &context);

        // Introspection and revocation, authenticated the same way (each call a new assertion).
        assert_eq!(report["introspection"]["status"], 200, "{context}");
        assert_eq!(report["introspection"]["body"]["active"], true, "{context}");
        assert_eq!(report["introspection"]["body"]["client_id"], client_id, "{context}");
        assert_eq!(report["revocation_status"], 200, "{context}");
        assert_eq!(
            report["introspection_after_revocation"]["body"],
            json!({"active": false}),
            "{context}"
        );
    }
}

e2e_test! {
    /// openid-client v6 (`discovery` with `PrivateKeyJwt`, then `clientCredentialsGrant`) with an
    /// ES256 key from WebCrypto whose JWK and assertions carry a `kid`.
    async fn private_key_jwt_openid_client_es256() {
        let report = openid_client_grants("ES256", Some("interop-es256"), &[None]).await;
        let context = serde_json::to_string_pretty(&report).unwrap();
        let header = &report["grants"][0]["header"];
        assert_eq!(header["alg"], "ES256", "{context}");
        assert_eq!(header["kid"], "interop-es256", "{context}");
    }
}

e2e_test! {
    /// openid-client v6 with an Ed25519 key from WebCrypto, no `kid` in its JWK or its
    /// assertions. oauth4webapi names the algorithm `Ed25519` (RFC 9864) in its 3.x versions,
    /// `EdDSA` in older ones: the test gets a token with the library's own choice and with each
    /// name set through its `modifyAssertion` hook, so both are accepted whichever this version
    /// picks.
    async fn private_key_jwt_openid_client_ed25519() {
        // The public JWK is registered as WebCrypto exports it: Node's `exportKey("jwk")` writes
        // `"alg": "Ed25519"` (RFC 9864's name) into an Ed25519 key.
        let report =
            openid_client_grants("Ed25519", None, &[None, Some("EdDSA"), Some("Ed25519")]).await;
        let context = serde_json::to_string_pretty(&report).unwrap();
        let algs: Vec<&str> = report["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                assert!(g["header"].get("kid").is_none(), "no kid: {context}");
                g["header"]["alg"].as_str().unwrap()
            })
            .collect();
        assert!(
            matches!(algs[..], ["Ed25519" | "EdDSA", "EdDSA", "Ed25519"]),
            "{algs:?}: {context}"
        );
    }
}

/// Registers a `private_key_jwt` client for [`SCOPE`] and [`AUDIENCE`] with the JWKS in
/// `jwks_file`; returns what `client create --output json` printed.
fn register_private_key_jwt(env: &TestEnv, name: &str, jwks_file: &Value) -> Value {
    let jwks_file = jwks_file.as_str().expect("jwks_file");
    let created = env.cli_json(&[
        "client",
        "create",
        "--output",
        "json",
        "--name",
        name,
        "--scope",
        SCOPE,
        "--audience",
        AUDIENCE,
        "--auth",
        "private_key_jwt",
        "--jwks-file",
        jwks_file,
    ]);
    assert_eq!(
        created["token_endpoint_auth_method"], "private_key_jwt",
        "{created}"
    );
    assert!(
        created.get("client_secret").is_none(),
        "a private_key_jwt client has no secret: {created}"
    );
    created
}

/// Where a test's scripts write their keys: a folder of the test's own data directory.
fn key_dir(env: &TestEnv) -> String {
    let dir = env.data_dir.join("client-keys");
    std::fs::create_dir(&dir).unwrap();
    dir.to_str().unwrap().to_owned()
}

/// Starts a server, registers an openid-client key of `alg` (`ES256` or `Ed25519`, with `kid`
/// or without) and gets one token per entry of `header_algs` (`None`: the library's own `alg`,
/// else that name in the header), each checked: the assertion's `aud` is the issuer (what
/// oauth4webapi sends), `iss` = `sub` = the client, the body names the client too, the token
/// verifies, and the last assertion sent again is refused. Returns the script's report.
async fn openid_client_grants(alg: &str, kid: Option<&str>, header_algs: &[Option<&str>]) -> Value {
    let env = TestEnv::sqlite();
    let server = env.start(&[]);
    install_libraries();

    let dir = key_dir(&env);
    let mut keygen = vec!["keygen", alg, &dir];
    keygen.extend(kid);
    let keys = run_script(
        &mut node_script(&keygen),
        "node tests/interop/pkjwt_node.mjs keygen",
    );
    let created =
        register_private_key_jwt(&env, &format!("openid-client-{alg}"), &keys["jwks_file"]);
    let client_id = created["client_id"].as_str().unwrap().to_owned();

    let input = json!({
        "issuer": server.base,
        "client_id": client_id,
        "private_jwk_file": keys["private_jwk_file"],
        "kid": kid,
        "scope": SCOPE,
        "header_algs": header_algs,
    });
    let input_path = env.data_dir.join(format!("pkjwt-openid-client-{alg}.json"));
    std::fs::write(&input_path, input.to_string()).unwrap();
    let report = run_script(
        &mut node_script(&["token", input_path.to_str().unwrap()]),
        "node tests/interop/pkjwt_node.mjs token",
    );
    let context = serde_json::to_string_pretty(&report).unwrap();

    // What discovery told the library.
    let metadata = &report["server_metadata"];
    assert_eq!(
        metadata["token_endpoint"],
        server.url("/oauth/token"),
        "{context}"
    );
    let methods = metadata["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("token_endpoint_auth_methods_supported");
    assert!(methods.contains(&json!("private_key_jwt")), "{context}");
    assert_eq!(
        metadata["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA"]),
        "{context}"
    );

    let grants = report["grants"].as_array().unwrap();
    assert_eq!(grants.len(), header_algs.len(), "{context}");
    for grant in grants {
        let claims = &grant["claims"];
        assert_eq!(claims["aud"], server.base.as_str(), "{context}");
        assert_eq!(claims["iss"], client_id.as_str(), "{context}");
        assert_eq!(claims["sub"], client_id.as_str(), "{context}");
        assert!(
            grant["form_fields"]
                .as_array()
                .unwrap()
                .contains(&json!("client_id")),
            "{context}"
        );
        assert_eq!(grant["token"]["scope"], SCOPE, "{context}");
        let token = grant["token"]["access_token"]
            .as_str()
            .expect("access_token");
        check_token(&server, token, &client_id).await;
    }
    assert_replay_refused(&server, &report["replay"], &context);
    report
}

/// The token verifies against the server's JWKS (issuer, audience, `typ: at+jwt`) and was
/// issued to `client_id` with [`SCOPE`].
async fn check_token(server: &Server, token: &str, client_id: &str) {
    let claims = verify(server, token, AUDIENCE).await;
    assert_eq!(claims["sub"], client_id, "{claims}");
    assert_eq!(claims["client_id"], client_id, "{claims}");
    assert_eq!(claims["scope"], SCOPE, "{claims}");
}

/// The second use of one assertion got 401 `invalid_client`, and for that reason: the audit
/// event names the replayed `jti` (the answer itself does not say why, on purpose).
fn assert_replay_refused(server: &Server, replay: &Value, context: &str) {
    assert_eq!(replay["status"], 401, "the replayed assertion: {context}");
    assert_eq!(
        replay["body"]["error"], "invalid_client",
        "the replayed assertion: {context}"
    );
    assert_eq!(
        server.count_logs("\"jti replayed\""),
        1,
        "one client_auth_failed event for the replay; server logs:\n{}",
        server.logs()
    );
}

/// `python3 -s -B tests/interop/pkjwt_python.py ARGS` on the installed packages.
fn python_script(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    // -s: no user site-packages; -B: no .pyc files in the checkout.
    cmd.args(["-s", "-B", "pkjwt_python.py"])
        .args(args)
        .env("PYTHONPATH", python_deps());
    cmd
}

/// `node tests/interop/pkjwt_node.mjs ARGS` on the installed packages.
fn node_script(args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg("pkjwt_node.mjs").args(args);
    cmd
}

/// `tessera client create` with these (space-separated) arguments.
fn create_client(env: &TestEnv, args: &str) -> TestClient {
    env.create_client(&args.split_whitespace().collect::<Vec<_>>())
}

/// A token from the token endpoint (200, or the test fails).
async fn mint(server: &Server, client: &TestClient, form: &str) -> String {
    let resp = token_basic(server, client, form).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "token request {form}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64().decode(seg).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    part(token, 0)
}

fn claims(token: &str) -> Value {
    part(token, 1)
}

/// `token` with one character of its payload changed (the last of the `jti` value), the header
/// and signature kept: still well-formed JSON with the same claims but one, so a library can
/// refuse it only for its signature.
fn tamper(token: &str) -> String {
    let mut segs: Vec<&str> = token.split('.').collect();
    let mut payload = b64().decode(segs[1]).unwrap();
    let start = payload
        .windows(7)
        .position(|w| w == b"\"jti\":\"")
        .expect("jti in the payload")
        + 7;
    let end = start + payload[start..].iter().position(|&b| b == b'"').unwrap();
    let last = &mut payload[end - 1];
    *last = if *last == b'A' { b'B' } else { b'A' };
    let encoded = b64().encode(&payload);
    segs[1] = &encoded;
    let tampered = segs.join(".");
    let (before, after) = (claims(token), claims(&tampered));
    assert_ne!(before["jti"], after["jti"]);
    let (mut b, mut a) = (before.clone(), after.clone());
    b.as_object_mut().unwrap().remove("jti");
    a.as_object_mut().unwrap().remove("jti");
    assert_eq!(a, b, "only the jti differs");
    tampered
}

fn interop_dir() -> &'static Path {
    Path::new(INTEROP_DIR)
}

fn python_deps() -> PathBuf {
    interop_dir().join(".pydeps")
}

/// Runs `cmd` (stdin closed, in a process group of its own) and returns its output; kills the
/// whole group when it takes longer than `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            return Err(format!(
                "{what}: timed out after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

/// The last `n` lines of a command's output, for a failure message.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Installs the pinned libraries into the checkout unless the installed copy was made from the
/// same requirements.txt / package-lock.json (a stamp file records which). Runs once per
/// process; a failure fails every interop test with the installer's message.
fn install_libraries() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = INSTALLED.get_or_init(|| install_python().and_then(|()| install_node())) {
        panic!("interop: the resource-server libraries could not be installed, so this test cannot run:\n{e}");
    }
}

const STAMP: &str = ".tessera-installed-from";

fn install_python() -> Result<(), String> {
    let requirements = std::fs::read(interop_dir().join("requirements.txt")).unwrap();
    let target = python_deps();
    if std::fs::read(target.join(STAMP)).ok().as_ref() == Some(&requirements) {
        return Ok(());
    }
    // Into a fresh folder, moved into place only once complete.
    let partial = interop_dir().join(format!(".pydeps.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let what =
        "python3 -m pip install --target tests/interop/.pydeps -r tests/interop/requirements.txt";
    let out = run_bounded(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--no-warn-script-location", "--target"])
            .arg(&partial)
            .arg("-r")
            .arg(interop_dir().join("requirements.txt")),
        INSTALL_TIMEOUT,
        what,
    )?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            tail(&out.stdout, 10),
            tail(&out.stderr, 30)
        ));
    }
    std::fs::write(partial.join(STAMP), &requirements).unwrap();
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target).unwrap();
    Ok(())
}

fn install_node() -> Result<(), String> {
    let lock = std::fs::read(interop_dir().join("package-lock.json")).unwrap();
    let modules = interop_dir().join("node_modules");
    if std::fs::read(modules.join(STAMP)).ok().as_ref() == Some(&lock) {
        return Ok(());
    }
    // npm ci empties node_modules first and installs exactly the lock file; the stamp is
    // written only after it succeeded.
    let what = "npm ci --prefix tests/interop";
    let out = run_bounded(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(interop_dir()),
        INSTALL_TIMEOUT,
        what,
    )?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            tail(&out.stdout, 10),
            tail(&out.stderr, 30)
        ));
    }
    std::fs::write(modules.join(STAMP), &lock).unwrap();
    Ok(())
}

/// Runs a checker and parses its report ({"results", "reasons"}); panics with its output when
/// it fails or prints something else.
fn run_checker(cmd: &mut Command, what: &str) -> Value {
    let report = run_script(cmd, what);
    assert!(
        report["results"].is_object() && report["reasons"].is_object(),
        "{what}: {report}"
    );
    report
}

/// Runs one of the scripts in tests/interop (from that folder, for at most [`CHECK_TIMEOUT`])
/// and parses the one JSON object it prints; panics with its output when it fails or prints
/// something else.
fn run_script(cmd: &mut Command, what: &str) -> Value {
    // Only the issuer on 127.0.0.1 is contacted, never through a proxy.
    cmd.current_dir(interop_dir())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    let out = run_bounded(cmd, CHECK_TIMEOUT, what).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON report ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn run_python_checker(input: &Path) -> Value {
    run_checker(
        Command::new("python3")
            // -s: no user site-packages; -B: no .pyc files in the checkout.
            .args(["-s", "-B", "check_python.py"])
            .arg(input)
            .env("PYTHONPATH", python_deps()),
        "python3 tests/interop/check_python.py",
    )
}

fn run_node_checker(input: &Path) -> Value {
    run_checker(
        Command::new("node").arg("check_node.mjs").arg(input),
        "node tests/interop/check_node.mjs",
    )
}
