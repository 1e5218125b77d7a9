//! What sluice reports about itself: readiness, pipeline counters, batch latency, the
//! plugins in service and reload outcomes, rendered as Prometheus text and JSON by the
//! admin server ([`crate::admin`]).
//!
//! One [`Telemetry`] per process, shared behind an `Arc`; writers (the pipeline after
//! each batch, the reloader after each rescan) take a short lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::pipeline::PipelineStats;
use crate::reload::ReloadStats;

/// Upper bounds of the batch-latency histogram, in seconds: from a sub-millisecond
/// passthrough batch to a batch that hit a multi-second deadline.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A consumer's lag on one partition: (topic, partition, records behind the high
/// watermark).
pub type PartitionLag = (String, i32, i64);

/// A pipeline counter: metric name, help text, and how to read it from the counters.
type Counter = (&'static str, &'static str, fn(&PipelineStats) -> u64);

/// Renders a component's own metrics as Prometheus text.
struct Collector(Box<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

/// A plugin version in service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

#[derive(Debug, Default)]
struct Latency {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The process's telemetry (see the module docs).
#[derive(Debug, Default)]
pub struct Telemetry {
    ready: AtomicBool,
    /// Counters per lane (a plugin name, or `*` for the shared lane).
    pipeline: Mutex<BTreeMap<String, PipelineStats>>,
    latency: Mutex<BTreeMap<String, Latency>>,
    plugins: Mutex<Vec<PluginInfo>>,
    reload: Mutex<ReloadStats>,
    producer_errors: std::sync::atomic::AtomicU64,
    /// Records published per (lane, topic), dead letters included.
    published: Mutex<BTreeMap<(String, String), u64>>,
    /// Other components' metrics, rendered after sluice's own (e.g. capture progress).
    collectors: Mutex<Vec<Collector>>,
    /// Per lane: (topic, partition, records behind the high watermark).
    consumer_lag: Mutex<BTreeMap<String, Vec<PartitionLag>>>,
    /// Lanes stopped by an error, with the error (see [`crate::lanes`]).
    failed_lanes: Mutex<BTreeMap<String, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the counters inconsistent
    // in a way that matters more than losing telemetry; keep serving.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Telemetry {
    /// Marks the process ready (plugins loaded, pipeline running) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Books `lane` as stopped by `error`: `/ready` and `sluice_lane_failed` name it.
    pub fn lane_failed(&self, lane: &str, error: &str) {
        lock(&self.failed_lanes).insert(lane.to_owned(), error.to_owned());
    }

    /// `lane` runs again (a new version of its plugin).
    pub fn lane_restarted(&self, lane: &str) {
        lock(&self.failed_lanes).remove(lane);
    }

    /// The lanes stopped by an error, with their errors.
    pub fn failed_lanes(&self) -> Vec<(String, String)> {
        lock(&self.failed_lanes)
            .iter()
            .map(|(lane, error)| (lane.clone(), error.clone()))
            .collect()
    }

    /// Records one finished batch of `lane`: the lane's counters so far and how long the
    /// batch took.
    pub fn record_batch(&self, lane: &str, stats: PipelineStats, elapsed: Duration) {
        lock(&self.pipeline).insert(lane.to_owned(), stats);
        let seconds = elapsed.as_secs_f64();
        let mut latencies = lock(&self.latency);
        let latency = latencies.entry(lane.to_owned()).or_default();
        latency.count += 1;
        latency.sum_seconds += seconds;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(latency.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
    }

    /// Replaces the list of plugins in service.
    pub fn set_plugins(&self, plugins: Vec<PluginInfo>) {
        *lock(&self.plugins) = plugins;
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        lock(&self.plugins).clone()
    }

    /// Adds a committed batch's records per topic to lane `lane`'s counts.
    pub fn count_published(&self, lane: &str, by_topic: Vec<(String, u64)>) {
        let mut published = lock(&self.published);
        for (topic, count) in by_topic {
            *published.entry((lane.to_owned(), topic)).or_default() += count;
        }
    }

    /// Adds metrics rendered by `collector` (Prometheus text) to every scrape.
    pub fn add_collector(&self, collector: impl Fn() -> String + Send + Sync + 'static) {
        lock(&self.collectors).push(Collector(Box::new(collector)));
    }

    /// Counts one error librdkafka reported about a producer.
    pub fn count_producer_error(&self) {
        self.producer_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces a lane's consumer lag per topic-partition.
    pub fn set_consumer_lag(&self, lane: &str, mut lags: Vec<PartitionLag>) {
        lags.sort();
        lock(&self.consumer_lag).insert(lane.to_owned(), lags);
    }

    pub fn set_reload_stats(&self, stats: ReloadStats) {
        *lock(&self.reload) = stats;
    }

    /// The Prometheus text exposition of everything above.
    pub fn prometheus(&self) -> String {
        let lanes = lock(&self.pipeline).clone();
        let reload = *lock(&self.reload);
        let mut out = String::new();
        let counters: [Counter; 11] = [
            ("sluice_batches_total", "Batches processed.", |s| s.batches),
            (
                "sluice_records_in_total",
                "Records read from the source.",
                |s| s.records_in,
            ),
            (
                "sluice_records_out_total",
                "Records handed to the sink (outputs and dead letters).",
                |s| s.records_out,
            ),
            (
                "sluice_tombstones_skipped_total",
                "Debezium tombstones not passed to plugins.",
                |s| s.tombstones_skipped,
            ),
            (
                "sluice_events_unrouted_total",
                "Events the lane's plugins do not subscribe to.",
                |s| s.unrouted,
            ),
            (
                "sluice_events_malformed_total",
                "Records that were not Debezium change events.",
                |s| s.malformed,
            ),
            (
                "sluice_events_rejected_total",
                "Events a plugin rejected.",
                |s| s.rejected,
            ),
            (
                "sluice_events_trapped_total",
                "Events a plugin trapped on.",
                |s| s.trapped,
            ),
            (
                "sluice_output_violations_total",
                "Events whose output broke the plugin's allowed topics or limits.",
                |s| s.output_violations,
            ),
            (
                "sluice_dead_letters_total",
                "Records sent to the dead-letter topic.",
                |s| s.dead_lettered,
            ),
            (
                "sluice_transactions_aborted_total",
                "Exactly-once transactions aborted (their batches were processed again).",
                |s| s.transactions_aborted,
            ),
        ];
        for (name, help, value) in counters {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (lane, stats) in &lanes {
                out.push_str(&format!(
                    "{name}{{lane=\"{}\"}} {}\n",
                    escape(lane),
                    value(stats)
                ));
            }
        }
        out.push_str("# HELP sluice_plugin_reloads_total Plugin versions loaded, refused and removed by hot reload.\n");
        out.push_str("# TYPE sluice_plugin_reloads_total counter\n");
        for (result, value) in [
            ("loaded", reload.loaded),
            ("refused", reload.refused),
            ("removed", reload.removed),
        ] {
            out.push_str(&format!(
                "sluice_plugin_reloads_total{{result=\"{result}\"}} {value}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP sluice_plugin_files_refused_total Plugin versions refused for their files (type, size, place).\n\
             # TYPE sluice_plugin_files_refused_total counter\nsluice_plugin_files_refused_total {}\n\
             # HELP sluice_reloader_restarts_total Times the plugin reloader recovered from a failure of its own.\n\
             # TYPE sluice_reloader_restarts_total counter\nsluice_reloader_restarts_total {}\n",
            reload.refused_files, reload.restarts
        ));
        out.push_str("# HELP sluice_plugin_info The plugin versions in service.\n# TYPE sluice_plugin_info gauge\n");
        for plugin in self.plugins() {
            out.push_str(&format!(
                "sluice_plugin_info{{plugin=\"{}\",version=\"{}\",sha256=\"{}\"}} 1\n",
                escape(&plugin.name),
                escape(&plugin.version),
                plugin.sha256
            ));
        }
        let latencies = lock(&self.latency);
        out.push_str("# HELP sluice_batch_duration_seconds Time from a batch read to its output handed to the sink.\n");
        out.push_str("# TYPE sluice_batch_duration_seconds histogram\n");
        for (lane, latency) in latencies.iter() {
            let lane = escape(lane);
            for (bound, count) in LATENCY_BUCKETS.iter().zip(latency.counts.iter()) {
                out.push_str(&format!(
                    "sluice_batch_duration_seconds_bucket{{lane=\"{lane}\",le=\"{bound}\"}} {count}\n"
                ));
            }
            out.push_str(&format!(
                "sluice_batch_duration_seconds_bucket{{lane=\"{lane}\",le=\"+Inf\"}} {}\nsluice_batch_duration_seconds_sum{{lane=\"{lane}\"}} {}\nsluice_batch_duration_seconds_count{{lane=\"{lane}\"}} {}\n",
                latency.count, latency.sum_seconds, latency.count
            ));
        }
        drop(latencies);
        out.push_str("# HELP sluice_records_published_total Records published (committed), per lane and output topic; dead letters included.\n# TYPE sluice_records_published_total counter\n");
        for ((lane, topic), count) in lock(&self.published).iter() {
            out.push_str(&format!(
                "sluice_records_published_total{{lane=\"{}\",topic=\"{}\"}} {count}\n",
                escape(lane),
                escape(topic)
            ));
        }
        out.push_str(&format!(
            "# HELP sluice_producer_errors_total Errors librdkafka reported about the producers (brokers unreachable, authentication, ...).\n# TYPE sluice_producer_errors_total counter\nsluice_producer_errors_total {}\n",
            self.producer_errors.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP sluice_consumer_lag Records between a lane's consumer position and the partition's high watermark.\n# TYPE sluice_consumer_lag gauge\n");
        for (lane, lags) in lock(&self.consumer_lag).iter() {
            for (topic, partition, lag) in lags {
                out.push_str(&format!(
                    "sluice_consumer_lag{{lane=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {lag}\n",
                    escape(lane),
                    escape(topic)
                ));
            }
        }
        out.push_str("# HELP sluice_lane_failed Lanes stopped by an error (1); the others keep running.\n# TYPE sluice_lane_failed gauge\n");
        for lane in lock(&self.failed_lanes).keys() {
            out.push_str(&format!(
                "sluice_lane_failed{{lane=\"{}\"}} 1\n",
                escape(lane)
            ));
        }
        for collector in lock(&self.collectors).iter() {
            out.push_str(&(collector.0)());
        }
        out.push_str(&format!(
            "# HELP sluice_ready Whether sluice is ready.\n# TYPE sluice_ready gauge\nsluice_ready {}\n",
            u8::from(self.is_ready())
        ));
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_plugins() {
        let telemetry = Telemetry::default();
        let stats = PipelineStats {
            batches: 2,
            records_in: 10,
            dead_lettered: 1,
            ..PipelineStats::default()
        };
        telemetry.record_batch("cdm", stats, Duration::from_millis(3));
        telemetry.record_batch("cdm", stats, Duration::from_secs(2));
        telemetry.record_batch("audit", PipelineStats::default(), Duration::from_secs(2));
        telemetry.set_plugins(vec![PluginInfo {
            name: "cdm".into(),
            version: "1\"2".into(),
            sha256: "ab".into(),
            inputs: vec![],
            outputs: vec![],
        }]);
        let text = telemetry.prometheus();
        assert!(
            text.contains("sluice_records_in_total{lane=\"cdm\"} 10\n"),
            "{text}"
        );
        assert!(text.contains("sluice_records_in_total{lane=\"audit\"} 0\n"));
        assert!(text.contains("sluice_dead_letters_total{lane=\"cdm\"} 1\n"));
        assert!(
            text.contains("sluice_batch_duration_seconds_bucket{lane=\"cdm\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_batch_duration_seconds_bucket{lane=\"cdm\",le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("sluice_batch_duration_seconds_count{lane=\"cdm\"} 2\n"));
        assert!(text.contains("sluice_batch_duration_seconds_count{lane=\"audit\"} 1\n"));
        assert!(
            text.contains(r#"sluice_plugin_info{plugin="cdm",version="1\"2",sha256="ab"} 1"#),
            "{text}"
        );
        assert!(text.contains("sluice_ready 0\n"));
        telemetry.set_consumer_lag("cdm", vec![("in".into(), 1, 7), ("in".into(), 0, 3)]);
        telemetry.count_producer_error();
        telemetry.add_collector(|| {
            "sluice_capture_snapshot_rows{table=\"t\",state=\"done\"} 4\n".to_owned()
        });
        telemetry.count_published("cdm", vec![("cdm.customer".into(), 2)]);
        telemetry.count_published(
            "cdm",
            vec![("cdm.customer".into(), 1), ("sluice.dlq".into(), 1)],
        );
        let text = telemetry.prometheus();
        assert!(
            text.contains(
                "sluice_consumer_lag{lane=\"cdm\",topic=\"in\",partition=\"0\"} 3\nsluice_consumer_lag{lane=\"cdm\",topic=\"in\",partition=\"1\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("sluice_producer_errors_total 1\n"), "{text}");
        assert!(
            text.contains("sluice_capture_snapshot_rows{table=\"t\",state=\"done\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_records_published_total{lane=\"cdm\",topic=\"cdm.customer\"} 3\nsluice_records_published_total{lane=\"cdm\",topic=\"sluice.dlq\"} 1\n"),
            "{text}"
        );
    }
}
