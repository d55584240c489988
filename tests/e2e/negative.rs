//! Every bad input gets the RFC 6749 §5.2 error with the right status, never a 500, and never
//! an echo of a secret. One table, one helper.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::both_backends;
use crate::harness::*;

const FORM: &str = "application/x-www-form-urlencoded";

struct Case {
    name: &'static str,
    method: &'static str,
    content_type: Option<&'static str>,
    authorization: Option<Vec<u8>>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
    basic_challenge: bool,
}

fn basic(id: &str, secret: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
}

/// Send one raw HTTP/1.1 request (so that non-UTF-8 headers and odd bodies go out as they are)
/// and return (status, headers, body).
fn raw(
    base: &str,
    method: &str,
    content_type: Option<&str>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} /oauth/token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len()).into_bytes();
    if let Some(ct) = content_type {
        req.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    if let Some(a) = authorization {
        req.extend_from_slice(b"Authorization: ");
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    // The server may answer (413) and close before reading everything; that is fine.
    let _ = s.write_all(&req);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete HTTP response");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        head.to_ascii_lowercase(),
        resp[split + 4..].to_vec(),
    )
}

both_backends! {
    async fn every_bad_input_gets_its_rfc_error(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let c = env.create_client(&[
                "--name",
                "n",
                "--scope",
                "a",
                "--scope",
                "b",
                "--audience",
                "https://api",
            ],
        );
        let off = env.create_client(&["--name", "off", "--scope", "a"]);
        env.cli_json(&["client", "disable", &off.id, "--output", "json"],
        );
        // Wait until the server has seen the disable.
        assert!(
            status_becomes(&server, &off, "grant_type=client_credentials", 401, Duration::from_secs(5)).await
        );

        let good = || basic(&c.id, &c.secret);
        let gt = b"grant_type=client_credentials".to_vec();
        let case =
            |name, authorization: Option<Vec<u8>>, body: &[u8], status, error, basic_challenge| Case {
                name,
                method: "POST",
                content_type: Some(FORM),
                authorization,
                body: body.to_vec(),
                status,
                error,
                basic_challenge,
            };
        let cases = vec![
            case(
                "wrong secret (basic)",
                Some(basic(&c.id, "tss_wrong")),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "unknown client (basic)",
                Some(basic("tc_nobody", &c.secret)),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "disabled client",
                Some(basic(&off.id, &off.secret)),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "wrong secret (post)",
                None,
                format!(
                    "grant_type=client_credentials&client_id={}&client_secret=nope",
                    c.id
                )
                .as_bytes(),
                401,
                "invalid_client",
                false,
            ),
            case(
                "no client authentication",
                None,
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "client_id without secret",
                None,
                format!("grant_type=client_credentials&client_id={}", c.id).as_bytes(),
                401,
                "invalid_client",
                true,
            ),
            case(
                "malformed base64 in Basic",
                Some(b"Basic %%%not-base64".to_vec()),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "Basic without colon",
                Some(format!("Basic {}", STANDARD.encode("justanid")).into_bytes()),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "non-UTF-8 Basic credentials",
                Some(
                    format!(
                        "Basic {}",
                        STANDARD.encode([b'i', b'd', b':', 0xff, 0xfe, 0xfd])
                    )
                    .into_bytes(),
                ),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "non-UTF-8 Authorization header bytes",
                Some(vec![b'B', b'a', b's', b'i', b'c', b' ', 0xff, 0xfe]),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "percent-broken Basic credentials",
                Some(basic(&c.id, "abc%zz")),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "unsupported auth scheme",
                Some(b"Bearer abc.def.ghi".to_vec()),
                &gt,
                401,
                "invalid_client",
                true,
            ),
            case(
                "two authentication methods",
                Some(good()),
                format!("grant_type=client_credentials&client_secret={}", c.secret).as_bytes(),
                400,
                "invalid_request",
                false,
            ),
            case(
                "client_id in body differs from Basic",
                Some(good()),
                b"grant_type=client_credentials&client_id=other",
                400,
                "invalid_request",
                false,
            ),
            case(
                "missing grant_type",
                Some(good()),
                b"scope=a",
                400,
                "invalid_request",
                false,
            ),
            case(
                "empty grant_type",
                Some(good()),
                b"grant_type=",
                400,
                "invalid_request",
                false,
            ),
            case(
                "unknown grant_type",
                Some(good()),
                b"grant_type=password",
                400,
                "unsupported_grant_type",
                false,
            ),
            case(
                "authorization_code grant",
                Some(good()),
                b"grant_type=authorization_code&code=x",
                400,
                "unsupported_grant_type",
                false,
            ),
            case(
                "disallowed scope",
                Some(good()),
                b"grant_type=client_credentials&scope=a+admin",
                400,
                "invalid_scope",
                false,
            ),
            case(
                "malformed scope (double space)",
                Some(good()),
                b"grant_type=client_credentials&scope=a++b",
                400,
                "invalid_scope",
                false,
            ),
            case(
                "disallowed audience",
                Some(good()),
                b"grant_type=client_credentials&audience=https%3A%2F%2Fevil",
                400,
                "invalid_target",
                false,
            ),
            case(
                "disallowed resource",
                Some(good()),
                b"grant_type=client_credentials&resource=https%3A%2F%2Fevil",
                400,
                "invalid_target",
                false,
            ),
            case(
                "two different resources",
                Some(good()),
                b"grant_type=client_credentials&resource=https%3A%2F%2Fapi&resource=https%3A%2F%2Fx",
                400,
                "invalid_target",
                false,
            ),
            case(
                "repeated parameter",
                Some(good()),
                b"grant_type=client_credentials&scope=a&scope=b",
                400,
                "invalid_request",
                false,
            ),
            case(
                "repeated grant_type",
                Some(good()),
                b"grant_type=client_credentials&grant_type=client_credentials",
                400,
                "invalid_request",
                false,
            ),
            case(
                "percent-broken body",
                Some(good()),
                b"grant_type=client_credentials&scope=%zz",
                400,
                "invalid_request",
                false,
            ),
            case(
                "non-UTF-8 body",
                Some(good()),
                b"grant_type=client_credentials&scope=%ff%fe",
                400,
                "invalid_request",
                false,
            ),
            case(
                "raw binary body",
                Some(good()),
                &[0xff, 0x00, 0x13, 0x37],
                400,
                "invalid_request",
                false,
            ),
            Case {
                name: "JSON body",
                content_type: Some("application/json"),
                body: br#"{"grant_type":"client_credentials"}"#.to_vec(),
                ..case("", Some(good()), b"", 400, "invalid_request", false)
            },
            Case {
                name: "missing content type",
                content_type: None,
                ..case("", Some(good()), &gt, 400, "invalid_request", false)
            },
            Case {
                name: "multipart body",
                content_type: Some("multipart/form-data; boundary=x"),
                ..case("", Some(good()), &gt, 400, "invalid_request", false)
            },
            Case {
                name: "huge body",
                body: vec![b'a'; 1024 * 1024],
                ..case("", Some(good()), b"", 413, "invalid_request", false)
            },
            Case {
                name: "GET",
                method: "GET",
                body: vec![],
                ..case("", Some(good()), b"", 405, "invalid_request", false)
            },
            Case {
                name: "PUT",
                method: "PUT",
                ..case("", Some(good()), &gt, 405, "invalid_request", false)
            },
        ];
        for k in cases {
            let (status, head, body) = raw(
                &server.base,
                k.method,
                k.content_type,
                k.authorization.as_deref(),
                &k.body,
            );
            assert_eq!(status, k.status, "{}: status", k.name);
            let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{}: body is not JSON: {:?}",
                    k.name,
                    String::from_utf8_lossy(&body)
                )
            });
            assert_eq!(json["error"], k.error, "{}: error code", k.name);
            assert!(
                json["error_description"].is_string(),
                "{}: error_description",
                k.name
            );
            assert!(
                head.contains("cache-control: no-store"),
                "{}: no-store",
                k.name
            );
            assert_eq!(
                head.contains("www-authenticate: basic"),
                k.basic_challenge,
                "{}: WWW-Authenticate",
                k.name
            );
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains(&c.secret) && !text.contains("tss_wrong") && !text.contains("nope"),
                "{}: echoed a secret",
                k.name
            );
            if k.method == "GET" {
                assert!(head.contains("allow: post"), "405 names the allowed method");
            }
        }
        // The good request still works after all that.
        assert_eq!(
            token_basic(&server, &c, "grant_type=client_credentials")
                .await
                .status(),
            200
        );
    }

    async fn oversized_headers_are_refused_and_unknown_paths_are_404(env) {
        let server = env.start(&["--signing-alg", "ES256"]);
        let addr = server.base.trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let big = "x".repeat(64 * 1024);
        let req = format!(
            "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = s.write_all(req.as_bytes());
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let head = String::from_utf8_lossy(&resp);
        assert!(
            head.starts_with("HTTP/1.1 431"),
            "expected 431, got {:?}",
            head.lines().next()
        );

        let r = http().get(server.url("/nope")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(
            http()
                .get(server.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "server still healthy"
        );
    }
}
