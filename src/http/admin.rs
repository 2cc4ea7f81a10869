//! The operator's breaker controls, behind a bearer token.

use super::routes::{error, now_text, Shared};
use crate::cell::BreakerControl;
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

/// The longest admin token accepted (tokens are compared in fixed-size buffers).
pub(crate) const MAX_TOKEN: usize = 256;
/// The shortest admin token accepted at start.
pub(crate) const MIN_TOKEN: usize = 16;
/// The longest `reason` accepted, in characters.
const MAX_REASON: usize = 256;
/// The largest admin body read (after authentication): `{"reason": …}` only.
const MAX_BODY: usize = 4096;
/// Failed attempts per client address before it is throttled, and the window.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Compares in constant time for any length: both tokens are copied into
/// fixed buffers and compared whole, with their lengths compared the same
/// way, so neither the content nor the length leaks through timing.
fn same(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if given.len() > MAX_TOKEN || expected.len() > MAX_TOKEN {
        return false;
    }
    let mut a = [0u8; MAX_TOKEN];
    let mut b = [0u8; MAX_TOKEN];
    a[..given.len()].copy_from_slice(given);
    b[..expected.len()].copy_from_slice(expected);
    let lengths = (given.len() as u64).ct_eq(&(expected.len() as u64));
    bool::from(a.ct_eq(&b) & lengths)
}

/// Failed admin attempts per client address, and a rate limit on logging them.
#[derive(Default)]
pub(crate) struct Failures {
    by_client: dashmap::DashMap<std::net::IpAddr, (std::time::Instant, u32)>,
    last_log: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl Failures {
    /// Whether `client` is throttled (too many failures within the window).
    fn throttled(&self, client: std::net::IpAddr) -> bool {
        self.by_client.get(&client).is_some_and(|entry| {
            let (since, count) = *entry;
            count >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW
        })
    }

    /// Counts a failure and logs it, at most one line a second (with how
    /// many were not logged).
    fn failed(&self, client: std::net::IpAddr, why: &'static str) {
        {
            let mut entry = self
                .by_client
                .entry(client)
                .or_insert((std::time::Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (std::time::Instant::now(), 0);
            }
            entry.1 += 1;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *last {
            Some((at, suppressed)) if at.elapsed() < std::time::Duration::from_secs(1) => {
                *suppressed += 1;
            }
            _ => {
                let suppressed = last.map_or(0, |(_, n)| n);
                tracing::warn!(%client, why, suppressed, "admin authentication failed");
                *last = Some((std::time::Instant::now(), 0));
            }
        }
    }
}

/// Checks the token and finds the breaker; the error response otherwise.
fn authorize<'a>(
    state: &'a Shared,
    headers: &HeaderMap,
    service: &str,
    client: SocketAddr,
) -> Result<&'a BreakerControl, ApiError> {
    authenticate(state, headers, client)?;
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

/// Checks the token (throttling repeated failures); the error response otherwise.
fn authenticate(state: &Shared, headers: &HeaderMap, client: SocketAddr) -> Result<(), ApiError> {
    if state.failures.throttled(client.ip()) {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed admin attempts from {}; wait a minute",
                client.ip()
            ),
        ));
    }
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
            state.failures.failed(client.ip(), "wrong token");
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "wrong admin token".to_string(),
            ));
        }
        None => {
            state.failures.failed(client.ip(), "no token");
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing admin token; send Authorization: Bearer <SEAWALL_ADMIN_TOKEN>".to_string(),
            ));
        }
    }
    Ok(())
}

fn reason(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let reason = serde_json::from_slice::<ReasonBody>(body)
        .map(|b| b.reason)
        .map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("body must be empty or {{\"reason\": \"…\"}}: {e}"),
            )
        })?;
    if let Some(text) = &reason {
        if text.chars().count() > MAX_REASON {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("reason is longer than {MAX_REASON} characters; shorten it"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "reason contains control characters (newlines, tabs, escapes); send plain text"
                    .to_string(),
            ));
        }
    }
    Ok(reason)
}

/// Reads the body only after authentication: at most `MAX_BODY` bytes,
/// within `BODY_TIMEOUT` (a body trickled a byte at a time is cut off).
async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY))
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
            )
        })?;
    read.map_err(|e| {
        let too_large =
            format!("{e:?}").contains("LengthLimit") || e.to_string().contains("length limit");
        if too_large {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes; send at most {{\"reason\": \"…\"}}"),
            )
        } else {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    })
}

fn done(
    shared: &Shared,
    control: &BreakerControl,
    action: &'static str,
    client: SocketAddr,
    reason: Option<&str>,
) -> Response {
    let state = control.state();
    // The reason is a structured field, never spliced into the message.
    tracing::warn!(action, service = control.name(), %client, new_state = %state, reason, "admin action");
    let _ = shared.events.send(crate::event::Event::AdminAction {
        action: std::sync::Arc::from(action),
        service: control.shared_name(),
        client: client.to_string(),
        reason: reason.map(str::to_string),
    });
    Json(json!({
        "message": format!("circuit breaker {} {action}", control.name()),
        "new_state": state,
        "timestamp": now_text(),
    }))
    .into_response()
}

/// `POST …/circuit-breakers/{service}/{action}`: reset, force-open or disable.
///
/// The token is checked before a byte of the body is read: an
/// unauthenticated request never costs more memory than its headers.
pub(crate) async fn command(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // A path that cannot be decoded (invalid UTF-8) gets a JSON 400 too.
    let Path((service, action)) = match path {
        Ok(path) => path,
        Err(rejection) => {
            return ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad path: {rejection}; use …/circuit-breakers/NAME/reset|force-open|disable"
                ),
            )
            .into_response()
        }
    };
    let (label, apply): (&'static str, fn(&BreakerControl, String)) = match action.as_str() {
        "reset" => ("reset", |c, _| {
            c.reset();
        }),
        "force-open" => ("forced open", |c, why| {
            c.force_open(why);
        }),
        "disable" => ("disabled", |c, why| {
            c.disable(why);
        }),
        other => {
            return ApiError(
                StatusCode::NOT_FOUND,
                format!("no breaker command {other:?}; use reset, force-open or disable"),
            )
            .into_response()
        }
    };
    let control = match authorize(&state, &headers, &service, client) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let why = match read_body(body).await.and_then(|b| reason(&b)) {
        Ok(why) => why,
        Err(e) => return e.into_response(),
    };
    let text = why
        .clone()
        .unwrap_or_else(|| format!("{label} by operator at {client}"));
    apply(control, text);
    done(&state, control, label, client, why.as_deref())
}

/// `POST /api/v1/system/config/reload`: re-reads the config file and the
/// environment. 200 with what changed; 422 with every problem, each with
/// its key, when the new config is invalid (nothing changed then).
pub(crate) async fn reload(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authenticate(&state, &headers, client) {
        return e.into_response();
    }
    match state.reloader.reload(&client.to_string()).await {
        Ok(summary) => Json(json!({
            "message": "config reloaded",
            "version": summary.version,
            "changed": summary.changed,
            "added": summary.added,
            "removed": summary.removed,
            "timestamp": now_text(),
        }))
        .into_response(),
        Err(error) => {
            let status = match &error {
                crate::runtime::ReloadError::NoFile => StatusCode::CONFLICT,
                crate::runtime::ReloadError::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let errors: Vec<_> = error
                .problems()
                .iter()
                .map(|p| json!({ "key": p.key, "message": p.message, "fix": p.fix }))
                .collect();
            let body = json!({
                "detail": format!("config not reloaded, nothing changed: {error}"),
                "errors": errors,
            });
            (status, Json(body)).into_response()
        }
    }
}
