//! A simulated trade store on a real embedded SQLite file.

use crate::degradation::{DbOp, DbRequest};
use crate::Service;
use std::path::PathBuf;

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

/// One SQLite connection (the database runs `concurrency = 1`: ordered writes).
pub struct SimDatabase {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl SimDatabase {
    /// A store at `path` (created on start).
    pub fn new(path: PathBuf) -> Self {
        Self { path, conn: None }
    }

    fn connect(&mut self) -> Result<&rusqlite::Connection, DbError> {
        if self.conn.is_none() {
            let conn =
                rusqlite::Connection::open(&self.path).map_err(|e| DbError(e.to_string()))?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity INTEGER NOT NULL, price REAL NOT NULL);",
            )
            .map_err(|e| DbError(e.to_string()))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| DbError("not connected".into()))
    }
}

impl Service for SimDatabase {
    type Request = DbCall;
    type Response = DbReply;
    type Error = DbError;

    async fn call(&mut self, request: DbCall) -> Result<DbReply, DbError> {
        let conn = self.connect()?;
        match request {
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
        }
    }

    fn is_idempotent(request: &DbCall) -> bool {
        // INSERT OR IGNORE keyed by id: a replayed write is harmless.
        matches!(request, DbCall::RecordTrade { .. } | DbCall::Position(_))
    }

    async fn start(&mut self) -> Result<(), DbError> {
        self.connect().map(|_| ())
    }

    async fn reconnect(&mut self) -> Result<(), DbError> {
        self.conn = None;
        self.connect().map(|_| ())
    }

    async fn health_check(&mut self) -> Result<(), DbError> {
        self.connect()?
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|e| DbError(e.to_string()))
    }
}
