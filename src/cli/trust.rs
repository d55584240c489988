//! `tessera trust …`: workload identity federation. A trust lets tokens from an external issuer
//! (GitHub Actions, GitLab CI, a Kubernetes cluster, a SPIFFE trust domain) be exchanged for
//! tokens of an existing client, with no secret on the caller's side.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use tessera_server::admin::{Admin, TrustInput};
use tessera_server::audit::Actor;

use super::Output;
use crate::print::print_trust;

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

pub(crate) async fn run(admin: &Admin, cmd: TrustCommand) -> anyhow::Result<()> {
    let by = Actor::os_user();
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
            let jwks = jwks_file
                .map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?;
            let input = TrustInput {
                name,
                issuer,
                spiffe_trust_domain,
                audience,
                subject,
                claims,
                jwks_uri,
                jwks,
                max_token_age,
                client,
            };
            let view = admin.add_trust(&by, input).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                print_trust(&view);
            }
        }
        TrustCommand::List { output } => {
            let list = admin.list_trusts().await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!(
                    "{:<20} {:<26} {:<40} SUBJECT",
                    "NAME", "CLIENT_ID", "ISSUER"
                );
                for t in &list {
                    let iss = t
                        .issuer
                        .clone()
                        .or_else(|| {
                            t.spiffe_trust_domain
                                .as_ref()
                                .map(|d| format!("spiffe://{d}"))
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<20} {:<26} {:<40} {}",
                        t.name, t.client_id, iss, t.subject
                    );
                }
            }
        }
        TrustCommand::Show { name, output } => {
            let view = admin.show_trust(&name).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                print_trust(&view);
            }
        }
        TrustCommand::Remove { name, output } => {
            admin.remove_trust(&by, &name).await?;
            if output == Output::Json {
                println!("{}", serde_json::json!({"trust": name, "removed": true}));
            } else {
                println!("removed trust {name}");
            }
        }
    }
    Ok(())
}
