//! `sluice capture convert <connector.json>`: a Debezium SQL Server connector's
//! configuration (the JSON posted to Kafka Connect, `{"name":...,"config":{...}}`, or the
//! bare `config` object) turned into the TOML `sluice capture` reads. What maps is
//! converted; every other property is listed in a comment at the end, so nothing is
//! dropped without a word.

use std::collections::BTreeMap;

use crate::masks::{HashAlgorithm, Mask};
use crate::sqlserver::options::RawMask;

/// A connector file that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("not a connector configuration: {0}")]
    Json(String),
    #[error(
        "{0} is not the SQL Server connector (connector.class must be io.debezium.connector.sqlserver.SqlServerConnector)"
    )]
    NotSqlServer(String),
    #[error("{key} = {value:?}: {reason}")]
    Unsupported {
        key: String,
        value: String,
        reason: String,
    },
}

/// Debezium properties that are the same setting under another name, same value.
const RENAMED: &[(&str, &str)] = &[
    ("topic.prefix", "topic_prefix"),
    ("snapshot.mode", "snapshot_mode"),
    ("decimal.handling.mode", "decimal_handling_mode"),
    ("tombstones.on.delete", "tombstones_on_delete"),
    ("skipped.operations", "skipped_operations"),
    ("table.include.list", "table_include_list"),
    ("table.exclude.list", "table_exclude_list"),
    ("column.include.list", "column_include_list"),
    ("column.exclude.list", "column_exclude_list"),
    ("snapshot.isolation.mode", "snapshot_isolation_mode"),
    ("time.precision.mode", "time_precision_mode"),
    ("binary.handling.mode", "binary_handling_mode"),
    ("message.key.columns", "message_key_columns"),
    (
        "provide.transaction.metadata",
        "provide_transaction_metadata",
    ),
    ("include.schema.changes", "include_schema_changes"),
    ("max.iteration.transactions", "max_transactions_per_pass"),
    (
        "event.processing.failure.handling.mode",
        "event_processing_failure_handling_mode",
    ),
];

/// Properties that are Kafka Connect's or the connector's plumbing, with no sluice
/// counterpart needed (sluice has no schema history topic: CDC tables carry the schema).
const PLUMBING: &[&str] = &[
    "name",
    "connector.class",
    "tasks.max",
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.names",
    "database.dbname",
    "snapshot.select.statement.overrides",
    "database.encrypt",
    "database.trustServerCertificate",
    "database.instance",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
    "schema.history.internal.kafka.bootstrap.servers",
    "schema.history.internal.kafka.topic",
    "heartbeat.interval.ms",
    "poll.interval.ms",
];

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Converts the connector configuration `json` into `sluice capture` TOML.
pub fn convert(json: &str) -> Result<String, ConvertError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ConvertError::Json(e.to_string()))?;
    let config = value.get("config").unwrap_or(&value);
    let config = config
        .as_object()
        .ok_or_else(|| ConvertError::Json("expected an object of properties".into()))?;
    // Kafka Connect takes every value as a string; JSON numbers and booleans as written.
    let props: BTreeMap<&str, String> = config
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.as_str(), text)
        })
        .collect();
    let get = |key: &str| props.get(key).map(String::as_str);
    let class = get("connector.class").unwrap_or("");
    if !class.is_empty() && class != "io.debezium.connector.sqlserver.SqlServerConnector" {
        return Err(ConvertError::NotSqlServer(class.to_owned()));
    }
    let unsupported = |key: &str, reason: &str| ConvertError::Unsupported {
        key: key.to_owned(),
        value: get(key).unwrap_or("").to_owned(),
        reason: reason.to_owned(),
    };
    // One database goes into the connection string; several are `database_names`.
    let (database, database_names) = match get("database.names").or(get("database.dbname")) {
        Some(names) if names.contains(',') => (String::new(), Some(names)),
        Some(name) => (name.trim().to_owned(), None),
        None => (String::new(), None),
    };
    let mut connection = format!(
        "server=tcp:{},{}",
        get("database.hostname").unwrap_or("localhost"),
        get("database.port").unwrap_or("1433")
    );
    for (key, part) in [("database.user", "user"), ("database.password", "password")] {
        if let Some(value) = get(key) {
            connection.push_str(&format!(";{part}={value}"));
        }
    }
    if !database.is_empty() {
        connection.push_str(&format!(";database={database}"));
    }
    if let Some(encrypt) = get("database.encrypt") {
        connection.push_str(&format!(";encrypt={encrypt}"));
    }
    if let Some(trust) = get("database.trustServerCertificate") {
        connection.push_str(&format!(";TrustServerCertificate={trust}"));
    }
    let mut out = String::from(
        "# Converted from a Debezium SQL Server connector by `sluice capture convert`.\n[capture]\n",
    );
    out.push_str(&format!("connection = {}\n", quoted(&connection)));
    if let Some(names) = database_names {
        out.push_str(&format!("database_names = {}\n", quoted(names)));
    }
    for (from, to) in RENAMED {
        if let Some(value) = get(from) {
            let literal = match *to {
                "tombstones_on_delete"
                | "provide_transaction_metadata"
                | "include_schema_changes" => value
                    .parse::<bool>()
                    .map(|b| b.to_string())
                    .map_err(|_| unsupported(from, "expected true or false"))?,
                "max_transactions_per_pass" => value
                    .parse::<i64>()
                    .map(|n| n.to_string())
                    .map_err(|_| unsupported(from, "expected a number"))?,
                _ => quoted(value),
            };
            out.push_str(&format!("{to} = {literal}\n"));
        }
    }
    for (from, to) in [
        ("heartbeat.interval.ms", "heartbeat_interval"),
        ("poll.interval.ms", "poll_interval"),
    ] {
        if let Some(value) = get(from) {
            let ms: u64 = value
                .parse()
                .map_err(|_| unsupported(from, "expected milliseconds"))?;
            // Debezium's 0 turns heartbeats off: no setting.
            if ms > 0 {
                out.push_str(&format!("{to} = \"{ms}ms\"\n"));
            }
        }
    }
    if get("value.converter.schemas.enable") == Some("true") {
        out.push_str("schemas_enable = true\n");
    }
    let mut converted: Vec<&str> = Vec::new();
    // Masks: the property's name carries the length or the algorithm and salt.
    for (key, columns) in &props {
        let mask = if let Some(n) = key
            .strip_prefix("column.mask.with.")
            .and_then(|rest| rest.strip_suffix(".chars"))
        {
            let n: usize = n.parse().map_err(|_| {
                unsupported(
                    key,
                    "the length in column.mask.with.N.chars is not a number",
                )
            })?;
            Mask::Chars(n)
        } else if let Some(rest) = key.strip_prefix("column.mask.hash.") {
            let (v2, rest) = match rest.strip_prefix("v2.") {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            let (algorithm, salt) = rest.split_once(".with.salt.").ok_or_else(|| {
                unsupported(
                    key,
                    "expected column.mask.hash.[v2.]<algorithm>.with.salt.<salt>",
                )
            })?;
            let algorithm = HashAlgorithm::from_name(algorithm).ok_or_else(|| {
                unsupported(
                    key,
                    "the algorithm is not MD5, SHA-1, SHA-256, SHA-384 or SHA-512",
                )
            })?;
            Mask::Hash {
                algorithm,
                salt: salt.to_owned(),
                v2,
            }
        } else {
            continue;
        };
        out.push_str("[[capture.column_masks]]\n");
        out.push_str(&RawMask::toml_lines(columns, &mask));
        converted.push(key);
    }
    // Select overrides: a list of tables, then one property per table.
    if let Some(tables) = get("snapshot.select.statement.overrides") {
        out.push_str("[capture.snapshot_select_overrides]\n");
        for table in tables.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let key = format!("snapshot.select.statement.overrides.{table}");
            let select = get(&key).ok_or_else(|| {
                unsupported(
                    "snapshot.select.statement.overrides",
                    &format!("{table} is listed but {key} is not set"),
                )
            })?;
            out.push_str(&format!("{} = {}\n", quoted(table), quoted(select)));
            converted.push(props.get_key_value(key.as_str()).map_or("", |(k, _)| *k));
        }
    }
    out.push_str("\n[kafka]\noffsets_topic = \"sluice.capture.offsets\"\n[kafka.properties]\n");
    out.push_str(&format!(
        "\"bootstrap.servers\" = {}\n",
        quoted(get("schema.history.internal.kafka.bootstrap.servers").unwrap_or("localhost:9092"))
    ));
    let left: Vec<String> = props
        .iter()
        .filter(|(k, _)| {
            !PLUMBING.contains(k)
                && !RENAMED.iter().any(|(from, _)| from == *k)
                && !converted.contains(k)
        })
        .map(|(k, v)| format!("#   {k} = {v}"))
        .collect();
    if !left.is_empty() {
        out.push_str(
            "\n# Not converted (no sluice setting yet, or Kafka Connect's own); check each:\n",
        );
        out.push_str(&left.join("\n"));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTOR: &str = r#"{
      "name": "inventory-connector",
      "config": {
        "connector.class": "io.debezium.connector.sqlserver.SqlServerConnector",
        "tasks.max": "1",
        "database.hostname": "mssql",
        "database.port": "1433",
        "database.user": "sa",
        "database.password": "Password!",
        "database.names": "testDB",
        "database.trustServerCertificate": "true",
        "topic.prefix": "server1",
        "table.include.list": "dbo.customers, dbo.orders",
        "snapshot.mode": "initial",
        "tombstones.on.delete": "false",
        "provide.transaction.metadata": true,
        "max.iteration.transactions": "0",
        "event.processing.failure.handling.mode": "warn",
        "heartbeat.interval.ms": "10000",
        "value.converter.schemas.enable": "true",
        "schema.history.internal.kafka.bootstrap.servers": "kafka:9092",
        "schema.history.internal.kafka.topic": "schemahistory.inventory",
        "column.mask.with.12.chars": "dbo.customers.email",
        "column.mask.hash.v2.SHA-256.with.salt.CzQMA0cB5K": "dbo.customers.phone, dbo.orders.card",
        "snapshot.isolation.mode": "repeatable_read",
        "snapshot.select.statement.overrides": "dbo.orders",
        "snapshot.select.statement.overrides.dbo.orders": "SELECT * FROM dbo.orders WHERE deleted = 0",
        "transforms": "unwrap"
      }
    }"#;

    #[test]
    fn a_debezium_connector_becomes_a_capture_config() {
        let toml = convert(CONNECTOR).expect("converts");
        assert_eq!(
            toml,
            r#"# Converted from a Debezium SQL Server connector by `sluice capture convert`.
[capture]
connection = "server=tcp:mssql,1433;user=sa;password=Password!;database=testDB;TrustServerCertificate=true"
topic_prefix = "server1"
snapshot_mode = "initial"
tombstones_on_delete = false
table_include_list = "dbo.customers, dbo.orders"
snapshot_isolation_mode = "repeatable_read"
provide_transaction_metadata = true
max_transactions_per_pass = 0
event_processing_failure_handling_mode = "warn"
heartbeat_interval = "10000ms"
schemas_enable = true
[[capture.column_masks]]
columns = "dbo.customers.phone, dbo.orders.card"
hash = "SHA-256"
salt = "CzQMA0cB5K"
hash_version = 2
[[capture.column_masks]]
columns = "dbo.customers.email"
chars = 12
[capture.snapshot_select_overrides]
"dbo.orders" = "SELECT * FROM dbo.orders WHERE deleted = 0"

[kafka]
offsets_topic = "sluice.capture.offsets"
[kafka.properties]
"bootstrap.servers" = "kafka:9092"

# Not converted (no sluice setting yet, or Kafka Connect's own); check each:
#   transforms = unwrap
"#
        );
        // What it prints is a valid `sluice capture` configuration.
        let config = crate::config::parse(&toml, "converted.toml").expect("valid");
        assert_eq!(config.settings.events.database, "testDB");
        assert_eq!(config.settings.max_transactions, 0);
        assert_eq!(
            config.settings.on_event_failure,
            crate::failures::FailureMode::Warn
        );
        assert!(config.settings.transaction_metadata && !config.settings.tombstones);
        assert!(config.settings.table_filter.keeps("dbo.orders"));
        assert_eq!(config.settings.columns.masks.len(), 2);
        assert_eq!(config.settings.snapshot_overrides.len(), 1);
        // Several databases become `database_names`.
        let several = CONNECTOR.replace("\"testDB\"", "\"testDB,otherDB\"");
        let config =
            crate::config::parse(&convert(&several).expect("converts"), "c.toml").expect("valid");
        assert_eq!(config.databases(), ["testDB", "otherDB"]);
    }

    #[test]
    fn what_cannot_be_converted_is_refused_by_name() {
        let algorithm = CONNECTOR.replace("SHA-256", "WHIRLPOOL");
        assert!(matches!(
            convert(&algorithm),
            Err(ConvertError::Unsupported { key, .. }) if key.starts_with("column.mask.hash.")
        ));
        let override_missing = CONNECTOR.replace("overrides.dbo.orders", "overrides.dbo.other");
        assert!(matches!(
            convert(&override_missing),
            Err(ConvertError::Unsupported { key, .. }) if key == "snapshot.select.statement.overrides"
        ));
        let mysql = CONNECTOR.replace(
            "io.debezium.connector.sqlserver.SqlServerConnector",
            "io.debezium.connector.mysql.MySqlConnector",
        );
        assert!(matches!(
            convert(&mysql),
            Err(ConvertError::NotSqlServer(_))
        ));
        assert!(matches!(convert("nope"), Err(ConvertError::Json(_))));
    }
}
