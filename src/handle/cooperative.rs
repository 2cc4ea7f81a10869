//! Answers that awaited nothing still give the runtime back now and then.
//!
//! A refusal (an open breaker, a full bulkhead, a halted order gate) and a
//! fallback answered without reaching the dependency come back on the call's
//! first poll. An engine loop that retries such an answer at once, awaiting
//! nothing else, would then never give its runtime back: on a
//! current-thread runtime the breaker actor's timer (Open → HalfOpen), the
//! recovery actor and the health actor's mode changes would never run, and
//! the loop would spin forever. [`return_at_once`], used right before
//! such an answer, spends the task's cooperative budget, as tokio's own
//! resources do, so the task yields once the budget (128 units) is spent.
//!
//! A refusal costs about 15 ns, far less than the I/O a unit of budget
//! usually stands for, and a yield costs a trip through the scheduler (on a
//! current-thread runtime, a poll of the I/O driver). So every 16th such
//! answer on a thread spends one unit: a loop of nothing but refusals yields
//! every 2,048 of them, some 30 µs.
//!
//! It ends each place that answers at once: the call path's refusals
//! (`ServiceHandle::call`), a degradation strategy's own answer, and
//! `execute_with_resilience`'s refusals. A fallback given after a refusal
//! is covered by the refusal. The success path pays nothing; a refusal
//! about 2 ns over the same refusal without it (BENCHMARKS.md). A wrapper
//! future around the whole call, which would cover every way out without
//! listing them, measured 0.03× on every closed call, and was dropped.

/// Returns `answer` from the enclosing `async fn`, spending cooperative
/// budget on every 16th such answer on this thread (the only time it awaits).
///
/// A macro, not an `async fn`, for the refusal's cost: the answer is made
/// straight into the return value unless this answer spends budget. Held
/// across an await point instead, a refusal was stored into the call's
/// future piecewise and read back whole, and the load stalled on the
/// stores (a store-forwarding miss): 22.4 ns per refusal against 16.8 ns so
/// (BENCHMARKS.md, stop 15). `answer` is written twice but evaluated once:
/// the two branches exclude each other.
macro_rules! return_at_once {
    ($answer:expr) => {{
        if !$crate::handle::spends_budget() {
            return $answer;
        }
        let answer = $answer;
        ::tokio::task::coop::consume_budget().await;
        return answer;
    }};
}
pub(crate) use return_at_once;

/// Every 16th answer-at-once on this thread spends a unit of budget.
#[inline]
pub(crate) fn spends_budget() -> bool {
    thread_local! {
        static ANSWERED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    }
    ANSWERED.with(|answered| {
        let n = answered.get().wrapping_add(1);
        answered.set(n);
        n % 16 == 0
    })
}
