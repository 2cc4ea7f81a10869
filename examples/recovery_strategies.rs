//! Custom recovery strategies for two services.
//!
//! * `kite_api`: a broker whose access token expires. Its strategy logs in
//!   again (refreshes the token) before reconnecting, as a Kite Connect
//!   client must after the 6 AM token expiry.
//! * `market_data`: a tick feed whose strategy reconnects and then sends
//!   every subscription again, as Kite's ticker requires after a reconnect.
//!
//! Both dependencies go down, the breakers open, the recovery actor runs
//! the strategies on their backoff, and the breakers close again.
//!
//! ```text
//! cargo run --example recovery_strategies
//! ```

use seawall::config::Config;
use seawall::recovery::{RecoveryContext, RecoveryError, RecoveryStrategy};
use seawall::{
    DefaultPolicy, Event, Evidence, FailureKind, Lifecycle, Outcome, Policy, Seawall, Service,
    ServiceKey,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the simulated outside world looks like.
#[derive(Default)]
struct World {
    broker_up: AtomicBool,
    feed_up: AtomicBool,
    /// The token the broker currently accepts.
    valid_token: AtomicU32,
    /// The token the engine holds (shared by every broker connection).
    session_token: AtomicU32,
    subscribed: Mutex<Vec<&'static str>>,
}

#[derive(Debug, thiserror::Error)]
enum KiteError {
    #[error("NetworkException: broker unreachable")]
    Network,
    #[error("TokenException: access token expired")]
    Token,
}

struct Kite {
    world: Arc<World>,
}

impl Service for Kite {
    type Request = &'static str;
    type Response = f64;
    type Error = KiteError;
    type Policy = KitePolicy;

    async fn call(&mut self, _symbol: &'static str) -> Result<f64, KiteError> {
        if !self.world.broker_up.load(Ordering::SeqCst) {
            return Err(KiteError::Network);
        }
        if self.world.session_token.load(Ordering::SeqCst)
            != self.world.valid_token.load(Ordering::SeqCst)
        {
            return Err(KiteError::Token);
        }
        Ok(1520.35)
    }
}

/// How the breaker reads `Kite`.
pub struct KitePolicy;

impl Policy<&'static str, f64, KiteError> for KitePolicy {
    fn classify(error: &KiteError) -> Outcome {
        match error {
            KiteError::Network => Outcome::Failure(FailureKind::Connection),
            // Trading rule 5: an expired token is not an outage. It must not
            // trip the breaker or be retried; it needs a login.
            KiteError::Token => Outcome::Ignored,
        }
    }

    fn is_idempotent(_quote: &&'static str) -> bool {
        true
    }
}

impl Lifecycle for Kite {
    async fn reconnect(&mut self) -> Result<Evidence, KiteError> {
        if self.world.broker_up.load(Ordering::SeqCst) {
            Ok(Evidence::Observed)
        } else {
            Err(KiteError::Network)
        }
    }
}

/// Kite re-login: fetch a fresh access token, then reconnect every connection.
struct KiteRelogin {
    world: Arc<World>,
}

impl RecoveryStrategy<Kite> for KiteRelogin {
    async fn recover(&self, ctx: &RecoveryContext<Kite>) -> Result<Evidence, RecoveryError> {
        if !self.world.broker_up.load(Ordering::SeqCst) {
            return Err("login endpoint unreachable".into());
        }
        let fresh = self.world.valid_token.load(Ordering::SeqCst);
        self.world.session_token.store(fresh, Ordering::SeqCst);
        println!(
            "  [kite_api] attempt {}: logged in again, token {fresh}",
            ctx.attempt()
        );
        ctx.reconnect_all().await
    }
}

#[derive(Debug, thiserror::Error)]
#[error("feed stalled")]
struct FeedError;

struct Feed {
    world: Arc<World>,
}

impl Service for Feed {
    type Request = &'static str;
    type Response = f64;
    type Error = FeedError;
    type Policy = DefaultPolicy;

    async fn call(&mut self, symbol: &'static str) -> Result<f64, FeedError> {
        let subscribed = self.world.subscribed.lock().unwrap().contains(&symbol);
        if self.world.feed_up.load(Ordering::SeqCst) && subscribed {
            Ok(1520.40)
        } else {
            Err(FeedError)
        }
    }
}

impl Lifecycle for Feed {
    async fn reconnect(&mut self) -> Result<Evidence, FeedError> {
        if self.world.feed_up.load(Ordering::SeqCst) {
            // A new socket starts with no subscriptions.
            self.world.subscribed.lock().unwrap().clear();
            Ok(Evidence::Observed)
        } else {
            Err(FeedError)
        }
    }
}

/// Market-data resubscribe: reconnect, then send every subscription again.
struct Resubscribe {
    world: Arc<World>,
    symbols: Vec<&'static str>,
}

impl RecoveryStrategy<Feed> for Resubscribe {
    async fn recover(&self, ctx: &RecoveryContext<Feed>) -> Result<Evidence, RecoveryError> {
        let evidence = ctx.reconnect_all().await?;
        self.world
            .subscribed
            .lock()
            .unwrap()
            .extend(self.symbols.iter().copied());
        println!(
            "  [market_data] attempt {}: reconnected and resubscribed {:?}",
            ctx.attempt(),
            self.symbols
        );
        Ok(evidence)
    }
}

/// Each service's name in `actors.toml` with the type that serves it.
const KITE: ServiceKey<Kite> = ServiceKey::new("kite_api");
const MARKET_DATA: ServiceKey<Feed> = ServiceKey::new("market_data");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::seed_defaults();
    config
        .services
        .retain(|name, _| name == KITE.name() || name == MARKET_DATA.name());
    for service in config.services.values_mut() {
        service.failure_threshold = 3;
        service.success_threshold = 2;
        service.recovery.initial_delay = Duration::from_millis(200);
        service.recovery.max_delay = Duration::from_secs(1);
    }

    let world = Arc::new(World::default());
    world.broker_up.store(true, Ordering::SeqCst);
    world.feed_up.store(true, Ordering::SeqCst);
    world.subscribed.lock().unwrap().push("NSE:INFY");

    let (w1, w2) = (Arc::clone(&world), Arc::clone(&world));
    let seawall = Seawall::builder(config)
        .register_with_recovery(
            KITE,
            move || Kite {
                world: Arc::clone(&w1),
            },
            KiteRelogin {
                world: Arc::clone(&world),
            },
        )
        .register_with_recovery(
            MARKET_DATA,
            move || Feed {
                world: Arc::clone(&w2),
            },
            Resubscribe {
                world: Arc::clone(&world),
                symbols: vec!["NSE:INFY"],
            },
        )
        .start()
        .await?;
    let mut events = seawall.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::Transition {
                    service,
                    transition,
                } => println!(
                    "  [{service}] {} -> {}: {}",
                    transition.from, transition.to, transition.reason
                ),
                Event::RecoveryAttempted {
                    service,
                    attempt,
                    error: Some(error),
                } => {
                    println!("  [{service}] recovery attempt {attempt} failed: {error}")
                }
                _ => {}
            }
        }
    });
    let kite = seawall.handle_of(KITE)?;
    let feed = seawall.handle_of(MARKET_DATA)?;

    for tick in 0..30 {
        match tick {
            3 => {
                println!("the broker rotates its token and drops connections; the feed stalls");
                world.valid_token.fetch_add(1, Ordering::SeqCst);
                world.broker_up.store(false, Ordering::SeqCst);
                world.feed_up.store(false, Ordering::SeqCst);
            }
            12 => {
                println!("both come back");
                world.broker_up.store(true, Ordering::SeqCst);
                world.feed_up.store(true, Ordering::SeqCst);
            }
            _ => {}
        }
        let quote = kite.call_with_retry("NSE:INFY").await;
        let tick_price = feed.call("NSE:INFY").await;
        println!(
            "tick {tick:>2}: kite {:<8} feed {:<8}",
            quote.map_or_else(|_| "-".to_string(), |p| p.to_string()),
            tick_price.map_or_else(|_| "-".to_string(), |p| p.to_string()),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "kite_api: {:?}, {:?}\nmarket_data: {:?}, {:?}",
        kite.state(),
        kite.supervision(),
        feed.state(),
        feed.supervision()
    );
    seawall.shutdown().await;
    Ok(())
}
