//! `tessera`: the token server (`serve`) and its admin CLI. Parses the command line, builds typed
//! configuration and calls into `tessera-server`; nothing else lives here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_server::admin::{self, ClientView, CreateClient, UpdateClient};
use tessera_server::clock::Clock;
use tessera_server::config::{Issuer, MasterKeySource, ServerConfig};
use tessera_server::keys::Alg;
use tessera_server::secrets::VerifierLimits;

/// OAuth 2.0 client-credentials token server for machine-to-machine authentication.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Data directory: the SQLite database and the generated master key file live here.
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./tessera-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Database URL (default: sqlite://<data-dir>/tessera.db).
    #[arg(
        long,
        env = "TESSERA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
}

impl DbArgs {
    fn url(&self) -> anyhow::Result<String> {
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

fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

#[derive(Subcommand)]
enum Command {
    /// Run the token server.
    Serve(ServeArgs),
    /// Apply database migrations and exit (`serve` also applies them at start).
    Migrate,
    /// Manage machine clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the admin changes recorded in the database.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Get an access token (for shell scripts and CI): prints it, so that
    /// `curl -H "Authorization: Bearer $(tessera token …)"` works.
    Token(TokenArgs),
}

#[derive(Args)]
struct TokenArgs {
    /// Issuer URL (the token endpoint is found by discovery).
    #[arg(long, env = "TESSERA_ISSUER", required_unless_present = "token_url")]
    issuer: Option<String>,
    /// Token endpoint URL, instead of discovery.
    #[arg(long, env = "TESSERA_TOKEN_URL")]
    token_url: Option<String>,
    /// Client id.
    #[arg(long, env = "TESSERA_CLIENT_ID")]
    client_id: String,
    /// File holding the client secret. Otherwise TESSERA_CLIENT_SECRET is used; the secret is
    /// never taken as a flag value, which would show in `ps` and shell history.
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Scope to ask for (repeat for more).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Audience to ask for (RFC 8707 resource).
    #[arg(long)]
    audience: Option<String>,
    /// `text` prints the token alone; `json` the whole token response.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Issuer URL placed in tokens and discovery (default: http://<listen address>).
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: Option<String>,
    /// Algorithm for newly generated signing keys.
    #[arg(long, env = "TESSERA_SIGNING_ALG", default_value = "RS256")]
    signing_alg: Alg,
    #[command(flatten)]
    master: MasterKeyArgs,
    /// Rotate the signing key automatically when the active one has signed this long (e.g. 30d);
    /// off by default.
    #[arg(long, env = "TESSERA_KEY_ROTATION_INTERVAL", value_parser = humantime::parse_duration)]
    key_rotation_interval: Option<Duration>,
    /// How often to pick up changes made by the CLI or other replicas, in milliseconds.
    #[arg(long, env = "TESSERA_REFRESH_INTERVAL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    refresh_interval_ms: u64,
    /// `Cache-Control: max-age` of /jwks.json, in seconds.
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", default_value_t = 300)]
    jwks_max_age: u32,
    /// Requests allowed to wait for an argon2id secret check before the server answers 503.
    #[arg(long, env = "TESSERA_AUTH_QUEUE", default_value_t = 128)]
    auth_queue: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    max_body_bytes: usize,
    /// Largest request head (request line + headers), in bytes (at least 8192).
    #[arg(long, env = "TESSERA_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(8192..))]
    max_header_bytes: u64,
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args)]
struct MasterKeyArgs {
    /// Master key, 32 bytes base64 (default: <data-dir>/master.key, generated on first start).
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    master_key: Option<String>,
    /// File holding the master key (created with mode 0600 if missing).
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

impl MasterKeyArgs {
    fn source(self, db: &DbArgs) -> anyhow::Result<MasterKeySource> {
        Ok(match (self.master_key, self.master_key_file) {
            (Some(v), _) => MasterKeySource::Value(v),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) => {
                ensure_data_dir(&db.data_dir)?;
                MasterKeySource::File(db.data_dir.join("master.key"))
            }
        })
    }
}

/// A point in time: RFC 3339 (`2027-01-31T00:00:00Z`) or unix seconds.
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{e} (use RFC 3339, e.g. 2027-01-31T00:00:00Z, or unix seconds)"))?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "time before 1970".to_string())?
        .as_secs();
    i64::try_from(secs).map_err(|_| "time out of range".to_string())
}

#[derive(Subcommand)]
enum AuditCommand {
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

#[derive(Subcommand)]
enum KeysCommand {
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

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and secret (the secret is shown only this once).
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// An allowed scope (repeat for more); a token request without `scope` gets all of them.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// An allowed audience (repeat for more); the first is the default `aud`.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Access-token lifetime in seconds (1..=86400).
        #[arg(long, default_value_t = 300)]
        token_ttl: u32,
        /// The client stops working at this time (RFC 3339 or unix seconds).
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Give a client a new secret (printed once); the old ones keep working for --grace.
    RotateSecret {
        id: String,
        /// How long the previous secrets keep working (e.g. 24h, 30m, 0s).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// The new secret stops working at this time (RFC 3339 or unix seconds).
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// End one secret at once (its id is in `client show`).
    RevokeSecret {
        id: String,
        secret_id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List clients.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one client (secret ids and validity, never the secret).
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Change a client; given lists replace the old ones.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Remove all audiences (tokens then carry the issuer as `aud`).
        #[arg(long, conflicts_with = "audiences")]
        clear_audiences: bool,
        #[arg(long)]
        token_ttl: Option<u32>,
        /// Expire the client at this time (RFC 3339 or unix seconds).
        #[arg(long, value_parser = parse_time, conflicts_with = "no_expiry")]
        expires_at: Option<i64>,
        /// Remove the client's expiry.
        #[arg(long)]
        no_expiry: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Stop a client from getting tokens (reversible).
    Disable {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Allow a disabled client again.
    Enable {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Delete a client and its secrets.
    Delete {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(a) => Some(a.log_format),
        _ => None,
    };
    init_logging(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the context chain, outermost first.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: Option<LogFormat>) {
    // The server logs at info by default; CLI commands only warnings, so their output stays clean.
    let default = if format.is_some() { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Some(LogFormat::Json) => builder.json().init(),
        _ => builder.init(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, args).await,
        Command::Migrate => {
            tessera_server::open_store(&cli.db.url()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => client(&cli.db, cmd).await,
        Command::Keys(cmd) => keys(&cli.db, cmd).await,
        Command::Audit(AuditCommand::List {
            client,
            since,
            output,
        }) => {
            let store = tessera_server::open_store(&cli.db.url()?).await?;
            let events = store
                .list_audit(client.as_deref(), since.unwrap_or(0))
                .await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&events)?);
            } else {
                println!(
                    "{:<12} {:<14} {:<22} {:<26} DETAIL",
                    "AT", "ACTOR", "ACTION", "CLIENT_ID"
                );
                for e in &events {
                    println!(
                        "{:<12} {:<14} {:<22} {:<26} {}",
                        e.at,
                        e.actor,
                        e.action,
                        e.client_id.as_deref().unwrap_or("-"),
                        e.detail
                    );
                }
            }
            Ok(())
        }
        Command::Token(args) => token(args).await,
    }
}

async fn token(args: TokenArgs) -> anyhow::Result<()> {
    use tessera_client::{ClientSecret, TokenSource};
    let secret = match &args.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the client secret from {}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => std::env::var("TESSERA_CLIENT_SECRET").map_err(|_| {
            anyhow::anyhow!("no client secret: use --client-secret-file or TESSERA_CLIENT_SECRET")
        })?,
    };
    let mut builder = TokenSource::builder(args.client_id, ClientSecret::new(secret));
    builder = match (args.token_url, args.issuer) {
        (Some(url), _) => builder.token_url(url),
        (None, Some(issuer)) => builder.issuer(issuer),
        (None, None) => anyhow::bail!("--issuer or --token-url is required"),
    };
    for s in args.scopes {
        builder = builder.scope(s);
    }
    if let Some(a) = args.audience {
        builder = builder.audience(a);
    }
    let token = builder.build()?.token().await?;
    if args.output == Output::Json {
        println!("{}", token.response());
    } else {
        println!("{}", token.secret());
    }
    Ok(())
}

async fn serve(db: &DbArgs, args: ServeArgs) -> anyhow::Result<()> {
    let database_url = db.url()?;
    let master_key = args.master.source(db)?;
    let issuer = args
        .issuer
        .as_deref()
        .map(Issuer::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = ServerConfig {
        listen: args.listen,
        issuer,
        database_url,
        signing_alg: args.signing_alg,
        master_key,
        refresh_interval: Duration::from_millis(args.refresh_interval_ms),
        jwks_max_age: args.jwks_max_age,
        verifier_limits: VerifierLimits {
            max_concurrent: cores,
            max_waiting: args.auth_queue,
            max_cached: 100_000,
        },
        max_body_bytes: args.max_body_bytes,
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        shutdown_grace: Duration::from_secs(30),
        key_rotation_interval: args.key_rotation_interval.filter(|d| !d.is_zero()),
    };
    let shutdown = shutdown_signal()?;
    tessera_server::run(
        config,
        |addr, issuer| {
            // Machine-readable start line on stdout (tests and scripts wait for it).
            println!("tessera listening on http://{addr} issuer={issuer}");
        },
        shutdown,
    )
    .await
}

/// Register SIGTERM and SIGINT handlers now, and return a future that resolves on either.
/// Registering here, before the server announces that it listens, matters: a signal that
/// arrived before registration would take the default action and kill the process with a
/// non-zero status instead of draining (a race CI caught).
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn client(db: &DbArgs, cmd: ClientCommand) -> anyhow::Result<()> {
    let store = tessera_server::open_store(&db.url()?).await?;
    let now = Clock::system().now();
    // Every change is stored with its audit record, in one transaction.
    let by = admin::Actor::os_user();
    match cmd {
        ClientCommand::Create {
            name,
            scopes,
            audiences,
            token_ttl,
            expires_at,
            output,
        } => {
            let input = CreateClient {
                name,
                scopes,
                audiences,
                token_ttl: Some(token_ttl),
                expires_at,
            };
            let (view, secret) = admin::create_client(&store, &by, input, now).await?;
            if output == Output::Json {
                let mut v = serde_json::to_value(&view)?;
                v["client_secret"] = serde_json::Value::from(secret.expose());
                println!("{v}");
            } else {
                print_client(&view);
                println!("client_secret: {}", secret.expose());
                println!("\nStore the secret now: it is shown only once and cannot be recovered.");
            }
        }
        ClientCommand::List { output } => {
            let list = admin::list_clients(&store).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!("{:<26} {:<8} {:<24} SCOPES", "CLIENT_ID", "ENABLED", "NAME");
                for c in &list {
                    println!(
                        "{:<26} {:<8} {:<24} {}",
                        c.client_id,
                        c.enabled,
                        c.name,
                        c.scopes.join(" ")
                    );
                }
            }
        }
        ClientCommand::Show { id, output } => {
            emit(&admin::show_client(&store, &id).await?, output)?
        }
        ClientCommand::RotateSecret {
            id,
            grace,
            expires_at,
            output,
        } => {
            let new =
                admin::rotate_secret(&store, &by, &id, grace.as_secs(), expires_at, now).await?;
            if output == Output::Json {
                let v = serde_json::json!({"client_id": id, "secret_id": new.id, "client_secret": new.secret.expose(),
                    "expires_at": new.expires_at, "previous_secrets_expire_at": new.previous_expire_at});
                println!("{v}");
            } else {
                println!("secret_id:     {}", new.id);
                println!("client_secret: {}", new.secret.expose());
                println!(
                    "previous secrets stop working at {} ({} from now)",
                    new.previous_expire_at,
                    humantime::format_duration(grace)
                );
                println!("\nStore the secret now: it is shown only once and cannot be recovered.");
            }
        }
        ClientCommand::RevokeSecret {
            id,
            secret_id,
            output,
        } => {
            admin::revoke_secret(&store, &by, &id, &secret_id, now).await?;
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": id, "secret_id": secret_id, "revoked": true})
                );
            } else {
                println!("revoked secret {secret_id} of client {id}");
            }
        }
        ClientCommand::Update {
            id,
            name,
            scopes,
            audiences,
            clear_audiences,
            token_ttl,
            expires_at,
            no_expiry,
            output,
        } => {
            let input = UpdateClient {
                name,
                scopes: (!scopes.is_empty()).then_some(scopes),
                audiences: if clear_audiences {
                    Some(Vec::new())
                } else {
                    (!audiences.is_empty()).then_some(audiences)
                },
                token_ttl,
                enabled: None,
                expires_at: if no_expiry {
                    Some(None)
                } else {
                    expires_at.map(Some)
                },
            };
            let view = admin::update_client(&store, &by, &id, input, now).await?;
            emit(&view, output)?;
        }
        ClientCommand::Disable { id, output } => {
            emit(
                &admin::set_enabled(&store, &by, &id, false, now).await?,
                output,
            )?;
        }
        ClientCommand::Enable { id, output } => {
            emit(
                &admin::set_enabled(&store, &by, &id, true, now).await?,
                output,
            )?;
        }
        ClientCommand::Delete { id, output } => {
            admin::delete_client(&store, &by, &id, now).await?;
            if output == Output::Json {
                println!("{}", serde_json::json!({"client_id": id, "deleted": true}));
            } else {
                println!("deleted client {id}");
            }
        }
    }
    Ok(())
}

fn emit(view: &ClientView, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        print_client(view);
    }
    Ok(())
}

fn print_client(v: &ClientView) {
    println!("client_id:     {}", v.client_id);
    println!("name:          {}", v.name);
    println!("enabled:       {}", v.enabled);
    println!("scopes:        {}", v.scopes.join(" "));
    println!(
        "audiences:     {}",
        if v.audiences.is_empty() {
            "(issuer)".into()
        } else {
            v.audiences.join(" ")
        }
    );
    println!("token_ttl:     {}s", v.token_ttl);
    for s in &v.secrets {
        let state = match (s.revoked_at, s.expires_at) {
            (Some(_), _) => "revoked".to_string(),
            (None, Some(e)) => format!("expires {e}"),
            (None, None) => "active".to_string(),
        };
        println!(
            "secret:        {} (created {}, {state})",
            s.id, s.created_at
        );
    }
}

async fn keys(db: &DbArgs, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = tessera_server::open_store(&db.url()?).await?;
    let now = Clock::system().now();
    match cmd {
        KeysCommand::List { output } => {
            let list = admin::list_keys(&store, now).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!(
                    "{:<44} {:<6} {:<9} {:<12} {:<12} {:<12} PRIVATE KEY",
                    "KID", "ALG", "STATE", "CREATED", "ACTIVATES", "RETIRES"
                );
                for k in &list {
                    let retires = k
                        .retires_at
                        .map_or_else(|| "-".to_string(), |r| r.to_string());
                    println!(
                        "{:<44} {:<6} {:<9} {:<12} {:<12} {retires:<12} {}",
                        k.kid, k.alg, k.state, k.created_at, k.activates_at, k.private_key_state
                    );
                }
            }
        }
        KeysCommand::Rotate {
            alg,
            publish_ahead,
            master,
            output,
        } => {
            let master = tessera_server::load_master_key(&master.source(db)?)?;
            let timing = admin::RotationTiming {
                publish_ahead: i64::from(publish_ahead),
            };
            let by = admin::Actor::os_user();
            let plan = admin::rotate_signing_key(&store, &master, &by, alg, timing, now).await?;
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
