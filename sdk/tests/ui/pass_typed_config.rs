use serde::Deserialize;
use sluice_sdk::{ChangeEvent, Config, Record, Reject};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    topic: String,
    #[serde(default)]
    scale: Option<u32>,
}

#[sluice_sdk::transform(config = Settings)]
fn typed(event: ChangeEvent, settings: &Settings) -> Result<Option<Record>, Reject> {
    let _ = settings.scale;
    Ok(event.key_bytes().map(|key| Record::to(&settings.topic).key(key)))
}

#[sluice_sdk::transform(config = Settings, init = check)]
fn typed_and_checked(_event: ChangeEvent, settings: &Settings) -> Result<Record, Reject> {
    Ok(Record::to(settings.topic.as_str()))
}

fn check(config: &Config) -> Result<(), String> {
    config.typed::<Settings>().map(|_| ()).map_err(|e| e.to_string())
}

fn main() {
    // Natively the function stays plain: tests pass the settings directly.
    let settings = Settings {
        topic: "t".into(),
        scale: None,
    };
    let _ = typed_and_checked;
    let _ = &settings;
}
