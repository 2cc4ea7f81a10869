//! The fleet member: one actor per node that beats, listens and splits.
//!
//! Every heartbeat it tells the other members (found in the process group
//! [`GROUP`]) its health, its breakers and the shares it holds; it judges
//! which peers are live by when it last heard from them (so a crashed node
//! and a stopped one look the same: silent), re-plans each shared budget
//! and publishes the fleet view. Hints from peers move its own breakers.

use super::budget::{self, View};
use super::claims::Claims;
use super::view::{FleetStatus, FleetView, NodeView};
use super::wire::{Beat, BreakerBrief, Hint, ShareWire, Wire, GROUP};
use crate::cell::{BreakerControl, FleetShare};
use crate::config::FleetConfig;
use crate::health::HealthShared;
use arc_swap::ArcSwap;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a member needs from its node.
pub(crate) struct MemberArgs {
    pub(crate) config: FleetConfig,
    pub(crate) incarnation: u64,
    pub(crate) health: Arc<HealthShared>,
    /// Every breaker of the tree now (run-time ones come and go).
    pub(crate) controls: crate::runtime::ControlsSource,
    pub(crate) published: Arc<ArcSwap<FleetView>>,
    pub(crate) refused: Arc<AtomicU64>,
    /// Wakes the dialer to try the seeds again.
    pub(crate) redial: Arc<tokio::sync::Notify>,
    /// Who claims each node name; the links note what they see too.
    pub(crate) claims: Arc<std::sync::Mutex<Claims>>,
    /// This node's address as its links name it (`ip:port`).
    pub(crate) address: String,
}

pub(crate) struct Member;

pub(crate) struct MemberState {
    args: MemberArgs,
    seq: u64,
    peers: BTreeMap<String, Peer>,
    /// Live peers at the last tick, to log each change once.
    live_before: BTreeSet<String>,
    largest_seen: u32,
    /// Heard from the fleet, or waited `unreachable_after` alone: until
    /// then this node holds no share of a shared budget.
    settled: bool,
    waiting_since: Instant,
    last_tick: Instant,
    /// When the seeds were last dialled again.
    last_dial: Option<Instant>,
    /// The names claimed by more than one live process at the last tick,
    /// with how many processes claim each.
    clashes: BTreeMap<String, u32>,
    /// Per shared dependency: the shares this node held, and until when
    /// requests sent under each still count at the dependency (`None`:
    /// the share it holds now).
    held: BTreeMap<String, Vec<(FleetShare, Option<Instant>)>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

struct Peer {
    beat: Beat,
    last_seen: Instant,
}

impl Actor for Member {
    type Msg = Wire;
    type State = MemberState;
    type Arguments = MemberArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Wire>,
        args: MemberArgs,
    ) -> Result<MemberState, ActorProcessingErr> {
        // Hold nothing of a shared budget until the fleet is heard from.
        for control in shared_limited(&(args.controls)()) {
            control.set_share(FleetShare::NONE);
        }
        ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        let ticker = myself.send_interval(args.config.heartbeat, || Wire::Tick);
        let now = Instant::now();
        Ok(MemberState {
            largest_seen: args.config.expected_size(),
            args,
            seq: 0,
            peers: BTreeMap::new(),
            live_before: BTreeSet::new(),
            settled: false,
            waiting_since: now,
            last_tick: now,
            last_dial: None,
            clashes: BTreeMap::new(),
            held: BTreeMap::new(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Wire>,
        state: &mut MemberState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        ractor::pg::leave(GROUP.to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Wire>,
        message: Wire,
        state: &mut MemberState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            Wire::Tick => state.tick(),
            Wire::Beat(beat) => state.heard(*beat),
            Wire::Hint(hint) => state.apply_hint(hint),
            Wire::Unreadable(what) => {
                tracing::warn!(%what, "fleet: ignored a message that is not seawall's fleet protocol")
            }
        }
        Ok(())
    }
}

/// Services whose rate limits are a fleet budget.
fn shared_limited(controls: &[BreakerControl]) -> impl Iterator<Item = &BreakerControl> + '_ {
    controls.iter().filter(|c| {
        let config = c.config();
        config.shared.is_some() && config.rate_limit.is_some()
    })
}

/// The longest limit window of a minute or less among `controls`' rate
/// limits (a minute for Kite): how long a request counts at the dependency.
/// Day windows carry what they granted instead (`RateLimits::replacing`).
fn longest_window(controls: &[&BreakerControl]) -> Duration {
    let minute = controls.iter().any(|c| {
        c.config()
            .rate_limit
            .as_ref()
            .is_some_and(|r| r.classes.values().any(|l| l.per_minute.is_some()))
    });
    if minute {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(1)
    }
}

/// The other members, as reachable actor references.
fn remote_members() -> Vec<ActorRef<Wire>> {
    ractor::pg::get_members(&GROUP.to_string())
        .into_iter()
        .filter(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
        .collect()
}

/// Sends `message` to every other member (one serialization each).
pub(crate) fn tell_all(message: impl Fn() -> Wire) {
    for member in remote_members() {
        if let Err(e) = member.cast(message()) {
            tracing::debug!(error = %e, "fleet: a member could not be told");
        }
    }
}

impl MemberState {
    fn me(&self) -> &str {
        &self.args.config.node
    }

    fn heard(&mut self, beat: Beat) {
        if let Ok(mut claims) = self.args.claims.lock() {
            claims.heard(&beat.node, beat.incarnation, Instant::now());
        }
        if beat.node == self.me() {
            // Another process with this node's name (see `tick`), or this
            // node's own beat relayed back: neither is a peer.
            return;
        }
        if let Some(known) = self.peers.get(&beat.node) {
            if known.beat.incarnation != beat.incarnation {
                // Two processes under one name flip it on every beat: that
                // is logged once, as a clash, not as restarts.
                if !self.clashes.contains_key(&beat.node) {
                    tracing::info!(node = %beat.node, "fleet: a node restarted and rejoined");
                }
            } else if known.beat.seq >= beat.seq {
                return; // an older beat arriving late
            }
        }
        let node = beat.node.clone();
        self.peers.insert(
            node,
            Peer {
                beat,
                last_seen: Instant::now(),
            },
        );
    }

    fn apply_hint(&mut self, hint: Hint) {
        let (origin, shared) = match &hint {
            Hint::Opened { origin, shared, .. } | Hint::Closed { origin, shared } => {
                (origin.clone(), shared.clone())
            }
        };
        let controls = (self.args.controls)();
        let ours = controls
            .iter()
            .filter(|c| c.config().shared.as_deref() == Some(shared.as_str()));
        for control in ours {
            let moved = match &hint {
                Hint::Opened { reason, .. } => control.hint_open(&origin, reason.clone()),
                Hint::Closed { .. } => control.hint_probe(&origin),
            };
            if let Some(t) = moved {
                tracing::warn!(service = control.name(), %origin, %shared, to = %t.to, reason = %t.reason, "fleet: breaker moved on a hint");
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let after = self.args.config.unreachable_after;
        if now.saturating_duration_since(self.last_tick) > after {
            // This process was stopped (SIGSTOP, a VM pause) for longer than
            // the others wait: they have written it off and re-split. Hold
            // nothing until it hears from them again.
            tracing::warn!(paused = ?now.saturating_duration_since(self.last_tick), "fleet: this node was frozen; rejoining before taking any shared budget");
            self.settled = false;
            self.waiting_since = now;
            self.peers.clear();
        }
        self.last_tick = now;
        let live: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) <= after)
            .map(|(n, _)| n.clone())
            .collect();
        self.log_changes(&live);
        self.note_clashes(now);
        if !live.is_empty() {
            self.settled = true;
        } else if !self.settled && now.saturating_duration_since(self.waiting_since) >= after {
            self.settled = true;
            tracing::warn!(
                "fleet: no other node heard from; taking the safe share of shared budgets"
            );
        }
        // Each process of a clashing name counts, not the name once.
        let extra: usize = self.clashes.values().map(|&n| n as usize - 1).sum();
        let size = u32::try_from(live.len() + 1 + extra).unwrap_or(u32::MAX);
        self.largest_seen = self.largest_seen.max(size);
        let mut view: Vec<String> = live.iter().cloned().collect();
        view.push(self.me().to_string());
        view.sort();
        self.split_budgets(&live, &view);
        let beat = self.beat(view);
        tell_all(|| Wire::Beat(Box::new(beat.clone())));
        self.publish(&live, beat, now);
        if live.is_empty() {
            self.retry_seeds(now);
        }
    }

    /// Asks the dialer to try the seeds again once this node has heard from
    /// no one for `unreachable_after` (and every `unreachable_after` after
    /// that), so a node that lost every link finds its way back. Not sooner:
    /// links that are still open would only be dialled twice.
    fn retry_seeds(&mut self, now: Instant) {
        let after = self.args.config.unreachable_after;
        let heard = self.peers.values().map(|p| p.last_seen).max();
        let quiet_since = heard.map_or(self.waiting_since, |h| h.max(self.waiting_since));
        let due = self.last_dial.map_or(quiet_since, |d| d.max(quiet_since)) + after;
        if now >= due {
            self.last_dial = Some(now);
            self.args.redial.notify_one();
        }
    }

    /// Finds the names two live processes claim, and logs each clash as
    /// it starts and ends.
    fn note_clashes(&mut self, now: Instant) {
        let me = (
            self.args.config.node.as_str(),
            self.args.incarnation,
            self.args.address.as_str(),
        );
        let Ok(mut claims) = self.args.claims.lock() else {
            return;
        };
        let clashes = claims.clashes(me, now, self.args.config.unreachable_after);
        drop(claims);
        for (node, processes) in &clashes {
            if !self.clashes.contains_key(node) {
                tracing::error!(%node, %processes, "fleet: {processes} live processes use the node name {node:?}; every node that hears them holds only an equal part of shared budgets until one stops; give each node its own fleet.node");
            }
        }
        for node in self.clashes.keys() {
            if !clashes.contains_key(node) {
                tracing::warn!(%node, "fleet: the node name {node:?} has one process again");
            }
        }
        self.clashes = clashes;
    }

    fn log_changes(&mut self, live: &BTreeSet<String>) {
        for lost in self.live_before.difference(live) {
            tracing::warn!(node = %lost, after = ?self.args.config.unreachable_after, "fleet: node unreachable; re-splitting shared budgets");
        }
        for found in live.difference(&self.live_before) {
            tracing::info!(node = %found, "fleet: node reachable");
        }
        self.live_before = live.clone();
    }

    fn split_budgets(&mut self, live: &BTreeSet<String>, view: &[String]) {
        let now = Instant::now();
        let all = (self.args.controls)();
        let mut by_key: BTreeMap<String, Vec<&BreakerControl>> = BTreeMap::new();
        for control in shared_limited(&all) {
            if let Some(key) = control.config().shared.clone() {
                by_key.entry(key).or_default().push(control);
            }
        }
        let agreed = live
            .iter()
            .all(|n| self.peers.get(n).is_some_and(|p| p.beat.view == view));
        for (key, controls) in by_key {
            let limits: Vec<u32> = controls
                .iter()
                .filter_map(|c| c.config().rate_limit.clone())
                .flat_map(|r| {
                    r.classes
                        .values()
                        .flat_map(|c| [c.per_second, c.per_minute, c.per_day])
                        .flatten()
                        .collect::<Vec<_>>()
                })
                .collect();
            let peers: Vec<(&str, Option<FleetShare>)> = live
                .iter()
                .map(|n| {
                    let share = self
                        .peers
                        .get(n)
                        .and_then(|p| p.beat.shares.get(&key).copied().map(FleetShare::from));
                    (n.as_str(), share)
                })
                .collect();
            let window = longest_window(&controls);
            let held = self.held_by_others(&key, window, now);
            let current = controls[0].share();
            let planned = budget::plan(
                &View {
                    me: self.me(),
                    peers: &peers,
                    held: &held,
                    settled: self.settled,
                    largest_seen: self.largest_seen,
                    limits: &limits,
                    agreed,
                    clash: !self.clashes.is_empty(),
                },
                current,
            );
            for control in &controls {
                if control.set_share(planned) {
                    tracing::info!(service = control.name(), dependency = %key, share = %planned, "fleet: rate budget re-split");
                }
                control.renew_share_lease(self.args.config.unreachable_after);
            }
            self.remember(key, planned, window, now);
        }
    }

    /// What every other node held within `window`: the live ones, and a
    /// lost one until its last requests have left the window too.
    fn held_by_others(&self, key: &str, window: Duration, now: Instant) -> Vec<Vec<FleetShare>> {
        let counts_until = window + self.args.config.heartbeat;
        self.peers
            .values()
            .filter(|p| now.saturating_duration_since(p.last_seen) <= counts_until)
            .map(|p| match p.beat.held.get(key) {
                Some(shares) => shares.iter().copied().map(FleetShare::from).collect(),
                None => p
                    .beat
                    .shares
                    .get(key)
                    .copied()
                    .map(FleetShare::from)
                    .into_iter()
                    .collect(),
            })
            .collect()
    }

    /// Records the share held now; one it replaces counts for `window` more.
    fn remember(&mut self, key: String, share: FleetShare, window: Duration, now: Instant) {
        let history = self.held.entry(key).or_default();
        history.retain(|(_, until)| until.is_none_or(|u| u > now));
        match history.iter_mut().find(|(_, until)| until.is_none()) {
            Some((held, _)) if *held == share => {}
            Some(entry) => {
                entry.1 = Some(now + window);
                history.push((share, None));
            }
            None => history.push((share, None)),
        }
    }

    fn beat(&mut self, view: Vec<String>) -> Beat {
        self.seq += 1;
        let report = self.args.health.report();
        let mut shares = BTreeMap::new();
        let breakers = (self.args.controls)()
            .iter()
            .map(|c| {
                let config = c.config();
                if let (Some(key), Some(_)) = (&config.shared, &config.rate_limit) {
                    shares.insert(key.clone(), ShareWire::from(c.share()));
                }
                let brief = BreakerBrief {
                    state: c.state().as_str().to_string(),
                    flaps: c.metrics().flaps,
                    shared: config.shared.clone(),
                };
                (c.name().to_string(), brief)
            })
            .collect();
        Beat {
            node: self.me().to_string(),
            incarnation: self.args.incarnation,
            seq: self.seq,
            health_score: report.health_score,
            status: serde_json::to_value(report.status).unwrap_or_default(),
            modes: serde_json::to_value(&report.trading.modes).unwrap_or_default(),
            breakers,
            shares,
            held: self
                .held
                .iter()
                .map(|(key, history)| {
                    let shares = history.iter().map(|(s, _)| ShareWire::from(*s)).collect();
                    (key.clone(), shares)
                })
                .collect(),
            view,
        }
    }

    fn publish(&self, live: &BTreeSet<String>, mine: Beat, now: Instant) {
        let after = self.args.config.unreachable_after;
        let mut nodes = vec![NodeView::from_beat(mine, true, Duration::ZERO, true)];
        for (name, peer) in &self.peers {
            let age = now.saturating_duration_since(peer.last_seen);
            nodes.push(NodeView::from_beat(
                peer.beat.clone(),
                false,
                age,
                live.contains(name),
            ));
        }
        let status = FleetStatus::of(self.peers.len(), live.len());
        let mut view = FleetView::new(
            self.me().to_string(),
            status,
            self.largest_seen,
            after,
            self.args.refused.load(Ordering::Relaxed),
            nodes,
            SystemTime::now(),
        );
        view.name_clashes = self.clashes.clone();
        self.args.published.store(Arc::new(view));
    }
}
