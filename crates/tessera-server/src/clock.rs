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

/// Unix seconds as RFC 3339 in UTC (`2027-01-31T00:00:00Z`): how every time a person or a tool
/// reads is written (CLI output, the admin API, audit records). A time outside what RFC 3339
/// can write (before year 0 or after 9999) is written as its unix seconds.
pub fn rfc3339(t: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// An RFC 3339 time (any offset; fractions of a second dropped) as unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// `#[serde(serialize_with)]` helpers writing unix seconds as [`rfc3339`].
pub mod serde_rfc3339 {
    /// A time.
    pub fn serialize<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// An optional time (`null` when absent).
    pub fn option<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(4_070_908_800), "2099-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2099-01-01T00:00:00Z"), Some(4_070_908_800));
        assert_eq!(
            parse_rfc3339("2099-01-01T01:00:00+01:00"),
            Some(4_070_908_800)
        );
        assert_eq!(parse_rfc3339("2099-01-01"), None);
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }
}
