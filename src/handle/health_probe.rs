//! Health checks on a path of their own.
//!
//! A health check that waits in a service actor's mailbox measures the
//! queue, not the dependency: one slow but successful query on a database
//! with `concurrency = 1` made its check time out. So checks run on one more
//! instance of the service, built from the same factory on first use, and
//! never queue behind calls. A check that fails or panics drops the
//! instance, so the next check starts from a fresh connection; a service
//! whose check is not implemented is never built again for checks.

use super::CallError;
use crate::actor::Factory;
use crate::service::Judged;
use crate::service::{Evidence, Service};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

/// The service instance health checks run on.
pub(crate) struct HealthProbe<S: Service> {
    factory: Factory<S>,
    instance: tokio::sync::Mutex<Option<S>>,
    not_implemented: AtomicBool,
}

impl<S: Service> HealthProbe<S> {
    pub(crate) fn new(factory: Factory<S>) -> Self {
        Self {
            factory,
            instance: tokio::sync::Mutex::new(None),
            not_implemented: AtomicBool::new(false),
        }
    }

    /// Runs one check. Checks are serialised with each other, never with calls.
    pub(crate) async fn check(
        &self,
        service: &'static str,
    ) -> Result<Evidence, CallError<S::Error>> {
        if self.not_implemented.load(Ordering::Acquire) {
            return Ok(Evidence::NotImplemented);
        }
        let mut slot = self.instance.lock().await;
        if slot.is_none() {
            let mut fresh = self.factory.make();
            match AssertUnwindSafe(self.factory.start(&mut fresh))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => *slot = Some(fresh),
                Ok(Err(source)) => return Err(service_error::<S>(service, source)),
                Err(_) => return Err(CallError::Crashed { service }),
            }
        }
        let Some(instance) = slot.as_mut() else {
            return Err(CallError::Unavailable { service });
        };
        match AssertUnwindSafe(self.factory.health_check(instance))
            .catch_unwind()
            .await
        {
            Ok(Ok(Evidence::Observed)) => Ok(Evidence::Observed),
            Ok(Ok(Evidence::NotImplemented)) => {
                self.not_implemented.store(true, Ordering::Release);
                *slot = None;
                Ok(Evidence::NotImplemented)
            }
            Ok(Err(source)) => {
                let error = service_error::<S>(service, source);
                *slot = None;
                Err(error)
            }
            Err(_) => {
                *slot = None;
                Err(CallError::Crashed { service })
            }
        }
    }
}

fn service_error<S: Service>(service: &'static str, source: S::Error) -> CallError<S::Error> {
    CallError::Service {
        service,
        outcome: S::classify(&source),
        source,
    }
}
