use sluice_sdk::{ChangeEvent, Config, Record, Reject};

#[sluice_sdk::transform]
fn many(_event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    Ok(vec![])
}

#[sluice_sdk::transform(init = check)]
fn maybe(event: ChangeEvent) -> Result<Option<Record>, Reject> {
    Ok(event.key_bytes().map(|key| Record::to("t").key(key)))
}

#[sluice_sdk::transform]
fn one(_event: ChangeEvent) -> Result<Record, Reject> {
    Ok(Record::to("t"))
}

fn check(config: &Config) -> Result<(), String> {
    config.parse::<u32>("n").map(|_| ())
}

fn main() {}
