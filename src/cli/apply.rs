//! `tessera apply -f tessera.yaml`: reconcile clients and trusts with a file kept in git
//! (GitOps). Clients and trusts are matched by name. What is missing is created, what differs
//! is changed, clients no longer in the file are disabled (deleted with `--prune`), trusts no
//! longer in the file are removed with `--prune`. The plan is printed first; `--dry-run` stops
//! there. A second apply of the same file changes nothing and says so. Secrets are never in the
//! file: new clients' secrets are printed once, or written to `--secrets-out` (mode 0600).
//! Works on the database and with `--server`, through the same admin API.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::{segment, Api};

#[derive(Args)]
pub(crate) struct ApplyArgs {
    /// The desired state: a YAML (or JSON) file with `clients` and `trusts`.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete clients and remove trusts that are not in the file (without it, such clients are
    /// disabled and such trusts left alone).
    #[arg(long)]
    prune: bool,
    /// Write the new clients' secrets to this file (JSON, mode 0600) instead of printing them.
    #[arg(long)]
    secrets_out: Option<PathBuf>,
}

/// The file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Desired {
    #[serde(default)]
    clients: Vec<ClientSpec>,
    #[serde(default)]
    trusts: Vec<TrustSpec>,
}

/// A client as the file describes it; what is left out takes the default a new client gets.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ClientSpec {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_ttl")]
    token_ttl: u32,
    #[serde(default = "yes")]
    enabled: bool,
    expires_at: Option<String>,
    /// `client_secret_basic` (the default) or `private_key_jwt`.
    token_endpoint_auth_method: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    #[serde(default)]
    claims: Map<String, Value>,
    max_tokens_per_minute: Option<u32>,
}

/// A trust as the file describes it; `client` is a client's name in the file.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TrustSpec {
    name: String,
    issuer: Option<String>,
    spiffe_trust_domain: Option<String>,
    audience: String,
    subject: String,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    jwks_uri: Option<String>,
    max_token_age: Option<u32>,
    client: String,
}

fn default_ttl() -> u32 {
    300
}

fn yes() -> bool {
    true
}

/// One step of the plan.
enum Step {
    Create(ClientSpec),
    Update {
        id: String,
        name: String,
        patch: Map<String, Value>,
        changes: Vec<String>,
    },
    Disable {
        id: String,
        name: String,
    },
    Delete {
        id: String,
        name: String,
    },
    AddTrust(TrustSpec),
    ReplaceTrust {
        spec: TrustSpec,
        changes: Vec<String>,
    },
    RemoveTrust(String),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Create(c) => format!("+ client {} (create)", c.name),
            Step::Update { name, changes, .. } => {
                format!("~ client {name}: {}", changes.join(", "))
            }
            Step::Disable { name, .. } => format!("- client {name} (disable: not in the file)"),
            Step::Delete { name, .. } => format!("- client {name} (delete: not in the file)"),
            Step::AddTrust(t) => format!("+ trust {} (add)", t.name),
            Step::ReplaceTrust { spec, changes } => {
                format!("~ trust {} (replace): {}", spec.name, changes.join(", "))
            }
            Step::RemoveTrust(name) => format!("- trust {name} (remove: not in the file)"),
        }
    }
}

pub(crate) async fn run(api: &Api, args: ApplyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let desired: Desired = serde_norway::from_str(&text)
        .with_context(|| format!("{}: not a Tessera configuration", args.file.display()))?;
    check_unique(desired.clients.iter().map(|c| c.name.as_str()), "client")?;
    check_unique(desired.trusts.iter().map(|t| t.name.as_str()), "trust")?;

    let current = all_clients(api).await?;
    let mut by_name: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for c in &current {
        by_name.entry(s(c, "name")).or_default().push(c);
    }
    let mut plan = Vec::new();
    let mut unchanged = 0usize;
    for spec in &desired.clients {
        match by_name.get(spec.name.as_str()).map(Vec::as_slice) {
            None => plan.push(Step::Create(spec.clone())),
            Some([c]) => {
                let (patch, changes) = diff_client(spec, c)?;
                if patch.is_empty() {
                    unchanged += 1;
                } else {
                    plan.push(Step::Update {
                        id: s(c, "client_id").to_owned(),
                        name: spec.name.clone(),
                        patch,
                        changes,
                    });
                }
            }
            Some(_) => anyhow::bail!(
                "several clients are named '{}': apply matches clients by name; rename or delete the others first",
                spec.name
            ),
        }
    }
    let wanted: BTreeSet<&str> = desired.clients.iter().map(|c| c.name.as_str()).collect();
    let me = api.caller_id();
    for c in &current {
        let (id, name) = (s(c, "client_id"), s(c, "name"));
        if wanted.contains(name) || me.as_deref() == Some(id) {
            // The client making this call is never disabled by it.
            continue;
        }
        let (id, name) = (id.to_owned(), name.to_owned());
        if args.prune {
            plan.push(Step::Delete { id, name });
        } else if c["enabled"] == true {
            plan.push(Step::Disable { id, name });
        }
    }

    // Trusts name their client by its name in the file.
    let trusts = api.get("/trusts").await?;
    let trusts = trusts["trusts"].as_array().cloned().unwrap_or_default();
    let id_of = |name: &str| -> Option<String> {
        by_name
            .get(name)
            .and_then(|v| v.first())
            .map(|c| s(c, "client_id").to_owned())
    };
    for spec in &desired.trusts {
        if !wanted.contains(spec.client.as_str()) {
            anyhow::bail!(
                "trust '{}' names client '{}', which is not in the file",
                spec.name,
                spec.client
            );
        }
        match trusts.iter().find(|t| s(t, "name") == spec.name) {
            None => plan.push(Step::AddTrust(spec.clone())),
            Some(t) => {
                let changes = diff_trust(spec, t, id_of(&spec.client).as_deref());
                if changes.is_empty() {
                    unchanged += 1;
                } else {
                    plan.push(Step::ReplaceTrust {
                        spec: spec.clone(),
                        changes,
                    });
                }
            }
        }
    }
    let wanted_trusts: BTreeSet<&str> = desired.trusts.iter().map(|t| t.name.as_str()).collect();
    for t in &trusts {
        if !wanted_trusts.contains(s(t, "name")) {
            if args.prune {
                plan.push(Step::RemoveTrust(s(t, "name").to_owned()));
            } else {
                eprintln!(
                    "note: trust {} is not in the file (--prune removes it)",
                    s(t, "name")
                );
            }
        }
    }

    if plan.is_empty() {
        println!("no changes: {unchanged} clients and trusts already as the file says");
        return Ok(());
    }
    for step in &plan {
        println!("{}", step.describe());
    }
    println!(
        "{} change{}, {unchanged} unchanged",
        plan.len(),
        if plan.len() == 1 { "" } else { "s" }
    );
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }

    let mut secrets = Map::new();
    let mut ids: BTreeMap<String, String> = current
        .iter()
        .map(|c| (s(c, "name").to_owned(), s(c, "client_id").to_owned()))
        .collect();
    for step in plan {
        match step {
            Step::Create(spec) => {
                let created = api.post("/clients", Some(&create_body(&spec))).await?;
                let id = s(&created, "client_id").to_owned();
                if let Some(secret) = created["client_secret"].as_str() {
                    secrets.insert(
                        spec.name.clone(),
                        json!({"client_id": id, "client_secret": secret}),
                    );
                }
                if !spec.enabled {
                    api.post(&format!("/clients/{}/disable", segment(&id)), None)
                        .await?;
                }
                ids.insert(spec.name, id);
            }
            Step::Update { id, patch, .. } => {
                api.patch_client(&id, &patch.into()).await?;
            }
            Step::Disable { id, .. } => {
                api.post(&format!("/clients/{}/disable", segment(&id)), None)
                    .await?;
            }
            Step::Delete { id, .. } => api.delete(&format!("/clients/{}", segment(&id))).await?,
            Step::AddTrust(spec) => {
                api.post("/trusts", Some(&trust_body(&spec, &ids)?)).await?;
            }
            Step::ReplaceTrust { spec, .. } => {
                api.delete(&format!("/trusts/{}", segment(&spec.name)))
                    .await?;
                api.post("/trusts", Some(&trust_body(&spec, &ids)?)).await?;
            }
            Step::RemoveTrust(name) => api.delete(&format!("/trusts/{}", segment(&name))).await?,
        }
    }
    if !secrets.is_empty() {
        match &args.secrets_out {
            Some(path) => {
                write_private(path, &serde_json::to_string_pretty(&Value::from(secrets))?)?;
                println!("new clients' secrets written to {}", path.display());
            }
            None => {
                for (name, v) in &secrets {
                    println!(
                        "secret of {name} ({}): {}",
                        s(v, "client_id"),
                        s(v, "client_secret")
                    );
                }
                println!(
                    "\nStore the secrets now: they are shown only once and cannot be recovered."
                );
            }
        }
    }
    println!("applied");
    Ok(())
}

fn s<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_default()
}

fn check_unique<'a>(names: impl Iterator<Item = &'a str>, what: &str) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            anyhow::bail!("{what} '{n}' is in the file twice");
        }
    }
    Ok(())
}

/// Every client, a page at a time.
async fn all_clients(api: &Api) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/clients?limit=1000".to_owned();
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", segment(a)));
        }
        let page = api.get(&path).await?;
        out.extend(page["clients"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

fn method(spec: &ClientSpec) -> &str {
    spec.token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic")
}

fn create_body(spec: &ClientSpec) -> Value {
    let mut b = json!({"name": spec.name, "scopes": spec.scopes, "audiences": spec.audiences,
        "token_ttl": spec.token_ttl, "claims": spec.claims});
    if let Some(t) = &spec.expires_at {
        b["expires_at"] = t.as_str().into();
    }
    if let Some(q) = spec.max_tokens_per_minute {
        b["max_tokens_per_minute"] = q.into();
    }
    if method(spec) == "private_key_jwt" {
        b["token_endpoint_auth_method"] = "private_key_jwt".into();
        if let Some(u) = &spec.jwks_uri {
            b["jwks_uri"] = u.as_str().into();
        }
        if let Some(j) = &spec.jwks {
            b["jwks"] = j.clone();
        }
    }
    b
}

/// The admin API patch that makes `current` what `spec` says, and the changes in words.
fn diff_client(
    spec: &ClientSpec,
    current: &Value,
) -> anyhow::Result<(Map<String, Value>, Vec<String>)> {
    let mut patch = Map::new();
    let mut changes = Vec::new();
    let mut field = |name: &str, want: Value, have: &Value| {
        if want != *have {
            changes.push(format!("{name} {} -> {}", short(have), short(&want)));
            patch.insert(name.to_owned(), want);
        }
    };
    // Scopes are a set; audiences an ordered list (the first is the default `aud`).
    let sorted = |v: &Value| -> Value {
        let mut list: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        list.sort();
        list.dedup();
        list.into()
    };
    if sorted(&json!(spec.scopes)) != sorted(&current["scopes"]) {
        field("scopes", json!(spec.scopes), &current["scopes"]);
    }
    field("audiences", json!(spec.audiences), &current["audiences"]);
    field("token_ttl", json!(spec.token_ttl), &current["token_ttl"]);
    field("enabled", json!(spec.enabled), &current["enabled"]);
    let expires = match &spec.expires_at {
        Some(t) => json!(tessera_server::clock::parse_rfc3339(t)
            .map(tessera_server::clock::rfc3339)
            .with_context(|| format!("client {}: expires_at '{t}' is not RFC 3339", spec.name))?),
        None => Value::Null,
    };
    field("expires_at", expires, &current["expires_at"]);
    let claims = if current["claims"].is_null() {
        json!({})
    } else {
        current["claims"].clone()
    };
    field("claims", json!(spec.claims), &claims);
    field(
        "max_tokens_per_minute",
        json!(spec.max_tokens_per_minute),
        &current["max_tokens_per_minute"],
    );
    let have_method = s(current, "token_endpoint_auth_method");
    let want_keys = method(spec) == "private_key_jwt";
    if want_keys {
        let keys_differ = json!(spec.jwks_uri) != current["jwks_uri"]
            || spec.jwks.as_ref().is_some_and(|j| *j != current["jwks"]);
        if have_method != "private_key_jwt" || keys_differ {
            changes.push(format!("keys ({have_method} -> private_key_jwt keys)"));
            patch.insert(
                "token_endpoint_auth_method".into(),
                "private_key_jwt".into(),
            );
            if let Some(u) = &spec.jwks_uri {
                patch.insert("jwks_uri".into(), u.as_str().into());
            }
            if let Some(j) = &spec.jwks {
                patch.insert("jwks".into(), j.clone());
            }
        }
    } else if have_method == "private_key_jwt" {
        changes.push(
            "private_key_jwt -> client_secret_basic (give it a secret with `client rotate-secret`)"
                .into(),
        );
        patch.insert(
            "token_endpoint_auth_method".into(),
            "client_secret_basic".into(),
        );
    }
    Ok((patch, changes))
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn trust_body(spec: &TrustSpec, ids: &BTreeMap<String, String>) -> anyhow::Result<Value> {
    let client = ids
        .get(&spec.client)
        .with_context(|| format!("trust {}: no client '{}'", spec.name, spec.client))?;
    Ok(
        json!({"name": spec.name, "issuer": spec.issuer, "spiffe_trust_domain": spec.spiffe_trust_domain,
        "audience": spec.audience, "subject": spec.subject, "claims": spec.claims,
        "jwks_uri": spec.jwks_uri, "max_token_age": spec.max_token_age, "client_id": client}),
    )
}

/// How `current` differs from `spec`, in words (empty: the same).
fn diff_trust(spec: &TrustSpec, current: &Value, client_id: Option<&str>) -> Vec<String> {
    let mut changes = Vec::new();
    let mut cmp = |name: &str, want: Value, have: &Value| {
        if want != *have {
            changes.push(format!("{name} {} -> {}", short(have), short(&want)));
        }
    };
    cmp("issuer", json!(spec.issuer), &current["issuer"]);
    cmp(
        "spiffe_trust_domain",
        json!(spec.spiffe_trust_domain),
        &current["spiffe_trust_domain"],
    );
    cmp("audience", json!(spec.audience), &current["audience"]);
    cmp("subject", json!(spec.subject), &current["subject"]);
    cmp("claims", json!(spec.claims), &current["claims"]);
    cmp("jwks_uri", json!(spec.jwks_uri), &current["jwks_uri"]);
    cmp(
        "max_token_age",
        json!(spec.max_token_age),
        &current["max_token_age"],
    );
    match client_id {
        Some(id) => cmp("client", json!(id), &current["client_id"]),
        None => changes.push(format!("client -> {} (new)", spec.client)),
    }
    changes
}

/// Write `text` to a new file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
