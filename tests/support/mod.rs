//! A scriptable service shared by the integration tests: each request says
//! how it should behave, and the service counts what actually reached it.

#![allow(dead_code)]

use seawall::config::{Config, ServiceConfig};
use seawall::{Evidence, FailureKind, Outcome, Service};
use seawall::{Lifecycle, Policy};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a request should behave when it reaches the service.
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Ok(u32),
    Fail,
    Business,
    Sleep(Duration),
    Panic,
    /// An order placement: not idempotent, fails.
    PlaceOrderFail,
    /// An order placement: not idempotent, hangs this long.
    PlaceOrderSlow(Duration),
    /// An order placement the broker answers with "order request timed out".
    PlaceOrderAmbiguous,
    /// Works for this long, then panics.
    SleepThenPanic(Duration),
    /// An order placement that reaches the service, which then panics.
    PlaceOrderThenPanic,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TestError {
    #[error("dependency down")]
    Down,
    #[error("rejected for margin")]
    Business,
    #[error("cannot connect")]
    Connect,
    #[error("Order request timed out. Please check the order book")]
    OrderTimedOut,
}

/// Counters shared between the test and every instance of the service.
#[derive(Debug, Default)]
pub struct Probe {
    pub received: AtomicUsize,
    pub started: AtomicUsize,
    /// Start-ups to fail before succeeding.
    pub failing_starts: AtomicUsize,
    /// Start-ups that never finish (a connect into a black hole).
    pub hanging_starts: AtomicUsize,
    pub health_checks: AtomicUsize,
    /// While set, every call fails and reconnect fails.
    pub down: AtomicBool,
    pub reconnects: AtomicUsize,
    /// When each reconnect attempt happened, on tokio's clock.
    pub reconnect_times: Mutex<Vec<tokio::time::Instant>>,
}

impl Probe {
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

pub struct Scripted {
    pub probe: Arc<Probe>,
}

impl Service for Scripted {
    type Request = Req;
    type Response = u32;
    type Error = TestError;
    type Policy = ScriptedPolicy;

    async fn call(&mut self, request: Req) -> Result<u32, TestError> {
        self.probe.received.fetch_add(1, Ordering::SeqCst);
        if self.probe.down.load(Ordering::SeqCst)
            && !matches!(
                request,
                Req::Panic | Req::SleepThenPanic(_) | Req::PlaceOrderThenPanic
            )
        {
            return Err(TestError::Down);
        }
        match request {
            Req::Ok(n) => Ok(n),
            Req::Fail => Err(TestError::Down),
            Req::Business => Err(TestError::Business),
            Req::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(0)
            }
            Req::Panic => panic!("scripted panic"),
            Req::PlaceOrderFail => Err(TestError::Down),
            Req::PlaceOrderSlow(d) => {
                tokio::time::sleep(d).await;
                Ok(1)
            }
            Req::PlaceOrderAmbiguous => Err(TestError::OrderTimedOut),
            Req::PlaceOrderThenPanic => panic!("scripted panic after an order was sent"),
            Req::SleepThenPanic(d) => {
                tokio::time::sleep(d).await;
                panic!("scripted panic after {d:?}")
            }
        }
    }
}

/// How the breaker reads `Scripted`.
pub struct ScriptedPolicy;

impl Policy<Req, u32, TestError> for ScriptedPolicy {
    fn is_idempotent(request: &Req) -> bool {
        !matches!(
            request,
            Req::PlaceOrderFail
                | Req::PlaceOrderSlow(_)
                | Req::PlaceOrderAmbiguous
                | Req::PlaceOrderThenPanic
        )
    }

    fn classify(error: &TestError) -> Outcome {
        match error {
            TestError::Business => Outcome::Ignored,
            TestError::OrderTimedOut => Outcome::Failure(FailureKind::Ambiguous),
            _ => Outcome::Failure(FailureKind::Server),
        }
    }
}

impl Lifecycle for Scripted {
    async fn start(&mut self) -> Result<(), TestError> {
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        if self.probe.down.load(Ordering::SeqCst) {
            return Err(TestError::Connect);
        }
        let left = self.probe.failing_starts.load(Ordering::SeqCst);
        if left > 0 {
            self.probe.failing_starts.store(left - 1, Ordering::SeqCst);
            return Err(TestError::Connect);
        }
        let hanging = self.probe.hanging_starts.load(Ordering::SeqCst);
        if hanging > 0 {
            self.probe
                .hanging_starts
                .store(hanging - 1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn reconnect(&mut self) -> Result<Evidence, TestError> {
        self.probe.reconnects.fetch_add(1, Ordering::SeqCst);
        self.probe
            .reconnect_times
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        if self.probe.down.load(Ordering::SeqCst) {
            return Err(TestError::Connect);
        }
        Ok(Evidence::Observed)
    }

    async fn health_check(&mut self) -> Result<Evidence, TestError> {
        self.probe.health_checks.fetch_add(1, Ordering::SeqCst);
        if self.probe.down.load(Ordering::SeqCst) {
            return Err(TestError::Connect);
        }
        Ok(Evidence::Observed)
    }
}

/// The shipped config with a fixed seed, restricted to `kite_api`, then
/// adjusted by `edit`. Kite's request pacing is taken out, so bursts of
/// calls test the breaker alone (tests/peers.rs tests the pacing).
pub fn kite_config(edit: impl FnOnce(&mut ServiceConfig)) -> Config {
    let mut config = Config::seed_defaults();
    config.runtime.seed = Some(7);
    config.services.retain(|name, _| name == "kite_api");
    if let Some(kite) = config.services.get_mut("kite_api") {
        kite.rate_limit = None;
    }
    edit(config.services.get_mut("kite_api").unwrap());
    config
}

/// Runs `test` on a current-thread runtime of its own thread, in real time,
/// and returns what it returns within `bound`, or fails with `starved`.
///
/// For loops that never await anything but seawall's answers: a runtime
/// they starve would hang the test forever, and a paused clock never
/// advances under a task that spins. The bound fails it instead.
pub fn on_own_current_thread<T, F>(
    bound: Duration,
    starved: &str,
    test: impl FnOnce() -> F + Send + 'static,
) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ = done.send(runtime.block_on(test()));
    });
    finished.recv_timeout(bound).expect(starved)
}

/// The next event on the bus that `want` accepts, within an hour of virtual time.
pub async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<seawall::Event>,
    want: impl Fn(&seawall::Event) -> bool,
) -> seawall::Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(3600), events.recv())
            .await
            .expect("event within an hour of virtual time");
        match event {
            Ok(event) if want(&event) => return event,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("bus closed"),
        }
    }
}

/// A tree with service `kite_api` running `Scripted` under `config`.
pub async fn start_scripted(
    config: Config,
) -> (
    seawall::Seawall,
    seawall::ServiceHandle<Scripted>,
    Arc<Probe>,
) {
    let probe = Arc::new(Probe::default());
    let p = Arc::clone(&probe);
    let seawall = seawall::Seawall::builder(config)
        .service("kite_api", move || Scripted {
            probe: Arc::clone(&p),
        })
        .start()
        .await
        .expect("the tree starts");
    let kite = seawall.handle::<Scripted>("kite_api").expect("registered");
    (seawall, kite, probe)
}

/// Registers every service of `config` as a `Scripted` on `builder`; the
/// probes, by name, count what reached each.
pub fn register_all(
    mut builder: seawall::SeawallBuilder,
    config: &Config,
) -> (seawall::SeawallBuilder, Vec<(String, Arc<Probe>)>) {
    let mut probes = Vec::new();
    for name in config.services.keys() {
        let probe = Arc::new(Probe::default());
        let p = Arc::clone(&probe);
        builder = builder.service(name, move || Scripted {
            probe: Arc::clone(&p),
        });
        probes.push((name.clone(), probe));
    }
    (builder, probes)
}

/// A machine at rest, for tests that read the score: 10 % CPU, 40 % memory,
/// 50 % disk, whatever the machine running the test looks like.
pub fn calm_machine() -> impl FnMut() -> seawall::health::SystemSample + Send + 'static {
    machine(10.0, 40.0, 50.0)
}

/// A machine with these CPU, memory and disk figures (percent).
pub fn machine(
    cpu: f64,
    memory: f64,
    disk: f64,
) -> impl FnMut() -> seawall::health::SystemSample + Send + 'static {
    move || seawall::health::SystemSample {
        cpu_percent: Some(cpu),
        cpu_count: 2,
        memory_percent: memory,
        memory_available_gb: 24.0 * (1.0 - memory / 100.0),
        memory_total_gb: 24.0,
        disk_percent: disk,
        disk_free_gb: 250.0 * (1.0 - disk / 100.0),
        disk_total_gb: 250.0,
        bytes_sent: 0,
        bytes_recv: 0,
        packets_sent: 0,
        packets_recv: 0,
        taken_at: std::time::SystemTime::now(),
    }
}

/// One POST with an empty body to the HTTP face at `addr`, with `token` as
/// its bearer if given: (status, body). Runs the blocking client off the runtime.
pub async fn post(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.post(&url);
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.send_empty().expect("the route answers");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    })
    .await
    .expect("the request task")
}
