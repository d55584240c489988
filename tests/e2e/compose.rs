//! Docker cannot run on the build machine, so the deployment files are checked for structure:
//! the services, images, ports, health checks and environment that a `docker compose up` needs,
//! and that every setting they pass is one the binaries actually read.

use std::collections::BTreeSet;

use serde_norway::Value;

use crate::harness::{e2e_test, BIN};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(*k)
            .unwrap_or_else(|| panic!("docker-compose.yml: missing {}", path.join(".")))
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

e2e_test! {
fn compose_file_has_postgres_two_replicas_and_the_resource_service() {
    let compose: Value = serde_norway::from_str(
        &std::fs::read_to_string(root().join("docker-compose.yml")).unwrap(),
    )
    .unwrap();
    let services = s(&compose, &["services"]).as_mapping().unwrap();
    let names: BTreeSet<String> = services.keys().map(text).collect();
    assert_eq!(
        names,
        ["postgres", "resource-service", "tessera-1", "tessera-2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    for name in ["postgres", "tessera-1", "tessera-2", "resource-service"] {
        let svc = s(&compose, &["services", name]);
        assert!(svc.get("image").is_some(), "{name}: image");
        let test = s(svc, &["healthcheck", "test"]).as_sequence().unwrap();
        assert!(!test.is_empty(), "{name}: health check");
    }
    assert!(text(s(&compose, &["services", "postgres", "image"])).starts_with("postgres:"));

    let help = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut issuers = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for name in ["tessera-1", "tessera-2"] {
        let svc = s(&compose, &["services", name]);
        assert_eq!(text(s(svc, &["image"])), "tessera:local");
        let env = s(svc, &["environment"]).as_mapping().unwrap();
        for k in env.keys().map(text) {
            assert!(
                help.contains(&format!("env: {k}")) || k == "TESSERA_DATABASE_URL",
                "{name}: {k} is not a tessera setting"
            );
        }
        let db = text(s(svc, &["environment", "TESSERA_DATABASE_URL"]));
        assert!(
            db.starts_with("postgres://") && db.contains("@postgres:5432/"),
            "{name}: database {db}"
        );
        issuers.insert(text(s(svc, &["environment", "TESSERA_ISSUER"])));
        keys.insert(text(s(svc, &["environment", "TESSERA_MASTER_KEY"])));
        assert_eq!(
            text(s(svc, &["depends_on", "postgres", "condition"])),
            "service_healthy"
        );
        let aliases: Vec<String> = s(svc, &["networks", "default", "aliases"])
            .as_sequence()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        assert!(aliases.contains(&"tessera".to_string()));
        let cmd: Vec<String> = s(svc, &["command"])
            .as_sequence()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        assert_eq!(cmd.first().map(String::as_str), Some("serve"));
        // `serve` refuses a plain-HTTP issuer on a non-loopback address unless told otherwise.
        let issuer = text(s(svc, &["environment", "TESSERA_ISSUER"]));
        let listen = cmd.iter().skip_while(|a| *a != "--listen").nth(1);
        if issuer.starts_with("http://") && listen.is_some_and(|l| !l.starts_with("127.")) {
            let tls = env.keys().map(text).any(|k| k == "TESSERA_TLS_CERT");
            let insecure = env
                .iter()
                .find(|(k, _)| text(k) == "TESSERA_INSECURE_HTTP")
                .map(|(_, v)| text(v));
            assert!(
                tls || insecure.as_deref() == Some("true"),
                "{name}: an http:// issuer on {listen:?} needs TESSERA_INSECURE_HTTP or TLS"
            );
        }
        for p in s(svc, &["ports"]).as_sequence().unwrap() {
            let p = text(p);
            assert!(p.ends_with(":8080"), "{name}: container port 8080, got {p}");
            ports.insert(p.split(':').next().unwrap().to_string());
        }
    }
    assert_eq!(issuers.len(), 1, "both replicas must have the same issuer");
    assert_eq!(keys.len(), 1, "both replicas must share the master key");
    assert!(
        keys.iter().next().unwrap().contains("${TESSERA_MASTER_KEY"),
        "the master key comes from the operator"
    );
    assert_eq!(
        ports.len(),
        2,
        "replicas are published on different host ports"
    );
    assert!(s(&compose, &["services", "tessera-1", "build"]).is_string());

    let rs = s(&compose, &["services", "resource-service"]);
    assert_eq!(
        text(s(rs, &["environment", "TESSERA_ISSUER"])),
        *issuers.iter().next().unwrap(),
        "resource service trusts the replicas' issuer"
    );
    let example = std::fs::read_to_string(
        root().join("crates/tessera-verifier/examples/resource-service.rs"),
    )
    .unwrap();
    for k in s(rs, &["environment"])
        .as_mapping()
        .unwrap()
        .keys()
        .map(text)
    {
        assert!(
            example.contains(&format!("\"{k}\"")),
            "resource-service does not read {k}"
        );
    }
    let entry: Vec<String> = s(rs, &["entrypoint"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(entry, ["resource-service"]);
    assert!(s(&compose, &["volumes"]).get("pgdata").is_some());
}
}

e2e_test! {
fn dockerfile_is_multi_stage_and_ships_both_binaries() {
    let df = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(
        froms.len() >= 2 && froms[0].contains(" AS build"),
        "multi-stage: {froms:?}"
    );
    assert!(df.contains("--bin tessera") && df.contains("--example resource-service"));
    assert!(df.contains("COPY --from=build /src/target/release/tessera "));
    assert!(df.contains("COPY --from=build /src/target/release/examples/resource-service "));
    assert!(df.contains("USER tessera"), "runs unprivileged");
    assert!(df.contains("curl"), "the health checks use curl");
    assert!(df.contains("HEALTHCHECK"));
}
}
