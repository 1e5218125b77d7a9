//! Records across the plugin boundary: sluice-core's plain records to and from the WIT
//! types the bindings generate.
//!
//! The two sides have the same fields (the host's output records one more, their
//! timestamp, which the host sets), so a conversion moves each `String` and `Vec<u8>`
//! (no byte is copied). A `Vec` of headers is collected in place (the element types have
//! the same size and alignment, so the standard library reuses the allocation); a `Vec`
//! of records takes one new allocation per call.

use crate::bindings;

impl From<sluice_core::Header> for bindings::Header {
    fn from(header: sluice_core::Header) -> Self {
        Self {
            key: header.key.into_owned(),
            value: header.value,
        }
    }
}

impl From<bindings::Header> for sluice_core::Header {
    fn from(header: bindings::Header) -> Self {
        Self {
            key: header.key.into(),
            value: header.value,
        }
    }
}

impl From<sluice_core::Origin> for bindings::Origin {
    fn from(origin: sluice_core::Origin) -> Self {
        Self {
            topic: origin.topic,
            partition: origin.partition,
            offset: origin.offset,
        }
    }
}

impl From<bindings::Origin> for sluice_core::Origin {
    fn from(origin: bindings::Origin) -> Self {
        Self {
            topic: origin.topic,
            partition: origin.partition,
            offset: origin.offset,
        }
    }
}

impl From<bindings::OutputRecord> for sluice_core::OutputRecord {
    fn from(record: bindings::OutputRecord) -> Self {
        Self {
            timestamp: None,
            topic: record.topic,
            key: record.key,
            value: record.value,
            headers: headers_out(record.headers),
        }
    }
}

/// A source record's headers, as an event carries them into a plugin.
pub fn headers_in(headers: Vec<sluice_core::Header>) -> Vec<bindings::Header> {
    headers.into_iter().map(Into::into).collect()
}

/// Headers from a plugin (or an event), as sinks take them.
pub fn headers_out(headers: Vec<bindings::Header>) -> Vec<sluice_core::Header> {
    headers.into_iter().map(Into::into).collect()
}

/// A plugin's output records, as sinks take them.
pub fn records_out(records: Vec<bindings::OutputRecord>) -> Vec<sluice_core::OutputRecord> {
    records.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_records_move_without_copying_their_bytes() {
        let value = b"{\"id\":1}".to_vec();
        let value_at = value.as_ptr();
        let records = vec![bindings::OutputRecord {
            topic: "t".into(),
            key: None,
            value: Some(value),
            headers: vec![bindings::Header {
                key: "h".into(),
                value: None,
            }],
        }];
        let out = records_out(records);
        // The list itself is new (the host's records carry a timestamp too, so they are
        // larger than the plugin's): one allocation per call, not per byte.
        assert_eq!(
            out[0].value.as_ref().map(|v| v.as_ptr()),
            Some(value_at),
            "the value bytes are moved"
        );
        assert_eq!(out[0].timestamp, None);
        assert_eq!(out[0].headers[0].key, "h");
    }
}
