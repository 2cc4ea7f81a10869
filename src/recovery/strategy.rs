//! The [`RecoveryStrategy`] trait and the default, [`Reconnect`].

use crate::handle::ServiceHandle;
use crate::service::{Evidence, Service};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a failed recovery attempt reports.
pub type RecoveryError = Box<dyn std::error::Error + Send + Sync>;

/// How to bring one service back after an outage. Runs on the recovery
/// actor's backoff while the breaker is open.
///
/// Only evidence shortens an outage: `Ok(Evidence::Observed)` says the
/// attempt reached the dependency and it answered, and moves the breaker to
/// HalfOpen at once (it still closes only on `success_threshold` real probe
/// successes). `Ok(Evidence::NotImplemented)` says nothing was learned: the
/// breaker waits out its open duration, and no further attempt is made in
/// this open period. An `Err` is retried on the backoff.
pub trait RecoveryStrategy<S: Service>: Send + Sync + 'static {
    /// One attempt. Keep it bounded: it is cut off at
    /// `[services.NAME.recovery].attempt_timeout`.
    fn recover(
        &self,
        ctx: &RecoveryContext<S>,
    ) -> impl Future<Output = Result<Evidence, RecoveryError>> + Send;
}

/// Starts every service actor that is not running, within a timeout: the
/// breaker actor's job, handed down as a function so recovery does not
/// depend on the actors' messages.
pub(crate) type Revive =
    Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What a strategy can use during an attempt.
pub struct RecoveryContext<S: Service> {
    pub(crate) handle: ServiceHandle<S>,
    pub(crate) revive: Revive,
    pub(crate) attempt: u32,
}

impl<S: Service> RecoveryContext<S> {
    /// The service's name.
    pub fn service(&self) -> &str {
        self.handle.name()
    }

    /// This attempt's number, from 1, since the breaker opened.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The service's handle. Its calls go through the breaker, so while the
    /// breaker is open they are refused; use [`Self::reconnect_all`] or the
    /// service's own reconnect to test the dependency.
    pub fn handle(&self) -> &ServiceHandle<S> {
        &self.handle
    }

    /// Starts any service actor that is not running (one whose restarts
    /// were exhausted), then asks every one to [`Lifecycle::reconnect`](crate::Lifecycle::reconnect) its
    /// own connection. Fails on the first that cannot. When the service does
    /// not implement reconnect, its [`Lifecycle::health_check`](crate::Lifecycle::health_check) is the
    /// evidence instead; with neither, the answer is `NotImplemented`.
    pub async fn reconnect_all(&self) -> Result<Evidence, RecoveryError> {
        let timeout = self.handle.call_timeout();
        (self.revive)(timeout)
            .await
            .map_err(|e| format!("{}: {e}", self.service()))?;
        let mut evidence = Evidence::Observed;
        for worker in 0..self.handle.concurrency() {
            if self.handle.reconnect_worker(worker).await? == Evidence::NotImplemented {
                evidence = Evidence::NotImplemented;
            }
        }
        if evidence == Evidence::Observed {
            return Ok(evidence);
        }
        Ok(self.handle.health_check().await?)
    }
}

/// The default strategy: restart what is not running and reconnect every
/// service actor through [`Lifecycle::reconnect`](crate::Lifecycle::reconnect) (or, without one, run the
/// health check). A service that implements neither gives no evidence.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reconnect;

impl<S: Service> RecoveryStrategy<S> for Reconnect {
    async fn recover(&self, ctx: &RecoveryContext<S>) -> Result<Evidence, RecoveryError> {
        ctx.reconnect_all().await
    }
}
