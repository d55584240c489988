//! Several replicas on one PostgreSQL database, and database outages. PostgreSQL only: like
//! every PostgreSQL test, these fail in CI and skip elsewhere when TESSERA_TEST_POSTGRES_URL is
//! not set.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::*;

pub(crate) fn master_key() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    STANDARD.encode(b)
}

async fn jwks(server: &Server) -> Value {
    get_json(server, "/jwks.json").await
}

e2e_test! {
postgres async fn two_replicas_share_keys_and_clients_and_see_changes_at_once() {
    let env = TestEnv::postgres().await;
    let key = master_key();
    let menv = [("TESSERA_MASTER_KEY", key.as_str())];
    // A 60 s poll: anything faster than that is LISTEN/NOTIFY at work.
    let slow = [
        "--signing-alg",
        "ES256",
        "--refresh-interval-ms",
        "60000",
        "--issuer",
        "http://tessera.replicas",
    ];
    let a = env.start_env(&slow, &menv);
    let (replica, _dir) = env.replica();
    let b = replica.start_env(&slow, &menv);
    assert_eq!(jwks(&a).await, jwks(&b).await, "same JWKS");
    let active = |v: Value| v["signing_kid"].clone();
    assert_eq!(
        active(get_json(&a, "/readyz").await),
        active(get_json(&b, "/readyz").await),
        "same active key"
    );

    let c = env.create_client(&[
        "--name",
        "svc",
        "--scope",
        "s2s:internal",
        "--audience",
        "https://orders",
    ]);
    let ta: Value = token_basic(&a, &c, "grant_type=client_credentials")
        .await
        .json()
        .await
        .unwrap();
    let tb: Value = token_basic(&b, &c, "grant_type=client_credentials")
        .await
        .json()
        .await
        .unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks(&b).await).unwrap();
    verify_with(
        &set,
        "http://tessera.replicas",
        ta["access_token"].as_str().unwrap(),
        "https://orders",
    );
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks(&a).await).unwrap();
    verify_with(
        &set,
        "http://tessera.replicas",
        tb["access_token"].as_str().unwrap(),
        "https://orders",
    );

    env.cli_json(&["client", "disable", &c.id, "--output", "json"]);
    let start = Instant::now();
    for s in [&a, &b] {
        assert!(
            status_becomes(
                s,
                &c,
                "grant_type=client_credentials",
                401,
                Duration::from_secs(5)
            )
            .await,
            "a disabled client is refused by every replica"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "well before the 60 s poll: NOTIFY"
    );
}
}

e2e_test! {
postgres async fn replicas_starting_together_on_an_empty_database_create_one_key() {
    let env = TestEnv::postgres().await;
    let key = master_key();
    env.cli(&["migrate"]); // both would migrate too; this keeps the race on the key alone
    let mut handles = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let (cfg, dir) = env.replica();
        dirs.push(dir);
        let key = key.clone();
        handles.push(std::thread::spawn(move || {
            cfg.start_env(&["--signing-alg", "ES256"], &[("TESSERA_MASTER_KEY", &key)])
        }));
    }
    let servers: Vec<Server> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = jwks(&servers[0]).await;
    assert_eq!(
        first["keys"].as_array().unwrap().len(),
        1,
        "exactly one signing key"
    );
    for s in &servers[1..] {
        assert_eq!(jwks(s).await, first);
    }
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(env.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "three replicas started at once stored exactly one key"
    );
}
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, so one test's outage
/// does not stop the database the other tests use.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !u.load(Ordering::SeqCst) {
                    drop(inbound); // the database is "down": close at once
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

e2e_test! {
postgres multi_thread async fn database_outage_gives_503_then_recovers_by_itself() {
    let env = TestEnv::postgres().await;
    let url = env.database_url.clone().unwrap();
    let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    assert!(
        url.contains("127.0.0.1:5432"),
        "this test proxies the local server: {url}"
    );
    let proxy = Proxy::start(upstream).await;
    let proxied = EnvConfig {
        database_url: Some(url.replace("127.0.0.1:5432", &proxy.addr.to_string())),
        ..env.config.clone()
    };
    // A short --max-stale: past it, even known clients with verified secrets are refused.
    let server = proxied.start(&["--signing-alg", "ES256", "--max-stale", "3s"]);
    let c = env.create_client(&["--name", "svc", "--scope", "a"]);
    assert_eq!(
        token_basic(&server, &c, "grant_type=client_credentials")
            .await
            .status(),
        200
    );

    proxy.cut();
    let bounded = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let unavailable = eventually(Duration::from_secs(15), || async {
        let r = bounded()
            .post(server.url("/oauth/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("answered within the bound, no hang");
        if r.status() != 503 {
            return false;
        }
        assert!(r.headers().contains_key("retry-after"));
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"], "temporarily_unavailable");
        true
    })
    .await;
    assert!(
        unavailable,
        "token endpoint answers 503 while the database is unreachable"
    );
    let ready = bounded()
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz answers");
    assert_eq!(ready.status(), 503);
    // A client the server has never seen: 503 too, not invalid_client.
    let unknown = TestClient {
        id: "tc_unknownxxxxxxxxxxxxxx".into(),
        secret: "tss_x".into(),
    };
    assert_eq!(
        token_basic(&server, &unknown, "grant_type=client_credentials")
            .await
            .status(),
        503
    );

    proxy.restore();
    let back = eventually(Duration::from_secs(20), || async {
        token_basic(&server, &c, "grant_type=client_credentials")
            .await
            .status()
            == 200
            && http()
                .get(server.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                == 200
    })
    .await;
    assert!(back, "service resumes by itself after the database returns");
    assert!(
        server.logs().contains("registry refresh failed") || server.logs().contains("timed out")
    );
}
}
