//! Records as JSON lines: the form the file sink writes, `sluice plugin test` compares and
//! the HTTP sink posts.
//!
//! One line per record: `{"topic": ..., "key": ..., "value": ..., "headers": [[k, v], ...]}`.
//! A key or value that is JSON is embedded as JSON; other UTF-8 bytes become a JSON
//! string; anything else becomes `{"$base64": "..."}`; an absent key or value (tombstone)
//! is `null`. Headers keep their order and repeats; a header value follows the same rules
//! as a string (never parsed as JSON).

use base64::Engine as _;
use serde_json::value::RawValue;

use crate::{OutputRecord, json_scan};

/// Renders one record as a JSON line (without the newline).
pub fn record_to_json_line(record: &OutputRecord) -> String {
    let mut line = Vec::with_capacity(
        record.value.as_ref().map_or(0, Vec::len) + record.key.as_ref().map_or(0, Vec::len) + 64,
    );
    write_json_line(record, &mut line);
    // Every part written is UTF-8 (JSON is checked as such, other bytes are base64); a
    // lossy conversion keeps that a fact rather than a panic.
    String::from_utf8(line)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// Appends one record as a JSON line (without the newline) to `out`, which stays UTF-8
/// if it was. Writes straight into `out`: no intermediate values, so a batch of records
/// costs one buffer.
pub fn write_json_line(record: &OutputRecord, out: &mut Vec<u8>) {
    // Field by field, to keep the order topic, key, value, headers.
    out.extend_from_slice(br#"{"topic":"#);
    write_json_string(&record.topic, out);
    out.extend_from_slice(br#","key":"#);
    write_json_or_text(record.key.as_deref(), out);
    out.extend_from_slice(br#","value":"#);
    write_json_or_text(record.value.as_deref(), out);
    out.extend_from_slice(br#","headers":["#);
    for (at, header) in record.headers.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_json_string(&header.key, out);
        out.push(b',');
        match header.value.as_deref() {
            Some(value) => write_text_or_base64(value, out),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
}

/// JSON bytes verbatim (byte for byte, so a republished event is visibly unchanged),
/// other UTF-8 as a JSON string, other bytes as base64; absent as `null`.
fn write_json_or_text(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return;
    };
    // UTF-8 checked once (a fast pass), so that serde reads `str` and does not check
    // each string again; bytes that are not UTF-8 are not JSON either.
    let Ok(text) = std::str::from_utf8(bytes) else {
        write_text_or_base64(bytes, out);
        return;
    };
    // The hot path's scanner first; serde decides what the scanner cannot tell.
    let raw = match json_scan::value_span(text) {
        Some((start, end)) => Some(&text[start..end]),
        None => serde_json::from_str::<&RawValue>(text)
            .ok()
            .map(RawValue::get),
    };
    match raw {
        // Pretty-printed JSON spans lines; re-serialize it compactly so every record
        // stays on one line.
        Some(raw) if !raw.contains('\n') => out.extend_from_slice(raw.as_bytes()),
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(value) => {
                serde_json::to_writer(&mut *out, &value).expect("writing to a Vec never fails");
            }
            Err(_) => out.extend_from_slice(b"null"),
        },
        None => write_json_string(text, out),
    }
}

/// UTF-8 as a JSON string, other bytes as `{"$base64": "..."}`.
fn write_text_or_base64(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => write_json_string(text, out),
        Err(_) => {
            out.extend_from_slice(br#"{"$base64":""#);
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            out.extend_from_slice(encoded.as_bytes());
            out.extend_from_slice(br#""}"#);
        }
    }
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // Topics and the lineage headers rarely hold anything to escape: copied as they are.
    if !json_scan::needs_escaping(text) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec never fails");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Header;

    #[test]
    fn renders_json_text_binary_and_tombstones() {
        let record = OutputRecord {
            timestamp: None,
            topic: "cdm.customer".into(),
            key: Some(br#"{"customerId":1}"#.to_vec()),
            value: None,
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(b"1".to_vec()),
                },
                Header {
                    key: "a".into(),
                    value: Some(vec![0xff]),
                },
                Header {
                    key: "n".into(),
                    value: None,
                },
            ],
        };
        assert_eq!(
            record_to_json_line(&record),
            r#"{"topic":"cdm.customer","key":{"customerId":1},"value":null,"headers":[["a","1"],["a",{"$base64":"/w=="}],["n",null]]}"#
        );
        let text = OutputRecord {
            timestamp: None,
            topic: "t".into(),
            key: Some(b"plain".to_vec()),
            value: Some(vec![0, 159]),
            headers: vec![],
        };
        assert_eq!(
            record_to_json_line(&text),
            r#"{"topic":"t","key":"plain","value":{"$base64":"AJ8="},"headers":[]}"#
        );
    }

    #[test]
    fn escapes_strings_and_folds_pretty_printed_json_onto_one_line() {
        let record = OutputRecord {
            timestamp: None,
            topic: "t\"q".into(),
            key: Some(b"line\nbreak".to_vec()),
            value: Some(b"{\n  \"a\": [1, 2]\n}".to_vec()),
            headers: vec![Header {
                key: "k\\".into(),
                value: Some(br#"{"not":"parsed"}"#.to_vec()),
            }],
        };
        let line = record_to_json_line(&record);
        assert_eq!(
            line,
            r#"{"topic":"t\"q","key":"line\nbreak","value":{"a":[1,2]},"headers":[["k\\","{\"not\":\"parsed\"}"]]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["value"]["a"][1], 2);
        let mut batch = Vec::new();
        write_json_line(&record, &mut batch);
        assert_eq!(
            batch,
            line.as_bytes(),
            "the buffer form writes the same bytes"
        );
    }

    #[test]
    fn json_with_bytes_that_are_not_utf8_is_written_as_base64() {
        let record = OutputRecord {
            timestamp: None,
            topic: "t".into(),
            key: Some(b"\"\xff\"".to_vec()),
            value: Some(b"{\"a\":\"\xfe\"}".to_vec()),
            headers: vec![],
        };
        let line = record_to_json_line(&record);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["key"]["$base64"], "Iv8i", "{line}");
        assert!(parsed["value"]["$base64"].is_string(), "{line}");
    }
}
