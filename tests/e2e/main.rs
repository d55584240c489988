//! End-to-end tests: the real binary, the real CLI, HTTP on loopback, a real SQLite file and a
//! real PostgreSQL server.
//!
//! Runs on libtest-mimic (`harness = false`): every test registers itself through
//! `both_backends!` or `e2e_test!` (see `harness`), and `main` decides once, before anything
//! runs, whether the PostgreSQL tests can run here. When they cannot (no
//! TESSERA_TEST_POSTGRES_URL, nothing at the default URL, not CI) they are reported as ignored,
//! so the summary line says how many did not run. The usual libtest flags work (a name filter,
//! `--test-threads`, `--ignored`, `--list`).

// Tests fail loudly: unwrap/expect are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod admin_api;
mod audit;
mod cli;
mod client;
mod compose;
mod federation;
mod front_door;
mod harness;
mod interop;
mod issuer;
mod lifecycle;
mod logs;
mod metrics;
mod negative;
mod openapi;
mod outage;
mod replicas;
mod resource;
mod revocation;
mod rotation;
mod secretless;
mod tls;
mod token;
mod upgrade;
mod verifier;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let postgres = harness::postgres_probe();
    let mut tests: Vec<&'static harness::E2eTest> = inventory::iter::<harness::E2eTest>().collect();
    tests.sort_by_key(|t| t.name);
    let trials = tests.into_iter().map(|t| t.trial(&postgres)).collect();
    if let Err(reason) = &postgres {
        eprintln!("PostgreSQL tests are reported as ignored: {reason}");
    }
    libtest_mimic::run(&args, trials).exit_code()
}
