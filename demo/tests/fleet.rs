//! Three engines on loopback, each its own process, sharing one broker key.
//!
//! The broker here is the judge: it records every order that reaches it,
//! with the sending node and its arrival time, and the fleet's rate is
//! counted from that ledger, never from the nodes' own counters. Each node
//! runs the shipped `actors.toml`'s `kite_api` (auto-recovery on) with
//! `shared = "kite:TEST"` and a `[fleet]` table, and sends orders from 8
//! tasks as fast as its breaker and its share allow.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COOKIE: &str = "fleet-test-cookie-0123456789";

#[derive(Default)]
struct Broker {
    /// Nodes whose requests fail (the outage one node sees).
    down: Mutex<HashSet<String>>,
    /// Every order that reached the broker: node, arrival.
    ledger: Mutex<Vec<(String, Instant)>>,
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped file's `[runtime]` and `kite_api`, shared, plus `[fleet]`.
fn node_config(dir: &Path, node: &str, port: u16, seeds: &[u16]) -> PathBuf {
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
    fleet.insert("expected_nodes".into(), 3.into());
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
struct Node {
    name: String,
    child: Child,
    http: String,
    transitions: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Node {
    fn start(config: &Path, broker: &str, name: &str, cookie: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleet_node"))
            .arg(config)
            .arg(broker)
            .env("SEAWALL_FLEET_COOKIE", cookie)
            .env("RUST_LOG", "warn,seawall=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fleet_node runs");
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

    fn fleet(&self) -> serde_json::Value {
        ureq::get(&format!("{}/api/v1/fleet/health", self.http))
            .call()
            .map(|mut r| r.body_mut().read_json().unwrap_or_default())
            .unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }

    fn opened_at(&self, reason_has: &str) -> Option<(u128, String)> {
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

/// Polls until `check` holds, or fails after `within` naming `what`.
fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
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
fn sees(view: &serde_json::Value) -> (Vec<String>, Option<u64>) {
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
fn marked_unreachable(view: &serde_json::Value, node: &str) -> bool {
    view["nodes"].as_array().is_some_and(|nodes| {
        nodes
            .iter()
            .any(|n| n["node"] == node && n["reachable"] == false)
    })
}

/// The most orders in any window of `window` in the ledger since `from`.
fn busiest(ledger: &[(String, Instant)], from: Instant, window: Duration) -> usize {
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

#[test]
fn test_fleet_when_three_processes_share_a_broker_key_then_one_view_one_breaker_one_budget() {
    let rt = tokio::runtime::Runtime::new().unwrap();
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
    let url = format!("http://{addr}");
    let dir = std::env::temp_dir().join(format!("seawall-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let names = ["n1", "n2", "n3"];
    let configs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let seeds: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j]).collect();
            node_config(&dir, names[i], ports[i], &seeds)
        })
        .collect();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(&configs[i], &url, names[i], COOKIE))
        .collect();

    // One view: every node sees all three, and holds a third of the budget.
    for node in &nodes {
        eventually(
            Duration::from_secs(15),
            "three live nodes, shares of 3",
            || {
                let (live, of) = sees(&node.fleet());
                live.len() == 3 && of == Some(3)
            },
        );
    }

    // One budget: each node sends at the full limit; the broker's ledger
    // never sees more than the key's 10 orders in any second.
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let ledger = broker.ledger.lock().unwrap().clone();
    let per_node: BTreeMap<&str, usize> = names
        .iter()
        .map(|n| {
            (
                *n,
                ledger
                    .iter()
                    .filter(|(s, at)| s == n && *at >= from)
                    .count(),
            )
        })
        .collect();
    let busiest_second = busiest(&ledger, from, Duration::from_secs(1));
    eprintln!("orders in 4 s: {per_node:?}; busiest second: {busiest_second}");
    assert!(
        busiest_second <= 10,
        "the fleet sent {busiest_second} orders in one second"
    );
    assert!(
        per_node.values().all(|&n| n > 0),
        "every node sends its share: {per_node:?}"
    );

    // One breaker: the broker fails n1 alone; n2 and n3 open within 100 ms
    // of n1's own trip, with its reason and n1 named.
    broker.down.lock().unwrap().insert("n1".into());
    eventually(Duration::from_secs(10), "n1 opens on its failures", || {
        nodes[0].opened_at("consecutive failures").is_some()
    });
    let (origin_at, origin_reason) = nodes[0].opened_at("consecutive failures").unwrap();
    for node in &nodes[1..] {
        eventually(Duration::from_secs(2), "the hint opens the others", || {
            node.opened_at("fleet hint from n1").is_some()
        });
        let (at, reason) = node.opened_at("fleet hint from n1").unwrap();
        let lag = at.saturating_sub(origin_at);
        eprintln!("{}: opened {lag} ms after n1: {reason}", node.name);
        assert!(lag <= 100, "{} opened {lag} ms after n1", node.name);
        assert!(
            reason.ends_with(&origin_reason),
            "same reason: {reason} vs {origin_reason}"
        );
    }
    broker.down.lock().unwrap().clear();

    // kill -9 of n3: the survivors mark it unreachable and split in two.
    nodes[2].signal("-KILL");
    let _ = nodes[2].child.wait();
    for node in &nodes[..2] {
        let took = eventually(
            Duration::from_secs(5),
            "n3 unreachable, shares of 2",
            || {
                let view = node.fleet();
                let (live, of) = sees(&view);
                live.len() == 2 && marked_unreachable(&view, "n3") && of == Some(2)
            },
        );
        eprintln!("{} re-split after kill -9 within {took:?}", node.name);
    }

    // A restarted node rejoins: three live, shares of 3 again.
    nodes[2] = Node::start(&configs[2], &url, "n3", COOKIE);
    for node in &nodes {
        eventually(Duration::from_secs(10), "n3 rejoined, shares of 3", || {
            let (live, of) = sees(&node.fleet());
            live.len() == 3 && of == Some(3)
        });
    }

    // SIGSTOP of n2: the same outcome, then it comes back.
    nodes[1].signal("-STOP");
    for i in [0, 2] {
        let took = eventually(
            Duration::from_secs(5),
            "n2 unreachable, shares of 2",
            || {
                let view = nodes[i].fleet();
                let (live, of) = sees(&view);
                live.len() == 2 && marked_unreachable(&view, "n2") && of == Some(2)
            },
        );
        eprintln!("{} re-split after SIGSTOP within {took:?}", nodes[i].name);
    }
    nodes[1].signal("-CONT");
    for node in &nodes {
        eventually(Duration::from_secs(10), "n2 back, shares of 3", || {
            let (live, of) = sees(&node.fleet());
            live.len() == 3 && of == Some(3)
        });
    }

    // The budget held through all of it, as the broker counted.
    let ledger = broker.ledger.lock().unwrap().clone();
    let worst = busiest(&ledger, from, Duration::from_secs(1));
    eprintln!("whole run: {} orders, busiest second {worst}", ledger.len());
    assert!(worst <= 10, "the fleet sent {worst} orders in one second");

    // A wrong cookie is refused: the intruder never appears in the view.
    // (The fleet is steady here, so every refusal counted now is n4's.)
    let refused = |n: &Node| n.fleet()["refused_connections"].as_u64().unwrap_or(0);
    let before = refused(&nodes[0]);
    let intruder = node_config(&dir, "n4", free_port(), &[ports[0]]);
    let n4 = Node::start(&intruder, &url, "n4", "not-the-cookie-at-all");
    eventually(Duration::from_secs(10), "n1 refuses n4", || {
        refused(&nodes[0]) > before
    });
    std::thread::sleep(Duration::from_millis(500));
    let (live, _) = sees(&nodes[0].fleet());
    assert!(!live.contains(&"n4".to_string()), "{live:?}");
    let (alone, _) = sees(&n4.fleet());
    assert_eq!(alone, vec!["n4".to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn test_busiest_when_eleven_orders_fall_in_one_second_then_the_check_counts_eleven() {
    // Planted violation: the ledger check must see a burst past the limit.
    let t0 = Instant::now();
    let mut ledger: Vec<(String, Instant)> = (0..11)
        .map(|i| ("n1".to_string(), t0 + Duration::from_millis(90 * i)))
        .collect();
    ledger.push(("n2".into(), t0 + Duration::from_millis(2500)));
    assert_eq!(busiest(&ledger, t0, Duration::from_secs(1)), 11);
    assert_eq!(busiest(&ledger[..5], t0, Duration::from_secs(1)), 5);
}
