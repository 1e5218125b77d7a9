//! `sluice capture convert <connector.json>`: a Debezium SQL Server connector's
//! configuration (the JSON posted to Kafka Connect, `{"name":...,"config":{...}}`, or the
//! bare `config` object) turned into the TOML `sluice capture` reads. What maps is
//! converted; every other property is listed in a comment at the end, so nothing is
//! dropped without a word.

use std::collections::BTreeMap;

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
    ("column.exclude.list", "column_exclude_list"),
    ("message.key.columns", "message_key_columns"),
    (
        "provide.transaction.metadata",
        "provide_transaction_metadata",
    ),
    ("include.schema.changes", "include_schema_changes"),
    ("max.iteration.transactions", "max_transactions_per_pass"),
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
    "database.encrypt",
    "database.trustServerCertificate",
    "database.instance",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
    "schema.history.internal.kafka.bootstrap.servers",
    "schema.history.internal.kafka.topic",
    "table.include.list",
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
    let database = match get("database.names").or(get("database.dbname")) {
        Some(names) if names.contains(',') => {
            return Err(unsupported(
                "database.names",
                "one database per `sluice capture`: convert once per database (change database.names)",
            ));
        }
        Some(name) => name.trim().to_owned(),
        None => String::new(),
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
    if let Some(tables) = get("table.include.list") {
        let tables: Vec<&str> = tables.split(',').map(str::trim).collect();
        // Debezium's list holds regexes; sluice lists tables by name.
        if let Some(pattern) = tables
            .iter()
            .find(|t| t.chars().any(|c| "^$*+?()[]{}|\\".contains(c)))
        {
            return Err(unsupported(
                "table.include.list",
                &format!("{pattern:?} is a pattern; list the tables as schema.table names"),
            ));
        }
        let list: Vec<String> = tables.iter().map(|t| quoted(t)).collect();
        out.push_str(&format!("tables = [{}]\n", list.join(", ")));
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
    out.push_str("\n[kafka]\noffsets_topic = \"sluice.capture.offsets\"\n[kafka.properties]\n");
    out.push_str(&format!(
        "\"bootstrap.servers\" = {}\n",
        quoted(get("schema.history.internal.kafka.bootstrap.servers").unwrap_or("localhost:9092"))
    ));
    let left: Vec<String> = props
        .iter()
        .filter(|(k, _)| !PLUMBING.contains(k) && !RENAMED.iter().any(|(from, _)| from == *k))
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
        "heartbeat.interval.ms": "10000",
        "value.converter.schemas.enable": "true",
        "schema.history.internal.kafka.bootstrap.servers": "kafka:9092",
        "schema.history.internal.kafka.topic": "schemahistory.inventory",
        "column.mask.with.12.chars": "dbo.customers.email"
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
tables = ["dbo.customers", "dbo.orders"]
topic_prefix = "server1"
snapshot_mode = "initial"
tombstones_on_delete = false
provide_transaction_metadata = true
max_transactions_per_pass = 0
heartbeat_interval = "10000ms"
schemas_enable = true

[kafka]
offsets_topic = "sluice.capture.offsets"
[kafka.properties]
"bootstrap.servers" = "kafka:9092"

# Not converted (no sluice setting yet, or Kafka Connect's own); check each:
#   column.mask.with.12.chars = dbo.customers.email
"#
        );
        // What it prints is a valid `sluice capture` configuration.
        let config = crate::config::parse(&toml, "converted.toml").expect("valid");
        assert_eq!(config.settings.events.database, "testDB");
        assert_eq!(config.settings.max_transactions, 0);
        assert!(config.settings.transaction_metadata && !config.settings.tombstones);
    }

    #[test]
    fn what_cannot_be_converted_is_refused_by_name() {
        let several = CONNECTOR.replace("\"testDB\"", "\"testDB,otherDB\"");
        assert!(matches!(
            convert(&several),
            Err(ConvertError::Unsupported { key, .. }) if key == "database.names"
        ));
        let pattern = CONNECTOR.replace("dbo.customers, dbo.orders", "dbo\\\\..*");
        assert!(matches!(
            convert(&pattern),
            Err(ConvertError::Unsupported { key, .. }) if key == "table.include.list"
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
