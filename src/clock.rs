//! The runtime's clocks: one monotonic clock every breaker reads, and wall
//! time as RFC 3339 text for reports.
//!
//! The pure breaker never reads a clock (time is an argument); everything
//! above it passes [`now`], which is tokio's clock, so paused-time tests
//! drive breakers exactly like real time does.

use std::time::Instant;

/// The clock every breaker in the tree reads.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Serde helpers: `SystemTime` as RFC 3339 text, as dashboards expect.
pub(crate) mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub(crate) mod option {
        use serde::Serializer;
        use std::time::SystemTime;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
                None => s.serialize_none(),
            }
        }
    }
}
