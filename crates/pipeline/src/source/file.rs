//! A source reading Debezium JSON lines from a file or standard input.
//!
//! Each line is one record, in one of two forms:
//!
//! - **keyed**: `{"topic": "...", "key": <JSON or null>, "value": <envelope or null>,
//!   "headers": {"name": "text", ...}}` — `value` is a Debezium envelope in either JSON
//!   form (bare or schema+payload), or `null` for a tombstone; `topic` and `headers` are
//!   optional;
//! - **bare**: a Debezium envelope alone (an object with `op` or `payload` at the top),
//!   with no key.
//!
//! The topic of a record is, in order: the source's configured topic, the line's
//! `topic`, or the topic Debezium would have written the event to
//! (`<name>.<db>.<schema>.<table>` from the `source` block). The partition is 0 and the
//! offset is the line's number, counted from 0 (blank lines count, so offsets match
//! `sed -n`). A line that cannot be read costs only itself: one that is not JSON, not
//! UTF-8, longer than [`MAX_LINE_BYTES`], or a keyed line with a field of the wrong shape
//! becomes a record the pipeline sends to the dead-letter topic with the reason (its line
//! number as the offset), and reading goes on with the next line.

use std::ops::Range;
use std::path::PathBuf;

use futures::FutureExt as _;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use sluice_core::connector::SourceKind;
use sluice_core::settings::{Problems, optional_path, topic_name};
use sluice_core::source::{Source, SourceError};
use sluice_core::{Header, Origin, RawRecord};

use super::top_level;

/// Where a file source reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileInput {
    Stdin,
    Path(PathBuf),
}

impl std::fmt::Display for FileInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileInput::Stdin => f.write_str("<stdin>"),
            FileInput::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How long a partial batch waits, counted from its first record, for more lines from a
/// live stream (standard input, a pipe, a growing file) before it is processed anyway.
/// Lines of a file on disk arrive at once, so this only bounds the latency of a slow
/// stream: 50 ms batches bursts without holding a lone event noticeably.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// The longest line read whole. Kafka's own default cap on a message is 1 MB and
/// Debezium events of very wide rows stay well under this; a longer line is almost
/// certainly not one event, and holding it would let one line take the host's memory.
/// Its first [`KEPT_OF_LONG_LINE`] bytes go to the dead-letter topic with the reason.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// How much of a line over [`MAX_LINE_BYTES`] is kept for the dead-letter topic: enough
/// to recognise it, small enough for any broker's message size.
pub const KEPT_OF_LONG_LINE: usize = 1024;

/// `[source] type = "file"`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    /// The file to read; absent or `"-"`: standard input.
    path: Option<String>,
    /// The topic of every record (else the line's, else Debezium's).
    topic: Option<String>,
}

/// `[source] type = "file"`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSourceSettings {
    /// The file to read (`None`: standard input).
    pub path: Option<PathBuf>,
    /// The topic of every record (else the line's, else Debezium's).
    pub topic: Option<String>,
}

impl SourceKind for FileSourceSettings {
    type Raw = RawFileSource;
    type Source = FileSource;

    fn validate(raw: RawFileSource, base: &std::path::Path, problems: &mut Problems) -> Self {
        let path = optional_path(raw.path.as_deref(), base, "source.path", problems, true);
        let topic = raw
            .topic
            .filter(|topic| topic_name(topic, "source.topic", problems));
        Self { path, topic }
    }

    /// Standard input can be read only once: one lane for every plugin.
    fn read_once(&self) -> bool {
        self.path.is_none()
    }

    async fn open(
        &self,
        _lane: &str,
        _telemetry: &std::sync::Arc<sluice_core::telemetry::Telemetry>,
    ) -> Result<FileSource, SourceError> {
        let input = self.path.clone().map_or(FileInput::Stdin, FileInput::Path);
        FileSource::open(input, self.topic.clone()).await
    }
}

/// Reads JSON lines (see the module docs).
pub struct FileSource {
    name: String,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    topic: Option<String>,
    next_line: i64,
    /// The line being read (its first [`KEPT_OF_LONG_LINE`] bytes once it is over
    /// `max_line`) and its length so far. Kept here, not in the future of `next_batch`,
    /// so a cancelled call loses no partial line.
    line: Vec<u8>,
    length: u64,
    max_line: usize,
    /// Records read for the batch being assembled. Kept here, not in the future of
    /// `next_batch`, so a cancelled call (shutdown) loses nothing already read.
    pending: Vec<RawRecord>,
    /// When the first record of `pending` was read: the batch leaves [`LINGER`] after.
    batch_started: Option<Instant>,
    committed_through: Option<i64>,
}

/// One line as read: its bytes (without the line end; only a prefix when it is over
/// the bound) and its whole length.
struct Line {
    bytes: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How much of the input is read at a time. Tokio reads files and standard input on its
/// blocking threads, one hand-off per read: 8 KiB (the default) would be one hand-off per
/// ~8 Debezium events.
const READ_BUFFER: usize = 256 * 1024;

impl FileSource {
    /// Opens `input`; `topic` overrides every record's topic.
    pub async fn open(input: FileInput, topic: Option<String>) -> Result<Self, SourceError> {
        let name = input.to_string();
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = match input {
            FileInput::Stdin => Box::new(BufReader::with_capacity(READ_BUFFER, tokio::io::stdin())),
            FileInput::Path(path) => {
                let file =
                    tokio::fs::File::open(&path)
                        .await
                        .map_err(|source| SourceError::Io {
                            input: name.clone(),
                            source,
                        })?;
                Box::new(BufReader::with_capacity(READ_BUFFER, file))
            }
        };
        Ok(Self::from_reader(name, reader, topic))
    }

    /// Reads lines from any reader (used by tests and `sluice plugin test`).
    pub fn from_reader(
        name: String,
        reader: Box<dyn AsyncBufRead + Send + Unpin>,
        topic: Option<String>,
    ) -> Self {
        Self {
            name,
            reader,
            topic,
            next_line: 0,
            line: Vec::new(),
            length: 0,
            max_line: MAX_LINE_BYTES,
            pending: Vec::new(),
            batch_started: None,
            committed_through: None,
        }
    }

    /// Reads lines of at most `bytes` whole (default [`MAX_LINE_BYTES`]).
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line = bytes.max(1);
        self
    }

    /// The next line, `None` at the end of the input. Cancel-safe: what was read of a
    /// line stays in `self`. A line over the bound is read to its end, keeping only its
    /// first [`KEPT_OF_LONG_LINE`] bytes, so memory stays bounded whatever the input.
    async fn read_line(&mut self) -> Result<Option<Line>, SourceError> {
        loop {
            let available = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| SourceError::Io {
                    input: self.name.clone(),
                    source,
                })?;
            if available.is_empty() {
                if self.length == 0 {
                    return Ok(None);
                }
                // A last line without a line end.
                return Ok(Some(self.take_line()));
            }
            let (chunk, used, complete) = match memchr::memchr(b'\n', available) {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            self.length = self.length.saturating_add(chunk.len() as u64);
            if self.length <= self.max_line as u64 {
                self.line.extend_from_slice(chunk);
            } else {
                // Over the bound: keep a prefix for the dead letter, count the rest.
                let keep = KEPT_OF_LONG_LINE.min(self.max_line);
                self.line.truncate(keep);
                let room = keep - self.line.len();
                self.line.extend_from_slice(&chunk[..room.min(chunk.len())]);
            }
            self.reader.consume(used);
            if complete {
                return Ok(Some(self.take_line()));
            }
        }
    }

    fn take_line(&mut self) -> Line {
        // The next line is likely about as long: start it with that room (bounded).
        let room = (self.line.len() + self.line.len() / 4).min(64 * 1024);
        let mut bytes = std::mem::replace(&mut self.line, Vec::with_capacity(room));
        let length = std::mem::take(&mut self.length);
        if length <= self.max_line as u64 && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Line { bytes, length }
    }

    /// The last line number committed, if any.
    pub fn committed_through(&self) -> Option<i64> {
        self.committed_through
    }
}

impl Source for FileSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        while self.pending.len() < max.max(1) {
            // The first record waits as long as it takes; the batch then leaves at most
            // LINGER after it, however the later lines trickle in. `read_line` is
            // cancel-safe, so a timeout loses no partial line.
            // A line already in the read buffer is taken without a timer: most are, and
            // a timer per line costs more than reading it.
            let line = match self.read_line().now_or_never() {
                Some(line) => line?,
                None => match self.batch_started {
                    None => self.read_line().await?,
                    Some(started) => {
                        match tokio::time::timeout_at(started + LINGER, self.read_line()).await {
                            Ok(line) => line?,
                            Err(_) => break,
                        }
                    }
                },
            };
            let Some(line) = line else { break };
            let offset = self.next_line;
            self.next_line += 1;
            let over = line.length > self.max_line as u64;
            if !over && line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = if over {
                too_long(line, offset, self.max_line, self.topic.as_deref())
            } else {
                parse_line(line.bytes, offset, self.topic.as_deref())
            };
            self.pending.push(record);
            self.batch_started.get_or_insert_with(Instant::now);
        }
        self.batch_started = None;
        let batch = std::mem::take(&mut self.pending);
        Ok((!batch.is_empty()).then_some(batch))
    }

    async fn commit(&mut self, last: &[Origin]) -> Result<(), SourceError> {
        if let Some(offset) = last.iter().map(|origin| origin.offset).max() {
            self.committed_through = Some(offset);
        }
        Ok(())
    }
}

/// The record's origin: the configured topic, else `topic`, else `file`.
fn origin(topic_override: Option<&str>, topic: Option<String>, offset: i64) -> Origin {
    Origin {
        topic: topic_override
            .map(str::to_owned)
            .or(topic)
            .unwrap_or_else(|| "file".to_owned()),
        partition: 0,
        offset,
    }
}

/// A line over the bound: its kept prefix, for the dead-letter topic with the reason.
fn too_long(line: Line, offset: i64, max: usize, topic_override: Option<&str>) -> RawRecord {
    let length = line.length;
    RawRecord {
        timestamp: None,
        key: None,
        unreadable: Some(format!(
            "line is {length} bytes, over the limit of {max} bytes; its first {} bytes are kept",
            line.bytes.len()
        )),
        value: Some(line.bytes),
        headers: Vec::new(),
        origin: origin(topic_override, None, offset),
    }
}

/// A line's top-level fields that tell its form, each as its raw JSON (`null` included),
/// `None` when absent. Read in one pass that neither builds a map nor copies anything.
#[derive(Deserialize)]
struct LineFields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    key: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    headers: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    source: Option<&'a RawValue>,
}

/// A field that is present, `null` or not.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// Parses one line into a raw record; a line that cannot be parsed still becomes a
/// record (whole line as value) so the pipeline dead-letters it with the reason.
fn parse_line(line: Vec<u8>, offset: i64, topic_override: Option<&str>) -> RawRecord {
    match parse_scanned(line, offset, topic_override) {
        Ok(record) => record,
        Err(line) => parse_line_with_serde(line, offset, topic_override),
    }
}

/// Where a line's fields that tell its form lie, as [`top_level::visit_fields`] found them.
#[derive(Default)]
struct FieldRanges {
    value: Option<Range<usize>>,
    key: Option<Range<usize>>,
    topic: Option<Range<usize>>,
    headers: Option<Range<usize>>,
    op: Option<Range<usize>>,
    payload: Option<Range<usize>>,
    source: Option<Range<usize>>,
    /// Whether the line has other top-level fields.
    others: bool,
}

impl FieldRanges {
    /// `None` when the scanner cannot tell, or a field is repeated (serde refuses that).
    fn scan(text: &[u8]) -> Option<Self> {
        let mut ranges = Self::default();
        top_level::visit_fields(text, |field| {
            let slot = match field.name {
                b"value" => &mut ranges.value,
                b"key" => &mut ranges.key,
                b"topic" => &mut ranges.topic,
                b"headers" => &mut ranges.headers,
                b"op" => &mut ranges.op,
                b"payload" => &mut ranges.payload,
                b"source" => &mut ranges.source,
                _ => {
                    ranges.others = true;
                    return Some(());
                }
            };
            // A repeated field: serde refuses those, so the line goes to serde.
            slot.replace(field.value).is_none().then_some(())
        })?;
        Some(ranges)
    }

    /// The line's text of a field that is present and not `null`.
    fn text<'a>(line: &'a [u8], range: &Option<Range<usize>>) -> Option<&'a [u8]> {
        range
            .as_ref()
            .map(|range| &line[range.clone()])
            .filter(|text| *text != b"null")
    }
}

/// [`parse_line`] through [`top_level::visit_fields`], which skips over the ~1 KB envelope
/// instead of validating it here and again when it is decoded. Gives the same record as
/// [`parse_line_with_serde`] for the JSON lines it takes (checked by the `file_lines`
/// fuzz target). A keyed line whose `value` is an object, array or string that is not
/// JSON (or not UTF-8) is still read as keyed (serde would take the whole line as a bare value): its
/// key and topic are kept, and the decoder dead-letters the value with its reason.
/// It gives the line back for any other
/// (a field of the wrong shape, a keyed line with fields beside the four, anything the
/// scanner cannot tell), so that serde's reading says what is wrong, as before. What
/// is not validated here is by whoever reads it: the envelope by the decoder (a bare
/// line is its envelope; a keyed line's `value` is), `topic`, `key` and `headers` here.
fn parse_scanned(
    mut line: Vec<u8>,
    offset: i64,
    topic_override: Option<&str>,
) -> Result<RawRecord, Vec<u8>> {
    let Some(ranges) = FieldRanges::scan(&line) else {
        return Err(line);
    };
    let keyed = ranges.value.is_some()
        && ranges.op.is_none()
        && ranges.payload.is_none()
        && ranges.source.is_none();
    if !keyed {
        let topic = match topic_override {
            Some(_) => None,
            None => topic_of(
                FieldRanges::text(&line, &ranges.source).and_then(as_str),
                FieldRanges::text(&line, &ranges.payload).and_then(as_str),
            ),
        };
        return Ok(RawRecord {
            timestamp: None,
            key: None,
            value: Some(line),
            headers: Vec::new(),
            origin: origin(topic_override, topic, offset),
            unreadable: None,
        });
    }
    if ranges.others {
        return Err(line);
    }
    let Some(KeyedFields {
        topic,
        key,
        headers,
    }) = keyed_fields(&line, &ranges)
    else {
        return Err(line);
    };
    // The value takes the line's buffer: moved to its front, not copied into a new one.
    let value = match ranges.value {
        Some(range) if line[range.clone()] != *b"null" => {
            line.copy_within(range.clone(), 0);
            line.truncate(range.len());
            Some(line)
        }
        _ => None,
    };
    // An empty `topic` is no topic (as serde's reading has it): the default, not derived.
    let topic = match topic_override {
        Some(_) => None,
        None => topic
            .or_else(|| value.as_deref().and_then(derived_topic))
            .filter(|topic| !topic.is_empty()),
    };
    Ok(RawRecord {
        timestamp: None,
        key,
        value,
        headers,
        origin: origin(topic_override, topic, offset),
        unreadable: None,
    })
}

/// A keyed line's fields beside its `value`.
struct KeyedFields {
    topic: Option<String>,
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
}

/// Reads a keyed line's `topic`, `key` and `headers` and checks a `value` that is a bare
/// token; `None` if one is not of its shape (serde's reading then says which).
fn keyed_fields(line: &[u8], ranges: &FieldRanges) -> Option<KeyedFields> {
    let topic = match FieldRanges::text(line, &ranges.topic) {
        None => None,
        Some(text) => Some(serde_json::from_slice::<String>(text).ok()?),
    };
    let key = match FieldRanges::text(line, &ranges.key) {
        None => None,
        Some(text) => {
            // As a raw value: JSON and UTF-8 (`IgnoredAny` would pass other bytes).
            serde_json::from_slice::<&RawValue>(text).ok()?;
            Some(text.to_vec())
        }
    };
    let headers = match FieldRanges::text(line, &ranges.headers) {
        None => Vec::new(),
        Some(text) => headers_from_json(serde_json::from_slice(text).ok()?),
    };
    // An object, array or string is the decoder's to validate; a bare token is here.
    if let Some(text) = FieldRanges::text(line, &ranges.value)
        && !matches!(text[0], b'{' | b'[' | b'"')
    {
        serde_json::from_slice::<IgnoredAny>(text).ok()?;
    }
    Some(KeyedFields {
        topic,
        key,
        headers,
    })
}

/// A field's raw JSON as text (it is the line's own bytes, so UTF-8 unless the line is
/// not, which the decoder reports).
fn as_str(text: &[u8]) -> Option<&str> {
    std::str::from_utf8(text).ok()
}

/// [`parse_line`] through serde's reading of the whole line.
fn parse_line_with_serde(line: Vec<u8>, offset: i64, topic_override: Option<&str>) -> RawRecord {
    let fields: Option<LineFields<'_>> = serde_json::from_slice(&line).ok();
    // Keyed lines have a top-level `value` (possibly null) and none of an envelope's fields.
    if let Some(fields) = &fields
        && fields.value.is_some()
        && fields.op.is_none()
        && fields.payload.is_none()
        && fields.source.is_none()
    {
        return match keyed(fields) {
            Ok(mut record) => {
                let topic = std::mem::take(&mut record.origin.topic);
                record.origin =
                    origin(topic_override, (!topic.is_empty()).then_some(topic), offset);
                record
            }
            Err(reason) => RawRecord {
                timestamp: None,
                key: None,
                unreadable: Some(format!("a keyed line (top-level `value`) {reason}")),
                value: Some(line),
                headers: Vec::new(),
                origin: origin(topic_override, None, offset),
            },
        };
    }
    // A configured topic wins: no need to derive one.
    let topic = match (topic_override, &fields) {
        (None, Some(fields)) => topic_of(
            fields.source.map(RawValue::get),
            fields.payload.map(RawValue::get),
        ),
        _ => None,
    };
    RawRecord {
        timestamp: None,
        key: None,
        value: Some(line),
        headers: Vec::new(),
        origin: origin(topic_override, topic, offset),
        unreadable: None,
    }
}

/// The record of a keyed line's fields (its origin's topic is the line's `topic` or the
/// derived one, empty when neither); the error names the field of the wrong shape.
fn keyed(fields: &LineFields<'_>) -> Result<RawRecord, String> {
    let topic = match not_null(fields.topic) {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<String>(raw.get())
                .map_err(|_| format!("has a `topic` that is not a string: {}", raw.get()))?,
        ),
    };
    let headers = match not_null(fields.headers) {
        None => Vec::new(),
        Some(raw) => headers_from_json(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get())
                .map_err(|_| {
                    "has `headers` that are not an object of names to values (e.g. {\"trace\": \"abc\"})".to_owned()
                })?,
        ),
    };
    let value = not_null(fields.value).map(|v| v.get().as_bytes().to_vec());
    let topic = topic.or_else(|| value.as_deref().and_then(derived_topic));
    Ok(RawRecord {
        timestamp: None,
        key: not_null(fields.key).map(|k| k.get().as_bytes().to_vec()),
        value,
        headers,
        origin: Origin {
            topic: topic.unwrap_or_default(),
            partition: 0,
            offset: 0,
        },
        unreadable: None,
    })
}

/// A field that is present and not `null`.
fn not_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|raw| raw.get() != "null")
}

/// The Debezium topic of an envelope, from its `source` block, if it has one.
fn derived_topic(value: &[u8]) -> Option<String> {
    if let Some(ranges) = FieldRanges::scan(value) {
        return topic_of(
            FieldRanges::text(value, &ranges.source).and_then(as_str),
            FieldRanges::text(value, &ranges.payload).and_then(as_str),
        );
    }
    let fields: LineFields<'_> = serde_json::from_slice(value).ok()?;
    topic_of(
        fields.source.map(RawValue::get),
        fields.payload.map(RawValue::get),
    )
}

/// The Debezium topic named by an envelope's `source` block, or by the `source` block
/// inside its `payload` (the schema+payload form); each given as its raw JSON.
fn topic_of(source: Option<&str>, payload: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct SourceNames {
        #[serde(default)]
        name: String,
        #[serde(default)]
        db: String,
        #[serde(default)]
        schema: Option<String>,
        table: String,
    }
    fn not_null(raw: Option<&str>) -> Option<&str> {
        raw.filter(|raw| *raw != "null")
    }
    let inner: LineFields<'_>;
    let source = match (not_null(source), not_null(payload)) {
        (Some(source), _) => source,
        (None, Some(payload)) => {
            inner = serde_json::from_str(payload).ok()?;
            not_null(inner.source.map(RawValue::get))?
        }
        (None, None) => return None,
    };
    let source: SourceNames = serde_json::from_str(source).ok()?;
    Some(match source.schema {
        Some(schema) => format!("{}.{}.{}.{}", source.name, source.db, schema, source.table),
        None => format!("{}.{}.{}", source.name, source.db, source.table),
    })
}

fn headers_from_json(map: serde_json::Map<String, serde_json::Value>) -> Vec<Header> {
    map.into_iter()
        .map(|(key, value)| Header {
            key: key.into(),
            value: match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some(text.into_bytes()),
                other => Some(other.to_string().into_bytes()),
            },
        })
        .collect()
}

/// Entry points for the coverage-guided fuzzers in `fuzz/` (built with `--cfg fuzzing`
/// only).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Reads `line` as the file source does (it must not panic), and checks the
    /// scanner's claim: for a JSON line it takes, the record serde's reading gives.
    pub fn parse_line(line: &[u8]) {
        let by_serde = super::parse_line_with_serde(line.to_vec(), 3, None);
        // (From `str`: serde skips a string's bytes unchecked when it ignores them.)
        let json = std::str::from_utf8(line)
            .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        if let Ok(scanned) = super::parse_scanned(line.to_vec(), 3, None)
            && json
        {
            assert_eq!(
                scanned,
                by_serde,
                "the scanner and serde read {:?} differently",
                String::from_utf8_lossy(line)
            );
        }
        let _ = super::parse_line(line.to_vec(), 3, Some("configured"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(text: &'static str, topic: Option<&str>) -> Vec<RawRecord> {
        let mut source = FileSource::from_reader(
            "test".into(),
            Box::new(text.as_bytes()),
            topic.map(str::to_owned),
        );
        let mut all = Vec::new();
        while let Some(batch) = source.next_batch(2).await.expect("reads") {
            assert!(batch.len() <= 2);
            all.extend(batch);
        }
        all
    }

    #[tokio::test]
    async fn reads_keyed_bare_tombstone_and_garbage_lines() {
        let text = concat!(
            r#"{"topic":"t1","key":{"id":1},"value":{"op":"c","after":{"id":1},"source":{"table":"x"}},"headers":{"h":"v","n":null}}"#,
            "\n",
            "\n",
            r#"{"op":"c","after":{"id":2},"source":{"name":"s","db":"d","schema":"dbo","table":"customers"}}"#,
            "\n",
            r#"{"key":{"id":1},"value":null}"#,
            "\n",
            "not json\n",
        );
        let records = read_all(text, None).await;
        assert_eq!(records.len(), 4, "blank lines are skipped, nothing else is");
        assert_eq!(records[0].origin.topic, "t1");
        assert_eq!(records[0].key.as_deref(), Some(&br#"{"id":1}"#[..]));
        assert_eq!(records[0].headers[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(records[0].headers[1].value, None);
        assert_eq!(records[1].origin.offset, 2, "offsets are line numbers");
        assert_eq!(
            records[1].origin.topic, "s.d.dbo.customers",
            "derived like Debezium"
        );
        assert_eq!(records[1].key, None);
        assert_eq!(records[2].value, None, "tombstone");
        assert_eq!(
            records[3].value.as_deref(),
            Some(&b"not json"[..]),
            "garbage is kept for the DLQ"
        );
    }

    /// The scanner's fast path gives what serde's reading gives, for every line it takes;
    /// the lines it gives back are the ones only serde can judge.
    #[test]
    fn the_fast_path_reads_lines_as_serde_does() {
        let envelope = r#"{"before":null,"after":{"id":1,"s":"a\"}b","n":[1,{"x":"]"}]},"source":{"name":"s","db":"d","schema":"dbo","table":"t"},"op":"c","ts_ms":1}"#;
        let taken = [
            format!(r#"{{"topic":"t1","key":{{"id":1}},"value":{envelope},"headers":{{"h":"v","n":null,"o":{{"a":1}}}}}}"#),
            format!(r#"{{"key":{{"id":1}},"value":{envelope}}}"#),
            format!(r#"  {{ "value" : {envelope} , "key" : "k" , "topic" : null }}  "#),
            format!(r#"{{"value":{envelope},"key":null,"headers":null}}"#),
            r#"{"key":{"id":1},"value":null}"#.to_owned(),
            r#"{"value":null,"topic":"x"}"#.to_owned(),
            r#"{"value":12}"#.to_owned(),
            r#"{"value":"text"}"#.to_owned(),
            envelope.to_owned(),
            r#"{"schema":{"type":"struct"},"payload":{"op":"c","source":{"name":"s","db":"d","table":"t"}}}"#.to_owned(),
            r#"{"op":"c","source":null}"#.to_owned(),
            r#"{"op":"c","source":{"name":1}}"#.to_owned(),
            r#"{"value":{"op":"c"},"op":"c"}"#.to_owned(),
            "{}".to_owned(),
        ];
        let given_back = [
            r#"{"key":1,"value":{"op":"c"},"headers":["not","a","map"]}"#,
            r#"{"topic":7,"value":{}}"#,
            r#"{"key":{"a":tru},"value":{}}"#,
            r#"{"value":nul}"#,
            r#"{"value":{},"extra":1}"#,
            r#"{"value":{},"value":{}}"#,
            r#"{"va\u006cue":{}}"#,
            "not json",
            "[1,2]",
            r#"{"value":{}} trailing"#,
        ];
        for topic in [None, Some("configured")] {
            for (offset, line) in taken.iter().enumerate() {
                let fast = parse_scanned(line.clone().into_bytes(), offset as i64, topic)
                    .unwrap_or_else(|_| panic!("the scanner takes {line}"));
                let serde = parse_line_with_serde(line.clone().into_bytes(), offset as i64, topic);
                assert_eq!(fast, serde, "{line}");
            }
            for line in given_back {
                assert!(
                    parse_scanned(line.as_bytes().to_vec(), 0, topic).is_err(),
                    "{line}"
                );
            }
        }
        // A keyed value the scanner delimits without validating is refused by the decoder,
        // as the whole line was before: a dead letter either way.
        let record = parse_line(br#"{"key":1,"value":{"op":tru}}"#.to_vec(), 0, None);
        assert_eq!(record.value.as_deref(), Some(&br#"{"op":tru}"#[..]));
        let malformed = sluice_runtime::debezium::decode(record).expect_err("not JSON");
        assert!(
            malformed.error.to_string().contains("not valid JSON"),
            "{}",
            malformed.error
        );
    }

    /// Lines mangled at random (bytes replaced, dropped, doubled): the fast path never
    /// panics, agrees with serde wherever serde reads the line, and what only it takes is
    /// refused by the decoder, so a broken line still ends as a dead letter.
    #[test]
    fn mangled_lines_are_read_as_serde_reads_them_or_refused_later() {
        let seeds: [&[u8]; 3] = [
            br#"{"topic":"t","key":{"id":1},"value":{"before":null,"after":{"id":1,"s":"a"b"},"source":{"name":"s","db":"d","table":"t"},"op":"c"},"headers":{"h":"v"}}"#,
            br#"{"before":{"id":2},"after":null,"source":{"name":"s","db":"d","schema":"dbo","table":"t"},"op":"d","ts_ms":1}"#,
            br#"{"key":[1,"x"],"value":null}"#,
        ];
        let pieces: [&[u8]; 12] = [
            b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"null", b"\xff", b"1",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut taken_only_here, mut compared) = (0, 0);
        for round in 0..30_000 {
            let mut line = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % line.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        line.remove(at);
                    }
                    1 => {
                        let piece = pieces[(next() % pieces.len() as u64) as usize];
                        line.splice(at..at, piece.iter().copied());
                    }
                    _ => line[at] = pieces[(next() % pieces.len() as u64) as usize][0],
                }
                if line.is_empty() {
                    line.push(b'{');
                }
            }
            let Ok(fast) = parse_scanned(line.clone(), 7, None) else {
                continue;
            };
            if serde_json::from_slice::<LineFields<'_>>(&line).is_ok() {
                compared += 1;
                assert_eq!(
                    fast,
                    parse_line_with_serde(line.clone(), 7, None),
                    "{}",
                    String::from_utf8_lossy(&line)
                );
            } else if fast.value.is_some() {
                taken_only_here += 1;
                assert!(
                    sluice_runtime::debezium::decode(fast).is_err(),
                    "serde refuses this line, so the decoder must: {}",
                    String::from_utf8_lossy(&line)
                );
            } else {
                panic!(
                    "a line serde refuses became a record without a value: {}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        assert!(
            compared > 1_000 && taken_only_here > 100,
            "{compared} {taken_only_here}"
        );
    }

    #[tokio::test]
    async fn a_line_that_cannot_be_read_costs_only_itself() {
        let mut text = Vec::new();
        text.extend_from_slice(br#"{"op":"c","after":{"id":1},"source":{"table":"x"}}"#);
        text.extend_from_slice(b"\n{\"op\":\"c\xff\xfe\"}\n");
        text.extend_from_slice(&vec![b'x'; 300]);
        text.extend_from_slice(b"\n");
        text.extend_from_slice(br#"{"key":1,"value":{"op":"c"},"headers":["not","a","map"]}"#);
        text.extend_from_slice(b"\r\n");
        text.extend_from_slice(br#"{"op":"d","before":{"id":1},"source":{"table":"x"}}"#);
        let text: &'static [u8] = Box::leak(text.into_boxed_slice());
        let mut source =
            FileSource::from_reader("test".into(), Box::new(text), None).with_max_line_bytes(200);
        let batch = source
            .next_batch(100)
            .await
            .expect("reads")
            .expect("a batch");
        assert_eq!(batch.len(), 5, "every line is a record, none ends the read");
        let offsets: Vec<i64> = batch.iter().map(|r| r.origin.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
        assert_eq!(batch[0].unreadable, None);
        assert_eq!(
            batch[1].value.as_deref(),
            Some(&b"{\"op\":\"c\xff\xfe\"}"[..]),
            "the bytes are kept as read for the dead-letter topic"
        );
        let long = batch[2].unreadable.as_deref().expect("too long");
        assert!(long.contains("300 bytes, over the limit of 200"), "{long}");
        assert_eq!(
            batch[2].value.as_ref().map(Vec::len),
            Some(200),
            "a bounded prefix"
        );
        let keyed = batch[3].unreadable.as_deref().expect("bad headers");
        assert!(
            keyed.contains("`headers` that are not an object"),
            "{keyed}"
        );
        assert_eq!(batch[4].unreadable, None, "the line after them is read");
        assert!(source.next_batch(100).await.expect("reads").is_none());
    }

    /// A writer slower than nothing but faster than LINGER: with a linger restarted on
    /// every line, the first batch would wait for all 20 lines (~0.9 s).
    #[tokio::test]
    async fn a_partial_batch_leaves_linger_after_its_first_record() {
        let (mut writer, reader) = tokio::io::duplex(1 << 16);
        let line = r#"{"op":"c","after":{"id":1},"source":{"table":"x"}}"#;
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for _ in 0..20 {
                writer
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .expect("write");
                tokio::time::sleep(std::time::Duration::from_millis(45)).await;
            }
        });
        let mut source =
            FileSource::from_reader("slow".into(), Box::new(BufReader::new(reader)), None);
        let batch = source
            .next_batch(256)
            .await
            .expect("reads")
            .expect("a batch");
        // Lines at 0 and 45 ms make the batch; a loaded machine may add one or two.
        assert!(
            batch.len() < 10,
            "the first batch waited for {} lines",
            batch.len()
        );
    }

    /// Found by the `file_lines` fuzz target: serde refuses the whole line, so it would
    /// read it as a bare value; the scanner keeps the line keyed, which loses nothing
    /// (the decoder dead-letters the value) and keeps the key and topic for the letter.
    #[tokio::test]
    async fn a_keyed_line_whose_value_is_not_json_keeps_its_key_and_topic() {
        let text = r#"{"topic":"t1","key":{"id":1},"value":{"op":"c","x":"a":1}}"#;
        let records = read_all(text, None).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key.as_deref(), Some(&br#"{"id":1}"#[..]));
        assert_eq!(
            records[0].value.as_deref(),
            Some(&br#"{"op":"c","x":"a":1}"#[..])
        );
        assert_eq!(records[0].origin.topic, "t1");
        assert!(serde_json::from_str::<IgnoredAny>(text).is_err());
    }

    /// Found by the `file_lines` fuzz target: the scanner gave such a record the topic "".
    #[tokio::test]
    async fn an_empty_topic_is_the_default_topic() {
        let records = read_all(r#"{"topic":"","value":null}"#, None).await;
        assert_eq!(records[0].origin.topic, "file");
    }

    #[tokio::test]
    async fn a_configured_topic_wins() {
        let records = read_all(r#"{"topic":"t1","key":null,"value":null}"#, Some("fixed")).await;
        assert_eq!(records[0].origin.topic, "fixed");
    }
}
