//! `tessera keypair`: make a key pair for `private_key_jwt` — the private key for the calling
//! service, and a JWKS with its public half to register with the server.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use tessera_client::{KeyAlg, PrivateKey};

#[derive(Args)]
pub(crate) struct KeypairArgs {
    /// Algorithm: ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA 2048).
    #[arg(long, default_value = "ES256")]
    pub(crate) alg: KeyAlg,
    /// Key id (default: the RFC 7638 thumbprint of the public key).
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Where to write the private key (PKCS#8 PEM, mode 0600). Never overwritten.
    #[arg(long)]
    pub(crate) private_key_out: PathBuf,
    /// Where to write the public key as a JWKS (`{"keys": [...]}`).
    #[arg(long)]
    pub(crate) jwks_out: PathBuf,
}

pub(crate) fn run(args: KeypairArgs) -> anyhow::Result<()> {
    let key = PrivateKey::generate(args.alg, args.kid)?;
    // The private key first, and only into a new file: refusing to overwrite also keeps a
    // JWKS from being replaced by one that no longer matches an existing key.
    write_private(&args.private_key_out, &key.to_pkcs8_pem()?)?;
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
    std::fs::write(&args.jwks_out, format!("{jwks:#}\n"))
        .with_context(|| format!("writing the JWKS to {}", args.jwks_out.display()))?;
    println!("kid: {}", key.kid().unwrap_or_default());
    println!("private key: {}", args.private_key_out.display());
    println!("jwks: {}", args.jwks_out.display());
    Ok(())
}

/// Create `path` readable by its owner only and write `pem` to it; fail if it exists.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "creating {} (an existing private key is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the private key to {}", path.display()))
}
