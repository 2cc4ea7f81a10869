//! Rate limits per service and per request class.
//!
//! A broker counts requests per window (Kite: quotes 1/s, orders 10/s and
//! 400/min, everything else 10/s). Requests are paced to stay inside every
//! limit of their class instead of collecting 429s: one that would break a
//! limit waits for its slot, up to `max_wait`, and is otherwise refused at
//! once with `CallError::RateLimited` naming the limit. Time is tokio's
//! clock, so paused-time tests pace exactly like real time.
//!
//! Each quota is a GCRA schedule (the algorithm governor implements), kept
//! here because a class has several quotas at once (orders: 10/s *and*
//! 400/min) and a request must take its slot in all of them at the same
//! instant. A request **reserves** the earliest instant every quota of its
//! class allows, in one step under one lock, and is sent at that instant;
//! nothing is consumed in one quota while the request still waits for
//! another, so the send times themselves keep every quota's spacing.
//!
//! Windows of a minute or less pace with a burst of one: one request every
//! `window / limit` (rounded up), which never puts more than `limit`
//! requests in any window of that length. Longer windows (a day) allow half
//! the budget at once and replenish the other half evenly, which also never
//! exceeds the limit over any window of that length.
//!
//! Limits are rebuilt when a reload changes them or a fleet re-splits its
//! budget. The old schedule is retired under its lock (a request that finds
//! it retired takes its slot from the new one) and the new schedule starts
//! where the old one's reservations end, so the two never overlap: across a
//! hand-over the requests in any window stay within the larger of the old
//! and the new limit.
//!
//! A dependency that names a pause (a 429 with `Retry-After`) pauses the
//! request's class for exactly that long.

use super::nanos;
use crate::config::{ClassLimit, RateLimitConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateRefusal {
    /// `services.NAME.rate_limit.classes.CLASS` and the limit, such as "1/s".
    pub(crate) limit: String,
    /// When a slot would have been free.
    pub(crate) retry_in: Duration,
}

/// What keeps a request from its slot in these limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unpaced {
    /// A limit refuses it.
    Refused(RateRefusal),
    /// These limits were replaced: take the slot from the new ones.
    Retired,
}

impl From<RateRefusal> for Unpaced {
    fn from(refusal: RateRefusal) -> Self {
        Self::Refused(refusal)
    }
}

/// This node's part of a fleet budget: `rank` among `of` live nodes (the
/// whole budget when `of` is 1). Every node computes the same split from
/// the same view, so the parts add up to the limit and never past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FleetShare {
    pub(crate) rank: u32,
    pub(crate) of: u32,
}

/// As an operator reads it in the log: `rank 0 of 3`, `an equal part of 3`
/// (the safe share), `nothing yet`.
impl std::fmt::Display for FleetShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::NONE => f.write_str("nothing yet"),
            Self {
                rank: Self::EQUAL_PART,
                of,
            } => write!(f, "an equal part of {of}"),
            Self { rank, of } => write!(f, "rank {rank} of {of}"),
        }
    }
}

impl FleetShare {
    /// The rank of an equal part with none of the remainder (the safe
    /// share): no live node's rank, so it never takes one of the remainder.
    const EQUAL_PART: u32 = u32::MAX;

    /// The whole budget: a node alone, or not in a fleet.
    pub(crate) const WHOLE: Self = Self { rank: 0, of: 1 };

    /// Nothing: a node that has not yet heard what the others hold.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) const NONE: Self = Self {
        rank: Self::EQUAL_PART,
        of: u32::MAX,
    };

    /// The safe share of a node cut off from the fleet: an equal part of
    /// `of`, and none of the remainder (which a live node may hold).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn safe(of: u32) -> Self {
        Self {
            rank: Self::EQUAL_PART,
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

/// One limit's schedule: GCRA in nanoseconds after the limits' `base`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Nanoseconds between requests.
    period: u64,
    /// How far ahead of its turn a request may go (the burst, less one,
    /// times the period): 0 for windows of a minute or less.
    tolerance: u64,
    /// The theoretical arrival time: the next request's turn.
    tat: u64,
}

impl Schedule {
    /// `limit` per `window`, or `None` for a limit of 0 (this node's
    /// fleet share of it is nothing).
    fn new(limit: u32, window: Duration) -> Option<Self> {
        if limit == 0 {
            return None;
        }
        let (cells, burst) = if window <= SHORT_WINDOW {
            (limit, 1)
        } else {
            let half = (limit / 2).max(1);
            (half, half)
        };
        let window = nanos(window);
        // Rounded up: `limit` periods never fit in less than the window.
        let period = window.div_ceil(u64::from(cells)).max(1);
        Some(Self {
            period,
            tolerance: period.saturating_mul(u64::from(burst - 1)),
            tat: 0,
        })
    }

    /// The earliest instant this schedule lets a request go, at or after `now`.
    fn earliest(&self, now: u64) -> u64 {
        now.max(self.tat.saturating_sub(self.tolerance))
    }

    /// A request goes at `at` (never before [`Self::earliest`]).
    fn take(&mut self, at: u64) {
        self.tat = self.tat.max(at).saturating_add(self.period);
    }

    /// This schedule, continued from `old`'s at `now`. Short windows start
    /// one of their own periods after the last request `old` let go (or has
    /// promised to a waiting request), so the two never crowd each other.
    /// Long windows keep what `old` had spent of its budget.
    fn continue_from(&mut self, old: &Schedule, now: u64, long: bool) {
        self.tat = if long {
            let debt = old.tat.saturating_sub(now) as u128;
            let scaled = debt * u128::from(self.period) / u128::from(old.period.max(1));
            now.saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
        } else {
            let last = old.tat.saturating_sub(old.period);
            now.max(last.saturating_add(self.period))
        };
    }

    /// Drained: the first request waits one period (a rebuild with
    /// nothing to continue from never hands out a fresh burst).
    fn drain(&mut self, now: u64) {
        self.tat = now
            .saturating_add(self.period)
            .saturating_add(self.tolerance);
    }
}

/// Windows up to this long pace with a burst of one; longer ones (a day)
/// allow half their budget at once.
const SHORT_WINDOW: Duration = Duration::from_secs(60);

/// One limit of a class, as configured and as this node's share.
struct Quota {
    label: String,
    window: Duration,
    /// `None` when this node's fleet share of the limit is 0.
    schedule: Option<Schedule>,
}

impl Quota {
    fn long(&self) -> bool {
        self.window > SHORT_WINDOW
    }

    /// This limit refuses for `retry_in`, naming the class key and the limit.
    fn refusal(&self, key: &str, retry_in: Duration) -> RateRefusal {
        RateRefusal {
            limit: format!("{key} ({})", self.label),
            retry_in,
        }
    }
}

struct Class {
    key: String,
    /// Paused by the dependency until this long after `base` (0: not paused).
    paused_until: AtomicU64,
}

/// Every class's schedules, under one lock: a reservation and a retirement
/// each happen in one step.
struct Schedules {
    quotas: HashMap<String, Vec<Quota>>,
    /// Replaced by newer limits: nothing more is reserved here.
    retired: bool,
}

/// One service's limits.
pub(crate) struct RateLimits {
    classes: HashMap<String, Class>,
    schedules: Mutex<Schedules>,
    max_wait: Duration,
    /// Time zero for every schedule and pause.
    base: Instant,
    /// A fleet share holds only while its node keeps hearing the fleet:
    /// until this long after `base` (nanoseconds; 0: no lease, not in a fleet).
    lease_until: AtomicU64,
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
        let mut classes = HashMap::new();
        let mut quotas = HashMap::new();
        for (class, limit) in &config.classes {
            let key = format!("services.{service}.rate_limit.classes.{class}");
            let parts = limit
                .quotas()
                .into_iter()
                .map(|(n, window, unit)| {
                    let part = share.allowance(n);
                    let label = if share == FleetShare::WHOLE {
                        format!("{n}/{unit}")
                    } else {
                        format!("{part}/{unit}, this node's share of {n}/{unit}")
                    };
                    Quota {
                        label,
                        window,
                        schedule: Schedule::new(part, window),
                    }
                })
                .collect();
            quotas.insert(class.clone(), parts);
            let paused_until = AtomicU64::new(0);
            classes.insert(class.clone(), Class { key, paused_until });
        }
        Self {
            classes,
            schedules: Mutex::new(Schedules {
                quotas,
                retired: false,
            }),
            max_wait: config.max_wait,
            base: Instant::now(),
            lease_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    fn schedules(&self) -> MutexGuard<'_, Schedules> {
        // Nothing panics under this lock; carry on rather than poison.
        self.schedules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps this node's fleet share valid for `for_` from now. The fleet
    /// member renews it every heartbeat; a node frozen (SIGSTOP) past it
    /// has been written off by the others, and a request released by its
    /// limiter on waking is refused instead of spending a share that is
    /// no longer its own.
    pub(crate) fn renew_lease(&self, for_: Duration) {
        let until = self.now().saturating_add(nanos(for_)).max(1);
        self.lease_until.store(until, Ordering::Release);
    }

    /// The refusal of a lapsed lease, if it has lapsed.
    fn lapsed(&self, key: &str) -> Result<(), RateRefusal> {
        let until = self.lease_until.load(Ordering::Acquire);
        if until == 0 || self.now() <= until {
            return Ok(());
        }
        Err(RateRefusal {
            limit: format!(
                "{key} (this node's fleet share lapsed: it has not heard the fleet for fleet.unreachable_after; it rejoins before it sends)"
            ),
            retry_in: Duration::from_millis(100),
        })
    }

    /// Like [`Self::new`], but continuing `previous` (the limits these
    /// replace: a reload, a fleet re-split), which is retired here: nothing
    /// more is reserved in it.
    ///
    /// Short windows start one of the new periods after the last turn
    /// `previous` let go or promised to a waiting request; with no
    /// `previous` they start drained (the first request waits one period).
    /// Long windows (a day) carry over what `previous` had spent, so a
    /// day's budget is neither refilled by a reload nor frozen for hours.
    /// The dependency's pauses and the fleet lease carry over too.
    pub(crate) fn replacing(
        service: &str,
        config: &RateLimitConfig,
        share: FleetShare,
        previous: Option<&RateLimits>,
    ) -> Self {
        let limits = Self::new(service, config, share);
        let now = limits.now();
        let mut old = previous.map(|p| (p, p.schedules()));
        {
            let mut new = limits.schedules();
            for (class, quotas) in &mut new.quotas {
                for q in quotas.iter_mut() {
                    let (long, window) = (q.long(), q.window);
                    let Some(schedule) = &mut q.schedule else {
                        continue;
                    };
                    let before = old.as_ref().and_then(|(p, old)| {
                        let q = old.quotas.get(class)?.iter().find(|o| o.window == window)?;
                        let mut s = q.schedule?;
                        s.tat = limits.rebase(p, s.tat);
                        Some(s)
                    });
                    match before {
                        Some(before) => schedule.continue_from(&before, now, long),
                        None if long => {}
                        None => schedule.drain(now),
                    }
                }
            }
        }
        if let Some((p, old)) = &mut old {
            old.retired = true;
            for (name, class) in &p.classes {
                let paused = class.paused_until.load(Ordering::Acquire);
                if let (Some(new), true) = (limits.classes.get(name), paused != 0) {
                    let paused = limits.rebase(p, paused).max(1);
                    new.paused_until.store(paused, Ordering::Release);
                }
            }
            let lease = p.lease_until.load(Ordering::Acquire);
            if lease != 0 {
                let lease = limits.rebase(p, lease).max(1);
                limits.lease_until.store(lease, Ordering::Release);
            }
        }
        drop(old);
        limits
    }

    /// An instant `t` of `older`'s clock (nanoseconds after its base) on
    /// this one's, which starts later.
    fn rebase(&self, older: &RateLimits, t: u64) -> u64 {
        t.saturating_sub(nanos(self.base.saturating_duration_since(older.base)))
    }

    fn class(&self, class: &str) -> Option<(&str, &Class)> {
        self.classes
            .get_key_value(class)
            .or_else(|| self.classes.get_key_value("default"))
            .map(|(name, class)| (name.as_str(), class))
    }

    /// Reserves the earliest instant (nanoseconds after `base`) every limit
    /// of `class` allows, if it is no later than `latest`.
    fn reserve(&self, name: &str, class: &Class, latest: u64) -> Result<u64, Unpaced> {
        let now = self.now();
        let latest = latest.max(now);
        let mut schedules = self.schedules();
        if schedules.retired {
            return Err(Unpaced::Retired);
        }
        let quotas = schedules
            .quotas
            .get_mut(name)
            .map_or(&mut [][..], |q| &mut q[..]);
        let mut at = now;
        let mut holding = None;
        for q in quotas.iter() {
            let Some(schedule) = &q.schedule else {
                // A share of 0: refused, for a whole window.
                return Err(q.refusal(&class.key, q.window).into());
            };
            let earliest = schedule.earliest(now);
            if earliest > at {
                at = earliest;
                holding = Some(q);
            }
        }
        if let (true, Some(q)) = (at > latest, holding) {
            // Named: the limit that holds the request longest.
            return Err(q.refusal(&class.key, Duration::from_nanos(at - now)).into());
        }
        for q in quotas.iter_mut() {
            if let Some(schedule) = &mut q.schedule {
                schedule.take(at);
            }
        }
        Ok(at)
    }

    /// The dependency's own pause of `class`, past `latest`: refused.
    fn paused(&self, class: &Class, now: u64, latest: u64) -> Result<u64, RateRefusal> {
        let paused = class.paused_until.load(Ordering::Acquire);
        if paused > latest {
            return Err(RateRefusal {
                limit: format!("{} (paused by the dependency's Retry-After)", class.key),
                retry_in: Duration::from_nanos(paused.saturating_sub(now)),
            });
        }
        Ok(paused)
    }

    /// When a request that starts waiting now must be refused: `max_wait`
    /// from now.
    pub(crate) fn wait_limit(&self) -> tokio::time::Instant {
        crate::cell::deadline_after(tokio::time::Instant::now(), self.max_wait)
    }

    /// Waits for a slot in every limit of `class`, refused past `until`
    /// (see [`Self::wait_limit`]). [`Unpaced::Retired`] when these limits
    /// were replaced meanwhile: the caller takes its slot from the new ones.
    pub(crate) async fn acquire(
        &self,
        class: &str,
        until: tokio::time::Instant,
    ) -> Result<(), Unpaced> {
        let Some((name, limiter)) = self.class(class) else {
            return Ok(());
        };
        let latest = nanos(until.saturating_duration_since(self.base));
        let now = self.now();
        let paused = self.paused(limiter, now, latest)?;
        if paused > now {
            tokio::time::sleep(Duration::from_nanos(paused - now)).await;
        }
        let at = self.reserve(name, limiter, latest)?;
        let now = self.now();
        if at > now {
            tokio::time::sleep(Duration::from_nanos(at - now)).await;
        }
        Ok(self.lapsed(&limiter.key)?)
    }

    /// Takes a slot now or refuses: for `cast`, which cannot wait.
    pub(crate) fn try_acquire_now(&self, class: &str) -> Result<(), Unpaced> {
        let Some((name, limiter)) = self.class(class) else {
            return Ok(());
        };
        self.lapsed(&limiter.key)?;
        let now = self.now();
        self.paused(limiter, now, now)?;
        self.reserve(name, limiter, now)?;
        Ok(())
    }

    /// Pauses `class` for `duration` (the dependency's Retry-After);
    /// `false` when the class has no limits here to pause.
    pub(crate) fn pause(&self, class: &str, duration: Duration) -> bool {
        let Some((_, limiter)) = self.class(class) else {
            return false;
        };
        let until = self.now().saturating_add(nanos(duration));
        limiter.paused_until.fetch_max(until, Ordering::AcqRel);
        true
    }
}

/// Kite's orders, 10/s and 400/min, waited for up to an hour: for tests.
#[cfg(test)]
pub(crate) fn kite_orders() -> RateLimitConfig {
    let limit = ClassLimit {
        per_second: Some(10),
        per_minute: Some(400),
        per_day: None,
    };
    RateLimitConfig {
        max_wait: Duration::from_secs(3600),
        classes: [("orders".to_string(), limit)].into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClassLimit;
    use std::sync::Arc;

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

    fn orders() -> RateLimitConfig {
        super::kite_orders()
    }

    async fn take(limits: &RateLimits, class: &str) -> Result<(), Unpaced> {
        limits.acquire(class, limits.wait_limit()).await
    }

    /// The most requests in any half-open window of `window` (the sorted
    /// instants are where they went out).
    fn busiest(sent: &[Duration], window: Duration) -> usize {
        let mut sent = sent.to_vec();
        sent.sort();
        let mut first = 0;
        let mut most = 0;
        for (last, at) in sent.iter().enumerate() {
            while *at - sent[first] >= window {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// The shortest gap between two sends.
    fn closest(sent: &[Duration]) -> Duration {
        let mut sent = sent.to_vec();
        sent.sort();
        sent.windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or(Duration::MAX)
    }

    #[test]
    fn test_share_display_when_logged_then_names_rank_equal_part_or_nothing() {
        assert_eq!(FleetShare { rank: 1, of: 3 }.to_string(), "rank 1 of 3");
        assert_eq!(FleetShare::safe(4).to_string(), "an equal part of 4");
        assert_eq!(FleetShare::NONE.to_string(), "nothing yet");
    }

    #[test]
    fn test_busiest_when_a_window_holds_one_too_many_then_counts_it() {
        // A planted violation: 11 sends inside one second.
        let sent: Vec<Duration> = (0..11).map(|i| Duration::from_millis(i * 99)).collect();
        assert_eq!(busiest(&sent, Duration::from_secs(1)), 11);
        let spaced: Vec<Duration> = (0..11).map(|i| Duration::from_millis(i * 100)).collect();
        assert_eq!(busiest(&spaced, Duration::from_secs(1)), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn test_acquire_when_share_lease_lapses_then_refused_until_renewed() {
        let limits = RateLimits::new("kite_api", &config(10, None), FleetShare::WHOLE);
        limits.renew_lease(Duration::from_secs(1));
        assert!(take(&limits, "orders").await.is_ok());
        // Frozen past the lease: what the limiter releases now is refused.
        tokio::time::advance(Duration::from_secs(2)).await;
        let Err(Unpaced::Refused(refused)) = take(&limits, "orders").await else {
            panic!("a lapsed lease refuses");
        };
        assert!(refused.limit.contains("lapsed"), "{}", refused.limit);
        assert!(limits.try_acquire_now("orders").is_err());
        limits.renew_lease(Duration::from_secs(1));
        assert!(take(&limits, "orders").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn test_replacing_when_day_window_then_carries_what_was_granted_not_a_fresh_burst() {
        let day = config(1000, Some(100));
        let old = RateLimits::new("kite_api", &day, FleetShare::WHOLE);
        for _ in 0..20 {
            tokio::time::advance(Duration::from_millis(10)).await;
            take(&old, "default").await.unwrap();
        }
        let new = RateLimits::replacing("kite_api", &day, FleetShare::WHOLE, Some(&old));
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
        assert_eq!(
            old.try_acquire_now("default"),
            Err(Unpaced::Retired),
            "the replaced limits reserve nothing more"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn test_acquire_when_eight_callers_wait_on_two_limits_then_every_window_holds() {
        let limits = Arc::new(RateLimits::new("kite_api", &orders(), FleetShare::WHOLE));
        let sent = pace_for(limits, Duration::from_secs(150), None).await;
        // 400/min binds: one every 150 ms, so 7 in any second (of 10).
        assert_eq!(closest(&sent), Duration::from_millis(150));
        assert_eq!(busiest(&sent, Duration::from_secs(1)), 7);
        assert_eq!(busiest(&sent, Duration::from_secs(60)), 400);
        assert!(
            sent.len() >= 950,
            "paced at the limit, not below: {}",
            sent.len()
        );
    }

    /// Eight callers pace `orders` through `limits` for `for_`, taking
    /// their turns as `BreakerCell::pace` does. At `re_split_at`, if given,
    /// the limits are replaced by a share of one half (a fleet re-split).
    /// When each request went out.
    async fn pace_for(
        limits: Arc<RateLimits>,
        for_: Duration,
        re_split_at: Option<Duration>,
    ) -> Vec<Duration> {
        let current = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&limits)));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (current, sent) = (Arc::clone(&current), Arc::clone(&sent));
            callers.spawn(async move {
                while start.elapsed() < for_ {
                    loop {
                        match take(&current.load_full(), "orders").await {
                            Ok(()) => break,
                            Err(Unpaced::Retired) => tokio::task::yield_now().await,
                            Err(Unpaced::Refused(r)) => panic!("{r:?}"),
                        }
                    }
                    sent.lock().unwrap().push(start.elapsed());
                }
            });
        }
        if let Some(at) = re_split_at {
            tokio::time::sleep(at).await;
            let half = FleetShare { rank: 0, of: 2 };
            let rebuilt = RateLimits::replacing("kite_api", &orders(), half, Some(&limits));
            current.store(Arc::new(rebuilt));
        }
        while callers.join_next().await.is_some() {}
        let sent = sent.lock().unwrap().clone();
        sent
    }

    #[tokio::test(start_paused = true)]
    async fn test_replacing_when_waiters_hold_turns_in_the_old_limits_then_the_two_never_crowd() {
        // Eight callers pace at 10/s; the limits are rebuilt as a share of
        // 5/s (a fleet re-split) while turns are promised in the old ones.
        let whole = Arc::new(RateLimits::new("kite_api", &orders(), FleetShare::WHOLE));
        let sent = pace_for(
            whole,
            Duration::from_secs(4),
            Some(Duration::from_millis(1_505)),
        )
        .await;
        // Old: 400/min binds, one every 150 ms. New: 200/min, every 300 ms.
        assert_eq!(
            closest(&sent),
            Duration::from_millis(150),
            "the old turns and the new ones never crowd each other"
        );
        assert_eq!(busiest(&sent, Duration::from_secs(1)), 7);
        let after: Vec<Duration> = sent
            .iter()
            .copied()
            .filter(|at| *at >= Duration::from_millis(2_600))
            .collect();
        assert_eq!(
            closest(&after),
            Duration::from_millis(300),
            "then the new share"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn test_replacing_when_callers_wait_out_a_pause_in_the_old_limits_then_they_pace_in_the_new(
    ) {
        let whole = Arc::new(RateLimits::new("kite_api", &orders(), FleetShare::WHOLE));
        assert!(whole.pause("orders", Duration::from_secs(1)));
        // At 500 ms every caller sleeps out the pause, holding the old limits.
        let sent = pace_for(
            whole,
            Duration::from_secs(4),
            Some(Duration::from_millis(500)),
        )
        .await;
        assert!(
            sent.iter().all(|at| *at >= Duration::from_secs(1)),
            "the pause carries over to the new limits"
        );
        assert_eq!(
            closest(&sent),
            Duration::from_millis(300),
            "every caller woke into the new limits: none took a turn in the old"
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
