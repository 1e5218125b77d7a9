//! What the pipeline reports: counters and batch latency per lane, and records published
//! per lane and topic, rendered on the admin server's `/metrics` through the process's
//! telemetry (a [`Report`] registered there).
//!
//! Nothing here is locked per batch: a pipeline takes its lane's [`LaneMetrics`] once
//! (the registry's lock) and then adds to atomics; records per output topic take a
//! read lock (a write lock only the first time a topic is seen). Several consumers of one
//! lane add to the same counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

/// The pipeline's metrics, one per process (see the module docs).
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Per lane (a plugin name, or `*` for the shared lane).
    lanes: Mutex<BTreeMap<String, Arc<LaneMetrics>>>,
}

/// One lane's counters, shared by its consumers.
#[derive(Debug, Default)]
pub struct LaneMetrics {
    batches: AtomicU64,
    records_in: AtomicU64,
    tombstones_skipped: AtomicU64,
    unrouted: AtomicU64,
    records_out: AtomicU64,
    malformed: AtomicU64,
    rejected: AtomicU64,
    trapped: AtomicU64,
    output_violations: AtomicU64,
    dead_lettered: AtomicU64,
    transactions_aborted: AtomicU64,
    /// Batches per latency bucket (not cumulative), and their count and total.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_nanos: AtomicU64,
    /// Records published (committed) per output topic, dead letters included.
    published: RwLock<BTreeMap<String, AtomicU64>>,
}

/// The most output topics one lane's metrics count one by one (`sluice_records_published_total`).
pub const MAX_TOPICS_PER_LANE: usize = 1_000;
/// The `topic` label of the records published to topics past [`MAX_TOPICS_PER_LANE`]
/// (not a valid Kafka topic name, so never a real topic's).
pub const OTHER_TOPICS: &str = "(other)";

impl PipelineMetrics {
    /// The counters of lane `lane`, created on first use.
    pub fn lane(&self, lane: &str) -> Arc<LaneMetrics> {
        lock(&self.lanes)
            .entry(lane.to_owned())
            .or_default()
            .clone()
    }

    fn snapshot(&self) -> Vec<(String, Arc<LaneMetrics>)> {
        lock(&self.lanes)
            .iter()
            .map(|(lane, metrics)| (lane.clone(), metrics.clone()))
            .collect()
    }
}

impl LaneMetrics {
    /// Records one published batch: `counted` is what the batch added to a pipeline's
    /// counters, `elapsed` how long it took from read to published.
    pub fn record_batch(&self, counted: &PipelineStats, elapsed: Duration) {
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&self.batches, counted.batches);
        add(&self.records_in, counted.records_in);
        add(&self.tombstones_skipped, counted.tombstones_skipped);
        add(&self.unrouted, counted.unrouted);
        add(&self.records_out, counted.records_out);
        add(&self.malformed, counted.malformed);
        add(&self.rejected, counted.rejected);
        add(&self.trapped, counted.trapped);
        add(&self.output_violations, counted.output_violations);
        add(&self.dead_lettered, counted.dead_lettered);
        add(&self.transactions_aborted, counted.transactions_aborted);
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds a published batch's records per topic.
    pub fn count_published(&self, by_topic: &[(String, u64)]) {
        let mut unseen = Vec::new();
        {
            let published = self.published.read().unwrap_or_else(|e| e.into_inner());
            for (topic, count) in by_topic {
                match published.get(topic) {
                    Some(counter) => {
                        counter.fetch_add(*count, Ordering::Relaxed);
                    }
                    None => unseen.push((topic, *count)),
                }
            }
        }
        if !unseen.is_empty() {
            let mut published = self.published.write().unwrap_or_else(|e| e.into_inner());
            for (topic, count) in unseen {
                // A plugin allowed a pattern (`cdm.*`) may write to a new topic per
                // event: past the bound, the counts go to one series, so that neither
                // this map nor `/metrics` grows without end.
                let name = if published.contains_key(topic.as_str())
                    || published.len() < MAX_TOPICS_PER_LANE
                {
                    topic.as_str()
                } else {
                    if !published.contains_key(OTHER_TOPICS) {
                        tracing::warn!(
                            topics = MAX_TOPICS_PER_LANE,
                            "a lane published to more topics than the metrics count one by \
                             one; the records of the others are counted under topic=\"{OTHER_TOPICS}\""
                        );
                    }
                    OTHER_TOPICS
                };
                published
                    .entry(name.to_owned())
                    .or_default()
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> PipelineStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PipelineStats {
            batches: read(&self.batches),
            records_in: read(&self.records_in),
            tombstones_skipped: read(&self.tombstones_skipped),
            unrouted: read(&self.unrouted),
            records_out: read(&self.records_out),
            malformed: read(&self.malformed),
            rejected: read(&self.rejected),
            trapped: read(&self.trapped),
            output_violations: read(&self.output_violations),
            dead_lettered: read(&self.dead_lettered),
            transactions_aborted: read(&self.transactions_aborted),
        }
    }
}

impl Report for PipelineMetrics {
    /// Events read and dead letters per lane.
    fn status(&self, status: &mut sluice_core::status::Status) {
        for (lane, metrics) in self.snapshot() {
            let stats = metrics.stats();
            let counters = status.lanes.entry(lane).or_default();
            counters.events = stats.records_in;
            counters.dead_letters = stats.dead_lettered;
        }
    }

    /// The Prometheus text exposition of everything above.
    fn render(&self, out: &mut String) {
        let lanes = self.snapshot();
        let stats: Vec<(&str, PipelineStats)> = lanes
            .iter()
            .map(|(lane, metrics)| (lane.as_str(), metrics.stats()))
            .collect();
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
            for (lane, stats) in &stats {
                out.push_str(&format!(
                    "{name}{{lane=\"{}\"}} {}\n",
                    escape(lane),
                    value(stats)
                ));
            }
        }
        out.push_str("# HELP sluice_batch_duration_seconds Time from a batch read to its output published.\n");
        out.push_str("# TYPE sluice_batch_duration_seconds histogram\n");
        for (lane, metrics) in &lanes {
            let lane = escape(lane);
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(metrics.latency_buckets.iter()) {
                cumulative += count.load(Ordering::Relaxed);
                out.push_str(&format!(
                    "sluice_batch_duration_seconds_bucket{{lane=\"{lane}\",le=\"{bound}\"}} {cumulative}\n"
                ));
            }
            let count = metrics.latency_count.load(Ordering::Relaxed);
            let sum =
                Duration::from_nanos(metrics.latency_nanos.load(Ordering::Relaxed)).as_secs_f64();
            out.push_str(&format!(
                "sluice_batch_duration_seconds_bucket{{lane=\"{lane}\",le=\"+Inf\"}} {count}\nsluice_batch_duration_seconds_sum{{lane=\"{lane}\"}} {sum}\nsluice_batch_duration_seconds_count{{lane=\"{lane}\"}} {count}\n"
            ));
        }
        out.push_str("# HELP sluice_records_published_total Records published (committed), per lane and output topic; dead letters included.\n# TYPE sluice_records_published_total counter\n");
        for (lane, metrics) in &lanes {
            let published = metrics.published.read().unwrap_or_else(|e| e.into_inner());
            for (topic, count) in published.iter() {
                out.push_str(&format!(
                    "sluice_records_published_total{{lane=\"{}\",topic=\"{}\"}} {}\n",
                    escape(lane),
                    escape(topic),
                    count.load(Ordering::Relaxed)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::telemetry::Telemetry;

    #[test]
    fn topics_past_the_bound_are_counted_together() {
        let metrics = PipelineMetrics::default();
        let lane = metrics.lane("a");
        let topics: Vec<(String, u64)> = (0..MAX_TOPICS_PER_LANE + 5)
            .map(|n| (format!("cdm.t{n}"), 2))
            .collect();
        lane.count_published(&topics);
        lane.count_published(&topics[..1]);
        lane.count_published(&[("cdm.new".to_owned(), 3)]);
        let published = lane.published.read().expect("lock");
        assert_eq!(published.len(), MAX_TOPICS_PER_LANE + 1);
        assert_eq!(published["cdm.t0"].load(Ordering::Relaxed), 4);
        assert_eq!(published[OTHER_TOPICS].load(Ordering::Relaxed), 5 * 2 + 3);
    }

    #[test]
    fn renders_counters_histogram_and_published_records() {
        let telemetry = Telemetry::default();
        let metrics = telemetry.report::<PipelineMetrics>();
        let first = PipelineStats {
            batches: 1,
            records_in: 6,
            dead_lettered: 1,
            ..PipelineStats::default()
        };
        let second = PipelineStats {
            batches: 1,
            records_in: 4,
            ..PipelineStats::default()
        };
        // Two consumers of one lane add to the same counters.
        metrics
            .lane("cdm")
            .record_batch(&first, Duration::from_millis(3));
        metrics
            .lane("cdm")
            .record_batch(&second, Duration::from_secs(2));
        metrics
            .lane("audit")
            .record_batch(&PipelineStats::default(), Duration::from_secs(2));
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
        metrics
            .lane("cdm")
            .count_published(&[("cdm.customer".into(), 2)]);
        telemetry
            .report::<PipelineMetrics>()
            .lane("cdm")
            .count_published(&[("cdm.customer".into(), 1), ("sluice.dlq".into(), 1)]);
        let text = telemetry.prometheus();
        assert!(
            text.contains("sluice_records_published_total{lane=\"cdm\",topic=\"cdm.customer\"} 3\nsluice_records_published_total{lane=\"cdm\",topic=\"sluice.dlq\"} 1\n"),
            "{text}"
        );
    }
}
