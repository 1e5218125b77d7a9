//! The packed layout of `wit/packed.wit`: a batch of change events written into one
//! buffer for `transform-packed`, and the outcomes read back from the buffer it returns.
//!
//! The layout itself is documented in the WIT file, word by word; this module is its
//! only writer and reader on the host side, and the SDKs' readers and writers are tested
//! against it through real components (`tests/packed.rs`).

use sluice_core::{Header, OutputRecord};

use crate::bindings::{ChangeEvent, Operation, Rejection, SnapshotMarker, Span};
use crate::limits::PluginLimits;
use crate::worker::Outcome;

/// The format version both buffers start with.
pub const VERSION: u32 = 1;
/// Words per event entry in version 1.
pub const EVENT_WORDS: usize = 49;
/// Words per header entry.
const HEADER_WORDS: usize = 4;
/// Words before the event entries: version, event count, words per event, header count.
const PREAMBLE_WORDS: usize = 4;
/// The offset (or span start, or length) of an absent value.
const NONE: u32 = u32::MAX;

/// A batch whose buffer would not fit the layout's 32-bit offsets (4 GiB).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a batch of {bytes} bytes does not fit the packed layout's 32-bit offsets")]
pub struct BatchTooLarge {
    pub bytes: usize,
}

/// Writes `events` into `out` (cleared first) in the packed layout.
///
/// The buffer is reused across batches by the caller, so a batch costs no allocation
/// once it has grown to the usual batch size.
pub fn encode_batch(events: &[ChangeEvent], out: &mut Vec<u8>) -> Result<(), BatchTooLarge> {
    let headers: usize = events.iter().map(|event| event.headers.len()).sum();
    let table_words = PREAMBLE_WORDS + events.len() * EVENT_WORDS + headers * HEADER_WORDS;
    let data: usize = events.iter().map(data_len).sum();
    out.clear();
    out.reserve(table_words * 4 + data);
    out.resize(table_words * 4, 0);
    let mut table = Table { at: 0 };
    table.put(out, VERSION);
    table.put(out, events.len() as u32);
    table.put(out, EVENT_WORDS as u32);
    table.put(out, headers as u32);
    let mut header_table = Table {
        at: (PREAMBLE_WORDS + events.len() * EVENT_WORDS) * 4,
    };
    let mut header_index = 0u32;
    let mut previous: Option<(&ChangeEvent, Shared)> = None;
    for event in events {
        table.put(out, operation_index(event.op));
        let value = append(out, &event.value);
        table.pair(out, value);
        let key = event.key.as_deref().map(|key| append(out, key));
        table.pair(out, key.unwrap_or((NONE, 0)));
        for span in [&event.before, &event.after, &event.value_schema] {
            table.pair(
                out,
                span.map_or((NONE, 0), |Span { start, len }| (start, len)),
            );
        }
        // The source strings and the topic are usually those of the event before.
        let shared = match previous {
            Some((before, shared)) if shares_strings(before, event) => shared,
            _ => Shared {
                connector: append(out, event.source.connector.as_bytes()),
                name: append(out, event.source.name.as_bytes()),
                db: append(out, event.source.db.as_bytes()),
                schema: optional_text(out, event.source.schema.as_deref()),
                table: append(out, event.source.table.as_bytes()),
                topic: append(out, event.origin.topic.as_bytes()),
            },
        };
        previous = Some((event, shared));
        let source = &event.source;
        table.pair(out, shared.connector);
        table.pair(out, shared.name);
        table.pair(out, shared.db);
        table.pair(out, shared.schema);
        table.pair(out, shared.table);
        let change_lsn = optional_text(out, source.change_lsn.as_deref());
        table.pair(out, change_lsn);
        let commit_lsn = optional_text(out, source.commit_lsn.as_deref());
        table.pair(out, commit_lsn);
        table.optional_s64(out, source.event_serial_no);
        table.put(out, snapshot_index(source.snapshot));
        table.optional_s64(out, source.ts_ms);
        table.optional_s64(out, event.ts_ms);
        match &event.transaction {
            Some(transaction) => {
                table.put(out, 1);
                let id = append(out, transaction.id.as_bytes());
                table.pair(out, id);
                table.s64(out, transaction.total_order);
                table.s64(out, transaction.data_collection_order);
            }
            None => {
                table.put(out, 0);
                table.pair(out, (NONE, 0));
                table.s64(out, 0);
                table.s64(out, 0);
            }
        }
        table.pair(out, (header_index, event.headers.len() as u32));
        for header in &event.headers {
            let key = append(out, header.key.as_bytes());
            header_table.pair(out, key);
            let value = header.value.as_deref().map(|value| append(out, value));
            header_table.pair(out, value.unwrap_or((NONE, 0)));
        }
        header_index += event.headers.len() as u32;
        table.pair(out, shared.topic);
        table.put(out, event.origin.partition as u32);
        table.s64(out, event.origin.offset);
    }
    // Offsets were written as `as u32`: only a buffer under 4 GiB has them right.
    if out.len() >= NONE as usize {
        return Err(BatchTooLarge { bytes: out.len() });
    }
    Ok(())
}

/// The offsets of the strings consecutive events usually share.
#[derive(Clone, Copy)]
struct Shared {
    connector: (u32, u32),
    name: (u32, u32),
    db: (u32, u32),
    schema: (u32, u32),
    table: (u32, u32),
    topic: (u32, u32),
}

fn shares_strings(before: &ChangeEvent, event: &ChangeEvent) -> bool {
    let (a, b) = (&before.source, &event.source);
    a.table == b.table
        && a.schema == b.schema
        && a.db == b.db
        && a.name == b.name
        && a.connector == b.connector
        && before.origin.topic == event.origin.topic
}

/// An upper bound of the bytes `event` adds to the data area (for one reservation).
fn data_len(event: &ChangeEvent) -> usize {
    let source = &event.source;
    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    event.value.len()
        + event.key.as_ref().map_or(0, Vec::len)
        + source.connector.len()
        + source.name.len()
        + source.db.len()
        + text(&source.schema)
        + source.table.len()
        + text(&source.change_lsn)
        + text(&source.commit_lsn)
        + event.transaction.as_ref().map_or(0, |t| t.id.len())
        + event
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
        + event.origin.topic.len()
}

/// Appends `bytes` to the data area; their (offset, length).
fn append(out: &mut Vec<u8>, bytes: &[u8]) -> (u32, u32) {
    let offset = out.len() as u32;
    out.extend_from_slice(bytes);
    (offset, bytes.len() as u32)
}

fn optional_text(out: &mut Vec<u8>, text: Option<&str>) -> (u32, u32) {
    text.map_or((NONE, 0), |text| append(out, text.as_bytes()))
}

/// A cursor over the word area at the front of the buffer.
struct Table {
    /// Byte position of the next word.
    at: usize,
}

impl Table {
    fn put(&mut self, out: &mut [u8], word: u32) {
        out[self.at..self.at + 4].copy_from_slice(&word.to_le_bytes());
        self.at += 4;
    }

    fn pair(&mut self, out: &mut [u8], (first, second): (u32, u32)) {
        self.put(out, first);
        self.put(out, second);
    }

    fn s64(&mut self, out: &mut [u8], value: i64) {
        let bits = value as u64;
        self.pair(out, (bits as u32, (bits >> 32) as u32));
    }

    fn optional_s64(&mut self, out: &mut [u8], value: Option<i64>) {
        self.put(out, u32::from(value.is_some()));
        self.s64(out, value.unwrap_or(0));
    }
}

fn operation_index(op: Operation) -> u32 {
    match op {
        Operation::Create => 0,
        Operation::Update => 1,
        Operation::Delete => 2,
        Operation::Read => 3,
        Operation::Truncate => 4,
        Operation::Message => 5,
    }
}

fn snapshot_index(marker: SnapshotMarker) -> u32 {
    match marker {
        SnapshotMarker::None => 0,
        SnapshotMarker::InProgress => 1,
        SnapshotMarker::First => 2,
        SnapshotMarker::FirstInDataCollection => 3,
        SnapshotMarker::LastInDataCollection => 4,
        SnapshotMarker::Last => 5,
        SnapshotMarker::Incremental => 6,
    }
}

/// Reads the outcomes of a batch of `events` events from a plugin's packed result. An
/// event whose records break `limits` (`max_records_per_event`, `max_record_bytes`) is
/// [`Outcome::OverLimit`], and its records are not built. So is an event whose records
/// would bring the host memory the batch's records take (see [`host_bytes`]) past the
/// plugin's memory cap: small records and headers cost the host several times their
/// bytes in the plugin's buffer, and this keeps what a plugin makes the host hold for
/// its output within what it may hold itself.
///
/// `host_bytes_taken`: what the batch's records already take in host memory (earlier
/// calls of the same batch, when a worker retries its events one at a time); the
/// records built here are added to it.
///
/// # Errors
///
/// The contract violation, in words, when the buffer does not hold exactly `events`
/// well-formed outcomes.
pub fn decode_outcomes(
    bytes: &[u8],
    events: usize,
    limits: &PluginLimits,
    host_bytes_taken: &mut u64,
) -> Result<Vec<Outcome>, String> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.word("the format version")?;
    if version != VERSION {
        return Err(format!(
            "packed outcomes of format version {version}; this host reads version {VERSION}"
        ));
    }
    let count = reader.word("the outcome count")? as usize;
    if count != events {
        return Err(format!(
            "transform-packed returned {count} outcomes for {events} events"
        ));
    }
    let mut outcomes = Vec::with_capacity(count);
    for index in 0..count {
        let outcome = reader
            .outcome(limits, host_bytes_taken)
            .map_err(|problem| format!("packed outcome {index}: {problem}"))?;
        outcomes.push(outcome);
    }
    if reader.at != bytes.len() {
        return Err(format!(
            "packed outcomes: {} bytes left over after the last outcome",
            bytes.len() - reader.at
        ));
    }
    Ok(outcomes)
}

/// What a record takes as a host value, by the bytes of its topic, key, value and
/// headers and its header count: the `OutputRecord` and each `Header` (48 bytes though
/// an empty header is 8 in the plugin's buffer) besides the bytes. An estimate that
/// leaves out the allocator's own rounding, for the memory cap's check on output.
pub fn host_bytes(bytes: usize, headers: usize) -> u64 {
    (std::mem::size_of::<OutputRecord>() + bytes + headers * std::mem::size_of::<Header>()) as u64
}

/// [`host_bytes`] of a record already built.
pub fn record_host_bytes(record: &OutputRecord) -> u64 {
    let headers: usize = record
        .headers
        .iter()
        .map(|header| header.key.len() + header.value.as_ref().map_or(0, Vec::len))
        .sum();
    let bytes = record.topic.len()
        + record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + headers;
    host_bytes(bytes, record.headers.len())
}

/// A bounds-checked cursor over a plugin's packed outcomes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn word(&mut self, what: &str) -> Result<u32, String> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{what}: {len} bytes at {} run past the end ({} bytes)",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn text(&mut self, what: &str) -> Result<String, String> {
        let len = self.word(what)?;
        if len == NONE {
            return Err(format!("{what} is absent"));
        }
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn optional_bytes(&mut self, what: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.optional_slice(what)?.map(<[u8]>::to_vec))
    }

    fn optional_slice(&mut self, what: &str) -> Result<Option<&'a [u8]>, String> {
        let len = self.word(what)?;
        if len == NONE {
            return Ok(None);
        }
        self.take(len as usize, what).map(Some)
    }

    /// A count of items of at least `min_bytes` each: at most what the bytes left hold,
    /// so a wild count cannot make the host reserve memory the plugin never sent.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, String> {
        let count = self.word(what)? as usize;
        let left = self.bytes.len() - self.at;
        if count > left / min_bytes {
            return Err(format!(
                "{what} {count} is more than the {left} bytes left can hold"
            ));
        }
        Ok(count)
    }

    /// One event's outcome. Records over the plugin's limits (too many for the event,
    /// one too large, or more host memory than the plugin's cap for the batch's records
    /// so far, `host_bytes_taken`) are read past without being built, so a plugin cannot
    /// make the host hold more than it may hold itself: a record takes 16 bytes in its
    /// buffer and ~100 as a host value, an empty header 8 and 48.
    fn outcome(
        &mut self,
        limits: &PluginLimits,
        host_bytes_taken: &mut u64,
    ) -> Result<Outcome, String> {
        match self.word("the outcome kind")? {
            0 => {
                // A record is at least topic, key, value lengths and a header count.
                let count = self.count("the record count", 16)?;
                let start = self.at;
                let mut over_limit = limits.too_many_records(count);
                let mut event_host_bytes = 0u64;
                for _ in 0..count {
                    let (topic, size, host_bytes) = self.skip_record()?;
                    if over_limit.is_none() && size > limits.max_record_bytes {
                        let topic = String::from_utf8_lossy(topic);
                        over_limit = limits.record_too_large(size, &topic);
                    }
                    event_host_bytes += host_bytes;
                }
                if over_limit.is_none() {
                    over_limit =
                        limits.output_over_memory_cap(*host_bytes_taken + event_host_bytes);
                }
                if let Some(reason) = over_limit {
                    return Ok(Outcome::OverLimit(reason));
                }
                *host_bytes_taken += event_host_bytes;
                // Within the limits: read again, this time building the records.
                self.at = start;
                let mut records = Vec::with_capacity(count);
                for _ in 0..count {
                    records.push(self.record()?);
                }
                Ok(Outcome::Records(records))
            }
            1 => Ok(Outcome::Rejected(Rejection {
                reason: self.text("the rejection's reason")?,
                code: match self.optional_bytes("the rejection's code")? {
                    None => None,
                    Some(code) => Some(
                        String::from_utf8(code)
                            .map_err(|_| "the rejection's code is not UTF-8".to_owned())?,
                    ),
                },
            })),
            other => Err(format!(
                "outcome kind {other} (0 is records, 1 is rejected)"
            )),
        }
    }

    /// Reads past one record, building nothing: its topic's bytes, its size as
    /// [`PluginLimits::record_size`] counts it, and what it would take as a host value
    /// ([`host_bytes`]).
    fn skip_record(&mut self) -> Result<(&'a [u8], u64, u64), String> {
        let topic = self.optional_slice("a record's topic")?;
        let topic = topic.ok_or_else(|| "a record's topic is absent".to_owned())?;
        let key = self
            .optional_slice("a record's key")?
            .map_or(0, <[u8]>::len);
        let value = self
            .optional_slice("a record's value")?
            .map_or(0, <[u8]>::len);
        let count = self.count("a record's header count", 8)?;
        let mut size = PluginLimits::record_size(key, value, []);
        let mut header_bytes = 0;
        for _ in 0..count {
            let key = self.optional_slice("a header's key")?;
            let key = key.ok_or_else(|| "a header's key is absent".to_owned())?;
            let value = self
                .optional_slice("a header's value")?
                .map_or(0, <[u8]>::len);
            size += PluginLimits::record_size(0, 0, [(key.len(), value)]);
            header_bytes += key.len() + value;
        }
        let host = host_bytes(topic.len() + key + value + header_bytes, count);
        Ok((topic, size, host))
    }

    fn record(&mut self) -> Result<OutputRecord, String> {
        let topic = self.text("a record's topic")?;
        let key = self.optional_bytes("a record's key")?;
        let value = self.optional_bytes("a record's value")?;
        // A header is at least its key's length and its value's.
        let count = self.count("a record's header count", 8)?;
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            headers.push(Header {
                key: self.text("a header's key")?.into(),
                value: self.optional_bytes("a header's value")?,
            });
        }
        Ok(OutputRecord {
            timestamp: None,
            topic,
            key,
            value,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Header, Origin, SourceInfo, TransactionInfo};

    fn event(table: &str, offset: i64) -> ChangeEvent {
        ChangeEvent {
            op: Operation::Update,
            value: br#"{"before":{"id":1},"after":{"id":2},"op":"u"}"#.to_vec(),
            before: Some(Span { start: 10, len: 8 }),
            after: Some(Span { start: 27, len: 8 }),
            source: SourceInfo {
                connector: "sqlserver".into(),
                name: "server1".into(),
                db: "shop".into(),
                schema: Some("dbo".into()),
                table: table.into(),
                change_lsn: Some("00000027:00000758:0003".into()),
                commit_lsn: None,
                event_serial_no: Some(-2),
                snapshot: SnapshotMarker::LastInDataCollection,
                ts_ms: Some(1_700_000_000_123),
            },
            ts_ms: None,
            transaction: Some(TransactionInfo {
                id: "tx-9".into(),
                total_order: i64::MIN,
                data_collection_order: 7,
            }),
            value_schema: None,
            key: Some(br#"{"id":2}"#.to_vec()),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(b"1".to_vec()),
                },
                Header {
                    key: "b".into(),
                    value: None,
                },
            ],
            origin: Origin {
                topic: "server1.shop.dbo.customers".into(),
                partition: -1,
                offset,
            },
        }
    }

    /// A reader of the batch layout written from the WIT file's table, independent of
    /// the writer: the words of event `index` and the text at an (offset, length).
    struct Batch<'a>(&'a [u8]);

    impl Batch<'_> {
        fn word(&self, index: usize) -> u32 {
            let at = index * 4;
            u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
        }
        fn event_word(&self, event: usize, word: usize) -> u32 {
            self.word(4 + event * self.word(2) as usize + word)
        }
        fn text(&self, offset: u32, len: u32) -> &str {
            std::str::from_utf8(&self.0[offset as usize..(offset + len) as usize]).expect("utf8")
        }
        fn event_text(&self, event: usize, word: usize) -> Option<&str> {
            let offset = self.event_word(event, word);
            (offset != NONE).then(|| self.text(offset, self.event_word(event, word + 1)))
        }
        fn s64(&self, event: usize, word: usize) -> i64 {
            let low = u64::from(self.event_word(event, word));
            let high = u64::from(self.event_word(event, word + 1));
            (high << 32 | low) as i64
        }
    }

    #[test]
    fn a_batch_is_written_word_for_word_as_the_wit_file_says() {
        let events = vec![
            event("customers", 41),
            event("customers", 42),
            event("orders", 43),
        ];
        let mut out = vec![0xAA; 3];
        encode_batch(&events, &mut out).expect("fits");
        let batch = Batch(&out);
        assert_eq!(
            (batch.word(0), batch.word(1), batch.word(2), batch.word(3)),
            (1, 3, 49, 6)
        );
        for (i, event) in events.iter().enumerate() {
            assert_eq!(batch.event_word(i, 0), 1, "update");
            let value = batch.event_text(i, 1).expect("value");
            assert_eq!(value.as_bytes(), &event.value[..]);
            assert_eq!(batch.event_text(i, 3), Some(r#"{"id":2}"#));
            assert_eq!((batch.event_word(i, 5), batch.event_word(i, 6)), (10, 8));
            assert_eq!(&value[27..35], r#"{"id":2}"#, "after is a span of value");
            assert_eq!(batch.event_word(i, 9), NONE, "no value schema");
            assert_eq!(batch.event_text(i, 11), Some("sqlserver"));
            assert_eq!(batch.event_text(i, 13), Some("server1"));
            assert_eq!(batch.event_text(i, 15), Some("shop"));
            assert_eq!(batch.event_text(i, 17), Some("dbo"));
            assert_eq!(batch.event_text(i, 19), Some(event.source.table.as_str()));
            assert_eq!(batch.event_text(i, 21), Some("00000027:00000758:0003"));
            assert_eq!(batch.event_text(i, 23), None, "no commit LSN");
            assert_eq!((batch.event_word(i, 25), batch.s64(i, 26)), (1, -2));
            assert_eq!(batch.event_word(i, 28), 4, "last-in-data-collection");
            assert_eq!(
                (batch.event_word(i, 29), batch.s64(i, 30)),
                (1, 1_700_000_000_123)
            );
            assert_eq!(batch.event_word(i, 32), 0, "no envelope ts_ms");
            assert_eq!(batch.event_word(i, 35), 1);
            assert_eq!(batch.event_text(i, 36), Some("tx-9"));
            assert_eq!((batch.s64(i, 38), batch.s64(i, 40)), (i64::MIN, 7));
            let (first, count) = (batch.event_word(i, 42), batch.event_word(i, 43));
            assert_eq!((first, count), (2 * i as u32, 2));
            let header = |h: u32, w: usize| batch.word(4 + 3 * 49 + (h as usize) * 4 + w);
            assert_eq!(batch.text(header(first, 0), header(first, 1)), "a");
            assert_eq!(batch.text(header(first, 2), header(first, 3)), "1");
            assert_eq!(header(first + 1, 2), NONE, "a null header value");
            assert_eq!(batch.event_text(i, 44), Some("server1.shop.dbo.customers"));
            assert_eq!(batch.event_word(i, 46), u32::MAX, "partition -1");
            assert_eq!(batch.s64(i, 47), 41 + i as i64);
        }
        // Shared strings: the second event reuses the first's table name, the third not.
        assert_eq!(batch.event_word(1, 19), batch.event_word(0, 19));
        assert_ne!(batch.event_word(2, 19), batch.event_word(0, 19));
        // An empty batch is just the preamble.
        encode_batch(&[], &mut out).expect("fits");
        assert_eq!(out.len(), 16);
    }

    /// The outcome stream's writer, as the SDKs write it.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn word(&mut self, word: u32) -> &mut Self {
            self.0.extend_from_slice(&word.to_le_bytes());
            self
        }
        fn bytes(&mut self, bytes: Option<&[u8]>) -> &mut Self {
            match bytes {
                Some(bytes) => {
                    self.word(bytes.len() as u32);
                    self.0.extend_from_slice(bytes);
                }
                None => {
                    self.word(NONE);
                }
            }
            self
        }
    }

    #[test]
    fn outcomes_are_read_back_and_violations_named() {
        let limits = PluginLimits::default();
        let mut w = Writer::default();
        w.word(1).word(3);
        w.word(0).word(2);
        w.bytes(Some(b"cdm.customer"))
            .bytes(Some(b"{\"id\":2}"))
            .bytes(Some(b"{}"));
        w.word(2)
            .bytes(Some(b"h"))
            .bytes(Some(b"v"))
            .bytes(Some(b"n"))
            .bytes(None);
        w.bytes(Some(b"cdm.customer"))
            .bytes(None)
            .bytes(None)
            .word(0);
        w.word(1)
            .bytes(Some("no après".as_bytes()))
            .bytes(Some(b"missing"));
        w.word(0).word(0);
        let outcomes = decode_outcomes(&w.0, 3, &limits, &mut 0).expect("well formed");
        let Outcome::Records(records) = &outcomes[0] else {
            panic!("records");
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].topic, "cdm.customer");
        assert_eq!(records[0].key.as_deref(), Some(&b"{\"id\":2}"[..]));
        assert_eq!(records[0].headers[1].value, None);
        assert_eq!(
            (records[1].key.clone(), records[1].value.clone()),
            (None, None)
        );
        assert_eq!(
            outcomes[1],
            Outcome::Rejected(Rejection {
                reason: "no après".into(),
                code: Some("missing".into())
            })
        );
        assert_eq!(outcomes[2], Outcome::Records(vec![]));

        let error = decode_outcomes(&w.0, 4, &limits, &mut 0).expect_err("count");
        assert!(error.contains("3 outcomes for 4 events"), "{error}");
        let mut extra = w.0.clone();
        extra.push(0);
        let error = decode_outcomes(&extra, 3, &limits, &mut 0).expect_err("left over");
        assert!(error.contains("1 bytes left over"), "{error}");
        let error = decode_outcomes(&w.0[..w.0.len() - 10], 3, &limits, &mut 0).expect_err("cut");
        assert!(error.contains("packed outcome 1"), "{error}");
        let mut wild = Writer::default();
        wild.word(1).word(1).word(0).word(u32::MAX - 1);
        let error = decode_outcomes(&wild.0, 1, &limits, &mut 0).expect_err("wild count");
        assert!(error.contains("record count"), "{error}");
        let mut bad = Writer::default();
        bad.word(1)
            .word(1)
            .word(0)
            .word(1)
            .bytes(Some(&[0xff, 0xfe]));
        bad.bytes(None).bytes(None).word(0);
        let error = decode_outcomes(&bad.0, 1, &limits, &mut 0).expect_err("not utf-8");
        assert!(error.contains("topic is not UTF-8"), "{error}");
        let error =
            decode_outcomes(&[2, 0, 0, 0, 0, 0, 0, 0], 0, &limits, &mut 0).expect_err("version");
        assert!(error.contains("format version 2"), "{error}");
        let error = decode_outcomes(&[], 0, &limits, &mut 0).expect_err("empty");
        assert!(error.contains("version"), "{error}");
    }

    /// Records over the plugin's limits are read past, not built: the outcome names the
    /// limit, and the rest of the batch reads on.
    #[test]
    fn outcomes_over_the_limits_are_named_without_being_built() {
        let limits = PluginLimits {
            max_records_per_event: 3,
            max_record_bytes: 100,
            ..PluginLimits::default()
        };
        let empty_record = |w: &mut Writer| {
            w.bytes(Some(b"t")).bytes(None).bytes(None).word(0);
        };
        let mut w = Writer::default();
        w.word(1).word(4);
        // Four records for one event, over 3.
        w.word(0).word(4);
        for _ in 0..4 {
            empty_record(&mut w);
        }
        // One record whose 60 empty headers count 120 bytes of framing, over 100.
        w.word(0).word(1);
        w.bytes(Some(b"t")).bytes(None).bytes(None).word(60);
        for _ in 0..60 {
            w.bytes(Some(b"")).bytes(None);
        }
        // A record of 101 bytes of value.
        w.word(0).word(1);
        w.bytes(Some(b"big"))
            .bytes(None)
            .bytes(Some(&[b'x'; 101]))
            .word(0);
        // Within both limits: 3 records, one of 100 bytes (98 + a 0-byte header's 2).
        w.word(0).word(3);
        empty_record(&mut w);
        empty_record(&mut w);
        w.bytes(Some(b"t"))
            .bytes(None)
            .bytes(Some(&[b'y'; 98]))
            .word(1);
        w.bytes(Some(b"")).bytes(None);
        let outcomes = decode_outcomes(&w.0, 4, &limits, &mut 0).expect("well formed");
        let reason = |at: usize| match &outcomes[at] {
            Outcome::OverLimit(reason) => reason.clone(),
            other => panic!("outcome {at} over its limit: {other:?}"),
        };
        assert!(
            reason(0).contains("4 records for one event, over its limit of 3"),
            "{}",
            reason(0)
        );
        assert!(
            reason(1)
                .contains("a record of 120 bytes for topic \"t\", over its limit of 100 bytes"),
            "{}",
            reason(1)
        );
        assert!(
            reason(2).contains("a record of 101 bytes for topic \"big\""),
            "{}",
            reason(2)
        );
        let Outcome::Records(records) = &outcomes[3] else {
            panic!("records within the limits");
        };
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].value.as_deref().map(<[u8]>::len), Some(98));
        // A broken layout inside an over-limit outcome is still a violation.
        let mut cut = Writer::default();
        cut.word(1).word(1).word(0).word(4);
        for _ in 0..3 {
            empty_record(&mut cut);
        }
        cut.bytes(Some(b"t")).word(7);
        let error = decode_outcomes(&cut.0, 1, &limits, &mut 0).expect_err("cut short");
        assert!(error.contains("packed outcome 0"), "{error}");
    }

    /// What a batch's records would take in host memory counts against the plugin's
    /// memory cap: the event that would pass it is read past, not built, and later
    /// events that fit in what is left are built.
    #[test]
    fn output_over_the_memory_cap_in_host_memory_is_named_without_being_built() {
        // One record of 100 empty headers: 9 + 100 * 8 bytes in the buffer, about six
        // times that as a host value.
        let flood = host_bytes(1, 100);
        let single = host_bytes(1, 0);
        let limits = PluginLimits {
            memory_bytes: 2 * flood + single,
            ..PluginLimits::default()
        };
        let mut w = Writer::default();
        w.word(1).word(4);
        for _ in 0..3 {
            w.word(0).word(1);
            w.bytes(Some(b"t")).bytes(None).bytes(None).word(100);
            for _ in 0..100 {
                w.bytes(Some(b"")).bytes(None);
            }
        }
        w.word(0).word(1);
        w.bytes(Some(b"t")).bytes(None).bytes(None).word(0);
        assert!(
            (w.0.len() as u64) < limits.memory_bytes / 3,
            "the buffer is far smaller than the host values"
        );
        let outcomes = decode_outcomes(&w.0, 4, &limits, &mut 0).expect("well formed");
        assert!(matches!(&outcomes[0], Outcome::Records(r) if r[0].headers.len() == 100));
        assert!(matches!(&outcomes[1], Outcome::Records(r) if r[0].headers.len() == 100));
        let Outcome::OverLimit(reason) = &outcomes[2] else {
            panic!("the third flood passes the cap: {:?}", outcomes[2]);
        };
        let expected = format!(
            "would take {} bytes of host memory with those of the events before in its batch, over its memory cap of {} bytes (limits.memory)",
            3 * flood,
            limits.memory_bytes
        );
        assert!(reason.contains(&expected), "{reason}");
        assert!(
            matches!(&outcomes[3], Outcome::Records(r) if r.len() == 1),
            "what is left of the cap still takes a small record: {:?}",
            outcomes[3]
        );
        assert_eq!(
            record_host_bytes(&OutputRecord {
                timestamp: None,
                topic: "t".into(),
                key: None,
                value: None,
                headers: vec![
                    sluice_core::Header {
                        key: "".into(),
                        value: None
                    };
                    100
                ],
            }),
            flood,
            "a built record is counted as its buffer form is"
        );
    }
}
