//! A sink writing output records as JSON lines to a file or standard output, one line
//! per record in the form [`sluice_core::json_lines`] describes.

use std::path::PathBuf;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use sluice_core::OutputRecord;
pub use sluice_core::json_lines::record_to_json_line;
use sluice_core::settings::{Problems, optional_path};
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

/// `[sink] type = "file"`, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSink {
    /// The file to write (truncated); absent or `"-"`: standard output.
    path: Option<String>,
}

impl RawFileSink {
    /// The file (`None`: standard output), relative to `base`.
    pub fn validate(self, base: &std::path::Path, problems: &mut Problems) -> Option<PathBuf> {
        optional_path(self.path.as_deref(), base, "sink.path", problems, false)
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
