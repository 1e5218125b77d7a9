//! The file sink's (and the HTTP sink's) JSON line of any record a plugin may return:
//! always one line of valid JSON, whose topic and headers read back as written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::{Header, OutputRecord, json_lines};

/// Cuts `data` into parts at 0xFF bytes (which never occur in UTF-8).
fn parts(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == 0xff).collect()
}

fuzz_target!(|data: &[u8]| {
    let parts = parts(data);
    let text =
        |i: usize| String::from_utf8_lossy(parts.get(i).copied().unwrap_or(b"")).into_owned();
    let bytes = |i: usize| parts.get(i).map(|p| p.to_vec());
    let record = OutputRecord {
        topic: text(0),
        key: bytes(1),
        value: bytes(2),
        headers: (3..parts.len())
            .step_by(2)
            .map(|i| Header {
                key: text(i).into(),
                value: bytes(i + 1),
            })
            .collect(),
        timestamp: None,
    };
    let mut line = Vec::new();
    json_lines::write_json_line(&record, &mut line);
    assert!(
        !line.contains(&b'\n'),
        "one line: {:?}",
        String::from_utf8_lossy(&line)
    );
    // Read as JSON text, not as `serde_json::Value`: a plugin's key or value is kept
    // byte for byte, and JSON numbers past f64 (valid JSON) are refused by `Value`.
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        topic: String,
        #[serde(borrow)]
        key: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        value: &'a serde_json::value::RawValue,
        headers: Vec<(String, Option<&'a serde_json::value::RawValue>)>,
    }
    let read: Line<'_> = serde_json::from_slice(&line)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&line)));
    assert_eq!(read.topic, record.topic);
    for (read, written) in [(read.key, &record.key), (read.value, &record.value)] {
        if let Some(bytes) = written
            && bytes.iter().all(|b| !b.is_ascii_whitespace())
            && serde_json::from_slice::<&serde_json::value::RawValue>(bytes).is_ok()
        {
            assert_eq!(read.get().as_bytes(), &bytes[..], "JSON kept byte for byte");
        }
    }
    assert_eq!(read.headers.len(), record.headers.len());
    for (read, written) in read.headers.iter().zip(&record.headers) {
        assert_eq!(read.0, *written.key);
    }
    assert_eq!(
        json_lines::record_to_json_line(&record).as_bytes(),
        &line[..]
    );
});
