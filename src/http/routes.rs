//! The router and the read-only handlers.

use super::{admin, metrics, HttpState};
use crate::health::HealthStatus;
use crate::modes::TradingMode;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

pub(crate) type Shared = Arc<HttpState>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/system/health/comprehensive", get(comprehensive))
        .route(
            "/api/v1/system/health/circuit-breakers",
            get(circuit_breakers),
        )
        .route(
            "/api/v1/system/health/circuit-breakers/{service}/{action}",
            post(admin::command),
        )
        .route("/api/v1/system/config/reload", post(admin::reload))
        .route("/api/v1/system/stream", get(super::stream::stream))
        .route("/api/v1/fleet/health", get(fleet_health))
        .route("/", get(super::dashboard::page))
        .route("/dashboard", get(super::dashboard::page))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A JSON error body, `{"detail": …}`, as the seed's API answered.
pub(crate) fn error(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(json!({ "detail": detail.into() }))).into_response()
}

pub(crate) fn now_text() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

async fn comprehensive(State(state): State<Shared>) -> Response {
    let report = state.health.report();
    let code = match report.status {
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
        HealthStatus::Unhealthy | HealthStatus::Critical => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(report)).into_response()
}

/// The fleet as this node sees it (its `status` says how whole), 404
/// without a fleet.
async fn fleet_health(State(state): State<Shared>) -> Response {
    #[cfg(feature = "fleet")]
    if let Some(fleet) = &state.fleet {
        return Json(&*fleet.view()).into_response();
    }
    let _ = &state;
    error(
        StatusCode::NOT_FOUND,
        "this engine is not in a fleet: add a [fleet] table to actors.toml (seawall's `fleet` feature)",
    )
}

async fn circuit_breakers(State(state): State<Shared>) -> Response {
    let clock = crate::health::report::WallClock::new(crate::clock::now());
    let breakers: BTreeMap<&str, _> = state
        .controls
        .iter()
        .map(|c| {
            (
                c.name(),
                crate::health::report::breaker_report(c, &c.metrics(), &clock),
            )
        })
        .collect();
    Json(json!({ "circuit_breakers": breakers, "timestamp": now_text() })).into_response()
}

async fn livez() -> Response {
    Json(json!({ "status": "alive", "timestamp": now_text() })).into_response()
}

async fn readyz(State(state): State<Shared>) -> Response {
    let modes = state.modes.borrow().clone();
    let ready = modes.trading != TradingMode::Halted;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "trading_mode": modes.trading,
        "reason": modes.reason,
        "since": humantime::format_rfc3339_millis(modes.changed_at).to_string(),
    });
    (code, Json(body)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
