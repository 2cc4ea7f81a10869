//! Reconfiguration without a restart: [`Seawall::reload`](super::Seawall::reload).
//!
//! A trading day cannot stop to change a threshold. A reload re-reads
//! `actors.toml` and the environment, validates the new config *as a
//! whole*, and only then applies it, in place, to every running breaker:
//!
//! 1. parse, apply environment overrides, validate every value — every
//!    problem is collected (unknown keys and bad values alike), each naming
//!    its key and the fix;
//! 2. check what a running tree cannot change: the `[runtime]` table, a
//!    service registered in code disappearing, a service's `concurrency`
//!    (its actor count) or `chaos` phases, and a degradation strategy that
//!    no longer matches the one registered in code;
//! 3. if anything failed, return every problem and change *nothing*;
//! 4. otherwise start the run-time breakers the file adds, hand each
//!    changed table to its breaker ([`BreakerControl`]'s reconfigure keeps
//!    state, metrics, window contents and counters), stop the run-time
//!    breakers the file removed, re-derive the trading modes, and record
//!    the new version.
//!
//! Each reload, applied or refused, is an audit log line and an
//! [`Event::AdminAction`]; an applied one is also an
//! [`Event::ConfigReloaded`]. Reloads run one at a time.
//!
//! When values take effect: thresholds, rate rules and windows on the next
//! recorded outcome (a reload never trips or closes a breaker by itself); a
//! changed `open_timeout` with the *next* open period (the current one keeps
//! its deadline); `call_timeout`, `max_in_flight`, retries and slow start
//! with the next call; the recovery schedule with the next attempt; restart
//! rules with the next crash; mode effects at once. Changed rate limits
//! continue the old limits' schedule, so a reload never grants a fresh burst.

use super::builder::SpawnParts;
use super::registration::spawn_detached;
use super::running_config::RunningConfig;
use super::{BreakerControl, Registered};
use crate::actor::HealthMsg;
use crate::config::{Config, ConfigError, Problem, ServiceConfig, StrategyKind};
use crate::event::{Event, ReloadSummary};
use crate::health::HealthShared;
use arc_swap::ArcSwap;
use ractor::ActorRef;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The tree was not told which file it runs.
    #[error("no config file to reload; start the tree with SeawallBuilder::config_file(path)")]
    NoFile,
    /// The new config is invalid, or asks for what a running tree cannot
    /// change; every problem is listed, each with its key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A breaker the new file adds could not be started.
    #[error(
        "cannot start breaker `{name}` that the new config adds: {source}; nothing was changed"
    )]
    Start {
        /// The breaker.
        name: String,
        /// Why.
        source: super::StartError,
    },
}

impl ReloadError {
    /// Every problem found, each with its key (empty for `NoFile`, `Start`).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ReloadError::Config(e) => e.problems(),
            _ => &[],
        }
    }
}

/// How an engine derives its running config from the file (see
/// [`super::SeawallBuilder::config_file_adjusted`]); applied to every reload too.
pub(crate) type Adjust = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Everything a reload touches, shared by the tree and its HTTP face.
pub(crate) struct Reloader {
    config: ArcSwap<RunningConfig>,
    file: Option<PathBuf>,
    adjust: Option<Adjust>,
    /// Services registered in code, in registration order.
    code: Vec<BreakerControl>,
    runtime: Arc<dashmap::DashMap<String, Registered>>,
    spawner: SpawnParts,
    health: ActorRef<HealthMsg>,
    shared: Arc<HealthShared>,
    events: broadcast::Sender<Event>,
    /// Degradations registered in code: their kind and failover target.
    degradations: dashmap::DashMap<String, (StrategyKind, Option<String>)>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// What [`Reloader::new`] is built from.
pub(super) struct ReloaderParts {
    pub(super) config: RunningConfig,
    pub(super) file: Option<PathBuf>,
    pub(super) adjust: Option<Adjust>,
    pub(super) code: Vec<BreakerControl>,
    pub(super) runtime: Arc<dashmap::DashMap<String, Registered>>,
    pub(super) spawner: SpawnParts,
    pub(super) health: ActorRef<HealthMsg>,
    pub(super) shared: Arc<HealthShared>,
    pub(super) events: broadcast::Sender<Event>,
}

impl Reloader {
    pub(super) fn new(parts: ReloaderParts) -> Self {
        Self {
            config: ArcSwap::from_pointee(parts.config),
            file: parts.file,
            adjust: parts.adjust,
            code: parts.code,
            runtime: parts.runtime,
            spawner: parts.spawner,
            health: parts.health,
            shared: parts.shared,
            events: parts.events,
            degradations: dashmap::DashMap::new(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// What spawning a breaker at run time needs (reloads and
    /// `register_circuit_breaker` alike).
    pub(super) fn spawner(&self) -> SpawnParts {
        self.spawner.clone()
    }

    /// The config the tree runs now, its service tables shared with the cells.
    pub(crate) fn running(&self) -> Arc<RunningConfig> {
        self.config.load_full()
    }

    /// Remembers a degradation registered in code, which a reload must not contradict.
    pub(super) fn degradation_registered(
        &self,
        service: &str,
        kind: StrategyKind,
        failover: Option<String>,
    ) {
        self.degradations
            .insert(service.to_string(), (kind, failover));
    }

    /// Re-reads the file and the process environment; `who` names the
    /// requester in the audit log ("SIGHUP", a client address).
    pub(crate) async fn reload(&self, who: &str) -> Result<ReloadSummary, ReloadError> {
        let Some(path) = &self.file else {
            return Err(self.refused(who, ReloadError::NoFile));
        };
        // A reload runs inside a trading day: a file that is not a config
        // (a log pointed at by mistake) is refused before it is read.
        const MAX_FILE: u64 = 16 * 1024 * 1024;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.len() > MAX_FILE {
                let error = ConfigError::Invalid {
                    origin: path.display().to_string(),
                    problems: vec![Problem::new(
                        "file",
                        format!(
                            "is {} bytes, more than a config can be ({MAX_FILE})",
                            meta.len()
                        ),
                        "point SeawallBuilder::config_file at actors.toml",
                    )],
                };
                return Err(self.refused(who, error.into()));
            }
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(source) => {
                let error = ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                };
                return Err(self.refused(who, error.into()));
            }
        };
        let origin = path.display().to_string();
        self.reload_text(&text, &origin, who, |key| std::env::var(key).ok())
            .await
    }

    /// Validates `text` (with overrides read through `env`) and applies it.
    pub(crate) async fn reload_text(
        &self,
        text: &str,
        origin: &str,
        who: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ReloadSummary, ReloadError> {
        let _one = self.one_at_a_time.lock().await;
        let mut new = match Config::from_toml_with_env(text, origin, env) {
            Ok(new) => new,
            Err(e) => return Err(self.refused(who, e.into())),
        };
        if let Some(adjust) = &self.adjust {
            adjust(&mut new);
            if let Err(e) = new.validate(origin) {
                return Err(self.refused(who, e.into()));
            }
        }
        let old = self.running();
        let new = RunningConfig::reusing(new, Some(&old));
        let problems = self.unchangeable(&old, &new);
        if !problems.is_empty() {
            let error = ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            };
            return Err(self.refused(who, error.into()));
        }
        let added = self.start_added(&old, &new).await;
        let added = match added {
            Ok(added) => added,
            Err(e) => return Err(self.refused(who, e)),
        };
        let changed = self.apply_changed(&old, &new);
        let removed = self.stop_removed(&old, &new).await;
        let version = new.version.clone();
        self.config.store(Arc::new(new));
        let _ = self.health.cast(HealthMsg::Reconfigured);
        {
            let mut recorded = self.shared.config.lock().unwrap_or_else(|p| p.into_inner());
            recorded.version.clone_from(&version);
            recorded.last_reload_at = Some(std::time::SystemTime::now());
            recorded.reloads += 1;
        }
        let summary = ReloadSummary {
            version,
            source: origin.to_string(),
            changed,
            added: added.into_iter().collect(),
            removed,
        };
        tracing::warn!(action = "config reload", client = who, version = %summary.version,
            changed = ?summary.changed, added = ?summary.added, removed = ?summary.removed,
            "admin action");
        self.audit(who, None);
        let _ = self.events.send(Event::ConfigReloaded(summary.clone()));
        Ok(summary)
    }

    /// Logs and announces a refused reload; hands the error back.
    fn refused(&self, who: &str, error: ReloadError) -> ReloadError {
        tracing::error!(action = "config reload", client = who, %error,
            "admin action refused: config reload changed nothing");
        self.audit(who, Some(format!("refused: {error}")));
        error
    }

    fn audit(&self, who: &str, reason: Option<String>) {
        let _ = self.events.send(Event::AdminAction {
            action: Arc::from("config reload"),
            service: Arc::from(""),
            client: who.to_string(),
            reason,
        });
    }

    /// What the new config asks for that a running tree cannot do.
    fn unchangeable(&self, old: &RunningConfig, new: &RunningConfig) -> Vec<Problem> {
        let mut problems = runtime_changes(old, new);
        for control in &self.code {
            let name = control.name();
            let Some(table) = new.services.get(name) else {
                problems.push(Problem::new(
                    format!("services.{name}"),
                    "is gone, but the service is registered in code (SeawallBuilder::service) and runs its own actors",
                    format!("restore [services.{name}], or restart the engine without it"),
                ));
                continue;
            };
            problems.extend(start_only_changes(name, &control.config(), table));
            if let Some(entry) = self.degradations.get(name) {
                let (kind, failover) = entry.value();
                if table.degradation.strategy != *kind || table.degradation.failover_to != *failover
                {
                    problems.push(Problem::new(
                        format!("services.{name}.degradation.strategy"),
                        format!(
                            "would become {:?} (failover_to {:?}), but a {kind:?} strategy (failover_to {failover:?}) is registered in code",
                            table.degradation.strategy, table.degradation.failover_to
                        ),
                        "keep the strategy and failover_to the code registered, or restart with a matching registration",
                    ));
                }
            }
        }
        for entry in self.runtime.iter() {
            if let Some(table) = new.services.get(entry.key().as_str()) {
                problems.extend(start_only_changes(
                    entry.key(),
                    &entry.control.config(),
                    table,
                ));
            }
        }
        problems
    }

    /// Starts a run-time breaker for each table the new file adds. On a
    /// failure the ones already started are stopped again.
    async fn start_added(
        &self,
        old: &RunningConfig,
        new: &RunningConfig,
    ) -> Result<BTreeSet<String>, ReloadError> {
        let mut started = BTreeSet::new();
        for (name, table) in &new.services {
            if old.services.contains_key(name) || self.is_running(name) {
                continue;
            }
            match spawn_detached(name, Arc::clone(table), self.spawner.clone()).await {
                Ok(registered) => {
                    self.runtime.insert(name.to_string(), registered);
                    started.insert(name.to_string());
                }
                Err(source) => {
                    for name in &started {
                        if let Some((_, r)) = self.runtime.remove(name) {
                            stop(r, old.runtime.shutdown_grace).await;
                        }
                    }
                    return Err(ReloadError::Start {
                        name: name.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(started)
    }

    fn is_running(&self, name: &str) -> bool {
        self.runtime.contains_key(name) || self.code.iter().any(|c| c.name() == name)
    }

    /// Hands every changed table to its running breaker.
    fn apply_changed(&self, old: &RunningConfig, new: &RunningConfig) -> Vec<String> {
        let mut changed = Vec::new();
        let runtime: Vec<BreakerControl> = self.runtime.iter().map(|r| r.control.clone()).collect();
        for control in self.code.iter().chain(runtime.iter()) {
            let name = control.name();
            let (Some(before), Some(after)) = (old.services.get(name), new.services.get(name))
            else {
                continue;
            };
            if before != after {
                control.reconfigure(Arc::clone(after));
                changed.push(name.to_string());
            }
        }
        changed
    }

    /// Stops the run-time breakers whose tables the new file dropped.
    /// Breakers registered through the API, never in a file, are kept.
    async fn stop_removed(&self, old: &RunningConfig, new: &RunningConfig) -> Vec<String> {
        let mut removed = Vec::new();
        for name in old.services.keys() {
            if new.services.contains_key(name) {
                continue;
            }
            if let Some((_, registered)) = self.runtime.remove(&**name) {
                stop(registered, old.runtime.shutdown_grace).await;
                removed.push(name.to_string());
            }
        }
        removed
    }
}

/// Stops one run-time breaker: refuse new calls, drain, stop its actor.
async fn stop(registered: Registered, grace: std::time::Duration) {
    registered.control.begin_closing();
    registered.stop_actor(grace).await;
}

/// `[runtime]` keys that differ: the tree's shape and its actors' intervals
/// are fixed at start.
fn runtime_changes(old: &RunningConfig, new: &RunningConfig) -> Vec<Problem> {
    let as_map = |c: &RunningConfig| match serde_json::to_value(&c.runtime) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (as_map(old), as_map(new));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let fleet = (old.fleet != new.fleet).then(|| {
        Problem::new(
            "fleet",
            "cannot change while the engine runs (its node server and membership are set at start)",
            "put the old [fleet] table back to reload the rest, or restart the engine to apply it",
        )
    });
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| {
            let show = |v: Option<&serde_json::Value>| {
                v.map_or_else(|| "unset".to_string(), ToString::to_string)
            };
            Problem::new(
                format!("runtime.{key}"),
                format!(
                    "cannot change while the engine runs (was {}, now {})",
                    show(before.get(key)),
                    show(after.get(key))
                ),
                "put the old value back to reload the rest, or restart the engine to apply it",
            )
        })
        .chain(fleet)
        .collect()
}

/// Keys of one service that only a restart can change.
fn start_only_changes(name: &str, before: &ServiceConfig, after: &ServiceConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    if before.concurrency != after.concurrency {
        problems.push(Problem::new(
            format!("services.{name}.concurrency"),
            format!(
                "cannot change while the engine runs (was {}, now {}): it is the number of service actors",
                before.concurrency, after.concurrency
            ),
            "put the old value back, or restart the engine to apply it",
        ));
    }
    if before.chaos != after.chaos {
        problems.push(Problem::new(
            format!("services.{name}.chaos"),
            "cannot change while the engine runs: chaos phases are scheduled when the service starts",
            "put the old phases back, or restart the engine to apply them",
        ));
    }
    problems
}
