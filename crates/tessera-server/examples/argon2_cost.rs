//! What one argon2id secret check costs here (the work the credential cache saves and a flood of
//! wrong secrets forces): hashes one fresh secret, then times `rounds` verifications of the right
//! and a wrong secret, single-threaded.
//!
//!     cargo run --release -p tessera-server --example argon2_cost -- [rounds, default 30]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tessera_server::secrets::{generate_secret, ClientSecret, SecretHash};

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let secret = generate_secret();
    let start = Instant::now();
    let hash = SecretHash::create(&secret).unwrap();
    println!(
        "hash: {:.1} ms ({})",
        start.elapsed().as_secs_f64() * 1e3,
        &hash.as_str()[..30]
    );
    let wrong = ClientSecret::new("tss_wrong");
    for (name, s, want) in [("right", &secret, true), ("wrong", &wrong, false)] {
        let start = Instant::now();
        for _ in 0..rounds {
            assert_eq!(hash.verify(s), want);
        }
        let per = start.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
        println!("verify ({name} secret): {per:.1} ms per check over {rounds}");
    }
}
