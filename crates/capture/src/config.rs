//! The `sluice capture` configuration, loaded in two stages like `sluice run`'s
//! (`sluice::config`): raw structs refusing unknown fields, then validation reporting
//! every problem with its path (`capture.snapshot_mode`).
//!
//! ```toml
//! [capture]
//! connection = "server=tcp:127.0.0.1,1433;database=testDB;user=sa;password=...;TrustServerCertificate=true"
//! topic_prefix = "server1"                 # Debezium's topic.prefix
//! tables = ["dbo.customers", "dbo.orders"]
//!
//! [kafka]
//! offsets_topic = "sluice.capture.offsets"
//! properties = { "bootstrap.servers" = "127.0.0.1:9092" }
//! ```

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use sluice_core::admin::RawAdmin;
use sluice_core::settings::{ConfigError, Problem, parse_duration};

use crate::sqlserver::options;
use crate::sqlserver::plan::VanishedPolicy;
use crate::sqlserver::types::DecimalMode;
use crate::{CaptureSettings, GapPolicy, SnapshotMode};

/// A validated `sluice capture` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// The ADO.NET connection string.
    pub connection: String,
    pub settings: CaptureSettings,
    /// `database.names`: the databases captured, each as its own capture (empty: the
    /// connection string's database, `settings.events.database`).
    pub database_names: Vec<String>,
    /// librdkafka producer properties, verbatim.
    pub kafka: Vec<(String, String)>,
    pub offsets_topic: String,
    /// Events and offsets in one Kafka transaction (exactly-once); `false` for brokers
    /// without transactions (at-least-once).
    pub transactions: bool,
    /// Where the admin HTTP server (`/health`, `/ready`, `/metrics` with the snapshot
    /// progress) listens.
    pub admin_listen: Option<std::net::SocketAddr>,
}

impl CaptureConfig {
    /// The data topics capture writes, one per named table and database
    /// (`<topic_prefix>.<database>.<schema>.<table>`); tables the include and exclude
    /// lists choose are known only once connected.
    pub fn topics(&self) -> Vec<String> {
        let events = &self.settings.events;
        self.databases()
            .iter()
            .flat_map(|database| {
                self.settings.tables.iter().map(move |table| {
                    super::envelope::topic_name(&format!("{}.{database}.{table}", events.prefix))
                })
            })
            .collect()
    }

    /// The databases captured: `database_names`, else the one database.
    pub fn databases(&self) -> Vec<String> {
        if self.database_names.is_empty() {
            vec![self.settings.events.database.clone()]
        } else {
            self.database_names.clone()
        }
    }

    /// The configuration of one of [`Self::databases`]: its connection string names
    /// it, and so do its topics, `source.db` and offsets.
    pub fn for_database(&self, database: &str) -> CaptureConfig {
        let mut config = self.clone();
        config.connection = with_database(&self.connection, database);
        config.settings.events.database = database.to_owned();
        config.database_names = Vec::new();
        config
    }
}

/// A `sluice capture` file whose `[capture]` table is a `C`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigOf<C> {
    capture: C,
    kafka: Option<RawKafka>,
    #[serde(default)]
    admin: RawAdmin,
}

type RawConfig = RawConfigOf<RawAnyCapture>;

/// The `[capture]` table, in a `sluice capture` file or embedded in `sluice run`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// `"sqlserver"` (the default; see [`RawAnyCapture`]).
    #[serde(rename = "type")]
    _kind: Option<String>,
    connection: Option<String>,
    // Debezium's dotted names are accepted for the settings that take the same value
    // (`"topic.prefix" = "server1"`), so a connector's properties can be pasted.
    #[serde(alias = "topic.prefix")]
    topic_prefix: Option<String>,
    database: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(alias = "snapshot.mode")]
    snapshot_mode: Option<String>,
    #[serde(alias = "decimal.handling.mode")]
    decimal_handling_mode: Option<String>,
    schemas_enable: Option<bool>,
    #[serde(alias = "tombstones.on.delete")]
    tombstones_on_delete: Option<bool>,
    #[serde(alias = "skipped.operations")]
    skipped_operations: Option<String>,
    #[serde(alias = "table.include.list")]
    table_include_list: Option<String>,
    #[serde(alias = "table.exclude.list")]
    table_exclude_list: Option<String>,
    #[serde(alias = "column.include.list")]
    column_include_list: Option<String>,
    #[serde(alias = "column.exclude.list")]
    column_exclude_list: Option<String>,
    /// `[[capture.column_masks]]` (Debezium's `column.mask.with.N.chars` and
    /// `column.mask.hash.*`, whose names carry values, so no alias: `sluice capture
    /// convert` writes these).
    #[serde(default)]
    column_masks: Vec<crate::sqlserver::options::RawMask>,
    #[serde(alias = "snapshot.isolation.mode")]
    snapshot_isolation_mode: Option<String>,
    /// `"schema.table" = "SELECT ..."` (Debezium's `snapshot.select.statement.overrides`).
    #[serde(default)]
    snapshot_select_overrides: toml::Table,
    #[serde(alias = "time.precision.mode")]
    time_precision_mode: Option<String>,
    #[serde(alias = "binary.handling.mode")]
    binary_handling_mode: Option<String>,
    #[serde(alias = "database.names")]
    database_names: Option<String>,
    #[serde(alias = "message.key.columns")]
    message_key_columns: Option<String>,
    #[serde(alias = "provide.transaction.metadata")]
    provide_transaction_metadata: Option<bool>,
    #[serde(alias = "include.schema.changes")]
    include_schema_changes: Option<bool>,
    heartbeat_interval: Option<String>,
    poll_interval: Option<String>,
    #[serde(alias = "max.iteration.transactions")]
    max_transactions_per_pass: Option<i64>,
    batch_size: Option<i64>,
    snapshot_progress_rows: Option<i64>,
    on_cleanup_gap: Option<String>,
    on_instance_vanished: Option<String>,
    #[serde(alias = "event.processing.failure.handling.mode")]
    event_processing_failure_handling_mode: Option<String>,
    source_version: Option<String>,
    /// Where capture writes (`[capture.kafka]`); in a `sluice capture` file `[kafka]`
    /// says the same.
    kafka: Option<RawKafka>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKafka {
    offsets_topic: Option<String>,
    transactions: Option<bool>,
    #[serde(default)]
    properties: toml::Table,
}

/// `[capture]` of either database, chosen by its `type`: `"sqlserver"` (the default, so
/// configurations written before PostgreSQL keep working) or `"postgres"`. Each kind's
/// table refuses the other's keys.
#[derive(Debug)]
pub enum RawAnyCapture {
    SqlServer(Box<RawCapture>),
    Postgres(Box<super::postgres::config::RawPostgres>),
}

impl<'de> Deserialize<'de> for RawAnyCapture {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let kind = match table.remove("type") {
            None => "sqlserver".to_owned(),
            Some(toml::Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "type: expected a string (\"sqlserver\" or \"postgres\"), found {other}"
                )));
            }
        };
        let table = toml::Value::Table(table);
        match kind.as_str() {
            "sqlserver" => RawCapture::deserialize(table)
                .map(|c| RawAnyCapture::SqlServer(Box::new(c)))
                .map_err(|e| D::Error::custom(e.message())),
            "postgres" | "postgresql" => super::postgres::config::RawPostgres::deserialize(table)
                .map(|c| RawAnyCapture::Postgres(Box::new(c)))
                .map_err(|e| D::Error::custom(e.message())),
            other => Err(D::Error::custom(format!(
                "unknown capture type {other:?} (expected \"sqlserver\" or \"postgres\")"
            ))),
        }
    }
}

/// A validated `[capture]` of either database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureKind {
    SqlServer(CaptureConfig),
    Postgres(super::postgres::config::PgCaptureConfig),
}

impl CaptureKind {
    /// The data topics capture writes.
    pub fn topics(&self) -> Vec<String> {
        match self {
            CaptureKind::SqlServer(c) => c.topics(),
            CaptureKind::Postgres(c) => c.topics(),
        }
    }

    /// Where `sluice capture`'s admin server listens.
    pub fn admin_listen(&self) -> Option<std::net::SocketAddr> {
        match self {
            CaptureKind::SqlServer(c) => c.admin_listen,
            CaptureKind::Postgres(c) => c.admin_listen,
        }
    }
}

/// Loads and validates the file at `path` (either database).
pub fn load_any(path: &Path) -> Result<CaptureKind, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse_any(&text, &file)
}

/// Loads and validates a SQL Server capture file at `path`.
pub fn load(path: &Path) -> Result<CaptureConfig, ConfigError> {
    let file = path.display().to_string();
    sql_server_only(load_any(path)?, &file)
}

/// Parses SQL Server capture configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<CaptureConfig, ConfigError> {
    sql_server_only(parse_any(text, file)?, file)
}

fn sql_server_only(config: CaptureKind, file: &str) -> Result<CaptureConfig, ConfigError> {
    match config {
        CaptureKind::SqlServer(config) => Ok(config),
        CaptureKind::Postgres(_) => Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems: vec![Problem {
                path: "capture.type".into(),
                message: "a SQL Server capture is expected here".into(),
            }],
        }),
    }
}

/// Parses configuration text of either database; `file` names it in errors.
pub fn parse_any(text: &str, file: &str) -> Result<CaptureKind, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax {
        file: file.to_owned(),
        reason: e.to_string().trim_end().to_owned(),
    };
    // The kind first, then the file parsed as that kind's table, so an error points at
    // its key (going through [`RawAnyCapture`] would point at `[capture]`).
    let table: toml::Table = toml::from_str(text).map_err(syntax)?;
    let kind = table
        .get("capture")
        .and_then(|c| c.get("type"))
        .and_then(toml::Value::as_str);
    let raw: RawConfig = match kind {
        None | Some("sqlserver") => {
            let raw: RawConfigOf<RawCapture> = toml::from_str(text).map_err(syntax)?;
            RawConfigOf {
                capture: RawAnyCapture::SqlServer(Box::new(raw.capture)),
                kafka: raw.kafka,
                admin: raw.admin,
            }
        }
        Some("postgres" | "postgresql") => {
            let raw: RawConfigOf<super::postgres::config::RawPostgres> =
                toml::from_str(text).map_err(syntax)?;
            RawConfigOf {
                capture: RawAnyCapture::Postgres(Box::new(raw.capture)),
                kafka: raw.kafka,
                admin: raw.admin,
            }
        }
        Some(_) => toml::from_str(text).map_err(syntax)?,
    };
    let mut problems = Vec::new();
    let config = validate(raw, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        })
    }
}

pub(crate) fn add(problems: &mut Vec<Problem>, path: &str, message: impl Into<String>) {
    problems.push(Problem {
        path: path.to_owned(),
        message: message.into(),
    });
}

/// `connection` with its `database=` (or `initial catalog=`) set to `database`.
fn with_database(connection: &str, database: &str) -> String {
    let mut parts: Vec<String> = connection
        .split(';')
        .filter(|part| {
            let key = part.split_once('=').map_or("", |(k, _)| k.trim());
            !matches!(
                key.to_ascii_lowercase().as_str(),
                "database" | "initial catalog"
            )
        })
        .filter(|part| !part.trim().is_empty())
        .map(str::to_owned)
        .collect();
    parts.push(format!("database={database}"));
    parts.join(";")
}

/// The `database=` of an ADO.NET connection string.
fn database_of(connection: &str) -> Option<String> {
    connection.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        matches!(
            key.trim().to_ascii_lowercase().as_str(),
            "database" | "initial catalog"
        )
        .then(|| value.trim().to_owned())
    })
}

/// `capture.topic_prefix` and `capture.tables`, checked alike for every database: the
/// prefix starts every topic name, each table is named `schema.table`.
pub(crate) fn check_prefix_and_tables(
    prefix: &str,
    tables: &[String],
    none_is_all: bool,
    problems: &mut Vec<Problem>,
) {
    if !is_name(prefix) {
        add(
            problems,
            "capture.topic_prefix",
            format!(
                "{prefix:?} must be letters, digits, '_', '-' or '.' (it starts every topic name)"
            ),
        );
    }
    if tables.is_empty() && !none_is_all {
        add(
            problems,
            "capture.tables",
            "list at least one table as \"schema.table\"",
        );
    }
    for (i, table) in tables.iter().enumerate() {
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            add(
                problems,
                &format!("capture.tables[{i}]"),
                format!("{table:?} is not \"schema.table\""),
            );
        }
    }
}

pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(crate) fn count(
    value: Option<i64>,
    path: &str,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
    problems: &mut Vec<Problem>,
) -> i64 {
    match value {
        None => default,
        Some(n) if range.contains(&n) => n,
        Some(n) => {
            add(
                problems,
                path,
                format!("{n} is out of range ({} to {})", range.start(), range.end()),
            );
            default
        }
    }
}

pub(crate) fn duration(
    value: Option<&str>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Duration> {
    let text = value?;
    match parse_duration(text) {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            add(
                problems,
                path,
                format!("{text:?} is not a positive duration; use ms, s or m (e.g. \"500ms\")"),
            );
            None
        }
    }
}

fn validate(raw: RawConfig, problems: &mut Vec<Problem>) -> CaptureKind {
    let mut config = match raw.capture {
        RawAnyCapture::SqlServer(capture) => {
            CaptureKind::SqlServer(validate_sql_server(*capture, raw.kafka, problems))
        }
        RawAnyCapture::Postgres(mut capture) => {
            let kafka = one_kafka(raw.kafka, capture.take_kafka(), problems);
            CaptureKind::Postgres(super::postgres::config::validate(
                *capture,
                kafka,
                &[],
                problems,
            ))
        }
    };
    let admin_listen = raw
        .admin
        .validate("127.0.0.1:9465")
        .unwrap_or_else(|problem| {
            problems.push(problem);
            None
        });
    match &mut config {
        CaptureKind::SqlServer(c) => c.admin_listen = admin_listen,
        CaptureKind::Postgres(c) => c.admin_listen = admin_listen,
    }
    config
}

/// `[kafka]` or `[capture.kafka]` (one of them), and the path it was found at.
fn one_kafka(
    top: Option<RawKafka>,
    nested: Option<RawKafka>,
    problems: &mut Vec<Problem>,
) -> (RawKafka, &'static str) {
    match (top, nested) {
        (Some(kafka), Some(_)) => {
            add(
                problems,
                "capture.kafka",
                "set either [kafka] or [capture.kafka], not both",
            );
            (kafka, "kafka")
        }
        (Some(kafka), None) => (kafka, "kafka"),
        (None, Some(kafka)) => (kafka, "capture.kafka"),
        // Reported as `kafka.properties: missing "bootstrap.servers"`.
        (None, None) => (RawKafka::default(), "kafka"),
    }
}

fn validate_sql_server(
    mut capture: RawCapture,
    top_kafka: Option<RawKafka>,
    problems: &mut Vec<Problem>,
) -> CaptureConfig {
    let kafka = one_kafka(top_kafka, capture.kafka.take(), problems);
    validate_capture(capture, kafka, &[], problems)
}

/// Producer properties that `[capture]` in `sluice run` takes from the run's Kafka
/// source when `[capture.kafka]` does not set them: where the cluster is and how to
/// authenticate (consumer-only properties such as `group.id` stay behind).
fn inherited(key: &str) -> bool {
    key == "bootstrap.servers"
        || key == "client.dns.lookup"
        || ["security.", "sasl.", "ssl."]
            .iter()
            .any(|prefix| key.starts_with(prefix))
}

/// Validates `sluice run`'s `[capture]` table of either database: `source` is the run's
/// Kafka source properties, which supply the cluster when `[capture.kafka]` leaves it out.
pub fn validate_embedded_any(
    raw: RawAnyCapture,
    source: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> CaptureKind {
    match raw {
        RawAnyCapture::SqlServer(raw) => {
            CaptureKind::SqlServer(validate_embedded(*raw, source, problems))
        }
        RawAnyCapture::Postgres(mut raw) => {
            let kafka = raw.take_kafka().unwrap_or_default();
            CaptureKind::Postgres(super::postgres::config::validate(
                *raw,
                (kafka, "capture.kafka"),
                source,
                problems,
            ))
        }
    }
}

/// Validates `sluice run`'s SQL Server `[capture]` table: `source` is the run's Kafka
/// source properties, which supply the cluster when `[capture.kafka]` leaves it out.
pub fn validate_embedded(
    mut raw: RawCapture,
    source: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> CaptureConfig {
    let kafka = raw.kafka.take().unwrap_or_default();
    validate_capture(raw, (kafka, "capture.kafka"), source, problems)
}

/// `kafka` is the Kafka table and the path it was found at; `source` supplies
/// properties it does not set (see [`inherited`]).
fn validate_capture(
    c: RawCapture,
    (k, kafka_path): (RawKafka, &str),
    source: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> CaptureConfig {
    let connection = c.connection.unwrap_or_default();
    if connection.is_empty() {
        add(
            problems,
            "capture.connection",
            "missing (an ADO.NET connection string: \"server=tcp:host,1433;database=...;user=...;password=...\")",
        );
    } else if !cfg!(feature = "kerberos") && {
        let lower = connection.to_ascii_lowercase();
        lower.contains("integrated security") || lower.contains("integratedsecurity")
    } {
        add(
            problems,
            "capture.connection",
            "integrated security (Kerberos) needs sluice built with `--features kerberos` (tiberius with GSSAPI); or use a SQL login (user=...;password=...)",
        );
    }
    let database_names = options::database_names(c.database_names.as_deref(), problems);
    if !database_names.is_empty() && c.database.is_some() {
        add(
            problems,
            "capture.database_names",
            "set database or database_names, not both",
        );
    }
    let database = match (c.database, database_of(&connection)) {
        _ if !database_names.is_empty() => database_names[0].clone(),
        (Some(db), Some(in_connection)) if db != in_connection => {
            add(
                problems,
                "capture.database",
                format!("{db:?} differs from the connection string's database {in_connection:?}"),
            );
            db
        }
        (Some(db), _) | (None, Some(db)) => db,
        (None, None) => {
            if !connection.is_empty() {
                add(
                    problems,
                    "capture.database",
                    "missing: set it, or database=... in the connection string",
                );
            }
            String::new()
        }
    };
    let prefix = c.topic_prefix.unwrap_or_default();
    // No table named: every CDC-enabled table the lists keep (all of them without
    // lists), as Debezium.
    check_prefix_and_tables(&prefix, &c.tables, true, problems);
    let mut settings = CaptureSettings::new(&prefix, &database, c.tables);
    settings.snapshot = match c.snapshot_mode.as_deref() {
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
    settings.events.decimal_mode = match c.decimal_handling_mode.as_deref() {
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
    settings.on_gap = match c.on_cleanup_gap.as_deref() {
        None | Some("fail") => GapPolicy::Fail,
        Some("snapshot") => GapPolicy::Snapshot,
        Some(other) => {
            add(
                problems,
                "capture.on_cleanup_gap",
                format!("unknown policy {other:?} (expected \"fail\" or \"snapshot\")"),
            );
            GapPolicy::Fail
        }
    };
    settings.on_vanished = match c.on_instance_vanished.as_deref() {
        None | Some("drop") => VanishedPolicy::Drop,
        Some("fail") => VanishedPolicy::Fail,
        Some(other) => {
            add(
                problems,
                "capture.on_instance_vanished",
                format!("unknown policy {other:?} (expected \"drop\" or \"fail\")"),
            );
            VanishedPolicy::Drop
        }
    };
    settings.on_event_failure = crate::failures::FailureMode::parse(
        c.event_processing_failure_handling_mode.as_deref(),
        "capture.event_processing_failure_handling_mode",
        problems,
    );
    settings.events.schemas = c.schemas_enable.unwrap_or(false);
    settings.tombstones = c.tombstones_on_delete.unwrap_or(true);
    settings.table_filter = options::filter(
        c.table_include_list.as_deref(),
        c.table_exclude_list.as_deref(),
        "table",
        problems,
    );
    settings.columns.filter = options::filter(
        c.column_include_list.as_deref(),
        c.column_exclude_list.as_deref(),
        "column",
        problems,
    );
    settings.columns.masks = options::masks(c.column_masks, problems);
    settings.snapshot_isolation =
        options::snapshot_isolation(c.snapshot_isolation_mode.as_deref(), problems);
    settings.snapshot_overrides = options::select_overrides(c.snapshot_select_overrides, problems);
    settings.events.time_precision =
        options::time_precision(c.time_precision_mode.as_deref(), problems);
    settings.events.binary_mode = options::binary_mode(c.binary_handling_mode.as_deref(), problems);
    if let Some(keys) = c.message_key_columns.as_deref() {
        match crate::sqlserver::columns::ColumnSettings::parse_keys(keys) {
            Ok(keys) => settings.columns.keys = keys,
            Err(message) => add(problems, "capture.message_key_columns", message),
        }
    }
    // Debezium's default is "t" (truncates), which SQL Server's CDC never reports.
    for op in c
        .skipped_operations
        .as_deref()
        .unwrap_or("t")
        .split(',')
        .map(str::trim)
    {
        match op {
            "none" | "t" | "" => {}
            "c" | "u" | "d" => settings.skipped_operations.extend(op.chars()),
            other => add(
                problems,
                "capture.skipped_operations",
                format!("unknown operation {other:?} (expected a list of c, u, d, t, or \"none\")"),
            ),
        }
    }
    settings.transaction_metadata = c.provide_transaction_metadata.unwrap_or(false);
    settings.schema_changes = c.include_schema_changes.unwrap_or(true);
    if let Some(version) = c.source_version {
        settings.events.version = version;
    }
    settings.heartbeat = duration(
        c.heartbeat_interval.as_deref(),
        "capture.heartbeat_interval",
        problems,
    );
    if let Some(poll) = duration(
        c.poll_interval.as_deref(),
        "capture.poll_interval",
        problems,
    ) {
        settings.poll_interval = poll;
    }
    settings.max_transactions = count(
        c.max_transactions_per_pass,
        "capture.max_transactions_per_pass",
        // 0: unbounded, as Debezium's `max.iteration.transactions = 0`.
        0..=100_000,
        500,
        problems,
    ) as u32;
    settings.batch_size = count(
        c.batch_size,
        "capture.batch_size",
        1..=1_000_000,
        10_000,
        problems,
    ) as usize;
    settings.snapshot_progress_rows = count(
        c.snapshot_progress_rows,
        "capture.snapshot_progress_rows",
        1..=100_000_000,
        10_000,
        problems,
    ) as usize;

    let (kafka, offsets_topic, transactions) = validate_kafka(k, kafka_path, source, problems);
    CaptureConfig {
        connection,
        settings,
        database_names,
        kafka,
        offsets_topic,
        transactions,
        admin_listen: None,
    }
}

/// The Kafka table of either source's capture: the producer properties (with those
/// [`inherited`] from `source`), the offsets topic and whether to use transactions.
pub(crate) fn validate_kafka(
    k: RawKafka,
    kafka_path: &str,
    source: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> (Vec<(String, String)>, String, bool) {
    let mut kafka = Vec::new();
    for (key, value) in &k.properties {
        match value {
            toml::Value::String(s) => kafka.push((key.clone(), s.clone())),
            toml::Value::Integer(n) => kafka.push((key.clone(), n.to_string())),
            toml::Value::Boolean(b) => kafka.push((key.clone(), b.to_string())),
            _ => add(
                problems,
                &format!("{kafka_path}.properties.{key}"),
                "must be a string, integer or boolean",
            ),
        }
    }
    for (key, value) in source {
        if inherited(key) && !kafka.iter().any(|(k, _)| k == key) {
            kafka.push((key.clone(), value.clone()));
        }
    }
    if !kafka.iter().any(|(key, _)| key == "bootstrap.servers") {
        add(
            problems,
            &format!("{kafka_path}.properties"),
            "missing \"bootstrap.servers\"",
        );
    }
    if kafka.iter().any(|(key, _)| key == "transactional.id") {
        add(
            problems,
            &format!("{kafka_path}.properties.transactional.id"),
            "set by sluice (sluice-capture.<topic_prefix>.<database>, so a second capture of the database is fenced)",
        );
    }
    let offsets_topic = k
        .offsets_topic
        .unwrap_or_else(|| "sluice.capture.offsets".to_owned());
    if !is_name(&offsets_topic) {
        add(
            problems,
            &format!("{kafka_path}.offsets_topic"),
            format!("{offsets_topic:?} is not a valid topic name"),
        );
    }
    (kafka, offsets_topic, k.transactions.unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_takes_debezium_defaults() {
        let config = parse(
            r#"
            [capture]
            connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
            topic_prefix = "server1"
            tables = ["dbo.customers"]
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect("valid");
        assert_eq!(config.settings.events.database, "testDB");
        assert_eq!(config.settings.snapshot, SnapshotMode::Initial);
        assert_eq!(config.settings.max_transactions, 500);
        assert!(config.transactions && config.settings.tombstones);
        assert_eq!(config.offsets_topic, "sluice.capture.offsets");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let error = parse(
            r#"
            [capture]
            connection = "server=tcp:db,1433;user=sa;password=x"
            topic_prefix = "server 1"
            tables = ["customers"]
            snapshot_mode = "sometimes"
            decimal_handling_mode = "float"
            poll_interval = "soon"
            max_transactions_per_pass = -1
            [kafka]
            properties = { "transactional.id" = "x" }
            "#,
            "c.toml",
        )
        .expect_err("invalid")
        .to_string();
        for path in [
            "capture.database",
            "capture.topic_prefix",
            "capture.tables[0]",
            "capture.snapshot_mode",
            "capture.decimal_handling_mode",
            "capture.poll_interval",
            "capture.max_transactions_per_pass",
            "kafka.properties:",
            "kafka.properties.transactional.id",
        ] {
            assert!(error.contains(&format!("  - {path}")), "{path} in {error}");
        }
    }

    /// Debezium's dotted names are aliases of the keys taking the same values.
    #[test]
    fn debeziums_dotted_names_are_accepted() {
        let config = parse(
            r#"
            [capture]
            connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
            "topic.prefix" = "server1"
            tables = ["dbo.customers"]
            "snapshot.mode" = "no_data"
            "tombstones.on.delete" = false
            "max.iteration.transactions" = 0
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect("valid");
        assert_eq!(config.settings.events.prefix, "server1");
        assert_eq!(config.settings.snapshot, SnapshotMode::NoData);
        assert!(!config.settings.tombstones);
        assert_eq!(config.settings.max_transactions, 0);
    }

    /// The settings users moving from Debezium look for, by their dotted names too.
    #[test]
    fn debeziums_table_column_mask_and_mode_settings() {
        let config = parse(
            r#"
            [capture]
            connection = "server=tcp:db,1433;user=sa;password=x"
            topic_prefix = "server1"
            "table.include.list" = 'dbo\.cust.*,sales\..*'
            "column.exclude.list" = 'dbo\.customers\.ssn'
            "snapshot.isolation.mode" = "exclusive"
            "time.precision.mode" = "connect"
            "binary.handling.mode" = "base64-url-safe"
            "database.names" = "sales,hr"
            [[capture.column_masks]]
            columns = 'dbo\.customers\.email'
            chars = 8
            [[capture.column_masks]]
            columns = 'dbo\.customers\.phone'
            hash = "SHA-512"
            salt = "pepper"
            hash_version = 2
            [capture.snapshot_select_overrides]
            "dbo.customers" = "SELECT * FROM dbo.customers WHERE region = 'EU'"
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect("valid");
        let settings = &config.settings;
        assert!(settings.tables.is_empty(), "the lists choose at connect");
        assert!(settings.table_filter.keeps("DBO.Customers"));
        assert!(settings.table_filter.keeps("sales.orders"));
        assert!(!settings.table_filter.keeps("hr.people"));
        assert!(!settings.columns.filter.keeps("dbo.customers.ssn"));
        assert!(settings.columns.filter.keeps("dbo.customers.email"));
        assert_eq!(settings.columns.masks.len(), 2);
        assert_eq!(settings.columns.masks[0].mask, crate::masks::Mask::Chars(8));
        assert_eq!(
            settings.columns.masks[1].mask,
            crate::masks::Mask::Hash {
                algorithm: crate::masks::HashAlgorithm::Sha512,
                salt: "pepper".into(),
                v2: true
            }
        );
        assert_eq!(
            settings.snapshot_isolation,
            crate::sqlserver::tables::SnapshotIsolation::Exclusive
        );
        assert_eq!(settings.snapshot_overrides.len(), 1);
        assert_eq!(
            settings.events.time_precision,
            crate::sqlserver::types::TimePrecision::Connect
        );
        assert_eq!(
            settings.events.binary_mode,
            crate::sqlserver::types::BinaryMode::Base64UrlSafe
        );
        assert_eq!(config.databases(), ["sales", "hr"]);
        let hr = config.for_database("hr");
        assert_eq!(hr.settings.events.database, "hr");
        assert_eq!(
            hr.connection,
            "server=tcp:db,1433;user=sa;password=x;database=hr"
        );
        assert_eq!(hr.databases(), ["hr"]);
    }

    #[test]
    fn bad_lists_masks_and_modes_are_reported_with_their_paths() {
        let error = parse(
            r#"
            [capture]
            connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
            topic_prefix = "server1"
            table_include_list = "dbo.(customers"
            column_include_list = "a"
            column_exclude_list = "b"
            snapshot_isolation_mode = "serializable"
            time_precision_mode = "adaptive_time_microseconds"
            binary_handling_mode = "base32"
            database = "testDB"
            database_names = "a;b,hr,HR"
            [[capture.column_masks]]
            columns = "dbo.customers.email"
            hash = "whirlpool"
            salt = "x"
            [[capture.column_masks]]
            columns = "dbo.customers.phone"
            hash = "SHA-256"
            [[capture.column_masks]]
            columns = "dbo.customers.ssn"
            [capture.snapshot_select_overrides]
            "customers" = "SELECT 1"
            "dbo.orders" = "DELETE FROM dbo.orders"
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect_err("invalid")
        .to_string();
        for path in [
            "capture.table_include_list: \"dbo.(customers\" is not a regular expression",
            "capture.column_exclude_list: set column_include_list or column_exclude_list, not both",
            "capture.snapshot_isolation_mode",
            "capture.time_precision_mode",
            "capture.binary_handling_mode",
            "capture.database_names: \"a;b\"",
            "capture.database_names: set database or database_names",
            "capture.database_names: \"HR\" is listed twice",
            "capture.column_masks[0].hash: unknown algorithm \"whirlpool\"",
            "capture.column_masks[1].salt: missing",
            "capture.column_masks[2]: set either chars",
            "capture.snapshot_select_overrides.customers",
            "capture.snapshot_select_overrides.dbo.orders: must be a SELECT",
        ] {
            assert!(error.contains(&format!("  - {path}")), "{path} in {error}");
        }
    }

    #[test]
    fn embedded_capture_takes_the_cluster_and_credentials_of_the_run_source() {
        let raw: RawCapture = toml::from_str(
            r#"
            connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
            topic_prefix = "server1"
            tables = ["dbo.customers"]
            [kafka.properties]
            "linger.ms" = 5
            "#,
        )
        .expect("raw");
        let source: Vec<(String, String)> = [
            ("bootstrap.servers", "k:9092"),
            ("group.id", "sluice"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut problems = Vec::new();
        let config = validate_embedded(raw, &source, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let keys: Vec<&str> = config.kafka.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "linger.ms",
                "bootstrap.servers",
                "security.protocol",
                "sasl.mechanism"
            ]
        );
        assert_eq!(config.topics(), ["server1.testDB.dbo.customers"]);
        assert_eq!(
            config.admin_listen, None,
            "the run's admin server serves it"
        );
    }

    /// With the `kerberos` feature the connection string may ask for integrated security
    /// (`./scripts/test.sh` runs this with the feature on).
    #[cfg(feature = "kerberos")]
    #[test]
    fn kerberos_builds_accept_integrated_security() {
        let config = parse(
            r#"
            [capture]
            connection = "server=tcp:db.example.com,1433;database=testDB;Integrated Security=true"
            topic_prefix = "server1"
            tables = ["dbo.customers"]
            [kafka]
            properties = { "bootstrap.servers" = "k:9092" }
            "#,
            "c.toml",
        )
        .expect("integrated security is accepted");
        assert!(
            tiberius::Config::from_ado_string(&config.connection).is_ok(),
            "tiberius takes the connection string"
        );
    }
}
