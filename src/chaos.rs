//! Chaos: a [`Service`] wrapper that injects faults on a schedule.
//!
//! `Chaos<S>` wraps any service and, while a [`ChaosPhase`] of its
//! [`ChaosPlan`] is active, makes calls fail with an error of a chosen kind,
//! adds latency, hangs (so the call times out), panics, or takes the whole
//! dependency out (calls, reconnects, health checks and start-ups fail).
//! Every fault hits reconnects and health checks as it hits calls: an
//! injected outage must not let recovery believe the dependency is back.
//! Each phase fires with a probability drawn from a seeded generator, so a
//! run can be reproduced. The plan is shared by every instance of the
//! service and can be changed while running ([`ChaosPlan::set_phases`]).
//!
//! It is a user-facing feature: point it at your engine to rehearse an
//! outage before the market does it for you.

pub use crate::config::{ChaosPhaseConfig, FaultKind};
use crate::service::{Evidence, Lifecycle, Service};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a phase does to calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Calls fail with an error of `kind` (the plan's error builder makes it).
    Error {
        /// The error kind, passed to the plan's error builder.
        kind: String,
    },
    /// Calls take `latency` longer.
    Latency {
        /// Added delay.
        latency: Duration,
    },
    /// Calls never answer (the caller's `call_timeout` fires).
    Timeout,
    /// The service panics inside the call.
    Panic,
    /// Everything fails: calls, reconnects, health checks, start-ups.
    Outage,
}

/// One scheduled fault: from `from` to `until` after the plan started.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosPhase {
    /// When it starts, after the plan's start.
    pub from: Duration,
    /// When it ends.
    pub until: Duration,
    /// The chance each call is hit, 0–1.
    pub probability: f64,
    /// What happens.
    pub fault: Fault,
}

impl From<&ChaosPhaseConfig> for ChaosPhase {
    /// The phase a validated `[[services.NAME.chaos]]` entry describes.
    fn from(config: &ChaosPhaseConfig) -> Self {
        ChaosPhase {
            from: config.from,
            until: config.until,
            probability: config.probability.unwrap_or(1.0),
            fault: match config.fault {
                FaultKind::Error => Fault::Error {
                    kind: config
                        .error_kind
                        .clone()
                        .unwrap_or_else(|| "error".to_string()),
                },
                FaultKind::Latency => Fault::Latency {
                    latency: config.latency.unwrap_or_default(),
                },
                FaultKind::Timeout => Fault::Timeout,
                FaultKind::Panic => Fault::Panic,
                FaultKind::Outage => Fault::Outage,
            },
        }
    }
}

/// The schedule and the error builder, shared by every instance.
pub struct ChaosPlan<E> {
    phases: Mutex<Vec<ChaosPhase>>,
    started: Mutex<Instant>,
    rng: Mutex<fastrand::Rng>,
    #[allow(clippy::type_complexity)]
    make_error: Box<dyn Fn(&str) -> E + Send + Sync>,
}

impl<E> ChaosPlan<E> {
    /// A plan starting now, seeded with `seed`; `make_error` builds the
    /// service's error for a fault's `kind` (and `"outage"`).
    pub fn new(
        phases: Vec<ChaosPhase>,
        seed: u64,
        make_error: impl Fn(&str) -> E + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            phases: Mutex::new(phases),
            started: Mutex::new(Instant::now()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            make_error: Box::new(make_error),
        })
    }

    /// Replaces the schedule (times count from [`Self::restart`]).
    pub fn set_phases(&self, phases: Vec<ChaosPhase>) {
        *self.phases.lock().unwrap_or_else(|p| p.into_inner()) = phases;
    }

    /// Starts the schedule's clock again from now.
    pub fn restart(&self) {
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// The fault hitting a call now, if any.
    pub fn current(&self) -> Option<Fault> {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        let phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        phases
            .iter()
            .filter(|p| p.from <= elapsed && elapsed < p.until)
            .find(|p| rng.f64() < p.probability)
            .map(|p| p.fault.clone())
    }

    /// Whether an outage phase is active now.
    pub fn in_outage(&self) -> bool {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|p| p.fault == Fault::Outage && p.from <= elapsed && elapsed < p.until)
    }

    fn error(&self, kind: &str) -> E {
        (self.make_error)(kind)
    }
}

/// A service with faults injected by a shared [`ChaosPlan`].
pub struct Chaos<S: Service> {
    inner: S,
    plan: Arc<ChaosPlan<S::Error>>,
}

impl<S: Service> Chaos<S> {
    /// Wraps `inner` under `plan`.
    pub fn new(inner: S, plan: Arc<ChaosPlan<S::Error>>) -> Self {
        Self { inner, plan }
    }
}

impl<E> ChaosPlan<E> {
    /// The fault for a reconnect or health check: an outage is an outage
    /// everywhere. Errors and outages fail, a timeout hangs (the caller's
    /// deadline fires), latency delays, a panic panics.
    async fn inject(&self) -> Result<(), E> {
        match self.current() {
            None => Ok(()),
            Some(Fault::Error { kind }) => Err(self.error(&kind)),
            Some(Fault::Outage) => Err(self.error("outage")),
            Some(Fault::Latency { latency }) => {
                tokio::time::sleep(latency).await;
                Ok(())
            }
            Some(Fault::Timeout) => std::future::pending().await,
            Some(Fault::Panic) => panic!("chaos: injected panic"),
        }
    }
}

/// Every policy of `S` is forwarded (`classify`, `classify_response`,
/// `is_auth_failure`, `is_idempotent`, `order_intent`, `request_class`,
/// `retry_after`): a wrapper must never drop one.
/// `tests/chaos_policies.rs` enumerates them.
impl<S: Service> Service for Chaos<S>
where
    S::Error: Send,
{
    type Request = S::Request;
    type Response = S::Response;
    type Error = S::Error;
    // The wrapped service's whole policy: nothing to forward, nothing to forget.
    type Policy = S::Policy;

    async fn call(&mut self, request: S::Request) -> Result<S::Response, S::Error> {
        match self.plan.current() {
            None => self.inner.call(request).await,
            Some(Fault::Error { kind }) => Err(self.plan.error(&kind)),
            Some(Fault::Outage) => Err(self.plan.error("outage")),
            Some(Fault::Latency { latency }) => {
                tokio::time::sleep(latency).await;
                self.inner.call(request).await
            }
            Some(Fault::Timeout) => std::future::pending().await,
            Some(Fault::Panic) => panic!("chaos: injected panic"),
        }
    }
}

/// The wrapped service's lifecycle, with the plan's faults injected first:
/// an outage fails a reconnect or a health check as it fails a call.
impl<S: Lifecycle> Lifecycle for Chaos<S>
where
    S::Error: Send,
{
    async fn start(&mut self) -> Result<(), S::Error> {
        if self.plan.in_outage() {
            return Err(self.plan.error("outage"));
        }
        self.inner.start().await
    }

    async fn reconnect(&mut self) -> Result<Evidence, S::Error> {
        let plan = Arc::clone(&self.plan);
        plan.inject().await?;
        self.inner.reconnect().await
    }

    async fn health_check(&mut self) -> Result<Evidence, S::Error> {
        let plan = Arc::clone(&self.plan);
        plan.inject().await?;
        self.inner.health_check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn test_plan_when_seeded_then_reproducible_and_bounded_by_phase() {
        let phases = vec![ChaosPhase {
            from: Duration::from_secs(1),
            until: Duration::from_secs(2),
            probability: 0.5,
            fault: Fault::Error {
                kind: "NetworkException".into(),
            },
        }];
        let run = |seed| {
            let plan = ChaosPlan::new(phases.clone(), seed, |k: &str| k.to_string());
            (0..100)
                .map(move |_| plan.current().is_some())
                .collect::<Vec<_>>()
        };
        assert!(run(1).iter().all(|hit| !hit), "before the phase: nothing");
        let plan = ChaosPlan::new(phases.clone(), 9, |k: &str| k.to_string());
        let again = ChaosPlan::new(phases, 9, |k: &str| k.to_string());
        tokio::time::advance(Duration::from_millis(1500)).await;
        let hits: Vec<bool> = (0..1000).map(|_| plan.current().is_some()).collect();
        let n = hits.iter().filter(|h| **h).count();
        assert!((400..600).contains(&n), "about half: {n}");
        let repeat: Vec<bool> = (0..1000).map(|_| again.current().is_some()).collect();
        assert_eq!(hits, repeat, "same seed, same faults");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(plan.current().is_none(), "after the phase: nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn test_plan_when_changed_at_run_time_then_new_schedule_counts_from_restart() {
        let plan = ChaosPlan::new(Vec::new(), 1, |k: &str| k.to_string());
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(plan.current().is_none());
        plan.set_phases(vec![ChaosPhase {
            from: Duration::ZERO,
            until: Duration::from_secs(5),
            probability: 1.0,
            fault: Fault::Outage,
        }]);
        assert!(plan.current().is_none(), "100 s in: past the new phase");
        plan.restart();
        assert_eq!(plan.current(), Some(Fault::Outage));
        assert!(plan.in_outage());
    }
}
