use sluice_sdk::{ChangeEvent, Record, Reject};

#[derive(serde::Deserialize)]
struct Settings {
    topic: String,
}

#[sluice_sdk::transform(config = Settings)]
fn cdm(_event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    Ok(vec![])
}

fn main() {}
