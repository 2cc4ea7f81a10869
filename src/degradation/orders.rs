//! DisableOrders: the broker's degradation, whose refusals come from the one
//! order gate.

use super::{BoxFuture, Degradation, FallbackAnswer};
use crate::config::StrategyKind;
use crate::handle::CallError;
use crate::service::Service;

pub use crate::modes::OrderIntent;

/// The broker's strategy: orders the trading mode does not allow are refused
/// (everything goes while Active; only exits and cancels while Reducing,
/// trading rule 6; only cancels while Halted), and reads pass.
///
/// The refusal itself is not made here: every path that can send an order
/// ([`ServiceHandle::call`](crate::ServiceHandle::call), `cast`, retries,
/// degraded handles, `execute_with_resilience`) passes the same gate, driven
/// by [`Service::order_intent`]. This strategy chooses the broker's mode
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
