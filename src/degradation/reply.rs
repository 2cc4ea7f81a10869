//! A reply that says whether it is live or a fallback.

use crate::config::StrategyKind;
use std::time::Duration;

/// Live from the dependency, or a fallback with its reason and age.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    /// The dependency answered.
    Live(T),
    /// A degradation strategy answered instead.
    Fallback(Fallback<T>),
}

/// A substitute answer and what it is worth.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback<T> {
    /// The answer.
    pub value: T,
    /// Why a fallback was used, naming the service.
    pub reason: String,
    /// How old the answer is, when it was cached.
    pub age: Option<Duration>,
    /// Which strategy answered.
    pub strategy: StrategyKind,
}

impl<T> Reply<T> {
    /// The value, live or not.
    pub fn value(&self) -> &T {
        match self {
            Reply::Live(v) => v,
            Reply::Fallback(f) => &f.value,
        }
    }

    /// The value, live or not.
    pub fn into_value(self) -> T {
        match self {
            Reply::Live(v) => v,
            Reply::Fallback(f) => f.value,
        }
    }

    /// Whether the dependency answered.
    pub fn is_live(&self) -> bool {
        matches!(self, Reply::Live(_))
    }
}
