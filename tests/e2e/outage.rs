//! Availability through a database outage (issue 14, item 6), across a real PostgreSQL stop and
//! start: a private PostgreSQL cluster of its own (the shared server stays up for every other
//! test), made with the machine's `initdb` and `pg_ctl`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::e2e_test;
use crate::harness::*;

/// A throwaway PostgreSQL cluster on 127.0.0.1.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (the test's dependency)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        // initdb refuses to run as root: then run the cluster as the postgres user.
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if as_postgres {
            assert!(Command::new("chown")
                .args(["postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap()
                .success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data();
        let out = pg
            .run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool).display().to_string();
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]);
            c
        } else {
            Command::new(exe)
        };
        c.args(args);
        c
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let out = self
            .run(
                "pg_ctl",
                &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let out = self
            .run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

e2e_test! {
    /// A PostgreSQL outage: known clients with verified secrets keep getting tokens for
    /// --max-stale; an unknown id and a secret not yet verified get 503 (never 401); past the
    /// bound everything does; when the database is back, everything works again and a client
    /// created before the outage but first used after it is accepted.
    postgres async fn known_clients_are_served_through_a_database_outage() {
        let pg = PrivatePostgres::start();
        let dir = tempfile::tempdir().unwrap();
        let env = EnvConfig {
            data_dir: dir.path().to_path_buf(),
            database_url: Some(pg.url()),
            backend: Backend::Postgres,
        };
        let server = env.start(&["--refresh-interval-ms", "200", "--max-stale", "8s"]);
        let warm = env.create_client(&["--name", "warm", "--scope", "a"]);
        let cold = env.create_client(&["--name", "cold", "--scope", "a"]);
        let form = "grant_type=client_credentials";
        assert_eq!(token_basic(&server, &warm, form).await.status(), 200);
        // A private_key_jwt client: its assertions need the shared replay store.
        let key = crate::issuer::TestKey::es256();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, serde_json::json!({"keys": [key.jwk(Some("k"), serde_json::json!({}))]}).to_string()).unwrap();
        let v = env.cli_json(&["client", "create", "--output", "json", "--name", "signer", "--scope", "a",
            "--auth", "private_key_jwt", "--jwks-file", jwks.to_str().unwrap()]);
        let signer = v["client_id"].as_str().unwrap().to_owned();
        let assertion = |n: u32| {
            let t = crate::issuer::now();
            key.sign(serde_json::json!({"kid": "k"}), &serde_json::json!({"iss": signer, "sub": signer,
                "aud": server.base, "iat": t, "exp": t + 60, "jti": format!("outage-{n}")}))
        };
        let with_assertion = |jwt: String| {
            let url = server.url("/oauth/token");
            async move {
                http().post(url).form(&[("grant_type", "client_credentials"),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", jwt.as_str())]).send().await.unwrap()
            }
        };
        assert!(eventually(Duration::from_secs(3), || async { with_assertion(assertion(0)).await.status() == 200 }).await);

        pg.down();
        let down_at = Instant::now();
        // Within the bound: the warm client is served from the snapshot; what needs the
        // database is "retry".
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for _ in 0..5 {
            assert_eq!(token_basic(&server, &warm, form).await.status(), 200, "warm, {:?} into the outage", down_at.elapsed());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Still ready: a balancer must keep sending the traffic the snapshot can serve.
        let ready = http().get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "degraded");
        let r = token_basic(&server, &cold, form).await;
        assert_eq!(r.status(), 503, "a secret not yet verified cannot be checked");
        assert!(r.headers().contains_key("retry-after"));
        // An assertion whose jti cannot be recorded is never accepted: 503, not a token.
        let r = with_assertion(assertion(1)).await;
        assert_eq!(r.status(), 503, "replay store unreachable");
        assert!(r.headers().contains_key("retry-after"));
        let ghost = TestClient { id: "tc_ghost".into(), secret: "x".into() };
        assert_eq!(token_basic(&server, &ghost, form).await.status(), 503, "an unknown id is not 'unknown' while the database is down");
        // Past --max-stale: everything is refused.
        assert!(eventually(Duration::from_secs(10), || async {
            token_basic(&server, &warm, form).await.status() == 503
        }).await, "refused past --max-stale");
        // The bound runs from the last refresh that reached the database, up to one refresh
        // interval (200 ms) before the stop.
        assert!(down_at.elapsed() >= Duration::from_millis(7700), "not before the bound");
        assert_eq!(http().get(server.url("/readyz")).send().await.unwrap().status(), 503, "not ready past the bound");

        pg.up();
        assert!(eventually(Duration::from_secs(15), || async {
            token_basic(&server, &warm, form).await.status() == 200
        }).await, "back when the database is");
        assert_eq!(token_basic(&server, &cold, form).await.status(), 200);
        assert_eq!(token_basic(&server, &ghost, form).await.status(), 401);
    }
}
