//! A sink writing output records as JSON lines to a file or standard output.
//!
//! One line per record: `{"topic": ..., "key": ..., "value": ..., "headers": [[k, v], ...]}`.
//! A key or value that is JSON is embedded as JSON; other UTF-8 bytes become a JSON
//! string; anything else becomes `{"$base64": "..."}`; an absent key or value (tombstone)
//! is `null`. Headers keep their order and repeats; a header value follows the same rules
//! as a string (never parsed as JSON).

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use sluice_core::OutputRecord;
use sluice_core::sink::{Sink, SinkError};

/// Where a file sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutput {
    Stdout,
    Path(PathBuf),
}

impl std::fmt::Display for FileOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileOutput::Stdout => f.write_str("<stdout>"),
            FileOutput::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Writes JSON lines (see the module docs).
pub struct FileSink {
    name: String,
    writer: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Creates (truncates) the file, or writes to standard output.
    pub async fn create(output: FileOutput) -> Result<Self, SinkError> {
        let name = output.to_string();
        let writer: Box<dyn AsyncWrite + Send + Unpin> = match output {
            FileOutput::Stdout => Box::new(tokio::io::stdout()),
            FileOutput::Path(path) => Box::new(tokio::fs::File::create(&path).await.map_err(
                |source| SinkError::Io {
                    output: name.clone(),
                    source,
                },
            )?),
        };
        Ok(Self::from_writer(name, writer))
    }

    pub fn from_writer(name: String, writer: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self {
            name,
            writer: BufWriter::new(writer),
        }
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            output: self.name.clone(),
            source,
        }
    }
}

impl Sink for FileSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        let mut text = String::new();
        for record in &records {
            text.push_str(&record_to_json_line(record));
            text.push('\n');
        }
        self.writer
            .write_all(text.as_bytes())
            .await
            .map_err(|e| self.io_error(e))?;
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }
}

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
    use sluice_core::Header;

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
