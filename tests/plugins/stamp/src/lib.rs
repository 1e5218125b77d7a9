//! `stamp`: publishes `{"id": <after.id>, "stamp": <config stamp>}` to `out`, so a test
//! can tell which configured version of the plugin processed each event.

use sluice_sdk::{ChangeEvent, Record, Reject};

#[derive(serde::Deserialize)]
struct Row {
    id: i64,
}

#[sluice_sdk::transform]
fn stamp(event: ChangeEvent) -> Result<Record, Reject> {
    let row: Row = event.row()?;
    let stamp = sluice_sdk::config().get("stamp").unwrap_or("none");
    Ok(Record::to("out")
        .json_key(&row.id)
        .json_value(&serde_json::json!({ "id": row.id, "stamp": stamp })))
}
