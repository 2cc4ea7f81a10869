//! ConservativeHold: HOLD with confidence 0, or a simple technical signal.

use super::{BoxFuture, Degradation, Fallback, FallbackAnswer, Instrument, PriceBook};
use crate::config::StrategyKind;
use crate::handle::CallError;
use crate::service::Service;
use std::sync::Arc;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
    /// Do nothing.
    Hold,
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    /// The AI agents.
    Ai,
    /// The moving-average fallback.
    Technical,
    /// The conservative fallback.
    ConservativeHold,
}

/// A trading decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// 0–1.
    pub confidence: f64,
    /// Who decided.
    pub source: DecisionSource,
}

impl Decision {
    /// HOLD, confidence 0.
    pub fn hold() -> Self {
        Self {
            action: Action::Hold,
            confidence: 0.0,
            source: DecisionSource::ConservativeHold,
        }
    }
}

/// The AI fallback: HOLD with confidence 0; with a price book, a 5/20
/// moving-average crossover over last-known prices instead (low confidence,
/// HOLD when there is not enough history or no clear signal).
pub struct ConservativeHold {
    technical: Option<Arc<PriceBook>>,
}

impl ConservativeHold {
    /// Always HOLD.
    pub fn hold() -> Self {
        Self { technical: None }
    }

    /// A crossover signal over `book`'s prices (the TechnicalOnly mode).
    pub fn technical(book: Arc<PriceBook>) -> Self {
        Self {
            technical: Some(book),
        }
    }

    /// The decision for `instrument` from `prices` (oldest first).
    pub fn crossover(prices: &[f64]) -> Decision {
        const SHORT: usize = 5;
        const LONG: usize = 20;
        if prices.len() < LONG {
            return Decision::hold();
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let short = mean(&prices[prices.len() - SHORT..]);
        let long = mean(&prices[prices.len() - LONG..]);
        let gap = (short - long) / long;
        let action = if gap > 0.002 {
            Action::Buy
        } else if gap < -0.002 {
            Action::Sell
        } else {
            Action::Hold
        };
        Decision {
            action,
            confidence: if action == Action::Hold { 0.0 } else { 0.3 },
            source: DecisionSource::Technical,
        }
    }
}

impl<S> Degradation<S> for ConservativeHold
where
    S: Service<Response = Decision>,
    S::Request: Instrument + Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::ConservativeHold
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<Decision>> {
        let value = match &self.technical {
            Some(book) => Self::crossover(&book.history(request.instrument())),
            None => Decision::hold(),
        };
        let answer = FallbackAnswer::Answer(Fallback {
            value,
            reason: format!("conservative decision: {error}"),
            age: None,
            strategy: StrategyKind::ConservativeHold,
        });
        Box::pin(async move { answer })
    }
}
