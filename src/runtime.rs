//! [`Seawall`]: spawning the tree, finding handles, and shutting down.
//!
//! ```no_run
//! # use seawall::{Seawall, Service, ServiceKey, config::Config};
//! # struct Kite;
//! # #[derive(Debug, thiserror::Error)] #[error("kite")] struct KiteError;
//! # impl Service for Kite {
//! #     type Request = String; type Response = f64; type Error = KiteError;
//! #     type Policy = seawall::DefaultPolicy;
//! #     async fn call(&mut self, _symbol: String) -> Result<f64, KiteError> { Ok(1.0) }
//! # }
//! # impl seawall::Lifecycle for Kite {}
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Declared once: the name of the service's table in actors.toml, and its type.
//! const KITE: ServiceKey<Kite> = ServiceKey::new("kite_api");
//!
//! let config = Config::load("actors.toml")?;
//! let seawall = Seawall::builder(config)
//!     .register(KITE, || Kite)
//!     .start()
//!     .await?;
//! let kite = seawall.handle_of(KITE)?;
//! let price = kite.call("NSE:INFY".to_string()).await?;
//! seawall.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Services are spawned in registration order and stopped in reverse order.
//! Shutdown first refuses new calls, then lets every service actor drain the
//! requests already in its mailbox (each is answered), then stops the actors.

mod builder;
mod key;

mod registration;
mod reload;
mod resilience;
mod running_config;
pub(crate) use running_config::RunningConfig;

pub use crate::cell::BreakerControl;
pub use builder::{SeawallBuilder, StartError};
pub use key::ServiceKey;
pub use registration::RegisterError;
pub use reload::ReloadError;
pub(crate) use reload::Reloader;
pub use resilience::DegradationError;

use crate::actor::BreakerMsg;
use crate::config::Config;
use crate::event::Event;
use crate::handle::ServiceHandle;
use crate::service::Service;
use ractor::ActorRef;
use std::any::Any;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Lists every breaker of a running tree (see `Seawall::controls_source`).
pub(crate) type ControlsSource = Arc<dyn Fn() -> Vec<BreakerControl> + Send + Sync>;

/// A running supervision tree.
pub struct Seawall {
    http: std::sync::Mutex<Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>>,
    /// The config, its file, and what a reload touches.
    reloader: Arc<Reloader>,
    root: ActorRef<()>,
    recovery: ActorRef<crate::actor::RecoveryMsg>,
    health: ActorRef<crate::actor::HealthMsg>,
    health_shared: Arc<crate::health::HealthShared>,
    modes: tokio::sync::watch::Receiver<crate::modes::Modes>,
    degradations: dashmap::DashMap<String, Box<dyn Any + Send + Sync>>,
    /// Parts started above the runtime (the fleet), one per type, so the
    /// layers above can find each other through the tree they share.
    extensions: dashmap::DashMap<std::any::TypeId, Box<dyn Any + Send + Sync>>,
    /// Breakers added with `register_circuit_breaker` while running.
    runtime_breakers: Arc<dashmap::DashMap<String, Registered>>,
    /// The services registered at start, in registration order.
    services: Vec<Registered>,
    /// Where each of them is in `services`: a lookup by name is one hash,
    /// not a scan (thousands of services, an HTTP route per breaker).
    by_name: std::collections::HashMap<Arc<str>, usize>,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
    /// The tree's own tasks outside its actors (degradation watchers):
    /// tracked, so shutdown waits for them.
    tasks: tokio_util::task::TaskTracker,
    /// The one order gate, shared with every handle.
    gate: Arc<crate::modes::OrderGate>,
}

struct Registered {
    name: Arc<str>,
    check: crate::actor::CheckFn,
    handle: Box<dyn Any + Send + Sync>,
    type_name: &'static str,
    control: BreakerControl,
    actor: ActorRef<BreakerMsg>,
}

impl Registered {
    /// Asks the breaker actor to drain its service actors within `grace`
    /// and stop; kills it if it does not answer in twice that.
    async fn stop_actor(&self, grace: std::time::Duration) {
        let asked = self
            .actor
            .call(
                |reply| BreakerMsg::Shutdown { grace, reply },
                Some(grace + grace),
            )
            .await;
        if !matches!(asked, Ok(ractor::rpc::CallResult::Success(()))) {
            tracing::warn!(service = %self.name, "breaker actor did not stop in time; killing it");
            self.actor.kill();
        }
        let _ = self.actor.wait(Some(grace)).await;
    }
}

/// Why [`Seawall::handle`] could not give a handle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleError {
    /// No service of that name was registered.
    #[error("no service named `{name}` is running; registered: {registered}; register it with SeawallBuilder::service")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names that exist.
        registered: String,
    },
    /// The service exists but runs a different type.
    #[error("service `{name}` runs {actual}, not {requested}; ask for handle::<{actual}>, or declare its key as ServiceKey<{actual}>")]
    WrongType {
        /// The name asked for.
        name: String,
        /// The type asked for.
        requested: &'static str,
        /// The type registered.
        actual: &'static str,
    },
}

impl Seawall {
    /// Starts describing a tree from `config`.
    pub fn builder(config: Config) -> SeawallBuilder {
        SeawallBuilder::new(config)
    }

    /// The effective configuration (file plus environment overrides), as
    /// last loaded: a reload replaces it.
    ///
    /// The running tree keeps each service's table once, shared with its
    /// breaker, so this copies the tables into a fresh [`Config`] on each
    /// call: keep the result rather than calling it per request.
    pub fn config(&self) -> Arc<Config> {
        Arc::new(self.reloader.running().to_config())
    }

    /// The config the tree runs now, without copying it: what the layers
    /// above read (`[runtime.http]`, `[fleet]`) instead of [`Self::config`].
    pub(crate) fn running_config(&self) -> Arc<RunningConfig> {
        self.reloader.running()
    }

    /// Re-reads the config file ([`SeawallBuilder::config_file`]) and the
    /// environment, and applies the new config in place if it is valid as
    /// a whole; otherwise changes nothing and returns every problem. See
    /// [`ReloadError`] and the `reload` module docs for what can change.
    pub async fn reload(&self) -> Result<crate::ReloadSummary, ReloadError> {
        self.reloader.reload("api").await
    }

    /// Like [`Self::reload`], from `text` with overrides read through `env`
    /// (for configs kept elsewhere than a file, and for tests).
    pub async fn reload_from_str(
        &self,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::ReloadSummary, ReloadError> {
        self.reloader.reload_text(text, "api", "api", env).await
    }

    /// Reloads on every SIGHUP until shutdown (the systemd `ExecReload`
    /// convention); a refused reload is logged with every problem and
    /// changes nothing. Unix only.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let reloader = Arc::clone(&self.reloader);
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    got = hangups.recv() => if got.is_none() { break },
                }
                // Errors are logged by the reloader with every problem.
                let _ = reloader.reload("SIGHUP").await;
            }
        });
        Ok(())
    }

    /// The bus's sender, for the HTTP face's audit events.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn event_sender(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    /// The reloader, for the HTTP face's reload route.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn reloader(&self) -> Arc<Reloader> {
        Arc::clone(&self.reloader)
    }

    /// The handle of the service `key` names, typed by the key.
    pub fn handle_of<S: Service>(
        &self,
        key: ServiceKey<S>,
    ) -> Result<ServiceHandle<S>, HandleError> {
        self.handle(key.name())
    }

    /// The typed handle for service `name` ([`Self::handle_of`] keeps the
    /// name and the type together).
    pub fn handle<S: Service>(&self, name: &str) -> Result<ServiceHandle<S>, HandleError> {
        let entry = self.registered(name).ok_or_else(|| HandleError::Unknown {
            name: name.to_string(),
            registered: self.names().collect::<Vec<_>>().join(", "),
        })?;
        entry
            .handle
            .downcast_ref::<ServiceHandle<S>>()
            .cloned()
            .ok_or(HandleError::WrongType {
                name: name.to_string(),
                requested: std::any::type_name::<S>(),
                actual: entry.type_name,
            })
    }

    /// The controls of breaker `name`, registered at start or at run time.
    pub fn control(&self, name: &str) -> Option<BreakerControl> {
        self.breaker(name)
            .cloned()
            .or_else(|| self.runtime_breakers.get(name).map(|r| r.control.clone()))
    }

    /// The untyped breaker controls for service `name` (for operators and
    /// the HTTP layer).
    pub fn breaker(&self, name: &str) -> Option<&BreakerControl> {
        self.registered(name).map(|s| &s.control)
    }

    /// A service registered at start, by name.
    fn registered(&self, name: &str) -> Option<&Registered> {
        self.by_name.get(name).map(|&i| &self.services[i])
    }

    /// Every breaker, in registration order.
    pub fn breakers(&self) -> impl Iterator<Item = &BreakerControl> {
        self.services.iter().map(|s| &s.control)
    }

    /// The registered service names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|s| &*s.name)
    }

    /// The trading modes, updated the moment a breaker moves. Await
    /// `changed()` (or `wait_for`) to react; `borrow()` for the current modes.
    pub fn modes(&self) -> tokio::sync::watch::Receiver<crate::modes::Modes> {
        self.modes.clone()
    }

    /// The comprehensive health report, built from cached state (no I/O).
    pub fn health_report(&self) -> crate::health::HealthReport {
        self.health_shared.report()
    }

    /// Reports the engine's own trading metrics, for the score's trading component.
    pub fn report_trading_metrics(&self, metrics: crate::health::TradingMetrics) {
        let _ = self.health.cast(crate::actor::HealthMsg::Trading(metrics));
    }

    /// Where the HTTP endpoints listen, when `[runtime.http]` is set.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.lock().ok()?.as_ref().map(|(addr, _)| *addr)
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The health read model the HTTP face reads.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn health_shared(&self) -> Arc<crate::health::HealthShared> {
        Arc::clone(&self.health_shared)
    }

    /// Records the HTTP face's address and task, stopped at shutdown.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn serving(&self, served: (std::net::SocketAddr, tokio::task::JoinHandle<()>)) {
        if let Ok(mut http) = self.http.lock() {
            *http = Some(served);
        }
    }

    /// Runs `task` as one of the tree's own: shutdown cancels its token
    /// first and then waits for it (within `shutdown_grace`).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn spawn_tracked(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.tasks.spawn(task);
    }

    /// Every breaker now, code-registered and added at run time, as a
    /// function the layers above can call whenever they need the list.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn controls_source(&self) -> ControlsSource {
        let code: Vec<BreakerControl> = self.breakers().cloned().collect();
        let runtime = Arc::clone(&self.runtime_breakers);
        Arc::new(move || {
            code.iter()
                .cloned()
                .chain(runtime.iter().map(|r| r.control.clone()))
                .collect()
        })
    }

    /// Keeps `part` with the tree (one per type; a second replaces the first).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn set_extension<T: Any + Send + Sync>(&self, part: T) {
        self.extensions
            .insert(std::any::TypeId::of::<T>(), Box::new(part));
    }

    pub(crate) fn insert_extension(&self, id: std::any::TypeId, part: Box<dyn Any + Send + Sync>) {
        self.extensions.insert(id, part);
    }

    /// The part of type `T` kept with [`Self::set_extension`].
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn extension<T: Any + Clone>(&self) -> Option<T> {
        self.extensions
            .get(&std::any::TypeId::of::<T>())
            .and_then(|p| p.downcast_ref::<T>().cloned())
    }

    /// Cancelled when shutdown begins; tasks of the engine can select on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the tree: new calls are refused, services stop in reverse
    /// registration order, and each answers the calls it already holds
    /// (within `runtime.shutdown_grace`) before it stops.
    ///
    /// A tree dropped without it (an early return, a panic unwinding
    /// through the engine) stops abruptly instead: see the `Drop` impl.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let grace = self.reloader.running().runtime.shutdown_grace;
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
        for service in self.services.iter().rev() {
            service.control.begin_closing();
        }
        let server = self.http.lock().ok().and_then(|mut h| h.take());
        if let Some((_, task)) = server {
            let _ = tokio::time::timeout(grace, task).await;
        }
        let runtime: Vec<Registered> = self
            .runtime_breakers
            .iter()
            .map(|r| r.key().clone())
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|name| self.runtime_breakers.remove(&name).map(|(_, r)| r))
            .collect();
        for service in &runtime {
            service.control.begin_closing();
        }
        // No recovery attempt may restart a service that is being stopped.
        let _ = self.recovery.stop_and_wait(None, Some(grace)).await;
        let _ = self.health.stop_and_wait(None, Some(grace)).await;
        for service in runtime.iter().chain(self.services.iter().rev()) {
            service.stop_actor(grace).await;
        }
        let _ = self.root.stop_and_wait(None, Some(grace)).await;
    }
}

/// A tree dropped without [`Seawall::shutdown`] (an early return with `?`,
/// a panic unwinding through the engine) would otherwise run on with nobody
/// holding it: its handles still calling the dependencies, its HTTP port
/// taken from the next tree. Dropping it stops it at once: new calls are
/// refused, the HTTP face, the fleet and the watchers stop, and the root
/// actor stops, which kills every actor below it. Calls in flight are not
/// drained; `shutdown()` is the graceful way. After `shutdown()` this finds
/// everything already stopped and does nothing more.
impl Drop for Seawall {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.close();
        for service in &self.services {
            service.control.begin_closing();
        }
        for service in self.runtime_breakers.iter() {
            service.control.begin_closing();
        }
        let server = self.http.get_mut().ok().and_then(Option::take);
        if let Some((_, task)) = server {
            task.abort();
        }
        self.root
            .stop(Some("the tree was dropped without shutdown".to_string()));
    }
}
