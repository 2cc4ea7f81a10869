//! Property test of the config loader and the environment overrides:
//! thousands of mutations of the shipped actors.toml (extreme values, wrong
//! types, absurd durations) and of the seed's variables. Every config is
//! either rejected with an error naming a real key or variable, or accepted
//! and then survives `Seawall::start`, a trip, a recovery and a shutdown
//! without a panic anywhere in the tree.

use proptest::prelude::*;
use proptest::prop_assert;
use seawall::config::{Config, ENV_VARIABLES};
use seawall::{DefaultPolicy, Lifecycle};
use seawall::{Evidence, Seawall, Service};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

fn count_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

const SHIPPED: &str = include_str!("../actors.toml");

/// The keys a mutation may touch: (table path, key).
const KEYS: &[(&str, &str)] = &[
    ("runtime", "health_check_interval"),
    ("runtime", "health_score_threshold"),
    ("runtime", "shutdown_grace"),
    ("runtime", "system_sample_interval"),
    ("runtime", "health_check_timeout"),
    ("runtime", "degraded_score_threshold"),
    ("services.kite_api", "failure_threshold"),
    ("services.kite_api", "success_threshold"),
    ("services.kite_api", "open_timeout"),
    ("services.kite_api", "max_open_timeout"),
    ("services.kite_api", "call_timeout"),
    ("services.kite_api", "start_timeout"),
    ("services.kite_api", "concurrency"),
    ("services.kite_api", "max_in_flight"),
    ("services.kite_api", "half_open_max_calls"),
    ("services.kite_api", "half_open_probe_timeout"),
    ("services.kite_api", "open_backoff_multiplier"),
    ("services.kite_api", "open_jitter"),
    ("services.kite_api", "stability_window"),
    ("services.kite_api", "slow_start"),
    ("services.kite_api", "health_impact"),
    ("services.kite_api", "typo_key"),
    ("services.kite_api.recovery", "initial_delay"),
    ("services.kite_api.recovery", "max_delay"),
    ("services.kite_api.recovery", "max_attempts"),
    ("services.kite_api.recovery", "multiplier"),
    ("services.kite_api.retry", "max_retries"),
    ("services.kite_api.retry", "deadline"),
    ("services.kite_api.rate_limit", "max_wait"),
    ("services.kite_api.rate_limit.classes.quote", "per_second"),
    ("services.database", "failure_threshold"),
    ("services.database", "open_timeout"),
    ("services.database.degradation", "cache_capacity"),
    ("services.database.degradation", "journal_capacity"),
    ("services.database.degradation", "strategy"),
    ("services.market_data.degradation", "max_staleness"),
    ("services.market_data.degradation", "failover_to"),
    ("services.ai_agents", "call_timeout"),
];

fn value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(u32::MAX as i64),
            Just(i64::MAX),
            Just(i64::MIN),
            0i64..2000,
        ]
        .prop_map(toml::Value::Integer),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.5),
            Just(1e308),
            0.0f64..200.0,
        ]
        .prop_map(toml::Value::Float),
        prop_oneof![
            Just("0s"),
            Just("1ns"),
            Just("300000000000years"),
            Just("10y"),
            Just("5m"),
            Just("250ms"),
            Just("1h"),
            Just(""),
            Just("garbage"),
            Just("unlimited"),
            Just("kite_api"),
            Just("market_data"),
            Just("failover"),
        ]
        .prop_map(|s| toml::Value::String(s.to_string())),
        any::<bool>().prop_map(toml::Value::Boolean),
        Just(toml::Value::Array(vec![toml::Value::Integer(1)])),
    ]
}

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_string()),
        Just("0".to_string()),
        Just("50".to_string()),
        Just("101".to_string()),
        Just("-3".to_string()),
        Just("true".to_string()),
        Just("nope".to_string()),
        Just("300000000000years".to_string()),
        Just("18446744073709551615".to_string()),
        Just("1ns".to_string()),
        Just("5m".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
    ]
}

fn mutate(text: &str, edits: &[(usize, toml::Value)]) -> String {
    let mut doc: toml::Table = text.parse().expect("the shipped file parses");
    for (i, value) in edits {
        let (path, key) = KEYS[i % KEYS.len()];
        let mut table = &mut doc;
        for part in path.split('.') {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(next) = entry.as_table_mut() else {
                return doc.to_string();
            };
            table = next;
        }
        table.insert(key.to_string(), value.clone());
    }
    doc.to_string()
}

#[derive(Debug, thiserror::Error)]
#[error("down")]
struct Down;

/// A dependency that is down, then comes back: a trip, then a recovery.
struct Flaky(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Service for Flaky {
    type Request = ();
    type Response = ();
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, _: ()) -> Result<(), Down> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Down)
        }
    }
}

impl Lifecycle for Flaky {
    async fn health_check(&mut self) -> Result<Evidence, Down> {
        self.call(()).await.map(|()| Evidence::Observed)
    }
}

fn exercise(mut config: Config) {
    config.runtime.http = None;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut builder = Seawall::builder(config.clone());
        for name in config.services.keys() {
            let up = std::sync::Arc::clone(&up);
            builder = builder.service(name, move || Flaky(std::sync::Arc::clone(&up)));
        }
        let seawall = builder.start().await.expect("a valid config starts");
        let kite = seawall.handle::<Flaky>("kite_api").ok();
        if let Some(kite) = &kite {
            let threshold = config.services["kite_api"].failure_threshold.min(200);
            for _ in 0..threshold {
                let _ = kite.call(()).await;
            }
            up.store(true, Ordering::SeqCst);
            let open = config.services["kite_api"].open_timeout;
            tokio::time::sleep(open + Duration::from_secs(1)).await;
            for _ in 0..config.services["kite_api"].success_threshold.min(200) {
                let _ = kite.call(()).await;
            }
        }
        seawall.shutdown().await;
    });
}

fn names_a_key(message: &str) -> bool {
    message.contains("services.")
        || message.contains("runtime.")
        || ENV_VARIABLES.iter().any(|v| message.contains(v))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn test_config_when_mutated_then_rejected_naming_a_key_or_survives_a_run() {
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    count_panics();
    let accepted = AtomicUsize::new(0);
    let rejected = AtomicUsize::new(0);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = (
        proptest::collection::vec((0usize..KEYS.len(), value()), 0..4),
        proptest::collection::vec((0usize..ENV_VARIABLES.len(), env_value()), 0..3),
    );
    let result = runner.run(&strategy, |(edits, env)| {
        let text = mutate(SHIPPED, &edits);
        let env: HashMap<String, String> = env
            .into_iter()
            .map(|(i, v)| (ENV_VARIABLES[i].to_string(), v))
            .collect();
        let before = PANICS.load(Ordering::SeqCst);
        match Config::from_toml_with_env(&text, "actors.toml", |k| env.get(k).cloned()) {
            Err(error) => {
                rejected.fetch_add(1, Ordering::SeqCst);
                let message = error.to_string();
                prop_assert!(
                    names_a_key(&message),
                    "rejection names no key: {message}\n{text}"
                );
            }
            Ok(config) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                exercise(config);
            }
        }
        prop_assert_eq!(
            PANICS.load(Ordering::SeqCst),
            before,
            "a panic in the tree\n{}\n{:?}",
            text,
            env
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (a, r) = (accepted.into_inner(), rejected.into_inner());
    eprintln!("config property test: {a} accepted and run, {r} rejected with a key");
    assert!(
        a >= 100 && r >= 100,
        "both paths exercised: {a} accepted, {r} rejected"
    );
}
