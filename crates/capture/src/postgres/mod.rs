//! PostgreSQL capture by logical replication (`pgoutput`), into the same Debezium events,
//! offsets and Kafka writer as SQL Server's capture.
//!
//! - [`protocol`]: the replication connection; [`pgoutput`]: its messages;
//! - [`catalog`]: preconditions, publication, table descriptions (tokio-postgres);
//! - [`snapshot`]: `COPY` under the slot's exported snapshot; [`stream`]: the stream;
//! - [`types`], [`envelope`]: Debezium's PostgreSQL values, schemas and events;
//! - [`offsets`]: Debezium's PostgreSQL offset and the resume rule; [`config`].
//!
//! The hand-off: a new slot is created with `EXPORT_SNAPSHOT`; the snapshot reads the
//! tables as of the slot's consistent point, and streaming starts there. When the slot
//! exists already and a snapshot is wanted (`always`, or no offset), a temporary slot
//! gives the consistent point, and transactions committed before it are dropped from the
//! stream: no gap, no overlap either way.

pub mod catalog;
pub mod config;
pub mod envelope;
pub mod offsets;
pub mod pgoutput;
pub mod protocol;
pub mod snapshot;
pub mod spill;
pub mod stream;
pub mod tls;
pub mod types;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::sqlserver::snapshot::Progress;
use crate::{Clock, EventWriter, OffsetValue, OutRecord, SnapshotMode, WriteError};

use catalog::Catalog;
use config::PgCaptureConfig;
use offsets::{Lsn, PgOffset, ResumeRule, StreamPosition, lsn_text, parse_lsn};
use protocol::{Endpoint, ProtocolError, ReplicationConnection, quote_ident};

/// Why PostgreSQL capture stopped; each precondition's error says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    #[error(
        "wal_level is {0:?}; logical decoding needs \"logical\": ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL"
    )]
    WalLevel(String),
    #[error(
        "role {0:?} lacks the REPLICATION privilege logical replication needs: ALTER ROLE {0} REPLICATION (or connect as a role that has it)"
    )]
    NoReplicationPrivilege(String),
    #[error(
        "no free replication slot ({used} of max_replication_slots = {max} in use): drop an unused one (SELECT pg_drop_replication_slot('name')) or raise max_replication_slots and restart PostgreSQL"
    )]
    NoFreeSlot { used: i32, max: i32 },
    #[error(
        "replication slot {slot:?} is in use by process {pid}: another capture (or pg_recvlogical) is reading it; stop that one, or set capture.slot_name to another slot"
    )]
    SlotInUse { slot: String, pid: i32 },
    #[error(
        "replication slot {slot:?} uses the {plugin} plugin, not pgoutput: set capture.slot_name to another slot, or drop this one"
    )]
    SlotPlugin { slot: String, plugin: String },
    #[error(
        "publication {0:?} does not exist and publication_autocreate_mode is \"disabled\": CREATE PUBLICATION {0} FOR TABLE <the captured tables>, or set publication_autocreate_mode = \"filtered\""
    )]
    NoPublication(String),
    #[error(
        "publication {publication:?} does not include {table}: ALTER PUBLICATION {publication} ADD TABLE {table}, or set publication_autocreate_mode = \"filtered\" to let sluice add it"
    )]
    PublicationMissingTable { publication: String, table: String },
    #[error(
        "cannot create or extend publication {publication:?}: {reason} (create it as a superuser or the tables' owner, or set publication_name to an existing one)"
    )]
    CreatePublication { publication: String, reason: String },
    #[error(
        "{0} has no primary key and REPLICA IDENTITY DEFAULT (or NOTHING): its updates and deletes would carry no key. Add a primary key, or ALTER TABLE {0} REPLICA IDENTITY FULL (or USING INDEX <a unique index>)"
    )]
    NoKey(String),
    #[error("table {0} does not exist (capture.tables lists \"schema.table\")")]
    NoTable(String),
    #[error(
        "the stored offset (LSN {lsn}) cannot be resumed: replication slot {slot:?} {why}, so changes after the offset are lost. Set snapshot_mode = \"when_needed\" to re-snapshot, or remove the offset"
    )]
    SlotLost {
        slot: String,
        lsn: String,
        why: String,
    },
    #[error("a change for relation {0} came before its description (Relation message)")]
    UnknownRelation(u32),
    #[error("{what}: {reason}")]
    Query { what: String, reason: String },
    #[error("replication connection: {0}")]
    Replication(#[from] ProtocolError),
    #[error(transparent)]
    Decode(#[from] pgoutput::DecodeError),
    #[error("{0}; {hint}", hint = crate::failures::HINT)]
    Row(#[from] envelope::PgRowError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("capture.connection: {0}")]
    Connection(String),
    #[error(
        "no table of the database is kept by capture.schema_include_list / schema_exclude_list / table_include_list / table_exclude_list (patterns over schema names and \"schema.table\", whole names, any case)"
    )]
    NoTableSelected,
    #[error(
        "keeping a streamed in-progress transaction on disk: {0} (set capture.streaming_spill_dir to a writable directory with room for the largest transaction, or capture.streaming = false to have the server hold it until its commit)"
    )]
    Spill(#[from] spill::SpillError),
}

/// Maps the server's refusals of replication commands to the errors that say what to do.
fn replication_error(error: ProtocolError, slot: &str) -> PgError {
    if let ProtocolError::Server { code, message } = &error {
        match code.as_str() {
            "55006" => {
                let pid = message
                    .rsplit(' ')
                    .next()
                    .and_then(|p| p.trim_end_matches('.').parse().ok())
                    .unwrap_or(0);
                return PgError::SlotInUse {
                    slot: slot.to_owned(),
                    pid,
                };
            }
            "53400" => return PgError::NoFreeSlot { used: -1, max: -1 },
            "28000" | "42501" if message.contains("replication") => {
                return PgError::NoReplicationPrivilege(message.clone());
            }
            _ if message.contains("wal_level") => return PgError::WalLevel(message.clone()),
            _ => {}
        }
    }
    PgError::Replication(error)
}

/// A writer that drops the events (the streaming benchmark's sink) and counts them.
#[derive(Debug, Default)]
pub struct NullWriter {
    pub events: u64,
    pub last: Option<PgOffset>,
}

impl EventWriter<PgOffset> for NullWriter {
    async fn commit(
        &mut self,
        records: Vec<OutRecord>,
        offset: PgOffset,
    ) -> Result<(), WriteError> {
        self.events += records.len() as u64;
        self.last = Some(offset);
        Ok(())
    }
}

/// Creates a slot (`temporary`: dropped when `connection` closes) with an exported
/// snapshot; returns its consistent point and the snapshot's name.
async fn create_slot(
    connection: &mut ReplicationConnection,
    slot: &str,
    temporary: bool,
) -> Result<(Lsn, String), PgError> {
    let sql = format!(
        "CREATE_REPLICATION_SLOT {} {}LOGICAL pgoutput EXPORT_SNAPSHOT",
        quote_ident(slot),
        if temporary { "TEMPORARY " } else { "" }
    );
    let rows = connection
        .simple_query(&sql)
        .await
        .map_err(|e| replication_error(e, slot))?;
    let row = rows.first().ok_or_else(|| {
        PgError::Replication(ProtocolError::Unexpected(
            "CREATE_REPLICATION_SLOT returned no row".into(),
        ))
    })?;
    let point = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|t| parse_lsn(&t))
        .ok_or_else(|| {
            PgError::Replication(ProtocolError::Unexpected("no consistent point".into()))
        })?;
    let name = row.get(2).cloned().flatten().unwrap_or_default();
    tracing::info!(slot, temporary, consistent_point = %lsn_text(point), "replication slot created");
    Ok((point, name))
}

/// Runs capture until `shutdown`: checks, snapshot as `snapshot_mode` says given
/// `stored` (the offset read back from Kafka), then streaming.
pub async fn run<W: EventWriter<PgOffset>>(
    config: &PgCaptureConfig,
    writer: &mut W,
    stored: Option<PgOffset>,
    clock: Clock,
    progress: &Progress,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PgError> {
    let settings = &config.settings;
    let (rest, tls) = tls::split(&config.connection).map_err(PgError::Connection)?;
    let parsed: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Connection(e.to_string()))?;
    let mut endpoint = Endpoint::from_config(&parsed).map_err(PgError::Connection)?;
    endpoint.tls = tls;
    let mut catalog = Catalog::connect(&config.connection).await?;
    // The schema and table lists: the tables they keep, now.
    let resolved;
    let settings = if !settings.lists_choose_tables() {
        settings
    } else {
        // The named tables the lists keep, in their order, then the database's others
        // that the lists keep.
        let mut tables: Vec<String> = settings
            .tables
            .iter()
            .filter(|t| settings.lists_keep(t))
            .cloned()
            .collect();
        for table in catalog.tables().await? {
            if settings.lists_keep(&table) && !tables.contains(&table) {
                tables.push(table);
            }
        }
        if tables.is_empty() {
            return Err(PgError::NoTableSelected);
        }
        tracing::info!(tables = ?tables, "tables selected by the table lists");
        resolved = config::PgSettings {
            tables,
            ..settings.clone()
        };
        &resolved
    };
    catalog.modes = settings.modes;
    catalog.columns = settings.columns.clone();
    let slot_state = catalog.prepare(settings).await?;
    let mut replication = ReplicationConnection::connect(&endpoint)
        .await
        .map_err(|e| replication_error(e, &settings.slot))?;
    let mut snapshot = match (settings.snapshot, stored) {
        (SnapshotMode::Always, _) => true,
        (SnapshotMode::NoData, _) => false,
        (_, None) => true,
        (_, Some(PgOffset::Snapshot { completed, .. })) => !completed,
        (_, Some(PgOffset::Stream(_))) => false,
    };
    // A stored offset the slot cannot serve: the slot is gone, or moved past it.
    if let Some(offset) = stored
        && !snapshot
    {
        let why = match &slot_state {
            None => Some("does not exist (dropped?)".to_owned()),
            Some(state) => state
                .confirmed_flush
                .filter(|&confirmed| confirmed > offset.lsn())
                .map(|confirmed| {
                    format!(
                        "was confirmed up to {} by another reader",
                        lsn_text(confirmed)
                    )
                }),
        };
        if let Some(why) = why {
            let lost = PgError::SlotLost {
                slot: settings.slot.clone(),
                lsn: lsn_text(offset.lsn()),
                why,
            };
            if settings.snapshot != SnapshotMode::WhenNeeded {
                return Err(lost);
            }
            tracing::warn!(error = %lost, "re-snapshotting (snapshot_mode = when_needed)");
            snapshot = true;
        }
    }
    let (start, rule) = if slot_state.is_none() {
        let (point, name) = create_slot(&mut replication, &settings.slot, false).await?;
        if snapshot {
            snapshot::run(
                &mut catalog,
                writer,
                settings,
                &name,
                point,
                &clock,
                progress,
            )
            .await?;
        } else {
            writer
                .commit(
                    Vec::new(),
                    PgOffset::Snapshot {
                        lsn: point,
                        tx_id: 0,
                        completed: true,
                    },
                )
                .await?;
        }
        (
            point,
            ResumeRule {
                done: 0,
                snapshot_point: point,
                partial: None,
            },
        )
    } else if snapshot {
        // The slot exists: a temporary one gives the snapshot its consistent point.
        catalog.check_free_slot().await?;
        let mut temporary = ReplicationConnection::connect(&endpoint)
            .await
            .map_err(|e| replication_error(e, &settings.slot))?;
        let temp_name: String = format!("{}_snapshot_{}", settings.slot, std::process::id())
            .chars()
            .take(63)
            .collect();
        let (point, name) = create_slot(&mut temporary, &temp_name, true).await?;
        snapshot::run(
            &mut catalog,
            writer,
            settings,
            &name,
            point,
            &clock,
            progress,
        )
        .await?;
        drop(temporary);
        (
            0,
            ResumeRule {
                done: 0,
                snapshot_point: point,
                partial: None,
            },
        )
    } else {
        match stored {
            Some(PgOffset::Stream(p)) => (
                p.lsn,
                ResumeRule {
                    done: p.lsn,
                    snapshot_point: 0,
                    partial: p.partial,
                },
            ),
            Some(PgOffset::Snapshot { lsn, .. }) => (
                lsn,
                ResumeRule {
                    done: 0,
                    snapshot_point: lsn,
                    partial: None,
                },
            ),
            None => (
                0,
                ResumeRule {
                    done: 0,
                    snapshot_point: 0,
                    partial: None,
                },
            ),
        }
    };
    // Protocol 2 streams large in-progress transactions (PostgreSQL 14 and later): they
    // reach sluice while they run, kept on its disk instead of the server's.
    let spills = if settings.streaming && catalog.server_version().await? >= 140_000 {
        let parent = settings
            .spill_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        Some(spill::Spills::new(&parent)?)
    } else {
        None
    };
    replication
        .start_replication(
            &settings.slot,
            start,
            &settings.publication,
            spills.is_some(),
        )
        .await
        .map_err(|e| replication_error(e, &settings.slot))?;
    tracing::info!(
        slot = %settings.slot,
        from = %lsn_text(start),
        protocol = if spills.is_some() { 2 } else { 1 },
        "streaming"
    );
    let position = StreamPosition {
        lsn: start.max(rule.done),
        ..StreamPosition::default()
    };
    stream::Streamer::new(
        settings,
        &mut catalog,
        clock,
        position,
        rule,
        spills,
        progress,
    )
    .run(&mut replication, writer, shutdown)
    .await
}

/// `sluice capture` / `sluice run`'s `[capture]` for PostgreSQL: reads the stored offset
/// from the offsets topic, reports snapshot progress and the slot's lag on `telemetry`,
/// and runs [`run`] into Kafka until `shutdown`.
pub async fn run_embedded(
    config: &PgCaptureConfig,
    telemetry: &Arc<sluice_core::telemetry::Telemetry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PgError> {
    let events = &config.settings.events;
    let (kafka, topic, prefix, database, transactions) = (
        config.kafka.clone(),
        config.offsets_topic.clone(),
        events.prefix.clone(),
        events.database.clone(),
        config.transactions,
    );
    let stored = crate::writer::read_offset_value(&kafka, &topic, &prefix, &database)
        .await?
        .map(|value| PgOffset::decode(&value).map_err(WriteError::Kafka))
        .transpose()?;
    tracing::info!(offset = ?stored.as_ref().map(|o| String::from_utf8_lossy(&o.encode()).into_owned()), offsets_topic = %topic, "stored offset");
    let mut writer = tokio::task::spawn_blocking(move || {
        crate::writer::KafkaWriter::new(&kafka, &topic, &prefix, &database, transactions)
    })
    .await
    .map_err(|e| WriteError::Kafka(format!("creating the producer: {e}")))??;
    let progress = Arc::new(Progress::default());
    {
        let progress = Arc::clone(&progress);
        telemetry.add_collector(move || progress.prometheus());
    }
    let lag = Arc::new(AtomicI64::new(-1));
    {
        let (lag, slot) = (Arc::clone(&lag), config.settings.slot.clone());
        telemetry.add_collector(move || {
            let bytes = lag.load(Ordering::Relaxed);
            if bytes < 0 {
                return String::new();
            }
            format!(
                "# HELP sluice_capture_postgres_slot_lag_bytes WAL bytes between the server's position and the slot's confirmed_flush_lsn.\n# TYPE sluice_capture_postgres_slot_lag_bytes gauge\nsluice_capture_postgres_slot_lag_bytes{{slot=\"{slot}\"}} {bytes}\n"
            )
        });
    }
    let watcher = tokio::spawn(watch_lag(
        config.connection.clone(),
        config.settings.slot.clone(),
        lag,
    ));
    let result = run(
        config,
        &mut writer,
        stored,
        crate::system_clock(),
        &progress,
        shutdown,
    )
    .await;
    watcher.abort();
    result
}

/// Reads the slot's lag every few seconds (on a connection of its own, off the stream's
/// path).
async fn watch_lag(connection: String, slot: String, lag: Arc<AtomicI64>) {
    /// Often enough for a dashboard, rare enough to cost the server nothing.
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let Ok(catalog) = Catalog::connect(&connection).await else {
        return;
    };
    loop {
        match catalog.slot_lag(&slot).await {
            Ok(Some(bytes)) => lag.store(bytes, Ordering::Relaxed),
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "reading the slot's lag"),
        }
        tokio::time::sleep(EVERY).await;
    }
}
