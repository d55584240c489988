//! `tessera client …`: register and manage machine clients.

use std::time::Duration;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};
use tessera_server::admin::KeysInput;

use super::api::{segment, Api};
use super::{parse_time, Output};
use crate::print::{emit, print_client, print_clients, s};

#[derive(Subcommand)]
pub(crate) enum ClientCommand {
    /// Register a client; prints its id and secret (the secret is shown only this once). With
    /// `--auth private_key_jwt` the client holds a private key instead and no secret is made.
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
        /// How the client authenticates: a secret (Basic or in the body), or a JWT signed with
        /// its private key (RFC 7523), whose public keys come from --jwks-file or --jwks-uri.
        #[arg(long, value_enum, default_value_t)]
        auth: AuthArg,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        claims: ClaimArgs,
        /// Tokens per minute this client may get from each replica (default: the server's
        /// --max-tokens-per-minute). Beyond it: 429 with Retry-After.
        #[arg(long)]
        max_tokens_per_minute: Option<u32>,
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
    /// List clients, a page at a time, in id order.
    List {
        /// Clients per page (1..=10000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Start after this client id (the last id of the previous page).
        #[arg(long)]
        after: Option<String>,
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
        /// Switch the method: `private_key_jwt` (with --jwks-file or --jwks-uri; its secrets are
        /// revoked) or `client_secret` (then give it a secret with `rotate-secret`). New keys
        /// alone (--jwks-file/--jwks-uri) replace a private_key_jwt client's keys.
        #[arg(long, value_enum)]
        auth: Option<AuthArg>,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        claims: ClaimArgs,
        /// Remove all custom claims.
        #[arg(long, conflicts_with_all = ["claim", "claim_json"])]
        clear_claims: bool,
        /// Set this client's token quota per minute; 0 returns it to the server's default.
        #[arg(long)]
        max_tokens_per_minute: Option<u32>,
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

/// How a client authenticates.
#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub(crate) enum AuthArg {
    /// A shared secret (`client_secret_basic` or `client_secret_post`).
    #[default]
    #[value(
        name = "client_secret",
        alias = "client_secret_basic",
        alias = "client_secret_post"
    )]
    ClientSecret,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
}

/// Where a `private_key_jwt` client's public keys are.
#[derive(clap::Args)]
pub(crate) struct KeysArgs {
    /// A JWKS file with the client's public keys (at most 10; e.g. from `tessera keypair`).
    #[arg(long, conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    /// A URL serving the client's JWKS (https://, or http:// on loopback), fetched and cached.
    #[arg(long)]
    jwks_uri: Option<String>,
}

impl KeysArgs {
    fn input(self) -> anyhow::Result<Option<KeysInput>> {
        Ok(match (self.jwks_file, self.jwks_uri) {
            (Some(path), _) => Some(KeysInput::Jwks(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            (None, Some(uri)) => Some(KeysInput::JwksUri(uri)),
            (None, None) => None,
        })
    }
}

/// Custom claims for a client's (or an API key's) tokens.
#[derive(clap::Args)]
pub(crate) struct ClaimArgs {
    /// A custom claim with a string value, NAME=VALUE (repeat for more); in every token and
    /// introspection answer. Given lists replace the old claims.
    #[arg(long)]
    claim: Vec<String>,
    /// A custom claim with a JSON value, NAME=JSON (e.g. groups='["git-admins"]').
    #[arg(long)]
    claim_json: Vec<String>,
}

impl ClaimArgs {
    /// The claims, or `None` when no flag was given.
    pub(crate) fn map(&self) -> anyhow::Result<Option<serde_json::Map<String, serde_json::Value>>> {
        if self.claim.is_empty() && self.claim_json.is_empty() {
            return Ok(None);
        }
        let mut map = serde_json::Map::new();
        let split = |c: &str| {
            c.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("a claim is NAME=VALUE: '{c}'"))
        };
        for c in &self.claim {
            let (k, v) = split(c)?;
            if map.insert(k.clone(), v.into()).is_some() {
                anyhow::bail!("claim '{k}' is given twice");
            }
        }
        for c in &self.claim_json {
            let (k, v) = split(c)?;
            let value: serde_json::Value =
                serde_json::from_str(&v).with_context(|| format!("--claim-json {k}: not JSON"))?;
            if map.insert(k.clone(), value).is_some() {
                anyhow::bail!("claim '{k}' is given twice");
            }
        }
        Ok(Some(map))
    }
}

/// The JSON of a client's keys for the admin API: `jwks` (the file's document) or `jwks_uri`.
fn keys_json(
    keys: Option<KeysInput>,
    body: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    match keys {
        Some(KeysInput::Jwks(text)) => {
            let doc: Value = serde_json::from_str(&text).context("--jwks-file: not JSON")?;
            body.insert("jwks".into(), doc);
        }
        Some(KeysInput::JwksUri(u)) => {
            body.insert("jwks_uri".into(), u.into());
        }
        None => {}
    }
    Ok(())
}

/// Run a `client` command through the admin API. Every change is stored with its audit record,
/// in one transaction.
pub(crate) async fn run(api: &Api, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create {
            name,
            scopes,
            audiences,
            token_ttl,
            expires_at,
            auth,
            keys,
            claims,
            max_tokens_per_minute,
            output,
        } => {
            let keys = keys.input()?;
            let claims = claims.map()?.unwrap_or_default();
            match (auth, &keys) {
                (AuthArg::PrivateKeyJwt, None) => {
                    anyhow::bail!("--auth private_key_jwt needs --jwks-file or --jwks-uri")
                }
                (AuthArg::ClientSecret, Some(_)) => {
                    anyhow::bail!("--jwks-file/--jwks-uri need --auth private_key_jwt")
                }
                _ => {}
            }
            let mut body = json!({"name": name, "scopes": scopes, "audiences": audiences,
                "token_ttl": token_ttl, "claims": claims})
            .as_object()
            .cloned()
            .unwrap_or_default();
            if let Some(t) = expires_at {
                body.insert("expires_at".into(), rfc3339(t).into());
            }
            if let Some(q) = max_tokens_per_minute {
                body.insert("max_tokens_per_minute".into(), q.into());
            }
            if auth == AuthArg::PrivateKeyJwt {
                body.insert(
                    "token_endpoint_auth_method".into(),
                    "private_key_jwt".into(),
                );
            }
            keys_json(keys, &mut body)?;
            let v = api.post("/clients", Some(&body.into())).await?;
            emit(&v, output, print_client);
        }
        ClientCommand::List {
            limit,
            after,
            output,
        } => {
            if limit == 0 || limit > 1000 {
                anyhow::bail!("--limit must be between 1 and 1000");
            }
            let mut path = format!("/clients?limit={limit}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", segment(a)));
            }
            let page = api.get(&path).await?;
            if let Some(next) = page["next_after"].as_str() {
                eprintln!("more clients follow: --after {next}");
            }
            emit(&page["clients"], output, print_clients);
        }
        ClientCommand::Show { id, output } => {
            let v = api.get(&format!("/clients/{}", segment(&id))).await?;
            emit(&v, output, print_client);
        }
        ClientCommand::RotateSecret {
            id,
            grace,
            expires_at,
            output,
        } => {
            let mut body = json!({"grace_seconds": grace.as_secs()});
            if let Some(t) = expires_at {
                body["expires_at"] = rfc3339(t).into();
            }
            let v = api
                .post(&format!("/clients/{}/secrets", segment(&id)), Some(&body))
                .await?;
            emit(&v, output, |v| {
                println!("secret_id:     {}", s(v, "secret_id"));
                println!("client_secret: {}", s(v, "client_secret"));
                println!(
                    "previous secrets stop working at {}",
                    s(v, "previous_secrets_expire_at")
                );
                println!("\nStore the secret now: it is shown only once and cannot be recovered.");
            });
        }
        ClientCommand::RevokeSecret {
            id,
            secret_id,
            output,
        } => {
            api.delete(&format!(
                "/clients/{}/secrets/{}",
                segment(&id),
                segment(&secret_id)
            ))
            .await?;
            let v = json!({"client_id": id, "secret_id": secret_id, "revoked": true});
            emit(&v, output, |v| {
                println!(
                    "revoked secret {} of client {}",
                    s(v, "secret_id"),
                    s(v, "client_id")
                );
            });
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
            auth,
            keys,
            claims,
            clear_claims,
            max_tokens_per_minute,
            output,
        } => {
            let keys = keys.input()?;
            if auth == Some(AuthArg::PrivateKeyJwt) && keys.is_none() {
                anyhow::bail!("--auth private_key_jwt needs --jwks-file or --jwks-uri");
            }
            if keys.is_some() && auth != Some(AuthArg::PrivateKeyJwt) {
                // Switching revokes the client's secrets at once: only when asked in so many words.
                let current = api.get(&format!("/clients/{}", segment(&id))).await?;
                if current["token_endpoint_auth_method"] != "private_key_jwt" {
                    anyhow::bail!(
                        "client {id} uses a secret; add --auth private_key_jwt to switch it to keys (its secrets are revoked at once)"
                    );
                }
            }
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            if !scopes.is_empty() {
                body.insert("scopes".into(), scopes.into());
            }
            if clear_audiences {
                body.insert("audiences".into(), json!([]));
            } else if !audiences.is_empty() {
                body.insert("audiences".into(), audiences.into());
            }
            if let Some(t) = token_ttl {
                body.insert("token_ttl".into(), t.into());
            }
            if no_expiry {
                body.insert("expires_at".into(), Value::Null);
            } else if let Some(t) = expires_at {
                body.insert("expires_at".into(), rfc3339(t).into());
            }
            match auth {
                Some(AuthArg::PrivateKeyJwt) => {
                    body.insert(
                        "token_endpoint_auth_method".into(),
                        "private_key_jwt".into(),
                    );
                }
                Some(AuthArg::ClientSecret) => {
                    body.insert(
                        "token_endpoint_auth_method".into(),
                        "client_secret_basic".into(),
                    );
                }
                None => {}
            }
            keys_json(keys, &mut body)?;
            if clear_claims {
                body.insert("claims".into(), json!({}));
            } else if let Some(c) = claims.map()? {
                body.insert("claims".into(), c.into());
            }
            match max_tokens_per_minute {
                Some(0) => {
                    body.insert("max_tokens_per_minute".into(), Value::Null);
                }
                Some(n) => {
                    body.insert("max_tokens_per_minute".into(), n.into());
                }
                None => {}
            }
            let v = api.patch_client(&id, &body.into()).await?;
            emit(&v, output, print_client);
        }
        ClientCommand::Disable { id, output } => {
            let v = api
                .post(&format!("/clients/{}/disable", segment(&id)), None)
                .await?;
            emit(&v, output, print_client);
        }
        ClientCommand::Enable { id, output } => {
            let v = api
                .post(&format!("/clients/{}/enable", segment(&id)), None)
                .await?;
            emit(&v, output, print_client);
        }
        ClientCommand::Delete { id, output } => {
            api.delete(&format!("/clients/{}", segment(&id))).await?;
            let v = json!({"client_id": id, "deleted": true});
            emit(&v, output, |v| {
                println!("deleted client {}", s(v, "client_id"))
            });
        }
    }
    Ok(())
}

/// Unix seconds from a time flag, as the API takes them.
pub(crate) fn rfc3339(t: i64) -> String {
    tessera_server::clock::rfc3339(t)
}
