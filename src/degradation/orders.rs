//! DisableOrders: the broker's degradation, whose refusals come from the one
//! order gate.

use super::{BoxFuture, Degradation, FallbackAnswer};
use crate::config::StrategyKind;
use crate::handle::CallError;
use crate::service::Judged;
use crate::service::Service;

pub use crate::modes::OrderIntent;

/// The broker's strategy: orders the trading mode does not allow are refused
/// (everything goes while Active; only exits and cancels while Reducing,
/// trading rule 6; only cancels while Halted), and reads pass.
///
/// The refusal itself is not made here: every path that can send an order
/// ([`ServiceHandle::call`](crate::ServiceHandle::call), `cast`, retries,
/// degraded handles, `execute_with_resilience`) passes the same gate, driven
/// by [`Policy::order_intent`](crate::Policy::order_intent). This strategy chooses the broker's mode
/// effects (an outage halts trading) and declares that an order never has a
/// fallback: the caller gets a clear error naming why and since when.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisableOrders;

impl<S: Service> Degradation<S> for DisableOrders {
    fn kind(&self) -> StrategyKind {
        StrategyKind::DisableOrders
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a S::Request,
        _error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        Box::pin(async { FallbackAnswer::Pass })
    }
}

/// The broker's strategy with cached reads (the seed's "disable new orders,
/// use cached data"): orders as [`DisableOrders`]; a read that cannot be
/// answered live (quotes, LTP, positions, margins) is answered from the last
/// live answer to the same read, with its age, and refused past
/// `max_staleness`. Build it with [`DisableOrders::with_cached_reads`].
pub struct CachedReads<S: Service> {
    key: KeyFn<S>,
    reads: dashmap::DashMap<String, (S::Response, std::time::Instant)>,
    max_staleness: std::time::Duration,
    capacity: usize,
}

type KeyFn<S> = Box<dyn Fn(&<S as Service>::Request) -> Option<String> + Send + Sync>;

impl DisableOrders {
    /// [`DisableOrders`], plus a cache of the last `capacity` reads, each
    /// usable for `max_staleness`. `key` names a read (`None` for a request
    /// that must not be cached); orders are never cached.
    pub fn with_cached_reads<S: Service>(
        max_staleness: std::time::Duration,
        capacity: usize,
        key: impl Fn(&S::Request) -> Option<String> + Send + Sync + 'static,
    ) -> CachedReads<S> {
        CachedReads {
            key: Box::new(key),
            reads: dashmap::DashMap::new(),
            max_staleness,
            capacity: capacity.max(1),
        }
    }
}

impl<S: Service> CachedReads<S> {
    fn read_key(&self, request: &S::Request) -> Option<String> {
        if S::order_intent(request).is_some() {
            return None;
        }
        (self.key)(request)
    }
}

impl<S: Service> Degradation<S> for CachedReads<S>
where
    S::Request: Sync,
    S::Response: Clone + Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::DisableOrders
    }

    fn observe(&self, request: &S::Request, response: &S::Response) {
        let Some(key) = self.read_key(request) else {
            return;
        };
        if self.reads.len() >= self.capacity && !self.reads.contains_key(&key) {
            return; // bounded: the first `capacity` reads keep their slots
        }
        self.reads
            .insert(key, (response.clone(), crate::clock::now()));
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        let answer = match self.read_key(request) {
            None => FallbackAnswer::Pass,
            Some(key) => match self.reads.get(&key) {
                None => FallbackAnswer::Refuse(format!("no cached answer for {key}")),
                Some(entry) => {
                    let (value, at) = entry.value();
                    let age = crate::clock::now().saturating_duration_since(*at);
                    if age > self.max_staleness {
                        FallbackAnswer::Refuse(format!(
                            "cached {key} is {} old, past max_staleness {}",
                            humantime::format_duration(std::time::Duration::from_millis(
                                u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
                            )),
                            humantime::format_duration(self.max_staleness)
                        ))
                    } else {
                        FallbackAnswer::Answer(super::Fallback {
                            value: value.clone(),
                            reason: format!("cached {key}: {error}"),
                            age: Some(age),
                            strategy: StrategyKind::DisableOrders,
                        })
                    }
                }
            },
        };
        Box::pin(async move { answer })
    }
}
