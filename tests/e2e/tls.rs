//! Native TLS (`--tls-cert`, `--tls-key`): tokens over HTTPS verified against a private CA, TLS
//! 1.2+ only, a renewal picked up by new connections while a kept-alive one stays open, a bad
//! renewal refused; and `--insecure-http`, without which a plain-HTTP issuer on a non-loopback
//! address does not start. TLS does not depend on the database, so these run on SQLite only.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::*;

/// Run `openssl` with `args`, split at spaces (the temporary paths have none).
fn openssl(args: &str) -> std::process::Output {
    Command::new("openssl")
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .expect("run openssl")
}

/// What `openssl` wrote, stderr then stdout.
fn both(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

fn openssl_ok(args: &str) {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate for `IP:127.0.0.1` signed by it, made with the openssl CLI.
struct Pair {
    ca: Vec<u8>,
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    fn new(dir: &Path, name: &str) -> Pair {
        let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
        let (ca, ca_key, cert, key, csr, ext) = (
            p("ca.pem"),
            p("ca-key.pem"),
            p("cert.pem"),
            p("key.pem"),
            p("csr.pem"),
            p("ext.cnf"),
        );
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        openssl_ok(&format!(
            "req -x509 {ec} -days 2 -subj /CN=tessera-test-CA-{name} -keyout {ca_key} -out {ca}"
        ));
        openssl_ok(&format!(
            "req {ec} -subj /CN=127.0.0.1 -keyout {key} -out {csr}"
        ));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl_ok(&format!(
            "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 2 -extfile {ext} -out {cert}"
        ));
        Pair {
            ca: std::fs::read(&ca).unwrap(),
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The certificate, DER.
    fn cert_der(&self) -> Vec<u8> {
        pem_body(&std::fs::read_to_string(&self.cert).unwrap())
    }

    /// Put this pair where the server reads it, each file replaced in one rename (as
    /// cert-manager's volume and certbot's symlinks do); the key first.
    fn install(&self, files: &Files) {
        replace(&files.key, &std::fs::read(&self.key).unwrap());
        replace(&files.cert, &std::fs::read(&self.cert).unwrap());
    }
}

/// The files the server is pointed at.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    fn flags(&self) -> [String; 4] {
        [
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The base64 body of a PEM block, decoded.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).unwrap()
}

/// An HTTPS client that trusts only `ca` (no built-in or system roots) and keeps its
/// connections alive between requests.
fn trusting(ca: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The certificate the server presented on the connection that carried `resp`.
fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info")
        .peer_certificate()
        .expect("a peer certificate")
        .to_vec()
}

async fn start_tls(env: &TestEnv, files: &Files, extra: &[&str]) -> Server {
    let flags = files.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    env.start(&args)
}

async fn healthz(client: &reqwest::Client, server: &Server) -> Result<reqwest::Response, String> {
    match client.get(server.url("/healthz")).send().await {
        Ok(r) if r.status() == 200 => Ok(r),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Send `request` in plain text on a new TCP connection and read what comes back until the
/// server closes it.
fn raw_exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

e2e_test! {
async fn tokens_over_https_verify_against_a_private_ca_and_old_protocols_are_refused() {
    let env = TestEnv::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let pair = Pair::new(dir.path(), "a");
    pair.install(&files);
    let server = start_tls(
        &env,
        &files,
        &["--signing-alg", "ES256", "--admin-listen", "127.0.0.1:0"],
    )
    .await;
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    // The admin listener serves the same certificate.
    let admin = server.admin.clone().unwrap();
    assert!(admin.starts_with("https://127.0.0.1:"), "{admin}");
    let about = trusting(&pair.ca)
        .get(format!("{admin}/admin/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(about.status(), 200);
    assert_eq!(peer_cert(&about), pair.cert_der(), "the admin listener's certificate");

    let c = env.create_client(&[
        "--name", "tls", "--scope", "s2s:internal", "--audience", "https://api.example",
    ]);
    let https = trusting(&pair.ca);
    let resp = https
        .post(server.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(peer_cert(&resp), pair.cert_der(), "the configured certificate");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();

    // The default issuer is the HTTPS address, in discovery and in the token.
    let meta: Value = https
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], server.base.as_str());
    assert_eq!(meta["token_endpoint"], server.url("/oauth/token").as_str());
    assert!(meta["jwks_uri"].as_str().unwrap().starts_with("https://"));
    let jwks = https
        .get(server.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = verify_with(&jwks, &server.base, token, "https://api.example");
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["sub"], c.id.as_str());

    // A client that does not trust the CA gets no answer.
    let stranger = Pair::new(dir.path(), "stranger");
    let e = healthz(&trusting(&stranger.ca), &server).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let addr = server.base.strip_prefix("https://").unwrap().to_string();
    let answer = raw_exchange(&addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered: {}",
        String::from_utf8_lossy(&answer)
    );
    let plain = http()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP got {plain:?}");

    // TLS 1.2 and 1.3 are served; TLS 1.1, and 1.2 with a CBC (non-AEAD) suite, are refused.
    // SECLEVEL=0 lets this openssl offer TLS 1.1 at all (its default floor is TLS 1.2), so the
    // refusal is the server's.
    let ca_file = dir.path().join("a-ca.pem");
    let connect = format!("s_client -connect {addr} -CAfile {}", ca_file.display());
    for version in ["-tls1_2", "-tls1_3"] {
        let out = openssl(&format!("{connect} {version}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{version}: {text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{version}: {text}");
    }
    let out = openssl(&format!("{connect} -tls1_1 -cipher DEFAULT@SECLEVEL=0"));
    let text = both(&out);
    assert!(!out.status.success(), "TLS 1.1 accepted: {text}");
    // The server's alert (rustls answers handshake_failure), not this openssl declining to try.
    assert!(
        text.contains("SSL alert number") && !text.contains("no protocols available"),
        "refused by the server: {text}"
    );
    let out = openssl(&format!("{connect} -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"));
    let text = both(&out);
    assert!(!out.status.success(), "a CBC suite accepted: {text}");
    assert!(text.contains("SSL alert number"), "refused by the server: {text}");

    // The server is still well.
    assert!(healthz(&https, &server).await.is_ok());
}
}

e2e_test! {
async fn a_renewal_reaches_new_connections_while_a_kept_alive_one_stays_open() {
    let env = TestEnv::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let (a, b, c) = (
        Pair::new(dir.path(), "a"),
        Pair::new(dir.path(), "b"),
        Pair::new(dir.path(), "c"),
    );
    a.install(&files);
    let server = start_tls(&env, &files, &["--signing-alg", "ES256"]).await;

    // One connection, kept alive by the client's pool. This client trusts only A's CA, so once
    // the server presents B it can only succeed on the connection it already has.
    let held = trusting(&a.ca);
    let r = healthz(&held, &server).await.unwrap();
    assert_eq!(peer_cert(&r), a.cert_der());

    // Renewal: a new certificate from a new CA.
    b.install(&files);
    let fresh_b = trusting(&b.ca);
    let mut seen_b = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        // The kept-alive connection answers throughout.
        let r = healthz(&held, &server).await.expect("the kept-alive connection answers");
        assert_eq!(peer_cert(&r), a.cert_der(), "still the connection made with A");
        if let Ok(r) = healthz(&fresh_b, &server).await {
            seen_b = Some(peer_cert(&r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen_b.as_deref(), Some(&b.cert_der()[..]), "new connections get B");
    eprintln!("renewal picked up after {:?}", start.elapsed());
    let r = healthz(&held, &server).await.expect("the kept-alive connection still answers");
    assert_eq!(peer_cert(&r), a.cert_der());
    // A new connection trusting only A is refused now: the held one above was not new.
    assert!(healthz(&trusting(&a.ca), &server).await.is_err());
    assert!(eventually(Duration::from_secs(5), || async {
        server.logs().contains("TLS certificate reloaded")
    })
    .await);

    // A bad renewal: C's certificate with A's key. Refused, B keeps serving.
    replace(&files.key, &std::fs::read(&a.key).unwrap());
    replace(&files.cert, &std::fs::read(&c.cert).unwrap());
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.logs().contains("does not belong to the certificate")
        })
        .await,
        "a mismatched pair is refused: {}",
        server.logs()
    );
    assert!(healthz(&trusting(&b.ca), &server).await.is_ok(), "B still serves");
    assert!(healthz(&trusting(&c.ca), &server).await.is_err());
    // Then a file that is not PEM at all.
    replace(&files.cert, b"not a certificate\n");
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.logs().contains("holds no PEM CERTIFICATE block")
        })
        .await
    );
    assert!(healthz(&trusting(&b.ca), &server).await.is_ok(), "B still serves");
    let warnings = server.count_logs("cannot be used; still serving the previous certificate");
    assert_eq!(warnings, 2, "one warning per bad state: {}", server.logs());

    // The renewal completes: C is picked up.
    c.install(&files);
    let fresh_c = trusting(&c.ca);
    assert!(
        eventually(Duration::from_secs(10), || async {
            healthz(&fresh_c, &server).await.is_ok()
        })
        .await
    );

    // No private key reached the logs.
    let logs = server.logs();
    for pair in [&a, &b, &c] {
        let key = std::fs::read_to_string(&pair.key).unwrap();
        for line in key.lines().filter(|l| !l.starts_with("-----") && l.len() > 16) {
            assert!(!logs.contains(line), "a key line is in the logs");
        }
    }
}
}

e2e_test! {
async fn tls_flags_fail_at_start_on_a_missing_or_bad_pair() {
    let env = TestEnv::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let a = Pair::new(dir.path(), "a");
    let b = Pair::new(dir.path(), "b");
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = env.cli(&args);
        assert!(!out.status.success(), "{extra:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();

    let e = serve(&["--tls-cert", &cert]);
    assert!(e.contains("--tls-key"), "{e}");
    let e = serve(&["--tls-key", &key]);
    assert!(e.contains("--tls-cert"), "{e}");
    let out = env.cli_env(&["serve", "--listen", "127.0.0.1:0"], &[("TESSERA_TLS_CERT", &cert)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));

    let e = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(e.contains("TLS") && e.contains("tls.crt") && e.contains("No such file"), "{e}");

    // A's certificate with B's key.
    std::fs::copy(&a.cert, &files.cert).unwrap();
    std::fs::copy(&b.key, &files.key).unwrap();
    let e = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(e.contains("does not belong to the certificate"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");

    // The certificate where the key should be.
    std::fs::copy(&a.cert, &files.key).unwrap();
    let e = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(e.contains("tls.key") && e.contains("no unencrypted PEM private key"), "{e}");

    // Through the environment, a good pair starts.
    a.install(&files);
    let server = env.start_env(&[], &[("TESSERA_TLS_CERT", &cert), ("TESSERA_TLS_KEY", &key)]);
    assert!(server.base.starts_with("https://"));
    assert!(healthz(&trusting(&a.ca), &server).await.is_ok());
    // TLS opens no listener of its own: no admin or metrics address on the start line.
    assert_eq!((&server.admin, &server.metrics), (&None, &None));
}
}

e2e_test! {
async fn a_plain_http_issuer_off_loopback_needs_insecure_http() {
    let env = TestEnv::sqlite();
    let out = env.cli(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success(), "started with an http:// issuer on 0.0.0.0");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("in the clear") && e.contains("--insecure-http") && e.contains("--tls-cert"),
        "says why and what to do: {e}"
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    // A configured http:// issuer is refused alike.
    let out = env.cli(&["serve", "--listen", "0.0.0.0:0", "--issuer", "http://tessera:8080"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in the clear"));

    let local = |server: &Server| server.base.replace("0.0.0.0", "127.0.0.1");
    for (flags, env_vars) in [
        (vec!["--listen", "0.0.0.0:0", "--insecure-http"], vec![]),
        (vec!["--listen", "0.0.0.0:0"], vec![("TESSERA_INSECURE_HTTP", "true")]),
        // An https:// issuer: TLS ends at a proxy in front.
        (vec!["--listen", "0.0.0.0:0", "--issuer", "https://tessera.example"], vec![]),
    ] {
        let server = env.start_env(&flags, &env_vars);
        let r = http()
            .get(format!("{}/healthz", local(&server)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{flags:?} {env_vars:?}");
    }

    // With TLS, 0.0.0.0 needs no flag: the default issuer is https://.
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let a = Pair::new(dir.path(), "a");
    a.install(&files);
    let server = start_tls(&env, &files, &["--listen", "0.0.0.0:0"]).await;
    let base = local(&server);
    assert!(base.starts_with("https://127.0.0.1:"));
    let meta: Value = trusting(&a.ca)
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta["issuer"].as_str().unwrap().starts_with("https://0.0.0.0:"), "{meta}");
}
}
