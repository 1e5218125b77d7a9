//! A sink writing output records as JSON lines to a file or standard output, one line
//! per record in the form [`sluice_core::json_lines`] describes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use sluice_core::OutputRecord;
use sluice_core::connector::{CommitHandle, SinkKind, SinkRun};
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

/// `[sink] type = "file"`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSinkSettings {
    /// The file to write (`None`: standard output).
    pub path: Option<PathBuf>,
}

impl SinkKind for FileSinkSettings {
    type Raw = RawFileSink;
    type Shared = SharedFileSink;
    type Sink = SharedFileSink;

    fn validate(raw: RawFileSink, base: &std::path::Path, problems: &mut Problems) -> Self {
        Self {
            path: optional_path(raw.path.as_deref(), base, "sink.path", problems, false),
        }
    }

    async fn start(&self, _run: &SinkRun) -> Result<SharedFileSink, SinkError> {
        let output = self
            .path
            .clone()
            .map_or(FileOutput::Stdout, FileOutput::Path);
        Ok(SharedFileSink(Arc::new(tokio::sync::Mutex::new(
            FileSink::create(output).await?,
        ))))
    }

    async fn open(
        shared: &SharedFileSink,
        _run: &SinkRun,
        _lane: &str,
        _commit: Option<CommitHandle>,
    ) -> Result<SharedFileSink, SinkError> {
        Ok(shared.clone())
    }
}

/// One file written by every lane: each batch is serialised before the lock is taken,
/// and written whole under it, so lines of two batches never interleave.
#[derive(Debug, Clone)]
pub struct SharedFileSink(Arc<tokio::sync::Mutex<FileSink>>);

impl Sink for SharedFileSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        let text = json_lines(&records);
        self.0.lock().await.write(&text).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.0.lock().await.flush().await
    }
}

/// `records` as JSON lines, each ended by a newline.
fn json_lines(records: &[OutputRecord]) -> String {
    let mut text = String::new();
    for record in records {
        text.push_str(&record_to_json_line(record));
        text.push('\n');
    }
    text
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

    /// Writes `text` and flushes it.
    async fn write(&mut self, text: &str) -> Result<(), SinkError> {
        self.writer
            .write_all(text.as_bytes())
            .await
            .map_err(|e| self.io_error(e))?;
        self.writer.flush().await.map_err(|e| self.io_error(e))
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
        self.write(&json_lines(&records)).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }
}
