//! `tessera token`: get an access token for shell scripts and CI, through `tessera-client`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::Output;

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// Issuer URL (the token endpoint is found by discovery).
    #[arg(long, env = "TESSERA_ISSUER", required_unless_present = "token_url")]
    pub(crate) issuer: Option<String>,
    /// Token endpoint URL, instead of discovery.
    #[arg(long, env = "TESSERA_TOKEN_URL")]
    pub(crate) token_url: Option<String>,
    /// Client id.
    #[arg(long, env = "TESSERA_CLIENT_ID")]
    pub(crate) client_id: String,
    /// File holding the client secret. Otherwise TESSERA_CLIENT_SECRET is used; the secret is
    /// never taken as a flag value, which would show in `ps` and shell history.
    #[arg(long)]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Scope to ask for (repeat for more).
    #[arg(long = "scope")]
    pub(crate) scopes: Vec<String>,
    /// Audience to ask for (RFC 8707 resource).
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// `text` prints the token alone; `json` the whole token response.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) output: Output,
}

pub(crate) async fn run(args: TokenArgs) -> anyhow::Result<()> {
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
