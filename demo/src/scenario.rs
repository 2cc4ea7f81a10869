//! The built-in scenarios and time compression.

use seawall::chaos::{ChaosPhase, Fault};
use seawall::config::{Config, MaxAttempts};
use std::collections::BTreeMap;
use std::time::Duration;

/// Scenario names `--scenario` accepts.
pub const SCENARIOS: [&str; 3] = ["default", "calm", "random"];

fn phase(total: Duration, from: f64, until: f64, fault: Fault, probability: f64) -> ChaosPhase {
    ChaosPhase {
        from: total.mul_f64(from),
        until: total.mul_f64(until),
        probability,
        fault,
    }
}

/// A scenario: chaos phases per service (for kite_api they are played by the
/// loopback broker: an outage closes its port, an error kind becomes Kite's
/// error, a panic crashes the client after an order was sent), and phases in
/// which the feed serves bad quotes (from, until, probability).
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Faults per service.
    pub chaos: BTreeMap<&'static str, Vec<ChaosPhase>>,
    /// When the feed serves bad quotes, and how often.
    pub bad_quotes: Vec<(Duration, Duration, f64)>,
}

/// The scenario `name` over `total`, or `None` for an unknown name. `default`: Kite down, then the database, then AI
/// timeouts, then a market-data stall, each followed by recovery; the last
/// quarter is calm so every breaker can close. `calm`: no faults. `random`:
/// seeded random phases of every fault kind in the first 70 %, then calm.
pub fn scenario(name: &str, total: Duration) -> Option<Scenario> {
    scenario_seeded(name, total, 0)
}

/// [`scenario`] with a seed for `random`.
pub fn scenario_seeded(name: &str, total: Duration, seed: u64) -> Option<Scenario> {
    let mut plan = BTreeMap::new();
    let mut bad_quotes = Vec::new();
    match name {
        "calm" => {}
        "random" => random(total, seed, &mut plan, &mut bad_quotes),
        "default" => worst_hour(total, &mut plan, &mut bad_quotes),
        _ => return None,
    }
    Some(Scenario {
        chaos: plan,
        bad_quotes,
    })
}

/// Compresses the config's time so outages and recoveries fit a short run:
/// call timeouts ≤ 500 ms, open durations ≤ 5 s, recovery from 200 ms up to
/// 1 s without giving up, health checks every 2 s.
pub fn compress(config: &mut Config) {
    config.runtime.health_check_interval = config
        .runtime
        .health_check_interval
        .min(Duration::from_secs(2));
    config.runtime.health_check_timeout = config
        .runtime
        .health_check_timeout
        .min(Duration::from_secs(1));
    config.runtime.system_sample_interval = config
        .runtime
        .system_sample_interval
        .min(Duration::from_secs(2));
    for s in config.services.values_mut() {
        s.call_timeout = s.call_timeout.min(Duration::from_millis(500));
        s.open_timeout = s.open_timeout.min(Duration::from_secs(5));
        s.max_open_timeout = Some(s.effective_max_open_timeout().min(Duration::from_secs(10)));
        s.half_open_probe_timeout = s.half_open_probe_timeout.min(Duration::from_secs(2));
        s.recovery.initial_delay = Duration::from_millis(200);
        s.recovery.max_delay = Duration::from_secs(1);
        s.recovery.attempt_timeout = Duration::from_secs(1);
        s.recovery.max_attempts = MaxAttempts::Unlimited(seawall::config::Unlimited::Unlimited);
        s.retry.delay = s.retry.delay.min(Duration::from_millis(100));
        s.retry.deadline = s.retry.deadline.min(Duration::from_secs(1));
    }
}

/// What a scenario plays: chaos phases per service, and bad-quote windows.
type Plan = BTreeMap<&'static str, Vec<ChaosPhase>>;
type BadQuoteWindows = Vec<(Duration, Duration, f64)>;

/// Seeded random phases of every fault kind in the first 70 %, then calm.
fn random(total: Duration, seed: u64, plan: &mut Plan, bad_quotes: &mut BadQuoteWindows) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for service in ["kite_api", "database", "ai_agents", "market_data"] {
        let mut phases = Vec::new();
        let mut at = rng.f64() * 0.1;
        while at < 0.65 {
            let length = 0.01 + rng.f64() * 0.05;
            let fault = match rng.u32(0..6) {
                0 => Fault::Outage,
                1 => Fault::Timeout,
                2 => Fault::Panic,
                3 => Fault::Latency {
                    latency: Duration::from_millis(rng.u64(50..800)),
                },
                _ => Fault::Error {
                    kind: [
                        "NetworkException",
                        "DataException",
                        "GeneralException",
                        "429",
                        "InputException",
                        "TokenException",
                        "OrderTimedOut",
                    ][rng.usize(0..7)]
                    .to_string(),
                },
            };
            let probability = if fault == Fault::Panic {
                0.05
            } else {
                0.3 + rng.f64() * 0.7
            };
            phases.push(phase(total, at, (at + length).min(0.7), fault, probability));
            at += length + rng.f64() * 0.08;
        }
        plan.insert(service, phases);
    }
    let mut at = 0.05 + rng.f64() * 0.1;
    while at < 0.6 {
        let until = (at + 0.02 + rng.f64() * 0.05).min(0.65);
        bad_quotes.push((
            total.mul_f64(at),
            total.mul_f64(until),
            0.2 + rng.f64() * 0.3,
        ));
        at = until + rng.f64() * 0.1;
    }
}

/// A trading day's worst hour, in order: every fault hits while the others
/// are calm, so each one's effect is visible alone; the last quarter is calm.
fn worst_hour(total: Duration, plan: &mut Plan, bad_quotes: &mut BadQuoteWindows) {
    // A trading day's worst hour, in order: every fault hits while
    // the others are calm, so each one's effect is visible alone.
    let error = |kind: &str| Fault::Error { kind: kind.into() };
    let slow = |ms| Fault::Latency {
        latency: Duration::from_millis(ms),
    };
    plan.insert(
        "kite_api",
        vec![
            // The broker's port closes, then it answers 503s.
            phase(total, 0.08, 0.14, Fault::Outage, 1.0),
            phase(total, 0.14, 0.20, error("NetworkException"), 1.0),
            // Slow answers inside the call timeout, then 429s: no trip.
            phase(total, 0.26, 0.30, slow(150), 1.0),
            phase(total, 0.32, 0.35, error("429"), 1.0),
            // The access token expires: orders halt, nothing trips.
            phase(total, 0.38, 0.42, error("TokenException"), 1.0),
            // Orders placed but answered "timed out", and a client
            // that crashes after an order was sent.
            phase(total, 0.58, 0.68, error("OrderTimedOut"), 0.3),
            phase(total, 0.58, 0.68, Fault::Panic, 0.1),
        ],
    );
    plan.insert(
        "database",
        vec![
            phase(total, 0.22, 0.32, Fault::Outage, 1.0),
            // Slow but successful queries on the one connection.
            phase(total, 0.34, 0.38, slow(300), 1.0),
        ],
    );
    plan.insert(
        "ai_agents",
        vec![phase(total, 0.44, 0.58, Fault::Timeout, 1.0)],
    );
    plan.insert(
        "market_data",
        vec![phase(total, 0.70, 0.84, Fault::Timeout, 1.0)],
    );
    bad_quotes.push((total.mul_f64(0.23), total.mul_f64(0.33), 0.4));
}
