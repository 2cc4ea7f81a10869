//! The published word: a breaker's state, its epoch and the closing flag in
//! one `u64`, so a caller reads all three with a single atomic load.
//!
//! Two kinds of writer share it. Transitions are published under the
//! breaker's lock (so epochs only grow), with a compare-and-swap loop that
//! keeps the closing flag; shutdown sets that flag from anywhere, without
//! the lock. The loop is what makes the flag stick: a plain store of a new
//! state could erase a flag set a moment earlier, and a shutting-down tree
//! would admit calls again. The operations are generic over [`Atomic64`]
//! so the model test below can run them under loom, which tries every
//! interleaving of the writers and a reader.

use crate::breaker::BreakerState;
use std::sync::atomic::Ordering;

const STATE_MASK: u64 = 0xff;
const CLOSING: u64 = 1 << 8;
const EPOCH_SHIFT: u32 = 9;

/// The three atomic operations the word needs.
pub(crate) trait Atomic64 {
    /// Reads the word.
    fn load(&self, order: Ordering) -> u64;
    /// Compare-and-swap loop: applies `f` until it lands.
    fn update(&self, f: impl FnMut(u64) -> u64);
    /// Sets bits.
    fn set_bits(&self, bits: u64);
}

impl Atomic64 for std::sync::atomic::AtomicU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::load(self, order)
    }
    fn update(&self, mut f: impl FnMut(u64) -> u64) {
        let _ = self.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(f(w)));
    }
    fn set_bits(&self, bits: u64) {
        self.fetch_or(bits, Ordering::AcqRel);
    }
}

/// One reading of the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    /// The word for `state` at `epoch`.
    pub(crate) fn pack(state: BreakerState, epoch: u64, closing: bool) -> Self {
        Self((epoch << EPOCH_SHIFT) | if closing { CLOSING } else { 0 } | state as u64)
    }

    /// The current word.
    #[inline]
    pub(crate) fn read(word: &impl Atomic64) -> Self {
        Self(word.load(Ordering::Acquire))
    }

    /// The published state.
    #[inline]
    pub(crate) fn state(self) -> BreakerState {
        BreakerState::from_u8((self.0 & STATE_MASK) as u8)
    }

    /// The published epoch.
    #[inline]
    pub(crate) fn epoch(self) -> u64 {
        self.0 >> EPOCH_SHIFT
    }

    /// Whether the tree is shutting down.
    #[inline]
    pub(crate) fn closing(self) -> bool {
        self.0 & CLOSING != 0
    }

    /// The raw bits, for the atomic.
    pub(crate) fn bits(self) -> u64 {
        self.0
    }
}

/// Publishes `state` at `epoch` (call under the breaker's lock), keeping a
/// closing flag set concurrently.
pub(crate) fn publish(word: &impl Atomic64, state: BreakerState, epoch: u64) {
    word.update(|w| Word::pack(state, epoch, Word(w).closing()).bits());
}

/// Sets the closing flag: from now on every admission is refused.
pub(crate) fn begin_closing(word: &impl Atomic64) {
    word.set_bits(CLOSING);
}

#[cfg(test)]
mod tests {
    use super::*;
    use loom::sync::atomic::AtomicU64;
    use loom::sync::Arc;

    impl Atomic64 for AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            AtomicU64::load(self, order)
        }
        fn update(&self, mut f: impl FnMut(u64) -> u64) {
            let _ = self.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(f(w)));
        }
        fn set_bits(&self, bits: u64) {
            self.fetch_or(bits, Ordering::AcqRel);
        }
    }

    type Publish = fn(&AtomicU64, BreakerState, u64);

    /// A breaker publishing two transitions (as under its lock, one after
    /// the other), a shutdown, and a caller reading twice, in every
    /// interleaving loom can find.
    fn model(publish: Publish) {
        loom::model(move || {
            let word = Arc::new(AtomicU64::new(
                Word::pack(BreakerState::Closed, 0, false).bits(),
            ));
            let writer = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || {
                    publish(&word, BreakerState::Open, 1);
                    publish(&word, BreakerState::HalfOpen, 2);
                })
            };
            let closer = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || begin_closing(&*word))
            };
            // A caller reading twice never sees time run backwards.
            let first = Word::read(&*word);
            let second = Word::read(&*word);
            assert!(second.epoch() >= first.epoch(), "epoch went back");
            assert!(!first.closing() || second.closing(), "closing flag lost");
            writer.join().unwrap();
            closer.join().unwrap();
            let last = Word::read(&*word);
            assert!(last.closing(), "a transition erased the closing flag");
            assert_eq!((last.epoch(), last.state()), (2, BreakerState::HalfOpen));
        });
    }

    #[test]
    fn test_word_when_transitions_race_shutdown_then_flag_sticks_and_last_state_wins() {
        model(publish);
    }

    #[test]
    fn test_word_when_planted_plain_store_then_model_finds_lost_closing_flag() {
        let plain: Publish = |word, state, epoch| {
            word.store(Word::pack(state, epoch, false).bits(), Ordering::Release)
        };
        let caught = std::panic::catch_unwind(|| model(plain));
        assert!(
            caught.is_err(),
            "a plain store must be caught losing the flag"
        );
    }

    #[test]
    fn test_word_when_packed_then_every_field_reads_back() {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
        ] {
            for closing in [false, true] {
                let w = Word::pack(state, (1 << 40) + 7, closing);
                assert_eq!(
                    (w.state(), w.epoch(), w.closing()),
                    (state, (1 << 40) + 7, closing)
                );
            }
        }
    }
}
