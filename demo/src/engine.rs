//! The strategy loop and its summary.
//!
//! Every invariant in the summary is counted on the dependency's side: the
//! loopback broker's ledger (orders received, with the trading mode the
//! runtime had published at that moment, and the price they carried), the
//! feed's own count of the bad quotes it served, and the rows the database
//! holds. The engine never counts its own good behaviour.

use crate::broker::{
    BookEntry, BrokerRequest, BrokerResponse, ClientFaults, KiteHttp, Order, Session, Side,
};
use crate::database::{DbCall, DbReply, SimDatabase};
use crate::kite_server::{FaultPhase, KiteServer, ServerFault};
use crate::market::{AgentRequest, BadQuotes, SimAgents, SimError, SimFeed, Tape};
use crate::scenario::{compress, scenario_seeded};
use seawall::chaos::{Chaos, ChaosPhase, ChaosPlan, Fault};
use seawall::config::Config;
use seawall::degradation::{
    Action, ConservativeHold, DegradedHandle, DisableOrders, LastKnownPrice, PriceBook,
    ReadOnlyCache, Reply,
};
use seawall::modes::TradingMode;
use seawall::{BreakerState, CallError, Event, Seawall, ServiceKey};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The demo's four services: each name with the type that serves it.
const KITE: ServiceKey<KiteHttp> = ServiceKey::new("kite_api");
const DATABASE: ServiceKey<Chaos<SimDatabase>> = ServiceKey::new("database");
const AI_AGENTS: ServiceKey<Chaos<SimAgents>> = ServiceKey::new("ai_agents");
const MARKET_DATA: ServiceKey<Chaos<SimFeed>> = ServiceKey::new("market_data");

/// A deliberate breach of a trading rule, planted to prove that the
/// summary's dependency-side checks catch it. Never set it outside a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedViolation {
    /// Orders go to the broker on a raw client, skipping the order gate.
    SkipOrderGate,
    /// Prices come straight from the feed, skipping validation.
    SkipPriceValidation,
}

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
    /// A planted violation (tests of the checks only).
    pub plant: Option<PlantedViolation>,
    /// Cancelled to stop the run gracefully (the binary cancels it on the
    /// first SIGTERM or SIGINT).
    pub stop: tokio_util::sync::CancellationToken,
    /// The file the config came from: SIGHUP and the admin reload route
    /// re-read it (time compressed the same way). `None`: no reloads.
    pub config_file: Option<std::path::PathBuf>,
}

/// Per-service figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceSummary {
    /// Transitions to Open or ForcedOpen.
    pub trips: u64,
    /// Transitions back to Closed after a trip.
    pub recoveries: u64,
    /// Re-opens within the stability window after a recovery.
    pub flaps: u64,
    /// Replies answered by a fallback.
    pub degraded_replies: u64,
    /// The breaker's state at the end.
    pub final_state: String,
}

/// Orders, from the broker's ledger where it matters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderSummary {
    /// Orders the strategy tried.
    pub attempted: u64,
    /// Orders the broker placed (its ledger).
    pub placed: u64,
    /// Orders the gate refused because trading was Halted.
    pub refused_while_halted: u64,
    /// Orders the gate refused while Reducing (they added risk).
    pub refused_while_reducing: u64,
    /// Orders (not cancels) the broker received while the runtime's
    /// published mode was Halted: must be 0.
    pub received_by_broker_while_halted: u64,
    /// Orders adding risk the broker received while Reducing: must be 0.
    pub opens_received_by_broker_while_reducing: u64,
    /// Order outcomes that were unknown (timed out, crashed after sending).
    pub unknown: u64,
    /// Unknown outcomes settled against the broker's order book by tag.
    pub reconciled: u64,
    /// Unknown outcomes the book showed as placed.
    pub reconciled_as_placed: u64,
    /// Orders the broker placed twice under one tag (re-sent): must be 0.
    pub duplicate_orders: u64,
    /// Protective stops (GTTs) the broker's ledger holds.
    pub protective_stops_at_broker: u64,
    /// Acknowledged order ids the broker's book does not hold under the
    /// same tag (replies matched to requests by id): must be 0.
    pub mismatched_replies: u64,
}

/// Prices, from the feed's own count and the broker's ledger.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PriceSummary {
    /// Bad quotes the feed served (0, NaN, negative, epoch).
    pub bad_quotes_injected: u64,
    /// Prices of 0 or less, or NaN, that reached a dependency (the agents
    /// asked to decide on them, orders at the broker, trades in the
    /// database): must be 0.
    pub bad_prices_used: u64,
    /// Fallback prices older than `max_staleness` handed out: must be 0.
    pub stale_prices_used: u64,
    /// Ticks in which a symbol had no usable price (fail closed: no order).
    pub ticks_without_price: u64,
}

/// The trading metrics the engine reported for the health score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TradingSummary {
    /// Reports sent (`Seawall::report_trading_metrics`), one a second.
    pub reports: u64,
    /// The last reported broker reject rate over the last 100 orders.
    pub order_reject_rate: Option<f64>,
    /// The score's trading component (0–10) at the end.
    pub score_component: f64,
}

/// One open position the engine protected with a broker-side stop when
/// trading left Active (the seed's "automatic position protection").
#[derive(Debug, Clone, Serialize)]
pub struct ProtectedPosition {
    /// The instrument.
    pub symbol: String,
    /// The net position it protected (+long, −short).
    pub quantity: i64,
    /// The stop's trigger price.
    pub trigger_price: f64,
    /// The broker's trigger id.
    pub trigger_id: String,
}

/// The database write journal at exit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalSummary {
    /// Writes still waiting for the database when the run ended.
    pub pending_at_exit: u64,
    /// Where they were persisted, if any were pending.
    pub persisted_to: Option<String>,
}

/// What happened, and whether the trading rules held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Per service.
    pub services: BTreeMap<String, ServiceSummary>,
    /// Orders.
    pub orders: OrderSummary,
    /// Prices.
    pub prices: PriceSummary,
    /// Trades the database holds from this run.
    pub trades_recorded: u64,
    /// Trading metrics.
    pub trading: TradingSummary,
    /// Positions protected by a broker-side stop when trading left Active.
    pub protected_positions: Vec<ProtectedPosition>,
    /// The write journal at exit: empty, or persisted.
    pub journal: JournalSummary,
}

impl Summary {
    /// Whether every breaker that tripped is Closed again.
    pub fn all_recovered(&self) -> bool {
        self.services
            .values()
            .all(|s| s.trips == 0 || (s.recoveries > 0 && s.final_state == "closed"))
    }

    /// The trading rules that were broken, by the dependency-side checks.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let o = &self.orders;
        for (n, what) in [
            (
                o.received_by_broker_while_halted,
                "orders reached the broker while Halted",
            ),
            (
                o.opens_received_by_broker_while_reducing,
                "orders adding risk reached the broker while Reducing",
            ),
            (o.duplicate_orders, "orders were placed twice under one tag"),
            (
                o.mismatched_replies,
                "order replies did not match the broker's book",
            ),
            (
                self.prices.bad_prices_used,
                "orders or trades carried a bad price",
            ),
            (
                self.prices.stale_prices_used,
                "stale fallback prices were used",
            ),
        ] {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        }
        out
    }

    /// The summary as a text table.
    pub fn render(&self) -> String {
        let mut out = String::from("service        trips  recoveries  flaps  degraded  final\n");
        for (name, s) in &self.services {
            out.push_str(&format!(
                "{name:<14} {:>5}  {:>10}  {:>5}  {:>8}  {}\n",
                s.trips, s.recoveries, s.flaps, s.degraded_replies, s.final_state
            ));
        }
        let (o, p) = (&self.orders, &self.prices);
        out.push_str(&format!(
            "orders: attempted {}, placed {}, refused while halted {}, refused while reducing {}, received by broker while halted {}\n\
             orders: unknown {}, reconciled {} ({} placed), duplicates {}, mismatched replies {}\n\
             prices: {} bad quotes injected, {} bad prices used, {} stale used, {} ticks without a usable price\n\
             trades recorded: {}; positions protected by broker-side stops: {}\n",
            o.attempted,
            o.placed,
            o.refused_while_halted,
            o.refused_while_reducing,
            o.received_by_broker_while_halted,
            o.unknown,
            o.reconciled,
            o.reconciled_as_placed,
            o.duplicate_orders,
            o.mismatched_replies,
            p.bad_quotes_injected,
            p.bad_prices_used,
            p.stale_prices_used,
            p.ticks_without_price,
            self.trades_recorded,
            self.protected_positions.len(),
        ));
        out
    }
}

const SYMBOLS: [&str; 3] = ["NSE:INFY", "NSE:TCS", "NSE:RELIANCE"];
const TICK: Duration = Duration::from_millis(100);
const API_KEY: &str = "seawalldemo";

fn plan<E: 'static>(
    phases: &BTreeMap<&'static str, Vec<ChaosPhase>>,
    service: &str,
    seed: u64,
    make: impl Fn(&str) -> E + Send + Sync + 'static,
) -> Arc<ChaosPlan<E>> {
    ChaosPlan::new(phases.get(service).cloned().unwrap_or_default(), seed, make)
}

/// The broker's side of kite_api's chaos: outages and errors are played by
/// the loopback server, a panic by the client after an order was sent.
fn broker_faults(phases: &[ChaosPhase], faults: &ClientFaults) -> Vec<FaultPhase> {
    let mut out = Vec::new();
    for p in phases {
        let fault = match &p.fault {
            Fault::Outage => ServerFault::Refuse,
            Fault::Timeout => ServerFault::Slow(Duration::from_secs(3600)),
            Fault::Latency { latency } => ServerFault::Slow(*latency),
            Fault::Panic => {
                faults.crash_after_order(p.from, p.until, p.probability);
                continue;
            }
            Fault::Error { kind } => match kind.as_str() {
                "429" | "TooManyRequests" => ServerFault::RateLimit,
                "TokenException" => ServerFault::TokenExpired,
                "OrderTimedOut" => ServerFault::OrderTimedOut(p.probability),
                "DataException" => ServerFault::Status(502),
                "GeneralException" => ServerFault::Status(500),
                "InputException" => continue,
                _ => ServerFault::Status(503),
            },
        };
        out.push(FaultPhase {
            from: p.from,
            until: p.until,
            fault,
        });
    }
    out
}

/// Trips, recoveries and flaps per service, from the event bus.
fn count_transitions(
    seawall: &Seawall,
    kite_closed: Arc<AtomicBool>,
) -> (
    Arc<Mutex<BTreeMap<String, ServiceSummary>>>,
    tokio::task::JoinHandle<()>,
) {
    let counts = Arc::new(Mutex::new(BTreeMap::<String, ServiceSummary>::new()));
    let mut events = seawall.subscribe();
    let c = Arc::clone(&counts);
    let task = tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let Event::Transition {
                service,
                transition,
            } = event
            else {
                continue;
            };
            let mut counts = c.lock().unwrap_or_else(|p| p.into_inner());
            let entry = counts.entry(service.to_string()).or_default();
            if transition.to.rejects_all() && !transition.from.rejects_all() {
                entry.trips += 1;
            }
            if transition.flap {
                entry.flaps += 1;
            }
            if transition.to == BreakerState::Closed && transition.from == BreakerState::HalfOpen {
                entry.recoveries += 1;
                if &*service == "kite_api" {
                    // Kite has no cancel-on-disconnect: reconcile after every outage.
                    kite_closed.store(true, Ordering::SeqCst);
                }
            }
        }
    });
    (counts, task)
}

/// The engine's own state across ticks.
#[derive(Default)]
struct Book {
    /// Symbols with an order of unknown outcome: tag, quantity, price.
    pending: HashMap<&'static str, (String, i64, f64)>,
    /// Acknowledged orders: tag → order id, checked against the broker's book.
    acknowledged: Vec<(String, String)>,
    orders_sent: u64,
    trade_seq: u64,
    /// The last 100 orders that reached the broker: rejected or not.
    recent: std::collections::VecDeque<bool>,
    last_ack: Option<tokio::time::Instant>,
    last_reconcile: Option<tokio::time::Instant>,
    /// Net position per instrument, from the broker's acknowledgements.
    positions: HashMap<&'static str, i64>,
    /// The last price traded on per instrument.
    last_price: HashMap<&'static str, f64>,
    /// Instruments whose position has a broker-side stop (cleared when the
    /// position changes).
    protected: HashMap<&'static str, String>,
}

impl Book {
    fn broker_answered(&mut self, rejected: bool) {
        if self.recent.len() == 100 {
            self.recent.pop_front();
        }
        self.recent.push_back(rejected);
        if !rejected {
            self.last_ack = Some(tokio::time::Instant::now());
        }
    }

    /// The seed's "trading-specific health metrics", for the score.
    fn trading_metrics(&self) -> seawall::health::TradingMetrics {
        let rejected = self.recent.iter().filter(|r| **r).count();
        seawall::health::TradingMetrics {
            order_reject_rate: (!self.recent.is_empty())
                .then(|| rejected as f64 / self.recent.len() as f64),
            last_order_ack_age: self.last_ack.map(|at| at.elapsed()),
            last_reconciliation_age: self.last_reconcile.map(|at| at.elapsed()),
        }
    }
}

/// Wires what runs beside the tree: SIGHUP reload (with a config file),
/// the broker's view of the modes, and where to look.
fn announce(seawall: &Seawall, options: &DemoOptions, deps: &Dependencies) {
    #[cfg(unix)]
    if options.config_file.is_some() {
        if let Err(error) = seawall.reload_on_sighup() {
            tracing::warn!(%error, "cannot watch SIGHUP; reload through the admin route instead");
        }
    }
    #[cfg(not(unix))]
    let _ = options;
    deps.server
        .watch_modes(seawall.modes(), seawall.subscribe());
    if let Some(addr) = seawall.http_addr() {
        tracing::info!("health endpoints on http://{addr}/api/v1/system/health/comprehensive");
    }
    tracing::info!(broker = %deps.server.url(), "demo broker (Kite Connect v3 shapes) listening");
}

/// Runs the demo and returns its summary.
pub async fn run(
    mut options: DemoOptions,
) -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    let scenario = prepare(&mut options)?;
    let deps = Dependencies::start(&scenario, options.seed).await?;
    let book = Arc::new(PriceBook::new(
        options.config.services["market_data"]
            .degradation
            .max_staleness,
    ));
    let database = &options.config.services["database"].degradation;
    let journal = Arc::new(
        ReadOnlyCache::<Chaos<SimDatabase>>::new(database.cache_capacity, |_| DbReply::Written)
            .with_journal_capacity(database.journal_capacity),
    );
    let seawall = start_tree(&options, &deps, &book, &journal).await?;
    announce(&seawall, &options, &deps);
    let engine = Engine {
        kite: &seawall.degraded_of(KITE)?,
        feed: &seawall.degraded_of(MARKET_DATA)?,
        ai: &seawall.degraded_of(AI_AGENTS)?,
        db: &seawall.degraded_of(DATABASE)?,
        price_book: &book,
        modes: seawall.modes(),
        plant: options.plant,
        run_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let kite_closed = Arc::new(AtomicBool::new(false));
    let (counts, counter) = count_transitions(&seawall, Arc::clone(&kite_closed));
    let mut summary = Summary::default();
    let mut state = Book::default();
    let degraded = trade(
        &engine,
        &seawall,
        &options,
        &deps,
        &kite_closed,
        &mut state,
        &mut summary,
    )
    .await;
    settle(&engine, &mut state, &mut summary).await;
    audit(&engine, &deps, &state, &options, &journal, &mut summary).await;
    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for control in seawall.breakers() {
        let entry = counts.entry(control.name().to_string()).or_default();
        entry.final_state = control.state().as_str().to_string();
        entry.degraded_replies = degraded.get(control.name()).copied().unwrap_or(0);
    }
    counter.abort();
    summary.services = counts;
    summary.trading.score_component = seawall.health_report().components.trading;
    seawall.shutdown().await;
    deps.server.stop().await;
    Ok(summary)
}

/// Compresses the config's time for a run of `total` (when `compress`):
/// applied at start and to every reloaded config alike.
fn fit_to_run(config: &mut Config, compress_time: bool, total: Duration) {
    if compress_time {
        compress(config);
        // Short runs: an outage and its recovery must fit the run.
        let open = (total / 16).max(Duration::from_secs(1));
        for s in config.services.values_mut() {
            s.open_timeout = s.open_timeout.min(open);
            s.max_open_timeout = Some(s.effective_max_open_timeout().min(open * 2));
            s.slow_start = s.slow_start.map(|d| d.min(open));
        }
    }
}

/// Compresses the config for a short run and builds the scenario, with the
/// config's own `[[services.NAME.chaos]]` phases on top.
fn prepare(
    options: &mut DemoOptions,
) -> Result<super::scenario::Scenario, Box<dyn std::error::Error + Send + Sync>> {
    let total = options.duration.unwrap_or(Duration::from_secs(60));
    fit_to_run(&mut options.config, options.compress, total);
    let mut scenario =
        scenario_seeded(&options.scenario, total, options.seed).ok_or_else(|| {
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
        scenario
            .chaos
            .entry(name)
            .or_default()
            .extend(service.chaos.iter().map(ChaosPhase::from));
    }
    Ok(scenario)
}

/// The simulated world the engine trades against: the loopback broker, the
/// tape, and the fault plans of the other three dependencies.
struct Dependencies {
    server: KiteServer,
    tape: Arc<Tape>,
    session: Arc<Session>,
    client_faults: Arc<ClientFaults>,
    bad_quotes: Arc<BadQuotes>,
    agents_saw_bad: Arc<std::sync::atomic::AtomicU64>,
    db_plan: Arc<ChaosPlan<super::database::DbError>>,
    ai_plan: Arc<ChaosPlan<SimError>>,
    feed_plan: Arc<ChaosPlan<SimError>>,
    seed: u64,
}

impl Dependencies {
    async fn start(
        scenario: &super::scenario::Scenario,
        seed: u64,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let tape = Tape::new(seed);
        let client_faults = Arc::new(ClientFaults::default());
        let kite_phases = scenario.chaos.get("kite_api").map_or(&[][..], |v| &v[..]);
        let server = KiteServer::start(
            API_KEY,
            Arc::clone(&tape),
            broker_faults(kite_phases, &client_faults),
            seed ^ 6,
        )
        .await?;
        let bad_quotes = Arc::new(BadQuotes::default());
        for (from, until, p) in &scenario.bad_quotes {
            bad_quotes.between(*from, *until, *p);
        }
        let sim = |k: &str| SimError(format!("simulated {k}"));
        Ok(Self {
            server,
            tape,
            session: Arc::new(Session::default()),
            client_faults,
            bad_quotes,
            agents_saw_bad: Arc::default(),
            db_plan: plan(&scenario.chaos, "database", seed ^ 2, |k: &str| {
                super::database::DbError(format!("simulated {k}"))
            }),
            ai_plan: plan(&scenario.chaos, "ai_agents", seed ^ 3, sim),
            feed_plan: plan(&scenario.chaos, "market_data", seed ^ 4, sim),
            seed,
        })
    }
}

/// The supervision tree over the four dependencies, each with its
/// degradation (checked against the config when the tree starts).
async fn start_tree(
    options: &DemoOptions,
    deps: &Dependencies,
    book: &Arc<PriceBook>,
    journal: &Arc<ReadOnlyCache<Chaos<SimDatabase>>>,
) -> Result<Seawall, seawall::StartError> {
    let services = &options.config.services;
    let kite_degradation = &services["kite_api"].degradation;
    let ai_strategy = if services["ai_agents"].degradation.technical_only {
        ConservativeHold::technical(Arc::clone(book))
    } else {
        ConservativeHold::hold()
    };
    base_builder(options)
        .register(KITE, deps.kite_factory())
        .register(DATABASE, deps.database_factory(&options.db_path))
        .register(AI_AGENTS, deps.agents_factory())
        .register(MARKET_DATA, deps.feed_factory())
        .degradation(
            KITE,
            DisableOrders::with_cached_reads(
                kite_degradation.max_staleness,
                kite_degradation.cache_capacity,
                |request: &BrokerRequest| match request {
                    BrokerRequest::Quote(symbol) => Some(format!("quote {symbol}")),
                    _ => None, // the order book is never answered from a cache
                },
            ),
        )
        .degradation(MARKET_DATA, LastKnownPrice::new(Arc::clone(book)))
        .degradation(AI_AGENTS, ai_strategy)
        .degradation(DATABASE, Arc::clone(journal))
        .start()
        .await
}

/// The builder over the run's config; with a config file, reloads of it
/// are fitted to the run as the first load was.
fn base_builder(options: &DemoOptions) -> seawall::SeawallBuilder {
    let builder = Seawall::builder(options.config.clone()).admin_token(options.admin_token.clone());
    let Some(file) = &options.config_file else {
        return builder;
    };
    let (compress_time, total) = (
        options.compress,
        options.duration.unwrap_or(Duration::from_secs(60)),
    );
    builder.config_file_adjusted(file, move |config| {
        fit_to_run(config, compress_time, total);
    })
}

/// Each service actor's instance, made anew on every (re)start.
impl Dependencies {
    fn kite_factory(&self) -> impl Fn() -> KiteHttp + Send + Sync + 'static {
        let (url, session, faults) = (
            self.server.url(),
            Arc::clone(&self.session),
            Arc::clone(&self.client_faults),
        );
        move || {
            KiteHttp::new(
                url.clone(),
                API_KEY.to_string(),
                Arc::clone(&session),
                Arc::clone(&faults),
            )
        }
    }

    fn database_factory(
        &self,
        path: &std::path::Path,
    ) -> impl Fn() -> Chaos<SimDatabase> + Send + Sync + 'static {
        let (path, plan) = (path.to_path_buf(), Arc::clone(&self.db_plan));
        move || Chaos::new(SimDatabase::new(path.clone()), Arc::clone(&plan))
    }

    fn agents_factory(&self) -> impl Fn() -> Chaos<SimAgents> + Send + Sync + 'static {
        let (seed, bad_seen, plan) = (
            std::sync::atomic::AtomicU64::new(self.seed),
            Arc::clone(&self.agents_saw_bad),
            Arc::clone(&self.ai_plan),
        );
        move || {
            let rng = fastrand::Rng::with_seed(seed.fetch_add(1, Ordering::Relaxed));
            let bad_prices_seen = Arc::clone(&bad_seen);
            Chaos::new(
                SimAgents {
                    rng,
                    bad_prices_seen,
                },
                Arc::clone(&plan),
            )
        }
    }

    fn feed_factory(&self) -> impl Fn() -> Chaos<SimFeed> + Send + Sync + 'static {
        let (tape, bad, plan) = (
            Arc::clone(&self.tape),
            Arc::clone(&self.bad_quotes),
            Arc::clone(&self.feed_plan),
        );
        move || {
            let (tape, bad) = (Arc::clone(&tape), Arc::clone(&bad));
            Chaos::new(SimFeed { tape, bad }, Arc::clone(&plan))
        }
    }
}

/// The trading loop, until the run's duration or a stop; returns how many
/// degraded replies each service gave.
async fn trade(
    engine: &Engine<'_>,
    seawall: &Seawall,
    options: &DemoOptions,
    deps: &Dependencies,
    kite_closed: &AtomicBool,
    state: &mut Book,
    summary: &mut Summary,
) -> BTreeMap<&'static str, u64> {
    let mut degraded = BTreeMap::<&'static str, u64>::new();
    // A raw client, used only by the planted gate violation.
    let mut raw_kite = KiteHttp::new(
        deps.server.url(),
        API_KEY.to_string(),
        Arc::clone(&deps.session),
        Arc::new(ClientFaults::default()),
    );
    let started = tokio::time::Instant::now();
    let (mut next_status, mut next_quote) = (started, started);
    let mut rng = fastrand::Rng::with_seed(deps.seed ^ 5);
    loop {
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= next_quote {
            // A broker read once a second (Kite allows one quote a second):
            // it passes the gate, so it probes a HalfOpen kite_api breaker.
            next_quote = now + Duration::from_secs(1);
            let quote = BrokerRequest::Quote(SYMBOLS[0].to_string());
            if let Ok(Reply::Fallback(_)) = engine.kite.call(quote).await {
                *degraded.entry("kite_api").or_default() += 1;
            }
        }
        if kite_closed.swap(false, Ordering::SeqCst) || !state.pending.is_empty() {
            engine.reconcile(state, summary).await;
        }
        engine
            .tick(state, summary, &mut degraded, &mut rng, &mut raw_kite)
            .await;
        if tokio::time::Instant::now() >= next_status {
            next_status += Duration::from_secs(1);
            let metrics = state.trading_metrics();
            summary.trading.reports += 1;
            summary.trading.order_reject_rate = metrics.order_reject_rate;
            seawall.report_trading_metrics(metrics);
            if options.status_line {
                eprintln!("{}", status_line(seawall));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = options.stop.cancelled() => break,
        }
    }
    degraded
}

/// Lets journaled trades replay and unknown orders settle before the books
/// close.
async fn settle(engine: &Engine<'_>, state: &mut Book, summary: &mut Summary) {
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while engine.db.handle().state() != BreakerState::Closed || !state.pending.is_empty() {
            engine.reconcile(state, summary).await;
            tokio::time::sleep(TICK).await;
        }
    })
    .await;
}

/// The trading rules, checked on the dependencies' side: the broker's
/// ledger and order book, the feed's log, the database's rows.
async fn audit(
    engine: &Engine<'_>,
    deps: &Dependencies,
    state: &Book,
    options: &DemoOptions,
    journal: &ReadOnlyCache<Chaos<SimDatabase>>,
    summary: &mut Summary,
) {
    let broker_book = match engine.kite.handle().call(BrokerRequest::OrderBook).await {
        Ok(BrokerResponse::OrderBook(entries)) => Some(entries),
        _ => None,
    };
    {
        let ledger = deps.server.ledger();
        let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        let o = &mut summary.orders;
        o.placed = ledger.placed();
        o.protective_stops_at_broker = ledger.protective_stops();
        o.received_by_broker_while_halted = ledger.received_while_halted();
        o.opens_received_by_broker_while_reducing = ledger.opens_received_while_reducing();
        o.duplicate_orders = ledger.duplicate_tags();
        summary.prices.bad_prices_used = ledger.bad_prices();
    }
    if let Some(entries) = broker_book {
        summary.orders.mismatched_replies = state
            .acknowledged
            .iter()
            .filter(|(tag, id)| !entries.iter().any(|e| &e.order_id == id && &e.tag == tag))
            .count() as u64;
    }
    summary.prices.bad_quotes_injected = deps.bad_quotes.served.load(Ordering::SeqCst);
    summary.journal = persist_journal(journal, &options.db_path, engine.run_id);
    let (rows, bad_rows) = trades_in_db(&options.db_path, engine.run_id).await;
    summary.trades_recorded = rows;
    summary.prices.bad_prices_used += bad_rows + deps.agents_saw_bad.load(Ordering::SeqCst);
}

/// Writes still journaled at the end (the database never came back) are
/// written to a file next to the database, one JSON object a line, so a
/// shutdown loses nothing.
fn persist_journal(
    journal: &ReadOnlyCache<Chaos<SimDatabase>>,
    db_path: &std::path::Path,
    run_id: u64,
) -> JournalSummary {
    let pending = journal.pending_writes();
    if pending.is_empty() {
        return JournalSummary::default();
    }
    let path = db_path.with_file_name(format!("journal-{run_id}.jsonl"));
    let lines: String = pending
        .iter()
        .filter_map(|write| match write {
            DbCall::RecordTrade {
                id,
                symbol,
                quantity,
                price,
            } => Some(
                serde_json::json!({"id": id, "symbol": symbol, "quantity": quantity, "price": price})
                    .to_string()
                    + "\n",
            ),
            DbCall::Position(_) => None,
        })
        .collect();
    match std::fs::write(&path, lines) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), writes = pending.len(),
                "database still out at shutdown: journaled writes persisted");
            JournalSummary {
                pending_at_exit: pending.len() as u64,
                persisted_to: Some(path.display().to_string()),
            }
        }
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "could not persist the write journal");
            JournalSummary {
                pending_at_exit: pending.len() as u64,
                persisted_to: None,
            }
        }
    }
}

/// Rows of this run in the trades table, and how many carry a bad price.
async fn trades_in_db(path: &std::path::Path, run_id: u64) -> (u64, u64) {
    let path = path.to_path_buf();
    let (low, high) = trade_id_range(run_id);
    tokio::task::spawn_blocking(move || {
        let Ok(conn) = rusqlite::Connection::open(path) else {
            return (0, 0);
        };
        let count = |sql: &str| -> u64 {
            conn.query_row(sql, [low, high], |row| row.get::<_, i64>(0))
                .map_or(0, |n| n as u64)
        };
        (
            count("SELECT COUNT(*) FROM trades WHERE id BETWEEN ?1 AND ?2"),
            count("SELECT COUNT(*) FROM trades WHERE id BETWEEN ?1 AND ?2 AND NOT (price > 0)"),
        )
    })
    .await
    .unwrap_or((0, 0))
}

/// Trade ids are unique across runs: the run id (ms since the epoch) in the
/// high bits, a sequence in the low 20.
fn trade_id_range(run_id: u64) -> (i64, i64) {
    let base = (run_id << 20) as i64;
    (base, base | 0xF_FFFF)
}

struct Engine<'a> {
    kite: &'a DegradedHandle<KiteHttp>,
    feed: &'a DegradedHandle<Chaos<SimFeed>>,
    ai: &'a DegradedHandle<Chaos<SimAgents>>,
    db: &'a DegradedHandle<Chaos<SimDatabase>>,
    price_book: &'a PriceBook,
    modes: tokio::sync::watch::Receiver<seawall::modes::Modes>,
    plant: Option<PlantedViolation>,
    run_id: u64,
}

impl Engine<'_> {
    /// Settles every order of unknown outcome against the broker's order
    /// book, by tag, before anything more is sent for its instrument.
    async fn reconcile(&self, state: &mut Book, summary: &mut Summary) {
        let entries: Vec<BookEntry> = match self.kite.call(BrokerRequest::OrderBook).await {
            Ok(reply) => match reply.into_value() {
                BrokerResponse::OrderBook(entries) => entries,
                _ => return,
            },
            Err(_) => return, // the broker is still out: the instruments stay blocked
        };
        state.last_reconcile = Some(tokio::time::Instant::now());
        let pending: Vec<_> = state.pending.drain().collect();
        for (symbol, (tag, quantity, price)) in pending {
            summary.orders.reconciled += 1;
            if let Some(entry) = entries.iter().find(|e| e.tag == tag) {
                summary.orders.reconciled_as_placed += 1;
                state.acknowledged.push((tag, entry.order_id.clone()));
                *state.positions.entry(symbol).or_default() += quantity;
                state.last_price.insert(symbol, price);
                state.protected.remove(symbol);
                self.record_trade(state, symbol, quantity, price).await;
            }
        }
    }

    /// Trading left Active: give every open position a broker-side stop
    /// (2 % away) where the broker can be reached. Exits stay allowed while
    /// Reducing; while Halted the gate refuses them, and the engine tries
    /// again on the next tick.
    async fn protect_positions(&self, state: &mut Book, summary: &mut Summary) {
        let open: Vec<(&'static str, i64)> = state
            .positions
            .iter()
            .filter(|(symbol, qty)| **qty != 0 && !state.protected.contains_key(*symbol))
            .map(|(s, q)| (*s, *q))
            .collect();
        for (symbol, quantity) in open {
            let Some(&price) = state.last_price.get(symbol) else {
                continue;
            };
            let (side, trigger) = if quantity > 0 {
                (Side::Sell, price * 0.98)
            } else {
                (Side::Buy, price * 1.02)
            };
            state.orders_sent += 1;
            let order = Order {
                symbol: symbol.to_string(),
                side,
                quantity: u32::try_from(quantity.unsigned_abs()).unwrap_or(u32::MAX),
                price: (trigger * 20.0).round() / 20.0,
                tag: format!("gt{}n{}", self.run_id % 1_000_000, state.orders_sent),
            };
            let trigger_price = order.price;
            if let Ok(Reply::Live(BrokerResponse::Accepted(id))) =
                self.kite.call(BrokerRequest::Protect(order)).await
            {
                state.protected.insert(symbol, id.clone());
                summary.protected_positions.push(ProtectedPosition {
                    symbol: symbol.to_string(),
                    quantity,
                    trigger_price,
                    trigger_id: id,
                });
            }
        }
    }

    async fn record_trade(&self, state: &mut Book, symbol: &str, quantity: i64, price: f64) {
        state.trade_seq += 1;
        let (base, _) = trade_id_range(self.run_id);
        let id = (base | state.trade_seq as i64) as u64;
        let written = self
            .db
            .call(DbCall::RecordTrade {
                id,
                symbol: symbol.to_string(),
                quantity,
                price,
            })
            .await;
        if let Err(error) = written {
            tracing::warn!(%error, "trade not recorded");
        }
    }

    /// The price to trade on: the feed through its degraded handle (or,
    /// planted, the raw value), `None` to fail closed.
    async fn price(
        &self,
        symbol: &'static str,
        summary: &mut Summary,
        degraded: &mut BTreeMap<&'static str, u64>,
    ) -> Option<f64> {
        if self.plant == Some(PlantedViolation::SkipPriceValidation) {
            let raw = self.feed.handle().call(symbol.to_string()).await.ok()?;
            return Some(raw.price);
        }
        match self.feed.call(symbol.to_string()).await {
            Ok(Reply::Live(quote)) => {
                debug_assert_eq!(quote.instrument, symbol, "reply matched to its request");
                (quote.instrument == symbol).then_some(quote.price)
            }
            Ok(Reply::Fallback(f)) => {
                *degraded.entry("market_data").or_default() += 1;
                if f.age
                    .is_none_or(|age| age > self.price_book.max_staleness())
                {
                    summary.prices.stale_prices_used += 1;
                }
                (f.value.instrument == symbol).then_some(f.value.price)
            }
            Err(_) => None,
        }
    }

    async fn tick(
        &self,
        state: &mut Book,
        summary: &mut Summary,
        degraded: &mut BTreeMap<&'static str, u64>,
        rng: &mut fastrand::Rng,
        raw_kite: &mut KiteHttp,
    ) {
        if self.modes.borrow().trading != TradingMode::Active {
            self.protect_positions(state, summary).await;
        }
        let mut ordered = false;
        for symbol in SYMBOLS {
            let Some(price) = self.price(symbol, summary, degraded).await else {
                summary.prices.ticks_without_price += 1;
                continue; // fail closed: no price, no order
            };
            let ask = AgentRequest {
                symbol: symbol.to_string(),
                price,
            };
            let decision = match self.ai.call(ask).await {
                Ok(reply) => {
                    if !reply.is_live() {
                        *degraded.entry("ai_agents").or_default() += 1;
                    }
                    reply.into_value()
                }
                Err(_) => continue,
            };
            let position = match self.db.call(DbCall::Position(symbol.to_string())).await {
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
            // One order a tick keeps under Kite's 10 orders a second, and
            // nothing more is sent for an instrument with an unknown order.
            if ordered || state.pending.contains_key(symbol) {
                continue;
            }
            ordered = true;
            self.order(state, summary, symbol, side, position, price, rng, raw_kite)
                .await;
        }
    }

    /// Sends an order through the kite_api handle (or, planted, around it).
    async fn send_order(
        &self,
        request: BrokerRequest,
        raw_kite: &mut KiteHttp,
    ) -> Result<Reply<BrokerResponse>, CallError<crate::broker::KiteError>> {
        if self.plant != Some(PlantedViolation::SkipOrderGate) {
            return self.kite.call(request).await;
        }
        use seawall::Service;
        raw_kite
            .call(request)
            .await
            .map(Reply::Live)
            .map_err(|e| CallError::Service {
                service: "kite_api",
                outcome: seawall::Outcome::Ignored,
                source: e,
            })
    }

    /// The next order's request (an exit when it sells a long position),
    /// its tag, and its quantity signed as the position moves.
    fn new_order(
        &self,
        state: &mut Book,
        symbol: &'static str,
        side: Side,
        position: i64,
        price: f64,
        rng: &mut fastrand::Rng,
    ) -> (BrokerRequest, String, i64) {
        let quantity = 1 + rng.u32(0..5);
        state.orders_sent += 1;
        let order = Order {
            symbol: symbol.to_string(),
            side,
            quantity,
            price,
            tag: format!("sw{}n{}", self.run_id % 1_000_000, state.orders_sent),
        };
        let tag = order.tag.clone();
        let request = if side == Side::Sell && position > 0 {
            BrokerRequest::Exit(order)
        } else {
            BrokerRequest::Place(order)
        };
        let signed = if side == Side::Buy {
            i64::from(quantity)
        } else {
            -i64::from(quantity)
        };
        (request, tag, signed)
    }

    #[allow(clippy::too_many_arguments)]
    async fn order(
        &self,
        state: &mut Book,
        summary: &mut Summary,
        symbol: &'static str,
        side: Side,
        position: i64,
        price: f64,
        rng: &mut fastrand::Rng,
        raw_kite: &mut KiteHttp,
    ) {
        let (request, tag, signed) = self.new_order(state, symbol, side, position, price, rng);
        summary.orders.attempted += 1;
        let placed = self.send_order(request, raw_kite).await;
        match placed {
            Ok(Reply::Live(BrokerResponse::Accepted(id))) => {
                state.broker_answered(false);
                state.acknowledged.push((tag, id));
                *state.positions.entry(symbol).or_default() += signed;
                state.last_price.insert(symbol, price);
                state.protected.remove(symbol);
                self.record_trade(state, symbol, signed, price).await;
            }
            Ok(_) => {}
            Err(CallError::Unknown { .. }) => {
                // It may have been placed: settle it by tag before anything
                // more is sent for this instrument (trading rule 8).
                summary.orders.unknown += 1;
                state.pending.insert(symbol, (tag, signed, price));
            }
            Err(CallError::Refused { .. }) => match self.modes.borrow().trading {
                TradingMode::Halted => summary.orders.refused_while_halted += 1,
                TradingMode::Reducing => summary.orders.refused_while_reducing += 1,
                TradingMode::Active => {}
            },
            Err(error) => {
                if matches!(error, CallError::Service { .. }) {
                    state.broker_answered(true); // a reject, a 429, an expired token
                }
                tracing::debug!(%error, "order not placed");
            }
        }
    }
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
