//! The fleet's links over mutual TLS, each node its own process.
//!
//! Certificates are made for this run (no keys live in the repository): a
//! fleet CA issues one certificate per node for `seawall-fleet`. Two nodes
//! holding the CA's certificates join each other; a third that trusts the
//! fleet's CA and knows the cookie but holds a certificate from another CA,
//! and a fourth speaking plaintext, never appear in their view. (Planted
//! once: with `fleet_node`'s server taking no client certificate, the
//! third joined and this test failed.)

mod fleet_support;

use fleet_support::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA able to issue node certificates.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    /// `dir/{ca.pem,node.pem,node.key}`: this CA and a certificate it
    /// issued for the fleet's server name, as `fleet_node` reads them.
    fn issue(&self, dir: &Path) -> PathBuf {
        self.issue_trusting(dir, self)
    }

    /// [`Self::issue`], with `trusted`'s certificate as `ca.pem`: a node
    /// that knows the fleet's CA (its certificate is no secret) but holds
    /// no certificate the CA issued.
    fn issue_trusting(&self, dir: &Path, trusted: &Authority) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let params = CertificateParams::new(vec!["seawall-fleet".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join("ca.pem"), trusted.cert.pem()).unwrap();
        std::fs::write(dir.join("node.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("node.key"), key.serialize_pem()).unwrap();
        dir.to_path_buf()
    }
}

#[test]
fn test_fleet_when_links_are_mutual_tls_then_nodes_of_the_ca_join_and_others_never_appear() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_broker, url) = start_broker(&rt);
    let dir = std::env::temp_dir().join(format!("seawall-fleet-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fleet_ca = Authority::new("seawall fleet CA");
    let ports = [free_port(), free_port()];
    let configs = [
        node_config_sized(&dir, "t1", ports[0], &[ports[1]], 2),
        node_config_sized(&dir, "t2", ports[1], &[ports[0]], 2),
    ];
    let nodes = [
        Node::start_tls(&configs[0], &url, "t1", &fleet_ca.issue(&dir.join("t1"))),
        Node::start_tls(&configs[1], &url, "t2", &fleet_ca.issue(&dir.join("t2"))),
    ];
    for node in &nodes {
        let took = eventually(Duration::from_secs(20), "both TLS nodes live", || {
            let (live, of) = sees(&node.fleet());
            live.len() == 2 && of == Some(2)
        });
        eprintln!("{} sees the other over TLS within {took:?}", node.name);
    }

    // A node that trusts the fleet's CA and has the cookie, but holds a
    // certificate from another CA: t1 refuses it, and it stays alone.
    let rogue_ca = Authority::new("not the fleet's CA");
    let rogue_config = node_config_sized(&dir, "t3", free_port(), &[ports[0]], 2);
    let rogue_tls = rogue_ca.issue_trusting(&dir.join("t3"), &fleet_ca);
    let rogue = Node::start_tls(&rogue_config, &url, "t3", &rogue_tls);
    // Plaintext against a TLS listener: the same.
    let plain_config = node_config_sized(&dir, "t4", free_port(), &[ports[0]], 2);
    let plain = Node::start(&plain_config, &url, "t4", COOKIE);
    // Long enough for several dial attempts by both (heartbeat 100 ms).
    std::thread::sleep(Duration::from_secs(3));
    for outsider in [&rogue, &plain] {
        let view = outsider.fleet();
        let (alone, _) = sees(&view);
        assert_eq!(
            alone,
            vec![outsider.name.clone()],
            "{} joined",
            outsider.name
        );
        // Its own view tells its operator why: every dial is refused.
        let refused = view["refused_connections"].as_u64().unwrap_or(0);
        assert!(refused > 0, "{}: no refusal counted", outsider.name);
    }
    for node in &nodes {
        let (live, of) = sees(&node.fleet());
        assert_eq!(live.len(), 2, "{}: {live:?}", node.name);
        assert_eq!(
            of,
            Some(2),
            "{}: the budget is still split in two",
            node.name
        );
    }
    drop((rogue, plain, nodes));
    let _ = std::fs::remove_dir_all(&dir);
}
