//! Trading modes: what the engine may do right now, published on a watch
//! channel the moment a breaker moves.
//!
//! Each service's `[services.NAME.degradation]` says what its breaker being
//! out of service means for the engine (the default follows its strategy:
//! `disable_orders` halts orders, `last_known_price` switches to last-known
//! prices and reducing-only trading, `conservative_hold` holds, and
//! `read_only_cache` makes the database read-only). A breaker counts as out
//! of service from the moment it leaves Closed until it is Closed again:
//! HalfOpen is still unproven, so the engine fails closed.
//!
//! When several services are out, the most restrictive effect wins:
//! Halted > Reducing > Active, Hold > TechnicalOnly > Ai, LastKnown > Live,
//! ReadOnly > ReadWrite.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;
use tokio::sync::watch;

pub use crate::service::OrderIntent;

/// Whether new orders may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradingMode {
    /// Normal trading.
    Active,
    /// Only orders that reduce exposure: exits and cancels (trading rule 6).
    Reducing,
    /// No new orders.
    Halted,
}

impl TradingMode {
    /// The one order gate (trading rules 6 and 7): everything while Active;
    /// exits and cancels while Reducing; only cancels while Halted.
    pub fn allows(self, intent: OrderIntent) -> bool {
        match self {
            TradingMode::Active => true,
            TradingMode::Reducing => matches!(intent, OrderIntent::Cancel | OrderIntent::Exit),
            TradingMode::Halted => intent == OrderIntent::Cancel,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => TradingMode::Active,
            1 => TradingMode::Reducing,
            _ => TradingMode::Halted,
        }
    }
}

/// The trading mode as every order path reads it: one atomic load, kept in
/// step with the modes on the watch channel by the health actor. A cause
/// that must stop orders before the health actor has run (an expired token)
/// raises it at once; it never lowers without the health actor.
///
/// The word packs the mode (low byte) with the epoch of the published
/// [`Modes`] it came from, so an order released by the gate can say exactly
/// which publication it was judged under ([`order_release`]).
#[derive(Debug, Default)]
pub(crate) struct OrderGate {
    word: AtomicU64,
    modes: OnceLock<watch::Receiver<Modes>>,
}

impl OrderGate {
    /// The trading mode right now.
    #[inline]
    pub(crate) fn trading(&self) -> TradingMode {
        TradingMode::from_u8(self.word.load(Ordering::Acquire) as u8)
    }

    /// Publishes the health actor's computed mode, from publication `epoch`.
    pub(crate) fn set(&self, mode: TradingMode, epoch: u64) {
        self.word
            .store((epoch << 8) | mode as u64, Ordering::Release);
    }

    /// Raises the mode to at least `mode` at once (the epoch stays: every
    /// order the raised gate lets through is one the publication allowed).
    pub(crate) fn raise(&self, mode: TradingMode) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                ((word as u8) < mode as u8).then_some((word & !0xff) | mode as u64)
            });
    }

    pub(crate) fn attach(&self, modes: watch::Receiver<Modes>) {
        let _ = self.modes.set(modes);
    }

    /// The last check before an order leaves for the dependency, in the
    /// service actor: an order admitted while Active that then waited (for
    /// a rate-limit slot, in a mailbox) while trading halted is refused
    /// here. `Ok` carries the wall-clock instant taken just before the check,
    /// which [`order_released_at`] hands to the service.
    pub(crate) fn release(&self, intent: OrderIntent) -> Result<Release, String> {
        let at = SystemTime::now();
        let word = self.word.load(Ordering::Acquire);
        self.judge(TradingMode::from_u8(word as u8), intent)
            .map(|()| Release {
                at,
                modes_epoch: word >> 8,
            })
    }

    /// `Ok` when an order of `intent` may be sent now, or why not.
    pub(crate) fn check(&self, intent: OrderIntent) -> Result<(), String> {
        self.judge(self.trading(), intent)
    }

    fn judge(&self, trading: TradingMode, intent: OrderIntent) -> Result<(), String> {
        if trading.allows(intent) {
            return Ok(());
        }
        let (reason, since) = match self.modes.get() {
            Some(modes) => {
                let m = modes.borrow();
                (m.reason.clone(), m.changed_at)
            }
            None => ("the tree is starting".to_string(), SystemTime::now()),
        };
        Err(format!(
            "orders disabled: {reason} since {} (trading {trading:?}; {intent:?} orders refused)",
            humantime::format_rfc3339_seconds(since)
        ))
    }
}

/// When, and under which published modes, the order gate let an order go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The wall-clock instant taken just before the gate's last check.
    pub at: SystemTime,
    /// The [`Modes::epoch`] of the publication the gate was enforcing: an
    /// audit can look the modes up by it exactly, with no clock race.
    pub modes_epoch: u64,
}

tokio::task_local! {
    static RELEASED: Release;
}

/// Runs `call` with `release` as its [`order_release`].
pub(crate) fn with_release<F: std::future::Future>(
    release: Release,
    call: F,
) -> impl std::future::Future<Output = F::Output> {
    RELEASED.scope(release, call)
}

/// Inside [`Service::call`](crate::Service::call) for an order: when and
/// under which published modes the runtime's order gate last let it through.
/// `None` outside an order's call.
pub fn order_release() -> Option<Release> {
    RELEASED.try_with(|release| *release).ok()
}

/// Inside [`Service::call`](crate::Service::call) for an order: the instant
/// the runtime's order gate last let it through, taken just before that check.
///
/// Any halt published after this instant came after the order was released,
/// so an audit trail (or a broker-side check, as in the demo) can judge an
/// order against the trading mode at this time without racing the gate.
/// `None` outside an order's call.
pub fn order_released_at() -> Option<SystemTime> {
    order_release().map(|release| release.at)
}

/// Where trading decisions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    /// The AI agents.
    Ai,
    /// A simple technical indicator over last-known prices.
    TechnicalOnly,
    /// HOLD, confidence 0.
    Hold,
}

/// Where prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceMode {
    /// The live feed.
    Live,
    /// The last good quote, with its age, refused past `max_staleness`.
    LastKnown,
}

/// Whether the database takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseMode {
    /// Reads and writes go to the database.
    ReadWrite,
    /// Reads from the cache; writes journaled for replay.
    ReadOnly,
}

/// What one service being out of service does to the modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeEffects {
    /// The trading mode it forces, if any.
    pub trading: Option<TradingMode>,
    /// The decision mode it forces, if any.
    pub decision: Option<DecisionMode>,
    /// The price mode it forces, if any.
    pub price: Option<PriceMode>,
    /// The database mode it forces, if any.
    pub database: Option<DatabaseMode>,
}

/// The engine's operating modes, with why and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Modes {
    /// Orders.
    pub trading: TradingMode,
    /// Decisions.
    pub decision: DecisionMode,
    /// Prices.
    pub price: PriceMode,
    /// Database writes.
    pub database: DatabaseMode,
    /// Why, naming each service out of service and its state.
    pub reason: String,
    /// When the modes last changed.
    #[serde(with = "crate::clock::rfc3339")]
    pub changed_at: SystemTime,
    /// Which publication this is: 0 at start, one more at each change. The
    /// order gate enforces one publication at a time and tells each order
    /// which ([`Release::modes_epoch`]).
    pub epoch: u64,
}

impl Modes {
    /// Everything normal.
    pub fn normal(at: SystemTime) -> Self {
        Self {
            trading: TradingMode::Active,
            decision: DecisionMode::Ai,
            price: PriceMode::Live,
            database: DatabaseMode::ReadWrite,
            reason: "all services in service".to_string(),
            changed_at: at,
            epoch: 0,
        }
    }

    /// Whether any mode is degraded.
    pub fn is_degraded(&self) -> bool {
        self.trading != TradingMode::Active
            || self.decision != DecisionMode::Ai
            || self.price != PriceMode::Live
            || self.database != DatabaseMode::ReadWrite
    }

    /// Whether the same modes (ignoring reason and time).
    pub fn same_modes(&self, other: &Modes) -> bool {
        self.trading == other.trading
            && self.decision == other.decision
            && self.price == other.price
            && self.database == other.database
    }

    /// Combines the effects of every out-of-service service; `causes` are
    /// `(service, why)` pairs for the reason text.
    pub fn from_effects<'a>(
        effects: impl IntoIterator<Item = (&'a str, String, ModeEffects)>,
        at: SystemTime,
    ) -> Self {
        let mut modes = Self::normal(at);
        let mut reasons = Vec::new();
        for (service, why, e) in effects {
            if let Some(t) = e.trading {
                modes.trading = modes.trading.max(t);
            }
            if let Some(d) = e.decision {
                modes.decision = modes.decision.max(d);
            }
            if let Some(p) = e.price {
                modes.price = modes.price.max(p);
            }
            if let Some(db) = e.database {
                modes.database = modes.database.max(db);
            }
            reasons.push(format!("{service} {why}"));
        }
        if !reasons.is_empty() {
            modes.reason = reasons.join("; ");
        }
        modes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_from_effects_when_several_out_then_most_restrictive_wins() {
        let halt = ModeEffects {
            trading: Some(TradingMode::Halted),
            ..ModeEffects::default()
        };
        let reduce = ModeEffects {
            trading: Some(TradingMode::Reducing),
            price: Some(PriceMode::LastKnown),
            ..ModeEffects::default()
        };
        let at = SystemTime::UNIX_EPOCH;
        let m = Modes::from_effects(
            [
                ("market_data", "open".to_string(), reduce),
                ("kite_api", "open".to_string(), halt),
            ],
            at,
        );
        assert_eq!(m.trading, TradingMode::Halted);
        assert_eq!(m.price, PriceMode::LastKnown);
        assert!(m.reason.contains("kite_api") && m.reason.contains("market_data"));
        assert!(Modes::from_effects([], at).same_modes(&Modes::normal(at)));
    }
}
