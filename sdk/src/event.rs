//! The change event a plugin receives, with typed access to its row images.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Reject;
use crate::bindings::sluice::transform::types as wit;

pub use wit::{Header, Origin, SnapshotMarker, SourceInfo, Span, TransactionInfo};

/// What happened to the row (Debezium's `op`).
pub use wit::Operation as Op;

/// One change event, decoded from its Debezium envelope by the host.
///
/// Row images arrive as JSON text and are parsed only when asked for, into the type the
/// plugin names: `event.after::<Customer>()?`.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    inner: wit::ChangeEvent,
}

impl ChangeEvent {
    /// Wraps the WIT record (used by the `#[transform]` glue and by native tests).
    pub fn from_wit(inner: wit::ChangeEvent) -> Self {
        Self { inner }
    }

    /// The WIT record, for plugins that want every field as the host sent it.
    pub fn as_wit(&self) -> &wit::ChangeEvent {
        &self.inner
    }

    /// The operation.
    pub fn op(&self) -> Op {
        self.inner.op
    }

    /// The `before` image parsed into `T`; a rejection when absent or not a `T`.
    ///
    /// `T` may borrow from the event (`&'a str`, `Cow<'a, str>` with `#[serde(borrow)]`),
    /// so text columns need not be copied out of the value.
    pub fn before<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Reject> {
        parse_row("before", self.slice(self.inner.before))
    }

    /// The `after` image parsed into `T`; a rejection when absent or not a `T`.
    pub fn after<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Reject> {
        parse_row("after", self.slice(self.inner.after))
    }

    /// The row as it is now: `after` for creates, updates and reads, `before` for deletes.
    pub fn row<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Reject> {
        match self.inner.op {
            Op::Delete => self.before(),
            _ => self.after(),
        }
    }

    /// The `before` image as JSON text.
    pub fn before_json(&self) -> Option<&str> {
        std::str::from_utf8(self.slice(self.inner.before)?).ok()
    }

    /// The `after` image as JSON text.
    pub fn after_json(&self) -> Option<&str> {
        std::str::from_utf8(self.slice(self.inner.after)?).ok()
    }

    /// The record value exactly as received (the whole Debezium envelope).
    pub fn value(&self) -> &[u8] {
        &self.inner.value
    }

    /// The bytes `span` points at; `None` for an absent or (host bug) out-of-range span.
    fn slice(&self, span: Option<wit::Span>) -> Option<&[u8]> {
        let span = span?;
        let start = span.start as usize;
        self.inner
            .value
            .get(start..start.checked_add(span.len as usize)?)
    }

    /// The source block (connector, database, table, LSNs, snapshot marker).
    pub fn source(&self) -> &SourceInfo {
        &self.inner.source
    }

    /// `schema.table` (or just `table` when the database has no schemas).
    pub fn qualified_table(&self) -> String {
        match &self.inner.source.schema {
            Some(schema) => {
                let table = &self.inner.source.table;
                let mut qualified = String::with_capacity(schema.len() + 1 + table.len());
                qualified.push_str(schema);
                qualified.push('.');
                qualified.push_str(table);
                qualified
            }
            None => self.inner.source.table.clone(),
        }
    }

    /// The transaction block, when the connector sends transaction metadata.
    pub fn transaction(&self) -> Option<&TransactionInfo> {
        self.inner.transaction.as_ref()
    }

    /// When the connector processed the event (envelope `ts_ms`).
    pub fn ts_ms(&self) -> Option<i64> {
        self.inner.ts_ms
    }

    /// The record key bytes as received.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.inner.key.as_deref()
    }

    /// The key parsed into `T`. Accepts both Debezium key forms: the bare primary-key
    /// object and `{"schema": ..., "payload": ...}`.
    pub fn key<T: DeserializeOwned>(&self) -> Result<T, Reject> {
        let bytes = self
            .inner
            .key
            .as_deref()
            .ok_or_else(|| Reject::new("the event has no key").with_code("missing-key"))?;
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Reject::new(format!("key is not JSON: {e}")).with_code("bad-key"))?;
        let payload = unwrap_schema_payload(value);
        serde_json::from_value(payload)
            .map_err(|e| Reject::new(format!("key: {e}")).with_code("bad-key"))
    }

    /// The headers as received.
    pub fn headers(&self) -> &[Header] {
        &self.inner.headers
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.inner
            .headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    /// Where the event was read from (topic, partition, offset).
    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// The Kafka Connect value schema as JSON text, when the event carried one.
    pub fn value_schema(&self) -> Option<&str> {
        std::str::from_utf8(self.slice(self.inner.value_schema)?).ok()
    }

    /// The decimal scale of column `column` of the row images, read from the value schema
    /// (`parameters.scale` of an `org.apache.kafka.connect.data.Decimal` field).
    /// `None` when the event has no schema or the column is not a decimal.
    pub fn decimal_scale(&self, column: &str) -> Option<u32> {
        let schema: serde_json::Value =
            serde_json::from_slice(self.slice(self.inner.value_schema)?).ok()?;
        let row_schema = schema["fields"]
            .as_array()?
            .iter()
            .find(|f| f["field"] == "after" || f["field"] == "before")?;
        let field = row_schema["fields"]
            .as_array()?
            .iter()
            .find(|f| f["field"] == column)?;
        if field["name"] != "org.apache.kafka.connect.data.Decimal" {
            return None;
        }
        field["parameters"]["scale"].as_str()?.parse().ok()
    }

    /// Consumes the event, returning the WIT record.
    pub fn into_wit(self) -> wit::ChangeEvent {
        self.inner
    }
}

fn parse_row<'a, T: Deserialize<'a>>(image: &str, json: Option<&'a [u8]>) -> Result<T, Reject> {
    let json = json.ok_or_else(|| {
        Reject::new(format!("the event has no `{image}` image")).with_code("missing-image")
    })?;
    serde_json::from_slice(json)
        .map_err(|e| Reject::new(format!("{image}: {e}")).with_code("bad-row"))
}

/// Returns `payload` of a `{"schema": ..., "payload": ...}` object, or the value itself.
fn unwrap_schema_payload(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(mut map)
            if map.len() == 2 && map.contains_key("schema") && map.contains_key("payload") =>
        {
            map.remove("payload").unwrap_or(serde_json::Value::Null)
        }
        other => other,
    }
}
