//! `actors.toml` loading: the shipped defaults, environment overrides, and a
//! table of every invalid value and variable, each of which must be reported
//! with its key.

use seawall::config::{Config, ConfigError};
use std::collections::HashMap;
use std::time::Duration;

const SHIPPED: &str = include_str!("../actors.toml");

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml_with_env(text, "actors.toml", |k| env.get(k).cloned())
}

#[test]
fn test_load_when_shipped_file_then_has_seed_breakers() {
    let config = load(SHIPPED, &[]).expect("shipped actors.toml is valid");
    let expect = [
        ("kite_api", 5, 3, 300),
        ("database", 3, 2, 60),
        ("ai_agents", 10, 5, 180),
        ("market_data", 8, 4, 120),
    ];
    assert_eq!(config.services.len(), 4);
    for (name, failures, successes, open_secs) in expect {
        let s = &config.services[name];
        assert_eq!(s.failure_threshold, failures, "{name}");
        assert_eq!(s.success_threshold, successes, "{name}");
        assert_eq!(s.open_timeout, Duration::from_secs(open_secs), "{name}");
    }
    assert_eq!(config.services["database"].concurrency, 1, "ordered writes");
    assert!(config.services["kite_api"].concurrency > 1);
    assert_eq!(config.runtime.health_score_threshold, 80);
    assert_eq!(
        config.runtime.health_check_interval,
        Duration::from_secs(30)
    );
}

#[test]
fn test_load_when_env_overrides_set_then_applied_everywhere() {
    let config = load(
        SHIPPED,
        &[
            ("CIRCUIT_BREAKER_ENABLED", "false"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7"),
            ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "300"),
            ("HEALTH_CHECK_INTERVAL", "15"),
            ("HEALTH_SCORE_THRESHOLD", "70"),
            ("GRACEFUL_DEGRADATION_ENABLED", "no"),
            ("AUTO_RECOVERY_ENABLED", "0"),
        ],
    )
    .unwrap();
    assert!(!config.runtime.circuit_breaker_enabled);
    assert!(!config.runtime.graceful_degradation_enabled);
    assert!(!config.runtime.auto_recovery_enabled);
    assert_eq!(
        config.runtime.health_check_interval,
        Duration::from_secs(15)
    );
    assert_eq!(config.runtime.health_score_threshold, 70);
    for s in config.services.values() {
        assert_eq!(s.failure_threshold, 7);
        assert_eq!(s.open_timeout, Duration::from_secs(300));
        assert!(s.effective_max_open_timeout() >= s.open_timeout);
    }
}

#[test]
fn test_load_when_env_duration_is_humantime_then_accepted() {
    let config = load(SHIPPED, &[("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "90s")]).unwrap();
    assert_eq!(
        config.services["database"].open_timeout,
        Duration::from_secs(90)
    );
}

#[test]
fn test_load_when_env_empty_then_treated_as_unset() {
    let config = load(SHIPPED, &[("HEALTH_SCORE_THRESHOLD", "")]).unwrap();
    assert_eq!(config.runtime.health_score_threshold, 80);
}

/// Every invalid value in `actors.toml`, with the key its message must name.
#[test]
fn test_load_when_value_invalid_then_error_names_key_and_fix() {
    let svc = |body: &str| format!("[services.kite_api]\n{body}\n");
    let window = |body: &str| format!("[services.kite_api.rate_window]\n{body}\n");
    let sub = |table: &str, body: &str| format!("[services.kite_api.{table}]\n{body}\n");
    let cases: Vec<(String, &str)> = vec![
        (svc("failure_threshold = 0"), "services.kite_api.failure_threshold"),
        (svc("failure_threshold = -1"), "services.kite_api.failure_threshold"),
        (svc("failure_threshold = \"five\""), "services.kite_api.failure_threshold"),
        (svc("success_threshold = 0"), "services.kite_api.success_threshold"),
        (svc("open_timeout = \"0s\""), "services.kite_api.open_timeout"),
        (svc("open_timeout = \"5 parsecs\""), "services.kite_api.open_timeout"),
        (svc("open_timeout = 300"), "services.kite_api.open_timeout"),
        (
            svc("open_timeout = \"5m\"\nmax_open_timeout = \"1m\""),
            "services.kite_api.max_open_timeout",
        ),
        (svc("open_backoff_multiplier = 0.5"), "services.kite_api.open_backoff_multiplier"),
        (svc("open_backoff_multiplier = nan"), "services.kite_api.open_backoff_multiplier"),
        (svc("open_jitter = 1.0"), "services.kite_api.open_jitter"),
        (svc("open_jitter = -0.1"), "services.kite_api.open_jitter"),
        (svc("half_open_max_calls = 0"), "services.kite_api.half_open_max_calls"),
        (svc("half_open_max_calls = 5000"), "services.kite_api.half_open_max_calls"),
        (svc("half_open_probe_timeout = \"0s\""), "services.kite_api.half_open_probe_timeout"),
        (svc("call_timeout = \"0ms\""), "services.kite_api.call_timeout"),
        (svc("start_timeout = \"0s\""), "services.kite_api.start_timeout"),
        (svc("start_timeout = \"2h\""), "services.kite_api.start_timeout"),
        (svc("concurrency = 0"), "services.kite_api.concurrency"),
        (svc("concurrency = 2000"), "services.kite_api.concurrency"),
        (svc("concurrency = 8\nmax_in_flight = 4"), "services.kite_api.max_in_flight"),
        (svc("failur_threshold = 5"), "services.kite_api.failur_threshold"),
        (window("minimum_calls = 5\nfailure_rate_threshold = 0.5"), "services.kite_api.rate_window"),
        (
            window("calls = 10\nduration = \"10s\"\nminimum_calls = 5\nfailure_rate_threshold = 0.5"),
            "services.kite_api.rate_window",
        ),
        (
            window("calls = 0\nminimum_calls = 0\nfailure_rate_threshold = 0.5"),
            "services.kite_api.rate_window.calls",
        ),
        (
            window("duration = \"500ms\"\nminimum_calls = 5\nfailure_rate_threshold = 0.5"),
            "services.kite_api.rate_window.duration",
        ),
        (
            window("calls = 10\nminimum_calls = 0\nfailure_rate_threshold = 0.5"),
            "services.kite_api.rate_window.minimum_calls",
        ),
        (
            window("calls = 10\nminimum_calls = 20\nfailure_rate_threshold = 0.5"),
            "services.kite_api.rate_window.minimum_calls",
        ),
        (window("calls = 10\nminimum_calls = 5"), "services.kite_api.rate_window"),
        (
            window("calls = 10\nminimum_calls = 5\nfailure_rate_threshold = 1.5"),
            "services.kite_api.rate_window.failure_rate_threshold",
        ),
        (
            window("calls = 10\nminimum_calls = 5\nfailure_rate_threshold = 0.0"),
            "services.kite_api.rate_window.failure_rate_threshold",
        ),
        (
            window("calls = 10\nminimum_calls = 5\nslow_call_rate_threshold = 0.5"),
            "services.kite_api.rate_window.slow_call_duration",
        ),
        (
            window("calls = 10\nminimum_calls = 5\nslow_call_rate_threshold = 2.0\nslow_call_duration = \"1s\""),
            "services.kite_api.rate_window.slow_call_rate_threshold",
        ),
        (
            window("calls = 10\nminimum_calls = 5\nslow_call_rate_threshold = 0.5\nslow_call_duration = \"0s\""),
            "services.kite_api.rate_window.slow_call_duration",
        ),
        (
            window("calls = 10\nminimum_calls = 5\nfailure_rate_threshold = 0.5\nbogus = 1"),
            "services.kite_api.rate_window.bogus",
        ),
        (sub("recovery", "initial_delay = \"0s\""), "services.kite_api.recovery.initial_delay"),
        (
            sub("recovery", "initial_delay = \"10s\"\nmax_delay = \"1s\""),
            "services.kite_api.recovery.max_delay",
        ),
        (sub("recovery", "multiplier = 0.5"), "services.kite_api.recovery.multiplier"),
        (sub("recovery", "jitter = 1.5"), "services.kite_api.recovery.jitter"),
        (sub("recovery", "max_attempts = 0"), "services.kite_api.recovery.max_attempts"),
        (sub("recovery", "max_attempts = \"forever\""), "services.kite_api.recovery.max_attempts"),
        (sub("recovery", "attempt_timeout = \"0s\""), "services.kite_api.recovery.attempt_timeout"),
        (sub("recovery", "backoff = 2"), "services.kite_api.recovery.backoff"),
        (sub("restart", "period = \"0s\""), "services.kite_api.restart.period"),
        (
            sub("restart", "initial_delay = \"5s\"\nmax_delay = \"1s\""),
            "services.kite_api.restart.max_delay",
        ),
        (sub("restart", "max_restarts = -1"), "services.kite_api.restart.max_restarts"),
        (sub("retry", "max_retries = 1000"), "services.kite_api.retry.max_retries"),
        (sub("retry", "deadline = \"0s\""), "services.kite_api.retry.deadline"),
        (sub("retry", "delay = \"1m\"\ndeadline = \"10s\""), "services.kite_api.retry.deadline"),
        (sub("retry", "multiplier = 0.0"), "services.kite_api.retry.multiplier"),
        (sub("retry", "jitter = -0.5"), "services.kite_api.retry.jitter"),
        (
            "[[services.kite_api.chaos]]\nfrom = \"5s\"\nuntil = \"1s\"\nfault = \"timeout\"\n".to_string(),
            "services.kite_api.chaos[0].until",
        ),
        (
            "[[services.kite_api.chaos]]\nfrom = \"1s\"\nuntil = \"5s\"\nfault = \"latency\"\n".to_string(),
            "services.kite_api.chaos[0].latency",
        ),
        (
            "[[services.kite_api.chaos]]\nfrom = \"1s\"\nuntil = \"5s\"\nfault = \"error\"\nprobability = 2.0\n".to_string(),
            "services.kite_api.chaos[0].probability",
        ),
        (
            "[[services.kite_api.chaos]]\nfrom = \"1s\"\nuntil = \"5s\"\nfault = \"meteor\"\n".to_string(),
            "fault",
        ),
        ("[runtime.http]\nlisten = \"localhost\"\n".to_string(), "runtime.http.listen"),
        ("[runtime.http]\nport = 8080\n".to_string(), "runtime.http.port"),
        (
            "[services.kite_api.degradation]\nstrategy = \"failover\"\n".to_string(),
            "services.kite_api.degradation.failover_to",
        ),
        (
            "[services.kite_api.degradation]\nstrategy = \"failover\"\nfailover_to = \"ghost\"\n".to_string(),
            "services.kite_api.degradation.failover_to",
        ),
        (
            "[services.kite_api.degradation]\nstrategy = \"pray\"\n".to_string(),
            "services.kite_api.degradation.strategy",
        ),
        (
            "[services.kite_api.degradation]\nmax_staleness = \"0s\"\n".to_string(),
            "services.kite_api.degradation.max_staleness",
        ),
        (
            "[services.database.degradation]\njournal_capacity = 0\n".to_string(),
            "services.database.degradation.journal_capacity",
        ),
        (svc("health_impact = 1.5"), "services.kite_api.health_impact"),
        (
            "[runtime]\ndegraded_score_threshold = 90\n".to_string(),
            "runtime.degraded_score_threshold",
        ),
        ("[services.\"kite api\"]\n".to_string(), "services.kite api"),
        ("[runtime]\nhealth_check_interval = \"0s\"\n".to_string(), "runtime.health_check_interval"),
        ("[runtime]\nhealth_score_threshold = 101\n".to_string(), "runtime.health_score_threshold"),
        ("[runtime]\ncircuit_breaker_enabled = \"yes\"\n".to_string(), "runtime.circuit_breaker_enabled"),
        ("[runtime]\nshutdown_grace = \"forever\"\n".to_string(), "runtime.shutdown_grace"),
        ("[runtime]\nseed = -4\n".to_string(), "runtime.seed"),
        ("[runtime]\nverbose = true\n".to_string(), "runtime.verbose"),
        ("[runtim]\n".to_string(), "runtim"),
    ];
    for (text, key) in cases {
        let err = load(&text, &[]).expect_err(&text);
        let message = err.to_string();
        assert!(
            message.contains(key),
            "`{message}` should name `{key}` for:\n{text}"
        );
        assert!(
            message.contains(';'),
            "`{message}` should say how to fix it"
        );
        assert!(
            message.starts_with("actors.toml"),
            "`{message}` should name the file"
        );
    }
}

/// Every invalid environment override, with the variable its message must name.
#[test]
fn test_load_when_env_invalid_then_error_names_variable_and_fix() {
    let cases = [
        ("CIRCUIT_BREAKER_ENABLED", "maybe"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "five"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "-3"),
        ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "0"),
        ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "soon"),
        ("HEALTH_CHECK_INTERVAL", "0s"),
        ("HEALTH_CHECK_INTERVAL", "-30"),
        ("HEALTH_SCORE_THRESHOLD", "101"),
        ("HEALTH_SCORE_THRESHOLD", "eighty"),
        ("GRACEFUL_DEGRADATION_ENABLED", "sometimes"),
        ("AUTO_RECOVERY_ENABLED", "2"),
    ];
    for (var, value) in cases {
        let err = load(SHIPPED, &[(var, value)]).expect_err(var);
        let message = err.to_string();
        assert!(message.contains(var), "`{message}` should name {var}");
        assert!(
            message.contains(value),
            "`{message}` should show the value {value}"
        );
        assert!(
            message.contains(';'),
            "`{message}` should say how to fix it"
        );
        assert_eq!(err.problems().len(), 1);
        assert_eq!(err.problems()[0].key, var);
    }
}

#[test]
fn test_load_when_several_problems_then_all_reported() {
    let text = "[services.a]\nfailure_threshold = 0\nconcurrency = 0\n";
    let err = load(text, &[("AUTO_RECOVERY_ENABLED", "perhaps")]).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"services.a.failure_threshold"), "{keys:?}");
    assert!(keys.contains(&"services.a.concurrency"), "{keys:?}");
    assert!(keys.contains(&"AUTO_RECOVERY_ENABLED"), "{keys:?}");
}

#[test]
fn test_load_when_toml_syntax_broken_then_line_and_column_named() {
    let text =
        "[runtime]\nhealth_score_threshold = 80\n\n[services.kite_api\nfailure_threshold = 5\n";
    match load(text, &[]).unwrap_err() {
        ConfigError::Syntax { line, column, .. } => {
            assert_eq!(line, 4);
            assert!(column > 1);
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn test_load_when_file_missing_then_error_names_path() {
    let err = Config::load("/nonexistent/seawall/actors.toml").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/seawall/actors.toml"));
}

#[test]
fn test_load_when_recovery_attempts_unlimited_then_parsed() {
    let text = "[services.feed.recovery]\nmax_attempts = \"unlimited\"\n";
    let config = load(text, &[]).unwrap();
    let attempts = config.services["feed"].recovery.max_attempts;
    assert!(attempts.allows(u32::MAX));
    let text = "[services.feed.recovery]\nmax_attempts = 3\n";
    let attempts = load(text, &[]).unwrap().services["feed"]
        .recovery
        .max_attempts;
    assert!(attempts.allows(3) && !attempts.allows(4));
}

#[test]
fn test_load_when_health_score_threshold_anywhere_from_0_to_100_then_accepted_with_bands_following()
{
    for v in ["0", "40", "50", "59", "80", "100"] {
        let config = load(SHIPPED, &[("HEALTH_SCORE_THRESHOLD", v)])
            .unwrap_or_else(|e| panic!("HEALTH_SCORE_THRESHOLD={v} must be accepted: {e}"));
        let rt = &config.runtime;
        let n: u32 = v.parse().unwrap();
        assert_eq!(rt.health_score_threshold, n);
        assert!(rt.critical_score_threshold <= rt.degraded_score_threshold);
        assert!(rt.degraded_score_threshold <= n);
    }
    let err = load(SHIPPED, &[("HEALTH_SCORE_THRESHOLD", "101")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HEALTH_SCORE_THRESHOLD"), "{err}");
    assert!(!err.contains("runtime.degraded_score_threshold"), "{err}");
}

#[test]
fn test_load_when_service_has_no_open_timeout_then_seed_default_300s() {
    let config = load("[services.my_service]\nfailure_threshold = 4\n", &[]).unwrap();
    assert_eq!(
        config.services["my_service"].open_timeout,
        std::time::Duration::from_secs(300)
    );
}

#[test]
fn test_validate_when_minimum_calls_exceeds_window_then_rejected_naming_both_keys() {
    let text = format!(
        "{SHIPPED}\n[services.kite_api.rate_window]\ncalls = 10\nminimum_calls = 20\nfailure_rate_threshold = 0.5\n"
    );
    let err = load(&text, &[]).unwrap_err().to_string();
    assert!(
        err.contains("services.kite_api.rate_window.minimum_calls"),
        "{err}"
    );
    assert!(err.contains("services.kite_api.rate_window.calls"), "{err}");
}

#[test]
fn test_load_when_chaos_entry_has_unknown_key_then_error_names_the_array_element() {
    let text = format!(
        "{SHIPPED}\n[[services.kite_api.chaos]]\nfrom = \"1s\"\nuntil = \"2s\"\nfault = \"outage\"\n\n[[services.kite_api.chaos]]\nfrom = \"3s\"\nuntil = \"4s\"\nfault = \"outage\"\nbogus = 1\n"
    );
    let err = load(&text, &[]).unwrap_err().to_string();
    assert!(err.contains("services.kite_api.chaos[1].bogus"), "{err}");
}

#[test]
fn test_load_when_unknown_keys_and_bad_values_then_every_one_named_with_its_key() {
    let text = "[services.kite_api]\nfailure_treshold = 3\ncall_timeout = 10\nconcurrency = 0\n\n[services.db]\nbogus = true\n";
    let err = load(text, &[]).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "services.kite_api.failure_treshold",
        "services.kite_api.call_timeout",
        "services.kite_api.concurrency",
        "services.db.bogus",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let text = err.to_string();
    assert!(text.contains("line 2"), "the line is named: {text}");
}

#[test]
fn test_version_when_any_value_changes_then_it_moves_and_equal_configs_share_it() {
    let a = Config::seed_defaults();
    let b = Config::seed_defaults();
    assert_eq!(
        a.version(),
        b.version(),
        "the same config, the same version"
    );
    assert_eq!(a.version().len(), 16);
    let mut c = a.clone();
    c.services.get_mut("kite_api").unwrap().failure_threshold += 1;
    assert_ne!(a.version(), c.version(), "one threshold moves it");
    let mut d = a.clone();
    d.runtime.health_score_threshold -= 1;
    assert_ne!(a.version(), d.version(), "a runtime value moves it");
}
