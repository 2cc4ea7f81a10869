//! Scale: 10,000 protected services in one process.
//!
//! * `scale/spawn/N`: time to spawn a tree of N services (shut down untimed).
//! * `scale/health_report/N`: the aggregate health report over N services.
//! * `scale/throughput/N`: protected calls spread over N services by 64
//!   concurrent callers on a 2-worker runtime; report calls per second.
//!
//! Memory per service (RSS growth over a spawn of 10,000 divided by N) is
//! printed once at the start, as `scale/memory_per_service`, and the
//! throughput ratio at each N, from alternating rounds in one loop, as
//! `scale/interleaved_ratio/N`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ractor::{ActorRef, RpcReplyPort};
use seawall::config::{Config, ServiceConfig};
use seawall::{DefaultPolicy, Lifecycle};
use seawall::{Seawall, Service, ServiceHandle};
use std::time::{Duration, Instant};

#[path = "support/quartiles.rs"]
mod support;
use support::quartiles;

struct Echo;

#[derive(Debug, thiserror::Error)]
#[error("down")]
struct Down;

impl Service for Echo {
    type Request = u64;
    type Response = u64;
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, n: u64) -> Result<u64, Down> {
        Ok(n)
    }
}

impl Lifecycle for Echo {}

fn config(n: usize) -> Config {
    let mut config = Config::default();
    config.runtime.auto_recovery_enabled = false;
    for i in 0..n {
        config
            .services
            .insert(format!("svc{i:05}"), ServiceConfig::default());
    }
    config
}

async fn spawn(config: &Config) -> Seawall {
    let mut builder = Seawall::builder(config.clone());
    for name in config.services.keys() {
        builder = builder.service(name, || Echo);
    }
    builder.start().await.expect("tree starts")
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A trivial ractor actor: the floor one actor costs.
struct Bare;

impl ractor::Actor for Bare {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

/// A trivial echo actor: the throughput baseline.
struct BareEcho;

struct BareMsg(u64, RpcReplyPort<u64>);

// With the `fleet` feature (on when the whole workspace builds) ractor has
// no blanket `Message` impl.
#[cfg(feature = "fleet")]
impl ractor::Message for BareMsg {}

impl ractor::Actor for BareEcho {
    type Msg = BareMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ActorRef<BareMsg>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<BareMsg>,
        BareMsg(n, reply): BareMsg,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = reply.send(n);
        Ok(())
    }
}

/// The call timeout both sides use (ServiceConfig::default()).
const TIMEOUT: Duration = Duration::from_secs(10);

async fn memory_probe(which: &str, big: &Config) {
    let before = rss_bytes().unwrap_or(0);
    let started = Instant::now();
    let mut keep = Vec::new();
    let tree = if which == "tree" {
        Some(spawn(big).await)
    } else {
        for _ in 0..10_000 {
            keep.push(ractor::Actor::spawn(None, Bare, ()).await.unwrap().0);
        }
        None
    };
    let spawned_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes().unwrap_or(0);
    let per = after.saturating_sub(before) as f64 / 1024.0 / 10_000.0;
    match which {
        "tree" => eprintln!(
            "scale/memory_per_service: {per:.1} KiB (10000 services, RSS +{:.1} MiB, spawned in {spawned_in:?})",
            after.saturating_sub(before) as f64 / 1024.0 / 1024.0
        ),
        _ => eprintln!("scale/memory_per_bare_ractor_actor: {per:.1} KiB (the floor for one actor)"),
    }
    drop(tree);
    drop(keep);
}

fn scale(c: &mut Criterion) {
    let rt = runtime();
    let big = config(10_000);

    // Memory, each figure in a fresh process (RSS never shrinks, so a
    // second measurement in one process would reuse the first's pages).
    if let Ok(probe) = std::env::var("SEAWALL_MEMORY_PROBE") {
        rt.block_on(memory_probe(&probe, &big));
        std::process::exit(0);
    }
    for probe in ["tree", "bare"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--bench", "no-such-benchmark"])
            .env("SEAWALL_MEMORY_PROBE", probe)
            .output();
        match out {
            Ok(out) => eprint!("{}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("memory probe {probe} failed: {e}"),
        }
    }

    let mut group = c.benchmark_group("scale/spawn");
    group.sample_size(10);
    group.bench_function(BenchmarkId::from_parameter(10_000), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let seawall = spawn(&big).await;
                    total += started.elapsed();
                    seawall.shutdown().await;
                }
                total
            })
        })
    });
    group.finish();

    let (seawall, handles) = rt.block_on(async {
        let seawall = spawn(&big).await;
        let handles: Vec<ServiceHandle<Echo>> = big
            .services
            .keys()
            .map(|n| seawall.handle::<Echo>(n).unwrap())
            .collect();
        (seawall, handles)
    });
    let mut group = c.benchmark_group("scale/health_report");
    group.sample_size(20);
    group.bench_function(BenchmarkId::from_parameter(10_000), |b| {
        let _guard = rt.enter();
        b.iter(|| black_box(seawall.health_report()))
    });
    group.finish();

    // The baseline: N bare ractor actors, called the same way (64 callers,
    // round-robin, each call with the same timeout), in the same run.
    let bare: Vec<ActorRef<BareMsg>> = rt.block_on(async {
        let mut actors = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            actors.push(ractor::Actor::spawn(None, BareEcho, ()).await.unwrap().0);
        }
        actors
    });
    let bare_call = |a: ActorRef<BareMsg>, i| async move {
        black_box(a.call(|p| BareMsg(i, p), Some(TIMEOUT)).await.ok());
    };
    let protected_call = |h: ServiceHandle<Echo>, i| async move {
        black_box(h.call(i).await.ok());
    };
    for n in [1usize, 100, 10_000] {
        interleaved_ratio(&rt, n, &bare, bare_call, &handles, protected_call);
    }
    throughput(c, &rt, "scale/throughput_bare", &bare, bare_call);
    for a in &bare {
        a.stop(None);
    }

    throughput(c, &rt, "scale/throughput", &handles, protected_call);
    rt.block_on(seawall.shutdown());
}

/// `calls` calls spread over `targets` by 64 concurrent callers, each
/// round-robin from its own starting point; how long they took.
async fn drive<T, F, Fut>(targets: &[T], calls: u64, call: F) -> Duration
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, u64) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    const CALLERS: u64 = 64;
    let per = calls.div_ceil(CALLERS);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CALLERS {
        let targets = targets.to_vec();
        tasks.spawn(async move {
            for i in 0..per {
                let t = &targets[((c * per + i) as usize) % targets.len()];
                call(t.clone(), i).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    started
        .elapsed()
        .mul_f64(calls as f64 / (per * CALLERS) as f64)
}

/// Protected over bare throughput at N targets, in alternating rounds: the
/// two criterion groups below run minutes apart, and on a shared VM the
/// baseline drifts by more than the goal's margin. Printed as the median
/// and quartiles of the per-round ratios.
fn interleaved_ratio<B, P, FB, FP, FutB, FutP>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    bare: &[B],
    bare_call: FB,
    protected: &[P],
    protected_call: FP,
) where
    B: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
    FB: Fn(B, u64) -> FutB + Copy + Send + 'static,
    FP: Fn(P, u64) -> FutP + Copy + Send + 'static,
    FutB: std::future::Future<Output = ()> + Send,
    FutP: std::future::Future<Output = ()> + Send,
{
    const ROUNDS: usize = 41;
    const CALLS: u64 = 25_600;
    let ratios: Vec<f64> = rt.block_on(async {
        let mut ratios = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let (b, p) = if round % 2 == 0 {
                let b = drive(&bare[..n], CALLS, bare_call).await;
                (b, drive(&protected[..n], CALLS, protected_call).await)
            } else {
                let p = drive(&protected[..n], CALLS, protected_call).await;
                (drive(&bare[..n], CALLS, bare_call).await, p)
            };
            // Throughput ratio: protected calls per second over bare.
            ratios.push(b.as_secs_f64() / p.as_secs_f64());
        }
        ratios
    });
    eprintln!(
        "scale/interleaved_ratio/{n}: protected / bare throughput = {} over {ROUNDS} \
         alternating rounds of {CALLS} calls",
        quartiles(ratios)
    );
}

/// Calls per second at N = 1, 100 and 10,000 targets: 64 concurrent
/// callers on the 2-worker runtime, each spreading its calls round-robin.
fn throughput<T, F, Fut>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    all: &[T],
    call: F,
) where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, u64) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for n in [1usize, 100, 10_000] {
        let targets: Vec<T> = all[..n].to_vec();
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| rt.block_on(drive(&targets, iters, call)))
        });
    }
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
