//! ReadOnlyCache: the database's fallback. Reads from recent results; writes
//! journaled in order and replayed once the breaker closes.

use super::{Admit, BoxFuture, Degradation, Fallback, FallbackAnswer};
use crate::clock::now;
use crate::config::StrategyKind;
use crate::handle::{CallError, ServiceHandle};
use crate::service::Judged;
use crate::service::Service;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// What a database request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbOp {
    /// A read of `key`, cacheable.
    Read(String),
    /// A write: journaled while the database is out.
    Write,
}

/// A database request.
pub trait DbRequest {
    /// Read or write.
    fn db_op(&self) -> DbOp;
}

struct Cached<R> {
    value: R,
    at: Instant,
}

struct CacheState<Req, Resp> {
    reads: HashMap<String, Cached<Resp>>,
    order: VecDeque<String>,
    journal: VecDeque<Req>,
    /// The service, once a write was journaled: named by a full journal.
    service: Option<String>,
}

/// Reads from a bounded cache of recent results; writes, while the database
/// is out, go to an in-order journal and get `ack` as their reply. Once the
/// breaker closes, [`Degradation::recovered`] replays the journal in order,
/// removing each write only after the database accepted it, so none is lost
/// and none is sent twice after success. Replay stops at the first failure
/// and resumes at the next recovery. Writes made while the journal is not
/// empty join the journal, so they never overtake it. The journal holds at
/// most [`Self::with_journal_capacity`] writes (100,000 unless set); a
/// write beyond it is refused with an error naming the key, never dropped
/// in silence.
pub struct ReadOnlyCache<S: Service> {
    capacity: usize,
    journal_capacity: usize,
    state: Mutex<CacheState<S::Request, S::Response>>,
    replaying: tokio::sync::Mutex<()>,
    #[allow(clippy::type_complexity)]
    ack: Box<dyn Fn(&S::Request) -> S::Response + Send + Sync>,
}

impl<S: Service> ReadOnlyCache<S>
where
    S::Request: DbRequest + Clone,
    S::Response: Clone,
{
    /// Keeps `capacity` recent reads; `ack` builds the reply for a journaled write.
    pub fn new(
        capacity: usize,
        ack: impl Fn(&S::Request) -> S::Response + Send + Sync + 'static,
    ) -> Self {
        Self {
            capacity: capacity.max(1),
            journal_capacity: 100_000,
            state: Mutex::new(CacheState {
                reads: HashMap::new(),
                order: VecDeque::new(),
                journal: VecDeque::new(),
                service: None,
            }),
            replaying: tokio::sync::Mutex::new(()),
            ack: Box::new(ack),
        }
    }

    /// Holds at most `capacity` journaled writes
    /// (`[services.NAME.degradation] journal_capacity`).
    pub fn with_journal_capacity(mut self, capacity: usize) -> Self {
        self.journal_capacity = capacity.max(1);
        self
    }

    /// Journals `request`, or says why not: the journal is full.
    fn enqueue(
        &self,
        state: &mut CacheState<S::Request, S::Response>,
        request: &S::Request,
    ) -> Result<(), String> {
        if state.journal.len() >= self.journal_capacity {
            let service = state.service.as_deref().unwrap_or("NAME");
            return Err(format!(
                "the write journal is full ({} writes await replay); this write was not taken: retry it once the database is back, or raise services.{service}.degradation.journal_capacity",
                state.journal.len()
            ));
        }
        state.journal.push_back(request.clone());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState<S::Request, S::Response>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes waiting for replay.
    pub fn journal_len(&self) -> usize {
        self.lock().journal.len()
    }

    /// The writes waiting for replay, in order: what a shutdown must
    /// persist when the database is still out, so nothing is lost.
    pub fn pending_writes(&self) -> Vec<S::Request>
    where
        S::Request: Clone,
    {
        self.lock().journal.iter().cloned().collect()
    }

    /// Replays the journal in order through `handle`; returns how many
    /// writes the database accepted.
    pub async fn replay(&self, handle: &ServiceHandle<S>) -> usize {
        let _one_at_a_time = self.replaying.lock().await;
        let mut replayed = 0;
        loop {
            let Some(next) = self.lock().journal.front().cloned() else {
                break;
            };
            match handle.call(next).await {
                Ok(_) => {
                    self.lock().journal.pop_front();
                    replayed += 1;
                }
                Err(error) => {
                    tracing::warn!(service = %handle.name(), %error, replayed,
                        left = self.journal_len(), "journal replay paused");
                    break;
                }
            }
        }
        if replayed > 0 {
            tracing::info!(service = %handle.name(), replayed, "journaled writes replayed");
        }
        replayed
    }
}

impl<S: Service> Degradation<S> for ReadOnlyCache<S>
where
    S::Request: DbRequest + Clone + Sync,
    S::Response: Clone + Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::ReadOnlyCache
    }

    fn admit(&self, request: &S::Request, _modes: &crate::modes::Modes) -> Admit<S::Response> {
        // A write may not overtake journaled writes: it joins the journal.
        if request.db_op() == DbOp::Write {
            let mut state = self.lock();
            if !state.journal.is_empty() {
                if let Err(full) = self.enqueue(&mut state, request) {
                    return Admit::Refuse(full);
                }
                return Admit::Answer(Fallback {
                    value: (self.ack)(request),
                    reason: "write journaled behind earlier writes awaiting replay".to_string(),
                    age: None,
                    strategy: StrategyKind::ReadOnlyCache,
                });
            }
        }
        Admit::Send
    }

    fn observe(&self, request: &S::Request, response: &S::Response) {
        if let DbOp::Read(key) = request.db_op() {
            let mut state = self.lock();
            if !state.reads.contains_key(&key) {
                if state.order.len() >= self.capacity {
                    if let Some(oldest) = state.order.pop_front() {
                        state.reads.remove(&oldest);
                    }
                }
                state.order.push_back(key.clone());
            }
            state.reads.insert(
                key,
                Cached {
                    value: response.clone(),
                    at: now(),
                },
            );
        }
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        let answer = match request.db_op() {
            DbOp::Read(key) => match self.lock().reads.get(&key) {
                Some(cached) => FallbackAnswer::Answer(Fallback {
                    value: cached.value.clone(),
                    reason: format!("cached read: {error}"),
                    age: Some(now().saturating_duration_since(cached.at)),
                    strategy: StrategyKind::ReadOnlyCache,
                }),
                None => FallbackAnswer::Refuse(format!("no cached result for {key:?}")),
            },
            DbOp::Write => self.journal(request, error),
        };
        Box::pin(async move { answer })
    }

    fn needs_recovery(&self) -> bool {
        !self.lock().journal.is_empty()
    }

    fn recovered<'a>(&'a self, handle: &'a ServiceHandle<S>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.replay(handle).await;
        })
    }
}

impl<S: Service> ReadOnlyCache<S>
where
    S::Request: DbRequest + Clone,
    S::Response: Clone,
{
    fn journal(
        &self,
        request: &S::Request,
        error: &CallError<S::Error>,
    ) -> FallbackAnswer<S::Response> {
        // Journal only a write that certainly did not take effect, unless
        // replaying it is harmless: a timeout or crash mid-write of a
        // non-idempotent write is the caller's to reconcile.
        let ambiguous = matches!(error, CallError::Timeout { .. } | CallError::Crashed { .. });
        if ambiguous && !S::is_idempotent(request) {
            return FallbackAnswer::Pass;
        }
        let mut state = self.lock();
        state
            .service
            .get_or_insert_with(|| error.service().to_string());
        if let Err(full) = self.enqueue(&mut state, request) {
            return FallbackAnswer::Refuse(full);
        }
        drop(state);
        FallbackAnswer::Answer(Fallback {
            value: (self.ack)(request),
            reason: format!("write journaled for replay: {error}"),
            age: None,
            strategy: StrategyKind::ReadOnlyCache,
        })
    }
}
