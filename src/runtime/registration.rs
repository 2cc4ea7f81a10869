//! The seed's `register_circuit_breaker(name, config)`: breakers added while
//! the tree runs, for code that is not a service actor yet and reaches its
//! dependency through `execute_with_resilience`.
//!
//! A run-time breaker is a full breaker of the tree — its actor drives the
//! Open → HalfOpen timer and publishes transitions on the event bus — but it
//! owns no dependency: its one service actor never takes a call. It is not
//! in the health report, the HTTP face or the trading modes, which follow
//! the services the tree started with.

use super::builder::{spawn_service, SpawnContext, SpawnParts};
use super::{BreakerControl, Seawall};
use crate::config::{ConfigError, ServiceConfig};
use crate::recovery::Reconnect;
use crate::service::Service;
use std::sync::Arc;

/// Why a breaker could not be added at run time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The name is taken by a service or another run-time breaker.
    #[error("a breaker named `{name}` already exists; choose another name")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The config failed validation.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The tree is shutting down, or its actor could not be spawned.
    #[error(transparent)]
    Start(#[from] super::StartError),
}

/// The service behind a run-time breaker: it never takes a call, because
/// `execute_with_resilience` runs the caller's own code under the breaker.
struct Detached;

#[derive(Debug, thiserror::Error)]
#[error("a run-time breaker has no service of its own; use execute_with_resilience")]
struct NoService;

impl Service for Detached {
    type Request = ();
    type Response = ();
    type Error = NoService;
    type Policy = crate::service::DefaultPolicy;
    async fn call(&mut self, _: ()) -> Result<(), NoService> {
        Err(NoService)
    }
}

impl crate::service::Lifecycle for Detached {}

/// Spawns a breaker that owns no dependency (see the module docs).
pub(super) async fn spawn_detached(
    name: &str,
    config: Arc<ServiceConfig>,
    parts: SpawnParts,
) -> Result<super::Registered, super::StartError> {
    let ctx = SpawnContext {
        name: Arc::from(name),
        config,
        parts,
    };
    spawn_service::<Detached, Reconnect>(ctx, Arc::new(|| Detached), Arc::new(Reconnect)).await
}

impl Seawall {
    /// Adds breaker `name` with `config` to the running tree (the seed's
    /// `register_circuit_breaker`). Use it with
    /// [`Self::execute_with_resilience`] and its variants; its controls come
    /// from [`Self::control`].
    pub async fn register_circuit_breaker(
        &self,
        name: &str,
        config: ServiceConfig,
    ) -> Result<BreakerControl, RegisterError> {
        if self.control(name).is_some() {
            return Err(RegisterError::Duplicate {
                name: name.to_string(),
            });
        }
        let mut problems = Vec::new();
        config.problems(name, &|other| self.control(other).is_some(), &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                origin: format!("register_circuit_breaker(\"{name}\")"),
                problems,
            }
            .into());
        }
        let registered = spawn_detached(name, Arc::new(config), self.reloader.spawner()).await?;
        let control = registered.control.clone();
        self.runtime_breakers.insert(name.to_string(), registered);
        tracing::info!(breaker = %name, "breaker registered at run time");
        Ok(control)
    }
}
