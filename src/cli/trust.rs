//! `tessera trust …`: workload identity federation. A trust lets tokens from an external issuer
//! (GitHub Actions, GitLab CI, a Kubernetes cluster, a SPIFFE trust domain) be exchanged for
//! tokens of an existing client, with no secret on the caller's side.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{json, Value};

use super::api::{segment, Api};
use super::Output;
use crate::print::{emit, print_trust, print_trusts, s};

#[derive(Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust an external issuer's tokens for one client.
    Add {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// The external issuer, exactly as its tokens' `iss` (https://; http:// on loopback).
        #[arg(long, required_unless_present = "spiffe_trust_domain")]
        issuer: Option<String>,
        /// Instead of --issuer: a SPIFFE trust domain (JWT-SVIDs need not carry `iss`); needs
        /// the trust bundle (--jwks-file or --jwks-uri), whose `use: jwt-svid` keys are used.
        #[arg(long, conflicts_with = "issuer")]
        spiffe_trust_domain: Option<String>,
        /// The `aud` the external token must carry.
        #[arg(long)]
        audience: String,
        /// The `sub` it must carry: exact, or a prefix ending in `*` (e.g. `repo:acme/app:*`).
        #[arg(long)]
        subject: String,
        /// A claim that must match, NAME=VALUE (repeat for more). Arrays match when they
        /// contain the value; numbers and booleans match their JSON text (`ref_protected=true`).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// The client whose scopes, audiences and token lifetime apply.
        #[arg(long)]
        client: String,
        /// The issuer's JWKS URL (default: from its OpenID discovery document).
        #[arg(long, conflicts_with = "jwks_file")]
        jwks_uri: Option<String>,
        /// The issuer's JWKS as a file (private clusters; a SPIFFE trust bundle).
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// Refuse tokens issued longer ago than this many seconds (off by default: a Kubernetes
        /// projected token is reused for most of its life).
        #[arg(long)]
        max_token_age: Option<u32>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List trusts.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one trust (by name or id).
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a trust (by name or id); every replica stops honouring it within one refresh.
    Remove {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) async fn run(api: &Api, cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Add {
            name,
            issuer,
            spiffe_trust_domain,
            audience,
            subject,
            claims,
            client,
            jwks_uri,
            jwks_file,
            max_token_age,
            output,
        } => {
            let mut body = json!({"name": name, "audience": audience, "subject": subject,
                "client_id": client, "issuer": issuer, "spiffe_trust_domain": spiffe_trust_domain,
                "jwks_uri": jwks_uri, "max_token_age": max_token_age});
            if let Some(p) = jwks_file {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let doc: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not JSON", p.display()))?;
                body["jwks"] = doc;
            }
            let mut required = serde_json::Map::new();
            for c in claims {
                let (k, v) = c
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("a claim is NAME=VALUE: '{c}'"))?;
                if required.insert(k.to_owned(), v.into()).is_some() {
                    anyhow::bail!("claim '{k}' is given twice");
                }
            }
            body["claims"] = required.into();
            let v = api.post("/trusts", Some(&body)).await?;
            emit(&v, output, print_trust);
        }
        TrustCommand::List { output } => {
            let v = api.get("/trusts").await?;
            emit(&v["trusts"], output, print_trusts);
        }
        TrustCommand::Show { name, output } => {
            let v = api.get(&format!("/trusts/{}", segment(&name))).await?;
            emit(&v, output, print_trust);
        }
        TrustCommand::Remove { name, output } => {
            api.delete(&format!("/trusts/{}", segment(&name))).await?;
            let v = json!({"trust": name, "removed": true});
            emit(&v, output, |v| println!("removed trust {}", s(v, "trust")));
        }
    }
    Ok(())
}
