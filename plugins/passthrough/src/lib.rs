//! `passthrough`: republishes every change event unchanged (key, value bytes, headers).
//!
//! Config:
//! - `topic`: the destination topic. Default: the source topic with the prefix
//!   `passthrough.` (so a mirror never writes back into its own input).

use sluice_sdk::{ChangeEvent, Record, Reject};

/// Republishes `event` byte for byte to the configured topic.
#[sluice_sdk::transform]
pub fn passthrough(event: ChangeEvent) -> Result<Record, Reject> {
    let topic = match sluice_sdk::config().get("topic") {
        Some(topic) => topic.to_owned(),
        None => format!("passthrough.{}", event.origin().topic),
    };
    let event = event.into_wit();
    Ok(Record::to(topic)
        .key_opt(event.key)
        .value(event.value)
        .headers(event.headers))
}
