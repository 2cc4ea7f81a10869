//! The operator's breaker controls, behind a bearer token.

use super::routes::{error, now_text, Shared};
use crate::runtime::BreakerControl;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

/// An error answer: status and detail, rendered as `{"detail": …}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// Compares without an early exit, so timing says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the token and finds the breaker; the error response otherwise.
fn authorize<'a>(
    state: &'a Shared,
    headers: &HeaderMap,
    service: &str,
) -> Result<&'a BreakerControl, ApiError> {
    let Some(expected) = state.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "admin routes are off; set SEAWALL_ADMIN_TOKEN to a secret and restart to enable them"
                .to_string(),
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), expected.as_bytes()) => {}
        Some(_) => {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "wrong admin token".to_string(),
            ))
        }
        None => {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing admin token; send Authorization: Bearer <SEAWALL_ADMIN_TOKEN>".to_string(),
            ))
        }
    }
    state
        .controls
        .iter()
        .find(|c| c.name() == service)
        .ok_or_else(|| {
            let known: Vec<&str> = state.controls.iter().map(BreakerControl::name).collect();
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no circuit breaker named {service:?}; known: {}",
                    known.join(", ")
                ),
            )
        })
}

fn reason(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<ReasonBody>(body)
        .map(|b| b.reason)
        .map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("body must be empty or {{\"reason\": \"…\"}}: {e}"),
            )
        })
}

fn done(control: &BreakerControl, action: &str, client: SocketAddr) -> Response {
    let state = control.state();
    tracing::warn!(action, service = control.name(), %client, new_state = %state, "admin action");
    Json(json!({
        "message": format!("circuit breaker {} {action}", control.name()),
        "new_state": state,
        "timestamp": now_text(),
    }))
    .into_response()
}

/// `POST …/circuit-breakers/{service}/{action}`: reset, force-open or disable.
pub(crate) async fn command(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((service, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match action.as_str() {
        "reset" => match authorize(&state, &headers, &service) {
            Ok(control) => {
                control.reset();
                done(control, "reset", client)
            }
            Err(e) => e.into_response(),
        },
        "force-open" => manual(
            &state,
            client,
            &service,
            &headers,
            &body,
            "forced open",
            |c, why| {
                c.force_open(why);
            },
        ),
        "disable" => manual(
            &state,
            client,
            &service,
            &headers,
            &body,
            "disabled",
            |c, why| {
                c.disable(why);
            },
        ),
        other => ApiError(
            StatusCode::NOT_FOUND,
            format!("no breaker command {other:?}; use reset, force-open or disable"),
        )
        .into_response(),
    }
}

/// A manual state with an optional `{"reason": …}` body.
fn manual(
    state: &Shared,
    client: SocketAddr,
    service: &str,
    headers: &HeaderMap,
    body: &Bytes,
    action: &str,
    apply: impl FnOnce(&BreakerControl, String),
) -> Response {
    let control = match authorize(state, headers, service) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match reason(body) {
        Ok(why) => {
            apply(
                control,
                why.unwrap_or_else(|| format!("{action} by operator at {client}")),
            );
            done(control, action, client)
        }
        Err(e) => e.into_response(),
    }
}
