//! `GET /metrics`: Prometheus text exposition, resilience4j-style names.

use super::routes::Shared;
use crate::breaker::BreakerState;
use crate::modes::TradingMode;
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

pub(crate) fn render(state: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let all: Vec<_> = state
        .controls
        .iter()
        .map(|c| (label(c.name()), c.metrics(), c.supervision()))
        .collect();
    family(
        &mut out,
        "seawall_circuitbreaker_state",
        "gauge",
        "The state of each circuit breaker, one-hot.",
    );
    for (name, m, _) in &all {
        for s in BreakerState::ALL {
            let _ = writeln!(
                out,
                "seawall_circuitbreaker_state{{name=\"{name}\",state=\"{}\"}} {}",
                s.as_str(),
                u8::from(m.state == s)
            );
        }
    }
    family(
        &mut out,
        "seawall_circuitbreaker_calls_seconds",
        "summary",
        "Response times of calls through each breaker, by outcome.",
    );
    for (name, m, _) in &all {
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
    family(
        &mut out,
        "seawall_circuitbreaker_not_permitted_calls_total",
        "counter",
        "Calls rejected without reaching the service.",
    );
    for (name, m, _) in &all {
        let _ = writeln!(
            out,
            "seawall_circuitbreaker_not_permitted_calls_total{{name=\"{name}\"}} {}",
            m.rejected
        );
    }
    family(
        &mut out,
        "seawall_circuitbreaker_failure_rate",
        "gauge",
        "Failure rate over the rate window, 0-1; -1 below minimum_calls or without a window.",
    );
    for (name, m, _) in &all {
        let _ = writeln!(
            out,
            "seawall_circuitbreaker_failure_rate{{name=\"{name}\"}} {}",
            m.window_failure_rate.unwrap_or(-1.0)
        );
    }
    family(
        &mut out,
        "seawall_circuitbreaker_flaps_total",
        "counter",
        "Re-opens within the stability window after a recovery (flapping).",
    );
    for (name, m, _) in &all {
        let _ = writeln!(
            out,
            "seawall_circuitbreaker_flaps_total{{name=\"{name}\"}} {}",
            m.flaps
        );
    }
    family(
        &mut out,
        "seawall_service_restarts_total",
        "counter",
        "Service actors restarted after a crash or failed start.",
    );
    for (name, _, s) in &all {
        let _ = writeln!(
            out,
            "seawall_service_restarts_total{{name=\"{name}\"}} {}",
            s.restarts
        );
    }
    family(
        &mut out,
        "seawall_recovery_attempts_total",
        "counter",
        "Recovery-strategy attempts.",
    );
    for (name, _, s) in &all {
        let _ = writeln!(
            out,
            "seawall_recovery_attempts_total{{name=\"{name}\"}} {}",
            s.recovery_attempts
        );
    }
    let report = state.health.report();
    family(
        &mut out,
        "seawall_health_score",
        "gauge",
        "The 0-100 health score.",
    );
    let _ = writeln!(out, "seawall_health_score {}", report.health_score);
    family(
        &mut out,
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
    out
}
