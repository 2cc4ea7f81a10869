//! How a finished call is classified for the breaker.

use std::fmt;

/// What a finished call means for the health of the dependency.
///
/// This is the seed's `expected_exception`, made explicit per service: a
/// broker input error or a margin reject is the caller's problem, not the
/// dependency's, so it is [`Outcome::Ignored`] and never trips the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; counts toward every trip rule.
    Failure(FailureKind),
    /// Neither success nor failure of the dependency (business rejects,
    /// throttling, caller cancellation). Counted, but never moves the state.
    Ignored,
}

impl Outcome {
    /// Whether this outcome counts against the dependency.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure(_))
    }
}

/// Why a call failed, for metrics labels and operator messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The call did not answer within its `call_timeout`.
    Timeout,
    /// The connection to the dependency failed or dropped.
    Connection,
    /// The dependency answered with a server-side error (5xx and the like).
    Server,
    /// The service actor crashed while handling the call.
    Crash,
    /// The service actor was not running to take the call.
    Unavailable,
    /// The request may or may not have taken effect (an order request that
    /// timed out at the broker). Counts against the dependency, and the
    /// caller gets `CallError::Unknown`: reconcile, never retry.
    Ambiguous,
    /// The dependency answered, but with something unusable (a quote with a
    /// price of 0, NaN or an epoch timestamp): a failure of the dependency.
    Invalid,
    /// Any other failure the service's `classify` chose to count.
    Other,
}

impl FailureKind {
    /// A short, stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::Server => "server",
            FailureKind::Crash => "crash",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Ambiguous => "ambiguous",
            FailureKind::Invalid => "invalid",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
