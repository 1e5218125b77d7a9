//! `customers-cdm`: maps Debezium change events of a SQL Server `dbo.customers` table to
//! the canonical customer record on `cdm.customer`.
//!
//! - columns are renamed to the CDM's camelCase names, first and last name joined;
//! - the email is masked (`j***@example.com`);
//! - `credit_limit` (decimal) is decoded from Debezium's encoding into a decimal string,
//!   whatever `decimal.handling.mode` the connector used (`precise` base64, `string`,
//!   `double`); the scale comes from the event's schema when it has one, else from config;
//! - `birth_date` (date, days since epoch), `created_at` (datetime2(3), epoch ms) and
//!   `updated_at` (datetime2(7), epoch ns) become ISO-8601 strings;
//! - the key is `{"customerId": <id>}`; creates, updates and snapshot reads publish the new
//!   state (upsert); deletes publish a tombstone, so `cdm.customer` can be compacted.
//!
//! Config ([`Settings`], typed and checked once at `init`; an unknown key or a bad value
//! refuses the plugin with the key named):
//! - `topic` (default `cdm.customer`)
//! - `decimal.handling.mode`: `precise` (default), `string` or `double`
//! - `credit_limit.scale`: the scale of `credit_limit` when events carry no schema (default 2)

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sluice_sdk::debezium;
use sluice_sdk::{ChangeEvent, Op, Record, Reject, SnapshotMarker};

/// The plugin's configuration, deserialized from the manifest's `[config]` at `init`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where canonical records go.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// How the connector encoded decimals (Debezium's `decimal.handling.mode`).
    #[serde(rename = "decimal.handling.mode", default)]
    pub decimal_mode: DecimalMode,
    /// The scale of `credit_limit` when events carry no schema.
    #[serde(rename = "credit_limit.scale", default = "default_scale")]
    pub credit_limit_scale: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            topic: default_topic(),
            decimal_mode: DecimalMode::default(),
            credit_limit_scale: default_scale(),
        }
    }
}

fn default_topic() -> String {
    "cdm.customer".to_owned()
}

fn default_scale() -> u32 {
    2
}

/// Debezium's `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecimalMode {
    /// Base64 of the unscaled big-endian two's complement bytes.
    #[default]
    Precise,
    /// The decimal as text.
    String,
    /// A JSON number (lossy).
    Double,
}

impl DecimalMode {
    fn name(self) -> &'static str {
        match self {
            Self::Precise => "precise",
            Self::String => "string",
            Self::Double => "double",
        }
    }
}

/// A row of `dbo.customers` as Debezium encodes it. Text borrows from the event's value
/// (copied only when it has JSON escapes in it).
#[derive(Debug, Deserialize)]
struct CustomerRow<'a> {
    id: i64,
    #[serde(borrow)]
    first_name: Option<Text<'a>>,
    #[serde(borrow)]
    last_name: Option<Text<'a>>,
    #[serde(borrow)]
    email: Option<Text<'a>>,
    credit_limit: Option<serde_json::Value>,
    birth_date: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    #[serde(borrow)]
    customer_guid: Option<Text<'a>>,
    is_active: Option<bool>,
}

/// A text column. serde borrows a `Cow<str>` only as a field of its own (inside an
/// `Option` it would always copy), hence the newtype.
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// The canonical customer record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CanonicalCustomer<'a> {
    customer_id: i64,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    full_name: String,
    email_masked: Option<String>,
    credit_limit: Option<String>,
    birth_date: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    external_id: Option<String>,
    active: bool,
    source: Lineage<'a>,
}

/// Where the canonical record came from, for consumers that audit it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Lineage<'a> {
    table: String,
    op: &'static str,
    snapshot: bool,
    commit_lsn: Option<&'a str>,
    change_lsn: Option<&'a str>,
    ts_ms: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerKey {
    customer_id: i64,
}

/// Maps one change event of `dbo.customers` to its canonical record (or tombstone).
#[sluice_sdk::transform(config = Settings)]
pub fn customers_cdm(event: ChangeEvent, settings: &Settings) -> Result<Vec<Record>, Reject> {
    let topic = settings.topic.as_str();
    let op = event.op();
    if matches!(op, Op::Truncate | Op::Message) {
        return Ok(Vec::new());
    }
    let row: CustomerRow = event.row()?;
    let key = CustomerKey {
        customer_id: row.id,
    };
    if op == Op::Delete {
        return Ok(vec![Record::to(topic).json_key(&key).tombstone()]);
    }

    let source = event.source();
    let canonical = CanonicalCustomer {
        customer_id: row.id,
        first_name: row.first_name.as_deref(),
        last_name: row.last_name.as_deref(),
        full_name: full_name(row.first_name.as_deref(), row.last_name.as_deref()),
        email_masked: row.email.as_deref().map(mask_email),
        credit_limit: row
            .credit_limit
            .as_ref()
            .map(|raw| {
                let scale = event
                    .decimal_scale("credit_limit")
                    .unwrap_or(settings.credit_limit_scale);
                decode_decimal(raw, settings.decimal_mode, scale)
            })
            .transpose()?,
        birth_date: row.birth_date.map(debezium::date_from_epoch_days),
        created_at: row.created_at.map(debezium::timestamp_from_epoch_millis),
        updated_at: row.updated_at.map(debezium::timestamp_from_epoch_nanos),
        external_id: row.customer_guid.as_deref().map(str::to_ascii_lowercase),
        active: row.is_active.unwrap_or(true),
        source: Lineage {
            table: event.qualified_table(),
            op: op_code(op),
            snapshot: !matches!(source.snapshot, SnapshotMarker::None),
            commit_lsn: source.commit_lsn.as_deref(),
            change_lsn: source.change_lsn.as_deref(),
            ts_ms: source.ts_ms,
        },
    };
    Ok(vec![
        Record::to(topic)
            .json_key(&key)
            .json_value(&canonical)
            .header("cdm.schema", "customer.v1"),
    ])
}

/// Decodes a decimal column in any of Debezium's `decimal.handling.mode`s.
fn decode_decimal(
    raw: &serde_json::Value,
    mode: DecimalMode,
    scale: u32,
) -> Result<String, Reject> {
    match (mode, raw) {
        (DecimalMode::Precise, serde_json::Value::String(encoded)) => {
            Ok(debezium::decimal_from_base64(encoded, scale)?)
        }
        (DecimalMode::String, serde_json::Value::String(text)) => Ok(text.clone()),
        (DecimalMode::Double, serde_json::Value::Number(number)) => {
            let value = number.as_f64().unwrap_or(f64::NAN);
            Ok(format!("{value:.prec$}", prec = scale as usize))
        }
        _ => Err(Reject::new(format!(
            "credit_limit: {raw} is not a decimal in `{}` mode",
            mode.name()
        ))
        .with_code("bad-decimal")),
    }
}

fn full_name(first: Option<&str>, last: Option<&str>) -> String {
    match (first, last) {
        (Some(first), Some(last)) => {
            let mut full = String::with_capacity(first.len() + 1 + last.len());
            full.push_str(first);
            full.push(' ');
            full.push_str(last);
            full
        }
        (Some(only), None) | (None, Some(only)) => only.to_owned(),
        (None, None) => String::new(),
    }
}

/// `john.doe@example.com` → `j***@example.com`; text without `@` is masked whole.
fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first = local.chars().next().unwrap_or('*');
            let mut masked = String::with_capacity(first.len_utf8() + 4 + domain.len());
            masked.push(first);
            masked.push_str("***@");
            masked.push_str(domain);
            masked
        }
        _ => "***".to_owned(),
    }
}

fn op_code(op: Op) -> &'static str {
    match op {
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Read => "r",
        Op::Truncate => "t",
        Op::Message => "m",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_local_part_of_an_email() {
        assert_eq!(mask_email("john.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("Zoë@example.org"), "Z***@example.org");
        assert_eq!(mask_email("not-an-email"), "***");
        assert_eq!(mask_email("@example.org"), "***");
    }

    #[test]
    fn decodes_decimals_in_every_mode() {
        let precise = serde_json::json!("MDk=");
        assert_eq!(
            decode_decimal(&precise, DecimalMode::Precise, 2).expect("decodes"),
            "123.45"
        );
        let wrong_kind = serde_json::json!(12.5);
        assert!(decode_decimal(&wrong_kind, DecimalMode::Precise, 2).is_err());
        assert_eq!(
            decode_decimal(&wrong_kind, DecimalMode::Double, 3).expect("decodes"),
            "12.500"
        );
    }

    #[test]
    fn settings_default_and_refuse_bad_values_by_key() {
        let pairs = |list: &[(&str, &str)]| {
            sluice_sdk::Config::from_pairs(
                list.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let defaults: Settings = pairs(&[]).typed().expect("all keys have defaults");
        assert_eq!(defaults.topic, "cdm.customer");
        assert_eq!(defaults.decimal_mode, DecimalMode::Precise);
        assert_eq!(defaults.credit_limit_scale, 2);
        let error = pairs(&[("credit_limit.scale", "-1")])
            .typed::<Settings>()
            .expect_err("negative scale");
        assert!(
            error
                .to_string()
                .starts_with("config `credit_limit.scale` = \"-1\":"),
            "{error}"
        );
    }
}
