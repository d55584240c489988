//! `tessera keys …`: list and rotate signing keys.

use clap::Subcommand;
use serde_json::json;
use tessera_server::http::admin::KeyRotation;
use tessera_server::keys::lifecycle::RotationTiming;
use tessera_server::keys::Alg;

use super::api::Api;
use super::serve::MasterKeyArgs;
use super::{DbArgs, Output};
use crate::print::{emit, print_keys, s};

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// List signing keys: kid, alg, state, created, activates, retires.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Start a rotation: publish a new key now, sign with it after --publish-ahead, retire the
    /// current key once the tokens it signed have expired.
    Rotate {
        /// Algorithm of the new key (switch algorithms by rotating).
        #[arg(long, env = "TESSERA_SIGNING_ALG", default_value = "RS256")]
        alg: Alg,
        /// Seconds the new key is published before it signs: at least the JWKS max-age the
        /// servers advertise (default 300) plus a margin.
        #[arg(long, default_value_t = 360)]
        publish_ahead: u32,
        #[command(flatten)]
        master: MasterKeyArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Run a `keys` command: locally (on the database, with the master key for a rotation) or
/// through `--server`.
pub(crate) async fn run(db: &DbArgs, server: Option<&str>, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { output } => {
            let api = super::api(db, server).await?;
            let v = api.get("/keys").await?;
            emit(&v["keys"], output, print_keys);
        }
        KeysCommand::Rotate {
            alg,
            publish_ahead,
            master,
            output,
        } => {
            let api = match server {
                Some(url) => Api::remote(url).await?,
                None => {
                    let rotation = KeyRotation {
                        master: tessera_server::load_master_key(&master.source(db)?)?,
                        alg,
                        timing: RotationTiming {
                            publish_ahead: i64::from(publish_ahead),
                        },
                    };
                    Api::local(db, Some(rotation)).await?
                }
            };
            let body = json!({"alg": alg.as_str(), "publish_ahead_seconds": publish_ahead});
            let v = api.post("/keys/rotate", Some(&body)).await?;
            emit(&v, output, |v| {
                let new = &v["new"];
                println!(
                    "new key {} ({}) published now, signs from {}",
                    s(new, "kid"),
                    s(new, "alg"),
                    s(new, "activates_at")
                );
                println!("the current key retires at {}", s(v, "previous_retire_at"));
            });
        }
    }
    Ok(())
}
