//! seawall: a supervision runtime for trading engines.
//!
//! Each dependency of the engine (the broker API, the database, the AI
//! agents, the market-data feed) runs as a service actor behind a breaker
//! actor that supervises it and tracks every outcome. Engine code holds a
//! [`ServiceHandle`] per dependency and sends it requests; when failures pass
//! a threshold the breaker opens and calls are refused at once instead of
//! hanging.
//!
//! Where to look, following a call:
//!
//! * [`service`] — the [`Service`] trait you implement per dependency.
//! * [`handle`] — the call path: admission, bulkhead, dispatch, outcome; retries.
//! * [`breaker`] — the state machine: pure logic, time as an argument.
//! * `actor` (private) — the service, breaker, recovery, health and root actors.
//! * [`recovery`] — recovery strategies, restart intensity, escalation.
//! * [`health`] and [`modes`] — the 0–100 score, the report, trading modes.
//! * [`degradation`] — fallbacks that say so in their type.
//! * [`runtime`] — [`Seawall`]: spawn the tree, get handles, shut down.
//! * [`config`] — `actors.toml`, environment overrides, validation.
//! * [`event`] — the event bus observers subscribe to.
//! * [`http`] — the health endpoints, probes, metrics and admin controls.
//! * [`chaos`] — fault injection for rehearsing outages.
//! * [`backoff`] and [`stats`] — shared pieces.
#![warn(missing_docs)]

mod actor;
pub mod backoff;
pub mod breaker;
mod cell;
pub mod chaos;
mod clock;
pub mod config;
pub mod degradation;
pub mod event;
#[cfg(feature = "fleet")]
pub mod fleet;
pub mod handle;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
mod launch;
pub mod modes;
pub mod recovery;
pub mod runtime;
pub mod service;
pub mod stats;
mod supervision;

pub use breaker::{BreakerState, FailureKind, Outcome};
pub use event::{Event, ReloadSummary};
pub use handle::{CallError, ServiceHandle};
pub use runtime::{
    BreakerControl, DegradationError, HandleError, ReloadError, Seawall, SeawallBuilder,
    ServiceKey, StartError,
};
pub use service::{DefaultPolicy, Evidence, Lifecycle, Policy, Service};
