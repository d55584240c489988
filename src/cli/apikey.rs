//! `tessera apikey …`: managed API keys for callers that can only send a static header.
//! Resource services check them through `tessera-verifier` (introspection, cached).

use clap::Subcommand;
use serde_json::json;

use super::api::{segment, Api};
use super::client::ClaimArgs;
use super::{parse_time, Output};
use crate::print::{emit, print_api_key, print_api_keys, s};

#[derive(Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Make a key (`tak_…`, 256 random bits); printed once, stored only as a hash.
    Create {
        /// Who holds it: one key per caller, so one leak is revoked alone.
        #[arg(long)]
        name: String,
        /// A scope it grants (repeat for more).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// An audience it may be used at (repeat for more).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// It stops working at this time (RFC 3339 or unix seconds).
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
        #[command(flatten)]
        claims: ClaimArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one key, by id or name.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a key at once (resource services stop accepting it within their cache bound).
    Revoke {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) async fn run(api: &Api, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Create {
            name,
            scopes,
            audiences,
            expires_at,
            claims,
            output,
        } => {
            let mut body = json!({"name": name, "scopes": scopes, "audiences": audiences,
                "claims": claims.map()?.unwrap_or_default()});
            if let Some(t) = expires_at {
                body["expires_at"] = tessera_server::clock::rfc3339(t).into();
            }
            let v = api.post("/api-keys", Some(&body)).await?;
            emit(&v, output, print_api_key);
        }
        ApiKeyCommand::List { output } => {
            let v = api.get("/api-keys").await?;
            emit(&v["api_keys"], output, print_api_keys);
        }
        ApiKeyCommand::Show { id, output } => {
            let v = api.get(&format!("/api-keys/{}", segment(&id))).await?;
            emit(&v, output, print_api_key);
        }
        ApiKeyCommand::Revoke { id, output } => {
            api.delete(&format!("/api-keys/{}", segment(&id))).await?;
            let v = json!({"id": id, "revoked": true});
            emit(&v, output, |v| println!("revoked API key {}", s(v, "id")));
        }
    }
    Ok(())
}
