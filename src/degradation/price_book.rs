//! LastKnownPrice: the last good quote per instrument, with its age.

use super::{BoxFuture, Degradation, Fallback, FallbackAnswer};
use crate::clock::now;
use crate::config::StrategyKind;
use crate::handle::CallError;
use crate::service::Service;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// A price from the market-data feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The instrument, such as "NSE:INFY".
    pub instrument: String,
    /// Last traded price.
    pub price: f64,
    /// The exchange's timestamp.
    pub exchange_time: SystemTime,
    /// When the engine received it, on the tree's clock.
    pub received_at: Instant,
}

impl Quote {
    /// Trading rule 3, one check for live and fallback prices alike: a
    /// price must be positive and finite, and its exchange time neither the
    /// epoch (Kite's out-of-hours quotes) nor older than `max_staleness`.
    pub fn validate(&self, max_staleness: Duration) -> Result<(), String> {
        if !(self.price.is_finite() && self.price > 0.0) {
            return Err(format!(
                "{}: price {} is not a usable price (must be positive and finite)",
                self.instrument, self.price
            ));
        }
        if self.exchange_time <= SystemTime::UNIX_EPOCH {
            return Err(format!(
                "{}: exchange timestamp is the epoch: missing data, not a price",
                self.instrument
            ));
        }
        let age = SystemTime::now()
            .duration_since(self.exchange_time)
            .unwrap_or_default();
        if age > max_staleness {
            return Err(format!(
                "{}: exchange timestamp is {} old, past max_staleness {}",
                self.instrument,
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
                )),
                humantime::format_duration(max_staleness)
            ));
        }
        Ok(())
    }
}

/// A request that names one instrument.
pub trait Instrument {
    /// The instrument.
    fn instrument(&self) -> &str;
}

impl Instrument for String {
    fn instrument(&self) -> &str {
        self
    }
}

impl Instrument for &'static str {
    fn instrument(&self) -> &str {
        self
    }
}

/// Why no usable last-known price exists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceRefused {
    /// Never had a good quote.
    #[error("no last known price for {instrument}")]
    Unknown {
        /// The instrument.
        instrument: String,
    },
    /// The last good quote is too old to trade on.
    #[error("last known price for {instrument} is {} old, past max_staleness {}; no usable price",
        humantime::format_duration(*.age), humantime::format_duration(*.max_staleness))]
    Stale {
        /// The instrument.
        instrument: String,
        /// Its age.
        age: Duration,
        /// The limit.
        max_staleness: Duration,
    },
}

/// History kept per instrument for the technical indicator.
const HISTORY: usize = 64;

struct Entry {
    last: Quote,
    history: VecDeque<f64>,
}

/// Last good quotes. A price of 0 or less, NaN, or one stamped at the epoch
/// (Kite's out-of-hours quotes) is missing data and is never stored, so it
/// can never be returned (trading rule 3).
pub struct PriceBook {
    quotes: DashMap<String, Entry>,
    max_staleness: Duration,
}

impl PriceBook {
    /// A book that refuses quotes older than `max_staleness`.
    pub fn new(max_staleness: Duration) -> Self {
        Self {
            quotes: DashMap::new(),
            max_staleness,
        }
    }

    /// Stores a quote if it is a real price; returns whether it was stored.
    pub fn record(&self, quote: &Quote) -> bool {
        if quote.validate(self.max_staleness).is_err() {
            return false;
        }
        let mut entry = self
            .quotes
            .entry(quote.instrument.clone())
            .or_insert_with(|| Entry {
                last: quote.clone(),
                history: VecDeque::with_capacity(HISTORY),
            });
        if quote.received_at >= entry.last.received_at {
            entry.last = quote.clone();
        }
        if entry.history.len() == HISTORY {
            entry.history.pop_front();
        }
        entry.history.push_back(quote.price);
        true
    }

    /// The last good quote with its age at `at`, refused past `max_staleness`.
    pub fn last_known(
        &self,
        instrument: &str,
        at: Instant,
    ) -> Result<(Quote, Duration), PriceRefused> {
        let entry = self
            .quotes
            .get(instrument)
            .ok_or_else(|| PriceRefused::Unknown {
                instrument: instrument.to_string(),
            })?;
        let age = at.saturating_duration_since(entry.last.received_at);
        if age > self.max_staleness {
            return Err(PriceRefused::Stale {
                instrument: instrument.to_string(),
                age,
                max_staleness: self.max_staleness,
            });
        }
        Ok((entry.last.clone(), age))
    }

    /// Recent good prices, oldest first (for the technical indicator).
    pub fn history(&self, instrument: &str) -> Vec<f64> {
        self.quotes
            .get(instrument)
            .map(|e| e.history.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The staleness limit.
    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }
}

/// The market-data fallback: the last good quote, with its age.
pub struct LastKnownPrice {
    book: std::sync::Arc<PriceBook>,
}

impl LastKnownPrice {
    /// Serves from `book` (share it with `ConservativeHold` for its indicator).
    pub fn new(book: std::sync::Arc<PriceBook>) -> Self {
        Self { book }
    }
}

impl<S> Degradation<S> for LastKnownPrice
where
    S: Service<Response = Quote>,
    S::Request: Instrument + Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::LastKnownPrice
    }

    /// A live quote passes the same check as a fallback one; a bad one is
    /// a failure of the feed, never `Reply::Live`.
    fn validate(&self, _request: &S::Request, response: &Quote) -> Result<(), String> {
        response.validate(self.book.max_staleness())
    }

    fn observe(&self, _request: &S::Request, response: &Quote) {
        self.book.record(response);
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<Quote>> {
        let answer = match self.book.last_known(request.instrument(), now()) {
            Ok((value, age)) => FallbackAnswer::Answer(Fallback {
                value,
                reason: format!("last known price: {error}"),
                age: Some(age),
                strategy: StrategyKind::LastKnownPrice,
            }),
            Err(refused) => FallbackAnswer::Refuse(refused.to_string()),
        };
        Box::pin(async move { answer })
    }
}
