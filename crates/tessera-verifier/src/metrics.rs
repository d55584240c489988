//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade: this crate counts, and the
//! service that uses it decides whether and how to export (any `metrics` exporter: Prometheus,
//! StatsD, OpenTelemetry…). Without an installed recorder every count is a no-op.
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | [`TOKENS_ACCEPTED`] | counter | | tokens that verified |
//! | [`TOKENS_REJECTED`] | counter | `reason` | tokens refused, by [`crate::VerifyError::reason`] |
//! | [`JWKS_REFRESHES`] | counter | `issuer` | key fetches started (discovery + JWKS) |
//! | [`JWKS_REFRESH_FAILURES`] | counter | `issuer` | key fetches that failed (the last good keys stay in use) |
//! | [`KEY_STALENESS`] | gauge | `issuer` | seconds since the last successful key fetch |
//!
//! Label values are fixed (`reason`) or configured by the service (`issuer`, the issuer it
//! trusts), never taken from a token. A valid token refused for its scope or role counts as
//! accepted: the verification succeeded, the authorization did not. Keys given as a static JWKS
//! are never fetched and have no key series; [`crate::keys::Keys`] caches (the token server's
//! own, for client assertions) report none either.
//!
//! [`KEY_STALENESS`] is set at each fetch and, at most once a second, at each verification; a
//! verifier that sees no traffic keeps its last value (and fetches nothing, so there is nothing
//! new to report).
//!
//! ```
//! // With a recorder installed (e.g. metrics-exporter-prometheus), name the series once:
//! tessera_verifier::metrics::describe();
//! ```

/// Counter: tokens that verified (signature, issuer, audience, times, revocation).
pub const TOKENS_ACCEPTED: &str = "tessera_verifier_tokens_accepted_total";

/// Counter: tokens refused. Label `reason`: [`crate::VerifyError::reason`] (`expired`,
/// `bad_signature`, `wrong_audience`, `keys_unavailable`, …; a fixed set).
pub const TOKENS_REJECTED: &str = "tessera_verifier_tokens_rejected_total";

/// Counter: key fetches started (discovery and JWKS), successful or not. Label `issuer`.
pub const JWKS_REFRESHES: &str = "tessera_verifier_jwks_refreshes_total";

/// Counter: key fetches that failed; the last good keys stay in use until they are too stale.
/// Label `issuer`.
pub const JWKS_REFRESH_FAILURES: &str = "tessera_verifier_jwks_refresh_failures_total";

/// Gauge: seconds since the last successful key fetch. Label `issuer`.
pub const KEY_STALENESS: &str = "tessera_verifier_key_staleness_seconds";

/// Describe every series to the installed recorder (`# HELP` lines, units). Optional: the
/// series are recorded either way.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(TOKENS_ACCEPTED, "Access tokens that verified.");
    describe_counter!(TOKENS_REJECTED, "Access tokens refused, by reason.");
    describe_counter!(JWKS_REFRESHES, "Key fetches started, by issuer.");
    describe_counter!(JWKS_REFRESH_FAILURES, "Key fetches that failed, by issuer.");
    describe_gauge!(
        KEY_STALENESS,
        Unit::Seconds,
        "Seconds since the last successful key fetch, by issuer."
    );
}

/// Count one verification's outcome.
pub(crate) fn verified<T>(result: &Result<T, crate::VerifyError>) {
    match result {
        Ok(_) => metrics::counter!(TOKENS_ACCEPTED).increment(1),
        Err(e) => metrics::counter!(TOKENS_REJECTED, "reason" => e.reason()).increment(1),
    }
}
