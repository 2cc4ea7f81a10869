//! The one admission guard: every path that calls a dependency through a
//! breaker (a call, a cast, a recovery confirmation, a wrapped function)
//! holds an [`Admission`] from the breaker's yes to the call's outcome.
//!
//! It owns the breaker's permit, so exactly one thing happens to it: the
//! outcome is recorded ([`Admission::finish`]), the call is withdrawn before
//! it reached the dependency ([`Admission::withdraw`]), or — when the guard
//! is dropped unfinished (a cancelled caller, a crashed service actor) — the
//! outcome chosen at admission is recorded. A HalfOpen probe slot can
//! therefore never leak, whichever way a path ends.

use super::{BreakerCell, Refusal};
use crate::breaker::{Outcome, Permit};
use crate::clock::now;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// An admitted call's permit, until its outcome is recorded.
pub(crate) struct Admission<C: Deref<Target = BreakerCell>> {
    cell: C,
    permit: Option<Permit>,
    started: Instant,
    /// Recorded if the guard is dropped without an outcome.
    unfinished: Outcome,
}

impl<C: Deref<Target = BreakerCell>> Admission<C> {
    /// Asks the breaker; on yes, the guard starts timing the call.
    /// `unfinished` is what a drop without an outcome records.
    #[inline]
    pub(crate) fn admit(cell: C, unfinished: Outcome) -> Result<Self, Refusal> {
        let permit = cell.admit(now)?;
        Ok(Self {
            cell,
            permit: Some(permit),
            started: Instant::now(),
            unfinished,
        })
    }

    /// When the call was admitted.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Records the call's outcome, timed from admission.
    #[inline]
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    /// The call never reached the dependency: the permit goes back
    /// unrecorded (a probe slot is freed, nothing is counted).
    pub(crate) fn withdraw(mut self) {
        if let Some(permit) = self.permit.take() {
            self.cell.cancel(permit);
        }
    }

    fn record(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            let at = Instant::now();
            self.cell
                .record(permit, outcome, at - self.started, at.into_std());
        }
    }
}

impl<C: Deref<Target = BreakerCell>> Drop for Admission<C> {
    fn drop(&mut self) {
        let outcome = self.unfinished;
        self.record(outcome);
    }
}

/// Room in the bulkhead (`max_in_flight`) for a call that runs outside the
/// service actors (a function wrapped by `execute_with_resilience`).
pub(crate) struct Capacity<'a> {
    cell: &'a BreakerCell,
}

impl<'a> Capacity<'a> {
    /// One more call in flight, or [`Refusal::Shed`] at the bound.
    pub(crate) fn take(cell: &'a BreakerCell) -> Result<Self, Refusal> {
        let taken = cell.in_flight.fetch_add(1, Ordering::AcqRel);
        if taken >= cell.max_in_flight() {
            cell.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Shed);
        }
        Ok(Self { cell })
    }
}

impl Drop for Capacity<'_> {
    fn drop(&mut self) {
        self.cell.in_flight.fetch_sub(1, Ordering::Release);
    }
}
