//! Isolation between teams: each plugin runs in a lane of its own (pipeline, source,
//! committed position), so a plugin stuck at its CPU deadline on every event falls behind
//! alone while another team's plugin keeps its pace; removing a plugin stops its lane.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_core::RawRecord;
use sluice_core::sink::{Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::{Origin, OutputRecord};
use sluice_pipeline::lanes::{self, Endpoints, Isolation, LaneError};
use sluice_pipeline::pipeline::{PipelineSettings, Routes};
use sluice_pipeline::source::file::{FileInput, FileSource};
use sluice_runtime::{Runtime, RuntimeOptions};
use sluice_tests::components;
use tokio::sync::mpsc;

use crate::support::{config, create_event, create_record, plugin, write_lines};

/// Every lane reads the same file and sends what it publishes to the test, tagged with
/// the lane's name.
pub struct FileToChannel {
    pub input: PathBuf,
    pub published: mpsc::UnboundedSender<(String, OutputRecord)>,
}

pub struct LaneSink {
    lane: String,
    published: mpsc::UnboundedSender<(String, OutputRecord)>,
}

impl Sink for LaneSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        for record in records {
            let _ = self.published.send((self.lane.clone(), record));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl Endpoints for FileToChannel {
    type Source = FileSource;
    type Sink = LaneSink;

    async fn open(&self, lane: &str) -> Result<(FileSource, LaneSink), LaneError> {
        let source = FileSource::open(FileInput::Path(self.input.clone()), None)
            .await
            .map_err(|e| LaneError::Open {
                lane: lane.to_owned(),
                reason: e.to_string(),
            })?;
        Ok((
            source,
            LaneSink {
                lane: lane.to_owned(),
                published: self.published.clone(),
            },
        ))
    }
}

#[test]
fn a_plugin_stuck_at_its_deadline_does_not_hold_back_another_teams_plugin() {
    const EVENTS: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    // Every event makes `poison` loop until its deadline; `stamp` maps it in microseconds.
    let rows: Vec<String> = (0..EVENTS)
        .map(|id| create_event(json!({"id": id, "spin": true})))
        .collect();
    let input = write_lines(dir.path(), "in.jsonl", &rows);
    let mut poison = plugin("poison", components::POISON, &["in"], &["out"], &[]);
    poison.spec.limits.batch_deadline = Duration::from_millis(200);
    let stamp = plugin("stamp", components::STAMP, &["in"], &["out"], &[]);
    let settings = PipelineSettings {
        batch_size: 10,
        ..PipelineSettings::default()
    };
    let config = config(&input, &dir.path().join("unused"), vec![poison, stamp], 10);
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let routes = sluice::app::start_routes(&runtime, &config).expect("plugins load");
    let table: Routes = Arc::new(routes.into_iter().map(Arc::new).collect());
    let (_keep, table) = tokio::sync::watch::channel(table);

    let (published, mut received) = mpsc::unbounded_channel();
    let endpoints = Arc::new(FileToChannel { input, published });
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let (stamped, poisoned) = tokio.block_on(async move {
        let (all_stamped, stamped_signal) = tokio::sync::oneshot::channel::<()>();
        let collector = tokio::spawn(async move {
            let mut stamped = Vec::new();
            let mut poisoned_when_stamp_done = None;
            let mut poisoned = 0;
            let mut signal = Some(all_stamped);
            while let Some((lane, record)) = received.recv().await {
                match lane.as_str() {
                    "stamp" => {
                        assert_eq!(record.topic, "out", "stamp never dead-letters here");
                        stamped.push(record);
                        if stamped.len() == EVENTS {
                            poisoned_when_stamp_done = Some(poisoned);
                            if let Some(signal) = signal.take() {
                                let _ = signal.send(());
                            }
                        }
                    }
                    "poison" => {
                        assert_eq!(record.topic, "sluice.dlq", "every poison event traps");
                        poisoned += 1;
                    }
                    other => panic!("unexpected lane {other}"),
                }
            }
            (stamped, poisoned_when_stamp_done)
        });
        let stats = lanes::run(
            endpoints,
            table,
            Isolation::PerPlugin,
            settings,
            None,
            async move {
                let _ = stamped_signal.await;
            },
        )
        .await
        .expect("lanes run");
        assert!(stats.trapped > 0, "the poison lane ran: {stats:?}");
        collector.await.expect("collector")
    });

    let ids: Vec<i64> = stamped
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(r.value.as_deref().expect("value"))
                .expect("JSON")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(
        ids,
        (0..EVENTS as i64).collect::<Vec<_>>(),
        "the healthy plugin published every event once, in order"
    );
    let poisoned = poisoned.expect("stamp finished");
    println!("when stamp had published all {EVENTS} events, poison had dead-lettered {poisoned}");
    // Sharing a pipeline, the two would advance batch by batch together (poison would
    // have dead-lettered ~EVENTS too); in lanes, poison pays ~200 ms per batch of 10 alone.
    assert!(
        poisoned < EVENTS / 2,
        "the stuck plugin held the healthy one back: {poisoned} of {EVENTS} poison events were already done"
    );
}

/// Every lane subscribes to one live stream of records that never ends by itself.
struct LiveStream {
    records: tokio::sync::broadcast::Sender<RawRecord>,
    published: mpsc::UnboundedSender<(String, OutputRecord)>,
}

struct LiveSource(tokio::sync::broadcast::Receiver<RawRecord>);

impl Source for LiveSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        let mut batch = vec![self.0.recv().await.expect("the test keeps the stream open")];
        while batch.len() < max {
            match self.0.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    async fn commit(&mut self, _last: &[Origin]) -> Result<(), SourceError> {
        Ok(())
    }
}

impl Endpoints for LiveStream {
    type Source = LiveSource;
    type Sink = LaneSink;

    async fn open(&self, lane: &str) -> Result<(LiveSource, LaneSink), LaneError> {
        Ok((
            LiveSource(self.records.subscribe()),
            LaneSink {
                lane: lane.to_owned(),
                published: self.published.clone(),
            },
        ))
    }
}

#[test]
fn removing_a_plugin_stops_its_lane_and_the_others_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_lines(dir.path(), "unused.jsonl", &[]);
    let stamp = plugin("stamp", components::STAMP, &["in"], &["out"], &[]);
    let passthrough = plugin(
        "passthrough",
        components::PASSTHROUGH,
        &["in"],
        &["in"],
        &[],
    );
    let config = config(
        &input,
        &dir.path().join("unused"),
        vec![stamp, passthrough],
        10,
    );
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let routes = sluice::app::start_routes(&runtime, &config).expect("plugins load");
    let full: Routes = Arc::new(routes.into_iter().map(Arc::new).collect());
    let only_stamp: Routes = Arc::new(vec![Arc::clone(&full[0])]);
    let (table_sender, table) = tokio::sync::watch::channel(Arc::clone(&full));

    let (published, mut received) = mpsc::unbounded_channel();
    let (records, _) = tokio::sync::broadcast::channel(1024);
    let endpoints = Arc::new(LiveStream {
        records: records.clone(),
        published,
    });
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async move {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let lanes = tokio::spawn(lanes::run(
            endpoints,
            table,
            Isolation::PerPlugin,
            PipelineSettings::default(),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        let subscribers = |count: usize| {
            let records = records.clone();
            async move {
                for _ in 0..300 {
                    if records.receiver_count() == count {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("lanes never reached {count} subscribers");
            }
        };
        subscribers(2).await;
        for id in 0..5 {
            records.send(create_record(id)).expect("lanes subscribed");
        }
        let mut first = Vec::new();
        while first.len() < 10 {
            first.push(next(&mut received).await);
        }
        let lanes_seen: std::collections::BTreeSet<&str> =
            first.iter().map(|(lane, _)| lane.as_str()).collect();
        assert_eq!(
            lanes_seen,
            ["passthrough", "stamp"].into_iter().collect(),
            "both plugins serve before the removal"
        );

        table_sender
            .send(only_stamp)
            .expect("lanes follow the table");
        // The removed plugin's lane stops and drops its subscription.
        subscribers(1).await;
        for id in 5..10 {
            records.send(create_record(id)).expect("stamp subscribed");
        }
        let mut second = Vec::new();
        while second.len() < 5 {
            second.push(next(&mut received).await);
        }
        assert!(
            second.iter().all(|(lane, _)| lane == "stamp"),
            "only the remaining plugin serves new events: {second:?}"
        );
        stop.send(()).expect("lanes running");
        lanes.await.expect("task").expect("lanes stop cleanly");
        assert!(
            received.try_recv().is_err(),
            "the removed plugin published nothing more"
        );
    });
}

async fn next(
    received: &mut mpsc::UnboundedReceiver<(String, OutputRecord)>,
) -> (String, OutputRecord) {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("records within 30 s")
        .expect("channel open")
}
