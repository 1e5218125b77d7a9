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

use crate::OutputRecord;

/// Renders one record as a JSON line (without the newline).
pub fn record_to_json_line(record: &OutputRecord) -> String {
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|h| serde_json::json!([h.key, h.value.as_deref().map(text_or_base64)]))
        .collect();
    // Written field by field to keep the order topic, key, value, headers.
    format!(
        r#"{{"topic":{},"key":{},"value":{},"headers":{}}}"#,
        serde_json::Value::String(record.topic.clone()),
        record
            .key
            .as_deref()
            .map_or_else(|| "null".to_owned(), json_or_text),
        record
            .value
            .as_deref()
            .map_or_else(|| "null".to_owned(), json_or_text),
        serde_json::Value::Array(headers),
    )
}

/// JSON bytes verbatim (byte for byte, so a republished event is visibly unchanged),
/// other UTF-8 as a JSON string, other bytes as base64.
fn json_or_text(bytes: &[u8]) -> String {
    match serde_json::from_slice::<&RawValue>(bytes) {
        // Pretty-printed JSON spans lines; re-serialize it compactly so every record
        // stays on one line.
        Ok(raw) if !raw.get().contains('\n') => raw.get().to_owned(),
        Ok(raw) => serde_json::from_str::<serde_json::Value>(raw.get())
            .map(|value| value.to_string())
            .unwrap_or_else(|_| "null".to_owned()),
        Err(_) => text_or_base64(bytes).to_string(),
    }
}

fn text_or_base64(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::Value::String(text.to_owned()),
        Err(_) => {
            serde_json::json!({ "$base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Header;

    #[test]
    fn renders_json_text_binary_and_tombstones() {
        let record = OutputRecord {
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
}
