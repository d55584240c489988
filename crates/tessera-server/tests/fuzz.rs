//! Property tests of the token server's parsers of untrusted input (issue 14, item 5): the form
//! parser, the Basic header, scopes, client-assertion claims and trust subject patterns.
//!
//! Each `#[test]` is one fuzz target run through [`fuzz`]: 1,024 cases in the normal
//! suite, `TESSERA_FUZZ_CASES` of them when set (`benches/fuzz.sh` runs millions in release).
//! Where a property can be stated it is checked against a small model written here, not just
//! "does not panic" (proptest reports a panic as a failure, with the shrunk input).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use tessera_server::oauth::assertion::{
    check_client_assertion, peek_claims, ClientAssertionRules, LEEWAY, MAX_ASSERTION_BYTES,
};
use tessera_server::oauth::client_auth::{
    extract, extract_any, Authorization, BodyCredentials, Credentials,
};
use tessera_server::oauth::form::{self, decode_component, FormError};
use tessera_server::oauth::grant::TOKEN_PARAMETERS;
use tessera_server::oauth::trust::{claim_matches, SubjectPattern};
use tessera_server::oauth::{AuthMethod, ErrorCode, ScopeSet, TokenParams, TokenRequest};

/// Cases per target in the normal suite: each target stays well under a second in debug.
const SUITE_CASES: u32 = 1024;

/// Run one fuzz target: `SUITE_CASES` cases, or `TESSERA_FUZZ_CASES` when set. Prints one line
/// `fuzz NAME: N cases in S s` (read by `benches/fuzz.sh`) and fails with the shrunk input.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SUITE_CASES);
    // No regression files written into the source tree: a failure prints its minimal input.
    let config = Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    };
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, test);
    println!(
        "fuzz {name}: {cases} cases in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Generators and models shared by the targets.

/// Bytes that look like a form body often enough to reach past the first check: separators,
/// escapes (valid or not), known names, and any byte at all.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        select(&b"&&==%%++:. aZ09~-_"[..]).prop_map(|b| vec![b]),
        any::<u8>().prop_map(|b| format!("%{b:02X}").into_bytes()),
        any::<u8>().prop_map(|b| format!("%{b:02x}").into_bytes()),
        select(TOKEN_PARAMETERS).prop_map(|n| n.as_bytes().to_vec()),
        select(&["token", "token_type_hint", "x"][..]).prop_map(|n| n.as_bytes().to_vec()),
    ];
    prop::collection::vec(atom, 0..48).prop_map(|v| v.concat())
}

/// Text with the characters that matter to form and Basic encoding, and any other.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z:+%&= ]{0,12}",
        "[\\x00-\\x7f]{0,12}",
        "[a-zé€😀:%+ ]{0,12}",
    ]
}

/// Form-encode `s`. Wherever two spellings mean the same thing, `mask` picks one (plain or
/// `%XX`, upper- or lower-case hex, `+` or `%20`), so bodies use every spelling a client may
/// send. `=` is left plain in values when the mask says so (only the first `=` splits a pair).
fn form_encode(s: &str, mask: u64, value: bool) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let escape = (mask >> (i % 64)) & 1 == 1;
        let lower = (mask >> ((i + 29) % 64)) & 1 == 1;
        let plain = match b {
            b' ' => Some('+'),
            b'&' | b'%' | b'+' => None,
            b'=' => value.then_some('='),
            0x21..=0x7E => Some(b as char),
            _ => None,
        };
        match plain {
            Some(c) if !escape => out.push(c),
            _ if lower => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What `decode_component` must do, written out plainly: `%XX` a byte, `+` a space, other
/// printable ASCII itself; the first fault in the text decides the error; the result UTF-8.
fn model_decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or(FormError::BadPercent)?;
                let hex = std::str::from_utf8(hex).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            0x21..=0x7E => {
                out.push(raw[i]);
                i += 1;
            }
            _ => return Err(FormError::RawByte),
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// What `form::parse` must do: pairs split at `&` (empty ones skipped) and at the first `=`;
/// every name decoded; a known name's value decoded, an unknown one's only checked for broken
/// escapes and raw bytes; a known name given twice is an error unless repeatable.
fn model_parse(
    body: &[u8],
    known: &[&'static str],
    repeatable: &[&str],
) -> Result<Vec<(&'static str, String)>, FormError> {
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let name = model_decode(name)?;
        match known.iter().find(|k| **k == name) {
            Some(k) => {
                if pairs.iter().any(|(n, _)| n == k) && !repeatable.contains(k) {
                    return Err(FormError::Repeated(name));
                }
                pairs.push((k, model_decode(value)?));
            }
            None => match model_decode(value) {
                Ok(_) | Err(FormError::NotUtf8) => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(pairs)
}

/// One pair of a generated form: a name (known, or anything), a value, how to spell them, and
/// whether an empty value is written as `name=` or as a bare `name`.
#[derive(Debug, Clone)]
struct Pair {
    name: String,
    value: String,
    mask: u64,
    bare: bool,
}

fn pairs(known: &'static [&'static str]) -> impl Strategy<Value = Vec<Pair>> {
    let name = prop_oneof![
        4 => select(known).prop_map(str::to_owned),
        1 => tricky_text(),
    ];
    let value = prop_oneof![Just(String::new()), tricky_text()];
    let pair =
        (name, value, any::<u64>(), any::<bool>()).prop_map(|(name, value, mask, bare)| Pair {
            name,
            value,
            mask,
            bare,
        });
    prop::collection::vec(pair, 0..8)
}

/// The body for `pairs`, with `extra_amps` stray `&` between and around them.
fn encode_pairs(pairs: &[Pair], extra_amps: &[usize]) -> Vec<u8> {
    let mut body = String::new();
    for (i, p) in pairs.iter().enumerate() {
        body.push_str(&"&".repeat(extra_amps.get(i).copied().unwrap_or(0)));
        if i > 0 {
            body.push('&');
        }
        body.push_str(&form_encode(&p.name, p.mask, false));
        if !(p.bare && p.value.is_empty()) {
            body.push('=');
            body.push_str(&form_encode(&p.value, p.mask.rotate_left(17), true));
        }
    }
    body.push_str(&"&".repeat(extra_amps.last().copied().unwrap_or(0)));
    body.into_bytes()
}

/// What parsing `pairs` must give: the known pairs in order, or the first repeated known name
/// that may not repeat.
fn expected_pairs(
    pairs: &[Pair],
    known: &[&'static str],
    repeatable: &[&str],
) -> Result<Vec<(&'static str, String)>, FormError> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for p in pairs {
        // An empty name with an empty bare value writes nothing at all.
        if let Some(k) = known.iter().find(|k| **k == p.name) {
            if out.iter().any(|(n, _)| n == k) && !repeatable.contains(k) {
                return Err(FormError::Repeated(p.name.clone()));
            }
            out.push((k, p.value.clone()));
        }
    }
    Ok(out)
}

fn stray_amps() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![6 => Just(0usize), 1 => 1usize..3], 0..10)
}

// ---------------------------------------------------------------------------------------------
// The form parser.

#[test]
fn form_parse_matches_the_model_on_any_bytes() {
    fuzz(
        "form_parse_matches_the_model_on_any_bytes",
        form_bytes(),
        |body| {
            let got = form::parse(&body, TOKEN_PARAMETERS, &["resource"]);
            prop_assert_eq!(&got, &model_parse(&body, TOKEN_PARAMETERS, &["resource"]));
            if let Ok(pairs) = got {
                let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
                for n in &names {
                    prop_assert!(TOKEN_PARAMETERS.contains(n));
                    prop_assert!(*n == "resource" || names.iter().filter(|m| *m == n).count() == 1);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn form_encoded_pairs_round_trip() {
    fuzz(
        "form_encoded_pairs_round_trip",
        (pairs(TOKEN_PARAMETERS), stray_amps()),
        |(pairs, amps)| {
            let body = encode_pairs(&pairs, &amps);
            let got = form::parse(&body, TOKEN_PARAMETERS, &["resource"]);
            let want = expected_pairs(&pairs, TOKEN_PARAMETERS, &["resource"]);
            prop_assert_eq!(got, want, "body {:?}", String::from_utf8_lossy(&body));
            Ok(())
        },
    );
}

#[test]
fn form_repeated_known_name_is_always_an_error() {
    // Any known name but `resource`, twice among other pairs, each time spelled differently.
    let strategy = (
        select(TOKEN_PARAMETERS).prop_filter("repeatable", |n| *n != "resource"),
        pairs(TOKEN_PARAMETERS),
        any::<(u64, u64)>(),
        any::<prop::sample::Index>(),
        tricky_text(),
    );
    fuzz(
        "form_repeated_known_name_is_always_an_error",
        strategy,
        |(name, mut pairs, (m1, m2), at, value)| {
            let twice = |mask| Pair {
                name: name.to_owned(),
                value: value.clone(),
                mask,
                bare: false,
            };
            pairs.insert(at.index(pairs.len() + 1), twice(m1));
            pairs.push(twice(m2));
            let got = form::parse(&encode_pairs(&pairs, &[]), TOKEN_PARAMETERS, &["resource"]);
            prop_assert!(matches!(got, Err(FormError::Repeated(_))), "{:?}", got);
            Ok(())
        },
    );
}

#[test]
fn decode_component_matches_the_model() {
    fuzz("decode_component_matches_the_model", form_bytes(), |raw| {
        prop_assert_eq!(decode_component(&raw), model_decode(&raw));
        Ok(())
    });
}

#[test]
fn decode_component_recovers_what_was_encoded() {
    fuzz(
        "decode_component_recovers_what_was_encoded",
        (tricky_text(), any::<u64>(), any::<bool>()),
        |(s, mask, value)| {
            let encoded = form_encode(&s, mask, value);
            prop_assert_eq!(decode_component(encoded.as_bytes()), Ok(s));
            Ok(())
        },
    );
}

/// What `TokenRequest::parse` must make of pairs that parse: empty values omitted, `resource`
/// values in order then `audience`.
#[derive(Debug, Default, PartialEq)]
struct RequestModel {
    grant_type: Option<String>,
    scope: Option<String>,
    targets: Vec<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    assertion: Option<String>,
}

impl RequestModel {
    fn of(pairs: &[(&str, String)]) -> Self {
        let mut m = Self::default();
        let mut audience = None;
        for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            let v = Some(value.clone());
            match *name {
                "grant_type" => m.grant_type = v,
                "scope" => m.scope = v,
                "resource" => m.targets.push(value.clone()),
                "audience" => audience = v,
                "client_id" => m.client_id = v,
                "client_secret" => m.client_secret = v,
                "client_assertion_type" => m.client_assertion_type = v,
                "client_assertion" => m.client_assertion = v,
                "assertion" => m.assertion = v,
                other => panic!("unexpected name {other}"),
            }
        }
        m.targets.extend(audience);
        m
    }

    fn from_request(r: TokenRequest) -> Self {
        Self {
            grant_type: r.grant_type,
            scope: r.scope,
            targets: r.targets,
            client_id: r.client_id,
            client_secret: r.client_secret,
            client_assertion_type: r.client_assertion_type,
            client_assertion: r.client_assertion,
            assertion: r.assertion,
        }
    }
}

#[test]
fn token_request_parse_keeps_what_was_sent() {
    fuzz(
        "token_request_parse_keeps_what_was_sent",
        (pairs(TOKEN_PARAMETERS), stray_amps()),
        |(pairs, amps)| {
            let body = encode_pairs(&pairs, &amps);
            let got = TokenRequest::parse(&body);
            match expected_pairs(&pairs, TOKEN_PARAMETERS, &["resource"]) {
                Ok(want) => {
                    let got = got.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    prop_assert_eq!(RequestModel::from_request(got), RequestModel::of(&want));
                }
                Err(_) => prop_assert_eq!(got.unwrap_err().code, ErrorCode::InvalidRequest),
            }
            Ok(())
        },
    );
}

const TOKEN_PARAMS: &[&str] = &[
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
];

#[test]
fn token_params_parse_keeps_what_was_sent() {
    fuzz(
        "token_params_parse_keeps_what_was_sent",
        (pairs(TOKEN_PARAMS), stray_amps()),
        |(pairs, amps)| {
            let body = encode_pairs(&pairs, &amps);
            let got = TokenParams::parse(&body);
            let sent = |want: &[(&str, String)], name: &str| {
                want.iter()
                    .find(|(n, v)| *n == name && !v.is_empty())
                    .map(|(_, v)| v.clone())
            };
            match expected_pairs(&pairs, TOKEN_PARAMS, &[]) {
                Ok(want) => match sent(&want, "token") {
                    Some(token) => {
                        let p = got.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                        prop_assert_eq!(p.token, token);
                        prop_assert_eq!(p.client_id, sent(&want, "client_id"));
                        prop_assert_eq!(p.client_secret, sent(&want, "client_secret"));
                        prop_assert_eq!(
                            p.client_assertion_type,
                            sent(&want, "client_assertion_type")
                        );
                        prop_assert_eq!(p.client_assertion, sent(&want, "client_assertion"));
                    }
                    None => prop_assert_eq!(got.unwrap_err().code, ErrorCode::InvalidRequest),
                },
                Err(_) => prop_assert_eq!(got.unwrap_err().code, ErrorCode::InvalidRequest),
            }
            Ok(())
        },
    );
}

#[test]
fn token_request_and_params_take_any_bytes() {
    fuzz(
        "token_request_and_params_take_any_bytes",
        form_bytes(),
        |body| {
            match TokenRequest::parse(&body) {
                Ok(r) => {
                    let fields = [
                        &r.grant_type,
                        &r.scope,
                        &r.client_id,
                        &r.client_secret,
                        &r.client_assertion_type,
                        &r.client_assertion,
                        &r.assertion,
                    ];
                    prop_assert!(fields.iter().all(|f| f.as_deref() != Some("")));
                    prop_assert!(r.targets.iter().all(|t| !t.is_empty()));
                }
                Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
            }
            match TokenParams::parse(&body) {
                Ok(p) => prop_assert!(!p.token.is_empty()),
                Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The Basic header.

/// A client id the server accepts: printable ASCII without space, 1 to 128 bytes.
fn client_id() -> impl Strategy<Value = String> {
    prop_oneof!["[!-~]{1,128}", "tc_[A-Za-z0-9_-]{22}", "[a-z:%+]{1,8}"]
}

/// `Authorization: Basic` for `id` and `secret`: each form-encoded (a `:` in the id must be),
/// the scheme in any case, base64 with or without padding, spaces after the scheme and at the
/// end.
fn basic_header(
    id: &str,
    secret: &str,
    mask: u64,
    scheme: &str,
    padded: bool,
    (lead, trail): (usize, usize),
) -> Vec<u8> {
    let mut secret_enc = form_encode(secret, mask.rotate_left(7), true);
    // A `:` after the first may stay plain: only the first one splits.
    if mask & 1 == 1 {
        secret_enc = secret_enc.replace("%3A", ":");
    }
    // The first `:` splits id from secret, so one in the id is always escaped.
    let id_enc = form_encode(id, mask, false).replace(':', "%3A");
    let plain = format!("{id_enc}:{secret_enc}");
    let b64 = if padded {
        STANDARD.encode(plain)
    } else {
        STANDARD_NO_PAD.encode(plain)
    };
    format!("{scheme} {}{b64}{}", " ".repeat(lead), " ".repeat(trail)).into_bytes()
}

#[test]
fn basic_credentials_are_recovered_exactly() {
    let strategy = (
        client_id(),
        tricky_text().prop_filter("empty secret", |s| !s.is_empty()),
        any::<u64>(),
        select(&["Basic", "basic", "BASIC", "bAsIc"][..]),
        any::<bool>(),
        (0usize..3, 0usize..3),
        "[!-~]{1,8}",
    );
    fuzz(
        "basic_credentials_are_recovered_exactly",
        strategy,
        |(id, secret, mask, scheme, padded, spaces, other_id)| {
            let header =
                Authorization::One(basic_header(&id, &secret, mask, scheme, padded, spaces));
            let c = extract(&header, BodyCredentials::default())
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(c.method, AuthMethod::ClientSecretBasic);
            prop_assert_eq!(c.client_id.as_str(), id.as_str());
            prop_assert_eq!(c.secret.expose(), secret.as_str());
            // The same id in the body is allowed, another one is not (RFC 6749 §2.3.1).
            let same = BodyCredentials {
                client_id: Some(&id),
                ..Default::default()
            };
            match extract_any(&header, same) {
                Ok(Credentials::Secret(c)) => {
                    prop_assert_eq!(c.client_id.as_str(), id.as_str());
                    prop_assert_eq!(c.secret.expose(), secret.as_str());
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            if other_id != id {
                let other = BodyCredentials {
                    client_id: Some(&other_id),
                    ..Default::default()
                };
                let e = extract(&header, other).unwrap_err();
                prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
            }
            Ok(())
        },
    );
}

/// Header bytes: anything, or `Basic` (in some case) before anything, before base64 of anything
/// or of form-looking bytes.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let scheme = select(
        &[
            "Basic ", "basic ", "Basic", "Bearer ", "Basic  ", "Basic\t", "",
        ][..],
    );
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| STANDARD.encode(b).into_bytes()),
        form_bytes().prop_map(|b| STANDARD.encode(b).into_bytes()),
        form_bytes().prop_map(|b| STANDARD_NO_PAD.encode(b).into_bytes()),
        form_bytes().prop_map(|b| URL_SAFE_NO_PAD.encode(b).into_bytes()),
        "[A-Za-z0-9+/=:_ -]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..48),
    ];
    prop_oneof![
        4 => (scheme, payload).prop_map(|(s, p)| [s.as_bytes(), &p].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// What `Basic` credentials `header` holds, if well-formed: the header as RFC 6749 §2.3.1 and
/// RFC 7617 describe it, with form-decoded id and secret.
fn model_basic(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let b64 = rest.trim();
    let decoded = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let id = model_decode(&decoded[..colon]).ok()?;
    let secret = model_decode(&decoded[colon + 1..]).ok()?;
    let id_ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7E).contains(&b));
    (id_ok && !secret.is_empty()).then_some((id, secret))
}

fn optional_text() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.3, prop_oneof!["[!-~]{1,8}", tricky_text()])
}

#[test]
fn basic_garbage_is_invalid_client_or_invalid_request() {
    let strategy = (
        header_bytes(),
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Authorization::None)),
            1 => Just(Some(Authorization::Several)),
        ],
        (optional_text(), optional_text()),
        (
            optional_text(),
            prop::option::weighted(
                0.3,
                prop_oneof![
                    Just(tessera_server::oauth::assertion::CLIENT_ASSERTION_TYPE.to_owned()),
                    tricky_text(),
                ],
            ),
        ),
    );
    fuzz(
        "basic_garbage_is_invalid_client_or_invalid_request",
        strategy,
        |(header, other_auth, (id, secret), (assertion, assertion_type))| {
            let auth = other_auth.unwrap_or_else(|| Authorization::One(header.clone()));
            let body = || BodyCredentials {
                client_id: id.as_deref(),
                client_secret: secret.as_deref(),
                client_assertion_type: assertion_type.as_deref(),
                client_assertion: assertion.as_deref(),
            };
            let acceptable = [ErrorCode::InvalidClient, ErrorCode::InvalidRequest];
            let plain = BodyCredentials::default();
            match (&auth, extract(&auth, plain)) {
                (Authorization::One(h), Ok(c)) => {
                    let (want_id, want_secret) = model_basic(h).ok_or_else(|| {
                        TestCaseError::fail("accepted a header the model refuses")
                    })?;
                    prop_assert_eq!(c.method, AuthMethod::ClientSecretBasic);
                    prop_assert_eq!(c.client_id.as_str(), want_id);
                    prop_assert_eq!(c.secret.expose(), want_secret);
                }
                (Authorization::One(h), Err(e)) => {
                    prop_assert!(model_basic(h).is_none(), "refused a good header: {:?}", e);
                    prop_assert_eq!(e.code, ErrorCode::InvalidClient);
                    // RFC 6749 §5.2: a 401 with the Basic challenge when the header was used.
                    prop_assert!(e.basic_challenge);
                }
                (_, Ok(c)) => prop_assert_ne!(c.method, AuthMethod::ClientSecretBasic),
                (_, Err(e)) => prop_assert!(acceptable.contains(&e.code), "{:?}", e),
            }
            if let Err(e) = extract(&auth, body()) {
                prop_assert!(acceptable.contains(&e.code), "{:?}", e);
            }
            let two_methods = (assertion.is_some() || assertion_type.is_some())
                && (auth != Authorization::None || secret.is_some());
            match extract_any(&auth, body()) {
                Err(e) if two_methods => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
                Err(e) => prop_assert!(acceptable.contains(&e.code), "{:?}", e),
                Ok(c) => prop_assert!(!two_methods, "two methods accepted: {:?}", c),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Scopes.

/// RFC 6749 §3.3 `scope-token`.
fn scope_token_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn scope_token() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[!#-\\[\\]-~]{1,12}",
        1 => "[!#-\\[\\]-~]{250,260}",
        1 => "[a-z\" \\\\\t:é]{0,6}",
        1 => any::<String>(),
    ]
}

fn scope_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(scope_token(), 1..6).prop_map(|t| t.join(" ")),
        1 => "[a-c \"\\\\:]{0,16}",
        1 => any::<String>(),
    ]
}

#[test]
fn scope_parse_reparses_to_the_same_set() {
    fuzz("scope_parse_reparses_to_the_same_set", scope_text(), |s| {
        let parsed = ScopeSet::parse(&s);
        prop_assert_eq!(parsed.is_ok(), s.split(' ').all(scope_token_ok));
        if let Ok(set) = parsed {
            let wire = set.to_string();
            prop_assert_eq!(ScopeSet::parse(&wire), Ok(set.clone()));
            let want: BTreeSet<&str> = s.split(' ').collect();
            let got: BTreeSet<&str> = set.iter().map(|t| t.as_str()).collect();
            prop_assert_eq!(got, want);
            // The wire form is canonical: sorted, each scope once.
            prop_assert_eq!(wire, want_join(&s));
        }
        Ok(())
    });
}

fn want_join(s: &str) -> String {
    s.split(' ')
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn scope_from_tokens_agrees_with_parse() {
    fuzz(
        "scope_from_tokens_agrees_with_parse",
        prop::collection::vec(scope_token(), 0..6),
        |tokens| {
            let set = ScopeSet::from_tokens(&tokens);
            prop_assert_eq!(set.is_ok(), tokens.iter().all(|t| scope_token_ok(t)));
            // The two agree wherever neither is handed a space inside a token.
            let joined = ScopeSet::parse(&tokens.join(" "));
            if set.is_ok() && !tokens.is_empty() {
                prop_assert_eq!(&joined, &set);
            }
            if joined.is_ok() && tokens.iter().all(|t| !t.contains(' ')) {
                prop_assert_eq!(&joined, &set);
            }
            if let Ok(set) = set {
                prop_assert_eq!(set.is_empty(), tokens.is_empty());
                // An empty set's wire form is "", which is not a scope list: `parse` never
                // yields an empty set, so only non-empty sets round-trip.
                if !set.is_empty() {
                    prop_assert_eq!(ScopeSet::parse(&set.to_string()), Ok(set));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Client-assertion claims.

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-100i64..100).prop_map(Value::from),
        tricky_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{0,4}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

#[test]
fn peek_claims_takes_any_text() {
    let strategy = prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=-]{0,64}",
        prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9_-]{0,16}",
                json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
            ],
            0..5
        )
        .prop_map(|segments| segments.join(".")),
    ];
    fuzz("peek_claims_takes_any_text", strategy, |jwt| {
        if let Some(claims) = peek_claims(&jwt) {
            prop_assert_eq!(jwt.split('.').count(), 3);
            prop_assert!(jwt.len() <= MAX_ASSERTION_BYTES);
            let payload = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap_or_default());
            let payload: Value = serde_json::from_slice(&payload.unwrap()).unwrap();
            prop_assert_eq!(Value::Object(claims), payload);
        }
        Ok(())
    });
}

#[test]
fn peek_claims_reads_the_payload_of_three_segments() {
    let strategy = (
        prop::collection::vec(("[a-z_]{1,6}", json_value()), 0..6),
        json_value(),
        "[A-Za-z0-9_-]{0,24}",
        "[A-Za-z0-9_-]{0,24}",
        0usize..6,
        0usize..2000,
    );
    fuzz(
        "peek_claims_reads_the_payload_of_three_segments",
        strategy,
        |(claims, other, header, sig, segments, padding)| {
            let claims: Map<String, Value> = claims.into_iter().collect();
            let mut payload = Value::Object(claims.clone());
            if padding > 1000 {
                // Make the token larger than the limit, some of the time.
                payload["pad"] = json!("x".repeat(padding * 10));
            }
            let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
            let jwt = format!("{header}.{payload}.{sig}");
            let got = peek_claims(&jwt);
            if jwt.len() > MAX_ASSERTION_BYTES {
                prop_assert_eq!(got, None);
            } else {
                // Compared with the JSON text as serde_json reads it back (without its
                // `float_roundtrip` feature a float may come back one ulp off), and by name.
                let text = URL_SAFE_NO_PAD.decode(&payload).unwrap();
                let want: Map<String, Value> = serde_json::from_slice(&text).unwrap();
                let got = got.ok_or_else(|| TestCaseError::fail("no claims"))?;
                prop_assert!(got.keys().eq(want.keys()));
                prop_assert!(claims.keys().all(|k| got.contains_key(k)));
                prop_assert_eq!(got, want);
            }
            // A non-object payload, or not exactly three segments, is nothing.
            if !other.is_object() {
                let other = URL_SAFE_NO_PAD.encode(other.to_string());
                prop_assert_eq!(peek_claims(&format!("{header}.{other}.{sig}")), None);
            }
            if segments != 3 {
                let parts = [header.as_str(), &payload, &sig, "x", "y"];
                let jwt = parts[..segments.min(5)].join(".");
                prop_assert_eq!(peek_claims(&jwt), None);
            }
            Ok(())
        },
    );
}

const CLIENT: &str = "tc_client";
const AUDIENCES: [&str; 2] = ["https://as.example", "https://as.example/oauth/token"];
const NOW: i64 = 1_800_000_000;

/// A claim value near what the rules look for: the right value, a wrong one, the wrong type,
/// or left out (`None`).
fn near(right: Value) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => Just(Some(right)),
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ]
}

/// A NumericDate near `NOW`: seconds off by a little or a lot, fractions, extremes, or not a
/// number.
fn date() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => (-4000i64..4000).prop_map(|d| Some(json!(NOW + d))),
        1 => (-4000.0f64..4000.0).prop_map(|d| Some(json!(NOW as f64 + d))),
        1 => any::<i64>().prop_map(|d| Some(json!(d))),
        1 => any::<f64>().prop_map(|d| Some(json!(d))),
        1 => select(&[i64::MIN, i64::MAX, 0, -1][..]).prop_map(|d| Some(json!(d))),
        1 => Just(Some(json!(u64::MAX))),
        1 => Just(Some(json!(1e300))),
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ]
}

/// What `check_client_assertion` must accept (RFC 7523 §3, as its documentation states), and
/// the `jti` and remember-until time it must answer.
fn model_assertion(c: &Map<String, Value>, max_lifetime: i64, now: i64) -> Option<(String, i64)> {
    let text = |n: &str| c.get(n).and_then(Value::as_str);
    // NumericDate: fractions truncated; values beyond i64 saturate (what `as` does).
    let date = |n: &str| c.get(n).and_then(Value::as_f64).map(|f| f as i64);
    let aud = match c.get("aud")? {
        Value::String(s) => s.as_str(),
        Value::Array(a) if a.len() == 1 => a[0].as_str()?,
        _ => return None,
    };
    let (exp, iat) = (i128::from(date("exp")?), i128::from(date("iat")?));
    let (now, leeway) = (i128::from(now), i128::from(LEEWAY));
    let jti = text("jti")?;
    let ok = text("iss") == Some(CLIENT)
        && text("sub") == Some(CLIENT)
        && AUDIENCES.contains(&aud)
        && now < exp + leeway
        && iat <= now + leeway
        && date("nbf").is_none_or(|nbf| i128::from(nbf) <= now + leeway)
        && exp - iat <= i128::from(max_lifetime)
        && !jti.is_empty()
        && jti.len() <= 256;
    let until = i64::try_from(exp + leeway).unwrap_or(i64::MAX);
    ok.then(|| (jti.to_owned(), until))
}

#[test]
fn client_assertion_checks_follow_rfc7523() {
    let claims = (
        (near(json!(CLIENT)), near(json!(CLIENT))),
        prop_oneof![
            near(json!(AUDIENCES[0])),
            near(json!(AUDIENCES[1])),
            near(json!([AUDIENCES[0]])),
            Just(Some(json!([AUDIENCES[0], AUDIENCES[1]]))),
            Just(Some(json!(["https://other"]))),
        ],
        (date(), date(), prop::option::weighted(0.3, date())),
        prop_oneof![
            near(json!("jti-1")),
            Just(Some(json!(""))),
            Just(Some(json!("j".repeat(256)))),
            Just(Some(json!("j".repeat(257)))),
        ],
        prop::collection::vec(("[a-z_]{1,6}", json_value()), 0..3),
    );
    let strategy = (claims, prop_oneof![Just(3600i64), 0i64..7200], -100i64..100);
    fuzz(
        "client_assertion_checks_follow_rfc7523",
        strategy,
        |(((iss, sub), aud, (exp, iat, nbf), jti, extra), max_lifetime, now_off)| {
            let mut c: Map<String, Value> = extra.into_iter().collect();
            let named = [
                ("iss", iss),
                ("sub", sub),
                ("aud", aud),
                ("exp", exp),
                ("iat", iat),
                ("nbf", nbf.flatten()),
                ("jti", jti),
            ];
            for (name, value) in named {
                match value {
                    Some(v) => c.insert(name.into(), v),
                    None => c.remove(name),
                };
            }
            let now = NOW + now_off;
            let rules = ClientAssertionRules {
                client_id: CLIENT,
                audiences: AUDIENCES,
                max_lifetime,
                now,
            };
            let got = check_client_assertion(&c, &rules).map(|a| (a.jti, a.remember_until));
            prop_assert_eq!(got.ok(), model_assertion(&c, max_lifetime, now), "{:?}", c);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Trust subjects and claims.

fn pattern_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:/*]{0,12}",
        "repo:acme/[a-z]{1,6}:\\*?",
        "[a-z*]{505,515}",
        any::<String>(),
    ]
}

#[test]
fn subject_patterns_parse_and_match_as_documented() {
    let strategy = (pattern_text(), pattern_text(), "[a-z:/]{0,6}");
    fuzz(
        "subject_patterns_parse_and_match_as_documented",
        strategy,
        |(pattern, sub, tail)| {
            let parsed = SubjectPattern::parse(&pattern);
            // One `*` at most, and only as the last character.
            let stars = pattern.matches('*').count();
            let well_formed = !pattern.is_empty()
                && pattern.len() <= 512
                && (stars == 0 || (stars == 1 && pattern.ends_with('*') && pattern.len() > 1));
            prop_assert_eq!(parsed.is_some(), well_formed);
            let Some(p) = parsed else { return Ok(()) };
            prop_assert_eq!(p.to_string(), pattern.clone());
            prop_assert_eq!(SubjectPattern::parse(&p.to_string()), Some(p.clone()));
            match &p {
                SubjectPattern::Exact(e) => {
                    prop_assert_eq!(e, &pattern);
                    prop_assert_eq!(p.matches(&sub), sub == *e);
                    prop_assert!(p.matches(e));
                    prop_assert_eq!(p.matches(&format!("{e}{tail}")), tail.is_empty());
                }
                SubjectPattern::Prefix(prefix) => {
                    prop_assert_eq!(format!("{prefix}*"), pattern);
                    prop_assert_eq!(p.matches(&sub), sub.starts_with(prefix.as_str()));
                    let longer = format!("{prefix}{tail}");
                    prop_assert!(p.matches(&longer));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn claim_matches_as_documented() {
    let want = prop_oneof![
        tricky_text(),
        select(&["true", "false", "7", "7.0", "-0", "1e3", "null", "[]", "{}"][..])
            .prop_map(str::to_owned),
    ];
    fuzz(
        "claim_matches_as_documented",
        (prop::option::of(json_value()), want),
        |(value, want)| {
            let got = claim_matches(value.as_ref(), &want);
            match &value {
                None | Some(Value::Null | Value::Object(_)) => prop_assert!(!got),
                Some(Value::String(s)) => prop_assert_eq!(got, *s == want),
                Some(v @ (Value::Bool(_) | Value::Number(_))) => {
                    prop_assert_eq!(
                        got,
                        serde_json::from_str::<Value>(&want).ok().as_ref() == Some(v)
                    );
                    // A number or boolean read from a token's JSON text matches that text.
                    // (Read back, not as generated: without serde_json's `float_roundtrip`
                    // feature a float's shortest text may parse one ulp off, but the token's
                    // claim and the trust's value are then read by the same parser.)
                    let text = v.to_string();
                    let read: Value = serde_json::from_str(&text).unwrap();
                    prop_assert!(claim_matches(Some(&read), &text), "{} vs itself", text);
                }
                Some(Value::Array(items)) => {
                    let any = items
                        .iter()
                        .any(|i| !i.is_array() && claim_matches(Some(i), &want));
                    prop_assert_eq!(got, any);
                }
            }
            Ok(())
        },
    );
}
