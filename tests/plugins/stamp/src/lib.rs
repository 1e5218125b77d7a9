//! `stamp`: publishes `{"id": <after.id>, "stamp": <config stamp>}` to `out`, so a test
//! can tell which configured version of the plugin processed each event. With config
//! `count = "true"` the value also holds `seen`, how many events of this key this
//! instance has taken so far (this one included), and `taken`, how many events of any
//! key: state kept per key, for tests of how events are divided among instances.

use std::cell::RefCell;
use std::collections::HashMap;

use sluice_sdk::{ChangeEvent, Record, Reject};

#[derive(serde::Deserialize)]
struct Row {
    id: i64,
}

thread_local! {
    /// Events taken per key, and in all, by this instance.
    static SEEN: RefCell<(HashMap<i64, u64>, u64)> = RefCell::new((HashMap::new(), 0));
}

#[sluice_sdk::transform]
fn stamp(event: ChangeEvent) -> Result<Record, Reject> {
    let row: Row = event.row()?;
    let config = sluice_sdk::config();
    let stamp = config.get("stamp").unwrap_or("none");
    let value = if config.get("count") == Some("true") {
        let (seen, taken) = SEEN.with_borrow_mut(|(per_key, taken)| {
            let seen = per_key.entry(row.id).or_default();
            *seen += 1;
            *taken += 1;
            (*seen, *taken)
        });
        serde_json::json!({ "id": row.id, "stamp": stamp, "seen": seen, "taken": taken })
    } else {
        serde_json::json!({ "id": row.id, "stamp": stamp })
    };
    Ok(Record::to("out").json_key(&row.id).json_value(&value))
}
