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

/// This node's part of a fleet budget: `rank` among `of` live nodes (the
/// whole budget when `of` is 1). Every node computes the same split from
/// the same view, so the parts add up to the limit and never past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FleetShare {
    pub(crate) rank: u32,
    pub(crate) of: u32,
}

impl FleetShare {
    /// The whole budget: a node alone, or not in a fleet.
    pub(crate) const WHOLE: Self = Self { rank: 0, of: 1 };

    /// Nothing: a node that has not yet heard what the others hold.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) const NONE: Self = Self {
        rank: u32::MAX,
        of: u32::MAX,
    };

    /// The safe share of a node cut off from the fleet: an equal part of
    /// `of`, and none of the remainder (which a live node may hold).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn safe(of: u32) -> Self {
        Self {
            rank: u32::MAX,
            of: of.max(1),
        }
    }

    /// `limit` split `of` ways: an equal part, plus one of the remainder
    /// for each of the first `limit % of` ranks.
    pub(crate) fn allowance(self, limit: u32) -> u32 {
        let of = self.of.max(1);
        limit / of + u32::from(self.rank < limit % of)
    }

    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.rank) << 32) | u64::from(self.of)
    }

    pub(crate) fn unpack(bits: u64) -> Self {
        let of = (bits & u64::from(u32::MAX)) as u32;
        if of == 0 {
            return Self::WHOLE;
        }
        Self {
            rank: (bits >> 32) as u32,
            of,
        }
    }
}

/// One limit of a class: `None` when this node's fleet share of it is 0.
struct QuotaLimiter {
    limiter: Option<Limiter>,
    label: String,
    window: Duration,
    /// Requests let through under a window longer than a minute, carried
    /// over when the limits are rebuilt, so a new share or a reload does
    /// not hand out a day's budget twice.
    granted: AtomicU64,
}

impl QuotaLimiter {
    fn long(&self) -> bool {
        self.window > Duration::from_secs(60)
    }

    /// The limiter, or the refusal of a share of 0 (wait a whole window).
    fn usable(&self, key: &str) -> Result<&Limiter, RateRefusal> {
        self.limiter
            .as_ref()
            .ok_or_else(|| self.refusal(key, self.window))
    }

    /// This limit refuses for `retry_in`, naming the class key and the limit.
    fn refusal(&self, key: &str, retry_in: Duration) -> RateRefusal {
        RateRefusal {
            limit: format!("{key} ({})", self.label),
            retry_in,
        }
    }

    fn check(&self, quota: &Limiter) -> Result<(), governor::NotUntil<Duration>> {
        quota.check()?;
        if self.long() {
            self.granted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

struct ClassLimiter {
    key: String,
    quotas: Vec<QuotaLimiter>,
    /// Paused by the dependency until this long after `base` (0: not paused).
    paused_until: AtomicU64,
}

/// One service's limits.
pub(crate) struct RateLimits {
    classes: HashMap<String, ClassLimiter>,
    max_wait: Duration,
    clock: TokioClock,
    /// A fleet share holds only while its node keeps hearing the fleet:
    /// until this long after `base` (nanoseconds; 0: no lease, not in a fleet).
    lease_until: AtomicU64,
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
    /// The limits of `[services.NAME.rate_limit]` (call after validation),
    /// or this node's `share` of them when they are a fleet budget.
    pub(crate) fn new(service: &str, config: &RateLimitConfig, share: FleetShare) -> Self {
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
                    .map(|(n, window, unit)| {
                        let part = share.allowance(n);
                        let label = if share == FleetShare::WHOLE {
                            format!("{n}/{unit}")
                        } else {
                            format!("{part}/{unit}, this node's share of {n}/{unit}")
                        };
                        QuotaLimiter {
                            limiter: quota(part, window)
                                .map(|q| RateLimiter::direct_with_clock(q, clock)),
                            label,
                            window,
                            granted: AtomicU64::new(0),
                        }
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
            lease_until: AtomicU64::new(0),
        }
    }

    /// Keeps this node's fleet share valid for `for_` from now. The fleet
    /// member renews it every heartbeat; a node frozen (SIGSTOP) past it
    /// has been written off by the others, and a request released by its
    /// limiter on waking is refused instead of spending a share that is
    /// no longer its own.
    pub(crate) fn renew_lease(&self, for_: Duration) {
        let until = self.clock.now().saturating_add(for_);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.lease_until.store(nanos, Ordering::Release);
    }

    /// The refusal of a lapsed lease, if it has lapsed.
    fn lapsed(&self, key: &str) -> Result<(), RateRefusal> {
        let until = self.lease_until.load(Ordering::Acquire);
        if until == 0 || self.clock.now() <= Duration::from_nanos(until) {
            return Ok(());
        }
        Err(RateRefusal {
            limit: format!(
                "{key} (this node's fleet share lapsed: it has not heard the fleet for fleet.unreachable_after; it rejoins before it sends)"
            ),
            retry_in: Duration::from_millis(100),
        })
    }

    /// Like [`Self::new`], but every quota starts with its burst spent: a
    /// reload replaces limits that were in use, and the new ones must not
    /// hand out a burst the old ones had already given (shrink before grow).
    ///
    /// Windows of a minute or less start fully drained (the first request
    /// waits at most one pacing interval). Longer windows (a day) would
    /// then wait hours, so they start with what `previous` had already let
    /// through in them spent instead.
    pub(crate) fn new_drained(
        service: &str,
        config: &RateLimitConfig,
        share: FleetShare,
        previous: Option<&RateLimits>,
    ) -> Self {
        let limits = Self::new(service, config, share);
        for (name, class) in &limits.classes {
            for q in &class.quotas {
                let Some(limiter) = &q.limiter else { continue };
                if !q.long() {
                    while limiter.check().is_ok() {}
                    continue;
                }
                let used = previous
                    .and_then(|p| p.classes.get(name))
                    .and_then(|c| c.quotas.iter().find(|o| o.window == q.window))
                    .map_or(0, |o| o.granted.load(Ordering::Relaxed));
                q.granted.store(used, Ordering::Relaxed);
                let mut left = used;
                while left > 0 {
                    let n = u32::try_from(left).unwrap_or(u32::MAX).min(1024);
                    match limiter.check_n(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)) {
                        Ok(Ok(())) => left -= u64::from(n),
                        // Fewer cells left than were used: spend them all.
                        _ => {
                            while limiter.check().is_ok() {}
                            break;
                        }
                    }
                }
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
        for q in &limiter.quotas {
            let quota = q.usable(&limiter.key)?;
            loop {
                match q.check(quota) {
                    Ok(()) => break,
                    Err(not_until) => {
                        let now = self.clock.now();
                        let wait = not_until.wait_time_from(now);
                        if now + wait > deadline {
                            return Err(q.refusal(&limiter.key, wait));
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        self.lapsed(&limiter.key)
    }

    /// Takes a slot now or refuses: for `cast`, which cannot wait.
    pub(crate) fn try_acquire_now(&self, class: &str) -> Result<(), RateRefusal> {
        let Some(limiter) = self.class(class) else {
            return Ok(());
        };
        self.lapsed(&limiter.key)?;
        let now = self.clock.now();
        let paused = Duration::from_nanos(limiter.paused_until.load(Ordering::Acquire));
        if paused > now {
            return Err(RateRefusal {
                limit: format!("{} (paused by the dependency's Retry-After)", limiter.key),
                retry_in: paused - now,
            });
        }
        for q in &limiter.quotas {
            let quota = q.usable(&limiter.key)?;
            if let Err(not_until) = q.check(quota) {
                return Err(q.refusal(&limiter.key, not_until.wait_time_from(now)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClassLimit;

    fn config(per_second: u32, per_day: Option<u32>) -> RateLimitConfig {
        let limit = ClassLimit {
            per_second: Some(per_second),
            per_minute: None,
            per_day,
        };
        RateLimitConfig {
            max_wait: Duration::from_secs(1),
            classes: [("default".to_string(), limit)].into_iter().collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn test_acquire_when_share_lease_lapses_then_refused_until_renewed() {
        let limits = RateLimits::new("kite_api", &config(10, None), FleetShare::WHOLE);
        limits.renew_lease(Duration::from_secs(1));
        assert!(limits.acquire("orders").await.is_ok());
        // Frozen past the lease: what the limiter releases now is refused.
        tokio::time::advance(Duration::from_secs(2)).await;
        let refused = limits.acquire("orders").await.unwrap_err();
        assert!(refused.limit.contains("lapsed"), "{}", refused.limit);
        assert!(limits.try_acquire_now("orders").is_err());
        limits.renew_lease(Duration::from_secs(1));
        assert!(limits.acquire("orders").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn test_new_drained_when_day_window_then_carries_what_was_granted_not_a_fresh_burst() {
        let day = config(1000, Some(100));
        let old = RateLimits::new("kite_api", &day, FleetShare::WHOLE);
        for _ in 0..20 {
            tokio::time::advance(Duration::from_millis(10)).await;
            old.acquire("default").await.unwrap();
        }
        let new = RateLimits::new_drained("kite_api", &day, FleetShare::WHOLE, Some(&old));
        // The day quota allows a burst of half (50): 20 are spent already.
        let mut more = 0;
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            if new.try_acquire_now("default").is_ok() {
                more += 1;
            }
        }
        assert_eq!(
            more, 30,
            "the new limiter hands out only the rest of the burst"
        );
    }

    #[test]
    fn test_allowance_when_split_then_parts_add_up_and_safe_share_takes_no_remainder() {
        let total: u32 = (0..3)
            .map(|rank| FleetShare { rank, of: 3 }.allowance(10))
            .sum();
        assert_eq!(total, 10);
        assert_eq!(FleetShare::safe(3).allowance(10), 3);
        assert_eq!(FleetShare::NONE.allowance(5000), 0);
        assert_eq!(
            FleetShare::unpack(FleetShare { rank: 2, of: 5 }.pack()),
            FleetShare { rank: 2, of: 5 }
        );
        assert_eq!(FleetShare::unpack(0), FleetShare::WHOLE);
    }
}
