use sluice_sdk::ChangeEvent;

#[sluice_sdk::transform]
fn cdm(_event: ChangeEvent) -> Vec<String> {
    vec![]
}

fn main() {}
