//! The test harness: spawns the real `tessera` binary on 127.0.0.1:0 with its own data
//! directory, runs the real CLI against it, and verifies tokens with an independent JWT library
//! (jsonwebtoken) against the served JWKS.

use std::io::{BufRead, BufReader};
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
    /// The admin listener's base URL (`--admin-listen`), from the start line's `admin=`.
    pub admin: Option<String>,
    /// The metrics listener's base URL (`--metrics-listen`), from the start line's `metrics=`.
    pub metrics: Option<String>,
    logs: Arc<Mutex<String>>,
}

impl Server {
    fn spawn(db_args: &[String], extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(db_args)
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
                        let _ = tx.send(rest.to_string());
                        sent = true;
                    }
                }
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; logs:\n{}", logs.lock().unwrap());
            }
        };
        // `<base> issuer=… [admin=<url>] [metrics=<url>]`
        let base = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name).map(str::to_string))
        };
        let (admin, metrics) = (field("admin="), field("metrics="));
        Server {
            child,
            base,
            admin,
            metrics,
            logs,
        }
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

/// A registered client.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
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

/// Whether a token request with `form` answers `status` within `within` (changes made through
/// the CLI reach a server within a bounded time, so tests poll for them).
pub async fn status_becomes(
    server: &Server,
    c: &TestClient,
    form: &str,
    status: u16,
    within: Duration,
) -> bool {
    eventually(within, || async {
        token_basic(server, c, form).await.status() == status
    })
    .await
}

/// GET `path` from the server and parse the JSON body.
pub async fn get_json<T: serde::de::DeserializeOwned>(server: &Server, path: &str) -> T {
    http()
        .get(server.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verify `token` with jsonwebtoken against the server's JWKS, checking issuer, audience and
/// the RFC 9068 header; returns the claims.
pub async fn verify(server: &Server, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = get_json(server, "/jwks.json").await;
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

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a server and its CLI keep their state; cheap to clone (e.g. into a thread).
#[derive(Clone, Debug)]
pub struct EnvConfig {
    pub data_dir: std::path::PathBuf,
    pub database_url: Option<String>,
    pub backend: Backend,
}

impl EnvConfig {
    fn db_args(&self) -> Vec<String> {
        let mut a = vec![
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
        ];
        if let Some(u) = &self.database_url {
            a.push("--database-url".into());
            a.push(u.clone());
        }
        a
    }

    /// Start a server; extra `serve` flags.
    pub fn start(&self, extra: &[&str]) -> Server {
        self.start_env(extra, &[])
    }

    pub fn start_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(&self.db_args(), extra, env)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(self.db_args())
            .args(args)
            .env_remove("TESSERA_LOG")
            .output()
            .expect("run tessera")
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .args(self.db_args())
            .args(args)
            .env_remove("TESSERA_LOG")
            .envs(env.iter().copied())
            .output()
            .expect("run tessera")
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    pub fn create_client(&self, args: &[&str]) -> TestClient {
        let mut all = vec!["client", "create", "--output", "json"];
        all.extend_from_slice(args);
        let v = self.cli_json(&all);
        TestClient {
            id: v["client_id"].as_str().unwrap().into(),
            secret: v["client_secret"].as_str().unwrap().into(),
        }
    }

    /// The database this environment's server and CLI use.
    pub fn database(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tessera.db").display()))
    }

    /// Run one SQL statement on this environment's database (to set up states a test cannot
    /// wait for, such as a key past its retirement time).
    pub async fn sql(&self, statement: &str) {
        use sqlx::Connection as _;
        match &self.database_url {
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database())
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Everything the database holds, as bytes (to search for plaintext secrets and keys).
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.database_url {
            None => {
                let mut b = std::fs::read(self.data_dir.join("tessera.db")).unwrap();
                b.extend(std::fs::read(self.data_dir.join("tessera.db-wal")).unwrap_or_default());
                b
            }
            Some(url) => {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = Vec::new();
                for table in ["clients", "client_secrets", "signing_keys", "meta"] {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM {table} t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for r in rows {
                        out.extend(r.into_bytes());
                    }
                }
                let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT private_key FROM signing_keys")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                for k in keys {
                    out.extend(k);
                }
                out
            }
        }
    }
}

/// Where the PostgreSQL tests look when TESSERA_TEST_POSTGRES_URL is unset: the local server
/// the README's development set-up describes.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL server the tests use: TESSERA_TEST_POSTGRES_URL, else [`DEFAULT_POSTGRES_URL`].
pub fn postgres_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the PostgreSQL tests run in this process: `Err(reason)` only when
/// TESSERA_TEST_POSTGRES_URL is unset, nothing answers at [`DEFAULT_POSTGRES_URL`], and this is
/// not CI. `main` then marks them ignored, so the summary line counts them. In CI, or with the
/// variable set, they always run, and fail if PostgreSQL does not answer.
pub fn postgres_probe() -> Result<(), String> {
    if std::env::var("TESSERA_TEST_POSTGRES_URL").is_ok() || in_ci() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let connect = sqlx::PgConnection::connect(DEFAULT_POSTGRES_URL);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(e)) => Err(format!("no PostgreSQL at {DEFAULT_POSTGRES_URL}: {e}")),
            Err(_) => Err(format!("no answer from {DEFAULT_POSTGRES_URL} within 5 s")),
        }
    })
}

/// A test's own state: a temporary data directory and, for PostgreSQL, a database of its own
/// (created on the server named by TESSERA_TEST_POSTGRES_URL, dropped afterwards).
pub struct TestEnv {
    pub config: EnvConfig,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl std::ops::Deref for TestEnv {
    type Target = EnvConfig;
    fn deref(&self) -> &EnvConfig {
        &self.config
    }
}

impl TestEnv {
    pub fn sqlite() -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        TestEnv {
            config: EnvConfig {
                data_dir: dir.path().to_path_buf(),
                database_url: None,
                backend: Backend::Sqlite,
            },
            _dir: dir,
            pg: None,
        }
    }

    /// A fresh database on the PostgreSQL server of [`postgres_url`]. Fails the test when that
    /// server does not answer: a PostgreSQL test runs or fails, and only `main` decides, before
    /// anything runs, to leave the PostgreSQL tests out (reported as ignored).
    pub async fn postgres() -> TestEnv {
        use sqlx::Connection as _;
        let base = postgres_url();
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} is unreachable: {e} (CI: .ci/run starts it)",
                    tessera_server::store::redact_url(&base)
                )
            });
        let name = format!("tessera_t_{}", std::process::id()) + &format!("_{:x}", rand_u64());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match base.rsplit_once('/') {
            Some((prefix, rest)) => {
                let query = rest
                    .split_once('?')
                    .map(|(_, q)| format!("?{q}"))
                    .unwrap_or_default();
                format!("{prefix}/{name}{query}")
            }
            None => panic!("TESSERA_TEST_POSTGRES_URL must name a database"),
        };
        let dir = tempfile::tempdir().unwrap();
        TestEnv {
            config: EnvConfig {
                data_dir: dir.path().to_path_buf(),
                database_url: Some(url),
                backend: Backend::Postgres,
            },
            _dir: dir,
            pg: Some((base, name)),
        }
    }

    /// Another environment on the same backend (a second, unrelated installation).
    pub async fn sibling(&self) -> TestEnv {
        match self.backend {
            Backend::Sqlite => TestEnv::sqlite(),
            Backend::Postgres => TestEnv::postgres().await,
        }
    }

    /// A second data directory (its own master key file) on the same database: a replica.
    pub fn replica(&self) -> (EnvConfig, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            EnvConfig {
                data_dir: dir.path().to_path_buf(),
                ..self.config.clone()
            },
            dir,
        )
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Drop on a thread of its own: this may run inside a test's runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sqlx::Connection as _;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

/// A test's future (run on a runtime of its own, as `#[tokio::test]` does).
pub type TestFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// One registered end-to-end test; `main` collects them all (`inventory`) and runs them with
/// libtest-mimic. Registered by [`both_backends!`] and [`e2e_test!`], never by hand.
pub struct E2eTest {
    /// `module::path::name`, without the crate name.
    pub name: &'static str,
    pub kind: Kind,
}

pub enum Kind {
    /// A plain test.
    Sync(fn()),
    /// An async test; `postgres` ones need the PostgreSQL server.
    Async {
        run: fn() -> TestFuture,
        postgres: bool,
        multi_thread: bool,
    },
    /// One backend's variant of a [`both_backends!`] test.
    Backend {
        backend: Backend,
        run: fn(TestEnv) -> TestFuture,
    },
}

inventory::collect!(E2eTest);

impl E2eTest {
    fn needs_postgres(&self) -> bool {
        match self.kind {
            Kind::Sync(_) => false,
            Kind::Async { postgres, .. } => postgres,
            Kind::Backend { backend, .. } => backend == Backend::Postgres,
        }
    }

    fn full_name(&self) -> String {
        let name = self.name.strip_prefix("e2e::").unwrap_or(self.name);
        match self.kind {
            Kind::Backend {
                backend: Backend::Sqlite,
                ..
            } => format!("{name}::sqlite"),
            Kind::Backend {
                backend: Backend::Postgres,
                ..
            } => format!("{name}::postgres"),
            _ => name.to_owned(),
        }
    }

    fn execute(&self) {
        let runtime = |multi: bool| {
            let mut b = if multi {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            } else {
                tokio::runtime::Builder::new_current_thread()
            };
            b.enable_all().build().unwrap()
        };
        match self.kind {
            Kind::Sync(f) => f(),
            Kind::Async {
                run, multi_thread, ..
            } => runtime(multi_thread).block_on(run()),
            Kind::Backend { backend, run } => runtime(false).block_on(async move {
                let env = match backend {
                    Backend::Sqlite => TestEnv::sqlite(),
                    Backend::Postgres => TestEnv::postgres().await,
                };
                run(env).await
            }),
        }
    }

    /// This test as a libtest-mimic trial: ignored, with the reason, when it needs PostgreSQL
    /// and [`postgres_probe`] found none.
    pub fn trial(&'static self, postgres: &Result<(), String>) -> libtest_mimic::Trial {
        let trial = libtest_mimic::Trial::test(self.full_name(), move || {
            self.execute();
            Ok(())
        });
        match postgres {
            Err(_) if self.needs_postgres() => trial.with_ignored_flag(true),
            _ => trial,
        }
    }
}

/// Stamp out each test once per backend: `name::sqlite` and `name::postgres`.
macro_rules! both_backends {
    ($( $(#[$m:meta])* async fn $name:ident($env:ident) $body:block )*) => {$(
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($env: $crate::harness::TestEnv) $body
            fn boxed(env: $crate::harness::TestEnv) -> $crate::harness::TestFuture {
                Box::pin(run(env))
            }
            inventory::submit! {
                $crate::harness::E2eTest {
                    name: module_path!(),
                    kind: $crate::harness::Kind::Backend { backend: $crate::harness::Backend::Sqlite, run: boxed },
                }
            }
            inventory::submit! {
                $crate::harness::E2eTest {
                    name: module_path!(),
                    kind: $crate::harness::Kind::Backend { backend: $crate::harness::Backend::Postgres, run: boxed },
                }
            }
        }
    )*};
}
pub(crate) use both_backends;

/// Register one test: `fn name() {…}` (plain), `async fn name() {…}`, `postgres async fn …`
/// (needs the PostgreSQL server), `postgres multi_thread async fn …` (two worker threads).
macro_rules! e2e_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        fn $name() $body
        inventory::submit! {
            $crate::harness::E2eTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                kind: $crate::harness::Kind::Sync($name),
            }
        }
    };
    ($(#[$m:meta])* async fn $name:ident() $body:block) => {
        $crate::harness::e2e_test!(@async false false [$(#[$m])*] $name $body);
    };
    ($(#[$m:meta])* postgres async fn $name:ident() $body:block) => {
        $crate::harness::e2e_test!(@async true false [$(#[$m])*] $name $body);
    };
    ($(#[$m:meta])* postgres multi_thread async fn $name:ident() $body:block) => {
        $crate::harness::e2e_test!(@async true true [$(#[$m])*] $name $body);
    };
    (@async $pg:literal $multi:literal [$(#[$m:meta])*] $name:ident $body:block) => {
        $(#[$m])*
        fn $name() -> $crate::harness::TestFuture {
            Box::pin(async move $body)
        }
        inventory::submit! {
            $crate::harness::E2eTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                kind: $crate::harness::Kind::Async { run: $name, postgres: $pg, multi_thread: $multi },
            }
        }
    };
}
pub(crate) use e2e_test;
