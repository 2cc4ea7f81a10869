//! Answers that awaited nothing still give the runtime back now and then.
//!
//! A refusal (an open breaker, a full bulkhead, a halted order gate) and a
//! fallback answered without reaching the dependency come back on the call's
//! first poll. An engine loop that retries such an answer at once, awaiting
//! nothing else, would then never give its runtime back: on a
//! current-thread runtime the breaker actor's timer (Open → HalfOpen), the
//! recovery actor and the health actor's mode changes would never run, and
//! the loop would spin forever. [`Cooperative`] makes such an answer spend
//! the task's cooperative budget, as tokio's own resources do, so the task
//! yields once the budget (128 units) is spent.
//!
//! A refusal costs about 15 ns, far less than the I/O a unit of budget
//! usually stands for, and a yield costs a trip through the scheduler (on a
//! current-thread runtime, a poll of the I/O driver). So every 16th such
//! answer on a thread spends one unit: a loop of nothing but refusals yields
//! every 2,048 of them, some 30 µs.
//!
//! Two ways in, by cost. The call path (`ServiceHandle::call`) awaits
//! [`answered_at_once`] at each refusal: its success path pays nothing, and
//! a refusal about 6 ns (BENCHMARKS.md). Wrapping the whole call in
//! [`Cooperative`] instead measured 0.03× on every closed call. The paths that are not hot (a degraded handle's
//! answers, `execute_with_resilience`) are wrapped: every way they can
//! answer at once is covered without listing them.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// `call`, spending cooperative budget when it answers on its first poll.
    pub(crate) struct Cooperative<F: Future> {
        #[pin]
        call: F,
        state: State<F::Output>,
    }
}

enum State<T> {
    /// Not polled yet: an answer now awaited nothing.
    Fresh,
    /// Polled, and pending at least once.
    Waited,
    /// An answer held back while the task yields.
    Held(T),
}

impl<F: Future> Cooperative<F> {
    pub(crate) fn new(call: F) -> Self {
        Self {
            call,
            state: State::Fresh,
        }
    }
}

impl<F: Future> Future for Cooperative<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if matches!(this.state, State::Held(_)) {
            if let State::Held(answer) = std::mem::replace(this.state, State::Waited) {
                return Poll::Ready(answer);
            }
        }
        let Poll::Ready(answer) = this.call.poll(cx) else {
            *this.state = State::Waited;
            return Poll::Pending;
        };
        if matches!(this.state, State::Fresh) && spends_budget() {
            match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(spent) => spent.made_progress(),
                // Budget spent: yield once, and answer on the next poll
                // (`poll_proceed` has arranged for it).
                Poll::Pending => {
                    *this.state = State::Held(answer);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(answer)
    }
}

/// Spends cooperative budget for an answer that awaited nothing: await it
/// right before returning such an answer. For the call path, whose success
/// path must not pay for a wrapper; [`Cooperative`] wraps the paths that are
/// not hot.
pub(crate) async fn answered_at_once() {
    if spends_budget() {
        tokio::task::coop::consume_budget().await;
    }
}

/// Every 16th answer-at-once on this thread spends a unit of budget.
#[inline]
fn spends_budget() -> bool {
    thread_local! {
        static ANSWERED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    }
    ANSWERED.with(|answered| {
        let n = answered.get().wrapping_add(1);
        answered.set(n);
        n % 16 == 0
    })
}
