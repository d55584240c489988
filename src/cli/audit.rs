//! `tessera audit …`: read the admin changes recorded in the database.

use clap::Subcommand;

use super::api::{segment, Api};
use super::{parse_time, Output};
use crate::print::{emit, print_audit};

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
pub(crate) async fn run(api: &Api, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        client,
        since,
        output,
    } = cmd;
    let mut query = vec![format!("limit=1000")];
    if let Some(c) = &client {
        query.push(format!("client_id={}", segment(c)));
    }
    if let Some(t) = since {
        query.push(format!(
            "since={}",
            segment(&tessera_server::clock::rfc3339(t))
        ));
    }
    let v = api.get(&format!("/audit?{}", query.join("&"))).await?;
    emit(&v["events"], output, print_audit);
    Ok(())
}
