//! The actors of the tree, and what travels between them.
//!
//! ```text
//! Seawall (root)                   supervises the actors below
//! ├── HealthActor                  modes on events; checks, samples, trends
//! ├── RecoveryActor                runs recovery strategies on backoff
//! └── BreakerActor[name]           timers, transitions, restarts, shutdown
//!     └── ServiceActor[name] × N   owns one service value, runs requests
//! ```
//!
//! Requests do not pass through the breaker actor: a
//! [`ServiceHandle`](crate::ServiceHandle) admits the call against the
//! published breaker state and sends it straight to a service actor. The
//! breaker actor sees the *consequences*: every state transition (in the
//! order it happened), every service-actor failure (it is their supervisor),
//! and its own timers that move Open → HalfOpen with no traffic.

mod breaker_actor;
mod health_actor;
mod recovery_actor;
mod root_actor;
mod service_actor;

pub(crate) use breaker_actor::{BreakerActor, BreakerArgs, BreakerMsg, ClosedHook};
pub(crate) use health_actor::{CheckFn, HealthActor, HealthArgs, HealthMsg};
pub(crate) use recovery_actor::{AttemptFn, Recoverable, RecoveryActor, RecoveryMsg};
pub(crate) use root_actor::RootActor;
pub(crate) use service_actor::{CallFailure, Factory, ServiceActors, ServiceMsg};
