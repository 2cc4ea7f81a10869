//! The breaker state machine, as pure logic.
//!
//! Nothing in this module knows about tokio, actors or the wall clock: every
//! method that depends on time takes `now` as an argument, and the only source
//! of randomness (open-duration jitter) is an injectable [`JitterSource`]. That
//! keeps the rules testable against a reference model with arbitrary clocks,
//! and keeps the state machine cheap enough to sit on every call.
//!
//! # The lifecycle
//!
//! ```text
//!            trip rule fires                 open duration passes
//!  Closed ─────────────────────▶ Open ─────────────────────────────▶ HalfOpen
//!    ▲                            ▲                                     │
//!    │                            └──── any probe fails or times out ───┤
//!    └──────────── success_threshold consecutive probe successes ───────┘
//! ```
//!
//! * **Trip rules** ([`BreakerSettings`]) combine: consecutive failures (always
//!   on, the seed's rule), and an optional [`RateRule`] over a count or time
//!   window that trips on failure rate and/or slow-call rate once
//!   `minimum_calls` have been seen.
//! * **Open duration** starts at `open_timeout`, grows by
//!   `open_backoff_multiplier` on every re-open (HalfOpen → Open), is capped at
//!   `max_open_timeout`, carries `open_jitter` on re-opens, and returns to the
//!   base after a clean close.
//! * **HalfOpen** admits at most `half_open_max_calls` probes at once. It closes
//!   after `success_threshold` consecutive probe successes counted from entry
//!   into HalfOpen; any probe failure, or a probe outliving
//!   `half_open_probe_timeout`, re-opens it.
//! * **Manual states** ([`BreakerState::ForcedOpen`], [`BreakerState::Disabled`],
//!   [`BreakerState::MetricsOnly`]) carry a reason and leave only by another
//!   command or [`CircuitBreaker::reset`].
//!
//! # Permits and epochs
//!
//! Every admitted call holds a [`Permit`] stamped with the breaker's epoch (its
//! transition count). An outcome recorded with a permit from an older epoch
//! still counts in the metrics but cannot move the state: a slow call admitted
//! while Closed cannot close a breaker that has since re-opened, nor count as
//! a HalfOpen probe.

mod latency;
mod machine;
mod metrics;
mod open_duration;
mod outcome;
mod rate_window;
mod settings;
mod state;
mod transition;

pub use crate::backoff::{JitterSource, SeededJitter};
pub use latency::{LatencyHistogram, SparseHistogram};
pub(crate) use machine::saturating_add;
pub use machine::{CircuitBreaker, Permit, Rejected};
pub use metrics::BreakerMetrics;
pub use open_duration::OpenDurationPolicy;
pub use outcome::{FailureKind, Outcome};
pub use rate_window::RateWindow;
pub use settings::{BreakerSettings, RateRule, WindowKind};
pub use state::BreakerState;
pub use transition::{Transition, TransitionReason, TripCause};
