//! A flaky broker behind a breaker, in about a dozen seconds of real time.
//!
//! The broker fails for a while; the breaker opens after 5 failures and
//! refuses calls at once; the recovery actor tries to reconnect on its
//! backoff, moves the breaker to HalfOpen when that works, and 3 successful
//! probes close it.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use seawall::config::Config;
use seawall::{
    CallError, Event, Evidence, FailureKind, Lifecycle, Outcome, Policy, Seawall, Service,
    ServiceKey,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The broker's name in `actors.toml` and the type that serves it, said once.
const KITE: ServiceKey<Broker> = ServiceKey::new("kite_api");

/// A broker quote endpoint that is down while `down` is set.
struct Broker {
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
enum BrokerError {
    #[error("NetworkException: gateway unreachable")]
    Network,
}

impl Service for Broker {
    type Request = &'static str;
    type Response = f64;
    type Error = BrokerError;
    type Policy = BrokerPolicy;

    async fn call(&mut self, symbol: &'static str) -> Result<f64, BrokerError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.down.load(Ordering::Relaxed) {
            return Err(BrokerError::Network);
        }
        Ok(if symbol == "NSE:INFY" { 1520.35 } else { 100.0 })
    }
}

/// How the breaker reads `Broker`.
pub struct BrokerPolicy;

impl Policy<&'static str, f64, BrokerError> for BrokerPolicy {
    fn classify(_: &BrokerError) -> Outcome {
        Outcome::Failure(FailureKind::Connection)
    }
}

impl Lifecycle for Broker {
    /// The recovery actor calls this on its backoff while the breaker is
    /// open. It reaches the dependency, so its `Ok` is evidence: the breaker
    /// moves to HalfOpen early. Without it, the breaker would wait out
    /// `open_timeout`.
    async fn reconnect(&mut self) -> Result<Evidence, BrokerError> {
        if self.down.load(Ordering::Relaxed) {
            Err(BrokerError::Network)
        } else {
            Ok(Evidence::Observed)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == KITE.name());
    let kite_config = config.services.get_mut(KITE.name()).expect("shipped");
    kite_config.open_timeout = Duration::from_secs(2);

    let down = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&down);
    let seawall = Seawall::builder(config)
        .register(KITE, move || Broker {
            down: Arc::clone(&flag),
        })
        .start()
        .await?;
    let mut events = seawall.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Event::Transition {
                service,
                transition,
            } = event
            {
                println!(
                    "  [{service}] {} -> {}: {}",
                    transition.from, transition.to, transition.reason
                );
            }
        }
    });

    let kite = seawall.handle_of(KITE)?;
    for tick in 0..40 {
        if tick == 20 {
            println!("broker is back");
            down.store(false, Ordering::Relaxed);
        }
        match kite.call("NSE:INFY").await {
            Ok(price) => println!("tick {tick:>2}: INFY {price}"),
            Err(e @ CallError::Rejected { .. }) => {
                println!("tick {tick:>2}: refused at once ({e})")
            }
            Err(e) => println!("tick {tick:>2}: failed ({e})"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seawall.shutdown().await;
    Ok(())
}
