//! Two engines started with the same `fleet.node` (a copied config file)
//! beside a third, all sharing one broker key.
//!
//! Ranks are by name, so the two would each take the same rank's part and
//! the third, hearing both as one node, its own: one and a half budgets.
//! The broker's ledger is the judge, as in `fleet.rs`.

mod fleet_support;

use fleet_support::*;
use std::time::{Duration, Instant};

/// Whether `node`'s view lists `name` as claimed by two processes.
fn sees_clash(node: &Node, name: &str) -> bool {
    node.fleet()["name_clashes"][name].as_u64() == Some(2)
}

#[test]
fn test_fleet_when_two_processes_share_a_node_name_then_the_clash_is_reported_and_the_broker_never_sees_more_than_the_limit(
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (broker, url) = start_broker(&rt);
    let dir = std::env::temp_dir().join(format!("seawall-fleet-clash-{}", std::process::id()));
    let ports = [free_port(), free_port(), free_port()];
    // The two "n1" files differ only in their ports: each in its own folder.
    let config = |i: usize, name: &str| {
        let folder = dir.join(i.to_string());
        std::fs::create_dir_all(&folder).unwrap();
        let seeds: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j]).collect();
        node_config(&folder, name, ports[i], &seeds)
    };
    let nodes = [
        Node::start(&config(0, "n1"), &url, "n1", COOKIE),
        Node::start(&config(1, "n1"), &url, "n1", COOKIE),
        Node::start(&config(2, "n2"), &url, "n2", COOKIE),
    ];

    std::thread::sleep(Duration::from_secs(5));
    for node in &nodes {
        let v = node.fleet();
        eprintln!(
            "VIEW {}: clashes {} nodes {:?}",
            node.name,
            v["name_clashes"],
            v["nodes"].as_array().map(|a| a
                .iter()
                .map(|n| (
                    n["node"].clone(),
                    n["incarnation"].clone(),
                    n["reachable"].clone(),
                    n["shares"].clone()
                ))
                .collect::<Vec<_>>())
        );
    }
    for node in &nodes {
        eventually(Duration::from_secs(20), "the clash is reported", || {
            sees_clash(node, "n1")
        });
    }
    // From a second after every node reported it, for four seconds: the
    // broker counts at most the key's 10 orders in any second, and both
    // names still trade.
    std::thread::sleep(Duration::from_secs(1));
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let ledger = broker.ledger.lock().unwrap().clone();
    let busiest_second = busiest(&ledger, from, Duration::from_secs(1));
    let sent = |name: &str| {
        ledger
            .iter()
            .filter(|(n, at)| n == name && *at >= from)
            .count()
    };
    eprintln!(
        "in 4 s: n1 (two processes) {}, n2 {}; busiest second {busiest_second}",
        sent("n1"),
        sent("n2")
    );
    assert!(
        busiest_second <= 10,
        "the fleet sent {busiest_second} orders in one second"
    );
    assert!(sent("n1") > 0 && sent("n2") > 0, "both names trade");

    // One of the two stops: the name has one process again.
    let [first, second, third] = nodes;
    drop(second);
    for node in [&first, &third] {
        eventually(Duration::from_secs(10), "the clash clears", || {
            let view = node.fleet();
            view["name_clashes"]
                .as_object()
                .is_some_and(|clashes| clashes.is_empty())
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
