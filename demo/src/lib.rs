//! The demo trading engine: four simulated dependencies behind seawall, a
//! simple strategy loop, and a scenario of outages played in compressed time.
//!
//! ```text
//! cargo run --release                       # run with actors.toml, serve the endpoints
//! cargo run --release -- run --duration 30s # a 30 s scenario, then a summary
//! ```
//!
//! The engine only talks to [`DegradedHandle`](seawall::degradation::DegradedHandle)s:
//! prices from `market_data` (last-known prices while it is out), decisions
//! from `ai_agents` (HOLD while out), orders to `kite_api` (refused while
//! trading is not Active), trades to `database` (journaled while out). The
//! [`Summary`] checks the trading rules held: no order placed while Halted,
//! no price of 0 or less used, every tripped breaker recovered.

mod broker;
mod database;
mod engine;
mod kite_server;
mod market;
mod scenario;

pub use broker::{
    BookEntry, BrokerRequest, BrokerResponse, ClientFaults, KiteError, KiteErrorType, KiteHttp,
    Order, Session, Side,
};
pub use database::{DbCall, DbError, DbReply, SimDatabase};
pub use engine::{
    run, DemoOptions, JournalSummary, OrderSummary, PlantedViolation, PriceSummary,
    ProtectedPosition, ServiceSummary, Summary, TradingSummary,
};
pub use kite_server::{FaultPhase, KiteServer, Ledger, Received, ServerFault};
pub use market::{AgentRequest, BadQuotes, SimAgents, SimError, SimFeed, Tape};
pub use scenario::{compress, scenario, scenario_seeded, Scenario, SCENARIOS};
