//! `tessera keys …`: list and rotate signing keys.

use clap::Subcommand;
use tessera_server::admin::Admin;
use tessera_server::audit::Actor;
use tessera_server::keys::lifecycle::RotationTiming;
use tessera_server::keys::Alg;

use super::serve::MasterKeyArgs;
use super::{DbArgs, Output};
use crate::print::print_keys;

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

/// Run a `keys` command.
pub(crate) async fn run(db: &DbArgs, admin: &Admin, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { output } => {
            let list = admin.list_keys().await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                print_keys(&list);
            }
        }
        KeysCommand::Rotate {
            alg,
            publish_ahead,
            master,
            output,
        } => {
            let master = tessera_server::load_master_key(&master.source(db)?)?;
            let timing = RotationTiming {
                publish_ahead: i64::from(publish_ahead),
            };
            let plan = admin
                .rotate_signing_key(&Actor::os_user(), &master, alg, timing)
                .await?;
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"new": plan.new, "previous_retire_at": plan.previous_retire_at})
                );
            } else {
                println!(
                    "new key {} ({}) published now, signs from {} ({}s from now)",
                    plan.new.kid, plan.new.alg, plan.new.activates_at, publish_ahead
                );
                println!("the current key retires at {}", plan.previous_retire_at);
            }
        }
    }
    Ok(())
}
