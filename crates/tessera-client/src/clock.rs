//! Monotonic time for token expiry, injectable so tests need not sleep.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Monotonic time, injectable so tests need not sleep. Expiry is computed from `expires_in` on
/// this clock, so a wrong wall clock on the caller's machine does not matter.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// `Instant::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that runs ahead of the real one by however much it was advanced.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    /// A clock with no offset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move forward by `d`.
    pub fn advance(&self, d: Duration) {
        if let Ok(mut o) = self.0.lock() {
            *o += d;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + self.0.lock().map_or(Duration::ZERO, |o| *o)
    }
}
