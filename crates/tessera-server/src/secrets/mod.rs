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

    /// Verify a secret against this hash, deriving the key in `memory` (argon2id's working
    /// memory, grown to the hash's `m` once and then reused), so a stream of checks allocates
    /// nothing and holds no more than one working memory per caller. The derived key is compared
    /// in constant time. A hash that is not argon2id, or does not parse, never matches.
    pub fn verify_in(&self, secret: &ClientSecret, memory: &mut Vec<argon2::Block>) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.0) else {
            return false;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return false;
        }
        let (Ok(params), Some(salt), Some(expected)) =
            (argon2::Params::try_from(&parsed), parsed.salt, parsed.hash)
        else {
            return false;
        };
        let argon = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        let mut out = [0u8; 64];
        let Some(out) = out.get_mut(..expected.as_bytes().len()) else {
            return false;
        };
        if argon
            .hash_password_into_with_memory(
                secret.expose().as_bytes(),
                salt.as_ref(),
                &mut *out,
                &mut memory[..blocks],
            )
            .is_err()
        {
            return false;
        }
        aws_lc_rs::constant_time::verify_slices_are_equal(out, expected.as_bytes()).is_ok()
    }

    /// Verify a secret against this hash (allocating argon2id's working memory for this one
    /// check). The cost (~20 ms here) is why callers go through [`CredentialVerifier`].
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
        // The pooled-memory check agrees, and reuses its memory.
        let mut memory = Vec::new();
        assert!(h.verify_in(&s, &mut memory));
        let size = memory.len();
        assert!(
            size >= 19 * 1024,
            "grown to the hash's m (19 MiB of 1 KiB blocks)"
        );
        assert!(!h.verify_in(&ClientSecret::new("wrong"), &mut memory));
        assert_eq!(memory.len(), size, "no growth on the next check");
        assert!(
            !SecretHash::from_stored("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into())
                .verify_in(&s, &mut memory)
        );
        assert!(!SecretHash::from_stored("garbage".into()).verify_in(&s, &mut memory));
        assert!(!format!("{s:?}{h:?}").contains(s.expose()));
    }
}
