//! What the pipeline reports: counters and batch latency per lane, and records published
//! per lane and topic, pushed after every batch to the process's telemetry (a
//! [`Report`] registered there), which renders them on the admin server's `/metrics`.
//!
//! Writers (each lane after each batch) take a short lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use sluice_core::telemetry::{Report, escape, lock};

use crate::pipeline::PipelineStats;

/// Upper bounds of the batch-latency histogram, in seconds: from a sub-millisecond
/// passthrough batch to a batch that hit a multi-second deadline.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A pipeline counter: metric name, help text, and how to read it from the counters.
type Counter = (&'static str, &'static str, fn(&PipelineStats) -> u64);

#[derive(Debug, Default)]
struct Latency {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The pipeline's metrics, one per process (see the module docs).
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Counters per lane (a plugin name, or `*` for the shared lane).
    pipeline: Mutex<BTreeMap<String, PipelineStats>>,
    latency: Mutex<BTreeMap<String, Latency>>,
    /// Records published per (lane, topic), dead letters included.
    published: Mutex<BTreeMap<(String, String), u64>>,
}

impl PipelineMetrics {
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

    /// Adds a committed batch's records per topic to lane `lane`'s counts.
    pub fn count_published(&self, lane: &str, by_topic: Vec<(String, u64)>) {
        let mut published = lock(&self.published);
        for (topic, count) in by_topic {
            *published.entry((lane.to_owned(), topic)).or_default() += count;
        }
    }
}

impl Report for PipelineMetrics {
    /// Events read and dead letters per lane.
    fn status(&self, status: &mut sluice_core::status::Status) {
        for (lane, stats) in lock(&self.pipeline).iter() {
            let counters = status.lanes.entry(lane.clone()).or_default();
            counters.events = stats.records_in;
            counters.dead_letters = stats.dead_lettered;
        }
    }

    /// The Prometheus text exposition of everything above.
    fn render(&self, out: &mut String) {
        let lanes = lock(&self.pipeline).clone();
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::telemetry::Telemetry;

    #[test]
    fn renders_counters_histogram_and_published_records() {
        let telemetry = Telemetry::default();
        let metrics = telemetry.report::<PipelineMetrics>();
        let stats = PipelineStats {
            batches: 2,
            records_in: 10,
            dead_lettered: 1,
            ..PipelineStats::default()
        };
        metrics.record_batch("cdm", stats, Duration::from_millis(3));
        metrics.record_batch("cdm", stats, Duration::from_secs(2));
        metrics.record_batch("audit", PipelineStats::default(), Duration::from_secs(2));
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
        let status = telemetry.status();
        assert_eq!(
            (status.lanes["cdm"].events, status.lanes["cdm"].dead_letters),
            (10, 1),
            "the status page's counters"
        );
        metrics.count_published("cdm", vec![("cdm.customer".into(), 2)]);
        telemetry.report::<PipelineMetrics>().count_published(
            "cdm",
            vec![("cdm.customer".into(), 1), ("sluice.dlq".into(), 1)],
        );
        let text = telemetry.prometheus();
        assert!(
            text.contains("sluice_records_published_total{lane=\"cdm\",topic=\"cdm.customer\"} 3\nsluice_records_published_total{lane=\"cdm\",topic=\"sluice.dlq\"} 1\n"),
            "{text}"
        );
    }
}
