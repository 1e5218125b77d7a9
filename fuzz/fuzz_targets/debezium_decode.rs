//! A record value from a topic or a file line: the Debezium decoder must give an event or
//! a reason (never panic), agree with serde where its scanner reads, and an event it
//! gives must encode into a plugin's packed batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::{Origin, RawRecord};
use sluice_runtime::debezium::{self, Decoded};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        debezium::fuzzing::scanner_agrees_with_serde(text);
    }
    let record = RawRecord {
        key: Some(br#"{"id":1}"#.to_vec()),
        value: Some(data.to_vec()),
        headers: Vec::new(),
        origin: Origin {
            topic: "t".into(),
            partition: 0,
            offset: 1,
        },
        unreadable: None,
        timestamp: None,
    };
    match debezium::decode(record) {
        Ok(Decoded::Event(event)) => {
            let mut batch = Vec::new();
            sluice_runtime::packed::encode_batch(std::slice::from_ref(&event), &mut batch)
                .expect("one small event fits a batch");
            let _ = debezium::debezium_topic(&event.source);
        }
        Ok(Decoded::Tombstone) => unreachable!("the value is present"),
        Err(malformed) => {
            let _ = malformed.error.to_string();
        }
    }
});
