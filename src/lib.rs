//! seawall: a supervision runtime for trading engines.
#![warn(missing_docs)]

pub mod breaker;
pub mod config;
