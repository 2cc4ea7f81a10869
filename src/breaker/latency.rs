//! A fixed-size log-linear histogram of response times.

use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const MAX_EXP: u32 = 36;
const BUCKETS: usize = SUB + (MAX_EXP as usize - SUB_BITS as usize + 1) * SUB;

/// Response times in microseconds, in buckets with at most 12.5% relative
/// width, so p50 and p99 are cheap to read for thousands of services. The
/// buckets (about 1 KiB) are allocated with the first response time, so an
/// idle service costs none of it; no allocation after that.
#[derive(Clone, Default)]
pub struct LatencyHistogram {
    counts: Option<Box<[u32; BUCKETS]>>,
    total: u64,
    sum_micros: u64,
    max_micros: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("total", &self.total)
            .field("mean", &self.mean())
            .finish()
    }
}

#[inline]
fn bucket_of(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let exp = (63 - micros.leading_zeros()).min(MAX_EXP);
    if exp == MAX_EXP && micros >= (1u64 << (MAX_EXP + 1)) {
        return BUCKETS - 1;
    }
    let sub = ((micros >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The midpoint of a bucket, in microseconds.
fn bucket_value(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = ((index - SUB) / SUB) as u32 + SUB_BITS;
    let sub = ((index - SUB) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB as u64 + sub) << (exp - SUB_BITS)) + width / 2
}

impl LatencyHistogram {
    /// The bucket counts; empty before the first response time.
    fn buckets(&self) -> &[u32] {
        self.counts.as_deref().map_or(&[], |c| &c[..])
    }

    /// Adds one response time.
    #[inline]
    pub fn record(&mut self, elapsed: Duration) {
        // Seconds and sub-second micros avoid a 128-bit division on every call.
        let micros = elapsed
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(elapsed.subsec_micros()));
        let counts = self.counts.get_or_insert_with(|| Box::new([0; BUCKETS]));
        let slot = &mut counts[bucket_of(micros)];
        *slot = slot.saturating_add(1);
        self.total += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    /// How many response times were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The mean, or `None` before the first call.
    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.sum_micros / self.total))
    }

    /// The `q`-quantile (0–1), or `None` before the first call.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.buckets().iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                let value = bucket_value(index).min(self.max_micros);
                return Some(Duration::from_micros(value));
            }
        }
        Some(Duration::from_micros(self.max_micros))
    }

    /// The non-empty buckets, for a compact snapshot.
    pub fn sparse(&self) -> SparseHistogram {
        SparseHistogram {
            buckets: self
                .buckets()
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u16, *c))
                .collect(),
        }
    }

    /// The median and the 99th percentile in one pass.
    pub fn p50_p99(&self) -> (Option<Duration>, Option<Duration>) {
        if self.total == 0 {
            return (None, None);
        }
        let rank = |q: f64| ((q * self.total as f64).ceil() as u64).max(1);
        let (r50, r99) = (rank(0.5), rank(0.99));
        let mut seen = 0u64;
        let mut p50 = None;
        for (index, count) in self.buckets().iter().enumerate() {
            if *count == 0 {
                continue;
            }
            seen += u64::from(*count);
            let value = || {
                Some(Duration::from_micros(
                    bucket_value(index).min(self.max_micros),
                ))
            };
            if p50.is_none() && seen >= r50 {
                p50 = value();
            }
            if seen >= r99 {
                return (p50, value());
            }
        }
        let max = Some(Duration::from_micros(self.max_micros));
        (p50.or(max), max)
    }
}

/// A compact copy of a [`LatencyHistogram`]'s non-empty buckets, kept by
/// the trend tracker once a minute; the difference of two gives the
/// response times of the calls in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    buckets: Vec<(u16, u32)>,
}

impl SparseHistogram {
    /// The calls in `self` that are not in `older` (an earlier snapshot of
    /// the same histogram).
    pub fn since(&self, older: &SparseHistogram) -> SparseHistogram {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut old = older.buckets.iter().peekable();
        for &(i, c) in &self.buckets {
            while old.peek().is_some_and(|(j, _)| *j < i) {
                old.next();
            }
            let before = match old.peek() {
                Some((j, c0)) if *j == i => *c0,
                _ => 0,
            };
            let d = c.saturating_sub(before);
            if d > 0 {
                buckets.push((i, d));
            }
        }
        SparseHistogram { buckets }
    }

    /// How many calls.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, c)| u64::from(*c)).sum()
    }

    /// The `q`-quantile, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(i, c) in &self.buckets {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Duration::from_micros(bucket_value(i as usize)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_quantile_when_empty_then_none() {
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
        assert_eq!(LatencyHistogram::default().mean(), None);
    }

    #[test]
    fn test_quantile_when_uniform_then_within_bucket_error() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap().as_secs_f64() * 1000.0;
        let p99 = h.quantile(0.99).unwrap().as_secs_f64() * 1000.0;
        assert_eq!(h.p50_p99(), (h.quantile(0.5), h.quantile(0.99)));
        assert!((500.0 * 0.88..=500.0 * 1.13).contains(&p50), "p50 {p50}");
        assert!((990.0 * 0.88..=1000.0).contains(&p99), "p99 {p99}");
        let mean = h.mean().unwrap().as_secs_f64() * 1000.0;
        assert!((500.0..=501.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn test_record_when_huge_value_then_lands_in_last_bucket() {
        let mut h = LatencyHistogram::default();
        h.record(Duration::from_secs(1_000_000_000));
        assert_eq!(h.count(), 1);
        assert!(h.quantile(1.0).is_some());
    }
}
