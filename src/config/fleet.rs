//! `[fleet]`: joining other engines that share a broker key and a database.

use super::Problem;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The variable that holds the fleet's cookie. It is never read from the
/// file, so a config checked into a repository cannot leak it.
pub const FLEET_COOKIE_VARIABLE: &str = "SEAWALL_FLEET_COOKIE";

/// The `[fleet]` table: this engine's place in a fleet of engines.
///
/// ```toml
/// [fleet]
/// node = "engine-a"
/// listen = "127.0.0.1:7401"
/// seeds = ["127.0.0.1:7402"]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// This node's name, unique in the fleet (it orders the budget split).
    pub node: String,
    /// Where this node accepts other nodes.
    pub listen: SocketAddr,
    /// Nodes to join through; any one that answers is enough.
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    /// How often this node tells the others its health.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A node not heard from for this long is unreachable (a crash, a
    /// SIGSTOP, a cut link): it leaves the budget split.
    #[serde(default = "default_unreachable_after", with = "humantime_serde")]
    pub unreachable_after: Duration,
    /// The fleet size this node assumes before it has heard from anyone
    /// (its safe share of a shared budget is the budget divided by this,
    /// and only a strict majority of it splits the whole budget).
    /// Default: the seeds plus this node.
    pub expected_nodes: Option<u32>,
}

fn default_heartbeat() -> Duration {
    Duration::from_millis(100)
}

fn default_unreachable_after() -> Duration {
    Duration::from_secs(1)
}

impl FleetConfig {
    /// The fleet size assumed before any other node is heard from.
    pub fn expected_size(&self) -> u32 {
        self.expected_nodes.unwrap_or_else(|| {
            u32::try_from(self.seeds.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        })
    }

    pub(crate) fn problems(&self, out: &mut Vec<Problem>) {
        let valid_name = !self.node.is_empty()
            && self.node.len() <= 64
            && self
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid_name {
            out.push(Problem::new(
                "fleet.node",
                format!("`{}` is not a node name", self.node),
                "use 1–64 letters, digits, '-', '_' or '.', unique in the fleet, such as \"engine-a\"",
            ));
        }
        if self.seeds.contains(&self.listen) {
            out.push(Problem::new(
                "fleet.seeds",
                format!("names this node's own address {}", self.listen),
                "list the other nodes' `listen` addresses",
            ));
        }
        if self.heartbeat < Duration::from_millis(10) || self.heartbeat > Duration::from_secs(10) {
            out.push(Problem::new(
                "fleet.heartbeat",
                format!(
                    "must be 10ms–10s (got {})",
                    humantime::format_duration(self.heartbeat)
                ),
                "use \"100ms\": a lost node is noticed a few heartbeats later",
            ));
        }
        if self.unreachable_after < self.heartbeat.saturating_mul(3) {
            out.push(Problem::new(
                "fleet.unreachable_after",
                format!(
                    "must be at least three heartbeats ({}), got {}",
                    humantime::format_duration(self.heartbeat.saturating_mul(3)),
                    humantime::format_duration(self.unreachable_after)
                ),
                "raise it (default 1s), or shorten fleet.heartbeat",
            ));
        }
        super::check_max_duration(
            out,
            "fleet.unreachable_after".to_string(),
            self.unreachable_after,
            Duration::from_secs(600),
        );
        if self.expected_nodes == Some(0) || self.expected_nodes > Some(10_000) {
            out.push(Problem::new(
                "fleet.expected_nodes",
                format!(
                    "must be 1–10000 (got {})",
                    self.expected_nodes.unwrap_or_default()
                ),
                "give the number of engines in the fleet, this one included",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetConfig {
        FleetConfig {
            node: "a".into(),
            listen: "127.0.0.1:7401".parse().unwrap(),
            seeds: vec!["127.0.0.1:7402".parse().unwrap()],
            heartbeat: default_heartbeat(),
            unreachable_after: default_unreachable_after(),
            expected_nodes: None,
        }
    }

    #[test]
    fn test_validate_when_defaults_then_no_problem_and_expected_size_counts_seeds() {
        let mut out = Vec::new();
        fleet().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(fleet().expected_size(), 2);
    }

    #[test]
    fn test_validate_when_values_hostile_then_each_key_named() {
        let mut bad = fleet();
        bad.node = "a b".into();
        bad.seeds.push(bad.listen);
        bad.heartbeat = Duration::from_millis(1);
        bad.unreachable_after = Duration::from_secs(3600);
        bad.expected_nodes = Some(0);
        let mut out = Vec::new();
        bad.problems(&mut out);
        let keys: Vec<&str> = out.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "fleet.node",
            "fleet.seeds",
            "fleet.heartbeat",
            "fleet.unreachable_after",
            "fleet.expected_nodes",
        ] {
            assert!(keys.contains(&key), "{key} not in {keys:?}");
        }
    }
}
