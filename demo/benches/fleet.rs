//! The fleet at 8 and 16 nodes, each its own `fleet_node` process on
//! loopback (idle: no orders, so only the fleet's own traffic flows):
//!
//! * convergence: a node joins a settled fleet; time until every node
//!   lists it as live;
//! * loss: `kill -9` of one node; time until every survivor marks it
//!   unreachable (`unreachable_after` = 1 s, heartbeat 100 ms);
//! * hint: the broker fails one node's orders, which opens its shared
//!   breaker; the largest lag until every other node's breaker opens;
//! * cost: resident memory per node, and loopback bytes and packets per
//!   second per node while the fleet is idle.
//!
//! Not criterion: these are one-shot distributed timings, printed as a table.

#[path = "../tests/fleet_support/mod.rs"]
mod fleet_support;

use fleet_support::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Loopback bytes and packets received so far (`/proc/net/dev`).
fn loopback() -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    dev.lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .and_then(|l| {
            let f: Vec<u64> = l
                .split(':')
                .nth(1)?
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((f[0], f[1]))
        })
        .unwrap_or((0, 0))
}

fn live(node: &Node) -> usize {
    sees(&node.fleet()).0.len()
}

fn run(n: usize, dir: &std::path::Path, broker: &Broker, url: &str) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let names: Vec<String> = (0..n).map(|i| format!("b{i:02}")).collect();
    // Every node seeds from the first: joining is transitive.
    let configs: Vec<PathBuf> = (0..n)
        .map(|i| {
            let seeds: Vec<u16> = if i == 0 { vec![] } else { vec![ports[0]] };
            node_config_sized(dir, &names[i], ports[i], &seeds, n as i64)
        })
        .collect();
    let mut nodes: Vec<Node> = (0..n - 1)
        .map(|i| Node::start_idle(&configs[i], url, &names[i]))
        .collect();
    for node in &nodes {
        eventually(Duration::from_secs(30), "the first nodes settle", || {
            live(node) == n - 1
        });
    }
    // Join.
    let joined = Instant::now();
    nodes.push(Node::start_idle(&configs[n - 1], url, &names[n - 1]));
    for node in &nodes {
        eventually(Duration::from_secs(30), "the join is seen", || {
            live(node) == n
        });
    }
    let converge = joined.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    // Cost, idle: memory, and loopback traffic with no one polling.
    let rss: Vec<u64> = nodes.iter().map(Node::rss_kib).collect();
    let (b0, p0) = loopback();
    std::thread::sleep(Duration::from_secs(3));
    let (b1, p1) = loopback();
    let bytes_per_node = (b1 - b0) as f64 / 3.0 / n as f64;
    let packets_per_node = (p1 - p0) as f64 / 3.0 / n as f64;
    // Hint.
    // Hint: the broker fails the first node, which now starts sending.
    broker.down.lock().unwrap().insert(names[0].clone());
    nodes[0].signal("-USR1");
    eventually(Duration::from_secs(30), "the first node trips", || {
        nodes[0].opened_at("consecutive failures").is_some()
    });
    let hint = hint_lag(&nodes);
    broker.down.lock().unwrap().clear();
    // Loss.
    let lost = nodes.pop().unwrap();
    let name = lost.name.clone();
    lost.signal("-KILL");
    let killed = Instant::now();
    drop(lost);
    for node in &nodes {
        eventually(Duration::from_secs(30), "the loss is seen", || {
            let view = node.fleet();
            marked_unreachable(&view, &name)
        });
    }
    let notice = killed.elapsed();
    let mean_rss = rss.iter().sum::<u64>() as f64 / rss.len() as f64;
    println!(
        "| {n} | {:.0} ms | {:.0} ms | {} | {:.1} MiB | {:.1} KiB/s, {:.0} packets/s |",
        converge.as_secs_f64() * 1000.0,
        notice.as_secs_f64() * 1000.0,
        hint,
        mean_rss / 1024.0,
        bytes_per_node / 1024.0,
        packets_per_node,
    );
}

/// The hint's spread, from the transitions the nodes printed (wall-clock
/// milliseconds, one machine): the slowest node's lag behind the origin.
fn hint_lag(nodes: &[Node]) -> String {
    let (at, _) = nodes[0].opened_at("consecutive failures").unwrap();
    for node in &nodes[1..] {
        eventually(Duration::from_secs(10), "the hint opens every node", || {
            node.opened_at("fleet hint").is_some()
        });
    }
    let lags: Vec<u128> = nodes[1..]
        .iter()
        .filter_map(|n| n.opened_at("fleet hint").map(|(t, _)| t.saturating_sub(at)))
        .collect();
    format!(
        "≤ {} ms to all {}",
        lags.iter().max().unwrap_or(&0),
        lags.len()
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, as criterion benches answer
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (broker, url) = start_broker(&rt);
    let dir = std::env::temp_dir().join(format!("seawall-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| nodes | join → every node sees it | kill -9 → every survivor marks it | hint | RSS per node | loopback per node (idle) |");
    println!("|---|---|---|---|---|---|");
    for n in [8, 16] {
        run(n, &dir, &broker, &url);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
