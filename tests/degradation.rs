//! Degradation strategies end to end on paused time, and a property test of
//! last-known prices.

mod support;

use proptest::prelude::*;
use seawall::config::{Config, ServiceConfig, StrategyKind};
use seawall::degradation::{
    Action, ConservativeHold, DbOp, DbRequest, Decision, DecisionSource, DisableOrders, Failover,
    LastKnownPrice, OrderIntent, PriceBook, Quote, ReadOnlyCache, Reply,
};
use seawall::modes::TradingMode;
use seawall::{
    BreakerState, CallError, DegradationError, Evidence, FailureKind, HandleError, Outcome,
    Seawall, Service, ServiceKey,
};
use seawall::{DefaultPolicy, Lifecycle, Policy};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Down(&'static str);

fn one_service(name: &str, edit: impl FnOnce(&mut ServiceConfig)) -> Config {
    let mut config = Config::seed_defaults();
    config.runtime.seed = Some(5);
    config.services.retain(|n, _| n == name);
    edit(config.services.get_mut(name).unwrap());
    config
}

// ---- database: ReadOnlyCache and its journal ----

#[derive(Debug, Clone, PartialEq)]
enum DbReq {
    Get(String),
    Put(u64),
}

impl DbRequest for DbReq {
    fn db_op(&self) -> DbOp {
        match self {
            DbReq::Get(key) => DbOp::Read(key.clone()),
            DbReq::Put(_) => DbOp::Write,
        }
    }
}

#[derive(Default)]
struct DbState {
    down: AtomicBool,
    applied: Mutex<Vec<u64>>,
}

struct Db(Arc<DbState>);

impl Service for Db {
    type Request = DbReq;
    type Response = String;
    type Error = Down;
    type Policy = DefaultPolicy;

    async fn call(&mut self, request: DbReq) -> Result<String, Down> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(Down("database unreachable"));
        }
        Ok(match request {
            DbReq::Get(key) => format!("row {key}"),
            DbReq::Put(n) => {
                self.0.applied.lock().unwrap().push(n);
                "ok".to_string()
            }
        })
    }
}

impl Lifecycle for Db {
    async fn reconnect(&mut self) -> Result<Evidence, Down> {
        if self.0.down.load(Ordering::SeqCst) {
            Err(Down("database unreachable"))
        } else {
            Ok(Evidence::Observed)
        }
    }
}

/// A tree with the `database` service behind `cache`, and the database's state.
async fn database(
    cache: &Arc<ReadOnlyCache<Db>>,
) -> (
    Seawall,
    seawall::degradation::DegradedHandle<Db>,
    Arc<DbState>,
) {
    let state = Arc::new(DbState::default());
    let s = Arc::clone(&state);
    let seawall = Seawall::builder(one_service("database", |_| {}))
        .service("database", move || Db(Arc::clone(&s)))
        .start()
        .await
        .unwrap();
    let db = seawall
        .set_degradation("database", SharedCache(Arc::clone(cache)))
        .unwrap();
    (seawall, db, state)
}

/// The database comes back: recovery, probes (reads), close, then the
/// journal's replay runs to its end.
async fn bring_back(
    state: &DbState,
    db: &seawall::degradation::DegradedHandle<Db>,
    cache: &ReadOnlyCache<Db>,
) {
    state.down.store(false, Ordering::SeqCst);
    while db.handle().state() != BreakerState::Closed {
        let _ = db.call(DbReq::Get("acct".into())).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while cache.journal_len() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn test_journal_when_database_down_for_1000_writes_then_replayed_in_order_exactly_once() {
    let cache = Arc::new(ReadOnlyCache::<Db>::new(16, |_| "journaled".to_string()));
    let (seawall, db, state) = database(&cache).await;

    // A read while up is cached for later.
    assert!(db.call(DbReq::Get("acct".into())).await.unwrap().is_live());

    state.down.store(true, Ordering::SeqCst);
    for n in 0..1000 {
        let reply = db.call(DbReq::Put(n)).await.unwrap();
        let Reply::Fallback(f) = reply else {
            panic!("write {n} went live while down")
        };
        assert_eq!(f.value, "journaled");
        assert_eq!(f.strategy, StrategyKind::ReadOnlyCache);
    }
    assert_eq!(db.handle().state(), BreakerState::Open);
    assert_eq!(cache.journal_len(), 1000);
    assert!(state.applied.lock().unwrap().is_empty());
    let read = db.call(DbReq::Get("acct".into())).await.unwrap();
    let Reply::Fallback(cached) = read else {
        panic!("read should come from the cache")
    };
    assert_eq!(cached.value, "row acct");
    assert!(cached.age.is_some());
    let uncached = db.call(DbReq::Get("other".into())).await.unwrap_err();
    assert!(matches!(uncached, CallError::Refused { .. }), "{uncached}");

    let mut modes = seawall.modes();
    bring_back(&state, &db, &cache).await;
    let applied = state.applied.lock().unwrap().clone();
    assert_eq!(
        applied,
        (0..1000).collect::<Vec<_>>(),
        "all, in order, once"
    );
    modes.wait_for(|m| !m.is_degraded()).await.unwrap();
    assert!(db.call(DbReq::Put(1000)).await.unwrap().is_live());
    seawall.shutdown().await;
}

/// A database out for a whole trading day must not grow the journal until
/// the process is killed (and the journal with it). Past `journal_capacity`
/// a write is refused, with the key to raise, and the caller still holds it;
/// the journaled ones are replayed in order, once. Counted on the database's
/// side (what it applied).
#[tokio::test(start_paused = true)]
async fn test_journal_when_full_then_write_refused_naming_the_key_and_journaled_ones_replayed() {
    let cache = Arc::new(
        ReadOnlyCache::<Db>::new(16, |_| "journaled".to_string()).with_journal_capacity(3),
    );
    let (seawall, db, state) = database(&cache).await;

    state.down.store(true, Ordering::SeqCst);
    for n in 0..3 {
        let reply = db.call(DbReq::Put(n)).await.unwrap();
        assert!(!reply.is_live(), "write {n} was journaled");
    }
    for n in 3..5 {
        let err = db.call(DbReq::Put(n)).await.unwrap_err();
        assert!(matches!(err, CallError::Refused { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("services.database.degradation.journal_capacity")
                && text.contains("not taken"),
            "{text}"
        );
    }
    assert_eq!(cache.journal_len(), 3);

    bring_back(&state, &db, &cache).await;
    assert_eq!(
        *state.applied.lock().unwrap(),
        vec![0, 1, 2],
        "journaled ones, in order, once"
    );
    // The caller retries what was refused, now live.
    assert!(db.call(DbReq::Put(3)).await.unwrap().is_live());
    assert_eq!(*state.applied.lock().unwrap(), vec![0, 1, 2, 3]);
    seawall.shutdown().await;
}

/// Lets the test keep a handle on the cache it registered.
struct SharedCache(Arc<ReadOnlyCache<Db>>);

impl seawall::degradation::Degradation<Db> for SharedCache {
    fn kind(&self) -> StrategyKind {
        StrategyKind::ReadOnlyCache
    }
    fn admit(&self, r: &DbReq, m: &seawall::modes::Modes) -> seawall::degradation::Admit<String> {
        self.0.admit(r, m)
    }
    fn observe(&self, r: &DbReq, v: &String) {
        self.0.observe(r, v)
    }
    fn fallback<'a>(
        &'a self,
        r: &'a DbReq,
        e: &'a CallError<Down>,
    ) -> seawall::degradation::BoxFuture<'a, seawall::degradation::FallbackAnswer<String>> {
        self.0.fallback(r, e)
    }
    fn needs_recovery(&self) -> bool {
        seawall::degradation::Degradation::<Db>::needs_recovery(&*self.0)
    }
    fn recovered<'a>(
        &'a self,
        h: &'a seawall::ServiceHandle<Db>,
    ) -> seawall::degradation::BoxFuture<'a, ()> {
        self.0.recovered(h)
    }
}

// ---- broker: DisableOrders ----

#[derive(Debug, Clone)]
enum KiteReq {
    Quote,
    Place,
    Cancel,
    Exit,
}

fn kite_intent(request: &KiteReq) -> Option<OrderIntent> {
    match request {
        KiteReq::Quote => None,
        KiteReq::Place => Some(OrderIntent::Open),
        KiteReq::Cancel => Some(OrderIntent::Cancel),
        KiteReq::Exit => Some(OrderIntent::Exit),
    }
}

struct Kite(Arc<AtomicBool>);

impl Service for Kite {
    type Request = KiteReq;
    type Response = &'static str;
    type Error = Down;
    type Policy = KitePolicy;
    async fn call(&mut self, _r: KiteReq) -> Result<&'static str, Down> {
        if self.0.load(Ordering::SeqCst) {
            Err(Down("NetworkException"))
        } else {
            Ok("ok")
        }
    }
}

/// How the breaker reads `Kite`.
pub struct KitePolicy;

impl Policy<KiteReq, &'static str, Down> for KitePolicy {
    fn order_intent(request: &KiteReq) -> Option<OrderIntent> {
        kite_intent(request)
    }
}

impl Lifecycle for Kite {
    async fn reconnect(&mut self) -> Result<Evidence, Down> {
        self.health_check().await
    }
    async fn health_check(&mut self) -> Result<Evidence, Down> {
        if self.0.load(Ordering::SeqCst) {
            Err(Down("NetworkException"))
        } else {
            Ok(Evidence::Observed)
        }
    }
}

/// With only orders flowing (refused while Halted), a HalfOpen broker breaker
/// gets no probes; `confirm_with_health_checks` closes it anyway.
async fn orders_only_recovery(confirm: bool) -> BreakerState {
    let down = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&down);
    let config = one_service("kite_api", |s| {
        s.recovery.confirm_with_health_checks = confirm
    });
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Kite(Arc::clone(&d)))
        .start()
        .await
        .unwrap();
    let kite = seawall
        .set_degradation::<Kite>("kite_api", DisableOrders)
        .unwrap();
    down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        kite.call(KiteReq::Place).await.unwrap_err();
    }
    assert_eq!(kite.handle().state(), BreakerState::Open);
    down.store(false, Ordering::SeqCst);
    for _ in 0..100 {
        let _ = kite.call(KiteReq::Place).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = kite.handle().state();
    seawall.shutdown().await;
    state
}

#[tokio::test(start_paused = true)]
async fn test_recovery_when_confirm_with_health_checks_then_closes_without_read_traffic() {
    assert_eq!(orders_only_recovery(true).await, BreakerState::Closed);
    assert_eq!(
        orders_only_recovery(false).await,
        BreakerState::HalfOpen,
        "the contrast: without confirmation, refused orders never probe"
    );
}

#[tokio::test(start_paused = true)]
async fn test_disable_orders_when_halted_then_orders_refused_with_reason_but_cancels_pass() {
    let down = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&down);
    let mut config = one_service("kite_api", |_| {});
    config.runtime.auto_recovery_enabled = false;
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Kite(Arc::clone(&d)))
        .start()
        .await
        .unwrap();
    let kite = seawall
        .set_degradation::<Kite>("kite_api", DisableOrders)
        .unwrap();
    assert!(kite.call(KiteReq::Place).await.unwrap().is_live());

    down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        kite.call(KiteReq::Quote).await.unwrap_err();
    }
    seawall
        .modes()
        .wait_for(|m| m.trading == TradingMode::Halted)
        .await
        .unwrap();
    let err = kite.call(KiteReq::Place).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CallError::Refused { .. }));
    assert!(
        text.contains("orders disabled: kite_api breaker open since"),
        "{text}"
    );
    assert!(matches!(
        kite.call(KiteReq::Exit).await.unwrap_err(),
        CallError::Refused { .. }
    ));
    // A cancel reduces risk: it is not refused by the gate (the open breaker still refuses it).
    assert!(matches!(
        kite.call(KiteReq::Cancel).await.unwrap_err(),
        CallError::Rejected { .. }
    ));
    seawall.shutdown().await;
}

// ---- market data: LastKnownPrice; AI: ConservativeHold; failover ----

struct Feed {
    down: Arc<AtomicBool>,
    price: f64,
}

impl Service for Feed {
    type Request = String;
    type Response = Quote;
    type Error = Down;
    type Policy = FeedPolicy;
    async fn call(&mut self, instrument: String) -> Result<Quote, Down> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Down("feed stalled"));
        }
        Ok(Quote {
            instrument,
            price: self.price,
            exchange_time: SystemTime::now(),
            received_at: tokio::time::Instant::now().into_std(),
        })
    }
}

/// How the breaker reads `Feed`.
pub struct FeedPolicy;

impl Policy<String, Quote, Down> for FeedPolicy {
    fn is_idempotent(_: &String) -> bool {
        true
    }
}

impl Lifecycle for Feed {}

/// A tree with `market_data` running `Feed` at `price`, down while `down` is set.
async fn feed_tree(config: Config, down: &Arc<AtomicBool>, price: f64) -> Seawall {
    let d = Arc::clone(down);
    Seawall::builder(config)
        .service("market_data", move || Feed {
            down: Arc::clone(&d),
            price,
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn test_last_known_price_when_feed_down_then_aged_fallback_until_max_staleness() {
    let down = Arc::new(AtomicBool::new(false));
    let seawall = feed_tree(one_service("market_data", |_| {}), &down, 1520.35).await;
    let book = Arc::new(PriceBook::new(Duration::from_secs(5)));
    let feed = seawall
        .set_degradation::<Feed>("market_data", LastKnownPrice::new(Arc::clone(&book)))
        .unwrap();
    assert!(feed.call("NSE:INFY".to_string()).await.unwrap().is_live());
    down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Reply::Fallback(f) = feed.call("NSE:INFY".to_string()).await.unwrap() else {
        panic!("expected a fallback")
    };
    assert_eq!(f.value.price, 1520.35);
    assert_eq!(f.age, Some(Duration::from_secs(2)));
    assert!(f.reason.contains("market_data"), "{}", f.reason);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let err = feed.call("NSE:INFY".to_string()).await.unwrap_err();
    assert!(err.to_string().contains("past max_staleness"), "{err}");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_graceful_degradation_when_disabled_then_fail_fast_with_breaker_error() {
    let down = Arc::new(AtomicBool::new(true));
    let mut config = one_service("market_data", |_| {});
    config.runtime.graceful_degradation_enabled = false;
    let seawall = feed_tree(config, &down, 10.0).await;
    let book = Arc::new(PriceBook::new(Duration::from_secs(5)));
    book.record(&Quote {
        instrument: "X".into(),
        price: 10.0,
        exchange_time: SystemTime::now(),
        received_at: tokio::time::Instant::now().into_std(),
    });
    let feed = seawall
        .set_degradation::<Feed>("market_data", LastKnownPrice::new(book))
        .unwrap();
    for _ in 0..8 {
        feed.call("X".to_string()).await.unwrap_err();
    }
    let err = feed.call("X".to_string()).await.unwrap_err();
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_failover_when_primary_down_then_alternative_answers() {
    let (seawall, down, _backup_down) = with_backup(StrategyKind::Failover, false).await;
    down.store(true, Ordering::SeqCst);
    let backup = seawall.handle::<Feed>("backup_feed").unwrap();
    let feed = seawall
        .set_degradation("market_data", Failover::to(backup))
        .unwrap();
    let Reply::Fallback(f) = feed.call("X".to_string()).await.unwrap() else {
        panic!()
    };
    assert_eq!(f.value.price, 2.0);
    assert!(f.reason.contains("backup_feed"));
    seawall.shutdown().await;
}

struct Agent;

impl Service for Agent {
    type Request = String;
    type Response = Decision;
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, _: String) -> Result<Decision, Down> {
        Err(Down("model timeout"))
    }
}

impl Lifecycle for Agent {}

#[tokio::test(start_paused = true)]
async fn test_conservative_hold_when_ai_fails_then_hold_with_zero_confidence() {
    let seawall = Seawall::builder(one_service("ai_agents", |_| {}))
        .service("ai_agents", || Agent)
        .start()
        .await
        .unwrap();
    let ai = seawall
        .set_degradation::<Agent>("ai_agents", ConservativeHold::hold())
        .unwrap();
    let Reply::Fallback(f) = ai.call("NSE:INFY".to_string()).await.unwrap() else {
        panic!()
    };
    assert_eq!(f.value, Decision::hold());
    assert_eq!(f.value.confidence, 0.0);
    seawall.shutdown().await;
}

#[test]
fn test_crossover_when_prices_rise_then_buy_and_when_short_history_then_hold() {
    let rising: Vec<f64> = (0..30).map(|i| 100.0 + i as f64).collect();
    let d = ConservativeHold::crossover(&rising);
    assert_eq!(
        (d.action, d.source),
        (Action::Buy, DecisionSource::Technical)
    );
    let falling: Vec<f64> = rising.iter().rev().copied().collect();
    assert_eq!(ConservativeHold::crossover(&falling).action, Action::Sell);
    assert_eq!(ConservativeHold::crossover(&rising[..10]), Decision::hold());
}

#[tokio::test(start_paused = true)]
async fn test_set_degradation_when_kind_differs_from_config_then_error_names_key() {
    let seawall = Seawall::builder(one_service("ai_agents", |_| {}))
        .service("ai_agents", || Agent)
        .start()
        .await
        .unwrap();
    let err = seawall
        .register_degradation_strategy::<Agent>("ai_agents", |_, _| Some(Decision::hold()))
        .err()
        .unwrap();
    assert!(matches!(err, DegradationError::KindMismatch { .. }));
    let text = err.to_string();
    assert!(
        text.contains("services.ai_agents.degradation.strategy"),
        "{text}"
    );
    assert!(text.contains("custom"), "{text}");
    seawall.shutdown().await;
}

/// The AI agent (always failing) with `strategy = "custom"`.
async fn custom_agent_tree() -> Seawall {
    Seawall::builder(one_service("ai_agents", |s| {
        s.degradation.strategy = StrategyKind::Custom;
    }))
    .service("ai_agents", || Agent)
    .start()
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn test_register_degradation_strategy_when_custom_then_closure_answers() {
    let seawall = custom_agent_tree().await;
    let ai = seawall
        .register_degradation_strategy::<Agent>("ai_agents", |_, _| {
            Some(Decision {
                action: Action::Hold,
                confidence: 0.0,
                source: DecisionSource::Ai,
            })
        })
        .unwrap();
    let reply = ai.call("X".to_string()).await.unwrap();
    assert!(!reply.is_live());
    assert_eq!(
        seawall
            .degraded::<Agent>("ai_agents")
            .unwrap()
            .call("X".into())
            .await
            .unwrap(),
        reply
    );
    seawall.shutdown().await;
}

/// A second strategy for one service would run beside the first (a second
/// journal-replay hook on every close, and `degraded` answering with the
/// second while the first's handles still hold the first): it is refused,
/// naming the service, and the first keeps answering.
#[tokio::test(start_paused = true)]
async fn test_set_degradation_when_already_attached_then_refused_and_first_keeps_answering() {
    let seawall = custom_agent_tree().await;
    let decided = |confidence| Decision {
        action: Action::Hold,
        confidence,
        source: DecisionSource::Technical,
    };
    let first = seawall
        .register_degradation_strategy::<Agent>("ai_agents", move |_, _| Some(decided(0.1)))
        .unwrap();
    let err = seawall
        .register_degradation_strategy::<Agent>("ai_agents", move |_, _| Some(decided(0.2)))
        .err()
        .expect("a second strategy for the same service was attached");
    assert!(
        matches!(&err, DegradationError::AlreadyAttached { service } if service == "ai_agents"),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("services.ai_agents"), "{text}");
    assert!(text.contains("Seawall::degraded"), "{text}");
    for handle in [first, seawall.degraded::<Agent>("ai_agents").unwrap()] {
        let Reply::Fallback(answer) = handle.call("X".into()).await.unwrap() else {
            panic!("the agent always fails: the answer must be the fallback")
        };
        assert_eq!(answer.value, decided(0.1));
    }
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_execute_with_resilience_when_function_fails_then_same_breaker_counts_and_falls_back()
{
    let seawall = Seawall::builder(one_service("kite_api", |_| {}))
        .service("kite_api", || Kite(Arc::new(AtomicBool::new(false))))
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Kite>("kite_api").unwrap();
    for _ in 0..5 {
        let reply = seawall
            .execute_with_resilience(
                "kite_api",
                || async { Err::<f64, _>(Down("legacy client failed")) },
                |_| Some(0.5),
            )
            .await
            .unwrap();
        assert!(!reply.is_live());
    }
    assert_eq!(
        kite.state(),
        BreakerState::Open,
        "the manual API shares the breaker"
    );
    // Orders are refused by the gate (trading Halted at the trip itself);
    // a request that is not an order meets the shared breaker, Open.
    let order = seawall
        .execute_with_resilience("kite_api", || async { Ok::<f64, Down>(1.0) }, |_| None)
        .await
        .unwrap_err();
    assert!(matches!(order, CallError::Refused { .. }), "{order}");
    let live = seawall
        .execute_with_resilience_for(
            "kite_api",
            None,
            || async { Ok::<f64, Down>(1.0) },
            |e| {
                assert!(matches!(e, CallError::Rejected { .. }));
                None
            },
        )
        .await
        .unwrap_err();
    assert!(live.is_refusal());
    let unknown = seawall
        .execute_with_resilience("nope", || async { Ok::<f64, Down>(1.0) }, |_| None)
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("no breaker named `nope`"));
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_ambiguous_order_when_classified_then_never_journaled_or_papered_over() {
    struct Broker;
    impl Service for Broker {
        type Request = KiteReq;
        type Response = &'static str;
        type Error = Down;
        type Policy = BrokerPolicy;
        async fn call(&mut self, _: KiteReq) -> Result<&'static str, Down> {
            Err(Down("Order request timed out"))
        }
    }

    /// How the breaker reads `Broker`.
    pub struct BrokerPolicy;

    impl Policy<KiteReq, &'static str, Down> for BrokerPolicy {
        fn classify(_: &Down) -> Outcome {
            Outcome::Failure(FailureKind::Ambiguous)
        }
    }

    impl Lifecycle for Broker {}
    let seawall = Seawall::builder(one_service("kite_api", |_| {}))
        .service("kite_api", || Broker)
        .start()
        .await
        .unwrap();
    let kite = seawall
        .set_degradation::<Broker>("kite_api", DisableOrders)
        .unwrap();
    let err = kite.call(KiteReq::Place).await.unwrap_err();
    assert!(matches!(err, CallError::Unknown { .. }), "{err}");
    seawall.shutdown().await;
}

// ---- the LastKnownPrice property ----

#[derive(Debug, Clone)]
enum PriceOp {
    Tick { price: f64, epoch: bool },
    Advance(u64),
    Read,
}

fn price_op() -> impl Strategy<Value = PriceOp> {
    prop_oneof![
        3 => (prop_oneof![-100.0..0.0f64, Just(0.0), Just(f64::NAN), 0.01..10_000.0f64], any::<bool>())
            .prop_map(|(price, epoch)| PriceOp::Tick { price, epoch: epoch && price > 0.0 }),
        2 => (0u64..8_000).prop_map(PriceOp::Advance),
        4 => Just(PriceOp::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn test_last_known_price_when_random_ticks_then_never_stale_or_non_positive(
        max_ms in 1u64..5_000,
        ops in proptest::collection::vec(price_op(), 1..200),
    ) {
        let max = Duration::from_millis(max_ms);
        let book = PriceBook::new(max);
        let t0 = Instant::now();
        let mut now = t0;
        let mut last_good: Option<(f64, Instant)> = None;
        for op in ops {
            match op {
                PriceOp::Tick { price, epoch } => {
                    let exchange_time = if epoch { SystemTime::UNIX_EPOCH } else { SystemTime::now() };
                    let stored = book.record(&Quote { instrument: "I".into(), price, exchange_time, received_at: now });
                    let real = price.is_finite() && price > 0.0 && !epoch;
                    prop_assert_eq!(stored, real);
                    if real {
                        last_good = Some((price, now));
                    }
                }
                PriceOp::Advance(ms) => now += Duration::from_millis(ms),
                PriceOp::Read => match book.last_known("I", now) {
                    Ok((quote, age)) => {
                        prop_assert!(quote.price > 0.0, "price {}", quote.price);
                        prop_assert!(age <= max, "age {:?} past {:?}", age, max);
                        prop_assert!(quote.exchange_time > SystemTime::UNIX_EPOCH);
                        prop_assert_eq!(Some((quote.price, quote.received_at)), last_good);
                    }
                    Err(_) => prop_assert!(last_good.is_none_or(|(_, at)| now - at > max)),
                },
            }
        }
    }
}

async fn with_backup(
    strategy: StrategyKind,
    backup_down: bool,
) -> (Seawall, Arc<AtomicBool>, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    let backup = Arc::new(AtomicBool::new(backup_down));
    let mut config = one_service("market_data", |s| {
        s.degradation.strategy = strategy;
        s.degradation.failover_to = Some("backup_feed".into());
    });
    config
        .services
        .insert("backup_feed".into(), ServiceConfig::default());
    let (d, b) = (Arc::clone(&down), Arc::clone(&backup));
    let seawall = Seawall::builder(config)
        .service("market_data", move || Feed {
            down: Arc::clone(&d),
            price: 1.0,
        })
        .service("backup_feed", move || Feed {
            down: Arc::clone(&b),
            price: 2.0,
        })
        .start()
        .await
        .unwrap();
    (seawall, down, backup)
}

#[tokio::test(start_paused = true)]
async fn test_failover_when_forced_open_with_only_failover_to_in_config_then_alternative_answers() {
    let (seawall, _, _) = with_backup(StrategyKind::Failover, false).await;
    seawall
        .breaker("market_data")
        .unwrap()
        .force_open("test: primary feed out");
    // No strategy registered in code: the config key alone does it.
    let feed = seawall.degraded::<Feed>("market_data").unwrap();
    let Reply::Fallback(f) = feed.call("X".to_string()).await.unwrap() else {
        panic!("the alternative source must answer")
    };
    assert_eq!(f.value.price, 2.0);
    assert_eq!(f.strategy, StrategyKind::Failover);
    assert!(f.reason.contains("backup_feed"), "{}", f.reason);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_failover_when_combined_with_last_known_price_then_alternative_then_last_good_then_nothing(
) {
    let (seawall, primary_down, backup_down) =
        with_backup(StrategyKind::LastKnownPrice, false).await;
    let book = Arc::new(PriceBook::new(Duration::from_secs(5)));
    let feed = seawall
        .set_degradation::<Feed>("market_data", LastKnownPrice::new(Arc::clone(&book)))
        .unwrap();
    assert!(feed.call("X".to_string()).await.unwrap().is_live());
    primary_down.store(true, Ordering::SeqCst);
    // 1. The alternative source.
    let Reply::Fallback(f) = feed.call("X".to_string()).await.unwrap() else {
        panic!()
    };
    assert_eq!((f.value.price, f.strategy), (2.0, StrategyKind::Failover));
    // 2. The last good price (the backup's, just seen), with its age.
    backup_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let Reply::Fallback(f) = feed.call("X".to_string()).await.unwrap() else {
        panic!()
    };
    assert_eq!(f.strategy, StrategyKind::LastKnownPrice);
    assert_eq!(f.value.price, 2.0);
    assert!(f.age.unwrap() >= Duration::from_secs(1));
    // 3. Nothing, once the last good price is too old.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let err = feed.call("X".to_string()).await.unwrap_err();
    assert!(matches!(err, CallError::Refused { .. }), "{err}");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_failover_when_target_has_another_type_then_error_names_the_key() {
    let mut config = one_service("market_data", |s| {
        s.degradation.failover_to = Some("ai_agents".into());
    });
    config
        .services
        .insert("ai_agents".into(), ServiceConfig::default());
    let seawall = Seawall::builder(config)
        .service("market_data", || Feed {
            down: Arc::default(),
            price: 1.0,
        })
        .service("ai_agents", || Agent)
        .start()
        .await
        .unwrap();
    let Err(err) = seawall.degraded::<Feed>("market_data") else {
        panic!("a failover target of another type must be an error")
    };
    let err = err.to_string();
    assert!(
        err.contains("services.market_data.degradation.failover_to"),
        "{err}"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_cached_reads_when_broker_down_then_reads_answered_with_age_until_stale_and_orders_never(
) {
    let down = Arc::new(AtomicBool::new(false));
    let config = one_service("kite_api", |s| {
        s.degradation.max_staleness = Duration::from_secs(30);
        s.rate_limit = None;
    });
    let d = Arc::clone(&down);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Kite(Arc::clone(&d)))
        .start()
        .await
        .unwrap();
    let kite = seawall
        .set_degradation::<Kite>(
            "kite_api",
            DisableOrders::with_cached_reads(Duration::from_secs(30), 16, |r: &KiteReq| {
                matches!(r, KiteReq::Quote).then(|| "quote".to_string())
            }),
        )
        .unwrap();
    assert!(kite.call(KiteReq::Quote).await.unwrap().is_live());
    down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let Reply::Fallback(f) = kite.call(KiteReq::Quote).await.unwrap() else {
        panic!("a cached read")
    };
    assert_eq!(f.value, "ok");
    assert!(f.age.unwrap() >= Duration::from_secs(10));
    assert_eq!(f.strategy, StrategyKind::DisableOrders);
    let err = kite.call(KiteReq::Place).await.unwrap_err();
    assert!(
        !matches!(err, CallError::Refused { ref reason, .. } if reason.contains("cached")),
        "an order is never answered from a cache: {err}"
    );
    tokio::time::sleep(Duration::from_secs(25)).await;
    let err = kite.call(KiteReq::Quote).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Refused { reason, .. } if reason.contains("past max_staleness")),
        "{err}"
    );
    seawall.shutdown().await;
}

#[test]
fn test_shipped_config_when_ai_out_then_technical_only_with_history_and_hold_without() {
    let config = Config::seed_defaults();
    let ai = &config.services["ai_agents"].degradation;
    assert!(
        ai.technical_only,
        "the seed's technical-indicator fallback ships"
    );
    assert_eq!(
        ai.effects().decision,
        Some(seawall::modes::DecisionMode::TechnicalOnly)
    );
    assert_eq!(ConservativeHold::crossover(&[]), Decision::hold());
    let rising: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i)).collect();
    assert_eq!(
        ConservativeHold::crossover(&rising).source,
        DecisionSource::Technical
    );
}

// ---- typed keys: one name, one type, checked at start ----

const AI_AGENTS: ServiceKey<Agent> = ServiceKey::new("ai_agents");

#[tokio::test(start_paused = true)]
async fn test_register_when_keyed_then_handle_and_builder_degradation_found_by_the_same_key() {
    let seawall = Seawall::builder(one_service("ai_agents", |_| {}))
        .register(AI_AGENTS, || Agent)
        .degradation(AI_AGENTS, ConservativeHold::hold())
        .start()
        .await
        .unwrap();
    let handle = seawall.handle_of(AI_AGENTS).unwrap();
    assert_eq!(handle.name(), "ai_agents");
    // The builder's degradation is the one the degraded handle answers with.
    let ai = seawall.degraded_of(AI_AGENTS).unwrap();
    let Reply::Fallback(f) = ai.call("NSE:INFY".to_string()).await.unwrap() else {
        panic!("the agent is down: the attached HOLD answers")
    };
    assert_eq!(f.value, Decision::hold());
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_start_when_builder_degradation_kind_differs_from_config_then_start_error_names_key() {
    let err = Seawall::builder(one_service("ai_agents", |c| {
        c.degradation.strategy = StrategyKind::LastKnownPrice;
    }))
    .register(AI_AGENTS, || Agent)
    .degradation(AI_AGENTS, ConservativeHold::hold())
    .start()
    .await
    .err()
    .expect("a mismatched strategy is a start error");
    assert!(
        matches!(
            err,
            seawall::StartError::Degradation(DegradationError::KindMismatch { .. })
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("services.ai_agents.degradation.strategy"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn test_start_when_key_type_differs_from_registered_type_then_start_error_names_both() {
    const WRONG: ServiceKey<Feed> = ServiceKey::new("ai_agents");
    let err = Seawall::builder(one_service("ai_agents", |c| {
        c.degradation.strategy = StrategyKind::Custom;
    }))
    .register(AI_AGENTS, || Agent)
    .degradation(
        WRONG,
        seawall::degradation::CustomFallback::<Feed>::new(|_, _| None),
    )
    .start()
    .await
    .err()
    .expect("a key of another type is a start error");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            seawall::StartError::Degradation(DegradationError::Handle(
                HandleError::WrongType { .. }
            ))
        ),
        "{text}"
    );
    assert!(
        text.contains("ai_agents") && text.contains("Agent"),
        "{text}"
    );
}

/// The engine loop a careless user writes: read the price again at once,
/// awaiting nothing else, until a live one comes back. While the breaker is
/// Open each read is answered from the price book without reaching the
/// feed, so nothing in the loop waits. Every such answer is a cooperative
/// yield point, so the breaker actor's timer and the recovery actor still
/// run on a current-thread runtime, and the loop gets its live price once
/// the feed is back. The shipped `market_data` table, auto-recovery on,
/// with a short `open_timeout`.
#[test]
fn test_last_known_price_when_engine_rereads_without_awaiting_then_live_price_returns_after_outage()
{
    let (price, aged, refused_reads) = support::on_own_current_thread(
        Duration::from_secs(20),
        "no live price came back: the re-read loop starved its runtime",
        || async {
            let down = Arc::new(AtomicBool::new(false));
            let config = one_service("market_data", |s| {
                s.open_timeout = Duration::from_millis(100);
            });
            assert!(config.runtime.auto_recovery_enabled);
            let seawall = feed_tree(config, &down, 1520.35).await;
            let book = Arc::new(PriceBook::new(Duration::from_secs(5)));
            let feed = seawall
                .set_degradation::<Feed>("market_data", LastKnownPrice::new(book))
                .unwrap();
            assert!(feed.call("NSE:INFY".to_string()).await.unwrap().is_live());
            down.store(true, Ordering::SeqCst);
            let (mut aged, mut refused_reads) = (0u64, 0u64);
            let live = loop {
                match feed.call("NSE:INFY".to_string()).await {
                    Ok(Reply::Live(quote)) => break quote,
                    Ok(Reply::Fallback(_)) => aged += 1,
                    Err(_) => refused_reads += 1,
                }
                // The feed comes back once the breaker has opened; the
                // breaker still has to find out.
                if feed.handle().state() == BreakerState::Open {
                    down.store(false, Ordering::SeqCst);
                }
            };
            seawall.shutdown().await;
            (live.price, aged, refused_reads)
        },
    );
    assert_eq!(price, 1520.35);
    assert!(aged >= 8, "the outage was answered from the book: {aged}");
    assert_eq!(refused_reads, 0, "the price never went stale in the outage");
}
