//! The HTTP face: the seed's health endpoints, probes, Prometheus metrics
//! and the operator's breaker controls.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/system/health/comprehensive` | the [`HealthReport`](crate::health::HealthReport); 200 when healthy or degraded, 503 when unhealthy or critical |
//! | `GET /api/v1/system/health/circuit-breakers` | every breaker: state, rates, response times, config, `state_changed_at`, `open_until` |
//! | `POST /api/v1/system/health/circuit-breakers/{service}/reset` | admin: back to Closed |
//! | `POST …/{service}/force-open`, `…/disable` | admin: manual states, optional `{"reason": "…"}` body |
//! | `POST /api/v1/system/config/reload` | admin: re-read `actors.toml` and the environment; 200 with what changed, 422 with every problem (nothing changed) |
//! | `GET /api/v1/system/stream` | server-sent events: a snapshot every second, and each transition, mode change, alert, admin action and reload as it happens |
//! | `GET /`, `GET /dashboard` | the live dashboard (compiled in; reads only the stream and the admin routes) |
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
mod dashboard;
mod history;
mod metrics;
mod routes;
mod stream;

use crate::cell::BreakerControl;
use crate::config::Config;
use crate::health::HealthShared;
use crate::modes::Modes;
use crate::runtime::{Seawall, StartError};
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
    /// The bus: admin actions are announced on it, and the live stream reads it.
    pub(crate) events: tokio::sync::broadcast::Sender<crate::event::Event>,
    /// Re-reads the config for the reload route.
    pub(crate) reloader: Arc<crate::runtime::Reloader>,
    /// Live streams open now, and the most allowed at once.
    pub(crate) streams: std::sync::atomic::AtomicUsize,
    pub(crate) max_streams: usize,
    /// Ends the live streams at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// The last minutes of traffic, for a page that has just connected.
    pub(crate) history: history::History,
    /// The fleet this node joined, if any.
    #[cfg(feature = "fleet")]
    pub(crate) fleet: Option<crate::fleet::Fleet>,
}

/// The connection limits of the HTTP face.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A connection that sends no complete request head within this long is
    /// closed: slow headers (slowloris) and idle keep-alive alike.
    pub(crate) idle_timeout: std::time::Duration,
    /// Connections open at once; over it the oldest idle one is closed to
    /// make room, so `/livez` always gets an answer.
    pub(crate) max_connections: usize,
}

/// One open connection: its requests in flight, and a way to close it.
struct Connection {
    in_flight: std::sync::atomic::AtomicU32,
    close: CancellationToken,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Connections(std::sync::Mutex<std::collections::VecDeque<Arc<Connection>>>);

impl Connections {
    /// Registers a new connection; at the cap, closes the oldest idle one
    /// first. `None` when every connection is busy (the new one is refused).
    fn admit(&self, max: usize) -> Option<Arc<Connection>> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            let idle = open
                .iter()
                .position(|c| c.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0)?;
            if let Some(evicted) = open.remove(idle) {
                evicted.close.cancel();
            }
        }
        let connection = Arc::new(Connection {
            in_flight: std::sync::atomic::AtomicU32::new(0),
            close: CancellationToken::new(),
        });
        open.push_back(Arc::clone(&connection));
        Some(connection)
    }

    fn remove(&self, connection: &Arc<Connection>) {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = open.iter().position(|c| Arc::ptr_eq(c, connection)) {
            open.remove(i);
        }
    }
}

/// Refuses an admin token that is no secret, and plaintext admin routes
/// beyond loopback, before anything is spawned.
pub(crate) fn check_admin(config: &Config, token: Option<&str>) -> Result<(), StartError> {
    let Some(http) = &config.runtime.http else {
        return Ok(());
    };
    if let Some(token) = token {
        if !(MIN_TOKEN..=MAX_TOKEN).contains(&token.len()) {
            return Err(StartError::AdminToken {
                len: token.len(),
                min: MIN_TOKEN,
                max: MAX_TOKEN,
            });
        }
        if !http.listen.ip().is_loopback() && !http.allow_remote_admin {
            return Err(StartError::RemoteAdmin { addr: http.listen });
        }
    }
    if !http.listen.ip().is_loopback() {
        tracing::warn!(listen = %http.listen,
            "HTTP endpoints listen beyond loopback; they are plaintext");
    }
    Ok(())
}

/// Serves `[runtime.http]` for a running tree, until its shutdown.
pub(crate) async fn serve_tree(
    seawall: &Seawall,
    admin_token: Option<String>,
) -> Result<(), StartError> {
    let Some(http) = seawall.running_config().runtime.http.clone() else {
        return Ok(());
    };
    let state = HttpState {
        health: seawall.health_shared(),
        controls: seawall.breakers().cloned().collect(),
        modes: seawall.modes(),
        admin_token,
        failures: Default::default(),
        events: seawall.event_sender(),
        reloader: seawall.reloader(),
        streams: Default::default(),
        max_streams: (http.max_connections / 2).max(1),
        shutdown: seawall.shutdown_token(),
        history: Default::default(),
        #[cfg(feature = "fleet")]
        fleet: crate::fleet::Fleet::of(seawall),
    };
    let limits = Limits {
        idle_timeout: http.idle_timeout,
        max_connections: http.max_connections,
    };
    let served = serve(
        http.listen,
        state,
        limits,
        seawall.shutdown_token().child_token(),
    )
    .await?;
    seawall.serving(served);
    Ok(())
}

/// Binds `addr` and serves until `shutdown` is cancelled; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: HttpState,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    let listen = |source| StartError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let state = Arc::new(state);
    let sampler = history::run(Arc::clone(&state));
    let app = routes::router(state);
    tracing::info!(%bound, "serving health endpoints");
    // One task serves and samples the sparklines' history; both end at
    // shutdown, and shutdown awaits the task.
    let task = tokio::spawn(async move {
        tokio::join!(accept_loop(listener, app, limits, shutdown), sampler);
    });
    Ok((bound, task))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Connections::default());
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: back off, keep serving.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some(connection) = connections.admit(limits.max_connections) else {
            drop(stream); // every connection is busy: refuse this one
            continue;
        };
        let app = app.clone();
        let connections = Arc::clone(&connections);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve_connection(stream, peer, app, limits, &connection, shutdown).await;
            connections.remove(&connection);
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    limits: Limits,
    connection: &Arc<Connection>,
    shutdown: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    use tower::ServiceExt;
    let counter = Arc::clone(connection);
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            counter.in_flight.fetch_add(1, Ordering::AcqRel);
            let app = app.clone();
            let counter = Arc::clone(&counter);
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                counter.in_flight.fetch_sub(1, Ordering::AcqRel);
                response
            }
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = connection.close.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}
