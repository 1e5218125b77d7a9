//! [`CdcTables`] over a real SQL Server, with tiberius on tokio: the queries Debezium's
//! SQL Server connector runs (see `shared/reference/debezium-sqlserver.md`), and the
//! conversion of tiberius's `ColumnData` into [`SqlValue`].
//!
//! Authentication is what tiberius supports on this build: SQL logins
//! (`user=...;password=...`) everywhere; integrated (Kerberos) logins
//! (`Integrated Security=true`, no user or password) with the `kerberos` cargo feature,
//! which compiles tiberius's GSSAPI support (libgssapi; a ticket from `kinit` or a
//! keytab at run time). TLS follows the connection string (`encrypt=true|false|strict`,
//! `TrustServerCertificate=true`).

use futures::StreamExt;
use futures::stream::BoxStream;
use tiberius::{Client, ColumnData, Config, Row, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::catalog::ColumnCatalog;
use super::lsn::Lsn;
use super::tables::{
    CaptureInstance, CdcTables, ChangeRow, Operation, Read, Rows, SnapshotIsolation, TablesError,
};
use super::types::{Column, SqlType, SqlValue};
use crate::envelope::TableSchema;
use crate::filters::TableSelection;

/// The CDC tables of one database (see the module docs).
pub struct SqlServerTables {
    client: Client<Compat<TcpStream>>,
    /// The connection string, for the readers.
    connection: String,
    /// One connection per change table read in a pass (opened as needed, kept): TDS
    /// carries one result at a time per connection, and the change tables of a pass are
    /// read together, row by row, so that a window is never held in memory.
    readers: Vec<Client<Compat<TcpStream>>>,
    database: String,
    tables: Vec<String>,
    snapshot_isolation: bool,
    /// The isolation the current snapshot fell back to (SNAPSHOT not allowed).
    fallback_isolation: Option<SnapshotIsolation>,
    /// Columns and key per change table (`object_id`): a capture instance's columns never
    /// change, so a pass lists `cdc.change_tables` (one query) and reads the catalog only
    /// for an instance it has not seen (a re-created instance has a new change table).
    described: std::collections::HashMap<i32, (Vec<Column>, Vec<usize>)>,
}

impl std::fmt::Debug for SqlServerTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlServerTables")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Classifies a tiberius error: permissions and missing CDC objects get their own
/// messages.
fn query_error(what: &str, error: tiberius::error::Error, database: &str) -> TablesError {
    if let tiberius::error::Error::Server(token) = &error {
        match token.code() {
            // SELECT/EXECUTE permission denied; VIEW SERVER STATE; login lacks access.
            229 | 230 | 262 | 297 | 300 | 916 => {
                return TablesError::Permission(format!("{what}: {}", token.message()));
            }
            // Invalid object name 'cdc.change_tables' / 'cdc.lsn_time_mapping'.
            208 if token.message().contains("cdc.") => {
                return TablesError::CdcNotEnabledOnDatabase {
                    database: database.to_owned(),
                };
            }
            _ => {}
        }
    }
    TablesError::Query(format!("{what}: {error}"))
}

/// A tiberius client for an ADO.NET connection string (`server=tcp:host,1433;
/// database=...;user=...;password=...;TrustServerCertificate=true`).
pub async fn client(connection: &str) -> Result<Client<Compat<TcpStream>>, TablesError> {
    let config = Config::from_ado_string(connection)
        .map_err(|e| TablesError::Connect(format!("connection string: {e}")))?;
    let address = config.get_addr();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| TablesError::Connect(format!("{address}: {e}")))?;
    tcp.set_nodelay(true)
        .map_err(|e| TablesError::Connect(format!("{address}: {e}")))?;
    Client::connect(config, tcp.compat_write())
        .await
        .map_err(|e| TablesError::Connect(format!("{address}: {e}")))
}

impl SqlServerTables {
    /// Connects with an ADO.NET connection string (`server=tcp:host,1433;database=...;
    /// user=...;password=...;TrustServerCertificate=true`) and checks that CDC is
    /// enabled on the database and on every table `selection` names, and chooses the
    /// captured tables ([`TableSelection::resolve`] over the CDC-enabled tables;
    /// [`Self::tables`]).
    pub async fn connect(
        connection: &str,
        selection: &TableSelection,
    ) -> Result<Self, TablesError> {
        let client = client(connection).await?;
        let mut this = Self {
            client,
            connection: connection.to_owned(),
            readers: Vec::new(),
            database: String::new(),
            tables: Vec::new(),
            snapshot_isolation: false,
            fallback_isolation: None,
            described: std::collections::HashMap::new(),
        };
        let row = this
            .one_row(
                "SELECT DB_NAME(), CAST(is_cdc_enabled AS int), CAST(snapshot_isolation_state AS int) FROM sys.databases WHERE name = DB_NAME()",
                &[],
            )
            .await?
            .ok_or_else(|| TablesError::Query("sys.databases: no row for DB_NAME()".into()))?;
        this.database = row.get::<&str, _>(0).unwrap_or_default().to_owned();
        if row.get::<i32, _>(1) != Some(1) {
            return Err(TablesError::CdcNotEnabledOnDatabase {
                database: this.database.clone(),
            });
        }
        this.snapshot_isolation = row.get::<i32, _>(2) == Some(1);
        let available: Vec<String> = this
            .rows(
                "SELECT DISTINCT s.name, t.name FROM cdc.change_tables ct \
                 JOIN sys.tables t ON t.object_id = ct.source_object_id \
                 JOIN sys.schemas s ON s.schema_id = t.schema_id ORDER BY s.name, t.name",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                format!(
                    "{}.{}",
                    row.get::<&str, _>(0).unwrap_or_default(),
                    row.get::<&str, _>(1).unwrap_or_default()
                )
            })
            .collect();
        this.tables = selection.resolve(&available);
        if this.tables.is_empty() {
            return Err(TablesError::NothingToCapture {
                database: this.database.clone(),
                available: available.join(", "),
            });
        }
        let instances = this.capture_instances().await?;
        for table in selection.named.iter().chain(&this.tables) {
            if !instances.iter().any(|i| &i.table.id() == table) {
                return Err(TablesError::CdcNotEnabledOnTable {
                    table: table.clone(),
                });
            }
        }
        Ok(this)
    }

    /// The tables captured (`schema.table`), as chosen at connect.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The database's name as the server reports it.
    pub fn database(&self) -> &str {
        &self.database
    }

    async fn rows(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>, TablesError> {
        let database = self.database.clone();
        let stream = self
            .client
            .query(sql, params)
            .await
            .map_err(|e| query_error(sql, e, &database))?;
        stream
            .into_first_result()
            .await
            .map_err(|e| query_error(sql, e, &database))
    }

    async fn one_row(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Option<Row>, TablesError> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    async fn batch(&mut self, sql: &str) -> Result<(), TablesError> {
        let database = self.database.clone();
        self.client
            .simple_query(sql)
            .await
            .map_err(|e| query_error(sql, e, &database))?
            .into_results()
            .await
            .map_err(|e| query_error(sql, e, &database))?;
        Ok(())
    }

    async fn columns(
        &mut self,
        change_table: i32,
        source: i32,
        id: &str,
    ) -> Result<(Vec<Column>, Vec<usize>), TablesError> {
        let rows = self
            .rows(
                // Types as the change table has them (DDL on the source after the
                // instance was created does not reach it); nullability, identity,
                // computed and default as the source table declares them (the change
                // table's columns are all nullable), as Debezium reads them.
                "SELECT cc.column_name, COALESCE(TYPE_NAME(ctc.system_type_id), TYPE_NAME(ctc.user_type_id)), \
                 CAST(ctc.precision AS int), CAST(ctc.scale AS int), CAST(COALESCE(src.is_nullable, 1) AS int), \
                 CAST(ctc.max_length AS int), CAST(COALESCE(src.is_identity, 0) AS int), CAST(COALESCE(src.is_computed, 0) AS int), dc.definition \
                 FROM cdc.captured_columns cc \
                 JOIN sys.columns ctc ON ctc.object_id = @P1 AND ctc.name = cc.column_name \
                 LEFT JOIN sys.columns src ON src.object_id = @P2 AND src.column_id = cc.column_id AND src.name = cc.column_name \
                 LEFT JOIN sys.default_constraints dc ON dc.object_id = src.default_object_id \
                 WHERE cc.object_id = @P1 ORDER BY cc.column_ordinal",
                &[&change_table, &source],
            )
            .await?;
        let described: Vec<CatalogColumn> = rows
            .iter()
            .map(|row| CatalogColumn {
                name: row.get::<&str, _>(0).unwrap_or_default().to_owned(),
                type_name: row.get::<&str, _>(1).unwrap_or_default().to_owned(),
                precision: row.get::<i32, _>(2).unwrap_or(0) as u8,
                scale: row.get::<i32, _>(3).unwrap_or(0) as u8,
                optional: row.get::<i32, _>(4) == Some(1),
                max_length: row.get::<i32, _>(5).unwrap_or(0) as i16,
                identity: row.get::<i32, _>(6) == Some(1),
                computed: row.get::<i32, _>(7) == Some(1),
                default: row.get::<&str, _>(8).map(str::to_owned),
            })
            .collect();
        let columns = mapped_columns(id, described);
        let keys = self
            .rows(
                // The primary key, else the first unique index (clustered first), as
                // Debezium's `readPrimaryKeyOrUniqueIndexNames`; included columns are not
                // key columns.
                "SELECT c.name FROM sys.index_columns ic \
                 JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
                 WHERE ic.object_id = @P1 AND ic.key_ordinal > 0 AND ic.index_id = ( \
                 SELECT TOP (1) i.index_id FROM sys.indexes i \
                 WHERE i.object_id = @P1 AND (i.is_primary_key = 1 OR i.is_unique = 1) AND i.is_hypothetical = 0 \
                 ORDER BY i.is_primary_key DESC, CASE WHEN i.type = 1 THEN 0 ELSE 1 END, i.name) \
                 ORDER BY ic.key_ordinal",
                &[&source],
            )
            .await?;
        let key = keys
            .iter()
            .filter_map(|row| row.get::<&str, _>(0))
            .filter_map(|name| columns.iter().position(|c| c.name == name))
            .collect();
        Ok((columns, key))
    }
}

/// A captured column as the catalog query returns it.
#[derive(Debug, Clone)]
struct CatalogColumn {
    name: String,
    type_name: String,
    precision: u8,
    scale: u8,
    optional: bool,
    max_length: i16,
    identity: bool,
    computed: bool,
    default: Option<String>,
}

/// The columns capture maps, in order. A column of a type it does not map
/// (`hierarchyid`, `geometry`, `geography`, `sql_variant`, CLR types) is left out with a
/// warning, as Debezium leaves it out of the table's schema: it is neither selected nor
/// in the events, and the table is captured all the same.
fn mapped_columns(table: &str, described: Vec<CatalogColumn>) -> Vec<Column> {
    let mut columns = Vec::new();
    for c in described {
        let Some(sql_type) = SqlType::from_catalog(&c.type_name, c.precision, c.scale) else {
            tracing::warn!(table, column = %c.name, type_name = %c.type_name, "column type not mapped: the column is left out of the events, as Debezium does");
            continue;
        };
        columns.push(Column {
            name: c.name,
            sql_type,
            optional: c.optional,
            catalog: ColumnCatalog {
                type_name: c.type_name.to_ascii_lowercase(),
                max_length: c.max_length,
                identity: c.identity,
                computed: c.computed,
                default: c.default,
            },
            mask: None,
        });
    }
    columns
}

fn lsn_of(row: &Row, index: usize) -> Option<Lsn> {
    row.get::<&[u8], _>(index).and_then(Lsn::from_bytes)
}

/// tiberius's `ColumnData` → [`SqlValue`].
pub fn sql_value(data: ColumnData<'static>) -> SqlValue {
    use SqlValue as V;
    let value = match data {
        ColumnData::U8(v) => v.map(V::U8),
        ColumnData::I16(v) => v.map(V::I16),
        ColumnData::I32(v) => v.map(V::I32),
        ColumnData::I64(v) => v.map(V::I64),
        ColumnData::F32(v) => v.map(V::F32),
        ColumnData::F64(v) => v.map(V::F64),
        ColumnData::Bit(v) => v.map(V::Bit),
        ColumnData::String(v) => v.map(|s| V::String(s.into_owned())),
        ColumnData::Guid(v) => v.map(|g| V::Guid(g.to_string())),
        ColumnData::Binary(v) => v.map(|b| V::Binary(b.into_owned())),
        ColumnData::Numeric(v) => v.map(|n| V::Numeric {
            value: n.value(),
            scale: n.scale(),
        }),
        ColumnData::Xml(v) => v.map(|x| V::Xml(x.into_owned().into_string())),
        ColumnData::DateTime(v) => v.map(|d| V::DateTime {
            days: d.days(),
            fragments: d.seconds_fragments(),
        }),
        ColumnData::SmallDateTime(v) => v.map(|d| V::SmallDateTime {
            days: d.days(),
            minutes: d.seconds_fragments(),
        }),
        ColumnData::Time(v) => v.map(|t| V::Time {
            increments: t.increments(),
            scale: t.scale(),
        }),
        ColumnData::Date(v) => v.map(|d| V::Date { days: d.days() }),
        ColumnData::DateTime2(v) => v.map(|d| V::DateTime2 {
            days: d.date().days(),
            increments: d.time().increments(),
            scale: d.time().scale(),
        }),
        ColumnData::DateTimeOffset(v) => v.map(|d| V::DateTimeOffset {
            days: d.datetime2().date().days(),
            increments: d.datetime2().time().increments(),
            scale: d.datetime2().time().scale(),
            offset_minutes: d.offset(),
        }),
    };
    value.unwrap_or(V::Null)
}

/// The rows of one read as a stream off `reader` (see [`CdcTables::changes`]).
async fn change_rows<'a>(
    reader: &'a mut Client<Compat<TcpStream>>,
    read: &'a Read,
    database: &str,
) -> Result<Rows<'a>, TablesError> {
    let instance = &read.instance;
    // The commit time as Debezium reads it: `fn_cdc_map_lsn_to_time` (the server's
    // local `tran_end_time`) at the server's current UTC offset, rounded to ms as a
    // `datetimeoffset(3)` is (DATEDIFF on the raw `datetime` could count .xx7 as .xx6).
    let sql = format!(
        "SELECT ct.__$start_lsn, ct.__$seqval, CAST(ct.__$operation AS int), CAST(ct.__$command_id AS int), \
         DATEDIFF_BIG(millisecond, CAST('19700101' AS datetime2(3)), DATEADD(minute, -DATEPART(TZOFFSET, SYSDATETIMEOFFSET()), \
         CAST(sys.fn_cdc_map_lsn_to_time(ct.__$start_lsn) AS datetime2(3)))), {} \
         FROM cdc.{} ct \
         WHERE ct.__$start_lsn >= @P1 AND ct.__$start_lsn <= @P2 \
         ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation",
        select_list(&instance.table, "ct."),
        quote(&format!("{}_CT", instance.name))
    );
    let (from, to) = (read.from.0.to_vec(), read.to.0.to_vec());
    let database = database.to_owned();
    let stream = reader
        .query(sql.clone(), &[&from, &to])
        .await
        .map_err(|e| query_error(&sql, e, &database))?;
    let id = instance.table.id();
    Ok(stream
        .into_row_stream()
        .map(move |row| {
            let row = row.map_err(|e| query_error(&sql, e, &database))?;
            change_row(row, &id)
        })
        .boxed())
}

/// One change-table row (the columns of [`change_rows`]'s query).
fn change_row(row: Row, id: &str) -> Result<ChangeRow, TablesError> {
    let start_lsn = lsn_of(&row, 0).unwrap_or(Lsn::ZERO);
    let seqval = lsn_of(&row, 1).unwrap_or(Lsn::ZERO);
    let code = row.get::<i32, _>(2).unwrap_or(0);
    let operation = Operation::from_code(code).ok_or(TablesError::UnknownOperation {
        table: id.to_owned(),
        code,
    })?;
    let command_id = row.get::<i32, _>(3).unwrap_or(0);
    let commit_ts_ms = row.get::<i64, _>(4).ok_or_else(|| {
        TablesError::Query(format!(
            "{id}: no commit time for LSN {start_lsn} in cdc.lsn_time_mapping"
        ))
    })?;
    let values = row.into_iter().skip(5).map(sql_value).collect();
    Ok(ChangeRow {
        start_lsn,
        seqval,
        operation,
        command_id,
        commit_ts_ms,
        values,
    })
}

/// The snapshot's query of `table`: a plain SELECT, as Debezium's (an ORDER BY on the
/// key would sort the whole table when the key is not the clustered index); with an
/// override, the override as a derived table whose columns are taken by name, so it
/// may select them in any order (a column it lacks fails the query, naming it).
fn snapshot_query(table: &TableSchema, select: Option<&str>) -> String {
    match select {
        None => format!(
            "SELECT {} FROM {}.{}",
            select_list(table, ""),
            quote(&table.schema),
            quote(&table.table)
        ),
        Some(select) => format!(
            "SELECT {} FROM ({}) AS [sluice_override]",
            select_list(table, "[sluice_override]."),
            select.trim().trim_end_matches(';')
        ),
    }
}

fn quote(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// The columns of `table` to select, each prefixed (`ct.`): money and smallmoney are
/// cast to exact decimals, since tiberius decodes them through an f64, which cannot
/// hold every money value exactly (Debezium reads them with `getBigDecimal`).
fn select_list(table: &TableSchema, prefix: &str) -> String {
    table
        .columns
        .iter()
        .map(|c| {
            let column = format!("{prefix}{}", quote(&c.name));
            match c.sql_type {
                SqlType::Money => format!("CAST({column} AS decimal(19,4))"),
                SqlType::SmallMoney => format!("CAST({column} AS decimal(10,4))"),
                _ => column,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl CdcTables for SqlServerTables {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        let row = self.one_row("SELECT sys.fn_cdc_get_max_lsn()", &[]).await?;
        Ok(row
            .as_ref()
            .and_then(|r| lsn_of(r, 0))
            .filter(|l| !l.is_zero()))
    }

    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        let rows = self
            .rows(
                "SELECT ct.capture_instance, s.name, t.name, ct.start_lsn, ct.object_id, ct.source_object_id \
                 FROM cdc.change_tables ct JOIN sys.tables t ON t.object_id = ct.source_object_id \
                 JOIN sys.schemas s ON s.schema_id = t.schema_id \
                 ORDER BY CASE WHEN ct.start_lsn IS NULL THEN 1 ELSE 0 END, ct.start_lsn, ct.create_date",
                &[],
            )
            .await?;
        let mut found = Vec::new();
        for row in &rows {
            let schema = row.get::<&str, _>(1).unwrap_or_default().to_owned();
            let table = row.get::<&str, _>(2).unwrap_or_default().to_owned();
            let id = format!("{schema}.{table}");
            if !self.tables.contains(&id) {
                continue;
            }
            found.push((
                row.get::<&str, _>(0).unwrap_or_default().to_owned(),
                schema,
                table,
                // NULL: the instance's low endpoint is not established yet; it is never
                // switched to before it is.
                lsn_of(row, 3).unwrap_or(Lsn::MAX),
                row.get::<i32, _>(4).unwrap_or(0),
                row.get::<i32, _>(5).unwrap_or(0),
            ));
        }
        let mut instances = Vec::new();
        self.described
            .retain(|change_table, _| found.iter().any(|f| f.4 == *change_table));
        for (name, schema, table, start_lsn, change_table, source) in found {
            let (columns, key) = match self.described.get(&change_table) {
                Some(described) => described.clone(),
                None => {
                    let id = format!("{schema}.{table}");
                    let described = self.columns(change_table, source, &id).await?;
                    self.described.insert(change_table, described.clone());
                    described
                }
            };
            instances.push(CaptureInstance {
                name,
                table: TableSchema {
                    schema,
                    table,
                    columns,
                    key,
                },
                start_lsn,
            });
        }
        Ok(instances)
    }

    async fn window_end(
        &mut self,
        from: Lsn,
        transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        let from = from.0.to_vec();
        let top = i64::from(transactions);
        let row = self
            .one_row(
                "SELECT MAX(start_lsn) FROM (SELECT TOP (@P2) start_lsn FROM cdc.lsn_time_mapping \
                 WHERE start_lsn >= @P1 AND tran_id <> 0x00 ORDER BY start_lsn) AS t",
                &[&from, &top],
            )
            .await?;
        Ok(row.as_ref().and_then(|r| lsn_of(r, 0)))
    }

    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        while self.readers.len() < reads.len() {
            self.readers.push(client(&self.connection).await?);
        }
        let mut streams = Vec::with_capacity(reads.len());
        for (reader, read) in self.readers.iter_mut().zip(reads) {
            streams.push(change_rows(reader, read, &self.database).await?);
        }
        Ok(streams)
    }

    async fn begin_snapshot(
        &mut self,
        isolation: SnapshotIsolation,
        tables: &[String],
    ) -> Result<(), TablesError> {
        let isolation = if isolation == SnapshotIsolation::Snapshot && !self.snapshot_isolation {
            tracing::warn!(database = %self.database, "ALLOW_SNAPSHOT_ISOLATION is off: the snapshot reads as snapshot_isolation_mode = \"repeatable_read\" (tables locked while the position is read)");
            self.fallback_isolation = Some(SnapshotIsolation::RepeatableRead);
            SnapshotIsolation::RepeatableRead
        } else {
            self.fallback_isolation = None;
            isolation
        };
        self.batch(&isolation.begin_sql(tables)).await
    }

    async fn release_schema_locks(
        &mut self,
        isolation: SnapshotIsolation,
    ) -> Result<(), TablesError> {
        match self.fallback_isolation.unwrap_or(isolation).release_sql() {
            Some(sql) => self.batch(sql).await,
            None => Ok(()),
        }
    }

    async fn count_rows(&mut self, table: &TableSchema) -> Result<u64, TablesError> {
        // From the catalog, without scanning (or, under REPEATABLE READ, locking) the
        // table: it is only a progress figure.
        let name = format!("{}.{}", quote(&table.schema), quote(&table.table));
        let row = self
            .one_row(
                "SELECT CAST(SUM(p.rows) AS bigint) FROM sys.partitions p \
                 WHERE p.object_id = OBJECT_ID(@P1) AND p.index_id IN (0, 1)",
                &[&name.as_str()],
            )
            .await?;
        Ok(row.and_then(|r| r.get::<i64, _>(0)).unwrap_or(0).max(0) as u64)
    }

    async fn snapshot_rows<'a>(
        &'a mut self,
        table: &'a TableSchema,
        select: Option<&'a str>,
    ) -> Result<BoxStream<'a, Result<Vec<SqlValue>, TablesError>>, TablesError> {
        let sql = snapshot_query(table, select);
        let database = self.database.clone();
        let stream = self
            .client
            .query(sql.clone(), &[])
            .await
            .map_err(|e| query_error(&sql, e, &database))?;
        Ok(stream
            .into_row_stream()
            .map(move |row| {
                row.map(|row| row.into_iter().map(sql_value).collect())
                    .map_err(|e| query_error(&sql, e, &database))
            })
            .boxed())
    }

    async fn end_snapshot(&mut self) -> Result<(), TablesError> {
        self.batch("COMMIT TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await
    }

    async fn now_ms(&mut self) -> Result<i64, TablesError> {
        let row = self
            .one_row(
                "SELECT DATEDIFF_BIG(ms, '1970-01-01', SYSUTCDATETIME())",
                &[],
            )
            .await?;
        Ok(row.and_then(|r| r.get::<i64, _>(0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    //! tiberius's own values (as a server sends them) into [`SqlValue`], then through the
    //! Debezium mapping: the path a real row takes, without a server.

    use super::*;
    use crate::sqlserver::types::{DecimalMode, push_value};
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};

    fn mapped(data: ColumnData<'static>, sql_type: SqlType) -> String {
        let column = Column {
            name: "c".into(),
            sql_type,
            optional: true,
            catalog: Default::default(),
            mask: None,
        };
        let mut out = String::new();
        push_value(&mut out, &column, &sql_value(data), DecimalMode::Precise).expect("maps");
        out
    }

    /// A column of a type capture does not map is left out (with a warning), as Debezium
    /// leaves it out: the table is captured with its other columns.
    #[test]
    fn unmapped_columns_are_left_out_and_the_table_kept() {
        let column = |name: &str, type_name: &str| CatalogColumn {
            name: name.into(),
            type_name: type_name.into(),
            precision: 10,
            scale: 0,
            optional: true,
            max_length: 4,
            identity: false,
            computed: false,
            default: None,
        };
        let columns = mapped_columns(
            "dbo.places",
            vec![
                column("id", "int"),
                column("node", "hierarchyid"),
                column("shape", "geometry"),
                column("area", "geography"),
                column("anything", "sql_variant"),
                column("name", "nvarchar"),
            ],
        );
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name"]);
        let table = TableSchema {
            schema: "dbo".into(),
            table: "places".into(),
            columns,
            key: vec![0],
        };
        assert_eq!(select_list(&table, "ct."), "ct.[id], ct.[name]");
    }

    #[test]
    fn tiberius_values_map_like_debezium() {
        let date = Date::new(724_713);
        let time = Time::new(432_001_234_567, 7);
        assert_eq!(mapped(ColumnData::Date(Some(date)), SqlType::Date), "5551");
        assert_eq!(
            mapped(
                ColumnData::DateTime2(Some(DateTime2::new(Date::new(739_920), time))),
                SqlType::DateTime2 { scale: 7 }
            ),
            "1793534400123456700"
        );
        assert_eq!(
            mapped(
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                    DateTime2::new(Date::new(739_920), time),
                    120
                ))),
                SqlType::DateTimeOffset { scale: 7 }
            ),
            r#""2026-11-01T14:00:00.1234567+02:00""#
        );
        assert_eq!(
            mapped(
                ColumnData::DateTime(Some(DateTime::new(45_294, 10_260_001))),
                SqlType::DateTime
            ),
            "1704447000003"
        );
        assert_eq!(
            mapped(
                ColumnData::SmallDateTime(Some(SmallDateTime::new(45_294, 570))),
                SqlType::SmallDateTime
            ),
            "1704447000000"
        );
        assert_eq!(
            mapped(
                ColumnData::Time(Some(Time::new(34_200_125, 3))),
                SqlType::Time { scale: 3 }
            ),
            "34200125"
        );
        assert_eq!(
            mapped(
                ColumnData::Numeric(Some(Numeric::new_with_scale(500_000, 2))),
                SqlType::Decimal {
                    precision: 12,
                    scale: 2
                }
            ),
            r#""B6Eg""#
        );
        let guid = tiberius::Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").expect("uuid");
        assert_eq!(
            mapped(ColumnData::Guid(Some(guid)), SqlType::UniqueIdentifier),
            r#""6F9619FF-8B86-D011-B42D-00C04FC964FF""#
        );
        assert_eq!(
            mapped(ColumnData::F64(Some(1234.5678)), SqlType::Money),
            r#""ALxhTg==""#
        );
        assert_eq!(mapped(ColumnData::I32(None), SqlType::Int), "null");
        assert_eq!(
            mapped(ColumnData::String(Some("Zoë".into())), SqlType::Text),
            r#""Zoë""#
        );
    }
}

#[cfg(test)]
mod snapshot_sql_tests {
    //! The T-SQL of the snapshot options (`snapshot.isolation.mode`,
    //! `snapshot.select.statement.overrides`), as sent to the server.

    use super::*;

    #[test]
    fn isolation_modes_as_debezium_runs_them() {
        let tables = ["dbo.customers".to_owned(), "sales.order]s".to_owned()];
        assert_eq!(
            SnapshotIsolation::Snapshot.begin_sql(&tables),
            "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION"
        );
        assert_eq!(
            SnapshotIsolation::ReadUncommitted.begin_sql(&tables),
            "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED; BEGIN TRANSACTION"
        );
        assert_eq!(
            SnapshotIsolation::RepeatableRead.begin_sql(&tables),
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; BEGIN TRANSACTION; \
             SAVE TRANSACTION dbz_schema_snapshot; \
             SELECT TOP(0) * FROM [dbo].[customers] WITH (TABLOCKX); \
             SELECT TOP(0) * FROM [sales].[order]]s] WITH (TABLOCKX)"
        );
        assert_eq!(
            SnapshotIsolation::RepeatableRead.release_sql(),
            Some("ROLLBACK TRANSACTION dbz_schema_snapshot")
        );
        // Exclusive keeps its locks until the snapshot commits.
        assert!(
            SnapshotIsolation::Exclusive
                .begin_sql(&tables)
                .ends_with("[sales].[order]]s] WITH (TABLOCKX)")
        );
        assert_eq!(SnapshotIsolation::Exclusive.release_sql(), None);
    }

    #[test]
    fn an_override_is_read_by_column_name() {
        let mut table = crate::fixtures::customers();
        table.columns.truncate(2);
        assert_eq!(
            snapshot_query(&table, None),
            "SELECT [id], [first_name] FROM [dbo].[customers]"
        );
        assert_eq!(
            snapshot_query(
                &table,
                Some("SELECT first_name, id FROM dbo.customers WHERE id > 10;")
            ),
            "SELECT [sluice_override].[id], [sluice_override].[first_name] FROM \
             (SELECT first_name, id FROM dbo.customers WHERE id > 10) AS [sluice_override]"
        );
    }
}
