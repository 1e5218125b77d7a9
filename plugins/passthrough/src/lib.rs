//! `passthrough`: republishes every change event unchanged (key, value bytes, headers).
//!
//! Config:
//! - `topic`: the destination topic. Default: the source topic with the prefix
//!   `passthrough.` (so a mirror never writes back into its own input).

use sluice_sdk::{ChangeEvent, Record, Reject};

/// The default destination's prefix to the source topic.
const PREFIX: &str = "passthrough.";

/// Republishes `event` byte for byte to the configured topic.
#[sluice_sdk::transform]
pub fn passthrough(event: ChangeEvent) -> Result<Record, Reject> {
    let topic = match sluice_sdk::config().get("topic") {
        Some(topic) => topic.to_owned(),
        // `push_str`, not `format!`: once per event, and `core::fmt` is the slower way.
        None => {
            let origin = &event.origin().topic;
            let mut topic = String::with_capacity(PREFIX.len() + origin.len());
            topic.push_str(PREFIX);
            topic.push_str(origin);
            topic
        }
    };
    let event = event.into_wit();
    Ok(Record::to(topic)
        .key_opt(event.key)
        .value(event.value)
        .headers(event.headers))
}
