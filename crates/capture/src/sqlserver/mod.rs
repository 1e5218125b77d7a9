//! SQL Server as a capture source: CDC change tables read as Debezium's SQL Server
//! connector reads them.
//!
//! - [`tables`]: what the loop needs from the CDC tables (a trait), [`connection`] its
//!   tiberius implementation ([`SqlServerTables`]);
//! - [`snapshot`]: the initial read (`op: r`), [`stream`]: the pass loop over
//!   `cdc.lsn_time_mapping` windows, [`plan`]: capture-instance switches;
//! - [`lsn`], [`types`], [`catalog`]: SQL Server's log sequence numbers, column types and
//!   their JDBC descriptions, as Debezium renders them;
//! - [`columns`] and [`options`]: the per-column and other Debezium settings users moving
//!   from Debezium look for.

pub mod catalog;
pub mod columns;
pub mod connection;
pub mod lsn;
pub mod merge;
pub mod options;
pub mod plan;
pub mod snapshot;
pub mod stream;
pub mod tables;
pub mod types;

#[cfg(test)]
pub mod scripted;

pub use connection::{SqlServerTables, client};
