use sluice_sdk::{ChangeEvent, Record, Reject};

struct Settings {
    topic: String,
}

#[sluice_sdk::transform(config = Settings)]
fn cdm(_event: ChangeEvent, settings: &Settings) -> Result<Record, Reject> {
    Ok(Record::to(settings.topic.as_str()))
}

fn main() {}
