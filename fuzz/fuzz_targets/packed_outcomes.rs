//! A plugin's packed outcomes (`transform-packed`'s return value), which a hostile plugin
//! writes at will: the host must read them or name the violation, never panic, and never
//! build more than the plugin's memory cap of records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_runtime::Outcome;
use sluice_runtime::PluginLimits;
use sluice_runtime::packed::{decode_outcomes, record_host_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&events, bytes)) = data.split_first() else {
        return;
    };
    let limits = PluginLimits {
        memory_bytes: 64 * 1024,
        max_records_per_event: 8,
        max_record_bytes: 4096,
        ..PluginLimits::default()
    };
    let mut taken = 0u64;
    if let Ok(outcomes) = decode_outcomes(bytes, usize::from(events % 8), &limits, &mut taken) {
        let built: u64 = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Records(records) => {
                    Some(records.iter().map(record_host_bytes).sum::<u64>())
                }
                _ => None,
            })
            .sum();
        assert!(
            built <= limits.memory_bytes,
            "{built} bytes built past the cap"
        );
        assert_eq!(built, taken, "what was counted is what was built");
    }
});
