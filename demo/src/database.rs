//! A simulated trade store on a real embedded SQLite file.

use seawall::degradation::{DbOp, DbRequest};
use seawall::{Evidence, Service};
use seawall::{Lifecycle, Policy};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the engine asks the database.
#[derive(Debug, Clone, PartialEq)]
pub enum DbCall {
    /// Record a trade (idempotent: keyed by id).
    RecordTrade {
        /// Unique id.
        id: u64,
        /// Instrument.
        symbol: String,
        /// +qty for buys, −qty for sells.
        quantity: i64,
        /// Price.
        price: f64,
    },
    /// The net position in a symbol.
    Position(String),
}

impl DbRequest for DbCall {
    fn db_op(&self) -> DbOp {
        match self {
            DbCall::RecordTrade { .. } => DbOp::Write,
            DbCall::Position(symbol) => DbOp::Read(symbol.clone()),
        }
    }
}

/// What the database answers.
#[derive(Debug, Clone, PartialEq)]
pub enum DbReply {
    /// The write was accepted (or journaled).
    Written,
    /// A net position.
    Position(i64),
}

/// A database error.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct DbError(pub String);

/// One SQLite connection (the database runs `concurrency = 1`: ordered
/// writes). SQLite is blocking, so every statement runs on tokio's blocking
/// pool, never on an async worker thread; the file is in WAL mode, so the
/// health check's own connection reads while the writer writes.
pub struct SimDatabase {
    path: PathBuf,
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
}

impl SimDatabase {
    /// A store at `path` (created on start).
    pub fn new(path: PathBuf) -> Self {
        Self { path, conn: None }
    }

    fn open(path: &std::path::Path) -> Result<rusqlite::Connection, DbError> {
        let conn = rusqlite::Connection::open(path).map_err(|e| DbError(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| DbError(e.to_string()))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| DbError(e.to_string()))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity INTEGER NOT NULL, price REAL NOT NULL);",
        )
        .map_err(|e| DbError(e.to_string()))?;
        Ok(conn)
    }

    /// Runs `f` on the connection (opening it first) on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(conn) => conn,
                None => Arc::new(Mutex::new(Self::open(&path)?)),
            };
            let result = {
                let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&guard)
            };
            Ok::<_, DbError>((conn, result))
        })
        .await
        .map_err(|e| DbError(format!("blocking task failed: {e}")))??;
        self.conn = Some(conn);
        result
    }
}

impl Service for SimDatabase {
    type Request = DbCall;
    type Response = DbReply;
    type Error = DbError;
    type Policy = SimDatabasePolicy;

    async fn call(&mut self, request: DbCall) -> Result<DbReply, DbError> {
        self.blocking(move |conn| match request {
            DbCall::RecordTrade {
                id,
                symbol,
                quantity,
                price,
            } => {
                conn.execute(
                    "INSERT OR IGNORE INTO trades (id, symbol, quantity, price) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id as i64, symbol, quantity, price],
                )
                .map_err(|e| DbError(e.to_string()))?;
                Ok(DbReply::Written)
            }
            DbCall::Position(symbol) => {
                let position: i64 = conn
                    .query_row(
                        "SELECT COALESCE(SUM(quantity), 0) FROM trades WHERE symbol = ?1",
                        [symbol],
                        |row| row.get(0),
                    )
                    .map_err(|e| DbError(e.to_string()))?;
                Ok(DbReply::Position(position))
            }
        })
        .await
    }
}

/// How the breaker reads `SimDatabase`.
pub struct SimDatabasePolicy;

impl Policy<DbCall, DbReply, DbError> for SimDatabasePolicy {
    fn is_idempotent(request: &DbCall) -> bool {
        // INSERT OR IGNORE keyed by id: a replayed write is harmless.
        matches!(request, DbCall::RecordTrade { .. } | DbCall::Position(_))
    }
}

impl Lifecycle for SimDatabase {
    async fn start(&mut self) -> Result<(), DbError> {
        self.blocking(|_| Ok(())).await
    }

    async fn reconnect(&mut self) -> Result<Evidence, DbError> {
        self.conn = None;
        self.blocking(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| DbError(e.to_string()))
        })
        .await?;
        Ok(Evidence::Observed)
    }

    async fn health_check(&mut self) -> Result<Evidence, DbError> {
        self.blocking(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| DbError(e.to_string()))
        })
        .await?;
        Ok(Evidence::Observed)
    }
}
