//! `route-by-table`: fans each change event out to its table's topic and to an audit
//! topic, and filters out tables nobody downstream should see.
//!
//! For an event of table `T` (not dropped) it publishes:
//! 1. to `route.T` if configured (a comma-separated list of topics), else to
//!    `<topic_prefix>T` — the value is the row as it is now (`after`, or `before` for a
//!    delete) and the key is the event's key, so the topic is an upsert stream;
//! 2. to `also` (default `audit.changes`; empty to disable) — the whole event unchanged.
//!
//! Every record carries the header `sluice.op` (`c`, `u`, `d`, `r`).
//!
//! Config: `topic_prefix` (default `cdm.`), `also` (default `audit.changes`),
//! `drop` (comma-separated tables to filter out, default `audit_log`),
//! `route.<table>` (comma-separated topics).

use sluice_sdk::{ChangeEvent, Op, Record, Reject};

/// Routes one event (see the module docs).
#[sluice_sdk::transform]
pub fn route_by_table(event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    let config = sluice_sdk::config();
    let table = event.source().table.as_str();
    let dropped = config.get("drop").unwrap_or("audit_log");
    if list(dropped).any(|t| t == table) {
        return Ok(Vec::new());
    }
    let op = match event.op() {
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Read => "r",
        // Truncates and messages carry no row: only the audit topic sees them.
        Op::Truncate => "t",
        Op::Message => "m",
    };
    let row = match event.op() {
        Op::Delete => event.before_json(),
        _ => event.after_json(),
    };

    let mut records = Vec::new();
    if let Some(row) = row {
        let route_key = format!("route.{table}");
        let prefix = config.get("topic_prefix").unwrap_or("cdm.");
        let topics: Vec<String> = match config.get(&route_key) {
            Some(topics) => list(topics).map(str::to_owned).collect(),
            None => vec![format!("{prefix}{table}")],
        };
        for topic in topics {
            records.push(
                Record::to(topic)
                    .key_opt(event.key_bytes().map(<[u8]>::to_vec))
                    .value(row.as_bytes())
                    .header("sluice.op", op),
            );
        }
    }
    let audit = config.get("also").unwrap_or("audit.changes");
    if !audit.is_empty() {
        records.push(
            Record::to(audit)
                .key_opt(event.key_bytes().map(<[u8]>::to_vec))
                .value(event.value())
                .header("sluice.op", op),
        );
    }
    Ok(records)
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}
