//! The injectable randomness behind open-duration and backoff jitter.

/// A source of uniform random numbers in `[0, 1)`.
///
/// Jitter spreads re-open and reconnect times so that many breakers tripped by
/// one outage do not probe the dependency in lockstep. It is a trait so tests
/// can pin it and runs can be reproduced from a seed.
pub trait JitterSource: Send + Sync {
    /// The next number in `[0, 1)`.
    fn next_unit(&mut self) -> f64;
}

/// A seeded [`JitterSource`]: the same seed gives the same sequence.
#[derive(Debug, Clone)]
pub struct SeededJitter(fastrand::Rng);

impl SeededJitter {
    /// A source that replays the same sequence for the same `seed`.
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }
}

impl JitterSource for SeededJitter {
    fn next_unit(&mut self) -> f64 {
        self.0.f64()
    }
}

/// A constant source, for tests that need to pin jitter to one end of its range.
impl JitterSource for f64 {
    fn next_unit(&mut self) -> f64 {
        self.clamp(0.0, 0.999_999)
    }
}
