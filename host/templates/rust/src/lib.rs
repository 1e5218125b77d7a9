//! `{{name}}`: a sluice plugin. It publishes each row's id, table and operation to
//! `example.out`, keyed by the id, and a tombstone for a delete. Edit `transform` to map
//! your rows; `sluice plugin test` checks it against `samples/` (see README.md).

use serde::Deserialize;
use sluice_sdk::{ChangeEvent, Op, Record, Reject};

/// The columns this plugin reads; serde ignores the others.
#[derive(Debug, Deserialize)]
struct Row {
    id: i64,
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    id: i64,
    table: String,
    op: &'a str,
}

#[sluice_sdk::transform]
fn transform(event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    let op = match event.op() {
        Op::Create => "c",
        Op::Update => "u",
        Op::Read => "r",
        Op::Delete => "d",
        // Neither image: nothing to publish.
        Op::Truncate | Op::Message => return Ok(Vec::new()),
    };
    let row: Row = event.row()?;
    let key = serde_json::json!({ "id": row.id });
    if event.op() == Op::Delete {
        return Ok(vec![Record::to("example.out").json_key(&key).tombstone()]);
    }
    sluice_sdk::log(sluice_sdk::LogLevel::Debug, &format!("row {}", row.id));
    let summary = Summary {
        id: row.id,
        table: event.qualified_table(),
        op,
    };
    Ok(vec![Record::to("example.out").json_key(&key).json_value(&summary)])
}
