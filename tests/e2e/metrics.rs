//! Prometheus metrics (issue 12): `/metrics` on its own listener counts exactly what a test did,
//! per-client series only when asked for, nothing on the main listener, no listener without
//! `--metrics-listen`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::harness::both_backends;
use crate::harness::*;

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition (text format 0.0.4).
struct Exposition {
    samples: Vec<Sample>,
    text: String,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_owned(),
                    parse_labels(rest.strip_suffix('}').expect("closing brace")),
                ),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Exposition {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// [`Exposition::get`], failing the test when the sample is absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{}", self.text))
    }

    /// The sum over every sample named `name`.
    fn sum(&self, name: &str) -> f64 {
        self.named(name).map(|s| s.value).sum()
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

/// `k="v",k2="v2"` with the format's escapes (`\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} opens with a quote");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

async fn scrape(server: &Server) -> Exposition {
    let base = server
        .metrics
        .as_deref()
        .expect("the start line names the metrics listener (metrics=…)");
    let resp = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers()["content-type"]
    );
    Exposition::parse(&resp.text().await.unwrap())
}

/// Scrape until `ready` holds (state the registry picks up within a refresh), at most 10 s.
async fn scrape_until(
    server: &Server,
    what: &str,
    ready: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(server).await;
        if ready(&m) {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}:
{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// TCP sockets in LISTEN state that process `pid` holds (Linux: its fds' socket inodes, looked
/// up in its network namespace's `/proc/<pid>/net/tcp{,6}`).
fn listening_sockets(pid: u32) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut n = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st (column 4) 0A is LISTEN; the inode is column 10.
            if cols.get(3) == Some(&"0A") && cols.get(9).is_some_and(|i| inodes.contains(*i)) {
                n += 1;
            }
        }
    }
    n
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A client that expires in three days, and one (returned) whose last secret expires in
/// twelve hours.
fn expiring_credentials(env: &TestEnv) -> TestClient {
    let now = unix_now();
    env.create_client(&[
        "--name",
        "leaving",
        "--scope",
        "s2s:internal",
        "--expires-at",
        &(now + 3 * 86_400).to_string(),
    ]);
    let rotating = env.create_client(&["--name", "rotating", "--scope", "s2s:internal"]);
    let out = env.cli(&[
        "client",
        "rotate-secret",
        &rotating.id,
        "--grace",
        "0s",
        "--expires-at",
        &(now + 12 * 3_600).to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rotating
}

const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
const AUTH_FAILURES: &str = "tessera_client_auth_failures_total";
const OAUTH_ERRORS: &str = "tessera_oauth_errors_total";
const LATENCY_COUNT: &str = "tessera_http_request_duration_seconds_count";
const EXPIRING: &str = "tessera_credentials_expiring";
const SOONEST: &str = "tessera_credentials_soonest_expiry_seconds";

both_backends! {
/// N tokens, M wrong secrets, one unknown client and one invalid_scope: the counters say
/// exactly that; the latency histogram has the token endpoint (and no path nobody routes);
/// the expiry gauges see a client and a secret about to expire; the process is described; no
/// per-client series, no secret, no made-up id in the output; `/metrics` is not on the main
/// listener, and the metrics listener is the process's second listening socket.
async fn metrics_count_what_the_test_did(env) {
    let server = env.start(&["--metrics-listen", "127.0.0.1:0", "--signing-alg", "ES256"]);
    let c = env.create_client(&["--name", "metered", "--scope", "s2s:internal"]);
    let now = unix_now();
    expiring_credentials(&env);

    const N: usize = 4;
    const M: usize = 3;
    for _ in 0..N {
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
    }
    let wrong = TestClient { id: c.id.clone(), secret: "not-the-secret-7f3a".into() };
    for _ in 0..M {
        assert_eq!(token_basic(&server, &wrong, "grant_type=client_credentials").await.status(), 401);
    }
    let stranger = TestClient { id: "tc_made_up_by_a_caller".into(), secret: "whatever-9d".into() };
    assert_eq!(token_basic(&server, &stranger, "grant_type=client_credentials").await.status(), 401);
    let resp = token_basic(&server, &c, "grant_type=client_credentials&scope=nope").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["error"], "invalid_scope");
    // Neither a path nobody routes nor /metrics is served on the main listener.
    for path in ["/metrics", "/no/such/path"] {
        assert_eq!(http().get(server.url(path)).send().await.unwrap().status(), 404, "{path}");
    }

    // The expiry gauges follow the registry, which picks up the CLI's changes within a refresh.
    let m = scrape_until(&server, "the expiry gauges never showed both clients", |m| {
        m.get(EXPIRING, &[("kind", "secret"), ("within", "1d")]) == Some(1.0)
            && m.get(EXPIRING, &[("kind", "client"), ("within", "7d")]) == Some(1.0)
    })
    .await;

    // Tokens, by grant, algorithm and method.
    let issued = [("grant", "client_credentials"), ("alg", "ES256"), ("auth_method", "client_secret_basic")];
    assert_eq!(m.value(TOKENS_ISSUED, &issued), N as f64);
    assert_eq!(m.sum(TOKENS_ISSUED), N as f64);
    // Authentication failures, by reason: every reason is there, most at zero.
    assert_eq!(m.value(AUTH_FAILURES, &[("reason", "bad_secret")]), M as f64);
    assert_eq!(m.value(AUTH_FAILURES, &[("reason", "unknown_client")]), 1.0);
    assert_eq!(m.value(AUTH_FAILURES, &[("reason", "throttled")]), 0.0);
    assert_eq!(m.sum(AUTH_FAILURES), (M + 1) as f64);
    // RFC errors, by code.
    assert_eq!(m.value(OAUTH_ERRORS, &[("error", "invalid_client")]), (M + 1) as f64);
    assert_eq!(m.value(OAUTH_ERRORS, &[("error", "invalid_scope")]), 1.0);
    assert_eq!(m.sum(OAUTH_ERRORS), (M + 2) as f64);
    // Latency: every token request, under the route; the 404s under no endpoint at all.
    let token_requests = (N + M + 2) as f64;
    assert_eq!(m.value(LATENCY_COUNT, &[("endpoint", "/oauth/token")]), token_requests);
    assert_eq!(
        m.value("tessera_http_request_duration_seconds_bucket", &[("endpoint", "/oauth/token"), ("le", "+Inf")]),
        token_requests
    );
    let endpoints: Vec<&str> = m.named(LATENCY_COUNT).map(|s| s.labels["endpoint"].as_str()).collect();
    assert_eq!(endpoints, ["/oauth/token"], "only the routes requests matched");
    // argon2id: the first right secret and the three wrong ones (the unknown id costs none).
    assert_eq!(m.value("tessera_argon2_checks_total", &[]), 4.0);
    assert_eq!(m.value("tessera_argon2_checks_running", &[]), 0.0);
    assert_eq!(m.value("tessera_argon2_checks_queued", &[]), 0.0);
    assert_eq!(m.value("tessera_argon2_checks_refused_total", &[("reason", "queue_full")]), 0.0);
    assert_eq!(m.value("tessera_argon2_checks_refused_total", &[("reason", "failure_budget")]), 0.0);
    // The registry and the database are healthy.
    assert!(m.value("tessera_registry_snapshot_age_seconds", &[]) < 30.0);
    assert_eq!(m.value("tessera_registry_refresh_failures_total", &[]), 0.0);
    assert_eq!(m.sum("tessera_database_errors_total"), 0.0);
    assert!(m.get("tessera_database_errors_total", &[("kind", "unavailable")]).is_some());
    // No rotation under way, none scheduled.
    assert_eq!(m.get("tessera_signing_key_retires_in_seconds", &[]), None);
    assert_eq!(m.get("tessera_key_rotation_due_in_seconds", &[]), None);
    // Expiries: the client in three days, the secret in twelve hours.
    let client_left = m.value(SOONEST, &[("kind", "client")]);
    assert!((3.0 * 86_400.0 - 120.0..=3.0 * 86_400.0).contains(&client_left), "{client_left}");
    let secret_left = m.value(SOONEST, &[("kind", "secret")]);
    assert!((12.0 * 3_600.0 - 120.0..=12.0 * 3_600.0).contains(&secret_left), "{secret_left}");
    assert_eq!(m.value(EXPIRING, &[("kind", "client"), ("within", "1d")]), 0.0);
    assert_eq!(m.value(EXPIRING, &[("kind", "secret"), ("within", "7d")]), 1.0);
    // The process.
    assert!(m.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.value("process_cpu_seconds_total", &[]) > 0.0);
    assert!(m.value("process_open_fds", &[]) >= 3.0);
    assert!(m.value("process_max_fds", &[]) >= m.value("process_open_fds", &[]));
    assert!(m.value("process_threads", &[]) >= 1.0);
    let started = m.value("process_start_time_seconds", &[]);
    assert!((now as f64 - 600.0..=now as f64 + 5.0).contains(&started), "{started}");
    // Opt-in series are absent; no credential and no caller-made id is anywhere.
    assert!(!m.samples.iter().any(|s| s.name.starts_with("tessera_per_client_")), "{}", m.text);
    assert!(!m.samples.iter().any(|s| s.labels.contains_key("client_id")));
    for needle in [c.secret.as_str(), "not-the-secret-7f3a", "tc_made_up_by_a_caller", c.id.as_str()] {
        assert!(!m.text.contains(needle), "{needle} in the metrics");
    }
    // The main listener and the metrics one.
    assert_eq!(listening_sockets(server.pid()), 2);
}

/// With `--metrics-per-client`, the same counts per registered client and each expiring
/// client's own gauge; an id nobody registered is still never a label.
async fn per_client_series_are_opt_in(env) {
    let server = env.start(&["--metrics-listen", "127.0.0.1:0", "--metrics-per-client"]);
    let now = unix_now();
    let c = env.create_client(&[
        "--name", "watched", "--scope", "s2s:internal",
        "--expires-at", &(now + 2 * 86_400).to_string(),
    ]);
    let other = env.create_client(&["--name", "other", "--scope", "s2s:internal"]);
    for _ in 0..2 {
        assert_eq!(token_basic(&server, &c, "grant_type=client_credentials").await.status(), 200);
    }
    assert_eq!(token_basic(&server, &other, "grant_type=client_credentials").await.status(), 200);
    let wrong = TestClient { id: c.id.clone(), secret: "not-the-secret-51c2".into() };
    assert_eq!(token_basic(&server, &wrong, "grant_type=client_credentials").await.status(), 401);
    let stranger = TestClient { id: "tc_nobody_registered_me".into(), secret: "x-5e".into() };
    assert_eq!(token_basic(&server, &stranger, "grant_type=client_credentials").await.status(), 401);

    let per_client = [("client_id", c.id.as_str()), ("kind", "client")];
    let m = scrape_until(&server, "no expiry series for the client", |m| {
        m.get("tessera_per_client_expiry_seconds", &per_client).is_some()
    })
    .await;
    let tokens = "tessera_per_client_tokens_issued_total";
    assert_eq!(m.value(tokens, &[("client_id", c.id.as_str())]), 2.0);
    assert_eq!(m.value(tokens, &[("client_id", other.id.as_str())]), 1.0);
    assert_eq!(m.sum(tokens), 3.0);
    let failures = "tessera_per_client_auth_failures_total";
    assert_eq!(m.value(failures, &[("client_id", c.id.as_str()), ("reason", "bad_secret")]), 1.0);
    assert_eq!(m.sum(failures), 1.0, "the unknown id is counted only in the aggregate");
    assert_eq!(m.value(AUTH_FAILURES, &[("reason", "unknown_client")]), 1.0);
    let left = m.value("tessera_per_client_expiry_seconds", &per_client);
    assert!((2.0 * 86_400.0 - 120.0..=2.0 * 86_400.0).contains(&left), "{left}");
    // The client without an expiry has no expiry series.
    assert!(!m
        .named("tessera_per_client_expiry_seconds")
        .any(|s| s.labels["client_id"] == other.id));
    assert!(!m.text.contains("tc_nobody_registered_me"));
    assert!(!m.text.contains("not-the-secret-51c2"));
}

/// With more clients than `--client-cache`, the expiry gauges come from the database (not from
/// the clients in memory), so a client that has not called since start is still counted; the
/// registry gauges say how many clients are held and how many were evicted.
async fn expiry_gauges_beyond_the_client_cache(env) {
    // The cache holds 2 of 8 clients, and these two never call.
    let rotating = expiring_credentials(&env);
    let mut callers = Vec::new();
    for i in 0..6 {
        callers.push(env.create_client(&["--name", &format!("caller{i}"), "--scope", "s2s:internal"]));
    }
    let server = env.start(&["--metrics-listen", "127.0.0.1:0", "--client-cache", "2", "--metrics-per-client"]);
    for c in &callers {
        assert_eq!(token_basic(&server, c, "grant_type=client_credentials").await.status(), 200);
    }
    let m = scrape(&server).await;
    assert_eq!(m.get(EXPIRING, &[("kind", "secret"), ("within", "1d")]), Some(1.0));
    assert_eq!(m.get(EXPIRING, &[("kind", "client"), ("within", "7d")]), Some(1.0));
    assert_eq!(m.get(EXPIRING, &[("kind", "client"), ("within", "1d")]), Some(0.0));
    let soonest = m.value(SOONEST, &[("kind", "secret")]);
    assert!((12.0 * 3_600.0 - 120.0..=12.0 * 3_600.0).contains(&soonest), "{soonest}");
    let per_client = [("client_id", rotating.id.as_str()), ("kind", "secret")];
    let left = m.value("tessera_per_client_expiry_seconds", &per_client);
    assert!((12.0 * 3_600.0 - 120.0..=12.0 * 3_600.0).contains(&left), "{left}");
    assert!(m.value("tessera_registry_clients", &[]) <= 2.0);
    assert!(m.value("tessera_registry_evicted_total", &[]) >= 4.0);
}
}

e2e_test! {
/// Without `--metrics-listen` there is no metrics listener (one listening socket: the main
/// one), and `--metrics-per-client` alone is refused at start-up.
async fn without_the_flag_no_metrics_listener() {
    let env = TestEnv::sqlite();
    let server = env.start(&[]);
    assert_eq!(server.metrics, None);
    assert_eq!(server.admin, None);
    assert_eq!(listening_sockets(server.pid()), 1);
    assert_eq!(http().get(server.url("/metrics")).send().await.unwrap().status(), 404);

    let mut refused = std::process::Command::new(BIN)
        .args(["--data-dir", &env.data_dir.display().to_string(), "serve", "--metrics-per-client"])
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = refused.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            panic!("--metrics-per-client without --metrics-listen started a server");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(refused.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("--metrics-per-client needs --metrics-listen"), "{err}");
}
}
