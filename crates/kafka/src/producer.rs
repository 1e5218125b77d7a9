//! The one way sluice sets up a Kafka producer: the pipeline's sink, its exactly-once
//! sink and capture's writer all start from [`producer_config`].

use std::sync::Arc;

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use sluice_core::telemetry::Telemetry;

use crate::sink::ErrorCounter;

/// librdkafka's partitioner matching the Java client's: murmur2 of the key (random for
/// null keys, as the Java client spreads them).
pub const JAVA_PARTITIONER: &str = "murmur2_random";

/// librdkafka producer settings: safe defaults a user can override (`acks=all` and
/// idempotence: no loss, no duplicates from retries; the Java client's partitioner), then
/// `properties` verbatim, then `transactional.id` when given (it names this producer's
/// transactions, so it is never taken from `properties`).
pub fn producer_config(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("acks", "all");
    config.set("enable.idempotence", "true");
    // Kafka's Java producer (Kafka Connect's, so Debezium's, and Flink's KafkaSink) puts
    // a key on partition murmur2(key) % n; librdkafka's default (`consistent_random`,
    // CRC32) on another. A topic moving from such a writer to sluice would get one key
    // on two partitions: consumers would lose its order, and compaction would keep both
    // its last values (a tombstone deletes only the one beside it).
    config.set("partitioner", JAVA_PARTITIONER);
    for (key, value) in properties {
        config.set(key, value);
    }
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    config
}

/// A producer for `config` whose client errors are logged and counted in `telemetry`
/// (`sluice_producer_errors_total`).
pub fn create_producer(
    config: &ClientConfig,
    telemetry: Option<Arc<Telemetry>>,
) -> Result<FutureProducer<ErrorCounter>, rdkafka::error::KafkaError> {
    config.create_with_context(ErrorCounter::new(telemetry))
}

/// The `transactional.id` made of `parts` joined by dots. The pipeline's exactly-once
/// lanes use `<prefix>.<group>.<instance>`; capture uses
/// `sluice-capture.<server>.<database>`. Only one live producer may own an id: a new one
/// fences the old (its `init_transactions` aborts what the old one left open).
pub fn transactional_id(parts: &[&str]) -> String {
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ids_join_their_parts() {
        assert_eq!(
            transactional_id(&["sluice", "cdc.customers-cdm", "host-a"]),
            "sluice.cdc.customers-cdm.host-a"
        );
        assert_eq!(
            transactional_id(&["sluice-capture", "server1", "testDB"]),
            "sluice-capture.server1.testDB"
        );
    }

    #[test]
    fn user_properties_override_the_defaults_but_not_the_transactional_id() {
        let properties = vec![
            ("acks".to_owned(), "1".to_owned()),
            ("transactional.id".to_owned(), "theirs".to_owned()),
        ];
        let config = producer_config(&properties, Some("ours"));
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("transactional.id"), Some("ours"));
    }

    /// Keys land on the partitions the Java client (Kafka Connect, Debezium, Flink's
    /// KafkaSink) chooses, unless the properties say otherwise.
    #[test]
    fn keys_are_partitioned_as_the_java_client_does_unless_overridden() {
        assert_eq!(
            producer_config(&[], None).get("partitioner"),
            Some("murmur2_random")
        );
        let own = [("partitioner".to_owned(), "consistent_random".to_owned())];
        assert_eq!(
            producer_config(&own, Some("t")).get("partitioner"),
            Some("consistent_random")
        );
    }
}
