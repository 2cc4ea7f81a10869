//! `GET /api/v1/system/stream`: the live server-sent event stream the
//! dashboard reads (as Hystrix's dashboard read its `hystrix.stream`).
//!
//! A client gets a `history` event at once (each service's requests and
//! errors per second over the last three minutes), then a `snapshot` at once and every second — the
//! whole [`HealthReport`](crate::health::HealthReport), the same JSON as
//! `/comprehensive` — and, as they happen, one event per transition
//! (`transition`), mode change (`modes`), alert (`alert`), operator action
//! (`admin`), reload (`reload`) and supervision incident (`incident`). The
//! bus delivers a transition the moment the breaker publishes it, so a
//! connected page sees it within one network round trip; a client too slow
//! to keep up skips to a fresh snapshot instead of stalling the bus.
//!
//! Streams are capped at half the HTTP face's connection limit, so a flood
//! of dashboards can never take the slots `/livez` and the admin routes
//! need; each stream ends when the tree shuts down.

use super::routes::{error, Shared};
use crate::event::{Alert, Event};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;

/// How often a snapshot is sent, at the least.
pub(crate) const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// One open stream's seat, given back when the stream ends.
struct Seat(Shared);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the stream holds between events.
struct Feed {
    seat: Seat,
    events: tokio::sync::broadcast::Receiver<Event>,
    ticker: tokio::time::Interval,
    /// Sent once, before anything else.
    history: Option<SseEvent>,
}

pub(crate) async fn stream(State(state): State<Shared>) -> Response {
    let open = state.streams.fetch_add(1, Ordering::AcqRel);
    if open >= state.max_streams {
        state.streams.fetch_sub(1, Ordering::AcqRel);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} live streams are open, the most this server allows; close a dashboard or raise runtime.http.max_connections",
                state.max_streams
            ),
        );
    }
    let mut ticker = tokio::time::interval(SNAPSHOT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The traffic of the last minutes first, for the sparklines.
    let history = SseEvent::default()
        .event("history")
        .data(state.history.json().to_string());
    let feed = Feed {
        events: state.events.subscribe(),
        seat: Seat(state),
        ticker,
        history: Some(history),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        if let Some(history) = feed.history.take() {
            return Some((Ok::<_, Infallible>(history), feed));
        }
        let shutdown = feed.seat.0.shutdown.clone();
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            event = feed.events.recv() => match event {
                Ok(event) => render(&event),
                Err(RecvError::Lagged(_)) => Some(snapshot(&feed.seat.0)),
                Err(RecvError::Closed) => return None,
            },
            _ = feed.ticker.tick() => Some(snapshot(&feed.seat.0)),
        };
        // An event the page does not show is sent as a comment (a heartbeat).
        let next = next.unwrap_or_else(|| SseEvent::default().comment(""));
        Some((Ok::<_, Infallible>(next), feed))
    });
    Sse::new(stream).into_response()
}

fn snapshot(state: &Shared) -> SseEvent {
    let report = state.health.report();
    let data = serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_string());
    SseEvent::default().event("snapshot").data(data)
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn event(kind: &str, body: Value) -> Option<SseEvent> {
    let mut body = body;
    body["at"] = Value::String(now());
    Some(SseEvent::default().event(kind).data(body.to_string()))
}

/// The bus event as the page reads it; `None` for what it does not show.
fn render(e: &Event) -> Option<SseEvent> {
    match e {
        Event::Transition {
            service,
            transition,
        } => event(
            "transition",
            json!({
                "service": &**service,
                "from": transition.from,
                "to": transition.to,
                "reason": transition.reason.to_string(),
                "flap": transition.flap,
            }),
        ),
        Event::ModesChanged(modes) => event("modes", json!({ "modes": modes })),
        Event::Alert(alert) => event("alert", json!({ "message": alert_text(alert) })),
        Event::AdminAction {
            action,
            service,
            client,
            reason,
        } => event(
            "admin",
            json!({ "action": &**action, "service": &**service, "client": client, "reason": reason }),
        ),
        Event::ConfigReloaded(summary) => event("reload", json!(summary)),
        other => incident(other).and_then(|(service, message)| {
            event(
                "incident",
                json!({ "service": service, "message": message }),
            )
        }),
    }
}

fn incident(e: &Event) -> Option<(&str, String)> {
    Some(match e {
        Event::ServiceActorFailed {
            service,
            worker,
            error,
        } => (service, format!("service actor {worker} failed: {error}")),
        Event::ServiceActorRestarted { service, worker } => {
            (service, format!("service actor {worker} restarted"))
        }
        Event::Escalated { service, reason } => (service, format!("escalated: {reason}")),
        Event::RecoveryAttempted {
            service,
            attempt,
            error,
        } => (
            service,
            match error {
                None => format!("recovery attempt {attempt} succeeded"),
                Some(error) => format!("recovery attempt {attempt} failed: {error}"),
            },
        ),
        Event::RecoveryGaveUp { service, attempts } => (
            service,
            format!("recovery gave up after {attempts} attempts"),
        ),
        Event::Auth {
            service,
            failure: Some(error),
        } => (service, format!("credentials failed: {error}")),
        Event::Auth {
            service,
            failure: None,
        } => (service, "credentials work again".to_string()),
        _ => return None,
    })
}

fn alert_text(alert: &Alert) -> String {
    match alert {
        Alert::ScoreCrossed {
            score,
            threshold,
            below,
            status,
            ..
        } => {
            let side = if *below { "below" } else { "back at or above" };
            format!("health score {score} is {side} {threshold} ({status:?})")
        }
        Alert::Auth { service, error } => format!("{service}: credentials failed: {error}"),
        Alert::Escalation { service, reason } => format!("{service}: escalated: {reason}"),
        Alert::Flap { service, flaps, .. } => {
            format!("{service}: flapping ({flaps} re-opens soon after recovering)")
        }
    }
}
