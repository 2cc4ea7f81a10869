//! [`HealthReport`]: the seed's comprehensive-health JSON, from cached state.

use super::score::{
    self, HealthStatus, ScoreBreakdown, ScoreInputs, ServiceInput, Thresholds, TradingMetrics,
};
use super::system::{resource_status, SystemSample};
use super::trends::Trends;
use crate::breaker::{BreakerMetrics, BreakerState};
use crate::cell::BreakerControl;
use crate::modes::{Modes, TradingMode};
use crate::stats::SupervisionStats;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Report maps are keyed by the service's shared name (no copy per report).
pub type Name = Arc<str>;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The last health check of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Whether it passed.
    pub healthy: bool,
    /// When it finished, on the tree's clock.
    pub at: Instant,
    /// How long it took.
    pub latency: Duration,
    /// What went wrong, if it failed.
    pub error: Option<String>,
}

/// What the health actor keeps for reports. Everything a report needs that
/// is not a breaker's own counters.
#[derive(Debug, Default)]
pub(crate) struct HealthCache {
    pub(crate) checks: HashMap<Arc<str>, CheckResult>,
    pub(crate) system: Option<SystemSample>,
    pub(crate) trading: TradingMetrics,
    pub(crate) trading_reported_at: Option<SystemTime>,
    pub(crate) trends: Arc<BTreeMap<Arc<str>, Arc<Trends>>>,
    /// The score at each trend tick (one a minute), newest first.
    pub(crate) scores: std::collections::VecDeque<u8>,
}

/// Minute samples of the score kept, for its 15-minute trend.
pub(crate) const SCORE_HISTORY: usize = 16;

/// How the health score moved: now minus 1, 5 and 15 minutes ago (points),
/// `None` until the tree has run that long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScoreTrend {
    /// Change over the last minute.
    pub one_minute: Option<i16>,
    /// Change over the last five minutes.
    pub five_minutes: Option<i16>,
    /// Change over the last fifteen minutes.
    pub fifteen_minutes: Option<i16>,
}

impl ScoreTrend {
    /// `scores[k]` is the score k minutes before the newest sample.
    fn of(now: u8, scores: &std::collections::VecDeque<u8>) -> Self {
        let change = |minutes: usize| {
            scores
                .get(minutes.saturating_sub(1))
                .map(|then| i16::from(now) - i16::from(*then))
        };
        Self {
            one_minute: change(1),
            five_minutes: change(5),
            fifteen_minutes: change(15),
        }
    }
}

/// The comprehensive health report (`GET /api/v1/system/health/comprehensive`).
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// healthy, degraded, unhealthy or critical.
    pub status: HealthStatus,
    /// 0–100.
    pub health_score: u8,
    /// How the score moved over the last 1, 5 and 15 minutes.
    pub score_trend: ScoreTrend,
    /// The four components.
    pub components: ScoreBreakdown,
    /// When the report was built.
    #[serde(with = "crate::clock::rfc3339")]
    pub timestamp: SystemTime,
    /// How long building it took, ms.
    pub response_time_ms: f64,
    /// Breakers and their summary.
    pub resilience: ResilienceSummary,
    /// CPU, memory, disk and network.
    pub system_metrics: SystemMetrics,
    /// Each service's last health check.
    pub services: BTreeMap<Name, ServiceHealth>,
    /// Trading status and modes.
    pub trading: TradingHealth,
    /// Each breaker in detail (the circuit-breakers endpoint's entries).
    pub circuit_breakers: BTreeMap<Name, BreakerReport>,
    /// Success rate and latency trends per service.
    pub trends: Arc<BTreeMap<Name, Arc<Trends>>>,
    /// What to do, naming the service and the action.
    pub recommendations: Vec<String>,
    /// Which configuration the tree runs, and when it last changed.
    pub config: ConfigVersion,
}

/// The configuration the tree runs: a hash of the effective config (file
/// plus environment), and when it was loaded and last reloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigVersion {
    /// 16 hex digits; changes whenever any effective value changes.
    pub version: String,
    /// When the tree started with its first config.
    #[serde(with = "crate::clock::rfc3339")]
    pub loaded_at: SystemTime,
    /// When the last successful reload applied, if any.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_reload_at: Option<SystemTime>,
    /// Successful reloads since start.
    pub reloads: u64,
}

/// The `resilience` object.
#[derive(Debug, Clone, Serialize)]
pub struct ResilienceSummary {
    /// From the resilience component: healthy (all in service), degraded,
    /// unhealthy, critical (nothing left).
    pub overall_status: HealthStatus,
    /// Per breaker.
    pub services: BTreeMap<Name, ResilienceService>,
    /// Name → state.
    pub circuit_breakers: BTreeMap<Name, BreakerState>,
    /// When.
    #[serde(with = "crate::clock::rfc3339")]
    pub timestamp: SystemTime,
}

/// One entry of `resilience.services`.
#[derive(Debug, Clone, Serialize)]
pub struct ResilienceService {
    /// Breaker state.
    pub state: BreakerState,
    /// 0–1, or null before any call.
    pub success_rate: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Mean response time, seconds.
    pub avg_response_time: Option<f64>,
    /// Last success.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_success: Option<SystemTime>,
    /// Last failure.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_failure: Option<SystemTime>,
}

/// The `system_metrics` object.
#[derive(Debug, Clone, Serialize)]
pub struct SystemMetrics {
    /// CPU.
    pub cpu: CpuMetrics,
    /// Memory.
    pub memory: MemoryMetrics,
    /// Disk.
    pub disk: DiskMetrics,
    /// Network counters.
    pub network: NetworkMetrics,
    /// When sampled; null before the first sample.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub sampled_at: Option<SystemTime>,
}

/// CPU.
#[derive(Debug, Clone, Serialize)]
pub struct CpuMetrics {
    /// 0–100.
    pub usage_percent: Option<f64>,
    /// Logical CPUs.
    pub count: usize,
    /// healthy, warning (≥ 80 %), critical (≥ 95 %) or unknown.
    pub status: &'static str,
}

/// Memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryMetrics {
    /// 0–100.
    pub usage_percent: Option<f64>,
    /// GiB.
    pub available_gb: f64,
    /// GiB.
    pub total_gb: f64,
    /// healthy, warning, critical or unknown.
    pub status: &'static str,
}

/// Disk.
#[derive(Debug, Clone, Serialize)]
pub struct DiskMetrics {
    /// 0–100.
    pub usage_percent: Option<f64>,
    /// GiB.
    pub free_gb: f64,
    /// GiB.
    pub total_gb: f64,
    /// healthy, warning, critical or unknown.
    pub status: &'static str,
}

/// Network counters since boot.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkMetrics {
    /// Bytes.
    pub bytes_sent: u64,
    /// Bytes.
    pub bytes_recv: u64,
    /// Packets.
    pub packets_sent: u64,
    /// Packets.
    pub packets_recv: u64,
}

/// One entry of the top-level `services`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    /// healthy, unhealthy (failed, timed out or stale) or unknown (not yet checked).
    pub status: &'static str,
    /// When the last check finished.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_check: Option<SystemTime>,
    /// How long it took, ms.
    pub latency_ms: Option<f64>,
    /// What went wrong.
    pub error: Option<String>,
}

/// The `trading` object: real, not hard-coded.
#[derive(Debug, Clone, Serialize)]
pub struct TradingHealth {
    /// active, reducing or halted.
    pub status: TradingMode,
    /// Whether new orders may be sent.
    pub trading_enabled: bool,
    /// When the engine last reported trading metrics.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_check: Option<SystemTime>,
    /// The modes, with reason and time.
    pub modes: Modes,
    /// The engine's metrics.
    pub metrics: TradingMetrics,
}

/// One breaker in detail (`GET /api/v1/system/health/circuit-breakers`).
#[derive(Debug, Clone, Serialize)]
pub struct BreakerReport {
    /// State.
    pub state: BreakerState,
    /// The reason for a manual state.
    pub reason: Option<String>,
    /// Config: consecutive failures to open.
    pub failure_threshold: u32,
    /// Config: probe successes to close.
    pub success_threshold: u32,
    /// Config: first open duration, seconds.
    pub timeout: f64,
    /// Counters.
    pub metrics: BreakerReportMetrics,
    /// When the state last changed.
    #[serde(with = "crate::clock::rfc3339")]
    pub state_changed_at: SystemTime,
    /// When an Open breaker admits probes.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub open_until: Option<SystemTime>,
    /// Restarts, escalations, recoveries, retries.
    pub supervision: SupervisionStats,
}

/// A breaker's counters, in the seed's names.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerReportMetrics {
    /// Successes.
    pub success_count: u64,
    /// Failures, timeouts included.
    pub failure_count: u64,
    /// Timeouts.
    pub timeout_count: u64,
    /// Ignored outcomes.
    pub ignored_count: u64,
    /// Rejected without reaching the service.
    pub rejected_count: u64,
    /// Calls let through.
    pub total_requests: u64,
    /// 0–1, or null before any call.
    pub success_rate: Option<f64>,
    /// 0–1, or null before any call.
    pub failure_rate: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Mean response time, seconds.
    pub avg_response_time: Option<f64>,
    /// Median, seconds.
    pub p50_response_time: Option<f64>,
    /// 99th percentile, seconds.
    pub p99_response_time: Option<f64>,
    /// Last success.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_success: Option<SystemTime>,
    /// Last failure.
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_failure: Option<SystemTime>,
    /// State changes.
    pub transitions: u64,
    /// Re-opens within the stability window after a recovery.
    pub flaps: u64,
    /// Re-opens in a row without a stable close: the open-duration exponent.
    pub reopens: u32,
}

/// Converts an instant on the tree's clock to wall time.
pub(crate) struct WallClock {
    now: Instant,
    wall: SystemTime,
}

impl WallClock {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            now,
            wall: SystemTime::now(),
        }
    }

    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        match self.now.checked_duration_since(at) {
            Some(ago) => self.wall - ago,
            None => self.wall + at.duration_since(self.now),
        }
    }
}

/// One breaker's report.
pub(crate) fn breaker_report(
    control: &BreakerControl,
    m: &BreakerMetrics,
    clock: &WallClock,
) -> BreakerReport {
    let config = control.config();
    let decided = m.successes + m.failures + m.timeouts;
    BreakerReport {
        state: m.state,
        reason: m.manual_reason.clone(),
        failure_threshold: config.failure_threshold,
        success_threshold: config.success_threshold,
        timeout: config.open_timeout.as_secs_f64(),
        metrics: BreakerReportMetrics {
            success_count: m.successes,
            failure_count: m.failures + m.timeouts,
            timeout_count: m.timeouts,
            ignored_count: m.ignored,
            rejected_count: m.rejected,
            total_requests: m.admitted,
            success_rate: m.success_rate,
            failure_rate: (decided > 0).then(|| (m.failures + m.timeouts) as f64 / decided as f64),
            consecutive_failures: m.consecutive_failures,
            avg_response_time: m.mean_response.map(|d| d.as_secs_f64()),
            p50_response_time: m.p50_response.map(|d| d.as_secs_f64()),
            p99_response_time: m.p99_response.map(|d| d.as_secs_f64()),
            last_success: m.last_success.map(|t| clock.wall(t)),
            last_failure: m.last_failure.map(|t| clock.wall(t)),
            transitions: m.transitions,
            flaps: m.flaps,
            reopens: m.reopens,
        },
        state_changed_at: clock.wall(m.state_changed_at),
        open_until: m.open_until.map(|t| clock.wall(t)),
        supervision: control.supervision(),
    }
}

/// What a report needs besides the breakers and the cache.
pub(crate) struct ReportContext<'a> {
    pub(crate) thresholds: Thresholds,
    pub(crate) check_interval: Duration,
    pub(crate) modes: &'a Modes,
    pub(crate) started: std::time::Instant,
    pub(crate) config: ConfigVersion,
}

/// Whether a check result still counts: younger than 3 × the interval.
fn fresh(check: &CheckResult, now: Instant, interval: Duration) -> bool {
    now.saturating_duration_since(check.at) <= interval * 3
}

/// Builds the report. Reads only cached state: each breaker's counters (a
/// short lock each) and the health cache. Most of its length is the one
/// struct literal that is the report's JSON shape.
pub(crate) fn build(
    controls: &[BreakerControl],
    cache: &HealthCache,
    ctx: ReportContext<'_>,
    now: Instant,
) -> HealthReport {
    let clock = WallClock::new(now);
    let Rows {
        inputs,
        breakers,
        resilience_services,
        states,
        services,
        mut recommendations,
        ..
    } = Rows::of(controls, cache, &ctx, &clock, now, true);
    let system = cache.system.as_ref();
    let (cpu, memory, disk) = usage(system);
    let (breakdown, status) = assess(inputs, &mut recommendations, cache, &ctx);
    let overall_status = resilience_status(breakdown.resilience / 40.0);
    let wall_now = clock.wall(now);
    HealthReport {
        status,
        health_score: breakdown.total,
        score_trend: ScoreTrend::of(breakdown.total, &cache.scores),
        components: breakdown,
        timestamp: wall_now,
        response_time_ms: 0.0,
        resilience: ResilienceSummary {
            overall_status,
            services: resilience_services.into_iter().collect(),
            circuit_breakers: states.into_iter().collect(),
            timestamp: wall_now,
        },
        system_metrics: system_metrics(system, cpu, memory, disk),
        services: services.into_iter().collect(),
        trading: TradingHealth {
            status: ctx.modes.trading,
            trading_enabled: ctx.modes.trading == TradingMode::Active,
            last_check: cache.trading_reported_at,
            modes: ctx.modes.clone(),
            metrics: cache.trading,
        },
        circuit_breakers: breakers.into_iter().collect(),
        trends: Arc::clone(&cache.trends),
        recommendations,
        config: ctx.config,
    }
    .timed(ctx.started)
}

/// What the health actor acts on every interval: the score, the status and
/// the advice of a [`HealthReport`], without its per-service sections.
pub(crate) struct Summary {
    pub(crate) health_score: u8,
    pub(crate) status: HealthStatus,
    pub(crate) recommendations: Vec<String>,
}

/// The same score, status and recommendations as [`build`] gives, from the
/// same reads, but without building the per-service sections a report
/// serves: the health actor's periodic checks over 10,000 services then
/// allocate a few hundred kilobytes instead of a report's 16 MB.
pub(crate) fn summary(
    controls: &[BreakerControl],
    cache: &HealthCache,
    ctx: ReportContext<'_>,
    now: Instant,
) -> Summary {
    let rows = Rows::of(controls, cache, &ctx, &WallClock::new(now), now, false);
    let mut recommendations = rows.recommendations;
    let (breakdown, status) = assess(rows.inputs, &mut recommendations, cache, &ctx);
    Summary {
        health_score: breakdown.total,
        status,
        recommendations,
    }
}

/// The score and status from the services' inputs and the cache, adding
/// the resource and trading advice to `recommendations`.
fn assess(
    inputs: Vec<ServiceInput>,
    recommendations: &mut Vec<String>,
    cache: &HealthCache,
    ctx: &ReportContext<'_>,
) -> (score::ScoreBreakdown, HealthStatus) {
    let (cpu, memory, disk) = usage(cache.system.as_ref());
    advise_on_resources(cpu, memory, disk, recommendations);
    let breakdown = score::score(&ScoreInputs {
        services: inputs,
        cpu_percent: cpu,
        memory_percent: memory,
        disk_percent: disk,
        trading: cache.trading,
        trading_mode: ctx.modes.trading,
    });
    let status = score::status(breakdown.total, ctx.thresholds, ctx.modes);
    if ctx.modes.trading != TradingMode::Active {
        recommendations.push(trading_advice(ctx.modes));
    }
    (breakdown, status)
}

/// The per-service parts of a report, built as vectors and collected at
/// the end: collecting sorted input bulk-builds each map instead of
/// searching it on every insert.
struct Rows {
    /// Whether to build the report's per-service sections, or only what
    /// the score and the advice need ([`summary`]).
    full: bool,
    inputs: Vec<ServiceInput>,
    breakers: Vec<(Arc<str>, BreakerReport)>,
    resilience_services: Vec<(Arc<str>, ResilienceService)>,
    states: Vec<(Arc<str>, BreakerState)>,
    services: Vec<(Arc<str>, ServiceHealth)>,
    recommendations: Vec<String>,
}

impl Rows {
    /// Every service's rows: all of them for a report (`full`), or only
    /// the score's inputs and the advice for a [`summary`].
    fn of(
        controls: &[BreakerControl],
        cache: &HealthCache,
        ctx: &ReportContext<'_>,
        clock: &WallClock,
        now: Instant,
        full: bool,
    ) -> Self {
        let mut rows = Self::with_capacity(controls.len(), full);
        for control in controls {
            rows.push(control, cache, ctx, clock, now);
        }
        rows
    }

    fn with_capacity(n: usize, full: bool) -> Self {
        let sections = if full { n } else { 0 };
        Self {
            full,
            inputs: Vec::with_capacity(n),
            breakers: Vec::with_capacity(sections),
            resilience_services: Vec::with_capacity(sections),
            states: Vec::with_capacity(sections),
            services: Vec::with_capacity(sections),
            recommendations: Vec::new(),
        }
    }

    /// One service's rows, from its breaker's snapshot and its last check.
    fn push(
        &mut self,
        control: &BreakerControl,
        cache: &HealthCache,
        ctx: &ReportContext<'_>,
        clock: &WallClock,
        now: Instant,
    ) {
        let key = control.shared_name();
        let name = control.name();
        let m = control.metrics();
        let check = cache.checks.get(name);
        let healthy = check.map(|c| c.healthy && fresh(c, now, ctx.check_interval));
        self.inputs.push(ServiceInput {
            state: m.state,
            impact: control.config().health_impact,
            healthy,
        });
        recommend(
            control,
            &m,
            check,
            healthy,
            clock,
            &mut self.recommendations,
        );
        if !self.full {
            return;
        }
        self.services.push((
            Arc::clone(&key),
            ServiceHealth {
                status: match healthy {
                    None => "unknown",
                    Some(true) => "healthy",
                    Some(false) => "unhealthy",
                },
                last_check: check.map(|c| clock.wall(c.at)),
                latency_ms: check.map(|c| c.latency.as_secs_f64() * 1000.0),
                error: check.and_then(|c| c.error.clone()),
            },
        ));
        self.resilience_services.push((
            Arc::clone(&key),
            ResilienceService {
                state: m.state,
                success_rate: m.success_rate,
                consecutive_failures: m.consecutive_failures,
                avg_response_time: m.mean_response.map(|d| d.as_secs_f64()),
                last_success: m.last_success.map(|t| clock.wall(t)),
                last_failure: m.last_failure.map(|t| clock.wall(t)),
            },
        ));
        self.states.push((Arc::clone(&key), m.state));
        self.breakers
            .push((key, breaker_report(control, &m, clock)));
    }
}

/// CPU, memory and disk use in percent from the last sample, if any.
fn usage(system: Option<&SystemSample>) -> (Option<f64>, Option<f64>, Option<f64>) {
    (
        system.and_then(|s| s.cpu_percent),
        system.map(|s| s.memory_percent),
        system.map(|s| s.disk_percent),
    )
}

/// CPU, memory, disk and network from the last sample, if any.
fn system_metrics(
    system: Option<&SystemSample>,
    cpu: Option<f64>,
    memory: Option<f64>,
    disk: Option<f64>,
) -> SystemMetrics {
    SystemMetrics {
        cpu: CpuMetrics {
            usage_percent: cpu,
            count: system.map_or(0, |s| s.cpu_count),
            status: resource_status(cpu),
        },
        memory: MemoryMetrics {
            usage_percent: memory,
            available_gb: system.map_or(0.0, |s| s.memory_available_gb),
            total_gb: system.map_or(0.0, |s| s.memory_total_gb),
            status: resource_status(memory),
        },
        disk: DiskMetrics {
            usage_percent: disk,
            free_gb: system.map_or(0.0, |s| s.disk_free_gb),
            total_gb: system.map_or(0.0, |s| s.disk_total_gb),
            status: resource_status(disk),
        },
        network: NetworkMetrics {
            bytes_sent: system.map_or(0, |s| s.bytes_sent),
            bytes_recv: system.map_or(0, |s| s.bytes_recv),
            packets_sent: system.map_or(0, |s| s.packets_sent),
            packets_recv: system.map_or(0, |s| s.packets_recv),
        },
        sampled_at: system.map(|s| s.taken_at),
    }
}

/// Advice for each resource at 80 % or more.
fn advise_on_resources(
    cpu: Option<f64>,
    memory: Option<f64>,
    disk: Option<f64>,
    out: &mut Vec<String>,
) {
    for (what, p) in [("CPU", cpu), ("memory", memory), ("disk", disk)] {
        if let Some(p) = p.filter(|p| *p >= 80.0) {
            out.push(format!(
                "system: {what} at {p:.0}% ({}); find what is consuming it before it slows order handling",
                resource_status(Some(p))
            ));
        }
    }
}

/// Why orders are refused, while trading is not Active.
fn trading_advice(modes: &Modes) -> String {
    format!(
        "trading: {:?} since {} ({}); orders that add risk are refused until it is Active",
        modes.trading,
        humantime::format_rfc3339_seconds(modes.changed_at),
        modes.reason
    )
}

/// The resilience summary's status from its share of the 40 points.
fn resilience_status(fraction: f64) -> HealthStatus {
    if fraction >= 0.999 {
        HealthStatus::Healthy
    } else if fraction >= 0.5 {
        HealthStatus::Degraded
    } else if fraction > 0.0 {
        HealthStatus::Unhealthy
    } else {
        HealthStatus::Critical
    }
}

impl HealthReport {
    fn timed(mut self, started: std::time::Instant) -> Self {
        self.response_time_ms = started.elapsed().as_secs_f64() * 1000.0;
        self
    }
}

/// Recommendations for one service: each names it and says what to do.
fn recommend(
    control: &BreakerControl,
    m: &BreakerMetrics,
    check: Option<&CheckResult>,
    healthy: Option<bool>,
    clock: &WallClock,
    out: &mut Vec<String>,
) {
    let name = control.name();
    let since = humantime::format_rfc3339_seconds(clock.wall(m.state_changed_at));
    let sup = control.supervision();
    match m.state {
        BreakerState::Open => {
            let retry = m
                .open_until
                .map(|t| format!("; probes resume at {}", humantime::format_rfc3339_seconds(clock.wall(t))))
                .unwrap_or_default();
            out.push(format!(
                "{name}: breaker open since {since} after {} consecutive failures; check the dependency's connectivity and credentials{retry} (recovery attempts so far: {})",
                m.consecutive_failures, sup.recovery_attempts
            ));
        }
        BreakerState::ForcedOpen => out.push(format!(
            "{name}: breaker forced open since {since} ({}); fix the cause, then POST /api/v1/system/health/circuit-breakers/{name}/reset",
            m.manual_reason.as_deref().unwrap_or("no reason given")
        )),
        BreakerState::HalfOpen => out.push(format!(
            "{name}: probing since {since}; keep traffic light until it closes"
        )),
        BreakerState::Disabled => out.push(format!(
            "{name}: breaker disabled ({}); failures are not contained — reset it when done",
            m.manual_reason.as_deref().unwrap_or("no reason given")
        )),
        BreakerState::Closed | BreakerState::MetricsOnly => {
            if let Some(rate) = m.success_rate.filter(|r| *r < 0.9 && m.successes + m.failures > 20) {
                out.push(format!(
                    "{name}: success rate {:.0}% while closed; investigate before it trips",
                    rate * 100.0
                ));
            }
        }
    }
    if healthy == Some(false) {
        let why = check
            .and_then(|c| c.error.clone())
            .unwrap_or_else(|| "no recent result".to_string());
        out.push(format!(
            "{name}: health check failing ({why}); verify the service is reachable"
        ));
    }
}
