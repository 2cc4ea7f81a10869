//! Retrying idempotent requests inside the breaker.

use super::{CallError, ServiceHandle};
use crate::backoff::Backoff;
use crate::breaker::{JitterSource, SeededJitter};
use crate::config::RetryConfig;
use crate::service::Judged;
use crate::service::Service;
use crate::stats::SupervisionCounters;
use std::time::Duration;
use tokio::time::Instant;

/// The seed's `@with_retry(max_retries=3, delay=1.0)`, with backoff,
/// jitter and an overall deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The wait schedule between attempts.
    pub backoff: Backoff,
    /// No attempt starts later than this after the first.
    pub deadline: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(config: &RetryConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            backoff: config.backoff(),
            deadline: config.deadline,
        }
    }
}

impl<S: Service> ServiceHandle<S>
where
    S::Request: Clone,
{
    /// [`Self::call`], retried under the service's `[services.NAME.retry]`.
    pub async fn call_with_retry(
        &self,
        request: S::Request,
    ) -> Result<S::Response, CallError<S::Error>> {
        let policy = self.retry_policy();
        self.call_with_policy(request, &policy).await
    }

    /// [`Self::call`], retried under `policy`.
    ///
    /// Retries happen only for requests the service marks
    /// [idempotent](crate::Policy::is_idempotent), and only for
    /// [retryable](CallError::is_retryable) errors. Each attempt goes through
    /// the breaker and is counted; a refusal (breaker open, bulkhead full)
    /// ends the loop, so an open breaker is never retried into. An attempt
    /// that could not start before `policy.deadline` is not made.
    pub async fn call_with_policy(
        &self,
        request: S::Request,
        policy: &RetryPolicy,
    ) -> Result<S::Response, CallError<S::Error>> {
        if !S::is_idempotent(&request) {
            return self.call(request).await;
        }
        let first = Instant::now();
        let mut jitter = SeededJitter::new(fastrand::u64(..));
        let mut attempt = 0u32;
        loop {
            let result = self.call(request.clone()).await;
            let error = match result {
                Ok(response) => return Ok(response),
                Err(error) if !error.is_retryable() || attempt >= policy.max_retries => {
                    return Err(error)
                }
                Err(error) => error,
            };
            let wait = policy
                .backoff
                .delay(attempt, &mut jitter as &mut dyn JitterSource);
            if first.elapsed() + wait > policy.deadline {
                return Err(error);
            }
            tracing::debug!(service = %self.name(), attempt = attempt + 1, %error,
                wait = ?wait, "retrying idempotent request");
            tokio::time::sleep(wait).await;
            attempt += 1;
            SupervisionCounters::bump(&self.cell().stats.retries);
        }
    }
}
