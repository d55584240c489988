//! Client secrets: generation, argon2id hashing, and verification that pays argon2id once per
//! credential rather than once per request.

mod verifier;

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

pub use verifier::{CredentialVerifier, VerifierLimits, VerifyError};

pub use tessera_proto::ClientSecret;

/// A fresh client secret: 256 bits from the OS CSPRNG, base64url, with a `tss_` prefix so
/// secret scanners can recognise a leaked one.
pub fn generate_secret() -> ClientSecret {
    ClientSecret::new(format!("tss_{}", crate::random::base64url(32)))
}

/// An argon2id hash in PHC string format.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// Hash a secret with argon2id (the crate's default, OWASP-recommended parameters).
    pub fn create(secret: &ClientSecret) -> Result<Self, argon2::password_hash::Error> {
        // 128-bit salt from the OS CSPRNG (through aws-lc-rs, as every other random value here).
        let salt = crate::random::bytes::<16>();
        let hash: PasswordHash =
            Argon2::default().hash_password_with_salt(secret.expose().as_bytes(), &salt)?;
        Ok(Self(hash.to_string()))
    }

    /// Wrap a stored PHC string.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Verify a secret against this hash. argon2's comparison of the derived key is
    /// constant-time; the cost (~34 ms here) is why callers go through [`CredentialVerifier`].
    pub fn verify(&self, secret: &ClientSecret) -> bool {
        match PasswordHash::new(&self.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(secret.expose().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<argon2id>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let s = generate_secret();
        assert!(s.expose().len() >= 4 + 43);
        let h = SecretHash::create(&s).unwrap();
        assert!(h.as_str().starts_with("$argon2id$"));
        assert!(h.verify(&s));
        assert!(!h.verify(&ClientSecret::new("wrong")));
        assert!(!format!("{s:?}{h:?}").contains(s.expose()));
    }
}
