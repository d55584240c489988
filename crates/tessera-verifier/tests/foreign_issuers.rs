//! Tokens shaped like other issuers' (Keycloak, Entra ID v1 and v2, Okta, Auth0, Ory Hydra):
//! each refused by a default verifier, accepted by one told to take that shape, and several
//! issuers behind one verifier (`Verifier::any_of`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{builder, Key, T0};
use tessera_verifier::{
    AccessToken, ConfigError, InvalidToken, RoleMap, Verifier, VerifierBuilder, VerifyError,
};

/// Which opt-ins a shape needs.
#[derive(Clone, Copy)]
struct OptIns {
    typ_jwt: bool,
    missing_typ: bool,
    scp: bool,
    azp: bool,
}

impl OptIns {
    fn apply(self, mut b: VerifierBuilder) -> VerifierBuilder {
        if self.typ_jwt {
            b = b.accept_typ_jwt();
        }
        if self.missing_typ {
            b = b.accept_missing_typ();
        }
        if self.scp {
            b = b.scopes_from_scp();
        }
        if self.azp {
            b = b.client_id_from_azp();
        }
        b
    }
}

struct Shape {
    name: &'static str,
    iss: &'static str,
    aud: &'static str,
    typ: Option<&'static str>,
    claims: Value,
    needs: OptIns,
    client_id: &'static str,
    scopes: &'static [&'static str],
    /// A claim grant this shape's tokens meet: (claim, value).
    role_claim: (&'static str, &'static str),
}

/// Claim layouts as each issuer documents its access tokens (client-credentials or delegated
/// where noted), with times relative to the test clock.
fn shapes() -> Vec<Shape> {
    let (iat, exp) = (T0 - 10, T0 + 290);
    vec![
        Shape {
            name: "Keycloak service account",
            iss: "https://kc.example.com/realms/acme",
            aud: "orders-api",
            typ: Some("JWT"),
            claims: json!({"exp": exp, "iat": iat, "jti": "a9f3c1e0-0b1d-4bd7-9a55-0d6e8f6c3b21",
                "iss": "https://kc.example.com/realms/acme", "aud": ["orders-api", "account"],
                "sub": "5d8e0c7a-3a33-4c39-a2b3-7f0a6f7d2b10", "typ": "Bearer", "azp": "billing-svc",
                "acr": "1", "allowed-origins": ["/*"],
                "realm_access": {"roles": ["offline_access", "uma_authorization", "orders-admin"]},
                "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
                "scope": "profile email orders:read", "clientHost": "10.0.0.7",
                "email_verified": false, "preferred_username": "service-account-billing-svc",
                "clientAddress": "10.0.0.7", "clientId": "billing-svc"}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: false,
                azp: true,
            },
            client_id: "billing-svc",
            scopes: &["email", "orders:read", "profile"],
            role_claim: ("/realm_access/roles", "orders-admin"),
        },
        Shape {
            name: "Entra ID v2 app token",
            iss: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            aud: "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            typ: Some("JWT"),
            claims: json!({"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
                "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                "iat": iat, "nbf": iat, "exp": exp, "aio": "E2ZgYJg...", "azp": "a1b2c3d4-0000-4000-8000-000000000001",
                "azpacr": "1", "oid": "8b1e4c5d-1111-4222-8333-944455566677", "rh": "0.ARoAv4j5cvGGr0...",
                "roles": ["Orders.ReadWrite.All"], "sub": "8b1e4c5d-1111-4222-8333-944455566677",
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "uti": "Kj0Yq3nq6UqvXH2a1rQXAA", "ver": "2.0"}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: true,
                azp: true,
            },
            client_id: "a1b2c3d4-0000-4000-8000-000000000001",
            scopes: &[],
            role_claim: ("roles", "Orders.ReadWrite.All"),
        },
        Shape {
            name: "Entra ID v2 delegated",
            iss: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            aud: "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            typ: Some("JWT"),
            claims: json!({"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
                "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                "iat": iat, "nbf": iat, "exp": exp, "azp": "a1b2c3d4-0000-4000-8000-000000000002",
                "azpacr": "0", "name": "Ada Lovelace", "oid": "0f0e0d0c-2222-4333-8444-955566677788",
                "preferred_username": "ada@contoso.com", "scp": "Orders.Read Orders.Write",
                "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "groups": ["git-admins"],
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "ver": "2.0"}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: true,
                azp: true,
            },
            client_id: "a1b2c3d4-0000-4000-8000-000000000002",
            scopes: &["Orders.Read", "Orders.Write"],
            role_claim: ("groups", "git-admins"),
        },
        Shape {
            name: "Entra ID v1",
            iss: "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            aud: "api://orders",
            typ: Some("JWT"),
            claims: json!({"aud": "api://orders",
                "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
                "iat": iat, "nbf": iat, "exp": exp, "appid": "a1b2c3d4-0000-4000-8000-000000000003",
                "appidacr": "1", "idp": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
                "oid": "1a2b3c4d-3333-4444-8555-966677788899", "roles": ["Orders.Admin"],
                "sub": "1a2b3c4d-3333-4444-8555-966677788899",
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "ver": "1.0"}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: false,
                azp: true,
            },
            client_id: "a1b2c3d4-0000-4000-8000-000000000003",
            scopes: &[],
            role_claim: ("roles", "Orders.Admin"),
        },
        Shape {
            // Okta's access token header is only {"kid", "alg"}.
            name: "Okta client credentials",
            iss: "https://acme.okta.com/oauth2/default",
            aud: "api://orders",
            typ: None,
            claims: json!({"ver": 1, "jti": "AT.mNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
                "iss": "https://acme.okta.com/oauth2/default", "aud": "api://orders", "iat": iat,
                "exp": exp, "cid": "0oa8f5j3ecb5w3dF35d7", "scp": ["orders:read", "orders:write"],
                "sub": "0oa8f5j3ecb5w3dF35d7", "tier": "gold"}),
            needs: OptIns {
                typ_jwt: false,
                missing_typ: true,
                scp: true,
                azp: true,
            },
            client_id: "0oa8f5j3ecb5w3dF35d7",
            scopes: &["orders:read", "orders:write"],
            role_claim: ("tier", "gold"),
        },
        Shape {
            name: "Auth0 client credentials (Auth0 profile)",
            iss: "https://acme.us.auth0.com/",
            aud: "https://orders.example.com",
            typ: Some("JWT"),
            claims: json!({"iss": "https://acme.us.auth0.com/",
                "sub": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja@clients", "aud": "https://orders.example.com",
                "iat": iat, "exp": exp, "scope": "read:orders write:orders",
                "gty": "client-credentials", "azp": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
                "permissions": ["read:orders", "write:orders"],
                "https://example.com/roles": ["orders-admin"]}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: false,
                azp: true,
            },
            client_id: "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
            scopes: &["read:orders", "write:orders"],
            role_claim: ("https://example.com/roles", "orders-admin"),
        },
        Shape {
            name: "Ory Hydra client credentials",
            iss: "https://hydra.example.com/",
            aud: "https://orders.example.com",
            typ: Some("JWT"),
            claims: json!({"aud": ["https://orders.example.com"], "client_id": "billing",
                "exp": exp, "ext": {"team": "payments"}, "iat": iat,
                "iss": "https://hydra.example.com/", "jti": "0f4bd2f4-9c2a-4a1b-8a8a-3f0c9b7f2e55",
                "nbf": iat, "scp": ["orders.read", "orders.write"], "sub": "billing"}),
            needs: OptIns {
                typ_jwt: true,
                missing_typ: false,
                scp: true,
                azp: false,
            },
            client_id: "billing",
            scopes: &["orders.read", "orders.write"],
            role_claim: ("/ext/team", "payments"),
        },
    ]
}

fn invalid(r: Result<AccessToken, VerifyError>) -> InvalidToken {
    match r {
        Err(VerifyError::InvalidToken(i)) => i,
        other => panic!("expected invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn each_shape_is_refused_by_default_and_read_fully_when_opted_in() {
    let key = Key::new("k1");
    for s in shapes() {
        let token = key.sign(s.typ, &s.claims);
        let strict = builder(s.iss, s.aud, &key).build().unwrap();
        assert_eq!(
            invalid(strict.verify(&token).await),
            InvalidToken::WrongType,
            "{}: RFC 9068 strictness by default",
            s.name
        );

        let opted = s.needs.apply(builder(s.iss, s.aud, &key)).build().unwrap();
        let at = opted
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(at.client_id(), s.client_id, "{}", s.name);
        assert_eq!(
            at.scopes().into_iter().collect::<Vec<_>>(),
            s.scopes,
            "{}",
            s.name
        );
        let roles = RoleMap::new().role("ADMIN", |r| r.claim(s.role_claim.0, s.role_claim.1));
        assert!(at.has_role(&roles, "ADMIN"), "{}: role from claims", s.name);

        // Only the type opt-in: accepted, but neither `scp` nor `azp`/`appid`/`cid` is read.
        let typ_only = OptIns {
            scp: false,
            azp: false,
            ..s.needs
        };
        let at = typ_only
            .apply(builder(s.iss, s.aud, &key))
            .build()
            .unwrap()
            .verify(&token)
            .await
            .unwrap();
        assert_eq!(
            at.client_id(),
            s.claims["client_id"]
                .as_str()
                .unwrap_or(s.claims["sub"].as_str().unwrap()),
            "{}: without client_id_from_azp the subject names the client",
            s.name
        );
        if s.claims.get("scope").is_none() {
            assert!(
                at.scopes().is_empty(),
                "{}: without scopes_from_scp no scope is read from scp",
                s.name
            );
        }
    }
}

/// (case, typ, claims, expected client id, expected scopes).
type Accepted = (
    &'static str,
    Option<&'static str>,
    Value,
    &'static str,
    Vec<&'static str>,
);

/// Edge cases of the opt-ins, through one table.
#[tokio::test]
async fn opt_ins_read_only_what_they_name() {
    const ISS: &str = "https://idp.example.com";
    const AUD: &str = "https://orders.example.com";
    let key = Key::new("k1");
    let lenient = builder(ISS, AUD, &key)
        .accept_typ_jwt()
        .scopes_from_scp()
        .client_id_from_azp()
        .build()
        .unwrap();
    let base = || json!({"iss": ISS, "aud": AUD, "sub": "the-sub", "exp": T0 + 300});
    let with = |extra: Value| {
        let mut c = base();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // (case, typ, claims, expected client id, expected scopes) — or the refusal.
    let ok_cases: Vec<Accepted> = vec![
        (
            "scope wins over scp",
            Some("JWT"),
            with(json!({"scope": "a", "scp": ["b"]})),
            "the-sub",
            vec!["a"],
        ),
        (
            "scp of another shape grants nothing",
            Some("JWT"),
            with(json!({"scp": {"a": true}})),
            "the-sub",
            vec![],
        ),
        (
            "non-string scp elements are skipped",
            Some("JWT"),
            with(json!({"scp": ["a", 1, null, "b"]})),
            "the-sub",
            vec!["a", "b"],
        ),
        (
            "client_id wins over azp",
            Some("at+jwt"),
            with(json!({"client_id": "cid-1", "azp": "azp-1"})),
            "cid-1",
            vec![],
        ),
        (
            "azp before appid before cid",
            Some("JWT"),
            with(json!({"cid": "okta", "appid": "entra-v1", "azp": "azp-1"})),
            "azp-1",
            vec![],
        ),
        (
            "appid before cid",
            Some("JWT"),
            with(json!({"cid": "okta", "appid": "entra-v1"})),
            "entra-v1",
            vec![],
        ),
        (
            "a non-string azp is passed over",
            Some("JWT"),
            with(json!({"azp": ["x"], "cid": "okta"})),
            "okta",
            vec![],
        ),
    ];
    for (case, typ, claims, client, scopes) in ok_cases {
        let at = lenient
            .verify(&key.sign(typ, &claims))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(at.client_id(), client, "{case}");
        assert_eq!(
            at.scopes().into_iter().collect::<Vec<_>>(),
            scopes,
            "{case}"
        );
    }
    let refused: Vec<(&str, Option<&str>, Value, InvalidToken)> = vec![
        (
            "no typ without accept_missing_typ",
            None,
            base(),
            InvalidToken::WrongType,
        ),
        (
            "another typ",
            Some("id+jwt"),
            base(),
            InvalidToken::WrongType,
        ),
        (
            "foreign claims do not relax the audience",
            Some("JWT"),
            with(json!({"aud": ["account"]})),
            InvalidToken::WrongAudience,
        ),
        (
            "nor the expiry",
            Some("JWT"),
            with(json!({"exp": T0 - 60})),
            InvalidToken::Expired,
        ),
    ];
    for (case, typ, claims, want) in refused {
        assert_eq!(
            invalid(lenient.verify(&key.sign(typ, &claims)).await),
            want,
            "{case}"
        );
    }
    // A verifier that reads neither still accepts a token with odd `scp`/`azp` values.
    let plain = builder(ISS, AUD, &key).build().unwrap();
    let at = plain
        .verify(&key.sign(
            Some("at+jwt"),
            &with(json!({"scp": {"x": 1}, "azp": 7, "cid": null})),
        ))
        .await
        .unwrap();
    assert_eq!(at.client_id(), "the-sub");
}

#[tokio::test]
async fn any_of_picks_the_verifier_by_issuer_and_still_checks_everything() {
    let shapes = shapes();
    let keys: Vec<Key> = (0..shapes.len())
        .map(|i| Key::new(&format!("k{i}")))
        .collect();
    let tessera_key = Key::new("tessera-1");
    let tessera = builder(
        "https://auth.tessera.test",
        "https://orders.example.com",
        &tessera_key,
    )
    .build()
    .unwrap();
    // Entra v2 appears twice in the table (app and delegated): one verifier for the issuer.
    let mut members = vec![tessera];
    let mut seen = Vec::new();
    for (s, k) in shapes.iter().zip(&keys) {
        if !seen.contains(&s.iss) {
            seen.push(s.iss);
            members.push(s.needs.apply(builder(s.iss, s.aud, k)).build().unwrap());
        }
    }
    let set = Verifier::any_of(members.clone()).unwrap();
    assert_eq!(set.issuers().count(), 7);
    // Entra's two shapes must share a key to share a verifier.
    let key_of = |iss: &str| {
        let i = shapes.iter().position(|s| s.iss == iss).unwrap();
        &keys[i]
    };
    for s in &shapes {
        let at = set
            .verify(&key_of(s.iss).sign(s.typ, &s.claims))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(at.client_id(), s.client_id, "{}", s.name);
    }
    let own = json!({"iss": "https://auth.tessera.test", "aud": "https://orders.example.com",
        "sub": "tc_1", "client_id": "tc_1", "exp": T0 + 300, "scope": "s2s:internal"});
    assert_eq!(
        set.verify(&tessera_key.sign(Some("at+jwt"), &own))
            .await
            .unwrap()
            .client_id(),
        "tc_1"
    );

    let keycloak = &shapes[0];
    let kc_key = key_of(keycloak.iss);
    let okta_key = key_of("https://acme.okta.com/oauth2/default");
    let mut unknown_iss = keycloak.claims.clone();
    unknown_iss["iss"] = json!("https://evil.example.com/realms/acme");
    let mut no_iss = keycloak.claims.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let forged = okta_key.sign_header(
        &json!({"alg": "ES256", "typ": "JWT", "kid": kc_key.kid}),
        &keycloak.claims,
    );
    let cases: Vec<(&str, String, InvalidToken)> = vec![
        (
            "unknown issuer",
            kc_key.sign(Some("JWT"), &unknown_iss),
            InvalidToken::WrongIssuer,
        ),
        (
            "no issuer",
            kc_key.sign(Some("JWT"), &no_iss),
            InvalidToken::WrongIssuer,
        ),
        (
            "Keycloak's iss signed with Okta's key under Keycloak's kid",
            forged,
            InvalidToken::BadSignature,
        ),
        (
            "Keycloak's iss signed with Okta's key and kid",
            okta_key.sign(Some("JWT"), &keycloak.claims),
            InvalidToken::UnknownKey,
        ),
        (
            "Tessera's member keeps RFC 9068 strictness",
            tessera_key.sign(Some("JWT"), &own),
            InvalidToken::WrongType,
        ),
        ("not a JWT", "abc".into(), InvalidToken::Malformed),
        (
            "payload not base64",
            "eyJhbGciOiJFUzI1NiJ9.!!.sig".into(),
            InvalidToken::Malformed,
        ),
        (
            "too large for every member",
            format!("a.{}.b", "A".repeat(10_000)),
            InvalidToken::TooLarge,
        ),
    ];
    for (case, token, want) in cases {
        assert_eq!(invalid(set.verify(&token).await), want, "{case}");
    }

    assert_eq!(Verifier::any_of([]).unwrap_err(), ConfigError::NoIssuers);
    let again = members[1].clone();
    assert_eq!(
        Verifier::any_of([set.clone(), again]).unwrap_err(),
        ConfigError::DuplicateIssuer(keycloak.iss.into())
    );
}

#[tokio::test]
async fn the_guard_takes_a_verifier_set() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tessera_verifier::axum::{Guard, Requirement};
    use tower::ServiceExt as _;

    let shapes = shapes();
    let (okta, hydra) = (&shapes[4], &shapes[6]);
    let (okta_key, hydra_key) = (Key::new("okta"), Key::new("hydra"));
    let set = Verifier::any_of([
        okta.needs
            .apply(builder(okta.iss, okta.aud, &okta_key))
            .build()
            .unwrap(),
        hydra
            .needs
            .apply(builder(hydra.iss, hydra.aud, &hydra_key))
            .build()
            .unwrap(),
    ])
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/orders",
            get(|t: AccessToken| async move { t.client_id().to_string() }),
        )
        .route_layer(Guard::new(set).requiring(Requirement::any(["orders:read", "orders.read"])));
    for (token, client) in [
        (okta_key.sign(okta.typ, &okta.claims), okta.client_id),
        (hydra_key.sign(hydra.typ, &hydra.claims), hydra.client_id),
    ] {
        let resp = app
            .clone()
            .oneshot(
                Request::get("/orders")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], client.as_bytes());
    }
    let mut other = okta.claims.clone();
    other["iss"] = json!("https://other.okta.com/oauth2/default");
    let resp = app
        .oneshot(
            Request::get("/orders")
                .header(
                    "authorization",
                    format!("Bearer {}", okta_key.sign(None, &other)),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("wrong issuer"), "{challenge}");
}
