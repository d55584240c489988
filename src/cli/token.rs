//! `tessera token`: get an access token for shell scripts and CI, through `tessera-client`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args};
use tessera_client::{AssertionSource, ClientSecret, PrivateKey, TokenSource, TokenSourceBuilder};

use super::Output;

#[derive(Args)]
#[command(group(
    ArgGroup::new("credential")
        .args(["client_secret_file", "private_key_file", "assertion_file", "github_actions"])
        .multiple(false)
))]
pub(crate) struct TokenArgs {
    /// Issuer URL (the token endpoint is found by discovery).
    #[arg(long, env = "TESSERA_ISSUER", required_unless_present = "token_url")]
    pub(crate) issuer: Option<String>,
    /// Token endpoint URL, instead of discovery.
    #[arg(long, env = "TESSERA_TOKEN_URL")]
    pub(crate) token_url: Option<String>,
    /// Client id: required with a client secret or --private-key-file; not used with
    /// --assertion-file or --github-actions, where the assertion names the client.
    #[arg(long, env = "TESSERA_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// File holding the client secret. Otherwise TESSERA_CLIENT_SECRET is used (when no other
    /// credential is given); the secret is never taken as a flag value, which would show in
    /// `ps` and shell history.
    #[arg(long)]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Authenticate with a JWT signed by this PKCS#8 PEM private key (private_key_jwt) instead
    /// of a secret; `tessera keypair` makes one.
    #[arg(long)]
    pub(crate) private_key_file: Option<PathBuf>,
    /// Key id to put in the signed JWT's header (the kid of the public key registered with the
    /// server).
    #[arg(long, requires = "private_key_file")]
    pub(crate) key_id: Option<String>,
    /// Trade the JWT in this file (e.g. a Kubernetes projected service account token) for an
    /// access token (JWT-bearer grant); no client id or secret.
    #[arg(long)]
    pub(crate) assertion_file: Option<PathBuf>,
    /// Trade a GitHub Actions OIDC ID token for an access token (JWT-bearer grant); the job
    /// needs `permissions: id-token: write`.
    #[arg(long, requires = "assertion_audience")]
    pub(crate) github_actions: bool,
    /// The `aud` to ask GitHub Actions to put in its ID token (what the server expects).
    #[arg(long, requires = "github_actions")]
    pub(crate) assertion_audience: Option<String>,
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
    let mut builder = credential(&args)?;
    // With both, the token URL is used as given and the issuer is still the audience of
    // private_key_jwt assertions.
    if let Some(url) = args.token_url {
        builder = builder.token_url(url);
    }
    if let Some(issuer) = args.issuer {
        builder = builder.issuer(issuer);
    }
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

/// The builder for the one credential the flags name (clap has checked there is at most one);
/// with none, the client secret from TESSERA_CLIENT_SECRET.
fn credential(args: &TokenArgs) -> anyhow::Result<TokenSourceBuilder> {
    if let Some(path) = &args.assertion_file {
        return Ok(TokenSource::assertion(AssertionSource::file(path)));
    }
    if args.github_actions {
        let audience = args
            .assertion_audience
            .clone()
            .context("--github-actions needs --assertion-audience")?;
        return Ok(TokenSource::assertion(AssertionSource::github_actions(
            audience,
        )));
    }
    let client_id = args.client_id.clone().context(
        "no client id: use --client-id or TESSERA_CLIENT_ID \
         (only --assertion-file and --github-actions do without one)",
    )?;
    if let Some(path) = &args.private_key_file {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading the private key from {}", path.display()))?;
        let key = PrivateKey::from_pem(&pem, args.key_id.clone())
            .with_context(|| format!("private key {}", path.display()))?;
        return Ok(TokenSource::private_key_jwt(client_id, key));
    }
    let secret = match &args.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the client secret from {}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => std::env::var("TESSERA_CLIENT_SECRET").map_err(|_| {
            anyhow::anyhow!(
                "no client secret (nor other credential): use --client-secret-file or TESSERA_CLIENT_SECRET, \
                 --private-key-file, --assertion-file or --github-actions"
            )
        })?,
    };
    Ok(TokenSource::builder(client_id, ClientSecret::new(secret)))
}
