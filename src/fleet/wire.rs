//! What fleet members say to each other, and what a member hears locally.
//!
//! Remote messages travel as JSON inside ractor_cluster's cast frames: a
//! node of another version that adds a field is still understood, and one
//! that sends something unreadable is logged and ignored, never a panic.

use crate::breaker::TransitionReason;
use crate::cell::FleetShare;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The process group every member joins; ractor_cluster shares it across
/// connected nodes, so a member finds the others by reading it.
pub(crate) const GROUP: &str = "seawall.fleet";

/// One member's message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// A node's periodic account of itself.
    Beat(Box<Beat>),
    /// A node's breaker for a shared dependency moved.
    Hint(Hint),
    /// Local: time to beat, judge the peers and re-split budgets.
    #[serde(skip)]
    Tick,
    /// Local: bytes from a peer that were not a message of this protocol.
    #[serde(skip)]
    Unreadable(String),
}

/// A node's health as the fleet sees it, sent every heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Beat {
    pub(crate) node: String,
    /// When this process started (ms since the epoch): a restarted node
    /// has a new one.
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) health_score: u8,
    pub(crate) status: serde_json::Value,
    pub(crate) modes: serde_json::Value,
    pub(crate) breakers: BTreeMap<String, BreakerBrief>,
    /// The share it holds of each shared dependency's rate limits.
    pub(crate) shares: BTreeMap<String, ShareWire>,
    /// Every share it held within the dependency's longest window (a
    /// minute for Kite): requests sent under them still count at the
    /// dependency, so the others leave room for them.
    #[serde(default)]
    pub(crate) held: BTreeMap<String, Vec<ShareWire>>,
    /// The live nodes it sees (itself included), sorted.
    pub(crate) view: Vec<String>,
}

/// One breaker of one node, as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerBrief {
    /// Its state (`closed`, `open`, …).
    pub state: String,
    /// Trips within the stability window after a recovery.
    pub flaps: u64,
    /// The dependency it shares with other nodes, if any.
    pub shared: Option<String>,
}

/// A node's part of a shared budget: `rank` among `of` live nodes; `of`
/// of 4294967295 holds nothing yet, and a `rank` of 4294967295 is a safe
/// share (an equal part, none of the remainder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareWire {
    /// Its place among the live nodes sorted by name. `4294967295`
    /// (`u32::MAX`): an equal part with none of the remainder, the safe
    /// share of a node cut off or outside a majority.
    pub rank: u32,
    /// How many ways the budget is split. `4294967295` here too: nothing
    /// yet (a node that has not heard what the others hold).
    pub of: u32,
}

impl From<FleetShare> for ShareWire {
    fn from(s: FleetShare) -> Self {
        Self {
            rank: s.rank,
            of: s.of,
        }
    }
}

impl From<ShareWire> for FleetShare {
    fn from(s: ShareWire) -> Self {
        Self {
            rank: s.rank,
            of: s.of.max(1),
        }
    }
}

/// A breaker for a shared dependency moved on the origin's own evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Hint {
    /// It opened on the dependency's failures.
    Opened {
        origin: String,
        shared: String,
        reason: TransitionReason,
    },
    /// It closed after real probe successes.
    Closed { origin: String, shared: String },
}

impl ractor::BytesConvertable for Wire {
    fn into_bytes(self) -> Vec<u8> {
        // Local variants are never sent; should one be, it arrives unreadable.
        serde_json::to_vec(&self).unwrap_or_default()
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            Wire::Unreadable(format!(
                "{e} ({} bytes: {:?})",
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable;

    #[test]
    fn test_hint_when_sent_then_reason_arrives_unchanged() {
        let reason = TransitionReason::ConsecutiveFailures {
            count: 5,
            threshold: 5,
        };
        let hint = Wire::Hint(Hint::Opened {
            origin: "n1".into(),
            shared: "kite:ACC".into(),
            reason: reason.clone(),
        });
        match Wire::from_bytes(hint.into_bytes()) {
            Wire::Hint(Hint::Opened {
                origin,
                reason: got,
                ..
            }) => {
                assert_eq!(origin, "n1");
                assert_eq!(got, reason);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_from_bytes_when_garbage_or_local_variant_then_unreadable_not_panic() {
        assert!(matches!(
            Wire::from_bytes(b"\xff\x00garbage".to_vec()),
            Wire::Unreadable(_)
        ));
        assert!(matches!(
            Wire::from_bytes(Wire::Tick.into_bytes()),
            Wire::Unreadable(_)
        ));
    }
}
