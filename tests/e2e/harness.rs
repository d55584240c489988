//! The test harness: spawns the real `tessera` binary on 127.0.0.1:0 with its own data
//! directory, runs the real CLI against it, and verifies tokens with an independent JWT library
//! (jsonwebtoken) against the served JWKS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A running server process.
pub struct Server {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<String>>,
}

impl Server {
    /// Start on a data directory with extra `serve` flags; waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_env(data_dir, extra, &[])
    }

    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(extra)
            .env_remove("TESSERA_LOG")
            // Fast pick-up of CLI changes, so tests that wait for them are quick; a test's own
            // --refresh-interval-ms flag overrides this.
            .env("TESSERA_REFRESH_INTERVAL_MS", "100")
            // A free port unless the test passes --listen.
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tessera");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let l = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.strip_prefix("tessera listening on ") {
                        let base = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        let _ = tx.send(base);
                        sent = true;
                    }
                }
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; logs:\n{}", logs.lock().unwrap());
            }
        };
        Server { child, base, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// How many times a log line contains `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs().matches(needle).count()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait(Duration::from_secs(30))
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the CLI against a data directory.
pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TESSERA_LOG")
        .output()
        .expect("run tessera")
}

/// Run the CLI, expect success, parse stdout as JSON.
pub fn cli_json(data_dir: &Path, args: &[&str]) -> Value {
    let out = cli(data_dir, args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

/// `tessera client create … --output json`.
pub fn create_client(data_dir: &Path, args: &[&str]) -> TestClient {
    let mut all = vec!["client", "create", "--output", "json"];
    all.extend_from_slice(args);
    let v = cli_json(data_dir, &all);
    TestClient {
        id: v["client_id"].as_str().unwrap().into(),
        secret: v["client_secret"].as_str().unwrap().into(),
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POST a form with Basic credentials.
pub async fn token_basic(server: &Server, c: &TestClient, form: &str) -> reqwest::Response {
    http()
        .post(server.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap()
}

/// Poll `f` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Verify `token` with jsonwebtoken against the server's JWKS, checking issuer, audience and
/// the RFC 9068 header; returns the claims.
pub async fn verify(server: &Server, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = http()
        .get(server.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    verify_with(&jwks, &server.base, token, audience)
}

pub fn verify_with(jwks: &JwkSet, issuer: &str, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    assert!(matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    ));
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
        .claims
}
