//! The health report and the trip-to-mode-change latency.
//!
//! * `health_report/4_services`: `Seawall::health_report()` for the four
//!   default services, from cached state (goal ≤ 50 µs; the seed says ~5 ms).
//! * `mode_change/trip_to_halted`: from the moment the call whose failure
//!   trips the kite_api breaker returns, to the moment the trading-mode watch
//!   channel reads Halted (goal ≤ 1 ms).
//! * `sse/transition_to_stream`: from an operator's force-open (or reset) to
//!   the moment a client connected to `GET /api/v1/system/stream` over
//!   loopback TCP has read the `transition` event (goal ≤ 250 ms, the
//!   dashboard issue's bound).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use seawall::config::Config;
use seawall::modes::TradingMode;
use seawall::{DefaultPolicy, Lifecycle};
use seawall::{Seawall, Service};
use std::time::{Duration, Instant};

struct Echo;

#[derive(Debug, thiserror::Error)]
#[error("down")]
struct Down;

impl Service for Echo {
    type Request = bool;
    type Response = ();
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, ok: bool) -> Result<(), Down> {
        if ok {
            Ok(())
        } else {
            Err(Down)
        }
    }
}

impl Lifecycle for Echo {}

async fn tree() -> Seawall {
    let mut config = Config::seed_defaults();
    config.runtime.auto_recovery_enabled = false;
    let mut builder = Seawall::builder(config.clone());
    for name in config.services.keys() {
        builder = builder.service(name, || Echo);
    }
    builder.start().await.unwrap()
}

/// A raw client of the live stream: one TCP connection, read line by line;
/// each `event: transition` line is passed on.
async fn stream_reader(
    addr: std::net::SocketAddr,
) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /api/v1/system/stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(socket).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim_end() == "event: transition" && tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    rx
}

fn sse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (seawall, mut seen) = rt.block_on(async {
        let mut config = Config::seed_defaults();
        config.runtime.auto_recovery_enabled = false;
        config.runtime.http =
            Some(toml::from_str("listen = \"127.0.0.1:0\"").expect("an http table"));
        let mut builder = Seawall::builder(config.clone());
        for name in config.services.keys() {
            builder = builder.service(name, || Echo);
        }
        let seawall = builder.start().await.unwrap();
        let seen = stream_reader(seawall.http_addr().unwrap()).await;
        (seawall, seen)
    });
    let control = seawall.breaker("kite_api").unwrap().clone();
    let mut group = c.benchmark_group("sse");
    group.bench_function("transition_to_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let sent = Instant::now();
                    if control.state() == seawall::BreakerState::Closed {
                        control.force_open("bench");
                    } else {
                        control.reset();
                    }
                    let arrived = seen.recv().await.expect("the stream stays open");
                    total += arrived.saturating_duration_since(sent);
                }
                total
            })
        })
    });
    group.finish();
    control.reset();
    rt.block_on(seawall.shutdown());
}

fn health(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seawall = rt.block_on(async {
        let seawall = tree().await;
        let kite = seawall.handle::<Echo>("kite_api").unwrap();
        for i in 0..1000 {
            let _ = kite.call(i % 7 != 0).await;
        }
        seawall
    });
    let mut group = c.benchmark_group("health_report");
    group.bench_function("4_services", |b| {
        let _guard = rt.enter();
        b.iter(|| black_box(seawall.health_report()))
    });
    group.finish();

    let mut group = c.benchmark_group("mode_change");
    group.bench_function("trip_to_halted", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let kite = seawall.handle::<Echo>("kite_api").unwrap();
                let control = seawall.breaker("kite_api").unwrap();
                let mut modes = seawall.modes();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    control.reset();
                    modes
                        .wait_for(|m| m.trading == TradingMode::Active)
                        .await
                        .unwrap();
                    for _ in 0..4 {
                        let _ = kite.call(false).await;
                    }
                    let _ = kite.call(false).await;
                    let tripped = Instant::now();
                    modes
                        .wait_for(|m| m.trading == TradingMode::Halted)
                        .await
                        .unwrap();
                    total += tripped.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(seawall.shutdown());
}

/// From the moment a dependency comes back to the moment its breaker is
/// Closed, for kite_api's shipped recovery backoff (from 1 s): recovery
/// attempt → HalfOpen → 3 probe successes. Measured in tokio's virtual time
/// (the figure is dominated by the configured waits, not by CPU).
fn back_to_closed(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.bench_function("service_back_to_closed_virtual", |b| {
        b.iter_custom(|iters| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let d = std::sync::Arc::clone(&down);
                let mut config = Config::seed_defaults();
                config.runtime.seed = Some(1);
                config.services.retain(|n, _| n == "kite_api");
                let seawall = Seawall::builder(config)
                    .service("kite_api", move || Flaky(std::sync::Arc::clone(&d)))
                    .start()
                    .await
                    .unwrap();
                let kite = seawall.handle::<Flaky>("kite_api").unwrap();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    down.store(true, std::sync::atomic::Ordering::SeqCst);
                    while kite.state() == seawall::BreakerState::Closed {
                        let _ = kite.call(()).await;
                    }
                    down.store(false, std::sync::atomic::Ordering::SeqCst);
                    let back = tokio::time::Instant::now();
                    while kite.state() != seawall::BreakerState::Closed {
                        let _ = kite.call(()).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    total += back.elapsed();
                }
                seawall.shutdown().await;
                total
            })
        })
    });
    group.finish();
}

struct Flaky(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Service for Flaky {
    type Request = ();
    type Response = ();
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, _: ()) -> Result<(), Down> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(())
        }
    }
}

impl Lifecycle for Flaky {
    async fn reconnect(&mut self) -> Result<seawall::Evidence, Down> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(seawall::Evidence::Observed)
        }
    }
}

criterion_group!(benches, health, sse, back_to_closed);
criterion_main!(benches);
