//! sluice-capture: change-data capture into Kafka, as Debezium's connectors do it, without
//! a Kafka Connect cluster (`sluice capture`, or `[capture]` in `sluice run`).
//!
//! The capture core every database shares:
//! - [`envelope`]: Debezium's values, schemas and envelopes, byte for byte;
//! - [`offsets`]: the offset, its encoding and the resume skip rule; [`writer`]: events
//!   and the offset record in one Kafka transaction (through sluice-kafka);
//! - [`config`]: the `sluice capture` configuration, [`convert`]: a Debezium connector's
//!   JSON configuration turned into it;
//! - [`run`]: snapshot, then stream, until shut down.
//!
//! [`sqlserver`] is the SQL Server source (CDC tables), [`postgres`] the PostgreSQL one
//! (logical replication). The scripted SQL Server fake is compiled for this crate's tests
//! only; the fixtures (`dbo.customers` and its rows) also for the end-to-end tests, with
//! the `testing` feature.
//!
//! It depends on sluice-core and sluice-kafka. It must NOT depend on the WebAssembly
//! runtime or the pipeline: what it writes is read back by `sluice run` through Kafka.

pub mod config;
pub mod convert;
pub mod envelope;
pub mod failures;
pub mod filters;
pub mod masks;
pub mod offsets;
pub mod postgres;
pub mod sqlserver;
pub mod writer;

#[cfg(any(test, feature = "testing"))]
pub mod fixtures;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use envelope::{EventSettings, RowError};
use offsets::Offset;
use sluice_core::admin::AdminServer;
use sluice_core::telemetry::Telemetry;
use sqlserver::lsn::Lsn;
use sqlserver::tables::{self, TablesError};
use sqlserver::{columns, plan, snapshot, stream, types};

/// A record for Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A source's stored position, as its offset record's value (each database has its own:
/// SQL Server's [`Offset`], PostgreSQL's [`postgres::offsets::PgOffset`]).
pub trait OffsetValue: Send {
    /// The offset record's value, as Debezium writes it.
    fn encode(&self) -> Vec<u8>;
}

/// Where events and offsets go: both in one atomic step (a Kafka transaction). `O` is
/// the source's offset (SQL Server's by default).
pub trait EventWriter<O: OffsetValue = Offset>: Send {
    /// Publishes `records` and stores `offset`, atomically where the writer can. Returns
    /// once Kafka acknowledged both (with transactions: once the transaction committed).
    fn commit(
        &mut self,
        records: Vec<OutRecord>,
        offset: O,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// As [`EventWriter::commit`], but returns once the part is handed over, with what
    /// resolves when Kafka acknowledged it: several parts can be in flight. Parts are
    /// acknowledged in the order they were dispatched, and a part's offset is stored
    /// only after every earlier part is, so the acknowledged offsets never pass an
    /// unacknowledged event. The default commits at once (one part at a time).
    fn dispatch(
        &mut self,
        records: Vec<OutRecord>,
        offset: O,
    ) -> impl Future<Output = Result<Acknowledged, WriteError>> + Send {
        async move {
            self.commit(records, offset).await?;
            Ok(Box::pin(std::future::ready(Ok(()))) as Acknowledged)
        }
    }
}

/// A dispatched part's acknowledgement ([`EventWriter::dispatch`]).
pub type Acknowledged =
    std::pin::Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'static>>;

/// Batches dispatched to a writer and not yet acknowledged, at most `limit` of them: the
/// snapshots hand a batch to Kafka and read the next while it is acknowledged.
pub(crate) struct InFlight {
    parts: std::collections::VecDeque<Acknowledged>,
    limit: usize,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> InFlight {
        InFlight {
            parts: std::collections::VecDeque::new(),
            limit: limit.max(1),
        }
    }

    /// Dispatches `records` with `offset`, first waiting for the oldest batches while
    /// `limit` are in flight.
    pub(crate) async fn dispatch<O: OffsetValue, W: EventWriter<O>>(
        &mut self,
        writer: &mut W,
        records: Vec<OutRecord>,
        offset: O,
    ) -> Result<(), WriteError> {
        while self.parts.len() >= self.limit {
            if let Some(part) = self.parts.pop_front() {
                part.await?;
            }
        }
        self.parts
            .push_back(writer.dispatch(records, offset).await?);
        Ok(())
    }

    /// Waits for every batch in flight.
    pub(crate) async fn settle(&mut self) -> Result<(), WriteError> {
        while let Some(part) = self.parts.pop_front() {
            part.await?;
        }
        Ok(())
    }
}

/// A failed publication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(
        "fenced: another `sluice capture` of this database took over transactional.id {0}; this one stops"
    )]
    Fenced(String),
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Snapshot when there is no offset (or the last snapshot did not finish), then stream.
    #[default]
    Initial,
    /// No data snapshot: stream from the current max LSN.
    NoData,
    /// Snapshot at every start.
    Always,
    /// Like `initial`, and also when the stored offset is gone from the change tables.
    WhenNeeded,
}

/// What to do when the stored offset is older than the change tables' minimum LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GapPolicy {
    #[default]
    Fail,
    Snapshot,
}

/// How capture runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    pub events: EventSettings,
    /// Captured tables, `schema.table`: those `capture.tables` names; once connected,
    /// those [`Self::table_filter`] adds (see [`filters::TableSelection`]).
    pub tables: Vec<String>,
    /// `table.include.list` / `table.exclude.list`, applied to the database's
    /// CDC-enabled tables at start.
    pub table_filter: filters::Filter,
    /// `column.include.list` / `column.exclude.list`, `column.mask.*` and
    /// `message.key.columns`.
    pub columns: columns::ColumnSettings,
    /// `snapshot.isolation.mode`.
    pub snapshot_isolation: tables::SnapshotIsolation,
    /// `snapshot.select.statement.overrides`: `(schema.table, SELECT ...)`.
    pub snapshot_overrides: Vec<(String, String)>,
    pub snapshot: SnapshotMode,
    pub on_gap: GapPolicy,
    /// What to do when a capture instance being read disappears.
    pub on_vanished: plan::VanishedPolicy,
    /// `event.processing.failure.handling.mode`: what becomes of a change that cannot be
    /// mapped (stop, or leave it out).
    pub on_event_failure: failures::FailureMode,
    /// Transactions per pass (Debezium's `max.iteration.transactions`, default 500; 0:
    /// unbounded, every pass reads up to the max LSN).
    pub max_transactions: u32,
    /// Events per Kafka transaction (a pass or snapshot page larger than this is
    /// committed in parts; the skip rule makes a restart between parts exact). With
    /// transaction metadata, parts end only at SQL transaction boundaries.
    pub batch_size: usize,
    /// Snapshot rows between two progress reports.
    pub snapshot_progress_rows: usize,
    /// A tombstone after every delete.
    pub tombstones: bool,
    /// `skipped.operations`: change events not published, by op (`c`, `u`, `d`; a
    /// primary-key update is a `u`, as Debezium judges it).
    pub skipped_operations: Vec<char>,
    /// `provide.transaction.metadata`.
    pub transaction_metadata: bool,
    /// `include.schema.changes`: schema-change events on `<prefix>` (a CREATE per table
    /// at the snapshot, an ALTER at each capture-instance switch).
    pub schema_changes: bool,
    /// `heartbeat.interval.ms` (`None`: off).
    pub heartbeat: Option<Duration>,
    /// How long to wait when a pass found nothing.
    pub poll_interval: Duration,
}

impl CaptureSettings {
    /// Defaults for `prefix` and `database`.
    pub fn new(prefix: &str, database: &str, tables: Vec<String>) -> Self {
        Self {
            events: EventSettings {
                prefix: prefix.to_owned(),
                database: database.to_owned(),
                version: envelope::DEBEZIUM_VERSION.to_owned(),
                decimal_mode: types::DecimalMode::Precise,
                time_precision: Default::default(),
                binary_mode: Default::default(),
                schemas: false,
            },
            tables,
            table_filter: filters::Filter::All,
            columns: columns::ColumnSettings::default(),
            snapshot_isolation: tables::SnapshotIsolation::Snapshot,
            snapshot_overrides: Vec::new(),
            snapshot: SnapshotMode::Initial,
            on_gap: GapPolicy::Fail,
            on_vanished: plan::VanishedPolicy::Drop,
            on_event_failure: failures::FailureMode::Fail,
            max_transactions: 500,
            batch_size: 10_000,
            snapshot_progress_rows: 10_000,
            tombstones: true,
            skipped_operations: Vec::new(),
            transaction_metadata: false,
            schema_changes: true,
            heartbeat: None,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Why capture stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}; {hint}", hint = failures::HINT)]
    Row(#[from] RowError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(
        "{table}: the update before-image (__$operation 3) at LSN {lsn} is not followed by its after-image (4)"
    )]
    UnpairedUpdate { table: String, lsn: Lsn },
    #[error(
        "the stored offset (commit LSN {offset}) is older than the oldest change left in {table} (min LSN {min}): CDC cleanup removed changes that were never published. Set `on_cleanup_gap = \"snapshot\"` (or snapshot.mode = \"when_needed\") to re-snapshot, or remove the offset"
    )]
    CleanupGap {
        table: String,
        offset: Lsn,
        min: Lsn,
    },
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    /// The admin server could not start (its message names the address).
    #[error("{0}")]
    Admin(String),
    #[error("the capture task failed: {0}")]
    Task(String),
}

/// The processing clock: epoch µs (the envelope's `ts_*`). Injected so tests are exact.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    })
}

/// Runs capture until `shutdown` resolves: snapshot as `settings.snapshot` says given
/// `stored` (the offset read back from the offsets topic), then passes. Finishes the pass
/// in flight before it returns.
pub async fn run<T: tables::CdcTables, W: EventWriter>(
    tables: &mut T,
    writer: &mut W,
    settings: &CaptureSettings,
    stored: Option<Offset>,
    clock: Clock,
    progress: &snapshot::Progress,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    let mut streamer = stream::Streamer::new(settings.clone(), clock.clone());
    let mut start = stored.clone();
    // Any offset streaming would continue from (a completed snapshot's too).
    let resumes = match stored {
        Some(Offset::Stream(position, _)) => Some(position.commit),
        Some(Offset::Snapshot {
            commit,
            completed: true,
        }) if settings.snapshot != SnapshotMode::Always => Some(commit),
        _ => None,
    };
    if let Some(commit) = resumes
        && let Err(gap) = streamer.check_gap(tables, commit).await
    {
        let resnapshot =
            settings.on_gap == GapPolicy::Snapshot || settings.snapshot == SnapshotMode::WhenNeeded;
        if !resnapshot {
            return Err(gap);
        }
        tracing::warn!(error = %gap, "re-snapshotting: the stored offset is gone from the change tables");
        start = None;
    }
    let needs_snapshot = match (settings.snapshot, &start) {
        (SnapshotMode::Always, _) => true,
        (
            _,
            Some(Offset::Snapshot {
                completed: false, ..
            }),
        ) => settings.snapshot != SnapshotMode::NoData,
        (_, Some(_)) => false,
        (SnapshotMode::NoData, None) => false,
        (_, None) => true,
    };
    let position = if needs_snapshot {
        snapshot::run(tables, writer, settings, &clock, progress).await?
    } else if let Some(offset) = start {
        offset
    } else {
        let max = tables
            .max_lsn()
            .await?
            .ok_or_else(|| TablesError::AgentNotRunning {
                database: settings.events.database.clone(),
            })?;
        let offset = Offset::Snapshot {
            commit: max,
            completed: true,
        };
        // No data, but the schema snapshot all the same (as Debezium's `no_data`).
        let schemas = snapshot::table_schemas(tables, settings, max).await?;
        let ts_ms = tables.now_ms().await?;
        let records = snapshot::schema_snapshot(settings, &schemas, max, ts_ms, &clock, true);
        writer.commit(records, offset.clone()).await?;
        offset
    };
    streamer.resume_from(position);
    tokio::pin!(shutdown);
    loop {
        // Between passes only: a pass in flight is finished and committed first.
        if futures::FutureExt::now_or_never(shutdown.as_mut()).is_some() {
            return Ok(());
        }
        let skipped = streamer.events_skipped();
        let read = streamer.pass(tables, writer).await;
        progress.set_instances_dropped(streamer.dropped_instances());
        progress.add_events_skipped(streamer.events_skipped() - skipped);
        if read? {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

/// `sluice capture` of SQL Server: [`run_config_any`].
pub async fn run_config(
    config: &config::CaptureConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    run_config_any(&config::CaptureKind::SqlServer(config.clone()), shutdown).await
}

/// Capture of either database as part of a process with its own telemetry.
pub async fn run_embedded_any(
    config: &config::CaptureKind,
    telemetry: &Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    match config {
        config::CaptureKind::SqlServer(config) => run_embedded(config, telemetry, shutdown).await,
        config::CaptureKind::Postgres(config) => {
            Ok(postgres::run_embedded(config, telemetry, shutdown).await?)
        }
    }
}

/// `sluice capture`: connects to the database and Kafka as `config` says, serves the
/// admin endpoints if configured, and runs [`run_embedded_any`] until `shutdown`.
pub async fn run_config_any(
    config: &config::CaptureKind,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    let telemetry = Arc::new(Telemetry::default());
    let admin = AdminServer::start(config.admin_listen(), &telemetry)
        .await
        .map_err(|e| CaptureError::Admin(e.to_string()))?;
    telemetry.set_ready(true);
    let result = run_embedded_any(config, &telemetry, shutdown).await;
    telemetry.set_ready(false);
    if let Some(admin) = admin {
        admin.stop().await;
    }
    result
}

/// Capture as part of a process that has its own telemetry (`sluice run` with a
/// `[capture]` table, or [`run_config`]): connects to SQL Server, then [`run_on`].
pub async fn run_embedded(
    config: &config::CaptureConfig,
    telemetry: &Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    if config.database_names.is_empty() {
        return run_database(config, None, telemetry, shutdown).await;
    }
    // `database.names`: one capture per database, side by side, each with its own
    // connection, offsets and producer; the first to fail stops them all. One metrics
    // collector serves them all, each series labelled with its database.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let databases: Vec<(String, Arc<snapshot::Progress>)> = config
        .databases()
        .into_iter()
        .map(|database| (database, Arc::default()))
        .collect();
    {
        let databases = databases.clone();
        telemetry.add_collector(move || {
            let of: Vec<(Option<&str>, &snapshot::Progress)> = databases
                .iter()
                .map(|(db, progress)| (Some(db.as_str()), progress.as_ref()))
                .collect();
            snapshot::Progress::prometheus_of(&of)
        });
    }
    let captures = databases.into_iter().map(|(database, progress)| {
        let config = config.for_database(&database);
        let shutdown = shutdown.clone();
        async move {
            run_database(&config, Some(progress), telemetry, shutdown)
                .await
                .inspect_err(
                    |error| tracing::error!(%database, %error, "capture of the database stopped"),
                )
        }
    });
    futures::future::try_join_all(captures).await.map(|_| ())
}

/// Capture of one database: connects to SQL Server, chooses the tables, then
/// [`run_on_with`] (with `progress` where the caller collects it, else its own).
async fn run_database(
    config: &config::CaptureConfig,
    progress: Option<Arc<snapshot::Progress>>,
    telemetry: &Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    let selection = filters::TableSelection {
        named: config.settings.tables.clone(),
        filter: config.settings.table_filter.clone(),
    };
    let mut tables = sqlserver::SqlServerTables::connect(&config.connection, &selection).await?;
    tracing::info!(database = %tables.database(), tables = ?tables.tables(), "connected to SQL Server");
    let mut config = with_server_database(config, tables.database());
    config.settings.tables = tables.tables().to_vec();
    match progress {
        Some(progress) => run_on_with(&mut tables, &config, &progress, shutdown).await,
        None => run_on(&mut tables, &config, telemetry, shutdown).await,
    }
}

/// `config` with the database named as the server names it (`DB_NAME()`), as Debezium
/// names it in topics, `source.db` and offsets: SQL Server compares names without case,
/// so `database=testdb` in a connection string reaches `testDB`.
fn with_server_database(config: &config::CaptureConfig, server: &str) -> config::CaptureConfig {
    let mut config = config.clone();
    if !server.is_empty() && config.settings.events.database != server {
        tracing::warn!(configured = %config.settings.events.database, server, "the server names the database differently: topics, source.db and offsets use the server's name");
        config.settings.events.database = server.to_owned();
    }
    config
}

/// Capture from `tables` into Kafka as `config` says: reads the stored offset back from
/// the offsets topic, reports snapshot progress on `telemetry`, and runs [`run`] until
/// `shutdown`. [`run_embedded`] gives it SQL Server's tables; tests give it scripted ones.
pub async fn run_on<T: tables::CdcTables>(
    tables: &mut T,
    config: &config::CaptureConfig,
    telemetry: &Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    let progress = std::sync::Arc::new(snapshot::Progress::default());
    {
        let progress = std::sync::Arc::clone(&progress);
        telemetry.add_collector(move || progress.prometheus());
    }
    run_on_with(tables, config, &progress, shutdown).await
}

/// [`run_on`] reporting into `progress`, which the caller serves.
pub async fn run_on_with<T: tables::CdcTables>(
    tables: &mut T,
    config: &config::CaptureConfig,
    progress: &snapshot::Progress,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaptureError> {
    let settings = &config.settings;
    let (kafka, topic, prefix, database, transactions) = (
        config.kafka.clone(),
        config.offsets_topic.clone(),
        settings.events.prefix.clone(),
        settings.events.database.clone(),
        config.transactions,
    );
    let stored = writer::read_offset(&kafka, &topic, &prefix, &database).await?;
    tracing::info!(offset = ?stored, offsets_topic = %topic, "stored offset");
    let mut writer = tokio::task::spawn_blocking(move || {
        writer::KafkaWriter::new(&kafka, &topic, &prefix, &database, transactions)
    })
    .await
    .map_err(|e| WriteError::Kafka(format!("creating the producer: {e}")))??;
    run(
        tables,
        &mut writer,
        settings,
        stored,
        system_clock(),
        progress,
        shutdown,
    )
    .await
}
