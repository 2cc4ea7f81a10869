//! [`SeawallBuilder`]: registering services and spawning the tree.

use super::running_config::RunningConfig;
use super::{BreakerControl, Registered, Seawall, ServiceKey};
use crate::actor::{
    AttemptFn, BreakerActor, BreakerArgs, BreakerMsg, CheckFn, HealthActor, HealthArgs,
    Recoverable, RecoveryActor, RecoveryMsg, RootActor, ServiceActors,
};
use crate::breaker::{CircuitBreaker, SeededJitter};
use crate::cell::BreakerCell;
use crate::clock::now;
use crate::config::{Config, ServiceConfig};
use crate::event::Event;
use crate::handle::{CallError, HealthProbe, ServiceHandle};
use crate::health::report::HealthCache;
use crate::health::score::Thresholds;
use crate::health::HealthShared;
use crate::modes::{Modes, OrderGate};
use crate::recovery::{Reconnect, RecoveryContext, RecoveryStrategy, Revive};
use crate::service::{Evidence, Lifecycle, Service};
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Capacity of the event bus; a subscriber that falls further behind than
/// this sees a `Lagged` error and skips ahead, the tree never blocks.
const EVENT_CAPACITY: usize = 1024;

/// Why the tree could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A service was registered that the config does not describe.
    #[error("service `{name}` is registered but actors.toml has no [services.{name}] table; add one (every key has a default)")]
    NotConfigured {
        /// The registered name.
        name: String,
    },
    /// The same name was registered twice.
    #[error("service `{name}` is registered twice; give each service its own name")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// The config failed validation.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The HTTP face could not listen.
    #[error("cannot listen on {addr} (runtime.http.listen): {source}; pick a free port, or \"127.0.0.1:0\" for any")]
    Listen {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `[fleet]` could not start (the message names the key or variable
    /// and the fix), or this build has no `fleet` feature.
    #[error("{0}")]
    Fleet(String),
    /// The admin token is too short (or too long) to be a secret.
    #[error("SEAWALL_ADMIN_TOKEN is {len} bytes; use {min} to {max} random bytes (such as `openssl rand -hex 32`), or unset it to keep the admin routes off")]
    AdminToken {
        /// Its length.
        len: usize,
        /// The shortest accepted.
        min: usize,
        /// The longest accepted.
        max: usize,
    },
    /// Admin routes would listen beyond loopback in plaintext.
    #[error("runtime.http.listen is {addr}, beyond loopback, and SEAWALL_ADMIN_TOKEN enables plaintext admin routes there; set runtime.http.allow_remote_admin = true (behind TLS), listen on 127.0.0.1, or unset the token")]
    RemoteAdmin {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// A degradation attached in the builder does not fit the service or
    /// `actors.toml` (the error names the key and the fix).
    #[error(transparent)]
    Degradation(#[from] super::DegradationError),
    /// ractor could not spawn an actor of the tree itself.
    #[error("could not spawn the {what} actor: {source}")]
    Spawn {
        /// Which actor.
        what: String,
        /// ractor's error.
        source: SpawnErr,
    },
}

type SpawnFuture = Pin<Box<dyn Future<Output = Result<Registered, StartError>> + Send>>;
type Spawner = Box<dyn FnOnce(SpawnContext) -> SpawnFuture + Send>;

pub(super) struct SpawnContext {
    pub(super) name: Arc<str>,
    pub(super) config: Arc<ServiceConfig>,
    pub(super) parts: SpawnParts,
}

/// What every breaker spawned into the tree shares, at start or at run time.
#[derive(Clone)]
pub(super) struct SpawnParts {
    pub(super) root: ActorCell,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) recovery: ActorRef<RecoveryMsg>,
    pub(super) seed: Option<u64>,
    pub(super) breakers_enabled: bool,
    pub(super) auto_recovery: bool,
    pub(super) gate: Arc<OrderGate>,
    /// The health actor, for every breaker to tell of its changes: filled
    /// by the health actor itself as it starts.
    pub(super) health: Arc<std::sync::OnceLock<ActorRef<crate::actor::HealthMsg>>>,
}

/// Describes a tree: the config plus one factory per service.
pub struct SeawallBuilder {
    config: Config,
    services: Vec<(String, &'static str, Spawner)>,
    admin_token: Option<String>,
    sampler: Option<Box<dyn crate::health::system::SampleSource>>,
    /// Degradations attached in the builder, applied (and checked against
    /// `actors.toml`) once the services run.
    degradations: Vec<AttachDegradation>,
    /// The file a reload re-reads, and how the engine adjusts what it reads.
    config_file: Option<std::path::PathBuf>,
    adjust: Option<super::reload::Adjust>,
    /// Parts for the layers above the runtime (the fleet's TLS), handed to
    /// the tree as its extensions.
    extensions: Vec<(std::any::TypeId, Box<dyn std::any::Any + Send + Sync>)>,
}

/// Attaches one service's degradation to the running tree.
type AttachDegradation = Box<dyn FnOnce(&Seawall) -> Result<(), super::DegradationError> + Send>;

impl SeawallBuilder {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            services: Vec::new(),
            admin_token: std::env::var("SEAWALL_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            sampler: None,
            degradations: Vec::new(),
            config_file: None,
            adjust: None,
            extensions: Vec::new(),
        }
    }

    /// Keeps `part` for the layers above the runtime; the running tree
    /// gives it back by type.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn with_extension<T: std::any::Any + Send + Sync>(mut self, part: T) -> Self {
        self.extensions
            .push((std::any::TypeId::of::<T>(), Box::new(part)));
        self
    }

    /// Registers the service `key` names, built by `factory` once per
    /// service actor; [`Seawall::handle_of`] gives its handle by the same key.
    pub fn register<S, F>(self, key: ServiceKey<S>, factory: F) -> Self
    where
        S: Lifecycle,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.service(key.name(), factory)
    }

    /// [`Self::register`] with the service's own recovery strategy.
    pub fn register_with_recovery<S, F, R>(
        self,
        key: ServiceKey<S>,
        factory: F,
        strategy: R,
    ) -> Self
    where
        S: Lifecycle,
        F: Fn() -> S + Send + Sync + 'static,
        R: RecoveryStrategy<S>,
    {
        self.service_with_recovery(key.name(), factory, strategy)
    }

    /// Attaches the degradation of the service `key` names. It is checked
    /// in [`start`](Self::start): a strategy of another kind than
    /// `[services.NAME.degradation].strategy`, or a key whose service is
    /// not registered with this type, is a start error naming the key.
    pub fn degradation<S: Service>(
        mut self,
        key: ServiceKey<S>,
        strategy: impl crate::degradation::Degradation<S>,
    ) -> Self {
        self.degradations.push(Box::new(move |seawall: &Seawall| {
            seawall.set_degradation(key.name(), strategy).map(drop)
        }));
        self
    }

    /// The bearer token for the HTTP admin routes, instead of
    /// `SEAWALL_ADMIN_TOKEN`; `None` turns them off.
    pub fn admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// Where the health score's CPU, memory and disk figures come from,
    /// instead of sysinfo: a closure returning a `SystemSample` will do.
    /// Tests use it so a score never depends on the machine they run on.
    pub fn system_sampler(mut self, source: impl crate::health::system::SampleSource) -> Self {
        self.sampler = Some(Box::new(source));
        self
    }

    /// Registers service `name`, built by `factory` once per service actor
    /// (`concurrency` times, and again after each restart).
    ///
    /// Its recovery strategy is [`Reconnect`]: restart what is not running
    /// and call [`Lifecycle::reconnect`] on every service actor.
    pub fn service<S, F>(self, name: &str, factory: F) -> Self
    where
        S: Lifecycle,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.service_with_recovery(name, factory, Reconnect)
    }

    /// Registers service `name` with its own recovery strategy (a Kite
    /// re-login, a market-data resubscribe, …).
    pub fn service_with_recovery<S, F, R>(mut self, name: &str, factory: F, strategy: R) -> Self
    where
        S: Lifecycle,
        F: Fn() -> S + Send + Sync + 'static,
        R: RecoveryStrategy<S>,
    {
        let factory: Arc<dyn Fn() -> S + Send + Sync> = Arc::new(factory);
        let strategy = Arc::new(strategy);
        let spawner: Spawner =
            Box::new(move |ctx| Box::pin(spawn_service::<S, R>(ctx, factory, strategy)));
        self.services
            .push((name.to_string(), std::any::type_name::<S>(), spawner));
        self
    }

    /// The file `config` was loaded from, which [`Seawall::reload`] (and
    /// SIGHUP, and the admin reload route) re-read.
    pub fn config_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Like [`Self::config_file`], for an engine that adjusts the config
    /// it read before starting (compressed time in a demo, values from a
    /// secret store): `adjust` is applied to every reloaded config too, so
    /// a reload compares like with like. The result is validated again.
    pub fn config_file_adjusted(
        mut self,
        path: impl Into<std::path::PathBuf>,
        adjust: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> Self {
        self.config_file = Some(path.into());
        self.adjust = Some(Arc::new(adjust));
        self
    }

    /// The config being started.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The admin token, if the admin routes are on.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn admin_token_ref(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Every registered name once, and each one configured.
    fn check_registrations(&self) -> Result<(), StartError> {
        let mut seen = std::collections::HashSet::new();
        for (name, _, _) in &self.services {
            if !seen.insert(name.as_str()) {
                return Err(StartError::Duplicate { name: name.clone() });
            }
            if !self.config.services.contains_key(name) {
                return Err(StartError::NotConfigured { name: name.clone() });
            }
        }
        for name in self.config.services.keys() {
            if !seen.contains(name.as_str()) {
                tracing::debug!(service = %name, "configured but not registered; not started");
            }
        }
        Ok(())
    }

    /// Validates, then spawns the root and everything under it
    /// ([`spawn_under`]). The HTTP face is started above this layer; the
    /// admin token is handed back for it. A start that fails part-way
    /// stops the root, and with it whatever already runs under it.
    pub(crate) async fn spawn_tree(self) -> Result<(Seawall, Option<String>), StartError> {
        self.config.validate("actors.toml")?;
        self.check_registrations()?;
        let config = RunningConfig::new(self.config);
        let (root, _) = Actor::spawn(None, RootActor, ())
            .await
            .map_err(spawn_error("root"))?;
        let tree = match spawn_under(&root, &config, self.services, self.sampler).await {
            Ok(tree) => tree,
            Err(e) => {
                root.stop(None);
                return Err(e);
            }
        };
        let seawall = assemble(Assembly {
            root,
            tree,
            file: self.config_file,
            adjust: self.adjust,
            config,
        });
        for (id, part) in self.extensions {
            seawall.insert_extension(id, part);
        }
        for attach in self.degradations {
            if let Err(e) = attach(&seawall) {
                seawall.shutdown().await;
                return Err(e.into());
            }
        }
        Ok((seawall, self.admin_token))
    }
}

/// The actors under the root, as [`spawn_under`] started them.
struct Spawned {
    recovery: ActorRef<RecoveryMsg>,
    health: ActorRef<crate::actor::HealthMsg>,
    shared: Arc<HealthShared>,
    modes: watch::Receiver<Modes>,
    services: Vec<Registered>,
    parts: SpawnParts,
}

/// Spawns, linked to `root`: the recovery actor, one breaker actor per
/// service with its service actors (in registration order), and the health
/// actor. On an error the caller stops `root`, which stops what did start.
async fn spawn_under(
    root: &ActorRef<()>,
    config: &RunningConfig,
    spawners: Vec<(String, &'static str, Spawner)>,
    sampler: Option<Box<dyn crate::health::system::SampleSource>>,
) -> Result<Spawned, StartError> {
    let (events, _) = broadcast::channel(EVENT_CAPACITY);
    let (recovery, _) = Actor::spawn_linked(None, RecoveryActor, events.clone(), root.get_cell())
        .await
        .map_err(spawn_error("recovery"))?;
    let gate = Arc::new(OrderGate::default());
    let parts = SpawnParts {
        root: root.get_cell(),
        events,
        recovery: recovery.clone(),
        seed: config.runtime.seed,
        breakers_enabled: config.runtime.circuit_breaker_enabled,
        auto_recovery: config.runtime.auto_recovery_enabled,
        gate: Arc::clone(&gate),
        health: Arc::default(),
    };
    let services = spawn_services(config, spawners, &parts).await?;
    let (modes_tx, modes) = watch::channel(Modes::normal(std::time::SystemTime::now()));
    gate.attach(modes.clone());
    let shared = health_shared(config, &services, modes.clone());
    let health_args = health_args(config, &services, &shared, modes_tx, &parts, sampler);
    let (health, _) = Actor::spawn_linked(None, HealthActor, health_args, root.get_cell())
        .await
        .map_err(spawn_error("health"))?;
    Ok(Spawned {
        recovery,
        health,
        shared,
        modes,
        services,
        parts,
    })
}

/// Each registered service's breaker and service actors, in registration order.
async fn spawn_services(
    config: &RunningConfig,
    spawners: Vec<(String, &'static str, Spawner)>,
    parts: &SpawnParts,
) -> Result<Vec<Registered>, StartError> {
    let mut services = Vec::with_capacity(spawners.len());
    for (name, _, spawner) in spawners {
        // The name's `Arc` is the config's key: its text is kept once.
        let (name, table) = config
            .services
            .get_key_value(name.as_str())
            .ok_or(StartError::NotConfigured { name })?;
        let ctx = SpawnContext {
            config: Arc::clone(table),
            name: Arc::clone(name),
            parts: parts.clone(),
        };
        services.push(spawner(ctx).await?);
    }
    Ok(services)
}

/// The spawned parts of a tree, before they become a [`Seawall`].
struct Assembly {
    root: ActorRef<()>,
    tree: Spawned,
    file: Option<std::path::PathBuf>,
    adjust: Option<super::reload::Adjust>,
    config: RunningConfig,
}

/// The running tree: its parts, and the reloader that shares them. The
/// event bus and the order gate are the ones every breaker got (`parts`).
fn assemble(a: Assembly) -> Seawall {
    let Spawned {
        recovery,
        health,
        shared,
        modes,
        services,
        parts,
    } = a.tree;
    let (events, gate) = (parts.events.clone(), Arc::clone(&parts.gate));
    let runtime_breakers = Arc::new(dashmap::DashMap::new());
    let reloader = Arc::new(super::Reloader::new(super::reload::ReloaderParts {
        code: services.iter().map(|s| s.control.clone()).collect(),
        runtime: Arc::clone(&runtime_breakers),
        spawner: parts,
        health: health.clone(),
        shared: Arc::clone(&shared),
        events: events.clone(),
        file: a.file,
        adjust: a.adjust,
        config: a.config,
    }));
    Seawall {
        http: std::sync::Mutex::new(None),
        reloader,
        root: a.root,
        recovery,
        health,
        health_shared: shared,
        modes,
        degradations: dashmap::DashMap::new(),
        extensions: dashmap::DashMap::new(),
        by_name: services
            .iter()
            .enumerate()
            .map(|(i, s)| (Arc::clone(&s.name), i))
            .collect(),
        services,
        events,
        shutdown: CancellationToken::new(),
        tasks: tokio_util::task::TaskTracker::new(),
        gate,
        runtime_breakers,
    }
}

/// What the health actor starts with.
fn health_args(
    config: &RunningConfig,
    services: &[Registered],
    shared: &Arc<HealthShared>,
    modes: watch::Sender<Modes>,
    parts: &SpawnParts,
    sampler: Option<Box<dyn crate::health::system::SampleSource>>,
) -> HealthArgs {
    let runtime = &config.runtime;
    HealthArgs {
        shared: Arc::clone(shared),
        checks: services
            .iter()
            .map(|s| (Arc::clone(&s.name), Arc::clone(&s.check)))
            .collect(),
        modes,
        events: parts.events.clone(),
        check_timeout: runtime.health_check_timeout,
        sample_interval: runtime.system_sample_interval,
        alert_threshold: runtime.health_score_threshold,
        gate: Arc::clone(&parts.gate),
        inbox: Arc::clone(&parts.health),
        sampler,
    }
}

/// The error for an actor of the tree that would not spawn.
fn spawn_error(what: &'static str) -> impl Fn(SpawnErr) -> StartError {
    move |source| StartError::Spawn {
        what: what.to_string(),
        source,
    }
}

/// The health read model: an empty cache, every control, the modes.
fn health_shared(
    config: &RunningConfig,
    services: &[Registered],
    modes: watch::Receiver<Modes>,
) -> Arc<HealthShared> {
    let runtime = &config.runtime;
    Arc::new(HealthShared {
        cache: std::sync::Mutex::new(HealthCache::default()),
        controls: services.iter().map(|s| s.control.clone()).collect(),
        modes,
        thresholds: Thresholds {
            healthy: runtime.health_score_threshold,
            degraded: runtime.degraded_score_threshold,
            critical: runtime.critical_score_threshold,
        },
        check_interval: runtime.health_check_interval,
        config: std::sync::Mutex::new(crate::health::ConfigVersion {
            version: config.version.clone(),
            loaded_at: std::time::SystemTime::now(),
            last_reload_at: None,
            reloads: 0,
        }),
    })
}

pub(super) async fn spawn_service<S: Lifecycle, R: RecoveryStrategy<S>>(
    ctx: SpawnContext,
    factory: Arc<dyn Fn() -> S + Send + Sync>,
    strategy: Arc<R>,
) -> Result<Registered, StartError> {
    let factory = crate::actor::Factory::new(factory);
    let seed = match ctx.parts.seed {
        Some(seed) => seed ^ name_hash(&ctx.name),
        None => fastrand::u64(..),
    };
    let cell = new_cell(&ctx, seed);
    let concurrency = ctx.config.concurrency as usize;
    let actors = Arc::new(ServiceActors::<S>::new(concurrency));
    let probe = HealthProbe::new(factory.clone());
    let args = BreakerArgs {
        cell: Arc::clone(&cell),
        actors: Arc::clone(&actors),
        factory,
        events: ctx.parts.events.clone(),
        recovery: ctx.parts.auto_recovery.then(|| ctx.parts.recovery.clone()),
        health: Arc::clone(&ctx.parts.health),
        seed: seed.rotate_left(17),
    };
    let (actor, _): (ActorRef<_>, _) =
        Actor::spawn_linked(None, BreakerActor::<S>::new(), args, ctx.parts.root.clone())
            .await
            .map_err(|source| StartError::Spawn {
                what: format!("breaker for `{}`", ctx.name),
                source,
            })?;
    let handle = ServiceHandle::new(
        Arc::clone(&cell),
        actors,
        Arc::clone(&ctx.parts.gate),
        probe,
    );
    let control = BreakerControl::new(cell);
    let attempt = recovery_attempt(&handle, &actor, strategy);
    let check = health_check(&handle);
    let _ = ctx.parts.recovery.cast(RecoveryMsg::Register {
        service: Arc::clone(&ctx.name),
        recoverable: Box::new(Recoverable {
            attempt,
            check: Arc::clone(&check),
            control: control.clone(),
            seed: seed.rotate_left(31),
        }),
    });
    Ok(Registered {
        name: ctx.name,
        check,
        handle: Box::new(handle),
        type_name: std::any::type_name::<S>(),
        control,
        actor,
    })
}

/// The published breaker for one service, its machine seeded from `seed`.
fn new_cell(ctx: &SpawnContext, seed: u64) -> Arc<BreakerCell> {
    let started = now();
    let mut machine = CircuitBreaker::with_jitter(
        ctx.config.breaker_settings(),
        started,
        Box::new(SeededJitter::new(seed)),
    );
    if !ctx.parts.breakers_enabled {
        machine.disable("CIRCUIT_BREAKER_ENABLED=false", started);
    }
    Arc::new(BreakerCell::new(
        Arc::clone(&ctx.name),
        machine,
        Arc::clone(&ctx.config),
        Arc::clone(&ctx.parts.gate),
    ))
}

/// One recovery attempt of `strategy`, type-erased for the recovery actor;
/// it revives service actors through the breaker actor.
fn recovery_attempt<S: Service, R: RecoveryStrategy<S>>(
    handle: &ServiceHandle<S>,
    actor: &ActorRef<BreakerMsg>,
    strategy: Arc<R>,
) -> AttemptFn {
    let handle = handle.clone();
    let breaker = actor.clone();
    let revive: Revive = Arc::new(move |timeout| {
        let breaker = breaker.clone();
        Box::pin(async move {
            match breaker
                .call(|reply| BreakerMsg::Revive { reply }, Some(timeout))
                .await
            {
                Ok(ractor::rpc::CallResult::Success(result)) => result,
                _ => Err("breaker actor did not answer".to_string()),
            }
        })
    });
    Arc::new(move |attempt| {
        let ctx = RecoveryContext {
            handle: handle.clone(),
            revive: Arc::clone(&revive),
            attempt,
        };
        let strategy = Arc::clone(&strategy);
        Box::pin(async move { strategy.recover(&ctx).await.map_err(|e| e.to_string()) })
    })
}

/// The service's health check, type-erased for the health and recovery
/// actors; an answer that is neither healthy nor down is `NotImplemented`.
fn health_check<S: Service>(handle: &ServiceHandle<S>) -> CheckFn {
    let handle = handle.clone();
    Arc::new(move || {
        let handle = handle.clone();
        Box::pin(async move {
            match handle.health_check().await {
                Ok(evidence) => Ok(evidence),
                // Throttled, or credentials refused: the dependency
                // answered, but that says neither healthy nor down.
                Err(CallError::Service { outcome, .. }) if !outcome.is_failure() => {
                    Ok(Evidence::NotImplemented)
                }
                Err(e) => Err(e.to_string()),
            }
        })
    })
}

/// A stable hash of a service name, to give each breaker its own jitter
/// stream from one tree-wide seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
