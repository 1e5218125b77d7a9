//! Output records, rejections, and how a plugin function's result becomes an outcome.

use std::fmt;

use serde::Serialize;

use crate::bindings::sluice::transform::types as wit;

/// `value` as JSON bytes of exactly its length. It is written into a buffer kept for the
/// next call, then copied once: `serde_json::to_vec` starts at 128 bytes and grows by
/// doubling, a reallocation and a copy per step for a typical ~500-byte record.
fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    /// Kept up to this size between calls; a larger one is given back after use.
    const KEPT: usize = 64 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        // A `Serialize` that builds a record of its own gets a fresh buffer.
        let Ok(mut buffer) = scratch.try_borrow_mut() else {
            return serde_json::to_vec(value);
        };
        buffer.clear();
        let written = serde_json::to_writer(&mut *buffer, value).map(|()| buffer.to_vec());
        if buffer.capacity() > KEPT {
            *buffer = Vec::new();
        }
        written
    })
}

/// A record to publish, built with chained calls:
///
/// ```
/// use sluice_sdk::Record;
///
/// let record = Record::to("cdm.customer")
///     .json_key(&serde_json::json!({"customerId": 7}))
///     .json_value(&serde_json::json!({"customerId": 7, "active": true}))
///     .header("cdm.schema", "customer.v1");
/// assert_eq!(record.key_bytes(), Some(&br#"{"customerId":7}"#[..]));
/// ```
///
/// Serialising a key or value to JSON cannot fail for plain data types; if it does
/// (e.g. a map with non-string keys), the builder remembers the error and the event is
/// rejected with it instead of panicking.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<wit::Header>,
    error: Option<String>,
}

impl Record {
    /// A record for `topic` with no key, no value (a tombstone until a value is set) and
    /// no headers.
    pub fn to(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            value: None,
            headers: Vec::new(),
            error: None,
        }
    }

    /// Sets the key to raw bytes.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets or clears the key (e.g. to republish an event's key unchanged).
    pub fn key_opt(mut self, key: Option<Vec<u8>>) -> Self {
        self.key = key;
        self
    }

    /// Sets the key to `key` serialised as JSON.
    pub fn json_key<T: Serialize + ?Sized>(mut self, key: &T) -> Self {
        match to_json(key) {
            Ok(bytes) => self.key = Some(bytes),
            Err(e) => self.fail(format!("key of record for {}: {e}", self.topic)),
        }
        self
    }

    /// Sets the value to raw bytes.
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets the value to `value` serialised as JSON.
    pub fn json_value<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match to_json(value) {
            Ok(bytes) => self.value = Some(bytes),
            Err(e) => self.fail(format!("value of record for {}: {e}", self.topic)),
        }
        self
    }

    /// Makes the record a tombstone (no value), for deletes on compacted topics.
    pub fn tombstone(mut self) -> Self {
        self.value = None;
        self
    }

    /// Appends a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(wit::Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Appends headers (e.g. an event's headers, to republish them unchanged).
    pub fn headers(mut self, headers: impl IntoIterator<Item = wit::Header>) -> Self {
        self.headers.extend(headers);
        self
    }

    /// The destination topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The key bytes, if set.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value bytes, if set.
    pub fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn into_wit(self) -> Result<wit::OutputRecord, Reject> {
        if let Some(error) = self.error {
            return Err(Reject::new(error).with_code("serialize"));
        }
        Ok(wit::OutputRecord {
            topic: self.topic,
            key: self.key,
            value: self.value,
            headers: self.headers,
        })
    }
}

/// Why a plugin refuses an event; the event goes to the dead-letter topic with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    reason: String,
    code: Option<String>,
}

impl Reject {
    /// A rejection with a human-readable reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            code: None,
        }
    }

    /// Adds a machine-readable code (e.g. `missing-field`) for alerting.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} [{code}]", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Reject {}

impl From<serde_json::Error> for Reject {
    fn from(e: serde_json::Error) -> Self {
        Reject::new(e.to_string()).with_code("json")
    }
}

impl From<crate::debezium::DecodeError> for Reject {
    fn from(e: crate::debezium::DecodeError) -> Self {
        Reject::new(e.to_string()).with_code("decode")
    }
}

/// What a `#[transform]` function may return. Implemented for
/// `Result<Vec<Record>, Reject>`, `Result<Option<Record>, Reject>` and
/// `Result<Record, Reject>`.
#[diagnostic::on_unimplemented(
    message = "a sluice transform must return `Result<Vec<Record>, Reject>`, `Result<Option<Record>, Reject>` or `Result<Record, Reject>`, not `{Self}`"
)]
pub trait IntoOutcome {
    /// Converts into the WIT outcome of one event.
    fn into_outcome(self) -> wit::EventOutcome;
}

impl IntoOutcome for Result<Vec<Record>, Reject> {
    fn into_outcome(self) -> wit::EventOutcome {
        let converted = self.and_then(|records| {
            records
                .into_iter()
                .map(Record::into_wit)
                .collect::<Result<Vec<_>, _>>()
        });
        match converted {
            Ok(records) => wit::EventOutcome::Records(records),
            Err(reject) => wit::EventOutcome::Rejected(wit::Rejection {
                reason: reject.reason,
                code: reject.code,
            }),
        }
    }
}

impl IntoOutcome for Result<Option<Record>, Reject> {
    fn into_outcome(self) -> wit::EventOutcome {
        self.map(|record| record.into_iter().collect::<Vec<_>>())
            .into_outcome()
    }
}

impl IntoOutcome for Result<Record, Reject> {
    fn into_outcome(self) -> wit::EventOutcome {
        self.map(|record| vec![record]).into_outcome()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises as a JSON string holding a record's value built during serialisation.
    struct Nested(usize);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = Record::to("t").json_value(&"x".repeat(self.0));
            let text = String::from_utf8(inner.value.unwrap_or_default()).unwrap_or_default();
            serializer.serialize_str(&text)
        }
    }

    #[test]
    fn json_bytes_are_exact_whatever_came_before() {
        let big = "y".repeat(100_000);
        let record = Record::to("t").json_value(&big);
        assert_eq!(record.value.as_ref().map(Vec::len), Some(100_002));
        let small = Record::to("t")
            .json_key(&7)
            .json_value(&serde_json::json!({"a": [1, 2]}));
        assert_eq!(small.key.as_deref(), Some(&b"7"[..]));
        assert_eq!(small.value.as_deref(), Some(&br#"{"a":[1,2]}"#[..]));
        // A value whose serialisation builds another record (the buffer is in use).
        let nested = Record::to("t").json_value(&Nested(3));
        assert_eq!(nested.value.as_deref(), Some(&br#""\"xxx\"""#[..]));
        assert_eq!(nested.error, None);
    }

    #[test]
    fn records_become_an_outcome_in_order() {
        let result: Result<Vec<Record>, Reject> = Ok(vec![
            Record::to("a").json_key(&1).json_value(&"x"),
            Record::to("b").header("h", "v"),
        ]);
        let wit::EventOutcome::Records(records) = result.into_outcome() else {
            panic!("expected records");
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].topic, "a");
        assert_eq!(records[0].key.as_deref(), Some(&b"1"[..]));
        assert_eq!(records[0].value.as_deref(), Some(&b"\"x\""[..]));
        assert_eq!(records[1].value, None, "no value set means a tombstone");
        assert_eq!(records[1].headers[0].key, "h");
    }

    #[test]
    fn a_serialisation_failure_rejects_instead_of_panicking() {
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 2);
        let result: Result<Record, Reject> = Ok(Record::to("t").json_value(&bad));
        let wit::EventOutcome::Rejected(rejection) = result.into_outcome() else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.code.as_deref(), Some("serialize"));
        assert!(
            rejection.reason.contains("value of record for t"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn none_filters_the_event_out() {
        let result: Result<Option<Record>, Reject> = Ok(None);
        assert!(matches!(result.into_outcome(), wit::EventOutcome::Records(r) if r.is_empty()));
    }
}
