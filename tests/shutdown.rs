//! Graceful shutdown: the batch in flight is finished, published and committed; nothing
//! after it is read.

use std::time::Duration;

use serde_json::json;
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings};
use sluice_pipeline::source::file::FileSource;
use sluice_runtime::{Runtime, RuntimeOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::support::{ChannelSink, create_event, stamp_route};

#[test]
fn shutdown_publishes_and_commits_what_was_read_then_stops() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let route = stamp_route(&runtime, 1, "s");

        // A stream that never ends by itself.
        let (mut writer, reader) = tokio::io::duplex(1 << 16);
        let (records, mut published) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let pipeline = tokio::spawn(async move {
            let mut source = FileSource::from_reader(
                "pipe".into(),
                Box::new(tokio::io::BufReader::new(reader)),
                None,
            );
            let mut pipeline = Pipeline::new(
                vec![route],
                PipelineSettings {
                    batch_size: 4,
                    ..PipelineSettings::default()
                },
            );
            let result = pipeline
                .run(&mut source, &mut ChannelSink(records), async move {
                    let _ = stopped.await;
                })
                .await;
            (result, source.committed_through())
        });
        for id in 0..6 {
            writer
                .write_all((create_event(json!({"id": id})) + "\n").as_bytes())
                .await
                .expect("write");
        }
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let record = tokio::time::timeout(Duration::from_secs(20), published.recv())
                .await
                .expect("published in time")
                .expect("record");
            seen.push(record);
        }
        stop.send(()).expect("pipeline still running");
        let (result, committed) = tokio::time::timeout(Duration::from_secs(20), pipeline)
            .await
            .expect("stops promptly although the stream is still open")
            .expect("task");
        let stats = result.expect("clean stop");
        assert_eq!(stats.records_in, 6);
        assert_eq!(committed, Some(5), "everything published was committed");
        drop(writer);
        assert!(
            published.recv().await.is_none(),
            "nothing more was published"
        );
    });
}
