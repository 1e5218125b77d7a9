use sluice_sdk::{ChangeEvent, Record, Reject};

#[sluice_sdk::transform]
async fn cdm(_event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    Ok(vec![])
}

fn main() {}
