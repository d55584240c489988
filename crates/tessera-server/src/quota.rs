//! Per-client token quotas: `max_tokens_per_minute` as a token bucket per client (capacity N,
//! refilled at N per minute), so a client may take its minute's tokens at once and then one
//! every 60/N seconds. Counted per replica, in memory, with no database write per token: behind
//! a load balancer over R replicas a client gets up to R×N per minute (see the README).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::oauth::ClientId;

/// Shards of the bucket table, so replicas' worker threads rarely wait on one lock.
const SHARDS: usize = 16;

/// The buckets. See the module documentation.
#[derive(Debug)]
pub struct Quotas {
    shards: Vec<Mutex<HashMap<ClientId, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left (fractional while refilling).
    left: f64,
    /// When `left` was computed, milliseconds on the caller's clock.
    at_ms: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Quotas {
    /// Take one token for `client` whose quota is `per_minute`, at `now_ms`: `Ok(())`, or
    /// `Err(seconds)` to wait before the next one is free.
    pub fn take(&self, client: &ClientId, per_minute: u32, now_ms: i64) -> Result<(), u32> {
        let cap = f64::from(per_minute.max(1));
        let rate_per_ms = cap / 60_000.0;
        let shard = &self.shards[shard_of(client)];
        let mut map = match shard.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        // Bounded: a shard that grew large drops the buckets that have refilled.
        if map.len() > 50_000 {
            map.retain(|_, b| now_ms - b.at_ms < 60_000);
        }
        let b = map.entry(client.clone()).or_insert(Bucket {
            left: cap,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - b.at_ms).max(0) as f64;
        b.left = (b.left + elapsed * rate_per_ms).min(cap);
        b.at_ms = now_ms;
        if b.left >= 1.0 {
            b.left -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - b.left) / rate_per_ms;
            Err(((wait_ms / 1000.0).ceil() as u32).max(1))
        }
    }

    /// Forget buckets that have refilled (their clients are back to a full minute), so memory
    /// follows the clients active in the last minute, not every client ever seen.
    pub fn prune(&self, now_ms: i64) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.lock() {
                map.retain(|_, b| now_ms - b.at_ms < 60_000);
            }
        }
    }
}

fn shard_of(client: &ClientId) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    client.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_at_once_then_one_per_interval() {
        let q = Quotas::default();
        let c = ClientId::parse("tc_a").unwrap_or_else(ClientId::generate);
        for _ in 0..6 {
            assert_eq!(q.take(&c, 6, 0), Ok(()));
        }
        // 6 per minute: the next one in 10 s.
        assert_eq!(q.take(&c, 6, 0), Err(10));
        assert_eq!(q.take(&c, 6, 9_000), Err(1));
        assert_eq!(q.take(&c, 6, 10_000), Ok(()));
        // Another client is not affected.
        let d = ClientId::parse("tc_b").unwrap_or_else(ClientId::generate);
        assert_eq!(q.take(&d, 6, 10_000), Ok(()));
        q.prune(200_000);
        assert_eq!(q.take(&c, 6, 200_000), Ok(()));
    }
}
