//! The master key that encrypts signing keys at rest (AES-256-GCM).

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// A 256-bit AES-GCM key. `Debug` never shows it.
pub struct MasterKey {
    key: RandomizedNonceKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The master key could not be loaded, or a ciphertext did not decrypt under it.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The configured value is not 32 bytes of base64.
    #[error("master key must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)")]
    Malformed,
    /// Reading or creating the key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Decryption failed: wrong master key or tampered data.
    #[error(
        "cannot decrypt a stored signing key: wrong master key, or the database was tampered with"
    )]
    Decrypt,
    /// Encryption failed inside aws-lc.
    #[error("encryption failed")]
    Encrypt,
}

impl MasterKey {
    /// Parse a base64 (standard or url-safe) encoded 32-byte key.
    pub fn from_base64(s: &str) -> Result<Self, MasterKeyError> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| MasterKeyError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, MasterKeyError> {
        if bytes.len() != 32 {
            return Err(MasterKeyError::Malformed);
        }
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self { key })
    }

    /// Load the key file at `path`, creating it (mode 0600, 32 random bytes) if it does not exist.
    pub fn load_or_create_file(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = crate::random::bytes::<32>();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut file = opts.open(path).map_err(io)?;
                file.write_all(format!("{}\n", STANDARD.encode(bytes)).as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypt `plaintext`, binding it to `context` (the key id) as associated data, so a
    /// ciphertext cannot be swapped onto another key's row. Output: nonce ‖ ciphertext ‖ tag.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| MasterKeyError::Encrypt)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Decrypt what [`MasterKey::encrypt`] produced for the same `context`.
    pub fn decrypt(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        if sealed.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(MasterKeyError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MasterKeyError::Decrypt)?;
        let mut data = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| MasterKeyError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k = MasterKey::load_or_create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let sealed = k.encrypt("kid1", b"private key bytes").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        // Loading the file again gives the same key.
        let again = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(
            again.decrypt("kid1", &sealed).unwrap(),
            b"private key bytes"
        );
        // Bound to the key id, and to the key.
        assert!(k.decrypt("kid2", &sealed).is_err());
        let other = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert!(other.decrypt("kid1", &sealed).is_err());
        assert!(MasterKey::from_base64("short").is_err());
    }
}
