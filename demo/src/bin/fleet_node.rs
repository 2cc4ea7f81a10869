//! One engine of a fleet, for the multi-process fleet test and bench.
//!
//! `fleet_node CONFIG BROKER_URL` starts seawall from CONFIG (which has a
//! `[fleet]` table and a `kite_api` service), points `kite_api` at the
//! broker, and sends orders from 8 tasks as fast as the breaker and the
//! node's share of the rate budget allow. It prints one JSON line per fact
//! on stdout (the HTTP address, every breaker transition with its wall
//! time) and logs to stderr. The cookie comes from `SEAWALL_FLEET_COOKIE`.

use seawall::{CallError, Evidence, Lifecycle, Policy, Seawall, Service};
use std::time::{Duration, SystemTime};

/// Places orders with the loopback broker, naming this node in a header.
struct Broker {
    client: reqwest::Client,
    base: String,
    node: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BrokerError(String);

/// Kite's classes: every request here is an order.
struct OrderPolicy;

impl Policy<u64, (), BrokerError> for OrderPolicy {
    fn request_class(_: &u64) -> &'static str {
        "orders"
    }
}

impl Broker {
    async fn post(&self, path: &str, id: u64) -> Result<(), BrokerError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-node", &self.node)
            .header("x-request-id", id.to_string())
            .send()
            .await
            .map_err(|e| BrokerError(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(BrokerError(format!(
                "broker answered {}",
                response.status()
            )))
        }
    }
}

impl Service for Broker {
    type Request = u64;
    type Response = ();
    type Error = BrokerError;
    type Policy = OrderPolicy;
    async fn call(&mut self, id: u64) -> Result<(), BrokerError> {
        self.post("/orders", id).await
    }
}

impl Lifecycle for Broker {
    async fn health_check(&mut self) -> Result<Evidence, BrokerError> {
        self.post("/health", 0).await.map(|()| Evidence::Observed)
    }
    async fn reconnect(&mut self) -> Result<Evidence, BrokerError> {
        self.health_check().await
    }
}

/// Sends orders from 8 tasks as fast as the breaker and the share allow.
fn send_orders(handle: &seawall::ServiceHandle<Broker>) {
    for worker in 0..8u64 {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut id = worker << 40;
            loop {
                id += 1;
                // A refusal is immediate: wait before the next try, or these
                // loops would spin and starve the runtime.
                match handle.call(id).await {
                    Ok(()) => {}
                    Err(CallError::RateLimited { retry_in, .. }) => {
                        tokio::time::sleep(
                            retry_in.clamp(Duration::from_millis(1), Duration::from_millis(100)),
                        )
                        .await;
                    }
                    Err(e) => {
                        if id & 0xff == 1 {
                            say(serde_json::json!({ "error": e.to_string() }));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
}

fn say(value: serde_json::Value) {
    println!("{value}");
}

fn wall_ms() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Logs go to stderr: stdout carries the JSON facts the fleet test reads.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Starts the tree with `kite_api` pointed at `broker`; exits on a bad
/// config (2) or a failed start (1), with the error on stderr.
async fn start(path: &str, broker: String) -> Seawall {
    let config = match seawall::config::Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let node = config
        .fleet
        .as_ref()
        .map_or("alone".into(), |f| f.node.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let make = move || Broker {
        client: client.clone(),
        base: broker.clone(),
        node: node.clone(),
    };
    match Seawall::builder(config)
        .service("kite_api", make)
        .start()
        .await
    {
        Ok(seawall) => seawall,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// Prints every breaker transition with its wall time, for the fleet
/// test to order the nodes' trips.
fn print_transitions(seawall: &Seawall) {
    let mut events = seawall.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let seawall::Event::Transition {
                service,
                transition,
            } = event
            {
                say(serde_json::json!({ "transition": {
                    "service": &*service,
                    "from": transition.from.as_str(),
                    "to": transition.to.as_str(),
                    "reason": transition.reason.to_string(),
                    "at_ms": wall_ms(),
                }}));
            }
        }
    });
}

/// Orders start at once, or with FLEET_NODE_IDLE=1 on the first SIGUSR1
/// (the fleet bench measures the fleet's own traffic first, then trips one
/// node for the hint).
fn start_orders(handle: seawall::ServiceHandle<Broker>) {
    if std::env::var_os("FLEET_NODE_IDLE").is_none() {
        send_orders(&handle);
        return;
    }
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("SIGUSR1");
    tokio::spawn(async move {
        if usr1.recv().await.is_some() {
            send_orders(&handle);
        }
    });
}

#[tokio::main]
async fn main() {
    init_logging();
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(broker)) = (args.next(), args.next()) else {
        eprintln!("usage: fleet_node CONFIG BROKER_URL");
        std::process::exit(2);
    };
    let seawall = start(&path, broker).await;
    if let Some(addr) = seawall.http_addr() {
        say(serde_json::json!({ "http": addr.to_string() }));
    }
    print_transitions(&seawall);
    let handle = seawall
        .handle::<Broker>("kite_api")
        .expect("kite_api is registered above");
    start_orders(handle);
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    seawall.shutdown().await;
}
