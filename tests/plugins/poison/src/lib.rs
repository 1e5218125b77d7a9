//! `poison`: a test plugin that behaves per event, as the event's `after` row asks:
//! `"panic": true` panics (a trap), `"reject": "<reason>"` rejects, `"forbidden": true`
//! writes to a topic outside its allowed outputs; any other event is published to `out`
//! as `{"id": <id>}` keyed by the id.

use serde::Deserialize;
use sluice_sdk::{ChangeEvent, Record, Reject};

#[derive(Deserialize)]
struct Row {
    id: i64,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default)]
    forbidden: bool,
}

#[sluice_sdk::transform]
fn poison(event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    let row: Row = event.row()?;
    if row.panic {
        panic!("poison event {}", row.id);
    }
    if let Some(reason) = row.reject {
        return Err(Reject::new(reason).with_code("asked"));
    }
    let topic = if row.forbidden { "secret.topic" } else { "out" };
    Ok(vec![Record::to(topic).json_key(&row.id).json_value(&serde_json::json!({ "id": row.id }))])
}
