use sluice_sdk::{Record, Reject};

#[sluice_sdk::transform]
fn cdm(event: String) -> Result<Vec<Record>, Reject> {
    let _ = event;
    Ok(vec![])
}

fn main() {}
