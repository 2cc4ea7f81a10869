//! DisableOrders: the broker's gate on orders, by trading mode.

use super::{Admit, BoxFuture, Degradation, FallbackAnswer};
use crate::config::StrategyKind;
use crate::handle::CallError;
use crate::modes::{Modes, TradingMode};
use crate::service::Service;

/// What an order request does to exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderIntent {
    /// A new order that adds risk.
    Open,
    /// A change to a resting order.
    Modify,
    /// A cancel of a resting order (reduces risk).
    Cancel,
    /// An order that closes or reduces a position.
    Exit,
}

/// A broker request that may be an order.
pub trait OrderRequest {
    /// `None` for reads (quotes, positions), else what the order does.
    fn order_intent(&self) -> Option<OrderIntent>;
}

/// Refuses orders the trading mode does not allow: everything goes while
/// Active; only exits and cancels while Reducing (trading rule 6); only
/// cancels while Halted. Reads pass. There is no fallback for an order: the
/// caller gets a clear error naming why and since when.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisableOrders;

impl<S: Service> Degradation<S> for DisableOrders
where
    S::Request: OrderRequest,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::DisableOrders
    }

    fn admit(&self, request: &S::Request, modes: &Modes) -> Admit<S::Response> {
        let Some(intent) = request.order_intent() else {
            return Admit::Send;
        };
        let allowed = match modes.trading {
            TradingMode::Active => true,
            TradingMode::Reducing => matches!(intent, OrderIntent::Cancel | OrderIntent::Exit),
            TradingMode::Halted => intent == OrderIntent::Cancel,
        };
        if allowed {
            Admit::Send
        } else {
            Admit::Refuse(format!(
                "orders disabled: {} since {} (trading {:?}; {:?} orders refused)",
                modes.reason,
                humantime::format_rfc3339_seconds(modes.changed_at),
                modes.trading,
                intent
            ))
        }
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a S::Request,
        _error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        Box::pin(async { FallbackAnswer::Pass })
    }
}
