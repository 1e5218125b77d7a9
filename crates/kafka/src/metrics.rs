//! What Kafka clients report to telemetry: producer client errors and consumer lag.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::telemetry::{Report, escape, lock};

/// A consumer's lag on one partition: (topic, partition, records behind the high
/// watermark).
pub type PartitionLag = (String, i32, i64);

/// Kafka clients' metrics, one per process ([`sluice_core::telemetry::Telemetry::report`]).
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    producer_errors: AtomicU64,
    /// Per lane: (topic, partition, records behind the high watermark).
    consumer_lag: Mutex<BTreeMap<String, Vec<PartitionLag>>>,
}

impl KafkaMetrics {
    /// Counts one error librdkafka reported about a producer.
    pub fn count_producer_error(&self) {
        self.producer_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces a lane's consumer lag per topic-partition.
    pub fn set_consumer_lag(&self, lane: &str, mut lags: Vec<PartitionLag>) {
        lags.sort();
        lock(&self.consumer_lag).insert(lane.to_owned(), lags);
    }
}

impl Report for KafkaMetrics {
    fn render(&self, out: &mut String) {
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
    }

    /// Each lane's lag, summed over its partitions.
    fn status(&self, status: &mut sluice_core::status::Status) {
        for (lane, lags) in lock(&self.consumer_lag).iter() {
            let total = lags.iter().map(|(_, _, lag)| (*lag).max(0)).sum();
            status.lanes.entry(lane.clone()).or_default().lag = Some(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lag_sorted_and_producer_errors() {
        let telemetry = sluice_core::telemetry::Telemetry::default();
        let metrics = telemetry.report::<KafkaMetrics>();
        metrics.set_consumer_lag("cdm", vec![("in".into(), 1, 7), ("in".into(), 0, 3)]);
        metrics.count_producer_error();
        let text = telemetry.prometheus();
        assert!(
            text.contains(
                "sluice_consumer_lag{lane=\"cdm\",topic=\"in\",partition=\"0\"} 3\nsluice_consumer_lag{lane=\"cdm\",topic=\"in\",partition=\"1\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("sluice_producer_errors_total 1\n"), "{text}");
        assert_eq!(
            telemetry.status().lanes["cdm"].lag,
            Some(10),
            "summed for the page"
        );
    }
}
