//! What the capture loop needs from SQL Server's CDC tables, as a small trait: the real
//! implementation is [`super::sqlserver::SqlServerTables`] (tiberius); tests drive the
//! loop with scripted passes (restart mid-transaction, an instance switch, a cleanup
//! gap) through the same trait.

use std::future::Future;

use futures::stream::BoxStream;

use super::lsn::Lsn;
pub use super::plan::Read;
use super::types::SqlValue;
use crate::envelope::TableSchema;

/// The rows of one change table in a window, in read order.
pub type Rows<'a> = BoxStream<'a, Result<ChangeRow, TablesError>>;

/// One capture instance (`cdc.change_tables` row) with its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInstance {
    /// The instance name, e.g. `dbo_customers` (its change table is `cdc.dbo_customers_CT`).
    pub name: String,
    /// The table as the instance captures it (columns in `captured_columns` order).
    pub table: TableSchema,
    /// The first LSN the instance holds changes for.
    pub start_lsn: Lsn,
}

/// `snapshot.isolation.mode`: how the snapshot transaction reads, as Debezium's SQL
/// Server connector does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotIsolation {
    /// SNAPSHOT isolation: every table as of one point, no locks (falls back to
    /// `repeatable_read` where the database does not allow snapshot isolation).
    #[default]
    Snapshot,
    /// REPEATABLE READ; each table locked exclusively (`TABLOCKX`) while the position and
    /// the schemas are read, then released: rows changed during the read may be streamed
    /// again (duplicates, never a loss).
    RepeatableRead,
    /// READ COMMITTED, no locks.
    ReadCommitted,
    /// READ UNCOMMITTED, no locks.
    ReadUncommitted,
    /// REPEATABLE READ with every table locked exclusively until the snapshot ends:
    /// exact, and writers wait.
    Exclusive,
}

impl SnapshotIsolation {
    /// The T-SQL that opens the snapshot transaction and takes the mode's locks on
    /// `tables` (`schema.table`), before the position is read (Debezium's
    /// `lockTablesForSchemaSnapshot`).
    pub fn begin_sql(self, tables: &[String]) -> String {
        let level = match self {
            SnapshotIsolation::Snapshot => "SNAPSHOT",
            SnapshotIsolation::ReadCommitted => "READ COMMITTED",
            SnapshotIsolation::ReadUncommitted => "READ UNCOMMITTED",
            SnapshotIsolation::RepeatableRead | SnapshotIsolation::Exclusive => "REPEATABLE READ",
        };
        let mut sql = format!("SET TRANSACTION ISOLATION LEVEL {level}; BEGIN TRANSACTION");
        if self.locks() {
            if self == SnapshotIsolation::RepeatableRead {
                sql.push_str("; SAVE TRANSACTION dbz_schema_snapshot");
            }
            for table in tables {
                let (schema, name) = table.split_once('.').unwrap_or(("dbo", table));
                let quote = |n: &str| format!("[{}]", n.replace(']', "]]"));
                sql.push_str(&format!(
                    "; SELECT TOP(0) * FROM {}.{} WITH (TABLOCKX)",
                    quote(schema),
                    quote(name)
                ));
            }
        }
        sql
    }

    /// Whether the mode locks the tables.
    pub fn locks(self) -> bool {
        matches!(
            self,
            SnapshotIsolation::RepeatableRead | SnapshotIsolation::Exclusive
        )
    }

    /// The T-SQL run once the position and schemas are read: `repeatable_read` rolls back
    /// to its savepoint, which releases the table locks (Debezium's
    /// `releaseSchemaSnapshotLocks`); `exclusive` keeps them to the end.
    pub fn release_sql(self) -> Option<&'static str> {
        (self == SnapshotIsolation::RepeatableRead)
            .then_some("ROLLBACK TRANSACTION dbz_schema_snapshot")
    }
}

/// `__$operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Delete = 1,
    Insert = 2,
    UpdateBefore = 3,
    UpdateAfter = 4,
}

impl Operation {
    pub fn from_code(code: i32) -> Option<Operation> {
        Some(match code {
            1 => Operation::Delete,
            2 => Operation::Insert,
            3 => Operation::UpdateBefore,
            4 => Operation::UpdateAfter,
            _ => return None,
        })
    }
}

/// One row of a change table, joined with `cdc.lsn_time_mapping` for its commit time.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// `__$start_lsn`: the commit LSN.
    pub start_lsn: Lsn,
    /// `__$seqval`: the change's LSN within the transaction.
    pub seqval: Lsn,
    pub operation: Operation,
    /// `__$command_id`: orders changes within one transaction.
    pub command_id: i32,
    /// `tran_end_time` of the commit, epoch ms.
    pub commit_ts_ms: i64,
    /// The captured columns, in the instance's column order.
    pub values: Vec<SqlValue>,
}

/// Failures of the CDC tables, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    #[error("connecting to SQL Server: {0}")]
    Connect(String),
    #[error(
        "CDC is not enabled on database {database}: run `EXEC sys.sp_cdc_enable_db` in it (needs sysadmin)"
    )]
    CdcNotEnabledOnDatabase { database: String },
    #[error(
        "CDC is not enabled on table {table}: run `EXEC sys.sp_cdc_enable_table @source_schema = N'{schema}', @source_name = N'{name}', @role_name = NULL`",
        schema = table.split('.').next().unwrap_or(""),
        name = table.split('.').nth(1).unwrap_or("")
    )]
    CdcNotEnabledOnTable { table: String },
    #[error(
        "sys.fn_cdc_get_max_lsn() returned no LSN on {database}: SQL Server Agent is not running (CDC's capture job fills the change tables; start the Agent, e.g. MSSQL_AGENT_ENABLED=true in a container)"
    )]
    AgentNotRunning { database: String },
    #[error(
        "permission denied: {0} (the capture login needs SELECT on the cdc schema and the captured tables, db_owner or the CDC gating role)"
    )]
    Permission(String),
    #[error(
        "no table to capture in {database}: capture.tables names none and no CDC-enabled table passes table_include_list / table_exclude_list (CDC-enabled: {available})"
    )]
    NothingToCapture { database: String, available: String },
    #[error("{table}: change row with unknown __$operation {code}")]
    UnknownOperation { table: String, code: i32 },
    #[error("SQL Server: {0}")]
    Query(String),
}

/// The CDC tables (see the module docs). Every method is one query or a few.
pub trait CdcTables: Send {
    /// `sys.fn_cdc_get_max_lsn()`: `None` when CDC has captured nothing yet (the Agent is
    /// not running).
    fn max_lsn(&mut self) -> impl Future<Output = Result<Option<Lsn>, TablesError>> + Send;

    /// Every capture instance of the captured tables (`cdc.change_tables`), oldest first
    /// per table.
    fn capture_instances(
        &mut self,
    ) -> impl Future<Output = Result<Vec<CaptureInstance>, TablesError>> + Send;

    /// The upper bound of the next pass: the largest commit LSN among the first
    /// `transactions` transactions at or after `from` in `cdc.lsn_time_mapping`
    /// (`None`: nothing committed there yet).
    fn window_end(
        &mut self,
        from: Lsn,
        transactions: u32,
    ) -> impl Future<Output = Result<Option<Lsn>, TablesError>> + Send;

    /// One stream per read: the rows of `read.instance` with `read.from <= __$start_lsn
    /// <= read.to`, ordered by `__$start_lsn, __$command_id, __$seqval, __$operation`
    /// (`all update old`: both images of an update). The streams are consumed together
    /// (the loop merges them as rows come), so each must be open at once and read from
    /// its source as it is consumed: a window is never held in memory.
    fn changes<'a>(
        &'a mut self,
        reads: &'a [Read],
    ) -> impl Future<Output = Result<Vec<Rows<'a>>, TablesError>> + Send + 'a;

    /// Starts a snapshot transaction in `isolation`, taking its locks on `tables`
    /// ([`SnapshotIsolation::begin_sql`]).
    fn begin_snapshot(
        &mut self,
        isolation: SnapshotIsolation,
        tables: &[String],
    ) -> impl Future<Output = Result<(), TablesError>> + Send;

    /// Runs once the snapshot's position and schemas are read: releases the locks
    /// `isolation` holds only for that ([`SnapshotIsolation::release_sql`]). Sources
    /// that take no locks keep the default, which does nothing.
    fn release_schema_locks(
        &mut self,
        isolation: SnapshotIsolation,
    ) -> impl Future<Output = Result<(), TablesError>> + Send {
        let _ = isolation;
        async { Ok(()) }
    }

    /// Rows in `table` (for the progress report).
    fn count_rows(
        &mut self,
        table: &TableSchema,
    ) -> impl Future<Output = Result<u64, TablesError>> + Send;

    /// Every row of `table` (or of `select`, `snapshot.select.statement.overrides`, its
    /// columns taken by name), as a stream: one query whose rows are read from the
    /// connection as they are consumed, so a table is never held in memory (the server
    /// waits on TCP flow control while events are published).
    fn snapshot_rows<'a>(
        &'a mut self,
        table: &'a TableSchema,
        select: Option<&'a str>,
    ) -> impl Future<Output = Result<BoxStream<'a, Result<Vec<SqlValue>, TablesError>>, TablesError>>
    + Send
    + 'a;

    /// Ends the snapshot transaction.
    fn end_snapshot(&mut self) -> impl Future<Output = Result<(), TablesError>> + Send;

    /// The current time, epoch ms (the snapshot's `source.ts_ms`).
    fn now_ms(&mut self) -> impl Future<Output = Result<i64, TablesError>> + Send;
}
