use sluice_sdk::{ChangeEvent, Record, Reject};

#[sluice_sdk::transform]
fn cdm(event: ChangeEvent, extra: u32) -> Result<Vec<Record>, Reject> {
    let _ = (event, extra);
    Ok(vec![])
}

fn main() {}
