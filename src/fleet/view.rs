//! The fleet as one node sees it: `GET /api/v1/fleet/health`.

use super::wire::{Beat, BreakerBrief, ShareWire};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How whole the fleet looks from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetStatus {
    /// Every node ever heard from is live.
    Whole,
    /// Some nodes went silent; the live ones re-split shared budgets if
    /// they are a strict majority of `largest_seen`, and otherwise hold
    /// the safe share.
    Degraded,
    /// No other node is live though some were: this node runs on local
    /// evidence and the safe share of shared budgets.
    CutOff,
    /// No other node has been heard from yet.
    Alone,
}

impl FleetStatus {
    pub(crate) fn of(known: usize, live: usize) -> Self {
        match (known, live) {
            (0, _) => FleetStatus::Alone,
            (_, 0) => FleetStatus::CutOff,
            (k, l) if l < k => FleetStatus::Degraded,
            _ => FleetStatus::Whole,
        }
    }
}

/// One node in the view.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Its `fleet.node`.
    pub node: String,
    /// Whether this is the node answering.
    pub this_node: bool,
    /// Heard from within `fleet.unreachable_after`.
    pub reachable: bool,
    /// How long since it was last heard from, in milliseconds.
    pub last_seen_ms: u64,
    /// When its process started (ms since the epoch): changes on a restart.
    pub incarnation: u64,
    /// Its health score, 0–100, as of its last beat.
    pub health_score: u8,
    /// Its health status.
    pub status: serde_json::Value,
    /// Its trading, decision, price and database modes.
    pub modes: serde_json::Value,
    /// Its breakers by service name.
    pub breakers: BTreeMap<String, BreakerBrief>,
    /// Its share of each shared dependency's rate limits.
    pub shares: BTreeMap<String, ShareWire>,
    /// The live nodes it sees.
    pub sees: Vec<String>,
}

impl NodeView {
    pub(crate) fn from_beat(beat: Beat, this_node: bool, age: Duration, reachable: bool) -> Self {
        Self {
            node: beat.node,
            this_node,
            reachable,
            last_seen_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            incarnation: beat.incarnation,
            health_score: beat.health_score,
            status: beat.status,
            modes: beat.modes,
            breakers: beat.breakers,
            shares: beat.shares,
            sees: beat.view,
        }
    }
}

/// One service's breaker on one node, grouped by shared dependency.
#[derive(Debug, Clone, Serialize)]
pub struct SharedBreaker {
    /// The node.
    pub node: String,
    /// The service on that node.
    pub service: String,
    /// Its state.
    pub state: String,
    /// Whether the node is reachable (else the state is its last known).
    pub reachable: bool,
}

/// The fleet as this node sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// The node answering.
    pub node: String,
    /// How whole the fleet looks.
    pub status: FleetStatus,
    /// Live nodes, this one included.
    pub live: u32,
    /// The largest number of live nodes seen at once: the divisor of the
    /// safe share, held when cut off or in a group that is not a strict
    /// majority of it.
    pub largest_seen: u32,
    /// A silent node is unreachable after this long, in milliseconds.
    pub unreachable_after_ms: u64,
    /// Links that closed before the peer authenticated: a wrong cookie, or
    /// (for a link this node dialled) a TLS handshake the peer refused. A
    /// handshake this node's own TLS listener refuses never becomes a link:
    /// ractor_cluster logs it (`Error establishing secure socket`), and it
    /// is not counted here. Nor are links closed as a second link to a
    /// linked node, or as a second process under one name (those are
    /// `name_clashes`).
    pub refused_connections: u64,
    /// Every node heard from since this one started, this one first.
    pub nodes: Vec<NodeView>,
    /// Per shared dependency: each node's breaker for it.
    pub dependencies: BTreeMap<String, Vec<SharedBreaker>>,
    /// Node names that more than one live process uses, with how many:
    /// a misconfiguration (each node needs its own `fleet.node`). While
    /// any is listed, this node holds only an equal part of `largest_seen`
    /// (which counts every process) of each shared budget.
    pub name_clashes: BTreeMap<String, u32>,
    /// When this view was computed.
    #[serde(with = "crate::clock::rfc3339")]
    pub updated_at: SystemTime,
}

impl FleetView {
    pub(crate) fn new(
        node: String,
        status: FleetStatus,
        largest_seen: u32,
        unreachable_after: Duration,
        refused_connections: u64,
        nodes: Vec<NodeView>,
        updated_at: SystemTime,
    ) -> Self {
        let mut dependencies: BTreeMap<String, Vec<SharedBreaker>> = BTreeMap::new();
        for n in &nodes {
            for (service, b) in &n.breakers {
                if let Some(key) = &b.shared {
                    dependencies
                        .entry(key.clone())
                        .or_default()
                        .push(SharedBreaker {
                            node: n.node.clone(),
                            service: service.clone(),
                            state: b.state.clone(),
                            reachable: n.reachable,
                        });
                }
            }
        }
        Self {
            node,
            status,
            live: u32::try_from(nodes.iter().filter(|n| n.reachable).count()).unwrap_or(u32::MAX),
            largest_seen,
            unreachable_after_ms: u64::try_from(unreachable_after.as_millis()).unwrap_or(u64::MAX),
            refused_connections,
            nodes,
            dependencies,
            name_clashes: BTreeMap::new(),
            updated_at,
        }
    }

    /// The view of a node that has not ticked yet.
    pub(crate) fn starting(node: String, unreachable_after: Duration) -> Self {
        Self::new(
            node,
            FleetStatus::Alone,
            1,
            unreachable_after,
            0,
            Vec::new(),
            SystemTime::now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_status_when_members_go_silent_then_degraded_then_cut_off() {
        assert_eq!(FleetStatus::of(0, 0), FleetStatus::Alone);
        assert_eq!(FleetStatus::of(2, 2), FleetStatus::Whole);
        assert_eq!(FleetStatus::of(2, 1), FleetStatus::Degraded);
        assert_eq!(FleetStatus::of(2, 0), FleetStatus::CutOff);
    }
}
