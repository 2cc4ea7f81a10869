//! The cost of the protected call path, against a bare ractor call in the
//! same run (ratios, not absolute times, are what carry across machines).
//!
//! * `call_path/bare_ractor_call` and `…_with_timeout`: a trivial actor.
//! * `call_path/handle_call_closed`: the same request through a
//!   `ServiceHandle` (admission, bulkhead, dispatch, outcome accounting).
//! * `call_path/handle_call_rejected_open`: a call refused by an Open breaker.
//! * `call_path/floor_async_ready_error`: the harness's floor for that: an
//!   awaited, non-inlined `async fn` that returns the same `CallError` at once.
//! * `…/interleaved_ratio` and `…/interleaved_ratio_in_task` (printed first, the
//!   second with the caller a task on the runtime): the closed call over the bare
//!   call with a timeout, in alternating rounds within one loop, because
//!   the two criterion benchmarks run seconds apart and the baseline drifts.
//! * `state_machine/seawall_admit_record` vs `state_machine/failsafe_call`
//!   and `state_machine/recloser_call`: the pure breakers on the same closure.
//!
//! Everything async runs on one current-thread runtime (`call_path/…`), then
//! again on a 2-worker multi-thread runtime (`call_path_2_workers/…`), timed
//! with `iter_custom` inside a single `block_on`, so runtime entry is not
//! measured.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use seawall::breaker::{BreakerSettings, CircuitBreaker, Outcome};
use seawall::config::{Config, ServiceConfig};
use seawall::{DefaultPolicy, Lifecycle};
use seawall::{Seawall, Service, ServiceHandle};
use std::time::{Duration, Instant};

#[path = "support/quartiles.rs"]
mod support;
use support::quartiles;

const TIMEOUT: Duration = Duration::from_secs(5);

struct EchoActor;

struct EchoMsg(u64, RpcReplyPort<u64>);

// With the `fleet` feature (on when the whole workspace builds) ractor has
// no blanket `Message` impl.
#[cfg(feature = "fleet")]
impl ractor::Message for EchoMsg {}

impl Actor for EchoActor {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        EchoMsg(n, reply): EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(n);
        Ok(())
    }
}

struct Echo;

#[derive(Debug, thiserror::Error)]
#[error("echo failed")]
struct EchoError;

impl Service for Echo {
    type Request = Result<u64, ()>;
    type Response = u64;
    type Error = EchoError;
    type Policy = DefaultPolicy;
    async fn call(&mut self, request: Result<u64, ()>) -> Result<u64, EchoError> {
        request.map_err(|()| EchoError)
    }
}

impl Lifecycle for Echo {}

fn config() -> Config {
    let service = ServiceConfig {
        call_timeout: TIMEOUT,
        concurrency: 1,
        max_in_flight: 1024,
        open_timeout: Duration::from_secs(3600),
        ..ServiceConfig::default()
    };
    let mut config = Config::default();
    // The tripped breaker must stay Open for the whole run.
    config.runtime.auto_recovery_enabled = false;
    config.services.insert("echo".into(), service.clone());
    config.services.insert("tripped".into(), service);
    config
}

fn call_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    on_runtime(c, "call_path", &rt);
}

/// The same calls on a 2-worker multi-thread runtime: the caller runs on
/// the benchmark's thread and every actor on a worker, so each call crosses
/// threads both ways, for the bare baseline as for the protected call.
fn call_path_two_workers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    on_runtime(c, "call_path_2_workers", &rt);
}

fn on_runtime(c: &mut Criterion, group_name: &str, rt: &tokio::runtime::Runtime) {
    let (actor, seawall, echo, tripped) = rt.block_on(async {
        let (actor, _) = Actor::spawn(None, EchoActor, ()).await.unwrap();
        let seawall = Seawall::builder(config())
            .service("echo", || Echo)
            .service("tripped", || Echo)
            .start()
            .await
            .unwrap();
        let echo: ServiceHandle<Echo> = seawall.handle("echo").unwrap();
        let tripped: ServiceHandle<Echo> = seawall.handle("tripped").unwrap();
        while tripped.state() != seawall::BreakerState::Open {
            let _ = tripped.call(Err(())).await;
        }
        (actor, seawall, echo, tripped)
    });

    interleaved_ratio(group_name, rt, &actor, &echo);

    let mut group = c.benchmark_group(group_name);
    group.bench_function("bare_ractor_call", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(actor.call(|p| EchoMsg(i, p), None).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("bare_ractor_call_with_timeout", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(actor.call(|p| EchoMsg(i, p), Some(TIMEOUT)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("handle_call_closed", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(echo.call(Ok(i)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("floor_async_ready_error", |b| {
        // Not inlined, like the real call: what awaiting a ready error costs.
        #[inline(never)]
        async fn refuse(
            i: u64,
            t0: std::time::Instant,
        ) -> Result<u64, seawall::CallError<EchoError>> {
            if black_box(i) == u64::MAX {
                return Ok(i);
            }
            Err(seawall::CallError::Rejected {
                service: "tripped",
                state: seawall::BreakerState::Open,
                open_until: Some(t0 + Duration::from_nanos(black_box(5))),
                cause: seawall::breaker::TripCause::ConsecutiveFailures,
            })
        }
        let t0 = std::time::Instant::now();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(refuse(i, t0).await.unwrap_err());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("handle_call_rejected_open", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(tripped.call(Ok(i)).await.unwrap_err());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(seawall.shutdown());
}

/// The closed call's ratio to the bare call with a timeout, measured in
/// alternating rounds in one loop: criterion times each benchmark seconds
/// apart, and on a shared VM the baseline itself drifts by more than the
/// 10 % the goal allows. Printed as the median and quartiles of the rounds.
///
/// Measured twice: with the caller the thread inside `block_on`, then with
/// the caller a task on the runtime, as engine code runs. On the 2-worker
/// runtime the `block_on` caller is outside the pool, so every call parks
/// and wakes an OS thread both ways (tens of µs on this VM) and that ratio's
/// quartiles span ±0.1; as a task, caller and actor share the workers.
fn interleaved_ratio(
    group_name: &str,
    rt: &tokio::runtime::Runtime,
    actor: &ActorRef<EchoMsg>,
    echo: &ServiceHandle<Echo>,
) {
    let on_thread = rt.block_on(rounds(actor.clone(), echo.clone()));
    print_ratio(&format!("{group_name}/interleaved_ratio"), on_thread);
    let in_task = rt
        .block_on(rt.spawn(rounds(actor.clone(), echo.clone())))
        .unwrap();
    print_ratio(&format!("{group_name}/interleaved_ratio_in_task"), in_task);
}

const ROUNDS: usize = 201;
const CALLS: u64 = 2_000;

/// The closed call's time over the bare call's, per alternating round.
async fn rounds(actor: ActorRef<EchoMsg>, echo: ServiceHandle<Echo>) -> Vec<f64> {
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let bare = async {
            let start = Instant::now();
            for i in 0..CALLS {
                black_box(actor.call(|p| EchoMsg(i, p), Some(TIMEOUT)).await.unwrap());
            }
            start.elapsed()
        };
        let protected = async {
            let start = Instant::now();
            for i in 0..CALLS {
                black_box(echo.call(Ok(i)).await.unwrap());
            }
            start.elapsed()
        };
        // Alternate which goes first, so neither always runs warm.
        let (bare, protected) = if round % 2 == 0 {
            let b = bare.await;
            (b, protected.await)
        } else {
            let p = protected.await;
            (bare.await, p)
        };
        ratios.push(protected.as_secs_f64() / bare.as_secs_f64());
    }
    ratios
}

fn print_ratio(name: &str, ratios: Vec<f64>) {
    eprintln!(
        "{name}: closed call / bare call with timeout = {} over {ROUNDS} alternating rounds \
         of {CALLS} calls each",
        quartiles(ratios)
    );
}

fn state_machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_machine");
    let now = Instant::now();
    let work = |i: u64| -> Result<u64, ()> { Ok(black_box(i)) };

    let mut breaker = CircuitBreaker::new(
        BreakerSettings::seed_default(5, 3, Duration::from_secs(300)),
        now,
    );
    let mut i = 0u64;
    group.bench_function("seawall_admit_record", |b| {
        b.iter(|| {
            i += 1;
            let permit = breaker.try_acquire(now).unwrap();
            let outcome = match work(i) {
                Ok(_) => Outcome::Success,
                Err(()) => Outcome::Failure(seawall::FailureKind::Other),
            };
            black_box(breaker.record(permit, outcome, Duration::from_micros(1), now))
        })
    });

    let failsafe = failsafe::Config::new().build();
    let mut j = 0u64;
    group.bench_function("failsafe_call", |b| {
        b.iter(|| {
            j += 1;
            black_box(failsafe::CircuitBreaker::call(&failsafe, || work(j)))
        })
    });

    let recloser = recloser::Recloser::default();
    let mut k = 0u64;
    group.bench_function("recloser_call", |b| {
        b.iter(|| {
            k += 1;
            black_box(recloser.call(|| work(k)))
        })
    });
    group.finish();
}

criterion_group!(benches, call_path, call_path_two_workers, state_machine);
criterion_main!(benches);
