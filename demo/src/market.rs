//! Simulated AI agents and a market-data feed.

use seawall::degradation::{Action, Decision, DecisionSource, Quote};
use seawall::{Evidence, Service};
use seawall::{Lifecycle, Policy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An error from a simulated dependency.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimError(pub String);

/// What the engine asks the agents: a decision on an instrument at a price.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRequest {
    /// The instrument.
    pub symbol: String,
    /// The price the engine would trade at.
    pub price: f64,
}

impl seawall::degradation::Instrument for AgentRequest {
    fn instrument(&self) -> &str {
        &self.symbol
    }
}

/// AI decision agents with realistic latency (tens of milliseconds). They
/// count the unusable prices they were asked to decide on: the agents' side
/// of the price invariant.
pub struct SimAgents {
    /// Seeded randomness.
    pub rng: fastrand::Rng,
    /// Requests that carried a price of 0 or less, or NaN.
    pub bad_prices_seen: Arc<std::sync::atomic::AtomicU64>,
}

impl Service for SimAgents {
    type Request = AgentRequest;
    type Response = Decision;
    type Error = SimError;
    type Policy = SimAgentsPolicy;

    async fn call(&mut self, request: AgentRequest) -> Result<Decision, SimError> {
        if !(request.price.is_finite() && request.price > 0.0) {
            self.bad_prices_seen
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
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
}

/// How the breaker reads `SimAgents`.
pub struct SimAgentsPolicy;

impl Policy<AgentRequest, Decision, SimError> for SimAgentsPolicy {
    fn is_idempotent(_: &AgentRequest) -> bool {
        true
    }
}

impl Lifecycle for SimAgents {
    /// The agents' model server answers a ping.
    async fn health_check(&mut self) -> Result<Evidence, SimError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Evidence::Observed)
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

    /// The current price, without moving it (what the broker quotes).
    pub fn peek(&self, symbol: &str) -> Option<f64> {
        self.prices.lock().ok()?.get(symbol).copied()
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

/// Bad quotes the feed serves on a schedule (price 0, NaN, negative, or
/// stamped at the epoch, as Kite does out of hours), and its own count of
/// how many it served: the dependency's side of the price invariant.
#[derive(Debug, Default)]
pub struct BadQuotes {
    started: Mutex<Option<tokio::time::Instant>>,
    phases: Mutex<Vec<(Duration, Duration, f64)>>,
    rng: Mutex<fastrand::Rng>,
    /// Bad quotes served so far.
    pub served: std::sync::atomic::AtomicU64,
}

impl BadQuotes {
    /// Serves a bad quote with `probability` between `from` and `until`.
    pub fn between(&self, from: Duration, until: Duration, probability: f64) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(tokio::time::Instant::now);
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((from, until, probability));
    }

    /// Which bad quote to serve now, if any.
    fn spoil(&self, quote: &mut Quote) {
        let Some(started) = *self.started.lock().unwrap_or_else(|p| p.into_inner()) else {
            return;
        };
        let elapsed = started.elapsed();
        let p = self
            .phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(from, until, _)| *from <= elapsed && elapsed < *until)
            .map(|(_, _, p)| *p);
        let Some(p) = p else { return };
        let Ok(mut rng) = self.rng.lock() else { return };
        if rng.f64() >= p {
            return;
        }
        match rng.u32(0..4) {
            0 => quote.price = 0.0,
            1 => quote.price = f64::NAN,
            2 => quote.price = -quote.price,
            _ => quote.exchange_time = SystemTime::UNIX_EPOCH,
        }
        self.served
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The market-data feed.
pub struct SimFeed {
    /// The shared tape.
    pub tape: Arc<Tape>,
    /// Bad quotes to serve, and the count served.
    pub bad: Arc<BadQuotes>,
}

impl Service for SimFeed {
    type Request = String;
    type Response = Quote;
    type Error = SimError;
    type Policy = SimFeedPolicy;

    async fn call(&mut self, symbol: String) -> Result<Quote, SimError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let price = self
            .tape
            .tick(&symbol)
            .ok_or_else(|| SimError(format!("unknown instrument {symbol}")))?;
        let mut quote = Quote {
            instrument: symbol,
            price,
            exchange_time: SystemTime::now(),
            received_at: tokio::time::Instant::now().into_std(),
        };
        self.bad.spoil(&mut quote);
        Ok(quote)
    }
}

/// How the breaker reads `SimFeed`.
pub struct SimFeedPolicy;

impl Policy<String, Quote, SimError> for SimFeedPolicy {
    fn is_idempotent(_: &String) -> bool {
        true
    }
}

impl Lifecycle for SimFeed {
    /// The feed answers a quote for a known instrument.
    async fn health_check(&mut self) -> Result<Evidence, SimError> {
        self.tape
            .peek("NSE:INFY")
            .map(|_| Evidence::Observed)
            .ok_or_else(|| SimError("feed has no instruments".into()))
    }
}
