//! The HTTP face: the seed's health endpoints, probes, Prometheus metrics
//! and the operator's breaker controls.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/system/health/comprehensive` | the [`HealthReport`](crate::health::HealthReport); 200 when healthy or degraded, 503 when unhealthy or critical |
//! | `GET /api/v1/system/health/circuit-breakers` | every breaker: state, rates, response times, config, `state_changed_at`, `open_until` |
//! | `POST /api/v1/system/health/circuit-breakers/{service}/reset` | admin: back to Closed |
//! | `POST …/{service}/force-open`, `…/disable` | admin: manual states, optional `{"reason": "…"}` body |
//! | `GET /livez` | the process is alive; never looks at dependencies |
//! | `GET /readyz` | 503 while trading is Halted |
//! | `GET /metrics` | Prometheus text format |
//!
//! Admin routes need `Authorization: Bearer $SEAWALL_ADMIN_TOKEN`. Without
//! that variable they are off (403 saying how to turn them on); a wrong
//! token gets 401, checked in constant time before the body is read, and
//! repeated failures from one address are throttled (429). Every admin
//! action is logged with what, when and the client address. Every error is
//! JSON `{"detail": …}`.

mod admin;

pub(crate) use admin::{MAX_TOKEN, MIN_TOKEN};
mod metrics;
mod routes;

use crate::actor::HealthShared;
use crate::modes::Modes;
use crate::runtime::BreakerControl;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the handlers read.
pub(crate) struct HttpState {
    pub(crate) health: Arc<HealthShared>,
    pub(crate) controls: Vec<BreakerControl>,
    pub(crate) modes: watch::Receiver<Modes>,
    pub(crate) admin_token: Option<String>,
    /// Failed admin attempts per client, for throttling and logging.
    pub(crate) failures: admin::Failures,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (runtime.http.listen): {source}; pick a free port, or \"127.0.0.1:0\" for any")]
pub struct HttpError {
    /// The address tried.
    pub addr: SocketAddr,
    /// What the OS said.
    pub source: std::io::Error,
}

/// Binds `addr` and serves until `shutdown` is cancelled; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| HttpError { addr, source })?;
    let app = routes::router(Arc::new(state));
    tracing::info!(%bound, "serving health endpoints");
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(error) = served {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    Ok((bound, task))
}
