//! Reading a dead-letter topic for `sluice dlq replay`: a consumer group of the
//! replay's own, assigned from the group's committed position (or `--since`), reading up
//! to the end each partition had when the replay started (or `--until`); once what the
//! replay produced is published, [`DeadLetterReader::commit_through`] commits the
//! position after what was read, so the next replay starts there and nothing is
//! replayed twice.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use sluice_core::Header;

/// Why the dead-letter topic could not be read or committed.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter topic {topic}: {reason}")]
pub struct ReplayError {
    pub topic: String,
    pub reason: String,
}

/// One dead letter as read: where it is, and the record (original key, value and
/// headers plus sluice's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// Its timestamp: the failed record's, which a dead letter keeps.
    pub timestamp: Option<i64>,
}

/// A replay's view of the dead-letter topic (see the module docs).
pub struct DeadLetterReader {
    consumer: BaseConsumer,
    topic: String,
    group: String,
    /// Per partition, where reading starts.
    starts: BTreeMap<i32, i64>,
    /// Per partition, the end (high watermark) when the replay started.
    ends: BTreeMap<i32, i64>,
}

impl std::fmt::Debug for DeadLetterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterReader")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// How long the topic must have been quiet, once every partition reached its end, before
/// a replay stops reading: long enough for a fetch of what the broker already holds.
pub const QUIET: Duration = Duration::from_secs(1);

/// No record for this long before the ends: the broker stopped answering.
const STALLED: Duration = Duration::from_secs(30);

/// Where a replay starts or stops: an offset (in every partition) or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Offset(i64),
    /// Milliseconds since the Unix epoch (the dead letter's Kafka timestamp).
    TimeMs(i64),
}

impl std::str::FromStr for Bound {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(offset) = text.parse::<i64>()
            && offset >= 0
        {
            return Ok(Bound::Offset(offset));
        }
        parse_utc(text).map(Bound::TimeMs).ok_or_else(|| {
            format!("{text:?} is neither an offset nor a UTC time like 2026-12-05T07:00:00Z")
        })
    }
}

impl DeadLetterReader {
    /// A consumer of `topic` in `group` (librdkafka `properties`, e.g. the sink's),
    /// assigned from the group's position (or `since`); notes each partition's end.
    pub fn open(
        properties: &[(String, String)],
        topic: &str,
        group: &str,
        since: Option<Bound>,
    ) -> Result<Self, ReplayError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| ReplayError {
            topic: topic.to_owned(),
            reason: format!("{what}: {e}"),
        };
        let mut client = rdkafka::ClientConfig::new();
        for (key, value) in properties {
            client.set(key, value);
        }
        client
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| fail("creating the replay consumer", &e))?;
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| fail("reading its metadata", &e))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(fail("", &"does not exist"));
        }
        let mut ends = BTreeMap::new();
        let mut lows = BTreeMap::new();
        let mut wanted = rdkafka::TopicPartitionList::new();
        for &partition in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .map_err(|e| fail(&format!("reading the end of partition {partition}"), &e))?;
            ends.insert(partition, high);
            lows.insert(partition, low);
            wanted.add_partition(topic, partition);
        }
        let at = |offset: i64| {
            let mut list = rdkafka::TopicPartitionList::new();
            for &partition in &partitions {
                let _ =
                    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset));
            }
            list
        };
        let mut start = match since {
            None => consumer
                .committed_offsets(wanted, TIMEOUT)
                .map_err(|e| fail(&format!("reading the position of group {group}"), &e))?,
            Some(Bound::Offset(offset)) => at(offset),
            // offsets_for_times takes the time in the offset field.
            Some(Bound::TimeMs(ms)) => consumer
                .offsets_for_times(at(ms), TIMEOUT)
                .map_err(|e| fail("finding the offsets of --since", &e))?,
        };
        // A partition without a committed position: from the beginning; one without a
        // record after `since`: nothing.
        let unpositioned: Vec<i32> = start
            .elements_for_topic(topic)
            .iter()
            .filter(|element| {
                matches!(
                    element.offset(),
                    rdkafka::Offset::Invalid | rdkafka::Offset::End
                )
            })
            .map(|element| element.partition())
            .collect();
        for partition in unpositioned {
            let offset = if since.is_some() {
                rdkafka::Offset::Offset(ends[&partition])
            } else {
                rdkafka::Offset::Beginning
            };
            start
                .set_partition_offset(topic, partition, offset)
                .map_err(|e| fail("positioning", &e))?;
        }
        consumer
            .assign(&start)
            .map_err(|e| fail("assigning its partitions", &e))?;
        let starts = start
            .elements_for_topic(topic)
            .iter()
            .map(|element| {
                let partition = element.partition();
                let offset = match element.offset() {
                    rdkafka::Offset::Offset(offset) => offset,
                    _ => lows.get(&partition).copied().unwrap_or(0),
                };
                (partition, offset)
            })
            .collect();
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            group: group.to_owned(),
            starts,
            ends,
        })
    }

    /// Every dead letter from the start position up to the end each partition had at
    /// [`Self::open`] (or `until`), in order per partition. The end is where reading may
    /// stop, not where it must: reading goes on until the topic has been quiet for
    /// [`QUIET`], because a broker's high watermark can lag what it serves (tansu's
    /// does), and what is read is what [`Self::commit_through`] commits.
    pub fn read_all(&self, until: Option<Bound>) -> Result<Vec<DeadLetter>, ReplayError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| ReplayError {
            topic: self.topic.clone(),
            reason: format!("{what}: {e}"),
        };
        let mut letters = Vec::new();
        // Partitions read past `until`: what follows there is left for a later replay.
        let mut stopped: BTreeMap<i32, bool> = BTreeMap::new();
        let mut last_record = std::time::Instant::now();
        // The next offset to read, per partition.
        let mut next = self.starts.clone();
        loop {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(message) => {
                    last_record = std::time::Instant::now();
                    let message = message.map_err(|e| fail("reading", &e))?;
                    let partition = message.partition();
                    next.insert(partition, message.offset() + 1);
                    let past_until = match until {
                        Some(Bound::Offset(offset)) => message.offset() > offset,
                        Some(Bound::TimeMs(ms)) => {
                            message.timestamp().to_millis().is_some_and(|t| t > ms)
                        }
                        None => false,
                    };
                    if past_until {
                        stopped.insert(partition, true);
                    }
                    if stopped.contains_key(&partition) {
                        continue;
                    }
                    letters.push(DeadLetter {
                        partition,
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        // A name that is not UTF-8 is replayed with its invalid
                        // bytes replaced (rdkafka's own accessors would panic on it).
                        headers: crate::headers::read_headers(&message).headers,
                        timestamp: message.timestamp().to_millis().filter(|ms| *ms >= 0),
                    });
                }
                None => {
                    let at_ends = self.ends.iter().all(|(partition, end)| {
                        stopped.contains_key(partition)
                            || next.get(partition).is_some_and(|next| next >= end)
                    });
                    let quiet = last_record.elapsed();
                    if at_ends && quiet >= QUIET {
                        return Ok(letters);
                    }
                    if quiet >= STALLED {
                        return Err(fail(
                            "reading",
                            &format!("no record for {} s before its end", STALLED.as_secs()),
                        ));
                    }
                }
            }
        }
    }

    /// Commits, per partition, the position after the last of `letters` (what
    /// [`Self::read_all`] returned): everything up to there is handled.
    pub fn commit_through(&self, letters: &[DeadLetter]) -> Result<(), ReplayError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for letter in letters {
            let position = next.entry(letter.partition).or_default();
            *position = (*position).max(letter.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut positions = rdkafka::TopicPartitionList::new();
        for (partition, offset) in next {
            positions
                .add_partition_offset(&self.topic, partition, rdkafka::Offset::Offset(offset))
                .map_err(|e| ReplayError {
                    topic: self.topic.clone(),
                    reason: e.to_string(),
                })?;
        }
        self.consumer
            .commit(&positions, CommitMode::Sync)
            .map_err(|e| ReplayError {
                topic: self.topic.clone(),
                reason: format!("committing the position of group {}: {e}", self.group),
            })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → milliseconds since the Unix epoch.
fn parse_utc(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (time, millis) = match time.split_once('.') {
        Some((time, fraction)) => {
            // ASCII digits only, so that the digits kept are bytes and at most 3.
            if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits = &fraction[..fraction.len().min(3)];
            let scale = 10i64.pow(3 - digits.len() as u32);
            (time, digits.parse::<i64>().ok()? * scale)
        }
        None => (time, 0),
    };
    let mut time = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&hour)
        || !(0..=59).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    let days = sluice_core::settings::days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_offsets_or_utc_times() {
        assert_eq!("42".parse(), Ok(Bound::Offset(42)));
        assert_eq!("1970-01-01T00:00:01Z".parse(), Ok(Bound::TimeMs(1000)));
        assert_eq!(
            "2026-12-05T07:00:00.250Z".parse(),
            Ok(Bound::TimeMs(1_796_454_000_250))
        );
        assert_eq!(
            "2000-03-01T00:00:00Z".parse(),
            Ok(Bound::TimeMs(951_868_800_000))
        );
        for bad in [
            "-1",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-05 07:00:00",
            // Found by reading: a fraction of other characters than ASCII digits (its
            // byte length went past 3 in `10.pow(3 - len)`), a year past i64's
            // milliseconds, negative hours.
            "2026-12-05T07:00:00.éééZ",
            "2026-12-05T07:00:00.Z",
            "99999999999999-12-05T07:00:00Z",
            "2026-12-05T-1:00:00Z",
        ] {
            assert!(bad.parse::<Bound>().is_err(), "{bad}");
        }
    }
}
