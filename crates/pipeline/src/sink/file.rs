//! A sink writing output records as JSON lines to a file or standard output, one line
//! per record in the form [`sluice_core::json_lines`] describes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use sluice_core::OutputRecord;
use sluice_core::connector::{CommitHandle, SinkKind, SinkRun};
pub use sluice_core::json_lines::record_to_json_line;
use sluice_core::json_lines::write_json_line;
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
        Ok(SharedFileSink::start(FileSink::create(output).await?))
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

/// One file written by every lane, through a writer task of its own: each lane turns its
/// batch into text itself, hands the text over a channel and waits for the writer's
/// acknowledgement. The writer takes every batch that has arrived, writes each whole
/// (lines of two batches never interleave), flushes once for all of them and acknowledges
/// each. No lock is held anywhere: lanes serialise in parallel (each batch on a task of
/// its own), and one flush serves as many lanes as are waiting.
#[derive(Debug, Clone)]
pub struct SharedFileSink {
    name: Arc<str>,
    batches: mpsc::Sender<Batch>,
}

/// A batch's text and where to acknowledge it.
struct Batch {
    text: Vec<u8>,
    written: oneshot::Sender<Result<(), (std::io::ErrorKind, String)>>,
}

/// Batches waiting while the writer writes; each lane has at most one batch in flight,
/// so this only bounds a burst of many lanes.
const WAITING_BATCHES: usize = 256;

impl SharedFileSink {
    /// Starts the writer task over `file` (must run inside a Tokio runtime).
    pub fn start(file: FileSink) -> Self {
        let name: Arc<str> = Arc::from(file.name.as_str());
        let (batches, waiting) = mpsc::channel(WAITING_BATCHES);
        tokio::spawn(write_batches(file, waiting));
        Self { name, batches }
    }

    async fn write(&self, text: Vec<u8>) -> Result<(), SinkError> {
        let (written, acknowledged) = oneshot::channel();
        let gone = || SinkError::Failed {
            output: self.name.to_string(),
            reason: "the file writer stopped".to_owned(),
        };
        self.batches
            .send(Batch { text, written })
            .await
            .map_err(|_| gone())?;
        match acknowledged.await.map_err(|_| gone())? {
            Ok(()) => Ok(()),
            Err((kind, message)) => Err(SinkError::Io {
                output: self.name.to_string(),
                source: std::io::Error::new(kind, message),
            }),
        }
    }
}

/// The writer task: writes what has arrived, flushes, acknowledges; until every handle
/// is gone.
async fn write_batches(mut file: FileSink, mut waiting: mpsc::Receiver<Batch>) {
    let mut batches = Vec::with_capacity(WAITING_BATCHES);
    while waiting.recv_many(&mut batches, WAITING_BATCHES).await > 0 {
        let mut result = Ok(());
        for batch in &batches {
            result = file.writer.write_all(&batch.text).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = file.writer.flush().await;
        }
        let result = result.map_err(|e| (e.kind(), e.to_string()));
        for batch in batches.drain(..) {
            // A lane that stopped waiting needs no answer.
            let _ = batch.written.send(result.clone());
        }
    }
}

impl Sink for SharedFileSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        // Serialised on a task of its own, so it runs on another core while the lane reads
        // and transforms its next batch (the lane's own task would otherwise do both).
        let text = tokio::spawn(async move { json_lines(&records) })
            .await
            .map_err(|e| SinkError::Failed {
                output: self.name.to_string(),
                reason: format!("serialising a batch: {e}"),
            })?;
        self.write(text).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every batch is flushed before it is acknowledged: an empty one waits for those
        // before it.
        self.write(Vec::new()).await
    }
}

/// `records` as JSON lines, each ended by a newline.
fn json_lines(records: &[OutputRecord]) -> Vec<u8> {
    let size: usize = records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len) + r.key.as_ref().map_or(0, Vec::len) + 64)
        .sum();
    let mut text = Vec::with_capacity(size);
    for record in records {
        write_json_line(record, &mut text);
        text.push(b'\n');
    }
    text
}

/// The file (or standard output) a [`SharedFileSink`]'s writer owns.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lane: usize, number: usize, size: usize) -> Vec<OutputRecord> {
        (0..size)
            .map(|index| OutputRecord {
                timestamp: None,
                topic: format!("lane{lane}"),
                key: None,
                value: Some(format!("{number}-{index}").into_bytes()),
                headers: Vec::new(),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_write_whole_batches_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        let file = FileSink::create(FileOutput::Path(path.clone()))
            .await
            .expect("creates");
        let shared = SharedFileSink::start(file);
        let (lanes, batches, size) = (4, 50, 10);
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let mut sink = shared.clone();
            tasks.push(tokio::spawn(async move {
                for number in 0..batches {
                    sink.send(batch(lane, number, size)).await.expect("written");
                }
                sink.flush().await.expect("flushed");
            }));
        }
        for task in tasks {
            task.await.expect("lane");
        }
        let text = std::fs::read_to_string(&path).expect("reads");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), lanes * batches * size);
        let mut next_batch = vec![0; lanes];
        for chunk in lines.chunks(size) {
            // A chunk of `size` lines is one batch, whole, of one lane.
            let topic = chunk[0]["topic"].as_str().expect("topic");
            let lane: usize = topic["lane".len()..].parse().expect("lane");
            for (index, line) in chunk.iter().enumerate() {
                assert_eq!(line["topic"], topic, "{chunk:?}");
                assert_eq!(
                    line["value"],
                    format!("{}-{index}", next_batch[lane]),
                    "{chunk:?}"
                );
            }
            next_batch[lane] += 1;
        }
        assert_eq!(next_batch, vec![batches; lanes]);
    }

    #[tokio::test]
    async fn a_failed_write_names_the_file() {
        let file = FileSink::create(FileOutput::Path("/dev/full".into()))
            .await
            .expect("opens");
        let mut sink = SharedFileSink::start(file);
        let error = sink
            .send(batch(0, 0, 100))
            .await
            .expect_err("/dev/full has no room");
        assert!(
            matches!(&error, SinkError::Io { output, .. } if output == "/dev/full"),
            "{error:?}"
        );
        assert!(error.to_string().contains("No space left"), "{error}");
    }
}
