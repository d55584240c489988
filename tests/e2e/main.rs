//! End-to-end tests: the real binary, the real CLI, HTTP on loopback, a real SQLite file.

// Tests fail loudly: unwrap/expect are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod cli;
mod client;
mod compose;
mod harness;
mod lifecycle;
mod logs;
mod negative;
mod replicas;
mod revocation;
mod rotation;
mod token;
mod upgrade;
mod verifier;
