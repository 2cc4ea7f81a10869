//! Per-thread rejection tallies: counting a rejection without a shared
//! read-modify-write.
//!
//! An Open breaker refuses calls at the rate callers make them, from every
//! worker thread at once. A shared `fetch_add` per refusal would make that
//! cheap path contend on one cache line (and even uncontended, a locked
//! instruction costs more than the rest of the refusal). Instead each
//! thread owns one counter per breaker and is its only writer, so it bumps
//! it with a plain load and store; a reader sums every thread's counters.
//!
//! Threads come from [`thread_local::ThreadLocal`], which hands an exited
//! thread's counters to the next new thread: totals never go backwards and
//! each counter keeps exactly one writer.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use thread_local::ThreadLocal;

/// Counters per chunk; a chunk is allocated the first time a thread
/// rejects on a breaker in it.
const CHUNK: usize = 256;
/// Chunks per thread: tallies for the first `CHUNK * CHUNKS` breakers.
const CHUNKS: usize = 64;

type Chunk = Box<[AtomicU64; CHUNK]>;

/// One thread's counters, by breaker slot.
struct Tally {
    chunks: [OnceLock<Chunk>; CHUNKS],
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

static TALLIES: ThreadLocal<Tally> = ThreadLocal::new();
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// One breaker's rejection count.
pub(crate) struct Rejections {
    /// Its slot in every thread's tally; `None` past the tallied breakers.
    slot: Option<(usize, usize)>,
    /// Used only past the tallied breakers: a shared counter.
    overflow: AtomicU64,
}

impl Rejections {
    pub(crate) fn new() -> Self {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) as usize;
        Self {
            slot: (slot < CHUNK * CHUNKS).then_some((slot / CHUNK, slot % CHUNK)),
            overflow: AtomicU64::new(0),
        }
    }

    /// Counts one rejection on the calling thread.
    #[inline]
    pub(crate) fn bump(&self) {
        let Some((chunk, i)) = self.slot else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let counters = TALLIES.get_or_default().chunks[chunk]
            .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        // This thread is the counter's only writer: no read-modify-write.
        let counter = &counters[i];
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Every thread's count, summed.
    pub(crate) fn total(&self) -> u64 {
        let tallied = self.slot.map_or(0, |(chunk, i)| {
            TALLIES
                .iter()
                .filter_map(|t| t.chunks[chunk].get())
                .map(|counters| counters[i].load(Ordering::Relaxed))
                .sum()
        });
        tallied + self.overflow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_total_when_many_threads_bump_then_every_rejection_counted_once() {
        let a = std::sync::Arc::new(Rejections::new());
        let b = Rejections::new();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let a = &a;
                s.spawn(move || (0..10_000).for_each(|_| a.bump()));
            }
        });
        b.bump();
        assert_eq!(a.total(), 80_000);
        assert_eq!(b.total(), 1, "breakers never share a counter");
    }

    #[test]
    fn test_total_when_threads_exit_and_new_ones_reuse_their_tallies_then_never_backwards() {
        let r = Rejections::new();
        for round in 1..=5u64 {
            std::thread::scope(|s| {
                s.spawn(|| r.bump());
            });
            assert_eq!(r.total(), round);
        }
    }

    #[test]
    fn test_bump_when_past_the_tallied_breakers_then_shared_counter_still_exact() {
        let r = Rejections {
            slot: None,
            overflow: AtomicU64::new(0),
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| r.bump()));
            }
        });
        assert_eq!(r.total(), 4000);
    }
}
