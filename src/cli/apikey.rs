//! `tessera apikey …`: managed API keys for callers that can only send a static header.
//! Resource services check them through `tessera-verifier` (introspection, cached).

use clap::Subcommand;
use tessera_server::admin::{Admin, ApiKeyInput, ApiKeyView};
use tessera_server::audit::Actor;

use super::client::ClaimArgs;
use super::{parse_time, Output};

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

fn print(k: &ApiKeyView) {
    println!("id:         {}", k.id);
    println!("name:       {}", k.name);
    println!("state:      {}", k.state);
    println!("scopes:     {}", k.scopes.join(" "));
    if !k.audiences.is_empty() {
        println!("audiences:  {}", k.audiences.join(" "));
    }
    for (name, v) in &k.claims {
        println!("claim:      {name}={v}");
    }
    if let Some(e) = k.expires_at {
        println!("expires_at: {e}");
    }
}

pub(crate) async fn run(admin: &Admin, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let by = Actor::os_user();
    match cmd {
        ApiKeyCommand::Create {
            name,
            scopes,
            audiences,
            expires_at,
            claims,
            output,
        } => {
            let input = ApiKeyInput {
                name,
                scopes,
                audiences,
                expires_at,
                claims: claims.map()?.unwrap_or_default(),
            };
            let (view, key) = admin.create_api_key(&by, input).await?;
            if output == Output::Json {
                let mut v = serde_json::to_value(&view)?;
                v["api_key"] = key.expose().into();
                println!("{v}");
            } else {
                print(&view);
                println!("api_key:    {}", key.expose());
                println!("\nStore the key now: it is shown only once and cannot be recovered.");
            }
        }
        ApiKeyCommand::List { output } => {
            let list = admin.list_api_keys().await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!("{:<22} {:<8} {:<24} SCOPES", "ID", "STATE", "NAME");
                for k in &list {
                    println!(
                        "{:<22} {:<8} {:<24} {}",
                        k.id,
                        k.state,
                        k.name,
                        k.scopes.join(" ")
                    );
                }
            }
        }
        ApiKeyCommand::Show { id, output } => {
            let k = admin.show_api_key(&id).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&k)?);
            } else {
                print(&k);
            }
        }
        ApiKeyCommand::Revoke { id, output } => {
            admin.revoke_api_key(&by, &id).await?;
            if output == Output::Json {
                println!("{}", serde_json::json!({"id": id, "revoked": true}));
            } else {
                println!("revoked API key {id}");
            }
        }
    }
    Ok(())
}
