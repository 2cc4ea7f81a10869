//! The last few minutes of each service's traffic, one point a second, for
//! the dashboard's sparklines: a page opened in the middle of an incident
//! sees what led up to it, not only what happens after it loads.
//!
//! Sampled by one task of the HTTP face (so an engine without it pays
//! nothing) from the breakers' own counters; a service keeps points only
//! once it has seen traffic, eight bytes a second, for `SECONDS` seconds.

use super::routes::Shared;
use crate::cell::BreakerControl;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much history a sparkline shows.
pub(crate) const SECONDS: usize = 180;

/// Requests and errors per second, per service.
#[derive(Default)]
pub(crate) struct History(Mutex<Series>);

#[derive(Default)]
struct Series {
    /// The counters at the last sample: (requests, errors), rejections in both.
    last: HashMap<Arc<str>, (u64, u64)>,
    points: BTreeMap<Arc<str>, VecDeque<[u32; 2]>>,
}

impl History {
    /// Adds one point per service: what changed since the last sample.
    pub(crate) fn sample(&self, controls: &[BreakerControl]) {
        let mut series = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Series { last, points } = &mut *series;
        for control in controls {
            let m = control.metrics();
            let now = (
                m.admitted + m.rejected,
                m.failures + m.timeouts + m.rejected,
            );
            let name = control.shared_name();
            let before = last.insert(Arc::clone(&name), now).unwrap_or(now);
            let point = [
                u32::try_from(now.0.saturating_sub(before.0)).unwrap_or(u32::MAX),
                u32::try_from(now.1.saturating_sub(before.1)).unwrap_or(u32::MAX),
            ];
            let quiet = point == [0, 0];
            if quiet && !points.contains_key(&name) {
                continue;
            }
            let line = points.entry(name).or_default();
            line.push_back(point);
            if line.len() > SECONDS {
                line.pop_front();
            }
        }
    }

    /// `{service: [[requests, errors], …]}`, oldest first.
    pub(crate) fn json(&self) -> Value {
        let series = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let map: Map<String, Value> = series
            .points
            .iter()
            .map(|(name, line)| {
                let points = line
                    .iter()
                    .map(|[r, e]| Value::from(vec![*r, *e]))
                    .collect();
                (name.to_string(), Value::Array(points))
            })
            .collect();
        Value::Object(map)
    }
}

/// Samples every second until the tree shuts down.
pub(crate) async fn run(state: Shared) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => state.history.sample(&state.controls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{CircuitBreaker, FailureKind, Outcome};
    use crate::cell::BreakerCell;
    use crate::clock::now;
    use crate::config::Config;
    use crate::modes::OrderGate;

    fn control() -> BreakerControl {
        let config = Config::seed_defaults().services.remove("database").unwrap();
        let machine = CircuitBreaker::new(config.breaker_settings(), now());
        let cell = BreakerCell::new(
            Arc::from("database"),
            machine,
            Arc::new(config),
            Arc::new(OrderGate::default()),
        );
        BreakerControl::new(Arc::new(cell))
    }

    fn fail(control: &BreakerControl, times: usize) {
        for _ in 0..times {
            control.cell().apply(|m| {
                let permit = m.try_acquire(now()).ok()?;
                m.record(
                    permit,
                    Outcome::Failure(FailureKind::Server),
                    Duration::ZERO,
                    now(),
                )
            });
        }
    }

    #[test]
    fn test_sample_when_traffic_then_per_second_points_kept_for_three_minutes() {
        let history = History::default();
        let controls = vec![control()];
        history.sample(&controls);
        assert_eq!(
            history.json(),
            serde_json::json!({}),
            "a quiet service keeps nothing"
        );
        fail(&controls[0], 3);
        history.sample(&controls);
        assert_eq!(history.json(), serde_json::json!({ "database": [[3, 3]] }));
        history.sample(&controls);
        assert_eq!(
            history.json(),
            serde_json::json!({ "database": [[3, 3], [0, 0]] }),
            "once tracked, quiet seconds count too"
        );
        for _ in 0..SECONDS + 20 {
            history.sample(&controls);
        }
        let points = history.json()["database"].as_array().unwrap().len();
        assert_eq!(points, SECONDS, "the oldest seconds slide out");
    }
}
