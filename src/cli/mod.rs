//! The command line: global flags, the command groups, and dispatch to each group's module.

mod api;
mod apikey;
mod apply;
mod audit;
mod client;
mod keypair;
mod keys;
mod serve;
mod token;
mod trust;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// OAuth 2.0 client-credentials token server for machine-to-machine authentication.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    db: DbArgs,
    /// Manage a running server through its admin API (the --admin-listen URL) instead of the
    /// database: client, keys, trust, apikey and audit commands. Credentials come from
    /// TESSERA_CLIENT_ID and TESSERA_CLIENT_SECRET (a client with the scope tessera:admin, or
    /// tessera:admin:read for reads, and the audience <issuer>/admin).
    #[arg(long, env = "TESSERA_SERVER", global = true)]
    server: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct DbArgs {
    /// Data directory: the SQLite database and the generated master key file live here.
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./tessera-data",
        global = true
    )]
    pub(crate) data_dir: PathBuf,
    /// Database URL (default: sqlite://<data-dir>/tessera.db).
    #[arg(
        long,
        env = "TESSERA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,
}

impl DbArgs {
    pub(crate) fn url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(u) => Ok(u.clone()),
            None => {
                ensure_data_dir(&self.data_dir)?;
                Ok(format!(
                    "sqlite://{}",
                    self.data_dir.join("tessera.db").display()
                ))
            }
        }
    }
}

pub(crate) fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the token server.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit (`serve` also applies them at start).
    Migrate,
    /// Manage machine clients.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Make a key pair for private_key_jwt: a PKCS#8 PEM private key for the calling service
    /// and a JWKS with its public half to register with `client create --jwks-file`.
    Keypair(keypair::KeypairArgs),
    /// Managed API keys for callers that can only send a header.
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Trust external identity tokens (CI/CD, Kubernetes, SPIFFE) for a client.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Show the admin changes recorded in the database.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Reconcile clients and trusts with a file kept in git: create what is missing, change
    /// what differs, disable (with --prune delete) what is gone. Prints the plan first.
    Apply(apply::ApplyArgs),
    /// Get an access token (for shell scripts and CI): prints it, so that
    /// `curl -H "Authorization: Bearer $(tessera token …)"` works.
    Token(token::TokenArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub(crate) enum Output {
    #[default]
    Text,
    Json,
}

/// A point in time that does not parse.
#[derive(Debug)]
pub(crate) enum TimeError {
    /// Neither unix seconds nor RFC 3339.
    Format(humantime::TimestampError),
    /// Before 1970.
    BeforeEpoch,
    /// Too far in the future for unix seconds.
    OutOfRange,
}

impl std::fmt::Display for TimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Format(e) => write!(
                f,
                "{e} (use RFC 3339, e.g. 2027-01-31T00:00:00Z, or unix seconds)"
            ),
            Self::BeforeEpoch => f.write_str("time before 1970"),
            Self::OutOfRange => f.write_str("time out of range"),
        }
    }
}

impl std::error::Error for TimeError {}

/// A point in time: RFC 3339 (`2027-01-31T00:00:00Z`) or unix seconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, TimeError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(TimeError::Format)?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| TimeError::BeforeEpoch)?
        .as_secs();
    i64::try_from(secs).map_err(|_| TimeError::OutOfRange)
}

/// Run the command.
pub(crate) async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let server = cli.server.as_deref();
    match cli.command {
        Command::Serve(args) => serve::run(&cli.db, args).await,
        Command::Migrate => {
            tessera_server::migrate(&cli.db.url()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => client::run(&api(&cli.db, server).await?, cmd).await,
        Command::Keys(cmd) => keys::run(&cli.db, server, cmd).await,
        Command::Apikey(cmd) => apikey::run(&api(&cli.db, server).await?, cmd).await,
        Command::Trust(cmd) => trust::run(&api(&cli.db, server).await?, cmd).await,
        Command::Audit(cmd) => audit::run(&api(&cli.db, server).await?, cmd).await,
        Command::Apply(args) => apply::run(&api(&cli.db, server).await?, args).await,
        Command::Token(args) => token::run(args).await,
        Command::Keypair(args) => keypair::run(args),
    }
}

/// The admin API: the server's at `server`, else in-process on the configured database.
async fn api(db: &DbArgs, server: Option<&str>) -> anyhow::Result<api::Api> {
    match server {
        Some(url) => api::Api::remote(url).await,
        None => api::Api::local(db, None).await,
    }
}
