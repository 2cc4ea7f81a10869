//! [`SeawallBuilder`]: registering services and spawning the tree.

use super::{BreakerControl, Registered, Seawall};
use crate::actor::{BreakerActor, BreakerArgs, RootActor, ServiceActors};
use crate::breaker::{CircuitBreaker, SeededJitter};
use crate::cell::{now, BreakerCell};
use crate::config::{Config, ServiceConfig};
use crate::event::Event;
use crate::handle::ServiceHandle;
use crate::service::Service;
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Capacity of the event bus; a subscriber that falls further behind than
/// this sees a `Lagged` error and skips ahead, the tree never blocks.
const EVENT_CAPACITY: usize = 1024;

/// Why the tree could not start.
#[derive(Debug, thiserror::Error)]
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

struct SpawnContext {
    name: Arc<str>,
    config: Arc<ServiceConfig>,
    root: ActorCell,
    events: broadcast::Sender<Event>,
    seed: Option<u64>,
    breakers_enabled: bool,
}

/// Describes a tree: the config plus one factory per service.
pub struct SeawallBuilder {
    config: Config,
    services: Vec<(String, &'static str, Spawner)>,
}

impl SeawallBuilder {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            services: Vec::new(),
        }
    }

    /// Registers service `name`, built by `factory` once per service actor
    /// (`concurrency` times, and again after each restart).
    pub fn service<S, F>(mut self, name: &str, factory: F) -> Self
    where
        S: Service,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let factory: Arc<dyn Fn() -> S + Send + Sync> = Arc::new(factory);
        let spawner: Spawner = Box::new(move |ctx| Box::pin(spawn_service::<S>(ctx, factory)));
        self.services
            .push((name.to_string(), std::any::type_name::<S>(), spawner));
        self
    }

    /// Validates, then spawns the root, one breaker actor per service and
    /// their service actors, in registration order.
    pub async fn start(self) -> Result<Seawall, StartError> {
        self.config.validate("actors.toml")?;
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
        let (root, _) =
            Actor::spawn(None, RootActor, ())
                .await
                .map_err(|source| StartError::Spawn {
                    what: "root".to_string(),
                    source,
                })?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let mut services = Vec::with_capacity(self.services.len());
        for (name, _, spawner) in self.services {
            let ctx = SpawnContext {
                config: Arc::new(self.config.services[&name].clone()),
                name: Arc::from(name.as_str()),
                root: root.get_cell(),
                events: events.clone(),
                seed: self.config.runtime.seed,
                breakers_enabled: self.config.runtime.circuit_breaker_enabled,
            };
            match spawner(ctx).await {
                Ok(registered) => services.push(registered),
                Err(e) => {
                    root.stop(None);
                    return Err(e);
                }
            }
        }
        Ok(Seawall {
            config: Arc::new(self.config),
            root,
            services,
            events,
            shutdown: CancellationToken::new(),
        })
    }
}

async fn spawn_service<S: Service>(
    ctx: SpawnContext,
    factory: Arc<dyn Fn() -> S + Send + Sync>,
) -> Result<Registered, StartError> {
    let started = now();
    let jitter = match ctx.seed {
        Some(seed) => SeededJitter::new(seed ^ name_hash(&ctx.name)),
        None => SeededJitter::new(fastrand::u64(..)),
    };
    let mut machine =
        CircuitBreaker::with_jitter(ctx.config.breaker_settings(), started, Box::new(jitter));
    if !ctx.breakers_enabled {
        machine.disable("CIRCUIT_BREAKER_ENABLED=false", started);
    }
    let concurrency = ctx.config.concurrency as usize;
    let cell = Arc::new(BreakerCell::new(
        Arc::clone(&ctx.name),
        machine,
        concurrency,
        ctx.config.max_in_flight,
    ));
    let actors = Arc::new(ServiceActors::<S>::new(concurrency));
    let args = BreakerArgs {
        cell: Arc::clone(&cell),
        actors: Arc::clone(&actors),
        factory,
        events: ctx.events,
    };
    let (actor, _): (ActorRef<_>, _) =
        Actor::spawn_linked(None, BreakerActor::<S>::new(), args, ctx.root)
            .await
            .map_err(|source| StartError::Spawn {
                what: format!("breaker for `{}`", ctx.name),
                source,
            })?;
    let handle = ServiceHandle::new(Arc::clone(&cell), actors, ctx.config.call_timeout);
    Ok(Registered {
        name: ctx.name,
        handle: Box::new(handle),
        type_name: std::any::type_name::<S>(),
        control: BreakerControl::new(cell, ctx.config),
        actor,
    })
}

/// A stable hash of a service name, to give each breaker its own jitter
/// stream from one tree-wide seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
