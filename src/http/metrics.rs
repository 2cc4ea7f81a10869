//! `GET /metrics`: Prometheus text exposition, resilience4j-style names.

use super::routes::Shared;
use crate::breaker::{BreakerMetrics, BreakerState};
use crate::modes::TradingMode;
use crate::stats::SupervisionStats;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn metrics(State(state): State<Shared>) -> Response {
    let body = render(&state);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The `# HELP` and `# TYPE` lines of one metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A per-service family: name, type, help, and how to read its value.
type Counter = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BreakerMetrics, &SupervisionStats) -> f64,
);

/// One service's figures, read once per scrape.
type Row = (String, BreakerMetrics, SupervisionStats);

/// A family with one sample per service, `name="…"`.
fn per_service<V: std::fmt::Display>(
    out: &mut String,
    rows: &[Row],
    (metric, kind, help): (&str, &str, &str),
    value: impl Fn(&BreakerMetrics, &SupervisionStats) -> V,
) {
    family(out, metric, kind, help);
    for (name, m, s) in rows {
        let _ = writeln!(out, "{metric}{{name=\"{name}\"}} {}", value(m, s));
    }
}

pub(crate) fn render(state: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let rows: Vec<Row> = state
        .controls
        .iter()
        .map(|c| (label(c.name()), c.metrics(), c.supervision()))
        .collect();
    breaker_states(&mut out, &rows);
    call_times(&mut out, &rows);
    let counters: [Counter; 5] = [
        (
            "seawall_circuitbreaker_not_permitted_calls_total",
            "counter",
            "Calls rejected without reaching the service.",
            |m, _| m.rejected as f64,
        ),
        (
            "seawall_circuitbreaker_failure_rate",
            "gauge",
            "Failure rate over the rate window, 0-1; -1 below minimum_calls or without a window.",
            |m, _| m.window_failure_rate.unwrap_or(-1.0),
        ),
        (
            "seawall_circuitbreaker_flaps_total",
            "counter",
            "Re-opens within the stability window after a recovery (flapping).",
            |m, _| m.flaps as f64,
        ),
        (
            "seawall_service_restarts_total",
            "counter",
            "Service actors restarted after a crash or failed start.",
            |_, s| s.restarts as f64,
        ),
        (
            "seawall_recovery_attempts_total",
            "counter",
            "Recovery-strategy attempts.",
            |_, s| s.recovery_attempts as f64,
        ),
    ];
    for (metric, kind, help, value) in counters {
        per_service(&mut out, &rows, (metric, kind, help), value);
    }
    tree_gauges(&mut out, state);
    out
}

/// Each breaker's state, one-hot.
fn breaker_states(out: &mut String, rows: &[Row]) {
    family(
        out,
        "seawall_circuitbreaker_state",
        "gauge",
        "The state of each circuit breaker, one-hot.",
    );
    for (name, m, _) in rows {
        for s in BreakerState::ALL {
            let _ = writeln!(
                out,
                "seawall_circuitbreaker_state{{name=\"{name}\",state=\"{}\"}} {}",
                s.as_str(),
                u8::from(m.state == s)
            );
        }
    }
}

/// Call counts and total time, by outcome.
fn call_times(out: &mut String, rows: &[Row]) {
    family(
        out,
        "seawall_circuitbreaker_calls_seconds",
        "summary",
        "Response times of calls through each breaker, by outcome.",
    );
    for (name, m, _) in rows {
        let kinds = [
            ("successful", m.successes, m.elapsed_by_outcome[0]),
            ("failed", m.failures, m.elapsed_by_outcome[1]),
            ("ignored", m.ignored, m.elapsed_by_outcome[2]),
            ("timeout", m.timeouts, m.elapsed_by_outcome[3]),
        ];
        for (kind, count, sum) in kinds {
            let _ = writeln!(
                out,
                "seawall_circuitbreaker_calls_seconds_count{{name=\"{name}\",kind=\"{kind}\"}} {count}\nseawall_circuitbreaker_calls_seconds_sum{{name=\"{name}\",kind=\"{kind}\"}} {}",
                sum.as_secs_f64()
            );
        }
    }
}

/// The health score and the trading mode.
fn tree_gauges(out: &mut String, state: &Shared) {
    let report = state.health.report();
    family(
        out,
        "seawall_health_score",
        "gauge",
        "The 0-100 health score.",
    );
    let _ = writeln!(out, "seawall_health_score {}", report.health_score);
    family(
        out,
        "seawall_trading_mode",
        "gauge",
        "The trading mode, one-hot: active, reducing or halted.",
    );
    let mode = state.modes.borrow().trading;
    for (m, text) in [
        (TradingMode::Active, "active"),
        (TradingMode::Reducing, "reducing"),
        (TradingMode::Halted, "halted"),
    ] {
        let _ = writeln!(
            out,
            "seawall_trading_mode{{mode=\"{text}\"}} {}",
            u8::from(mode == m)
        );
    }
}
