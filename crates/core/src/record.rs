//! The records that flow through sluice, as plain data.
//!
//! A source yields [`RawRecord`]s; plugins and capture produce [`OutputRecord`]s that a
//! sink publishes. They mirror the WIT types of the plugin contract field for field (the
//! runtime converts at the boundary by moving the fields, without copying bytes), so
//! that sources, sinks and capture never see the WebAssembly runtime. Besides, each
//! carries its Kafka timestamp, which plugins do not see or set: the host gives a
//! plugin's records the timestamp of the record they came from, as a Flink job does.

use std::borrow::Cow;

/// A stable hash of a record key's bytes (FNV-1a with a final mix: the same in every
/// process, version and platform), for dividing events by key: a canary's share of the
/// keys, a plugin's instances. A missing key hashes as an empty one.
pub fn key_hash(key: Option<&[u8]>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.unwrap_or_default() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low digits follow the last bytes closely ("id":1, "id":2, ...): mix them.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

/// One Kafka-style record header. Kafka allows null header values and repeated keys.
///
/// The key is borrowed when it is one of sluice's own names (`sluice.plugin`, ...): the
/// host stamps several on every record it publishes, and owned keys cost an allocation
/// and a free each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Cow<'static, str>,
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header with a text value.
    pub fn text(key: impl Into<Cow<'static, str>>, value: &str) -> Self {
        Self {
            key: key.into(),
            value: Some(value.as_bytes().to_vec()),
        }
    }
}

/// Where a record was read from: for Kafka the real topic, partition and offset; for a
/// file the configured or derived topic, partition 0 and the line number (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A record as a source read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub origin: Origin,
    /// Why the source could not read this record as one (a line that is not UTF-8, too
    /// long, or a keyed line whose fields have the wrong shape); `value` holds what it
    /// could read. Such a record goes to the dead-letter topic with this reason.
    pub unreadable: Option<String>,
    /// The record's timestamp, ms since the Unix epoch, when the source has one (a Kafka
    /// record's `CreateTime` or `LogAppendTime`).
    pub timestamp: Option<i64>,
}

/// A record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Destination topic.
    pub topic: String,
    /// `None`: a record without key.
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone (for compacted topics).
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// The record's timestamp, ms since the Unix epoch; `None`: the producer's clock
    /// when it is published.
    pub timestamp: Option<i64>,
}
