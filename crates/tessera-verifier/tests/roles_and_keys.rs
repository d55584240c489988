//! Role mapping, typed claims, named static API keys and `X-Service-Name` in the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{json, Value};
use support::{builder, Key, T0};
use tessera_verifier::axum::{Guard, Requirement};
use tessera_verifier::{
    AccessToken, ApiKeyAuthenticator, ApiKeySource, ClaimError, ConfigError, RoleMap, Verifier,
    VerifyError,
};
use tower::ServiceExt as _;

/// Request headers, name and value.
type Headers = Vec<(&'static str, String)>;

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": "tc_1", "client_id": "tc_1",
        "exp": T0 + 300, "iat": T0, "scope": "s2s:internal"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

struct Issuer {
    key: Key,
    verifier: Verifier,
}

impl Issuer {
    fn new() -> Self {
        let key = Key::new("k1");
        let verifier = builder(ISS, AUD, &key).build().unwrap();
        Self { key, verifier }
    }

    fn token(&self, extra: Value) -> String {
        self.key.sign(Some("at+jwt"), &claims(extra))
    }

    async fn verified(&self, extra: Value) -> AccessToken {
        self.verifier.verify(&self.token(extra)).await.unwrap()
    }
}

fn admin_map() -> RoleMap {
    RoleMap::new()
        .role("ADMIN", |r| {
            r.scope("s2s:admin").claim("groups", "git-admins")
        })
        .role("KC_ADMIN", |r| r.claim("/realm_access/roles", "admin"))
        .role("FIRST_TEAM", |r| r.claim("/teams/0", "payments"))
        .role("ESCAPED", |r| r.claim("/a~1b/c~0d", "yes"))
        .role("NAMESPACED", |r| {
            r.claim("https://example.com/roles", "ops")
        })
}

#[tokio::test]
async fn roles_come_from_scopes_or_claim_values_and_nothing_else() {
    let issuer = Issuer::new();
    let map = admin_map();
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("no grant", json!({}), &[]),
        (
            "scope",
            json!({"scope": "s2s:internal s2s:admin"}),
            &["ADMIN"],
        ),
        ("string claim", json!({"groups": "git-admins"}), &["ADMIN"]),
        (
            "array claim",
            json!({"groups": ["dev", "git-admins"]}),
            &["ADMIN"],
        ),
        ("case matters", json!({"groups": ["Git-Admins"]}), &[]),
        (
            "a string is not split",
            json!({"groups": "dev git-admins"}),
            &[],
        ),
        (
            "non-string elements",
            json!({"groups": [1, true, null, {"x": 1}]}),
            &[],
        ),
        (
            "an object is no grant",
            json!({"groups": {"git-admins": true}}),
            &[],
        ),
        (
            "a scope-like claim is not a scope",
            json!({"scp": "s2s:admin"}),
            &[],
        ),
        ("claim named twice", Value::Null, &[]),
        (
            "JSON pointer into an object",
            json!({"realm_access": {"roles": ["offline_access", "admin"]}}),
            &["KC_ADMIN"],
        ),
        (
            "JSON pointer to an array index",
            json!({"teams": ["payments", "search"]}),
            &["FIRST_TEAM"],
        ),
        (
            "not at that index",
            json!({"teams": ["search", "payments"]}),
            &[],
        ),
        (
            "escaped pointer",
            json!({"a/b": {"c~d": "yes"}}),
            &["ESCAPED"],
        ),
        (
            "namespaced claim taken literally",
            json!({"https://example.com/roles": ["ops"]}),
            &["NAMESPACED"],
        ),
        (
            "several at once",
            json!({"groups": ["git-admins"], "realm_access": {"roles": "admin"}}),
            &["ADMIN", "KC_ADMIN"],
        ),
    ];
    for (case, extra, want) in cases {
        let at = if extra.is_null() {
            // serde_json::Value cannot hold a duplicate key: write the claims by hand.
            let payload = format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"tc_1","exp":{},"groups":"git-admins","groups":"x"}}"#,
                T0 + 300
            );
            let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
            let token = issuer.key.sign_text(&header, &payload);
            issuer.verifier.verify(&token).await.unwrap()
        } else {
            issuer.verified(extra).await
        };
        let got = map.roles_of(&at);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{case}");
        for role in ["ADMIN", "KC_ADMIN", "FIRST_TEAM", "ESCAPED", "NAMESPACED"] {
            assert_eq!(
                at.has_role(&map, role),
                want.contains(role),
                "{case}: {role}"
            );
        }
        assert!(!at.has_role(&map, "UNDEFINED"), "{case}");
    }
    let at = issuer.verified(json!({})).await;
    assert_eq!(
        at.require_role(&map, "ADMIN"),
        Err(VerifyError::MissingRole {
            required: "ADMIN".into()
        })
    );
    assert_eq!(at.require_role(&map, "ADMIN").unwrap_err().status(), 403);
}

#[test]
fn role_maps_read_from_json_and_refuse_what_cannot_be_meant() {
    let map = RoleMap::from_json_str(
        r#"{"roles": {
            "ADMIN": {"scopes": ["s2s:admin"], "claims": {"groups": ["git-admins"]}},
            "READER": {"scopes": ["s2s:read"]},
            "KC": {"claims": {"/realm_access/roles": ["admin", "ops"]}}
        }}"#,
    )
    .unwrap();
    assert_eq!(
        map.role_names().collect::<Vec<_>>(),
        vec!["ADMIN", "KC", "READER"]
    );
    let bad: Vec<(&str, &str, Option<&str>)> = vec![
        ("not JSON", "roles: {}", None),
        ("no roles key", r#"{}"#, None),
        (
            "a misspelt field",
            r#"{"roles": {"A": {"scope": ["x"]}}}"#,
            None,
        ),
        (
            "unknown top-level field",
            r#"{"roles": {}, "extra": 1}"#,
            None,
        ),
        (
            "a role granted by nothing",
            r#"{"roles": {"A": {}}}"#,
            Some("A"),
        ),
        (
            "claims with no values",
            r#"{"roles": {"A": {"claims": {"groups": []}}}}"#,
            Some("A"),
        ),
        (
            "an empty role name",
            r#"{"roles": {"": {"scopes": ["x"]}}}"#,
            Some(""),
        ),
        (
            "a role name with a space",
            r#"{"roles": {"A B": {"scopes": ["x"]}}}"#,
            Some("A B"),
        ),
        (
            "a scope with a space",
            r#"{"roles": {"A": {"scopes": ["x y"]}}}"#,
            Some("A"),
        ),
        (
            "an empty scope",
            r#"{"roles": {"A": {"scopes": [""]}}}"#,
            Some("A"),
        ),
        (
            "an empty claim value",
            r#"{"roles": {"A": {"claims": {"groups": [""]}}}}"#,
            Some("A"),
        ),
        (
            "an empty claim name",
            r#"{"roles": {"A": {"claims": {"": ["x"]}}}}"#,
            Some("A"),
        ),
        (
            "a bad JSON pointer",
            r#"{"roles": {"A": {"claims": {"/a~2": ["x"]}}}}"#,
            Some("A"),
        ),
        (
            "scopes not a list",
            r#"{"roles": {"A": {"scopes": "x"}}}"#,
            None,
        ),
    ];
    for (case, json, role) in bad {
        match RoleMap::from_json_str(json) {
            Err(ConfigError::RoleMap { role: got, .. }) => {
                assert_eq!(got.as_deref(), role, "{case}")
            }
            other => panic!("{case}: {other:?}"),
        }
    }

    let path = std::env::temp_dir().join(format!("tessera-roles-{}.json", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(br#"{"roles": {"ADMIN": {"claims": {"groups": ["git-admins"]}}}}"#)
        .unwrap();
    assert!(RoleMap::from_json_file(&path).unwrap().defines("ADMIN"));
    std::fs::remove_file(&path).unwrap();
    let e = RoleMap::from_json_file(&path).unwrap_err();
    assert!(
        matches!(e, ConfigError::RoleMap { role: None, ref reason } if reason.contains("tessera-roles")),
        "{e:?}"
    );
}

#[tokio::test]
async fn typed_claims_are_read_on_demand() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Realm {
        roles: Vec<String>,
    }
    let issuer = Issuer::new();
    let at = issuer
        .verified(
            json!({"groups": ["a", "b"], "realm_access": {"roles": ["admin"]},
            "tenant": "t\u{e9}\"x", "n": 7}),
        )
        .await;
    assert_eq!(
        at.claim::<Vec<String>>("groups"),
        Ok(Some(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        at.claim::<Realm>("realm_access"),
        Ok(Some(Realm {
            roles: vec!["admin".into()]
        }))
    );
    assert_eq!(at.claim::<String>("tenant"), Ok(Some("t\u{e9}\"x".into())));
    assert_eq!(at.claim::<u8>("n"), Ok(Some(7)));
    assert_eq!(at.claim::<String>("absent"), Ok(None));
    assert_eq!(at.claim::<i64>("exp"), Ok(Some((T0 + 300) as i64)));
    assert!(matches!(
        at.claim::<u8>("groups"),
        Err(ClaimError::Type { ref name, .. }) if name == "groups"
    ));
    assert!(matches!(
        at.claim::<Realm>("n"),
        Err(ClaimError::Type { .. })
    ));
}

fn app(guard: &Guard) -> axum::Router {
    let who = |t: AccessToken| async move { t.client_id().to_string() };
    axum::Router::new()
        .route("/admin", get(who))
        .route_layer(guard.requiring(Requirement::role("ADMIN")))
        .merge(
            axum::Router::new()
                .route("/both", get(who))
                .route_layer(guard.requiring(Requirement::all_of([
                    Requirement::all(["s2s:internal"]),
                    Requirement::role("ADMIN"),
                ]))),
        )
        .merge(axum::Router::new().route("/either", get(who)).route_layer(
            guard.requiring(Requirement::all(["reports:read"]).or(Requirement::role("ADMIN"))),
        ))
        .merge(
            axum::Router::new()
                .route("/undefined", get(who))
                .route_layer(guard.requiring(Requirement::role("NOPE"))),
        )
}

async fn call(
    app: &axum::Router,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, String, String) {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_guard_requires_roles_alone_and_with_scopes() {
    let issuer = Issuer::new();
    let guard = Guard::new(issuer.verifier.clone())
        .realm("orders")
        .with_roles(Arc::new(admin_map()));
    let app = app(&guard);
    let bearer = |extra: Value| vec![("authorization", format!("Bearer {}", issuer.token(extra)))];
    let admin = bearer(json!({"groups": ["git-admins"]}));
    let admin_by_scope = bearer(json!({"scope": "s2s:admin"}));
    let admin_without_internal = bearer(json!({"scope": "other", "groups": "git-admins"}));
    let plain = bearer(json!({}));
    let reporter = bearer(json!({"scope": "reports:read"}));
    let role_refusal = "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"requires role: ADMIN\"";
    let cases: Vec<(&str, &str, &Headers, StatusCode, &str)> = vec![
        ("role from a claim", "/admin", &admin, StatusCode::OK, ""),
        ("role from a scope", "/admin", &admin_by_scope, StatusCode::OK, ""),
        ("no role", "/admin", &plain, StatusCode::FORBIDDEN, role_refusal),
        ("scope and role", "/both", &admin, StatusCode::OK, ""),
        (
            "role without the scope",
            "/both",
            &admin_without_internal,
            StatusCode::FORBIDDEN,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"s2s:internal\"",
        ),
        ("scope without the role", "/both", &plain, StatusCode::FORBIDDEN, role_refusal),
        ("either: the scope", "/either", &reporter, StatusCode::OK, ""),
        ("either: the role", "/either", &admin, StatusCode::OK, ""),
        ("either: neither", "/either", &plain, StatusCode::FORBIDDEN, role_refusal),
        (
            "a role the map does not define",
            "/undefined",
            &admin,
            StatusCode::FORBIDDEN,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"requires role: NOPE\"",
        ),
    ];
    for (case, path, headers, status, challenge) in cases {
        let (got, got_challenge, body) = call(&app, path, headers).await;
        assert_eq!(got, status, "{case}: {body}");
        assert_eq!(got_challenge, challenge, "{case}");
        if status == StatusCode::FORBIDDEN {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "insufficient_scope", "{case}");
        }
    }

    // Without a role map, no one holds a role (fail closed).
    let bare = app_without_roles(&issuer.verifier);
    let (status, _, _) = call(&bare, "/admin", &admin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn app_without_roles(v: &Verifier) -> axum::Router {
    axum::Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(Guard::new(v.clone()).requiring(Requirement::role("ADMIN")))
}

#[test]
fn requirements_check_outside_axum_and_combine() {
    let r = Requirement::all(["a"])
        .and(Requirement::role("X"))
        .and(Requirement::any(["b", "c"]));
    assert!(matches!(&r, Requirement::AllOf(list) if list.len() == 3));
    let r = Requirement::role("X").or(Requirement::role("Y"));
    assert!(matches!(&r, Requirement::AnyOf(list) if list.len() == 2));
}

#[tokio::test]
async fn requirement_check_reports_the_alternatives() {
    let issuer = Issuer::new();
    let map = RoleMap::new()
        .role("X", |r| r.scope("x"))
        .role("Y", |r| r.scope("y"));
    let at = issuer.verified(json!({"scope": "a"})).await;
    let cases: Vec<(&str, Requirement, Result<(), VerifyError>)> = vec![
        ("authenticated", Requirement::default(), Ok(())),
        (
            "any of roles",
            Requirement::any_of([Requirement::role("X"), Requirement::role("Y")]),
            Err(VerifyError::MissingRole {
                required: "X Y".into(),
            }),
        ),
        (
            "any of scopes",
            Requirement::any_of([Requirement::all(["b"]), Requirement::all(["c"])]),
            Err(VerifyError::InsufficientScope {
                required: "b c".into(),
            }),
        ),
        (
            "all of: first failure",
            Requirement::all_of([
                Requirement::all(["a"]),
                Requirement::role("Y"),
                Requirement::all(["z"]),
            ]),
            Err(VerifyError::MissingRole {
                required: "Y".into(),
            }),
        ),
        (
            "met",
            Requirement::all(["a"]).and(Requirement::role("X").or(Requirement::all(["a"]))),
            Ok(()),
        ),
    ];
    for (case, req, want) in cases {
        assert_eq!(req.check(&at, Some(&map)), want, "{case}");
    }
    assert!(Requirement::role("X").check(&at, None).is_err());
}

#[test]
fn static_keys_are_named_scoped_and_refused_when_missing() {
    let billing_var = "TESSERA_VERIFIER_TEST_BILLING";
    let empty_var = "TESSERA_VERIFIER_TEST_EMPTY";
    let unset_var = "TESSERA_VERIFIER_TEST_UNSET";
    std::env::set_var(billing_var, "bk-1,bk-2");
    std::env::set_var(empty_var, " , ");
    std::env::remove_var(unset_var);
    let keys = ApiKeyAuthenticator::builder()
        .key(
            "billing",
            ApiKeySource::Env(billing_var.into()),
            ["s2s:read"],
        )
        .config("# tiers\n\nreports=rk=1,rk=2;scopes=reports:read reports:export\n")
        .build()
        .unwrap();
    assert_eq!(keys.names().collect::<Vec<_>>(), vec!["billing", "reports"]);
    let b = keys.authenticate("bk-2").unwrap();
    assert_eq!(b.client_id(), "static:billing");
    assert_eq!(b.subject(), "static:billing");
    assert_eq!(b.scopes(), BTreeSet::from(["s2s:read"]));
    let r = keys.authenticate("rk=1").unwrap();
    assert_eq!(r.client_id(), "static:reports");
    assert_eq!(
        r.scopes(),
        BTreeSet::from(["reports:export", "reports:read"])
    );
    for wrong in ["", "bk-3", "rk", "rk=1,rk=2", "bk-1 "] {
        assert!(keys.authenticate(wrong).is_none(), "{wrong:?}");
    }

    let missing = std::env::temp_dir().join("tessera-no-such-key-file");
    let env = |v: &str| ApiKeySource::Env(v.into());
    let cases: Vec<(
        &str,
        tessera_verifier::ApiKeyAuthenticatorBuilder,
        ConfigError,
    )> = vec![
        (
            "no key at all",
            ApiKeyAuthenticator::builder(),
            ConfigError::NoApiKeys { name: None },
        ),
        (
            "an empty variable",
            ApiKeyAuthenticator::builder().key("a", env(empty_var), ["s"]),
            ConfigError::NoApiKeys {
                name: Some("a".into()),
            },
        ),
        (
            "an unset variable",
            ApiKeyAuthenticator::builder().key("a", env(unset_var), ["s"]),
            ConfigError::NoApiKeys {
                name: Some("a".into()),
            },
        ),
        (
            "a config line without keys",
            ApiKeyAuthenticator::builder().config("a=;scopes=s"),
            ConfigError::NoApiKeys {
                name: Some("a".into()),
            },
        ),
    ];
    for (case, b, want) in cases {
        assert_eq!(b.build().unwrap_err(), want, "{case}");
    }
    let named: Vec<(&str, tessera_verifier::ApiKeyAuthenticatorBuilder, &str)> = vec![
        (
            "a missing file",
            ApiKeyAuthenticator::builder().key("f", ApiKeySource::File(missing), ["s"]),
            "f",
        ),
        (
            "a bad name",
            ApiKeyAuthenticator::builder().key("bill ing", env(billing_var), ["s"]),
            "bill ing",
        ),
        (
            "an empty name",
            ApiKeyAuthenticator::builder().key("", env(billing_var), ["s"]),
            "",
        ),
        (
            "a name used twice",
            ApiKeyAuthenticator::builder()
                .key("a", env(billing_var), ["s"])
                .config("a=other;scopes=s"),
            "a",
        ),
        (
            "one key in two tiers",
            ApiKeyAuthenticator::builder()
                .key("a", env(billing_var), ["s"])
                .config("b=bk-2;scopes=t"),
            "b",
        ),
        (
            "a scope with a space",
            ApiKeyAuthenticator::builder().key("a", env(billing_var), ["s t"]),
            "a",
        ),
        (
            "a config line that does not parse",
            ApiKeyAuthenticator::builder()
                .key("a", env(billing_var), ["s"])
                .config("\n# fine\nb=key-without-scopes"),
            "line 3",
        ),
    ];
    for (case, b, name) in named {
        match b.build() {
            Err(ConfigError::ApiKey { name: got, .. }) => assert_eq!(got, name, "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }
}
