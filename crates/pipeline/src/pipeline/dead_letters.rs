//! Dead letters: what a record that cannot be processed becomes (its original key,
//! value and headers, plus why, where and which plugin), and the header names sluice
//! writes.

use sluice_core::{Header, Origin, OutputRecord};
use sluice_runtime::LoadedPlugin;

use super::{PipelineSettings, PipelineStats};

/// Header names sluice writes. Public so consumers and tests name them the same way.
pub mod headers {
    /// Why an event is in the dead-letter topic.
    pub const DLQ_REASON: &str = "sluice.dlq.reason";
    /// Where it failed: `decode`, `rejected`, `trapped`, `acl` (a topic outside the
    /// plugin's outputs) or `limit` (too many or too large output records).
    pub const DLQ_STAGE: &str = "sluice.dlq.stage";
    /// The rejection's code, when the plugin gave one.
    pub const DLQ_CODE: &str = "sluice.dlq.code";
    /// The plugin that rejected or trapped.
    pub const PLUGIN: &str = "sluice.plugin";
    pub const PLUGIN_VERSION: &str = "sluice.plugin.version";
    /// sha256 of the plugin component that produced the record.
    pub const PLUGIN_SHA256: &str = "sluice.plugin.sha256";
    pub const SOURCE_TOPIC: &str = "sluice.source.topic";
    pub const SOURCE_PARTITION: &str = "sluice.source.partition";
    pub const SOURCE_OFFSET: &str = "sluice.source.offset";

    /// The most bytes of a header sluice fills from data it did not choose (a dead-letter
    /// reason quoting the offending input, a plugin's rejection code): a reason says what
    /// is wrong in far less, and a record is not allowed to grow by what it quotes
    /// (a 100 KB topic name, a 500 KB parse error).
    pub const MAX_COPIED_BYTES: usize = 1024;
}

/// `text` cut to at most [`headers::MAX_COPIED_BYTES`] bytes on a character boundary,
/// with a marker saying how long it was.
pub fn bounded_header_text(text: &str) -> std::borrow::Cow<'_, str> {
    let max = headers::MAX_COPIED_BYTES;
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let marker = format!("... [truncated, {} bytes in all]", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{marker}", &text[..cut]))
}

/// The dead letter of `letter`, counted in `stats`.
pub(super) fn dead_letter(
    settings: &PipelineSettings,
    stats: &mut PipelineStats,
    letter: DeadLetter<'_>,
    stage: &str,
    reason: &str,
    code: Option<&str>,
    plugin: Option<&LoadedPlugin>,
) -> OutputRecord {
    {
        stats.dead_lettered += 1;
        let mut headers = letter.headers;
        headers.push(header(headers::DLQ_REASON, &bounded_header_text(reason)));
        headers.push(header(headers::DLQ_STAGE, stage));
        if let Some(code) = code {
            headers.push(header(headers::DLQ_CODE, &bounded_header_text(code)));
        }
        if let Some(plugin) = plugin {
            headers.push(header(headers::PLUGIN, plugin.name()));
            headers.push(header(headers::PLUGIN_VERSION, plugin.version()));
            headers.push(header(headers::PLUGIN_SHA256, plugin.sha256()));
        }
        push_source(
            &mut headers,
            &letter.origin.topic,
            letter.origin.partition,
            letter.origin.offset,
        );
        OutputRecord {
            timestamp: letter.timestamp,
            topic: settings.dead_letter_topic.clone(),
            key: letter.key,
            value: letter.value,
            headers,
        }
    }
}

/// The original record of an event that goes to the dead-letter topic.
pub(super) struct DeadLetter<'a> {
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<Header>,
    pub(super) origin: &'a Origin,
    /// The failed record's timestamp, which its dead letter keeps (as Kafka Connect's
    /// dead-letter queue does).
    pub(super) timestamp: Option<i64>,
}

pub(super) fn header(key: &'static str, value: &str) -> Header {
    Header::text(key, value)
}

pub(super) fn push_source(headers: &mut Vec<Header>, topic: &str, partition: i32, offset: i64) {
    headers.push(header(headers::SOURCE_TOPIC, topic));
    // Numbers written on the stack, not into a `String` per header.
    let mut digits = itoa::Buffer::new();
    headers.push(header(headers::SOURCE_PARTITION, digits.format(partition)));
    headers.push(header(headers::SOURCE_OFFSET, digits.format(offset)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_header_text_is_bounded_on_a_character_boundary() {
        assert_eq!(bounded_header_text("short"), "short");
        let long = "é".repeat(100_000);
        let bounded = bounded_header_text(&long);
        assert!(
            bounded.len() <= headers::MAX_COPIED_BYTES,
            "{}",
            bounded.len()
        );
        assert!(
            bounded.ends_with("... [truncated, 200000 bytes in all]"),
            "{bounded}"
        );
        assert!(bounded.starts_with("éé"));
    }
}
