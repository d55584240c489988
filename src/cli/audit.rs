//! `tessera audit …`: read the admin changes recorded in the database.

use clap::Subcommand;
use tessera_server::admin::Admin;

use super::{parse_time, Output};
use crate::print::print_audit;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// List admin changes, oldest first.
    List {
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
        /// Only from this time (RFC 3339 or unix seconds).
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Run an `audit` command.
pub(crate) async fn run(admin: &Admin, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        client,
        since,
        output,
    } = cmd;
    let events = admin
        .list_audit(client.as_deref(), since.unwrap_or(0))
        .await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string(&events)?);
    } else {
        print_audit(&events);
    }
    Ok(())
}
