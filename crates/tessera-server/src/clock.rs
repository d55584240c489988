//! Time, injectable so tests never sleep.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix time in seconds.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that stands at `t` until moved with [`Clock::set`].
    pub fn fixed(t: i64) -> Self {
        Self {
            fixed: Some(Arc::new(AtomicI64::new(t))),
        }
    }

    /// Move a fixed clock (no effect on the system clock).
    pub fn set(&self, t: i64) {
        if let Some(f) = &self.fixed {
            f.store(t, Ordering::Relaxed);
        }
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        match &self.fixed {
            Some(f) => f.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}
