//! Simulated AI agents and a market-data feed.

use crate::degradation::{Action, Decision, DecisionSource, Quote};
use crate::Service;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An error from a simulated dependency.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimError(pub String);

/// AI decision agents with realistic latency (tens of milliseconds).
pub struct SimAgents {
    /// Seeded randomness.
    pub rng: fastrand::Rng,
}

impl Service for SimAgents {
    type Request = String;
    type Response = Decision;
    type Error = SimError;

    async fn call(&mut self, _symbol: String) -> Result<Decision, SimError> {
        tokio::time::sleep(Duration::from_millis(self.rng.u64(20..80))).await;
        let action = match self.rng.u32(0..10) {
            0..=2 => Action::Buy,
            3..=4 => Action::Sell,
            _ => Action::Hold,
        };
        Ok(Decision {
            action,
            confidence: 0.5 + self.rng.f64() * 0.4,
            source: DecisionSource::Ai,
        })
    }

    fn is_idempotent(_: &String) -> bool {
        true
    }
}

/// Prices that every feed connection agrees on: a multiplicative random
/// walk, so a price can never reach 0.
#[derive(Debug)]
pub struct Tape {
    prices: Mutex<HashMap<String, f64>>,
    rng: Mutex<fastrand::Rng>,
}

impl Tape {
    /// Starting prices, seeded.
    pub fn new(seed: u64) -> Arc<Self> {
        let prices = [
            ("NSE:INFY", 1520.0),
            ("NSE:TCS", 3890.0),
            ("NSE:RELIANCE", 2410.0),
        ]
        .into_iter()
        .map(|(s, p)| (s.to_string(), p))
        .collect();
        Arc::new(Self {
            prices: Mutex::new(prices),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    fn tick(&self, symbol: &str) -> Option<f64> {
        let step = {
            let mut rng = self.rng.lock().ok()?;
            1.0 + (rng.f64() - 0.5) * 0.004
        };
        let mut prices = self.prices.lock().ok()?;
        let price = prices.get_mut(symbol)?;
        *price *= step;
        Some(*price)
    }
}

/// The market-data feed.
pub struct SimFeed {
    /// The shared tape.
    pub tape: Arc<Tape>,
}

impl Service for SimFeed {
    type Request = String;
    type Response = Quote;
    type Error = SimError;

    async fn call(&mut self, symbol: String) -> Result<Quote, SimError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let price = self
            .tape
            .tick(&symbol)
            .ok_or_else(|| SimError(format!("unknown instrument {symbol}")))?;
        Ok(Quote {
            instrument: symbol,
            price,
            exchange_time: SystemTime::now(),
            received_at: crate::cell::now(),
        })
    }

    fn is_idempotent(_: &String) -> bool {
        true
    }
}
