//! Randomness from the operating system's CSPRNG (through aws-lc-rs).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// `n` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SystemRandom reads getrandom(2); it fails only if the kernel cannot provide randomness,
    // in which case nothing this server does is safe, so stopping is the right answer.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random generator failed");
    buf
}

/// `n` random bytes as unpadded base64url.
pub fn base64url(n: usize) -> String {
    let mut buf = vec![0u8; n];
    #[allow(clippy::expect_used)] // see `bytes`
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}
