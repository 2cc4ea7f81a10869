//! The fleet test's and bench's shared parts: a broker that keeps its own
//! ledger, node configs from the shipped `actors.toml`, node processes.
#![allow(dead_code)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "fleet-test-cookie-0123456789";

#[derive(Default)]
pub struct Broker {
    /// Nodes whose requests fail (the outage one node sees).
    pub down: Mutex<HashSet<String>>,
    /// Every order that reached the broker: node, arrival.
    pub ledger: Mutex<Vec<(String, Instant)>>,
}

async fn order(State(b): State<Arc<Broker>>, headers: HeaderMap) -> StatusCode {
    let node = headers
        .get("x-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let down = b.down.lock().unwrap().contains(&node);
    b.ledger.lock().unwrap().push((node, Instant::now()));
    if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn health(State(b): State<Arc<Broker>>, headers: HeaderMap) -> StatusCode {
    let node = headers.get("x-node").and_then(|v| v.to_str().ok());
    if node.is_some_and(|n| b.down.lock().unwrap().contains(n)) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped file's `[runtime]` and `kite_api`, shared, plus `[fleet]`.
pub fn node_config(dir: &Path, node: &str, port: u16, seeds: &[u16]) -> PathBuf {
    node_config_sized(dir, node, port, seeds, 3)
}

/// [`node_config`] for a fleet of `expected` nodes.
pub fn node_config_sized(
    dir: &Path,
    node: &str,
    port: u16,
    seeds: &[u16],
    expected: i64,
) -> PathBuf {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors.toml");
    let shipped: toml::Table = toml::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
    let mut runtime = shipped["runtime"].as_table().unwrap().clone();
    runtime.insert(
        "http".into(),
        toml::Value::Table(toml::toml! { listen = "127.0.0.1:0" }),
    );
    let mut kite = shipped["services"]["kite_api"].as_table().unwrap().clone();
    kite.insert("shared".into(), "kite:TEST".into());
    let seeds: Vec<toml::Value> = seeds
        .iter()
        .map(|p| format!("127.0.0.1:{p}").into())
        .collect();
    let mut fleet = toml::Table::new();
    fleet.insert("node".into(), node.into());
    fleet.insert("listen".into(), format!("127.0.0.1:{port}").into());
    fleet.insert("seeds".into(), toml::Value::Array(seeds));
    fleet.insert("heartbeat".into(), "100ms".into());
    fleet.insert("unreachable_after".into(), "1s".into());
    fleet.insert("expected_nodes".into(), expected.into());
    let mut services = toml::Table::new();
    services.insert("kite_api".into(), toml::Value::Table(kite));
    let mut doc = toml::Table::new();
    doc.insert("runtime".into(), toml::Value::Table(runtime));
    doc.insert("services".into(), toml::Value::Table(services));
    doc.insert("fleet".into(), toml::Value::Table(fleet));
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

/// One node process and what it printed.
pub struct Node {
    pub name: String,
    pub child: Child,
    pub http: String,
    pub transitions: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Node {
    pub fn start(config: &Path, broker: &str, name: &str, cookie: &str) -> Node {
        Self::spawn(config, broker, name, cookie, false, None)
    }

    /// A node whose fleet links are mutual TLS with the PEM files in
    /// `tls` (`ca.pem`, `node.pem`, `node.key`; see `fleet_node`).
    pub fn start_tls(config: &Path, broker: &str, name: &str, tls: &Path) -> Node {
        Self::spawn(config, broker, name, COOKIE, false, Some(tls))
    }

    /// A node that sends no orders and logs nothing (the fleet bench).
    pub fn start_idle(config: &Path, broker: &str, name: &str) -> Node {
        Self::spawn(config, broker, name, COOKIE, true, None)
    }

    fn spawn(
        config: &Path,
        broker: &str,
        name: &str,
        cookie: &str,
        idle: bool,
        tls: Option<&Path>,
    ) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fleet_node"));
        if let Some(dir) = tls {
            command.env("FLEET_TLS_DIR", dir);
        }
        command
            .arg(config)
            .arg(broker)
            .env("SEAWALL_FLEET_COOKIE", cookie)
            .env("RUST_LOG", if idle { "error" } else { "warn,seawall=info" })
            .stdout(Stdio::piped())
            .stderr(if idle {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        if idle {
            command.env("FLEET_NODE_IDLE", "1");
        }
        let mut child = command.spawn().expect("fleet_node runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().expect("the node prints its address").unwrap())
                .unwrap();
        let http = format!("http://{}", first["http"].as_str().unwrap());
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&transitions);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v.get("error").is_some() {
                        eprintln!("{v}");
                    }
                    if let Some(t) = v.get("transition") {
                        sink.lock().unwrap().push(t.clone());
                    }
                }
            }
        });
        Node {
            name: name.to_string(),
            child,
            http,
            transitions,
        }
    }

    /// Resident memory in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn fleet(&self) -> serde_json::Value {
        ureq::get(&format!("{}/api/v1/fleet/health", self.http))
            .call()
            .map(|mut r| r.body_mut().read_json().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }

    pub fn opened_at(&self, reason_has: &str) -> Option<(u128, String)> {
        self.transitions
            .lock()
            .unwrap()
            .iter()
            .find(|t| t["to"] == "open" && t["reason"].as_str().unwrap().contains(reason_has))
            .map(|t| {
                (
                    t["at_ms"].as_u64().unwrap() as u128,
                    t["reason"].as_str().unwrap().to_string(),
                )
            })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves a broker on loopback from `rt`; returns it and its URL.
pub fn start_broker(rt: &tokio::runtime::Runtime) -> (Arc<Broker>, String) {
    let broker = Arc::new(Broker::default());
    let addr: SocketAddr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/orders", post(order))
            .route("/health", post(health))
            .with_state(Arc::clone(&broker));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    (broker, format!("http://{addr}"))
}

/// Polls until `check` holds, or fails after `within` naming `what`.
pub fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("not within {within:?}: {what}");
}

/// The node's view: who is live, and the share it holds.
pub fn sees(view: &serde_json::Value) -> (Vec<String>, Option<u64>) {
    let live = view["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n["reachable"] == true)
                .map(|n| n["node"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let me = view["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["this_node"] == true));
    let of = me.and_then(|n| n["shares"]["kite:TEST"]["of"].as_u64());
    (live, of)
}

/// Whether the view still lists `node`, marked unreachable.
pub fn marked_unreachable(view: &serde_json::Value, node: &str) -> bool {
    view["nodes"].as_array().is_some_and(|nodes| {
        nodes
            .iter()
            .any(|n| n["node"] == node && n["reachable"] == false)
    })
}

/// The most orders in any window of `window` in the ledger since `from`.
pub fn busiest(ledger: &[(String, Instant)], from: Instant, window: Duration) -> usize {
    let times: Vec<Instant> = ledger
        .iter()
        .filter(|(_, at)| *at >= from)
        .map(|(_, at)| *at)
        .collect();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}
