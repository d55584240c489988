//! The OpenAPI description, `openapi/tessera.yaml`, held against the running server so that the
//! two cannot drift apart (issue 12).
//!
//! The walk calls every operation of the spec, public ones on the main listener and `/admin/v1`
//! ones on the admin listener (`--admin-listen`), each with at least one success and, where the
//! spec lists any, one client error. Every answer must have a status the spec lists for its
//! operation, the headers the spec requires, a content type the spec gives for that status, and
//! a body valid against the schema given for it: JSON Schema 2020-12 with the spec's components
//! next to it, checked by `jsonschema` with formats (`date-time`) on. A request that matches no
//! operation of the spec fails the walk, and so does an operation of the spec it never calls: a
//! new endpoint needs both a spec entry and a call here.
//!
//! The walk does not stop at the first disagreement: it reports them all at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::harness::*;
use crate::harness::{both_backends, e2e_test};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/tessera.yaml");

/// The HTTP methods an OpenAPI path item may hold operations for (lower case, as in the spec).
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const FORM: &str = "application/x-www-form-urlencoded";
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
/// A well-formed client id no client has.
const NO_CLIENT: &str = "tc_nosuchclient0000000000";

/// An operation of the spec: its method (lower case) and path template.
type Operation = (String, String);

/// `openapi/tessera.yaml`, as JSON.
struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Spec {
        let text = std::fs::read_to_string(SPEC).unwrap();
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{SPEC} is not valid YAML: {e}"));
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1.")),
            "{SPEC} is OpenAPI 3.1"
        );
        Spec { doc }
    }

    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.doc["paths"].as_object().expect("paths")
    }

    /// Every operation the spec describes.
    fn operations(&self) -> BTreeSet<Operation> {
        self.paths()
            .iter()
            .flat_map(|(template, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| (m.to_string(), template.clone()))
            })
            .collect()
    }

    /// `v`, or what its `$ref` (a pointer into this document) names, followed to the end.
    fn deref<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs: {r}"));
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// The path template that `path` (without its query) matches; when several do, the one with
    /// the most literal segments (`/keys/rotate` before `/keys/{kid}`).
    fn template_of(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.paths()
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (t, s) in parts.iter().zip(&segments) {
                    if t.starts_with('{') && t.ends_with('}') {
                        if s.is_empty() {
                            return None;
                        }
                    } else if t == s {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t.clone())
    }

    /// A validator for `schema` with the spec's components beside it, so that its
    /// `#/components/schemas/…` references resolve as they do in the spec.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.clone();
        root.as_object_mut().expect("a schema is an object").insert(
            "components".into(),
            json!({"schemas": self.doc["components"]["schemas"]}),
        );
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("a schema of the spec does not compile: {e}\n{schema}"))
    }
}

/// An answer, read whole.
struct Answer {
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn str(&self, member: &str) -> String {
        self.body[member].as_str().unwrap_or_default().to_owned()
    }
}

/// The walk: sends requests, checks each answer against the spec, and remembers what it saw.
struct Walk<'s> {
    spec: &'s Spec,
    client: reqwest::Client,
    public: String,
    admin: String,
    /// The statuses seen, per operation.
    seen: BTreeMap<Operation, BTreeSet<u16>>,
    /// Every disagreement, reported together at the end.
    failures: Vec<String>,
    /// Compiled schemas, by where they are in the spec.
    validators: HashMap<String, jsonschema::Validator>,
    calls: usize,
}

impl<'s> Walk<'s> {
    fn new(spec: &'s Spec, server: &Server) -> Walk<'s> {
        Walk {
            spec,
            client: http(),
            public: server.base.clone(),
            admin: server.admin.clone().expect("the admin listener is on"),
            seen: BTreeMap::new(),
            failures: Vec::new(),
            validators: HashMap::new(),
            calls: 0,
        }
    }

    /// A request to the public listener.
    fn public(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.public))
    }

    /// A request to the admin API (`path` after `/admin/v1`), with `token` if any.
    fn admin(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}/admin/v1{path}", self.admin));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send `req`, expecting `expect`, and hold the answer against the spec.
    async fn call(&mut self, req: RequestBuilder, expect: u16) -> Answer {
        let req = req.build().unwrap();
        let method = req.method().as_str().to_ascii_lowercase();
        let url = req.url().clone();
        let what = format!(
            "{} {}{}",
            req.method(),
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        let on_admin = url.as_str().starts_with(&self.admin);
        let op = self
            .spec
            .template_of(url.path())
            .filter(|t| self.spec.paths()[t].get(&method).is_some())
            .map(|t| (method, t));
        match &op {
            None => self
                .failures
                .push(format!("{what}: no operation in the spec matches it")),
            Some((_, t)) if t.starts_with("/admin/") != on_admin => self.failures.push(format!(
                "{what}: sent to the wrong listener for {t} (the test's mistake)"
            )),
            Some(_) => {}
        }
        let sent = request_body(&req);
        let resp = self.client.execute(req).await.unwrap();
        self.calls += 1;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        if status != expect {
            self.failures.push(format!(
                "{what}: expected {expect}, got {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        let body = match &op {
            Some(op) => {
                self.seen.entry(op.clone()).or_default().insert(status);
                if (200..300).contains(&status) {
                    self.check_request(op, &what, sent);
                }
                self.check(op, &what, status, &headers, &bytes)
            }
            None => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        Answer { headers, body }
    }

    /// A request the server accepted must be one the spec allows: its body valid against the
    /// spec's request schema for its content type (so the spec is no stricter than the server).
    fn check_request(
        &mut self,
        (method, template): &Operation,
        what: &str,
        sent: Option<(String, Value)>,
    ) {
        let spec = self.spec;
        let Some(request_body) = spec.paths()[template][method].get("requestBody") else {
            if sent.is_some() {
                self.failures.push(format!(
                    "{what}: accepted a body where the spec describes none"
                ));
            }
            return;
        };
        let request_body = spec.deref(request_body);
        let Some((content_type, value)) = sent else {
            if request_body["required"] == true {
                self.failures.push(format!(
                    "{what}: accepted no body where the spec requires one"
                ));
            }
            return;
        };
        let Some(schema) = request_body["content"]
            .get(&content_type)
            .and_then(|m| m.get("schema"))
        else {
            self.failures.push(format!(
                "{what}: accepted a {content_type} body, which the spec does not give"
            ));
            return;
        };
        let key = format!(
            "{} {template} request {content_type}",
            method.to_uppercase()
        );
        let validator = self
            .validators
            .entry(key)
            .or_insert_with(|| spec.validator(schema));
        for e in validator.iter_errors(&value) {
            self.failures.push(format!(
                "{what}: the server accepted a body the spec's request schema refuses: at '{}': {e}\n  {value}",
                e.instance_path()
            ));
        }
    }

    /// Hold one answer against the spec's response for `status`; returns the body as JSON
    /// (`null` when empty or not JSON).
    fn check(
        &mut self,
        (method, template): &Operation,
        what: &str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Value {
        let spec = self.spec;
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let responses = &spec.paths()[template][method]["responses"];
        let Some(response) = responses.get(status.to_string()) else {
            let listed: Vec<&String> = responses
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            self.failures.push(format!(
                "{what}: answered {status}, which the spec does not list for {} {template} \
                 (it lists {listed:?}): {}",
                method.to_uppercase(),
                String::from_utf8_lossy(body)
            ));
            return parsed.unwrap_or(Value::Null);
        };
        let response = spec.deref(response);
        let at = format!("{} {template} {status}", method.to_uppercase());

        // Headers: the required ones present, every one the spec describes valid.
        if let Some(described) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in described {
                let header = spec.deref(header);
                let Some(value) = headers.get(name.to_ascii_lowercase().as_str()) else {
                    if header["required"] == true {
                        self.failures
                            .push(format!("{what}: no {name} header, which {at} requires"));
                    }
                    continue;
                };
                let Some(schema) = header.get("schema") else {
                    continue;
                };
                let text = value.to_str().unwrap_or_default();
                let value = match schema["type"].as_str() {
                    Some("integer") => text.parse::<i64>().map_or(json!(text), Value::from),
                    _ => json!(text),
                };
                let key = format!("{at} header {name}");
                let validator = self
                    .validators
                    .entry(key)
                    .or_insert_with(|| spec.validator(schema));
                for e in validator.iter_errors(&value) {
                    self.failures
                        .push(format!("{what}: header {name}: {value}: {e}"));
                }
            }
        }

        // Body: a content type the spec gives, valid against its schema; none when it gives none.
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if !body.is_empty() {
                self.failures.push(format!(
                    "{what}: a body ({content_type:?}) where {at} describes none: {}",
                    String::from_utf8_lossy(body)
                ));
            }
            return parsed.unwrap_or(Value::Null);
        };
        let Some(media) = content_type.as_deref().and_then(|ct| content.get(ct)) else {
            let listed: Vec<&String> = content.keys().collect();
            self.failures.push(format!(
                "{what}: content type {content_type:?}, not one of {listed:?} that {at} gives: {}",
                String::from_utf8_lossy(body)
            ));
            return parsed.unwrap_or(Value::Null);
        };
        let Some(value) = parsed else {
            self.failures.push(format!(
                "{what}: the body is not JSON: {}",
                String::from_utf8_lossy(body)
            ));
            return Value::Null;
        };
        if let Some(schema) = media.get("schema") {
            let key = format!("{at} {}", content_type.unwrap_or_default());
            let validator = self
                .validators
                .entry(key)
                .or_insert_with(|| spec.validator(schema));
            for e in validator.iter_errors(&value) {
                self.failures.push(format!(
                    "{what}: the body does not match the schema of {at}: at '{}': {e}\n  {value}",
                    e.instance_path()
                ));
            }
        }
        if headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v == "application/problem+json")
            && value["status"] != status
        {
            self.failures.push(format!(
                "{what}: the problem's status is not the HTTP status: {value}"
            ));
        }
        value
    }

    /// The end of the walk: every operation called, with a success and (where the spec lists
    /// any) a client error; then every disagreement found, at once.
    fn finish(mut self) {
        for op in self.spec.operations() {
            let (method, template) = &op;
            let Some(statuses) = self.seen.get(&op) else {
                self.failures.push(format!(
                    "{} {template}: in the spec but never called by this test",
                    method.to_uppercase()
                ));
                continue;
            };
            let listed: Vec<u16> = self.spec.paths()[template][method]["responses"]
                .as_object()
                .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
                .unwrap_or_default();
            if !statuses.iter().any(|s| (200..300).contains(s)) {
                self.failures.push(format!(
                    "{} {template}: no success seen ({statuses:?})",
                    method.to_uppercase()
                ));
            }
            let errors_listed = listed.iter().any(|s| (400..500).contains(s));
            if errors_listed && !statuses.iter().any(|s| (400..500).contains(s)) {
                self.failures.push(format!(
                    "{} {template}: no client error exercised ({statuses:?})",
                    method.to_uppercase()
                ));
            }
        }
        let coverage: Vec<String> = self
            .seen
            .iter()
            .map(|((m, t), s)| format!("  {:<6} {t} {s:?}", m.to_uppercase()))
            .collect();
        eprintln!(
            "{} calls, {} of the spec's {} operations:\n{}",
            self.calls,
            self.seen.len(),
            self.spec.operations().len(),
            coverage.join("\n")
        );
        assert!(
            self.failures.is_empty(),
            "{} disagreement(s) between the server and openapi/tessera.yaml:\n- {}",
            self.failures.len(),
            self.failures.join("\n- ")
        );
    }
}

/// A request's body as the spec's schemas see it, with its content type: JSON as it is, a form
/// as an object of its (decoded) parameters.
fn request_body(req: &reqwest::Request) -> Option<(String, Value)> {
    let bytes = req.body()?.as_bytes()?;
    let content_type = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let content_type = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let value = if content_type == FORM {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|s| s.into_owned())
                .ok()
        };
        let mut params = serde_json::Map::new();
        for pair in std::str::from_utf8(bytes)
            .ok()?
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode(name)?, Value::from(decode(value)?));
        }
        Value::Object(params)
    } else {
        serde_json::from_slice(bytes).ok()?
    };
    Some((content_type, value))
}

fn form(req: RequestBuilder, body: &str) -> RequestBuilder {
    req.header(CONTENT_TYPE, FORM).body(body.to_owned())
}

/// A client for the admin audience with `scope`, and a token for it.
async fn admin_client(env: &EnvConfig, server: &Server, scope: &str) -> (TestClient, String) {
    let audience = format!("{}/admin", server.base);
    let c = env.create_client(&["--name", "ops", "--scope", scope, "--audience", &audience]);
    let form = format!("grant_type=client_credentials&resource={audience}");
    assert!(
        status_becomes(server, &c, &form, 200, Duration::from_secs(10)).await,
        "the {scope} client gets tokens"
    );
    let r = token_basic(server, &c, &form).await;
    let b: Value = r.json().await.unwrap();
    (c, b["access_token"].as_str().unwrap().to_string())
}

both_backends! {
    async fn every_operation_answers_as_the_spec_says(env) {
        walk(&env).await;
    }
}

e2e_test! {
    fn the_schemas_refuse_what_the_server_must_not_send() {
        schemas_bite();
    }
}

/// The walk is only as strict as its validators: a `$ref` that resolved to nothing, or formats
/// left unchecked, would let every body pass. So: a body the server sends passes, and each
/// thing the spec rules out fails.
fn schemas_bite() {
    let spec = Spec::load();
    let schema =
        |name: &str| spec.validator(&json!({"$ref": format!("#/components/schemas/{name}")}));
    let client = json!({
        "client_id": "tc_Q2xvY2sgd29yayBvcmFuZ2U", "name": "billing", "scopes": ["s2s:internal"],
        "audiences": [], "token_ttl": 300, "enabled": true, "expires_at": null,
        "created_at": "2027-01-31T00:00:00Z", "updated_at": "2027-01-31T00:00:00Z",
        "token_endpoint_auth_method": "client_secret_basic",
        "secrets": [{"id": "ts_abc", "created_at": "2027-01-31T00:00:00Z", "expires_at": null, "revoked_at": null}],
    });
    let with = |member: &str, value: Value| {
        let mut c = client.clone();
        c[member] = value;
        c
    };
    let without = |member: &str| {
        let mut c = client.clone();
        c.as_object_mut().unwrap().remove(member);
        c
    };
    assert!(schema("Client").is_valid(&client));
    assert!(schema("NewClient").is_valid(&with("client_secret", json!("tss_x"))));
    for (name, bad) in [
        ("Client", with("created_at", json!("1795555407"))),
        ("Client", with("client_secret", json!("tss_x"))),
        (
            "Client",
            with("jwks_uri", json!("https://keys.example/jwks.json")),
        ),
        ("Client", without("secrets")),
        ("NewClient", client.clone()),
        (
            "ClientPage",
            json!({"clients": [with("colour", json!("red"))], "next_after": null}),
        ),
        (
            "Problem",
            json!({"type": "about:blank", "title": "Not Found", "status": 404}),
        ),
        (
            "OAuthError",
            json!({"error": "invalid_request", "colour": "red"}),
        ),
        (
            "IntrospectionInactive",
            json!({"active": false, "scope": "a"}),
        ),
    ] {
        assert!(!schema(name).is_valid(&bad), "{name} accepts {bad}");
    }
}

async fn walk(env: &TestEnv) {
    let spec = Spec::load();
    let server = env.start(&["--admin-listen", "127.0.0.1:0"]);
    let svc = env.create_client(&["--name", "svc", "--scope", "s2s:internal"]);
    assert!(
        status_becomes(
            &server,
            &svc,
            "grant_type=client_credentials",
            200,
            Duration::from_secs(10)
        )
        .await,
        "the svc client gets tokens"
    );
    let (_ops, admin) = admin_client(env, &server, "tessera:admin").await;
    let (_ro, read) = admin_client(env, &server, "tessera:admin:read").await;
    let mut w = Walk::new(&spec, &server);
    public_endpoints(&mut w, &svc).await;
    admin_api(&mut w, &svc, &admin, &read).await;
    w.finish();
}

/// The public listener: the OAuth endpoints, the key set, discovery and health.
async fn public_endpoints(w: &mut Walk<'_>, svc: &TestClient) {
    for path in [
        "/healthz",
        "/readyz",
        "/jwks.json",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        w.call(w.public(Method::GET, path), 200).await;
    }

    // The token endpoint.
    let basic = |w: &Walk<'_>, path: &str| {
        w.public(Method::POST, path)
            .basic_auth(&svc.id, Some(&svc.secret))
    };
    let issued = w
        .call(
            form(basic(w, "/oauth/token"), "grant_type=client_credentials"),
            200,
        )
        .await;
    let token = issued.str("access_token");
    // RFC 6749 §3.2: parameters the server does not know are ignored, repeated or not.
    w.call(
        form(
            basic(w, "/oauth/token"),
            "grant_type=client_credentials&foo=bar&foo=baz&x%C3%A9=%F0%9F%94%91&token_type_hint=x",
        ),
        200,
    )
    .await;
    let post = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        svc.id, svc.secret
    );
    w.call(form(w.public(Method::POST, "/oauth/token"), &post), 200)
        .await;
    for (body, status) in [
        ("grant_type=password", 400),
        (&format!("grant_type={JWT_BEARER}") as &str, 400),
        ("grant_type=client_credentials&scope=not-granted", 400),
        ("grant_type=client_credentials&scope=a&scope=b", 400),
        ("grant_type=client_credentials&x=%zz", 400),
    ] {
        w.call(form(basic(w, "/oauth/token"), body), status).await;
    }
    w.call(
        form(
            w.public(Method::POST, "/oauth/token"),
            "grant_type=client_credentials",
        ),
        401,
    )
    .await;
    w.call(
        form(
            w.public(Method::POST, "/oauth/token")
                .basic_auth(&svc.id, Some("tss_not-the-secret")),
            "grant_type=client_credentials",
        ),
        401,
    )
    .await;

    // Introspection and revocation: an empty `token` is no token.
    let active = w
        .call(
            form(basic(w, "/oauth/introspect"), &format!("token={token}")),
            200,
        )
        .await;
    assert_eq!(active.body["active"], true, "{}", active.body);
    w.call(
        form(basic(w, "/oauth/introspect"), "token=not.a.token"),
        200,
    )
    .await;
    for body in ["token=", "token_type_hint=access_token", "token=a&token=b"] {
        w.call(form(basic(w, "/oauth/introspect"), body), 400).await;
        w.call(form(basic(w, "/oauth/revoke"), body), 400).await;
    }
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        w.call(
            form(w.public(Method::POST, path), &format!("token={token}")),
            401,
        )
        .await;
    }
    w.call(
        form(basic(w, "/oauth/revoke"), &format!("token={token}")),
        200,
    )
    .await;

    // The revocation feed.
    let feed = w
        .call(
            w.public(Method::GET, "/oauth/revocations")
                .basic_auth(&svc.id, Some(&svc.secret)),
            200,
        )
        .await;
    assert_eq!(
        feed.body["revoked"].as_array().map(Vec::len),
        Some(1),
        "{}",
        feed.body
    );
    w.call(
        w.public(Method::GET, "/oauth/revocations?since=abc")
            .basic_auth(&svc.id, Some(&svc.secret)),
        400,
    )
    .await;
    w.call(w.public(Method::GET, "/oauth/revocations"), 401)
        .await;
}

/// The admin listener: every operation of `/admin/v1`, with `admin` (`tessera:admin`) and
/// `read` (`tessera:admin:read`) tokens.
async fn admin_api(w: &mut Walk<'_>, svc: &TestClient, admin: &str, read: &str) {
    let a = Some(admin);
    w.call(w.admin(Method::GET, "", None), 200).await;

    // Without a token every operation is 401, and with a read-only token every change is 403.
    let every = [
        (Method::GET, "/clients".to_string()),
        (Method::POST, "/clients".into()),
        (Method::GET, format!("/clients/{NO_CLIENT}")),
        (Method::PATCH, format!("/clients/{NO_CLIENT}")),
        (Method::DELETE, format!("/clients/{NO_CLIENT}")),
        (Method::POST, format!("/clients/{NO_CLIENT}/enable")),
        (Method::POST, format!("/clients/{NO_CLIENT}/disable")),
        (Method::POST, format!("/clients/{NO_CLIENT}/secrets")),
        (
            Method::DELETE,
            format!("/clients/{NO_CLIENT}/secrets/ts_none"),
        ),
        (Method::GET, "/keys".into()),
        (Method::POST, "/keys/rotate".into()),
        (Method::GET, "/trusts".into()),
        (Method::POST, "/trusts".into()),
        (Method::GET, "/trusts/none".into()),
        (Method::DELETE, "/trusts/none".into()),
        (Method::GET, "/api-keys".into()),
        (Method::POST, "/api-keys".into()),
        (Method::GET, "/api-keys/ak_none".into()),
        (Method::DELETE, "/api-keys/ak_none".into()),
        (Method::GET, "/audit".into()),
    ];
    for (method, path) in &every {
        w.call(w.admin(method.clone(), path, None), 401).await;
        if *method != Method::GET {
            w.call(w.admin(method.clone(), path, Some(read)), 403).await;
        }
    }
    // Not a token of this server; another scheme; two Authorization headers.
    w.call(w.admin(Method::GET, "/clients", Some("not.a.token")), 401)
        .await;
    w.call(
        w.admin(Method::GET, "/keys", None)
            .basic_auth("ops", Some("secret")),
        401,
    )
    .await;
    w.call(
        w.admin(Method::GET, "/keys", a)
            .header("authorization", format!("Bearer {admin}")),
        400,
    )
    .await;

    // Clients: list and create.
    w.call(w.admin(Method::GET, "/clients", Some(read)), 200)
        .await;
    let page = w
        .call(w.admin(Method::GET, "/clients?limit=1", a), 200)
        .await;
    assert!(page.body["next_after"].is_string(), "{}", page.body);
    for query in ["limit=0", "limit=1001", "limit=abc", "colour=red"] {
        w.call(w.admin(Method::GET, &format!("/clients?{query}"), a), 400)
            .await;
    }
    let created = w
        .call(
            w.admin(Method::POST, "/clients", a).json(&json!({
                "name": "billing", "scopes": ["s2s:internal"], "audiences": ["https://billing.internal"],
                "token_ttl": 120, "expires_at": "2099-01-01T00:00:00Z", "claims": {"team": "billing"},
                "max_tokens_per_minute": 600})),
            201,
        )
        .await;
    let id = created.str("client_id");
    let first_etag = created.header("etag");
    assert_eq!(
        created.header("location"),
        format!("/admin/v1/clients/{id}")
    );
    let keyed = w
        .call(
            w.admin(Method::POST, "/clients", a).json(&json!({
                "name": "signer", "scopes": ["s2s:internal"], "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": "https://keys.example/jwks.json"})),
            201,
        )
        .await;
    let keyed = keyed.str("client_id");
    for body in [
        json!({"name": "x"}),
        json!({"name": "x", "scopes": ["a"], "colour": "red"}),
        json!({"name": "x", "scopes": ["a"], "expires_at": "tomorrow"}),
        json!({"name": "x", "scopes": ["a"], "token_ttl": 999_999}),
        json!({"name": "x", "scopes": ["a"], "jwks_uri": "https://keys.example/jwks.json"}),
        json!({"name": "x", "scopes": ["a"], "claims": {"sub": "me"}}),
    ] {
        w.call(w.admin(Method::POST, "/clients", a).json(&body), 400)
            .await;
    }
    w.call(
        w.admin(Method::POST, "/clients", a)
            .header(CONTENT_TYPE, "text/plain")
            .body("name=x"),
        415,
    )
    .await;
    w.call(
        w.admin(Method::POST, "/clients", a)
            .header(CONTENT_TYPE, "application/json")
            .body(format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024))),
        413,
    )
    .await;

    // One client: show, change (If-Match), enable, disable.
    let client = format!("/clients/{id}");
    let shown = w.call(w.admin(Method::GET, &client, Some(read)), 200).await;
    assert_eq!(shown.header("etag"), first_etag, "unchanged: the same ETag");
    w.call(w.admin(Method::GET, &format!("/clients/{keyed}"), a), 200)
        .await;
    w.call(
        w.admin(Method::GET, &format!("/clients/{NO_CLIENT}"), a),
        404,
    )
    .await;
    let patch = |w: &Walk<'_>, path: &str, etag: Option<&str>| {
        let r = w.admin(Method::PATCH, path, a);
        match etag {
            Some(e) => r.header("if-match", e),
            None => r,
        }
    };
    w.call(patch(w, &client, None).json(&json!({"token_ttl": 60})), 428)
        .await;
    let changed = w
        .call(
            patch(w, &client, Some(&first_etag))
                .json(&json!({"token_ttl": 60, "name": "billing-v2", "expires_at": null})),
            200,
        )
        .await;
    assert_ne!(
        changed.header("etag"),
        first_etag,
        "a change makes a new ETag"
    );
    w.call(
        patch(w, &client, Some(&first_etag)).json(&json!({"token_ttl": 30})),
        412,
    )
    .await;
    w.call(
        patch(w, &client, Some("\"garbage\"")).json(&json!({"token_ttl": 30})),
        412,
    )
    .await;
    w.call(
        patch(w, &format!("/clients/{NO_CLIENT}"), Some("*")).json(&json!({"token_ttl": 30})),
        404,
    )
    .await;
    w.call(
        patch(w, &client, Some("*")).json(&json!({"token_ttl": 0})),
        400,
    )
    .await;
    w.call(
        patch(w, &client, Some("*"))
            .header(CONTENT_TYPE, "application/merge-patch+json")
            .body("{}"),
        415,
    )
    .await;
    w.call(w.admin(Method::POST, &format!("{client}/disable"), a), 200)
        .await;
    w.call(w.admin(Method::POST, &format!("{client}/enable"), a), 200)
        .await;
    for action in ["enable", "disable"] {
        let path = format!("{client}/{action}");
        w.call(
            w.admin(Method::POST, &path, a)
                .header("if-match", &first_etag),
            412,
        )
        .await;
        let path = format!("/clients/{NO_CLIENT}/{action}");
        w.call(w.admin(Method::POST, &path, a), 404).await;
    }

    // Secrets: rotate (with and without a body), revoke.
    let secrets = format!("{client}/secrets");
    let rotated = w
        .call(
            w.admin(Method::POST, &secrets, a)
                .json(&json!({"grace_seconds": 60})),
            201,
        )
        .await;
    let secret_id = rotated.str("secret_id");
    w.call(w.admin(Method::POST, &secrets, a), 201).await;
    w.call(
        w.admin(Method::POST, &secrets, a)
            .json(&json!({"grace_seconds": 99_999_999})),
        400,
    )
    .await;
    w.call(
        w.admin(Method::POST, &format!("/clients/{keyed}/secrets"), a),
        400,
    )
    .await;
    w.call(
        w.admin(Method::POST, &format!("/clients/{NO_CLIENT}/secrets"), a),
        404,
    )
    .await;
    w.call(
        w.admin(Method::POST, &secrets, a)
            .header(CONTENT_TYPE, "text/plain")
            .body("grace=1"),
        415,
    )
    .await;
    let one_secret = format!("{secrets}/{secret_id}");
    w.call(w.admin(Method::DELETE, &one_secret, a), 204).await;
    w.call(w.admin(Method::DELETE, &one_secret, a), 404).await;
    w.call(
        w.admin(
            Method::DELETE,
            &format!("/clients/{NO_CLIENT}/secrets/{secret_id}"),
            a,
        ),
        404,
    )
    .await;

    // Signing keys.
    w.call(w.admin(Method::GET, "/keys", Some(read)), 200).await;
    w.call(
        w.admin(Method::POST, "/keys/rotate", a)
            .json(&json!({"alg": "HS256"})),
        400,
    )
    .await;
    w.call(
        w.admin(Method::POST, "/keys/rotate", a)
            .json(&json!({"alg": "ES256"})),
        201,
    )
    .await;
    // A rotation is under way now: the new key is published, not yet signing.
    w.call(w.admin(Method::POST, "/keys/rotate", a), 409).await;

    // Trusts.
    w.call(w.admin(Method::GET, "/trusts", Some(read)), 200)
        .await;
    let trust = w
        .call(
            w.admin(Method::POST, "/trusts", a).json(&json!({
                "name": "ci", "issuer": "https://token.actions.example", "audience": "tessera",
                "subject": "repo:acme/app:*", "claims": {"ref": "refs/heads/main"}, "client_id": id})),
            201,
        )
        .await;
    let trust_id = trust.str("id");
    w.call(
        w.admin(Method::POST, "/trusts", a).json(&json!({
            "name": "k8s", "issuer": "https://k8s.example", "jwks_uri": "https://k8s.example/keys",
            "audience": "tessera", "subject": "system:serviceaccount:ns:sa", "max_token_age": 600,
            "client_id": id})),
        201,
    )
    .await;
    let trust_body = |name: &str, client: &str| {
        json!({"name": name, "issuer": "https://ci.example", "audience": "tessera",
               "subject": "x", "client_id": client})
    };
    w.call(
        w.admin(Method::POST, "/trusts", a)
            .json(&trust_body("other", NO_CLIENT)),
        404,
    )
    .await;
    w.call(
        w.admin(Method::POST, "/trusts", a)
            .json(&trust_body("ci", &id)),
        409,
    )
    .await;
    w.call(
        w.admin(Method::POST, "/trusts", a)
            .json(&json!({"name": "none", "audience": "tessera", "subject": "x", "client_id": id})),
        400,
    )
    .await;
    w.call(w.admin(Method::GET, "/trusts/ci", Some(read)), 200)
        .await;
    w.call(w.admin(Method::GET, &format!("/trusts/{trust_id}"), a), 200)
        .await;
    w.call(w.admin(Method::GET, "/trusts/nosuch", a), 404).await;
    w.call(w.admin(Method::DELETE, "/trusts/ci", a), 204).await;
    w.call(w.admin(Method::DELETE, "/trusts/ci", a), 404).await;

    // Managed API keys; one is introspected on the public listener.
    w.call(w.admin(Method::GET, "/api-keys", Some(read)), 200)
        .await;
    let key = w
        .call(
            w.admin(Method::POST, "/api-keys", a).json(&json!({
                "name": "legacy", "scopes": ["orders:read"], "audiences": ["https://orders.internal"],
                "expires_at": "2099-01-01T00:00:00Z", "claims": {"tier": "gold"}})),
            201,
        )
        .await;
    let key_id = key.str("id");
    let introspected = w
        .call(
            form(
                w.public(Method::POST, "/oauth/introspect")
                    .basic_auth(&svc.id, Some(&svc.secret)),
                &format!("token={}", key.str("api_key")),
            ),
            200,
        )
        .await;
    assert_eq!(
        introspected.body["token_type"], "api_key",
        "{}",
        introspected.body
    );
    w.call(
        w.admin(Method::POST, "/api-keys", a)
            .json(&json!({"name": "x"})),
        400,
    )
    .await;
    w.call(w.admin(Method::GET, &format!("/api-keys/{key_id}"), a), 200)
        .await;
    w.call(w.admin(Method::GET, "/api-keys/legacy", Some(read)), 200)
        .await;
    w.call(w.admin(Method::GET, "/api-keys/ak_nosuch", a), 404)
        .await;
    w.call(
        w.admin(Method::DELETE, &format!("/api-keys/{key_id}"), a),
        204,
    )
    .await;
    w.call(
        w.admin(Method::DELETE, &format!("/api-keys/{key_id}"), a),
        409,
    )
    .await;
    w.call(w.admin(Method::DELETE, "/api-keys/ak_nosuch", a), 404)
        .await;

    // Audit.
    w.call(w.admin(Method::GET, "/audit", Some(read)), 200)
        .await;
    let filtered = w
        .call(
            w.admin(
                Method::GET,
                &format!(
                    "/audit?client_id={id}&action=client.update&since=2000-01-01T00%3A00%3A00Z&limit=5"
                ),
                a,
            ),
            200,
        )
        .await;
    assert_eq!(
        filtered.body["events"].as_array().map(Vec::len),
        Some(1),
        "{}",
        filtered.body
    );
    for query in ["since=yesterday", "limit=0", "colour=red"] {
        w.call(w.admin(Method::GET, &format!("/audit?{query}"), a), 400)
            .await;
    }

    // Delete: with a stale ETag nothing happens; with the current one, or none, it is gone.
    w.call(
        w.admin(Method::DELETE, &client, a)
            .header("if-match", &first_etag),
        412,
    )
    .await;
    let now = w.call(w.admin(Method::GET, &client, a), 200).await;
    w.call(
        w.admin(Method::DELETE, &client, a)
            .header("if-match", now.header("etag")),
        204,
    )
    .await;
    w.call(w.admin(Method::DELETE, &client, a), 404).await;
    w.call(
        w.admin(Method::DELETE, &format!("/clients/{keyed}"), a),
        204,
    )
    .await;
}
