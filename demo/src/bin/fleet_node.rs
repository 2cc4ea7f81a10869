//! One engine of a fleet, for the multi-process fleet test and bench.
//!
//! `fleet_node CONFIG BROKER_URL` starts seawall from CONFIG (which has a
//! `[fleet]` table and a `kite_api` service), points `kite_api` at the
//! broker, and sends orders from 8 tasks as fast as the breaker and the
//! node's share of the rate budget allow. It prints one JSON line per fact
//! on stdout (the HTTP address, every breaker transition with its wall
//! time) and logs to stderr. The cookie comes from `SEAWALL_FLEET_COOKIE`.
//!
//! With `FLEET_TLS_DIR` set, the fleet's links are mutual TLS: the
//! directory holds `ca.pem` (the fleet's CA), `node.pem` and `node.key`
//! (this node's certificate, issued by that CA for `seawall-fleet`). Every
//! node both proves itself with its certificate and checks the peer's, so
//! a process without one from the fleet's CA cannot join.

use seawall::{CallError, Evidence, Lifecycle, Policy, Seawall, Service, ServiceKey};

/// The broker: the `kite_api` table of the node's config, served by `Broker`.
const KITE: ServiceKey<Broker> = ServiceKey::new("kite_api");
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

/// The server name every fleet certificate carries.
const FLEET_SERVER_NAME: &str = "seawall-fleet";

/// Mutual TLS for the fleet's links from the PEM files in `dir`.
fn fleet_tls(dir: &std::path::Path) -> Result<seawall::fleet::FleetTls, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{self, crypto::aws_lc_rs, server::WebPkiClientVerifier};
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    let file = |name: &str| dir.join(name);
    let certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        CertificateDer::pem_file_iter(file(name))
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("{}: {e}", file(name).display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs("ca.pem")? {
        roots.add(ca).map_err(|e| format!("ca.pem: {e}"))?;
    }
    let roots = std::sync::Arc::new(roots);
    let chain = certs("node.pem")?;
    let key = PrivateKeyDer::from_pem_file(file("node.key"))
        .map_err(|e| format!("{}: {e}", file("node.key").display()))?;
    let provider = std::sync::Arc::new(aws_lc_rs::default_provider());
    let peers = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(peers)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| format!("node.pem/node.key: {e}"))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("node.pem/node.key: {e}"))?;
    Ok(seawall::fleet::FleetTls {
        acceptor: TlsAcceptor::from(std::sync::Arc::new(server)),
        connector: TlsConnector::from(std::sync::Arc::new(client)),
        server_name: ServerName::try_from(FLEET_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .to_owned(),
    })
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
    let mut builder = Seawall::builder(config).register(KITE, make);
    if let Some(dir) = std::env::var_os("FLEET_TLS_DIR") {
        match fleet_tls(std::path::Path::new(&dir)) {
            Ok(tls) => builder = builder.fleet_tls(tls),
            Err(e) => {
                eprintln!("FLEET_TLS_DIR: {e}");
                std::process::exit(2);
            }
        }
    }
    match builder.start().await {
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
        .handle_of(KITE)
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
