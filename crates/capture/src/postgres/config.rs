//! `[capture] type = "postgres"`: the PostgreSQL capture's configuration, in two stages
//! (a raw table refusing unknown keys, then validation reporting every problem with its
//! path). Names follow Debezium's PostgreSQL connector (`slot.name` → `slot_name`).
//!
//! ```toml
//! [capture]
//! type = "postgres"
//! connection = "host=127.0.0.1 port=5432 user=sluice password=... dbname=inventory"
//! topic_prefix = "dbserver1"
//! tables = ["public.customers", "public.orders"]
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::SnapshotMode;
use crate::config::{RawKafka, add, check_prefix_and_tables, count, duration, validate_kafka};
use crate::envelope::{DEBEZIUM_VERSION, EventSettings};
use crate::sqlserver::types::DecimalMode;

use super::types::{PgModes, PgTimePrecision};
use crate::sqlserver::columns::ColumnSettings;
use crate::sqlserver::options;
use sluice_core::settings::Problem;

/// The `[capture]` table with `type = "postgres"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// `"postgres"` (see [`crate::config::RawAnyCapture`]).
    #[serde(rename = "type")]
    _kind: Option<String>,
    connection: Option<String>,
    topic_prefix: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
    slot_name: Option<String>,
    publication_name: Option<String>,
    publication_autocreate_mode: Option<String>,
    snapshot_mode: Option<String>,
    decimal_handling_mode: Option<String>,
    schemas_enable: Option<bool>,
    tombstones_on_delete: Option<bool>,
    provide_transaction_metadata: Option<bool>,
    heartbeat_interval: Option<String>,
    batch_size: Option<i64>,
    flush_interval: Option<String>,
    skipped_operations: Option<Vec<String>>,
    source_version: Option<String>,
    streaming: Option<bool>,
    streaming_spill_dir: Option<String>,
    max_batches_in_flight: Option<i64>,
    event_processing_failure_handling_mode: Option<String>,
    time_precision_mode: Option<String>,
    binary_handling_mode: Option<String>,
    interval_handling_mode: Option<String>,
    hstore_handling_mode: Option<String>,
    money_fraction_digits: Option<i64>,
    table_include_list: Option<String>,
    table_exclude_list: Option<String>,
    schema_include_list: Option<String>,
    schema_exclude_list: Option<String>,
    column_include_list: Option<String>,
    column_exclude_list: Option<String>,
    /// `[[capture.column_masks]]`, as for SQL Server.
    #[serde(default)]
    column_masks: Vec<crate::sqlserver::options::RawMask>,
    message_key_columns: Option<String>,
    kafka: Option<RawKafka>,
}

impl RawPostgres {
    pub(crate) fn take_kafka(&mut self) -> Option<RawKafka> {
        self.kafka.take()
    }
}

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    /// Create it `FOR ALL TABLES` when missing (Debezium's default).
    AllTables,
    /// Create it for the captured tables when missing, and add those it lacks.
    Filtered,
    /// Use it as it is; a captured table it lacks is an error.
    Disabled,
}

/// How PostgreSQL capture runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    pub events: EventSettings,
    /// Captured tables, `schema.table`: those `capture.tables` names and, once connected,
    /// those [`Self::table_filter`] keeps.
    pub tables: Vec<String>,
    /// `table.include.list` / `table.exclude.list`: applied to the database's tables at
    /// start, and to tables created later as the stream first describes them.
    pub table_filter: crate::filters::Filter,
    /// `schema.include.list` / `schema.exclude.list`, over the tables' schemas, applied
    /// with [`Self::table_filter`].
    pub schema_filter: crate::filters::Filter,
    pub slot: String,
    pub publication: String,
    pub publication_mode: PublicationMode,
    pub snapshot: SnapshotMode,
    pub tombstones: bool,
    pub transaction_metadata: bool,
    pub heartbeat: Option<Duration>,
    /// Events per Kafka commit (a larger transaction is committed in parts).
    pub batch_size: usize,
    /// How long events wait for more before they are committed.
    pub flush_interval: Duration,
    /// Truncates become `op: t` events (Debezium skips them by default:
    /// `skipped.operations=t`).
    pub truncates: bool,
    /// Protocol 2's streaming of in-progress transactions, where the server has it
    /// (PostgreSQL 14+): a large transaction reaches sluice while it runs and is kept on
    /// sluice's disk until its commit, instead of being spilled by the server and sent
    /// after it.
    pub streaming: bool,
    /// Where streamed transactions are kept (default: the system's temporary directory).
    pub spill_dir: Option<std::path::PathBuf>,
    /// Batches handed to Kafka and not yet acknowledged, at most (1: one at a time).
    pub parts_in_flight: usize,
    /// `event.processing.failure.handling.mode`: what becomes of a change that cannot
    /// be mapped (stop, or leave it out).
    pub on_event_failure: crate::failures::FailureMode,
    /// `time.precision.mode`, `binary.handling.mode`, `interval.handling.mode` and
    /// `hstore.handling.mode`.
    pub modes: PgModes,
    /// `column.include.list`/`column.exclude.list`, `column.mask.*` and
    /// `message.key.columns`.
    pub columns: ColumnSettings,
}

impl PgSettings {
    /// Whether tables are chosen by the schema and table lists (not only named).
    pub fn lists_choose_tables(&self) -> bool {
        !self.table_filter.is_all() || !self.schema_filter.is_all()
    }

    /// Whether the lists keep the table `schema.table`.
    pub fn lists_keep(&self, table: &str) -> bool {
        let schema = table.split_once('.').map_or(table, |(schema, _)| schema);
        self.schema_filter.keeps(schema) && self.table_filter.keeps(table)
    }
}

/// A validated PostgreSQL capture configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgCaptureConfig {
    /// A libpq connection string (`host=... user=... dbname=...` or a URL).
    pub connection: String,
    pub settings: PgSettings,
    pub kafka: Vec<(String, String)>,
    pub offsets_topic: String,
    pub transactions: bool,
    pub admin_listen: Option<std::net::SocketAddr>,
}

impl PgCaptureConfig {
    /// The data topics, one per table (`<topic_prefix>.<schema>.<table>`).
    pub fn topics(&self) -> Vec<String> {
        self.settings
            .tables
            .iter()
            .map(|table| format!("{}.{table}", self.settings.events.prefix))
            .collect()
    }
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Validates `raw`; `kafka` is the Kafka table and its path, `source` the run's Kafka
/// properties (for `sluice run`'s `[capture]`).
pub(crate) fn validate(
    c: RawPostgres,
    (k, kafka_path): (RawKafka, &str),
    source: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> PgCaptureConfig {
    let connection = c.connection.unwrap_or_default();
    let mut database = String::new();
    if connection.is_empty() {
        add(
            problems,
            "capture.connection",
            "missing (a libpq connection string: \"host=... port=5432 user=... password=... dbname=...\")",
        );
    } else {
        match super::tls::split(&connection).map(|(rest, _)| rest.parse::<tokio_postgres::Config>())
        {
            Err(e) => add(problems, "capture.connection", e),
            Ok(Err(e)) => add(
                problems,
                "capture.connection",
                format!("not a libpq connection string: {e}"),
            ),
            Ok(Ok(parsed)) => match super::protocol::Endpoint::from_config(&parsed) {
                Ok(endpoint) => database = endpoint.database,
                Err(e) => add(problems, "capture.connection", e),
            },
        }
    }
    let prefix = c.topic_prefix.unwrap_or_default();
    let table_filter = options::filter(
        c.table_include_list.as_deref(),
        c.table_exclude_list.as_deref(),
        "table",
        problems,
    );
    let schema_filter = options::filter(
        c.schema_include_list.as_deref(),
        c.schema_exclude_list.as_deref(),
        "schema",
        problems,
    );
    let listed = !table_filter.is_all() || !schema_filter.is_all();
    check_prefix_and_tables(&prefix, &c.tables, listed, problems);
    let mut names = |value: Option<String>, default: &str, path: &str| {
        let name = value.unwrap_or_else(|| default.to_owned());
        if !is_identifier(&name) {
            add(
                problems,
                path,
                format!(
                    "{name:?}: use lower-case letters, digits and '_' (at most 63), as PostgreSQL names slots"
                ),
            );
        }
        name
    };
    let slot = names(c.slot_name, "debezium", "capture.slot_name");
    let publication = names(
        c.publication_name,
        "dbz_publication",
        "capture.publication_name",
    );
    let publication_mode = match c.publication_autocreate_mode.as_deref() {
        None | Some("all_tables") => PublicationMode::AllTables,
        Some("filtered") => PublicationMode::Filtered,
        Some("disabled") => PublicationMode::Disabled,
        Some(other) => {
            add(
                problems,
                "capture.publication_autocreate_mode",
                format!(
                    "unknown mode {other:?} (expected \"all_tables\", \"filtered\" or \"disabled\")"
                ),
            );
            PublicationMode::AllTables
        }
    };
    let snapshot = match c.snapshot_mode.as_deref() {
        None | Some("initial") => SnapshotMode::Initial,
        Some("no_data") => SnapshotMode::NoData,
        Some("always") => SnapshotMode::Always,
        Some("when_needed") => SnapshotMode::WhenNeeded,
        Some(other) => {
            add(
                problems,
                "capture.snapshot_mode",
                format!(
                    "unknown mode {other:?} (expected \"initial\", \"no_data\", \"always\" or \"when_needed\")"
                ),
            );
            SnapshotMode::Initial
        }
    };
    let decimal_mode = match c.decimal_handling_mode.as_deref() {
        None | Some("precise") => DecimalMode::Precise,
        Some("double") => DecimalMode::Double,
        Some("string") => DecimalMode::String,
        Some(other) => {
            add(
                problems,
                "capture.decimal_handling_mode",
                format!("unknown mode {other:?} (expected \"precise\", \"double\" or \"string\")"),
            );
            DecimalMode::Precise
        }
    };
    let skipped = c.skipped_operations.unwrap_or_else(|| vec!["t".into()]);
    for (i, op) in skipped.iter().enumerate() {
        if !matches!(op.as_str(), "t" | "none") {
            add(
                problems,
                &format!("capture.skipped_operations[{i}]"),
                format!("{op:?}: sluice can skip \"t\" (truncates) or \"none\""),
            );
        }
    }
    let heartbeat = duration(
        c.heartbeat_interval.as_deref(),
        "capture.heartbeat_interval",
        problems,
    );
    let flush_interval = duration(
        c.flush_interval.as_deref(),
        "capture.flush_interval",
        problems,
    )
    .unwrap_or(Duration::from_millis(20));
    let batch_size = count(
        c.batch_size,
        "capture.batch_size",
        1..=1_000_000,
        10_000,
        problems,
    ) as usize;
    if let Some(dir) = &c.streaming_spill_dir
        && !std::path::Path::new(dir).is_dir()
    {
        add(
            problems,
            "capture.streaming_spill_dir",
            format!(
                "{dir:?} is not a directory (where streamed in-progress transactions are kept until their commit)"
            ),
        );
    }
    let parts_in_flight = count(
        c.max_batches_in_flight,
        "capture.max_batches_in_flight",
        1..=64,
        4,
        problems,
    ) as usize;
    let modes = PgModes {
        time: match c.time_precision_mode.as_deref() {
            None | Some("adaptive") => PgTimePrecision::Adaptive,
            Some("adaptive_time_microseconds") => PgTimePrecision::AdaptiveTimeMicroseconds,
            Some("connect") => PgTimePrecision::Connect,
            Some(other) => {
                add(
                    problems,
                    "capture.time_precision_mode",
                    format!(
                        "unknown mode {other:?} (expected \"adaptive\", \"adaptive_time_microseconds\" or \"connect\")"
                    ),
                );
                PgTimePrecision::Adaptive
            }
        },
        binary: crate::sqlserver::options::binary_mode(c.binary_handling_mode.as_deref(), problems),
        interval_iso: second_mode(
            c.interval_handling_mode.as_deref(),
            "capture.interval_handling_mode",
            ["numeric", "string"],
            problems,
        ),
        hstore_map: second_mode(
            c.hstore_handling_mode.as_deref(),
            "capture.hstore_handling_mode",
            ["json", "map"],
            problems,
        ),
        money_scale: count(
            c.money_fraction_digits,
            "capture.money_fraction_digits",
            0..=18,
            2,
            problems,
        ) as u32,
        // The database's, read once connected.
        ..PgModes::default()
    };
    let mut columns = ColumnSettings {
        filter: options::filter(
            c.column_include_list.as_deref(),
            c.column_exclude_list.as_deref(),
            "column",
            problems,
        ),
        masks: options::masks(c.column_masks, problems),
        keys: Vec::new(),
    };
    if let Some(keys) = c.message_key_columns.as_deref() {
        match ColumnSettings::parse_keys(keys) {
            Ok(keys) => columns.keys = keys,
            Err(message) => add(problems, "capture.message_key_columns", message),
        }
    }
    let on_event_failure = crate::failures::FailureMode::parse(
        c.event_processing_failure_handling_mode.as_deref(),
        "capture.event_processing_failure_handling_mode",
        problems,
    );
    let (kafka, offsets_topic, transactions) = validate_kafka(k, kafka_path, source, problems);
    PgCaptureConfig {
        connection,
        settings: PgSettings {
            events: EventSettings {
                prefix,
                database,
                version: c
                    .source_version
                    .unwrap_or_else(|| DEBEZIUM_VERSION.to_owned()),
                decimal_mode,
                time_precision: Default::default(),
                binary_mode: Default::default(),
                schemas: c.schemas_enable.unwrap_or(false),
            },
            tables: c.tables,
            table_filter,
            schema_filter,
            slot,
            publication,
            publication_mode,
            snapshot,
            tombstones: c.tombstones_on_delete.unwrap_or(true),
            transaction_metadata: c.provide_transaction_metadata.unwrap_or(false),
            heartbeat,
            batch_size,
            flush_interval,
            truncates: !skipped.iter().any(|op| op == "t"),
            streaming: c.streaming.unwrap_or(true),
            parts_in_flight,
            spill_dir: c.streaming_spill_dir.map(std::path::PathBuf::from),
            on_event_failure,
            modes,
            columns,
        },
        kafka,
        offsets_topic,
        transactions,
        admin_listen: None,
    }
}

/// Whether a two-valued mode (`[default, other]`) is set to its other value; a problem
/// at `path` for any third.
fn second_mode(
    raw: Option<&str>,
    path: &str,
    [default, other]: [&str; 2],
    problems: &mut Vec<Problem>,
) -> bool {
    match raw {
        None => false,
        Some(mode) if mode == default => false,
        Some(mode) if mode == other => true,
        Some(unknown) => {
            add(
                problems,
                path,
                format!("unknown mode {unknown:?} (expected {default:?} or {other:?})"),
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{CaptureKind, parse_any};

    #[test]
    fn a_minimal_postgres_config_takes_debezium_defaults() {
        let config = parse_any(
            r#"
            [capture]
            type = "postgres"
            connection = "host=127.0.0.1 port=5433 user=sluice dbname=inventory"
            topic_prefix = "dbserver1"
            tables = ["public.customers"]
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect("valid");
        let CaptureKind::Postgres(config) = config else {
            panic!("postgres")
        };
        assert_eq!(config.settings.slot, "debezium");
        assert_eq!(config.settings.publication, "dbz_publication");
        assert_eq!(config.settings.events.database, "inventory");
        assert!(
            !config.settings.truncates,
            "skipped.operations=t by default"
        );
        assert_eq!(config.topics(), ["dbserver1.public.customers"]);
        assert!(
            config.settings.streaming,
            "protocol 2 where the server has it"
        );
        assert_eq!(config.settings.spill_dir, None);
    }

    #[test]
    fn a_spill_directory_that_is_not_one_is_refused_by_name() {
        let error = parse_any(
            r#"
            [capture]
            type = "postgres"
            connection = "host=127.0.0.1 user=sluice dbname=inventory"
            topic_prefix = "dbserver1"
            tables = ["public.customers"]
            streaming_spill_dir = "/nonexistent/sluice-spill"
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect_err("no such directory")
        .to_string();
        assert!(
            error.contains("capture.streaming_spill_dir")
                && error.contains("/nonexistent/sluice-spill"),
            "{error}"
        );
    }

    #[test]
    fn without_a_type_it_is_sql_server_and_the_kinds_refuse_each_others_keys() {
        let sql_server = r#"
            [capture]
            connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
            topic_prefix = "server1"
            tables = ["dbo.customers"]
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#;
        assert!(matches!(
            parse_any(sql_server, "c.toml"),
            Ok(CaptureKind::SqlServer(_))
        ));
        let mixed = sql_server.replace("[capture]", "[capture]\ntype = \"postgres\"");
        let error = parse_any(&mixed, "c.toml")
            .expect_err("SQL Server keys")
            .to_string();
        assert!(
            error.contains("unknown field") || error.contains("capture.connection"),
            "{error}"
        );
        let unknown = sql_server.replace("[capture]", "[capture]\ntype = \"oracle\"");
        let error = parse_any(&unknown, "c.toml")
            .expect_err("oracle")
            .to_string();
        assert!(error.contains("unknown capture type \"oracle\""), "{error}");
    }
}
