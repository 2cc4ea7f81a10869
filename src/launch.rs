//! Starting a tree: the runtime's actors first, then (with the default
//! `http` feature) its HTTP face.
//!
//! This is the top of the crate's layers: it is the one place that knows
//! both the runtime and the HTTP face, so neither has to know the other.

use crate::runtime::{Seawall, SeawallBuilder, StartError};

impl SeawallBuilder {
    /// Validates, then spawns the root, one breaker actor per service and
    /// their service actors (in registration order), the recovery and
    /// health actors, and serves `[runtime.http]`.
    pub async fn start(self) -> Result<Seawall, StartError> {
        #[cfg(feature = "http")]
        crate::http::check_admin(self.config(), self.admin_token_ref())?;
        #[cfg(not(feature = "fleet"))]
        if self.config().fleet.is_some() {
            return Err(StartError::Fleet(
                "actors.toml has a [fleet] table, but seawall was built without its `fleet` feature; enable it (features = [\"fleet\"]) or remove [fleet]".to_string(),
            ));
        }
        let (seawall, admin_token) = self.spawn_tree().await?;
        #[cfg(feature = "fleet")]
        let fleet = match crate::fleet::join(&seawall, crate::fleet::cookie_from_env()).await {
            Ok(fleet) => fleet,
            Err(e) => {
                seawall.shutdown().await;
                return Err(StartError::Fleet(e.to_string()));
            }
        };
        #[cfg(feature = "fleet")]
        if let Some(fleet) = &fleet {
            seawall.set_extension(fleet.clone());
        }
        #[cfg(feature = "http")]
        if let Err(e) = crate::http::serve_tree(&seawall, admin_token).await {
            seawall.shutdown().await;
            return Err(e);
        }
        #[cfg(not(feature = "http"))]
        if seawall.running_config().runtime.http.is_some() {
            drop(admin_token);
            tracing::warn!(
                "[runtime.http] is set, but seawall was built without its `http` feature: no endpoints"
            );
        }
        Ok(seawall)
    }
}
