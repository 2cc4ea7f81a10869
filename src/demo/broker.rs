//! A simulated Kite Connect broker, with Kite's error types.

use crate::degradation::OrderIntent;
use crate::modes::{Modes, TradingMode};
use crate::{FailureKind, Outcome, Service};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// An order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// "NSE:INFY".
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity.
    pub quantity: u32,
    /// Kite's reconciliation tag (≤ 20 alphanumerics).
    pub tag: String,
}

/// What the engine asks the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerRequest {
    /// A quote (a read; idempotent).
    Quote(String),
    /// A new order that adds risk.
    Place(Order),
    /// An order that reduces a position.
    Exit(Order),
    /// Cancel a resting order.
    Cancel(u64),
}

impl BrokerRequest {
    /// What the request does to exposure, if it is an order.
    pub fn order_intent(&self) -> Option<OrderIntent> {
        match self {
            BrokerRequest::Quote(_) => None,
            BrokerRequest::Place(_) => Some(OrderIntent::Open),
            BrokerRequest::Exit(_) => Some(OrderIntent::Exit),
            BrokerRequest::Cancel(_) => Some(OrderIntent::Cancel),
        }
    }
}

/// What the broker answers.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerResponse {
    /// Last price.
    Quote(f64),
    /// The order id.
    Accepted(u64),
}

/// Kite's `error_type`s (and HTTP 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KiteErrorType {
    /// 403: expired or invalid token.
    TokenException,
    /// 400: bad parameters.
    InputException,
    /// 400/500: order rejected (a business reject).
    OrderException,
    /// 503: network trouble.
    NetworkException,
    /// 502: bad data from the exchange side.
    DataException,
    /// 500: anything else.
    GeneralException,
    /// 429: rate limited.
    TooManyRequests,
}

/// A Kite error body: `{"status":"error","message":…,"error_type":…}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error_type:?}: {message}")]
pub struct KiteError {
    /// The type.
    pub error_type: KiteErrorType,
    /// The message.
    pub message: String,
}

impl KiteError {
    /// The error for a chaos kind ("NetworkException", "outage", …).
    pub fn from_kind(kind: &str) -> Self {
        let error_type = match kind {
            "TokenException" => KiteErrorType::TokenException,
            "InputException" => KiteErrorType::InputException,
            "OrderException" => KiteErrorType::OrderException,
            "DataException" => KiteErrorType::DataException,
            "GeneralException" => KiteErrorType::GeneralException,
            "429" | "TooManyRequests" => KiteErrorType::TooManyRequests,
            _ => KiteErrorType::NetworkException,
        };
        Self {
            error_type,
            message: format!("simulated {kind}"),
        }
    }
}

/// Orders that reached the broker, and any that did while Halted.
#[derive(Debug, Default)]
pub struct BrokerLedger {
    /// Orders executed.
    pub placed: AtomicU64,
    /// Orders executed while the trading mode was Halted (must stay 0).
    pub placed_while_halted: AtomicU64,
    /// The modes, set once the tree runs.
    pub modes: OnceLock<watch::Receiver<Modes>>,
    /// Orders received with a tag seen before: a re-sent order (must stay 0).
    pub duplicate_tags: AtomicU64,
    /// Tags seen.
    pub tags: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The simulated broker.
pub struct SimBroker {
    /// Shared books.
    pub ledger: Arc<BrokerLedger>,
}

impl Service for SimBroker {
    type Request = BrokerRequest;
    type Response = BrokerResponse;
    type Error = KiteError;

    async fn call(&mut self, request: BrokerRequest) -> Result<BrokerResponse, KiteError> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        match request {
            BrokerRequest::Quote(_) => Ok(BrokerResponse::Quote(100.0)),
            BrokerRequest::Place(order) | BrokerRequest::Exit(order) => {
                let fresh = self
                    .ledger
                    .tags
                    .lock()
                    .map(|mut tags| tags.insert(order.tag.clone()))
                    .unwrap_or(true);
                if !fresh {
                    self.ledger.duplicate_tags.fetch_add(1, Ordering::SeqCst);
                }
                if order.quantity == 0 {
                    return Err(KiteError {
                        error_type: KiteErrorType::InputException,
                        message: "quantity must be positive".into(),
                    });
                }
                let halted = self
                    .ledger
                    .modes
                    .get()
                    .is_some_and(|m| m.borrow().trading == TradingMode::Halted);
                if halted {
                    self.ledger
                        .placed_while_halted
                        .fetch_add(1, Ordering::SeqCst);
                }
                let id = self.ledger.placed.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(BrokerResponse::Accepted(id))
            }
            BrokerRequest::Cancel(id) => Ok(BrokerResponse::Accepted(id)),
        }
    }

    /// Kite's error types, per the reference table: business rejects, input
    /// errors, throttling and an expired token do not trip the breaker;
    /// network, data and general errors do. An order that timed out at the
    /// broker is ambiguous.
    fn classify(&self, error: &KiteError) -> Outcome {
        match error.error_type {
            KiteErrorType::TokenException
            | KiteErrorType::InputException
            | KiteErrorType::OrderException
            | KiteErrorType::TooManyRequests => Outcome::Ignored,
            KiteErrorType::GeneralException if error.message.contains("timed out") => {
                Outcome::Failure(FailureKind::Ambiguous)
            }
            KiteErrorType::NetworkException => Outcome::Failure(FailureKind::Connection),
            KiteErrorType::DataException | KiteErrorType::GeneralException => {
                Outcome::Failure(FailureKind::Server)
            }
        }
    }

    fn is_idempotent(request: &BrokerRequest) -> bool {
        matches!(request, BrokerRequest::Quote(_))
    }

    fn order_intent(request: &BrokerRequest) -> Option<OrderIntent> {
        request.order_intent()
    }

    fn is_auth_failure(&self, error: &KiteError) -> bool {
        error.error_type == KiteErrorType::TokenException
    }
}
