//! What the metrics add to one token request, operation by operation, on one thread and on two
//! contending (the token endpoint's two workers): before the recorder is installed (metrics
//! off: what every request pays anyway) and after (`--metrics-listen`: the latency layer's two
//! clock readings and histogram sample, the token counter).
//!
//!     cargo run --release -p tessera-server --example metrics_cost -- [millions of ops, default 2]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use tessera_server::keys::Alg;
use tessera_server::metrics::{self, GrantKind};
use tessera_server::oauth::{AuthMethod, ClientId};

/// Run `f` `n` times on each of `threads` threads at once; print the time per operation.
fn run(name: &str, threads: usize, n: u64, f: impl Fn() + Sync) {
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    f();
                }
            });
        }
    });
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:46} {threads} thread(s): {ns:7.1} ns");
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2)
        * 1_000_000;
    let client = ClientId::parse("tc_bench").unwrap();
    let token = || {
        metrics::token_issued(
            GrantKind::ClientCredentials,
            Alg::Es256,
            Some(AuthMethod::ClientSecretBasic),
            &client,
        )
    };
    for threads in [1, 2] {
        run("off: token counter", threads, n, token);
        run("off: route histogram look-up", threads, n, || {
            black_box(metrics::route_histogram("/oauth/token"));
        });
    }
    let _exporter = metrics::Exporter::install(false).unwrap();
    let histogram = metrics::route_histogram("/oauth/token").unwrap();
    for threads in [1, 2] {
        run("on: token counter", threads, n, token);
        run("on: route histogram look-up", threads, n, || {
            black_box(metrics::route_histogram("/oauth/token"));
        });
        run("on: clock reading (Instant::now)", threads, n, || {
            black_box(Instant::now());
        });
        let t0 = Instant::now();
        run(
            "on: histogram sample (with its clock reading)",
            threads,
            n,
            || histogram.record(t0.elapsed()),
        );
    }
}
