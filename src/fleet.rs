//! A fleet of engines on ractor_cluster (the `fleet` feature).
//!
//! Several engines that share a broker key and a database are blind to
//! each other unless they talk. With a `[fleet]` table and
//! `SEAWALL_FLEET_COOKIE` set, [`crate::SeawallBuilder::start`] also starts
//! a ractor_cluster node server on `fleet.listen`, dials `fleet.seeds`
//! (connections are transitive: one seed is enough to meet everyone) and
//! spawns one member actor that joins the process group `seawall.fleet`.
//!
//! * **One health view.** Every heartbeat each member tells the others its
//!   score, modes, breakers and shares. A node silent for
//!   `fleet.unreachable_after` is unreachable, whether it crashed or was
//!   stopped; `GET /api/v1/fleet/health` on any node shows them all.
//! * **Shared-dependency breakers.** A service with `shared = "kite:ACCOUNT"`
//!   hints the others when it opens on the dependency's failures (never on
//!   its own crashes): their Closed breakers for that dependency open with
//!   the same reason and the origin named. When it closes after real probe
//!   successes, their Open breakers move to HalfOpen and probe for
//!   themselves. Hints never close a breaker, and a node cut off from the
//!   fleet simply runs on its own evidence.
//! * **One rate budget.** A shared service's rate limits are the fleet's:
//!   the live nodes split them (see `budget.rs`: shrink before grow).
//!
//! Nodes authenticate with the cookie (ractor_cluster's challenge; the
//! cookie never crosses the wire). Traffic is plaintext unless TLS is set
//! up (README, "A fleet of engines"): plaintext is for loopback only.

mod budget;
mod claims;
use claims::Claims;
mod member;
mod view;
mod wire;

pub use view::{FleetStatus, FleetView, NodeView, SharedBreaker};
pub use wire::{BreakerBrief, ShareWire};

use crate::config::{FleetConfig, FLEET_COOKIE_VARIABLE};
use crate::event::Event;
use crate::runtime::Seawall;
use arc_swap::ArcSwap;
use member::{Member, MemberArgs};
use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use wire::{Hint, Wire};

/// Why a fleet could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The cookie is missing: a fleet never starts without one.
    #[error("[fleet] is set but {FLEET_COOKIE_VARIABLE} is not; export the same secret on every node of the fleet (or remove [fleet] to run alone)")]
    NoCookie,
    /// The node server could not start (most often: `fleet.listen` is taken).
    #[error("fleet.listen {addr}: the node server did not start ({reason}); pick a free port, or stop the process holding it")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The fleet member actor did not start.
    #[error("the fleet member did not start ({0}); this is a seawall bug: report it with the log")]
    Member(String),
}

/// TLS for the fleet's links: nodes accept with `acceptor` and dial with
/// `connector`, checking the peer's certificate for `server_name`.
///
/// ractor_cluster dials a peer's peers (transitive joining) in plaintext
/// only, so with TLS the fleet joins in isolated mode: list every other
/// node in `fleet.seeds`.
#[derive(Clone)]
pub struct FleetTls {
    /// Accepts other nodes' connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Dials the seeds.
    pub connector: tokio_rustls::TlsConnector,
    /// The name the seeds' certificates must carry.
    pub server_name: tokio_rustls::rustls::pki_types::ServerName<'static>,
}

impl crate::SeawallBuilder {
    /// Encrypts the fleet's links with `tls` (without it they are
    /// plaintext, for loopback only).
    pub fn fleet_tls(self, tls: FleetTls) -> Self {
        self.with_extension(tls)
    }
}

/// A running fleet membership: read its view, or let shutdown stop it.
#[derive(Clone)]
pub struct Fleet {
    view: Arc<ArcSwap<FleetView>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("node", &self.view.load().node)
            .finish()
    }
}

impl Fleet {
    /// The fleet `seawall` joined at start, if its config has `[fleet]`.
    pub fn of(seawall: &Seawall) -> Option<Fleet> {
        seawall.extension::<Fleet>()
    }

    /// The fleet as this node sees it, as of its last heartbeat.
    pub fn view(&self) -> Arc<FleetView> {
        self.view.load_full()
    }
}

/// Watches this node's links: counts the sessions that closed before they
/// authenticated (a peer with the wrong cookie, without a certificate the
/// fleet's TLS trusts, or no seawall at all), and tells those apart from
/// the links the transport closed because two processes use one node name
/// (see `fleet/claims.rs`), which it notes as claims instead.
struct Links {
    refused: Arc<AtomicU64>,
    /// Authenticated sessions: the peer's node name and address.
    linked: dashmap::DashMap<u64, Option<(String, String)>>,
    /// This node's name and address, as its links name them.
    me: (String, String),
    claims: Arc<std::sync::Mutex<Claims>>,
    /// Whether the links are TLS: the log then names the certificate too.
    tls: bool,
}

/// A peer's node name and address, from the transport's name message
/// (`node@host`, `host:port`).
fn peer_of(ses: &ractor_cluster::node::NodeServerSessionInformation) -> Option<(String, String)> {
    ses.peer_name.as_ref().map(|p| {
        let node = p.name.split_once('@').map_or(p.name.as_str(), |(n, _)| n);
        (node.to_string(), p.connection_string.clone())
    })
}

impl Links {
    /// Whether a closed link was one process too many under a node name:
    /// this node's own from another address, or a linked node's from
    /// another address. Notes both claimants when it was.
    fn name_claimed_twice(&self, node: &str, address: &str) -> bool {
        let (my_name, my_address) = (&self.me.0, &self.me.1);
        let other = if node == my_name {
            (address != my_address).then(|| my_address.clone())
        } else {
            self.linked.iter().find_map(|entry| match entry.value() {
                Some((n, a)) if n == node && a != address => Some(a.clone()),
                _ => None,
            })
        };
        let Some(other) = other else {
            return false;
        };
        if let Ok(mut claims) = self.claims.lock() {
            let now = std::time::Instant::now();
            claims.linked(node, address, now);
            claims.linked(node, &other, now);
        }
        true
    }
}

impl NodeEventSubscription for Links {
    fn node_session_opened(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        let was_linked = self.linked.remove(&ses.node_id).is_some();
        let peer = peer_of(&ses);
        if let Some((node, address)) = &peer {
            if self.name_claimed_twice(node, address) {
                tracing::debug!(peer = %ses.peer_addr, %node, %address, "fleet: closed a link to a second process named {node}");
                return;
            }
            if node == &self.me.0 {
                tracing::debug!(peer = %ses.peer_addr, "fleet: a seed is this node's own address");
                return;
            }
        }
        if was_linked {
            tracing::info!(peer = %ses.peer_addr, "fleet: link to a node closed");
            return;
        }
        if peer.as_ref().is_some_and(|(node, address)| {
            self.linked
                .iter()
                .any(|e| e.value().as_ref() == Some(&(node.clone(), address.clone())))
        }) {
            // Two links to one node at once (both dialled): one is kept.
            tracing::debug!(peer = %ses.peer_addr, "fleet: closed a second link to a linked node");
            return;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let why = if self.tls {
            "wrong SEAWALL_FLEET_COOKIE, or no certificate the fleet's TLS trusts? Or this node's fleet.node is already linked from another process"
        } else {
            "wrong SEAWALL_FLEET_COOKIE? Or this node's fleet.node is already linked from another process"
        };
        tracing::warn!(peer = %ses.peer_addr, "fleet: refused a node that failed authentication ({why})");
    }

    fn node_session_authenticated(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.linked.insert(ses.node_id, peer_of(&ses));
    }
}

/// Joins the fleet `[fleet]` describes, with the cookie from the
/// environment; `Ok(None)` when the config has no `[fleet]`.
pub(crate) async fn join(
    seawall: &Seawall,
    cookie: Option<String>,
) -> Result<Option<Fleet>, FleetError> {
    let config = seawall.running_config();
    let Some(fleet) = config.fleet.clone() else {
        return Ok(None);
    };
    let cookie = cookie
        .filter(|c| !c.is_empty())
        .ok_or(FleetError::NoCookie)?;
    let tls = seawall.extension::<FleetTls>();
    let claims = Arc::new(std::sync::Mutex::new(Claims::default()));
    // This node's address as its links name it (ractor_cluster's `host:port`).
    let address = format!("{}:{}", fleet.listen.ip(), fleet.listen.port());
    let (server, refused) = listen(&fleet, cookie, tls.as_ref(), (&claims, &address)).await?;
    let view = Arc::new(ArcSwap::from_pointee(FleetView::starting(
        fleet.node.clone(),
        fleet.unreachable_after,
    )));
    let redial = Arc::new(tokio::sync::Notify::new());
    let args = MemberArgs {
        config: fleet.clone(),
        incarnation: incarnation(),
        health: seawall.health_shared(),
        controls: seawall.controls_source(),
        published: Arc::clone(&view),
        refused,
        redial: Arc::clone(&redial),
        claims,
        address,
    };
    let member = match Actor::spawn(None, Member, args).await {
        Ok((member, _)) => member,
        Err(e) => {
            server.stop(None);
            return Err(FleetError::Member(e.to_string()));
        }
    };
    seawall.spawn_tracked(dial(
        server.clone(),
        fleet.clone(),
        tls,
        redial,
        seawall.shutdown_token(),
    ));
    seawall.spawn_tracked(hint(seawall, &fleet));
    seawall.spawn_tracked(stop_at_shutdown(server, member, seawall.shutdown_token()));
    tracing::info!(node = %fleet.node, listen = %fleet.listen, seeds = ?fleet.seeds, "fleet: node started");
    Ok(Some(Fleet { view }))
}

/// Starts this node's server on `[fleet].listen` (TLS when configured),
/// counting the connections it refuses.
async fn listen(
    fleet: &FleetConfig,
    cookie: String,
    tls: Option<&FleetTls>,
    (claims, address): (&Arc<std::sync::Mutex<Claims>>, &str),
) -> Result<(ActorRef<NodeServerMessage>, Arc<AtomicU64>), FleetError> {
    let (encryption, mode) = match tls {
        Some(tls) => (
            ractor_cluster::IncomingEncryptionMode::Tls(tls.acceptor.clone()),
            ractor_cluster::node::NodeConnectionMode::Isolated,
        ),
        None => (
            ractor_cluster::IncomingEncryptionMode::Raw,
            ractor_cluster::node::NodeConnectionMode::Transitive,
        ),
    };
    let server = NodeServer::new(
        fleet.listen.port(),
        cookie,
        fleet.node.clone(),
        fleet.listen.ip().to_string(),
        Some(encryption),
        Some(mode),
    )
    .with_listen_addr(fleet.listen.ip());
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| FleetError::Listen {
            addr: fleet.listen,
            reason: e.to_string(),
        })?;
    let refused = Arc::new(AtomicU64::new(0));
    let _ = server.cast(NodeServerMessage::SubscribeToEvents {
        id: "seawall.fleet".to_string(),
        subscription: Box::new(Links {
            refused: Arc::clone(&refused),
            linked: Default::default(),
            me: (fleet.node.clone(), address.to_string()),
            claims: Arc::clone(claims),
            tls: tls.is_some(),
        }),
    });
    Ok((server, refused))
}

/// The cookie as the process environment gives it.
pub(crate) fn cookie_from_env() -> Option<String> {
    std::env::var(FLEET_COOKIE_VARIABLE).ok()
}

fn incarnation() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Dials every seed at start, and again whenever the member finds itself
/// cut off (the others may have restarted on their addresses).
async fn dial(
    server: ActorRef<NodeServerMessage>,
    fleet: FleetConfig,
    tls: Option<FleetTls>,
    redial: Arc<tokio::sync::Notify>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        for seed in &fleet.seeds {
            let dialled = match &tls {
                Some(tls) => {
                    ractor_cluster::client_connect_enc(
                        &server,
                        *seed,
                        tls.connector.clone(),
                        tls.server_name.clone(),
                    )
                    .await
                }
                None => ractor_cluster::client_connect(&server, *seed).await,
            };
            if let Err(e) = dialled {
                tracing::debug!(%seed, error = %e, "fleet: seed not reachable yet");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = redial.notified() => {}
        }
    }
}

/// Tells the others when a breaker for a shared dependency moves on this
/// node's own evidence. It listens on the event bus like any outside
/// subscriber: the tree never waits for the fleet.
fn hint(seawall: &Seawall, fleet: &FleetConfig) -> impl std::future::Future<Output = ()> + Send {
    let mut events = seawall.subscribe();
    let controls = seawall.controls_source();
    let shutdown = seawall.shutdown_token();
    let me = fleet.node.clone();
    async move {
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            let (service, t) = match event {
                Ok(Event::Transition {
                    service,
                    transition,
                }) => (service, transition),
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // The missed events may have held an open: hint again
                    // from what the breakers hold now.
                    let again = open_hints(&me, &controls());
                    tracing::warn!(missed = n, hinted_again = again.len(), "fleet: the event bus outran the hint sender; open shared breakers hinted again");
                    for hint in again {
                        member::tell_all(|| Wire::Hint(hint.clone()));
                    }
                    continue;
                }
                Err(_) => return,
            };
            let Some(shared) = controls()
                .iter()
                .find(|c| c.name() == &*service)
                .and_then(|c| c.config().shared.clone())
            else {
                continue;
            };
            if let Some(hint) = hint_for(&me, shared, &t) {
                member::tell_all(|| Wire::Hint(hint.clone()));
            }
        }
    }
}

/// The hints for every shared breaker that is Open now on this node's own
/// evidence: sent again when the hint sender missed events. A close missed
/// is not sent again (the others' breakers probe on their own timers).
fn open_hints(me: &str, controls: &[crate::BreakerControl]) -> Vec<Hint> {
    controls
        .iter()
        .filter(|c| c.state() == crate::BreakerState::Open)
        .filter_map(|c| {
            let shared = c.config().shared.clone()?;
            hint_for(me, shared, &c.last_trip()?)
        })
        .collect()
}

/// The hint a local transition gives the fleet, if any: opens on the
/// dependency's failures and closes after probe successes. Opens on a
/// crash, an operator's hand, escalation or another node's hint do not.
fn hint_for(me: &str, shared: String, t: &crate::breaker::Transition) -> Option<Hint> {
    use crate::breaker::{BreakerState, TransitionReason as R};
    match (t.to, &t.reason) {
        (
            BreakerState::Open,
            R::ConsecutiveFailures { .. }
            | R::FailureRate { .. }
            | R::SlowCallRate { .. }
            | R::ProbeFailed
            | R::ProbeTimedOut
            | R::ProbeSlow { .. }
            | R::OpenFor { .. },
        ) if !t.crash => Some(Hint::Opened {
            origin: me.to_string(),
            shared,
            reason: t.reason.clone(),
        }),
        (BreakerState::Closed, R::ProbesSucceeded { .. }) => Some(Hint::Closed {
            origin: me.to_string(),
            shared,
        }),
        _ => None,
    }
}

async fn stop_at_shutdown(
    server: ActorRef<NodeServerMessage>,
    member: ActorRef<Wire>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    shutdown.cancelled().await;
    let grace = Duration::from_secs(2);
    let _ = member.stop_and_wait(None, Some(grace)).await;
    let _ = server.stop_and_wait(None, Some(grace)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{BreakerState, Transition, TransitionReason};
    use std::time::Instant;

    fn opened(reason: TransitionReason, crash: bool) -> Transition {
        Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open,
            reason,
            at: Instant::now(),
            epoch: 1,
            open_until: None,
            flap: false,
            crash,
        }
    }

    #[test]
    fn test_hint_for_when_dependency_failed_then_open_hint_else_none() {
        let failures = TransitionReason::ConsecutiveFailures {
            count: 5,
            threshold: 5,
        };
        assert!(matches!(
            hint_for("n1", "k".into(), &opened(failures.clone(), false)),
            Some(Hint::Opened { .. })
        ));
        // Its own crashes, an operator and another node's hint stay local.
        assert!(hint_for("n1", "k".into(), &opened(failures, true)).is_none());
        assert!(hint_for(
            "n1",
            "k".into(),
            &opened(TransitionReason::Manual("x".into()), false)
        )
        .is_none());
        let echoed = TransitionReason::FleetHint {
            origin: "n2".into(),
            reason: Box::new(TransitionReason::ProbeFailed),
        };
        assert!(hint_for("n1", "k".into(), &opened(echoed, false)).is_none());
    }

    fn control(name: &str, shared: Option<&str>) -> crate::BreakerControl {
        let config = crate::config::ServiceConfig {
            shared: shared.map(str::to_string),
            ..crate::config::ServiceConfig::default()
        };
        let gate = Arc::new(crate::modes::OrderGate::default());
        let cell = crate::cell::BreakerCell::for_test(name, config, gate);
        crate::BreakerControl::new(Arc::new(cell))
    }

    #[test]
    fn test_open_hints_when_bus_lagged_then_only_shared_breakers_open_on_evidence_hinted_again() {
        let asked = |c: &crate::BreakerControl| {
            c.cell()
                .apply(|m| m.open_for(std::time::Duration::from_secs(60), crate::clock::now()))
        };
        // Open on the dependency's word: hinted again.
        let kite = control("kite_api", Some("kite:A"));
        asked(&kite);
        // Open, but not shared: stays local.
        let db = control("database", None);
        asked(&db);
        // Shared, opened by an operator: stays local.
        let forced = control("kite_orders", Some("kite:A"));
        forced.force_open("maintenance");
        // Shared, tripped once and closed again since: nothing to hint.
        let healed = control("kite_quotes", Some("kite:A"));
        asked(&healed);
        healed.reset();
        // Shared and never tripped.
        let calm = control("kite_hist", Some("kite:A"));

        let hints = open_hints("n1", &[kite, db, forced, healed, calm]);
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(matches!(
            &hints[0],
            Hint::Opened { origin, shared, reason: TransitionReason::OpenFor { .. } }
                if origin == "n1" && shared == "kite:A"
        ));
    }
}
