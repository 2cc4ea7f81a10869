//! Bringing a service back: recovery strategies, restart intensity and retries.
//!
//! Three mechanisms, each for a different kind of trouble:
//!
//! * **Recovery strategies** handle an *outage*. When a breaker opens (and
//!   `AUTO_RECOVERY_ENABLED` is on) the tree's recovery actor runs that
//!   service's [`RecoveryStrategy`] on the `[services.NAME.recovery]`
//!   backoff: a Kite re-login, a database reconnect, a market-data
//!   resubscribe. The first success moves the breaker to HalfOpen at once,
//!   so probes start without waiting out the open duration. The backoff
//!   resets after a clean close.
//! * **Restarts** handle a *crash*. A service actor that panics (or whose
//!   start-up fails) is restarted after a short backoff, and the crash counts
//!   as a breaker failure. Restarts are bounded OTP-style by
//!   [`RestartIntensity`]: more than `max_restarts` within `period`
//!   escalates — the breaker is forced open with the reason, an
//!   [`Event::Escalated`](crate::Event::Escalated) goes on the bus, and only
//!   a successful recovery or an operator reset clears it.
//! * **Retries** handle a *blip*, for idempotent requests only
//!   ([`ServiceHandle::call_with_retry`](crate::ServiceHandle::call_with_retry)).
//!   Order placement, modification and cancellation are never retried.

mod strategy;

pub use crate::supervision::{RestartDecision, RestartIntensity};
pub(crate) use strategy::Revive;
pub use strategy::{Reconnect, RecoveryContext, RecoveryError, RecoveryStrategy};
