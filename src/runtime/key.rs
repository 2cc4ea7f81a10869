//! [`ServiceKey`]: a service's name and type, declared once.
//!
//! Looking a service up by a string plus a turbofish type means keeping the
//! two in step by hand in every place that asks. A key carries both, so
//! registering a service, attaching its degradation and asking for its
//! handle all name the same thing:
//!
//! ```
//! # use seawall::{Seawall, Service, ServiceKey};
//! # struct Feed;
//! # #[derive(Debug, thiserror::Error)] #[error("down")] struct Down;
//! # impl Service for Feed {
//! #     type Request = String; type Response = f64; type Error = Down;
//! #     type Policy = seawall::DefaultPolicy;
//! #     async fn call(&mut self, _: String) -> Result<f64, Down> { Ok(1.0) }
//! # }
//! # impl seawall::Lifecycle for Feed {}
//! const MARKET_DATA: ServiceKey<Feed> = ServiceKey::new("market_data");
//! # async fn run(config: seawall::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let seawall = Seawall::builder(config).register(MARKET_DATA, || Feed).start().await?;
//! let feed = seawall.handle_of(MARKET_DATA)?; // a ServiceHandle<Feed>, no turbofish
//! # Ok(()) }
//! ```

use crate::service::Service;
use std::marker::PhantomData;

/// A service's name in `actors.toml`, with the type that serves it.
pub struct ServiceKey<S> {
    name: &'static str,
    service: PhantomData<fn() -> S>,
}

impl<S: Service> ServiceKey<S> {
    /// The key for `[services.NAME]`, served by `S`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            service: PhantomData,
        }
    }

    /// The name, as in `actors.toml`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<S> Clone for ServiceKey<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for ServiceKey<S> {}

impl<S> std::fmt::Debug for ServiceKey<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServiceKey<{}>({:?})",
            std::any::type_name::<S>(),
            self.name
        )
    }
}
