//! Rate limits per service and per request class, paced with governor.
//!
//! A broker counts requests per window (Kite: quotes 1/s, orders 10/s and
//! 400/min, everything else 10/s). Requests are paced to stay inside every
//! limit of their class instead of collecting 429s: one that would break a
//! limit waits for its slot, up to `max_wait`, and is otherwise refused at
//! once with `CallError::RateLimited`
//! naming the limit. Each quota is a GCRA cell (governor) on tokio's clock,
//! so paused-time tests pace exactly like real time.
//!
//! Windows of a minute or less pace with a burst of one: one request every
//! `window / limit`, which never puts more than `limit` requests in any
//! calendar window (how Kite counts). Longer windows (a day) allow half the
//! budget at once and replenish the other half evenly, which also never
//! exceeds the limit over any window of that length.
//!
//! A dependency that names a pause (a 429 with `Retry-After`) pauses the
//! request's class for exactly that long.

use crate::config::{ClassLimit, RateLimitConfig};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// governor's clock, read from tokio's: time elapsed since the limits were built.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    base: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.base.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateRefusal {
    /// `services.NAME.rate_limit.classes.CLASS` and the limit, such as "1/s".
    pub(crate) limit: String,
    /// When a slot would have been free.
    pub(crate) retry_in: Duration,
}

struct ClassLimiter {
    key: String,
    quotas: Vec<(Limiter, String)>,
    /// Paused by the dependency until this long after `base` (0: not paused).
    paused_until: AtomicU64,
}

/// One service's limits.
pub(crate) struct RateLimits {
    classes: HashMap<String, ClassLimiter>,
    max_wait: Duration,
    clock: TokioClock,
}

fn quota(limit: u32, window: Duration) -> Option<Quota> {
    let limit = NonZeroU32::new(limit)?;
    if window <= Duration::from_secs(60) {
        Some(Quota::with_period(window / limit.get())?.allow_burst(NonZeroU32::MIN))
    } else {
        let half = NonZeroU32::new(limit.get() / 2).unwrap_or(NonZeroU32::MIN);
        Some(Quota::with_period(window / half.get())?.allow_burst(half))
    }
}

impl ClassLimit {
    fn quotas(&self) -> Vec<(u32, Duration, &'static str)> {
        [
            (self.per_second, Duration::from_secs(1), "s"),
            (self.per_minute, Duration::from_secs(60), "min"),
            (self.per_day, Duration::from_secs(86_400), "day"),
        ]
        .into_iter()
        .filter_map(|(n, w, unit)| n.map(|n| (n, w, unit)))
        .collect()
    }
}

impl RateLimits {
    /// The limits of `[services.NAME.rate_limit]` (call after validation).
    pub(crate) fn new(service: &str, config: &RateLimitConfig) -> Self {
        let clock = TokioClock {
            base: Instant::now(),
        };
        let classes = config
            .classes
            .iter()
            .map(|(class, limit)| {
                let key = format!("services.{service}.rate_limit.classes.{class}");
                let quotas = limit
                    .quotas()
                    .into_iter()
                    .filter_map(|(n, window, unit)| {
                        let q = quota(n, window)?;
                        Some((
                            RateLimiter::direct_with_clock(q, clock),
                            format!("{n}/{unit}"),
                        ))
                    })
                    .collect();
                let limiter = ClassLimiter {
                    key,
                    quotas,
                    paused_until: AtomicU64::new(0),
                };
                (class.clone(), limiter)
            })
            .collect();
        Self {
            classes,
            max_wait: config.max_wait,
            clock,
        }
    }

    /// Like [`Self::new`], but every quota starts with its burst spent: a
    /// reload replaces limits that were in use, and the new ones must not
    /// hand out a burst the old ones had already given (shrink before grow).
    pub(crate) fn new_drained(service: &str, config: &RateLimitConfig) -> Self {
        let limits = Self::new(service, config);
        for class in limits.classes.values() {
            for (limiter, _) in &class.quotas {
                while limiter.check().is_ok() {}
            }
        }
        limits
    }

    fn class(&self, class: &str) -> Option<&ClassLimiter> {
        self.classes
            .get(class)
            .or_else(|| self.classes.get("default"))
    }

    /// Waits for a slot in every limit of `class`, up to `max_wait`.
    pub(crate) async fn acquire(&self, class: &str) -> Result<(), RateRefusal> {
        let Some(limiter) = self.class(class) else {
            return Ok(());
        };
        let deadline = self.clock.now() + self.max_wait;
        let paused = Duration::from_nanos(limiter.paused_until.load(Ordering::Acquire));
        let now = self.clock.now();
        if paused > now {
            if paused > deadline {
                return Err(RateRefusal {
                    limit: format!("{} (paused by the dependency's Retry-After)", limiter.key),
                    retry_in: paused - now,
                });
            }
            tokio::time::sleep(paused - now).await;
        }
        for (quota, label) in &limiter.quotas {
            loop {
                match quota.check() {
                    Ok(()) => break,
                    Err(not_until) => {
                        let now = self.clock.now();
                        let wait = not_until.wait_time_from(now);
                        if now + wait > deadline {
                            return Err(RateRefusal {
                                limit: format!("{} ({label})", limiter.key),
                                retry_in: wait,
                            });
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes a slot now or refuses: for `cast`, which cannot wait.
    pub(crate) fn try_acquire_now(&self, class: &str) -> Result<(), RateRefusal> {
        let Some(limiter) = self.class(class) else {
            return Ok(());
        };
        let now = self.clock.now();
        let paused = Duration::from_nanos(limiter.paused_until.load(Ordering::Acquire));
        if paused > now {
            return Err(RateRefusal {
                limit: format!("{} (paused by the dependency's Retry-After)", limiter.key),
                retry_in: paused - now,
            });
        }
        for (quota, label) in &limiter.quotas {
            if let Err(not_until) = quota.check() {
                return Err(RateRefusal {
                    limit: format!("{} ({label})", limiter.key),
                    retry_in: not_until.wait_time_from(now),
                });
            }
        }
        Ok(())
    }

    /// Pauses `class` for `duration` (the dependency's Retry-After);
    /// `false` when the class has no limits here to pause.
    pub(crate) fn pause(&self, class: &str, duration: Duration) -> bool {
        let Some(limiter) = self.class(class) else {
            return false;
        };
        let until = self.clock.now().saturating_add(duration);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        limiter.paused_until.fetch_max(nanos, Ordering::AcqRel);
        true
    }
}
