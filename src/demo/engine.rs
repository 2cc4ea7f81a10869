//! The strategy loop and its summary.

use super::broker::{BrokerLedger, BrokerRequest, KiteError, Order, Side, SimBroker};
use super::database::{DbCall, DbReply, SimDatabase};
use super::market::{SimAgents, SimError, SimFeed, Tape};
use super::scenario::{compress, scenario_seeded};
use crate::chaos::{Chaos, ChaosPlan};
use crate::config::Config;
use crate::degradation::{
    Action, ConservativeHold, DisableOrders, LastKnownPrice, PriceBook, ReadOnlyCache, Reply,
};
use crate::modes::TradingMode;
use crate::{BreakerState, CallError, Event, Seawall};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The effective config (file plus environment).
    pub config: Config,
    /// How long to run; `None` until Ctrl-C.
    pub duration: Option<Duration>,
    /// A built-in scenario name.
    pub scenario: String,
    /// Where SQLite keeps the trades.
    pub db_path: std::path::PathBuf,
    /// Compress time (see [`compress`]).
    pub compress: bool,
    /// Print a live status line to stderr every second.
    pub status_line: bool,
    /// The admin token for the HTTP routes.
    pub admin_token: Option<String>,
    /// Seeds the simulation and the chaos.
    pub seed: u64,
}

/// Per-service figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceSummary {
    /// Transitions to Open or ForcedOpen.
    pub trips: u64,
    /// Transitions back to Closed after a trip.
    pub recoveries: u64,
    /// Replies answered by a fallback.
    pub degraded_replies: u64,
    /// The breaker's state at the end.
    pub final_state: String,
}

/// What happened, and whether the trading rules held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Per service.
    pub services: BTreeMap<String, ServiceSummary>,
    /// Orders the strategy tried.
    pub orders_attempted: u64,
    /// Orders the broker executed.
    pub orders_placed: u64,
    /// Orders refused because trading was Halted.
    pub orders_refused_while_halted: u64,
    /// Orders refused while Reducing (adds risk).
    pub orders_refused_while_reducing: u64,
    /// Orders executed while Halted: must be 0.
    pub orders_placed_while_halted: u64,
    /// Prices of 0 or less the strategy was handed: must be 0.
    pub non_positive_prices_used: u64,
    /// Ticks in which a symbol had no usable price (fail closed: no order).
    pub ticks_without_price: u64,
    /// Trades written, live or journaled.
    pub trades_recorded: u64,
    /// Fallback prices older than `max_staleness` handed out: must be 0.
    pub stale_prices_used: u64,
    /// Orders the broker received more than once (same tag): must be 0.
    pub duplicate_orders: u64,
    /// Calls the engine made through handles.
    pub calls_made: u64,
    /// Replies (answers or errors) the engine received: must equal `calls_made`.
    pub replies_received: u64,
}

impl Summary {
    /// Whether every breaker that tripped is Closed again.
    pub fn all_recovered(&self) -> bool {
        self.services
            .values()
            .all(|s| s.trips == 0 || (s.recoveries > 0 && s.final_state == "closed"))
    }

    /// The summary as a text table.
    pub fn render(&self) -> String {
        let mut out = String::from("service        trips  recoveries  degraded  final\n");
        for (name, s) in &self.services {
            out.push_str(&format!(
                "{name:<14} {:>5}  {:>10}  {:>8}  {}\n",
                s.trips, s.recoveries, s.degraded_replies, s.final_state
            ));
        }
        out.push_str(&format!(
            "orders: attempted {}, placed {}, refused while halted {}, refused while reducing {}, placed while halted {}\nprices: {} of 0 or less used, {} stale used, {} ticks without a usable price\ntrades recorded: {}; duplicate orders: {}; calls {} / replies {}\n",
            self.orders_attempted,
            self.orders_placed,
            self.orders_refused_while_halted,
            self.orders_refused_while_reducing,
            self.orders_placed_while_halted,
            self.non_positive_prices_used,
            self.stale_prices_used,
            self.ticks_without_price,
            self.trades_recorded,
            self.duplicate_orders,
            self.calls_made,
            self.replies_received
        ));
        out
    }
}

const SYMBOLS: [&str; 3] = ["NSE:INFY", "NSE:TCS", "NSE:RELIANCE"];
const TICK: Duration = Duration::from_millis(100);

fn plan<E: 'static>(
    phases: &BTreeMap<&'static str, Vec<crate::chaos::ChaosPhase>>,
    service: &str,
    seed: u64,
    make: impl Fn(&str) -> E + Send + Sync + 'static,
) -> Arc<ChaosPlan<E>> {
    ChaosPlan::new(phases.get(service).cloned().unwrap_or_default(), seed, make)
}

/// Runs the demo and returns its summary.
pub async fn run(
    mut options: DemoOptions,
) -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    if options.compress {
        compress(&mut options.config);
    }
    let total = options.duration.unwrap_or(Duration::from_secs(60));
    let mut phases = scenario_seeded(&options.scenario, total, options.seed).ok_or_else(|| {
        format!(
            "unknown scenario {:?}; choose one of {}",
            options.scenario,
            super::scenario::SCENARIOS.join(", ")
        )
    })?;
    for name in ["kite_api", "database", "ai_agents", "market_data"] {
        let Some(service) = options.config.services.get(name) else {
            return Err(format!("the demo needs [services.{name}] in the config").into());
        };
        // Faults from [[services.NAME.chaos]] play on top of the scenario.
        phases
            .entry(name)
            .or_default()
            .extend(service.chaos.iter().map(|c| c.phase()));
    }
    let seed = options.seed;
    let ledger = Arc::new(BrokerLedger::default());
    let tape = Tape::new(seed);
    let kite_plan = plan(&phases, "kite_api", seed ^ 1, KiteError::from_kind);
    let db_plan = plan(&phases, "database", seed ^ 2, |k: &str| {
        super::database::DbError(format!("simulated {k}"))
    });
    let ai_plan = plan(&phases, "ai_agents", seed ^ 3, |k: &str| {
        SimError(format!("simulated {k}"))
    });
    let feed_plan = plan(&phases, "market_data", seed ^ 4, |k: &str| {
        SimError(format!("simulated {k}"))
    });

    let (l, t, path) = (
        Arc::clone(&ledger),
        Arc::clone(&tape),
        options.db_path.clone(),
    );
    let (kp, dp, ap, fp) = (
        Arc::clone(&kite_plan),
        Arc::clone(&db_plan),
        Arc::clone(&ai_plan),
        Arc::clone(&feed_plan),
    );
    let agent_seed = std::sync::atomic::AtomicU64::new(seed);
    let seawall = Seawall::builder(options.config.clone())
        .admin_token(options.admin_token.clone())
        .service("kite_api", move || {
            Chaos::new(
                SimBroker {
                    ledger: Arc::clone(&l),
                },
                Arc::clone(&kp),
            )
        })
        .service("database", move || {
            Chaos::new(SimDatabase::new(path.clone()), Arc::clone(&dp))
        })
        .service("ai_agents", move || {
            let rng = fastrand::Rng::with_seed(agent_seed.fetch_add(1, Ordering::Relaxed));
            Chaos::new(SimAgents { rng }, Arc::clone(&ap))
        })
        .service("market_data", move || {
            Chaos::new(
                SimFeed {
                    tape: Arc::clone(&t),
                },
                Arc::clone(&fp),
            )
        })
        .start()
        .await?;
    let _ = ledger.modes.set(seawall.modes());
    if let Some(addr) = seawall.http_addr() {
        tracing::info!("health endpoints on http://{addr}/api/v1/system/health/comprehensive");
    }

    let book = Arc::new(PriceBook::new(
        options.config.services["market_data"]
            .degradation
            .max_staleness,
    ));
    let kite = seawall.set_degradation::<Chaos<SimBroker>>("kite_api", DisableOrders)?;
    let feed = seawall
        .set_degradation::<Chaos<SimFeed>>("market_data", LastKnownPrice::new(Arc::clone(&book)))?;
    let ai_strategy = if options.config.services["ai_agents"]
        .degradation
        .technical_only
    {
        ConservativeHold::technical(Arc::clone(&book))
    } else {
        ConservativeHold::hold()
    };
    let ai = seawall.set_degradation::<Chaos<SimAgents>>("ai_agents", ai_strategy)?;
    let db = seawall.set_degradation::<Chaos<SimDatabase>>(
        "database",
        ReadOnlyCache::<Chaos<SimDatabase>>::new(
            options.config.services["database"]
                .degradation
                .cache_capacity,
            |_| DbReply::Written,
        ),
    )?;

    // Count trips and recoveries from the event bus.
    let counts = Arc::new(std::sync::Mutex::new(
        BTreeMap::<String, ServiceSummary>::new(),
    ));
    let mut events = seawall.subscribe();
    let c = Arc::clone(&counts);
    let counter = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Event::Transition {
                service,
                transition,
            } = event
            {
                let mut counts = c.lock().unwrap_or_else(|p| p.into_inner());
                let entry = counts.entry(service.to_string()).or_default();
                if transition.to.rejects_all() && !transition.from.rejects_all() {
                    entry.trips += 1;
                }
                if transition.to == BreakerState::Closed
                    && transition.from == BreakerState::HalfOpen
                {
                    entry.recoveries += 1;
                }
            }
        }
    });

    let mut summary = Summary::default();
    let mut degraded = BTreeMap::<&str, u64>::new();
    let modes = seawall.modes();
    let started = tokio::time::Instant::now();
    let mut next_status = started;
    let mut trade_id = 0u64;
    let mut rng = fastrand::Rng::with_seed(seed ^ 5);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // A quote from the broker every tick: a read passes the order gate,
        // so it is what probes a HalfOpen kite_api breaker back to Closed
        // while orders are still refused.
        let _ = kite
            .call(BrokerRequest::Quote(SYMBOLS[0].to_string()))
            .await;
        for symbol in SYMBOLS {
            summary.calls_made += 1;
            let quote = feed.call(symbol.to_string()).await;
            summary.replies_received += 1;
            let price = match quote {
                Ok(reply) => {
                    if let Reply::Fallback(f) = &reply {
                        *degraded.entry("market_data").or_default() += 1;
                        if f.age.is_none_or(|age| age > book.max_staleness()) {
                            summary.stale_prices_used += 1;
                        }
                    }
                    let price = reply.value().price;
                    if price <= 0.0 || !price.is_finite() {
                        summary.non_positive_prices_used += 1;
                    }
                    Some(price)
                }
                Err(_) => None,
            };
            let Some(price) = price else {
                summary.ticks_without_price += 1;
                continue; // fail closed: no price, no order
            };
            summary.calls_made += 1;
            let decision = ai.call(symbol.to_string()).await;
            summary.replies_received += 1;
            let decision = match decision {
                Ok(reply) => {
                    if !reply.is_live() {
                        *degraded.entry("ai_agents").or_default() += 1;
                    }
                    reply.into_value()
                }
                Err(_) => continue,
            };
            summary.calls_made += 1;
            let position = db.call(DbCall::Position(symbol.to_string())).await;
            summary.replies_received += 1;
            let position = match position {
                Ok(reply) => {
                    if !reply.is_live() {
                        *degraded.entry("database").or_default() += 1;
                    }
                    match reply.into_value() {
                        DbReply::Position(p) => p,
                        DbReply::Written => 0,
                    }
                }
                Err(_) => 0,
            };
            let side = match decision.action {
                Action::Hold => continue,
                Action::Buy => Side::Buy,
                Action::Sell => Side::Sell,
            };
            let quantity = 1 + rng.u32(0..5);
            let order = Order {
                symbol: symbol.to_string(),
                side,
                quantity,
                tag: format!("sw{}", summary.orders_attempted),
            };
            let request = if side == Side::Sell && position > 0 {
                BrokerRequest::Exit(order)
            } else {
                BrokerRequest::Place(order)
            };
            summary.orders_attempted += 1;
            summary.calls_made += 1;
            let placed = kite.call(request).await;
            summary.replies_received += 1;
            match placed {
                Ok(Reply::Live(_)) => {
                    trade_id += 1;
                    let signed = if side == Side::Buy {
                        i64::from(quantity)
                    } else {
                        -i64::from(quantity)
                    };
                    summary.calls_made += 1;
                    let written = db
                        .call(DbCall::RecordTrade {
                            id: trade_id,
                            symbol: symbol.to_string(),
                            quantity: signed,
                            price,
                        })
                        .await;
                    summary.replies_received += 1;
                    match written {
                        Ok(reply) => {
                            summary.trades_recorded += 1;
                            if !reply.is_live() {
                                *degraded.entry("database").or_default() += 1;
                            }
                        }
                        Err(error) => tracing::warn!(%error, "trade not recorded"),
                    }
                }
                Ok(Reply::Fallback(_)) => {}
                Err(CallError::Refused { .. }) => match modes.borrow().trading {
                    TradingMode::Halted => summary.orders_refused_while_halted += 1,
                    TradingMode::Reducing => summary.orders_refused_while_reducing += 1,
                    TradingMode::Active => {}
                },
                Err(error) => tracing::debug!(%error, "order not placed"),
            }
        }
        if options.status_line && tokio::time::Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            eprintln!("{}", status_line(&seawall));
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            _ = &mut ctrl_c, if options.duration.is_none() => break,
        }
    }

    // Let journaled trades replay before the books are closed.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while db.handle().state() != BreakerState::Closed {
            tokio::time::sleep(TICK).await;
        }
    })
    .await;
    summary.orders_placed = ledger.placed.load(Ordering::SeqCst);
    summary.orders_placed_while_halted = ledger.placed_while_halted.load(Ordering::SeqCst);
    summary.duplicate_orders = ledger.duplicate_tags.load(Ordering::SeqCst);
    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for control in seawall.breakers() {
        let entry = counts.entry(control.name().to_string()).or_default();
        entry.final_state = control.state().as_str().to_string();
        entry.degraded_replies = degraded.get(control.name()).copied().unwrap_or(0);
    }
    summary.services = counts;
    counter.abort();
    seawall.shutdown().await;
    Ok(summary)
}

/// One line: breaker states, score, trading mode.
fn status_line(seawall: &Seawall) -> String {
    let report = seawall.health_report();
    let breakers: Vec<String> = seawall
        .breakers()
        .map(|b| format!("{}:{}", b.name(), b.state()))
        .collect();
    format!(
        "[seawall] {} | score {} ({}) | trading {:?}",
        breakers.join(" "),
        report.health_score,
        report.status.as_str(),
        report.trading.status
    )
}
