//! Retries of transient failures (connection errors, 5xx, 503 with `Retry-After`), with jitter.

use std::time::Duration;

use crate::request::Attempt;
use crate::{AccessToken, TokenError, TokenSource};

/// Retries for transient failures: connection errors, 5xx, 503 (honouring `Retry-After`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time, with ±50 % jitter.
    pub base_delay: Duration,
    /// Longest single delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl TokenSource {
    pub(crate) async fn fetch_with_retries(&self) -> Result<AccessToken, TokenError> {
        let policy = self.inner.retry;
        let mut delay = policy.base_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match self.token_url().await {
                Ok(url) => self.attempt(&url).await,
                // Discovery failures caused by the network are transient too.
                Err(TokenError::Discovery(reason)) => Attempt::Retry {
                    reason: format!("discovery: {reason}"),
                    after: None,
                },
                Err(e) => Attempt::Done(Err(e)),
            };
            match outcome {
                Attempt::Done(r) => return r,
                Attempt::Retry { reason, after } => {
                    if attempt >= policy.max_attempts.max(1) {
                        return Err(TokenError::Unavailable {
                            attempts: attempt,
                            last: reason,
                        });
                    }
                    let wait = after.unwrap_or_else(|| jitter(delay)).min(policy.max_delay);
                    tracing::debug!(attempt, ?wait, reason = %reason, "token request failed; retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
            }
        }
    }
}

/// `d` scaled by a random factor in [0.5, 1.5).
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let f = 0.5 + f64::from(u16::from_le_bytes(b)) / 65536.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j < Duration::from_millis(150));
        }
    }
}
