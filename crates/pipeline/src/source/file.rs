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
//! `sed -n`). A line that is not JSON at all is kept (it becomes a malformed event for
//! the dead-letter topic), never dropped.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use sluice_core::source::{Source, SourceError};
use sluice_core::{Header, Origin, RawRecord};

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

/// How long a partial batch waits for more lines from a live stream (standard input, a
/// pipe, a growing file) before it is processed anyway. Lines of a file on disk arrive
/// at once, so this only bounds the latency of a slow stream: 50 ms batches bursts
/// without holding a lone event noticeably.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// Reads JSON lines (see the module docs).
pub struct FileSource {
    name: String,
    lines: tokio::io::Lines<Box<dyn AsyncBufRead + Send + Unpin>>,
    topic: Option<String>,
    next_line: i64,
    /// Records read for the batch being assembled. Kept here, not in the future of
    /// `next_batch`, so a cancelled call (shutdown) loses nothing already read.
    pending: Vec<RawRecord>,
    committed_through: Option<i64>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Opens `input`; `topic` overrides every record's topic.
    pub async fn open(input: FileInput, topic: Option<String>) -> Result<Self, SourceError> {
        let name = input.to_string();
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = match input {
            FileInput::Stdin => Box::new(BufReader::new(tokio::io::stdin())),
            FileInput::Path(path) => {
                let file =
                    tokio::fs::File::open(&path)
                        .await
                        .map_err(|source| SourceError::Io {
                            input: name.clone(),
                            source,
                        })?;
                Box::new(BufReader::new(file))
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
            lines: reader.lines(),
            topic,
            next_line: 0,
            pending: Vec::new(),
            committed_through: None,
        }
    }

    /// The last line number committed, if any.
    pub fn committed_through(&self) -> Option<i64> {
        self.committed_through
    }
}

impl Source for FileSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        while self.pending.len() < max.max(1) {
            // The first record waits as long as it takes; later ones at most LINGER.
            // `next_line` is cancel-safe, so a timeout loses no partial line.
            let line = if self.pending.is_empty() {
                self.lines.next_line().await
            } else {
                match tokio::time::timeout(LINGER, self.lines.next_line()).await {
                    Ok(line) => line,
                    Err(_) => break,
                }
            };
            let line = line.map_err(|source| SourceError::Io {
                input: self.name.clone(),
                source,
            })?;
            let Some(line) = line else { break };
            let offset = self.next_line;
            self.next_line += 1;
            if line.trim().is_empty() {
                continue;
            }
            self.pending
                .push(parse_line(line, offset, self.topic.as_deref()));
        }
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

#[derive(Deserialize)]
struct KeyedLine<'a> {
    #[serde(default)]
    topic: Option<String>,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    headers: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses one line into a raw record; a line that cannot be parsed still becomes a
/// record (whole line as value) so the pipeline dead-letters it with the reason.
fn parse_line(line: String, offset: i64, topic_override: Option<&str>) -> RawRecord {
    let origin = |topic: Option<String>| Origin {
        topic: topic_override
            .map(str::to_owned)
            .or(topic)
            .unwrap_or_else(|| "file".to_owned()),
        partition: 0,
        offset,
    };
    // Keyed lines have a top-level `value` (possibly null) and none of an envelope's fields.
    let top_level: Option<std::collections::HashMap<std::borrow::Cow<'_, str>, &RawValue>> =
        serde_json::from_str(&line).ok();
    let is_keyed = top_level.is_some_and(|fields| {
        fields.contains_key("value")
            && !["op", "payload", "source"]
                .iter()
                .any(|f| fields.contains_key(*f))
    });
    if is_keyed && let Ok(keyed) = serde_json::from_str::<KeyedLine<'_>>(&line) {
        {
            let value = keyed.value.map(|v| v.get().as_bytes().to_vec());
            let topic = keyed
                .topic
                .or_else(|| value.as_deref().and_then(derived_topic));
            return RawRecord {
                key: keyed.key.map(|k| k.get().as_bytes().to_vec()),
                value,
                headers: keyed.headers.map(headers_from_json).unwrap_or_default(),
                origin: origin(topic),
            };
        }
    }
    let topic = derived_topic(line.as_bytes());
    RawRecord {
        key: None,
        value: Some(line.into_bytes()),
        headers: Vec::new(),
        origin: origin(topic),
    }
}

/// The Debezium topic of an envelope, from its `source` block, if it has one.
fn derived_topic(value: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Outer<'a> {
        #[serde(borrow, default)]
        payload: Option<&'a RawValue>,
        #[serde(default)]
        source: Option<SourceNames>,
    }
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
    let outer: Outer<'_> = serde_json::from_slice(value).ok()?;
    let source = match (outer.source, outer.payload) {
        (Some(source), _) => source,
        (None, Some(payload)) => {
            serde_json::from_str::<Outer<'_>>(payload.get())
                .ok()?
                .source?
        }
        (None, None) => return None,
    };
    Some(match source.schema {
        Some(schema) => format!("{}.{}.{}.{}", source.name, source.db, schema, source.table),
        None => format!("{}.{}.{}", source.name, source.db, source.table),
    })
}

fn headers_from_json(map: serde_json::Map<String, serde_json::Value>) -> Vec<Header> {
    map.into_iter()
        .map(|(key, value)| Header {
            key,
            value: match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some(text.into_bytes()),
                other => Some(other.to_string().into_bytes()),
            },
        })
        .collect()
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

    #[tokio::test]
    async fn a_configured_topic_wins() {
        let records = read_all(r#"{"topic":"t1","key":null,"value":null}"#, Some("fixed")).await;
        assert_eq!(records[0].origin.topic, "fixed");
    }
}
