//! What parsing a token request's form costs before authentication: a 15.6 KB form of 3,906
//! distinct parameter names against a flat form of the same size (one long value), through
//! `TokenRequest::parse`, the parser the token endpoint runs on every request.
//!
//!     cargo run --release -p tessera-server --example form_cost -- [rounds, default 200]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tessera_server::oauth::TokenRequest;

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // 3,906 pairs "aNNN=" of ~4 bytes each: the attack form of issue 16.
    let mut many = String::from("grant_type=client_credentials");
    let mut i = 0;
    while many.len() < 15_600 {
        many.push_str(&format!("&{}=", base36(i)));
        i += 1;
    }
    let names = i;
    let flat = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(many.len() - "grant_type=client_credentials&pad=".len())
    );
    for (label, body) in [("distinct names", &many), ("flat", &flat)] {
        let started = Instant::now();
        for _ in 0..rounds {
            TokenRequest::parse(body.as_bytes()).unwrap();
        }
        let per = started.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
        println!(
            "{label:>14}: {} bytes, {per:.3} ms per parse over {rounds}",
            body.len()
        );
    }
    println!("({names} distinct names)");
}

/// Short distinct names: a, b, …, z, 10, 11, …
fn base36(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}
