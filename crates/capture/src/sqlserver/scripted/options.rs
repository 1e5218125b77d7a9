//! The Debezium options users moving from Debezium look for, through the capture loop:
//! snapshot isolation modes (the order of locks, position and reads), select overrides,
//! column lists and masks in the events (values masked, keys not), the time precision
//! in the values.

use super::*;
use crate::filters::{Filter, Patterns};
use crate::masks::{Mask, MaskRule};
use crate::sqlserver::tables::SnapshotIsolation;
use crate::sqlserver::types::TimePrecision;

/// Runs capture on `script` until the script is drained; returns the writer.
async fn capture(script: &mut Script, settings: &CaptureSettings) -> Memory {
    let mut writer = Memory::default();
    let settings = CaptureSettings {
        poll_interval: std::time::Duration::from_millis(1),
        ..settings.clone()
    };
    let shutdown = tokio::time::sleep(std::time::Duration::from_millis(50));
    run(
        script,
        &mut writer,
        &settings,
        None,
        clock(),
        &Progress::default(),
        shutdown,
    )
    .await
    .expect("capture");
    writer
}

fn snapshot_script() -> Script {
    let mut script = Script::with_customers();
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george()]);
    script
}

/// The calls up to the first `rows` call and the last one, without the streaming
/// passes' `max_lsn` calls after the snapshot.
fn snapshot_calls(script: &Script) -> Vec<String> {
    let end = script
        .calls
        .iter()
        .position(|c| c == "end")
        .expect("the snapshot ended");
    script.calls[..=end].to_vec()
}

#[tokio::test]
async fn isolation_modes_lock_read_the_position_and_release_in_debeziums_order() {
    let expected = |isolation: SnapshotIsolation| -> Vec<String> {
        let mut calls = vec![
            format!("begin {isolation:?} dbo.customers"),
            "max_lsn".to_owned(),
        ];
        if isolation == SnapshotIsolation::RepeatableRead {
            // Locks held while the position and schemas are read, released before rows.
            calls.push("release".into());
        }
        calls.push("rows dbo.customers -".into());
        calls.push("end".into());
        calls
    };
    for isolation in [
        SnapshotIsolation::Snapshot,
        SnapshotIsolation::RepeatableRead,
        SnapshotIsolation::ReadCommitted,
        SnapshotIsolation::ReadUncommitted,
        SnapshotIsolation::Exclusive,
    ] {
        let mut script = snapshot_script();
        let settings = CaptureSettings {
            snapshot_isolation: isolation,
            ..settings()
        };
        let writer = capture(&mut script, &settings).await;
        assert_eq!(
            snapshot_calls(&script),
            expected(isolation),
            "{isolation:?}"
        );
        assert_eq!(writer.events(), pairs(&[("r", 1001), ("r", 1002)]));
    }
}

#[tokio::test]
async fn a_select_override_reaches_its_table_only() {
    let mut script = snapshot_script();
    let settings = CaptureSettings {
        snapshot_overrides: vec![(
            "DBO.Customers".into(),
            "SELECT * FROM dbo.customers WHERE is_active = 1".into(),
        )],
        ..settings()
    };
    capture(&mut script, &settings).await;
    assert!(
        script
            .calls
            .contains(&"rows dbo.customers SELECT * FROM dbo.customers WHERE is_active = 1".into()),
        "{:?}",
        script.calls
    );
}

fn values(writer: &Memory) -> Vec<serde_json::Value> {
    writer
        .records()
        .into_iter()
        .filter(|r| r.topic == "server1.testDB.dbo.customers")
        .filter_map(|r| r.value.as_ref())
        .map(|v| serde_json::from_slice(v).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn column_lists_and_masks_shape_snapshot_and_stream_events() {
    let mut script = snapshot_script();
    script.row("dbo_customers", 5, 1, Operation::Delete, sally());
    script.commit_rows_after_snapshot();
    let patterns = |text: &str| Patterns::parse(text).expect("valid");
    let mut settings = settings();
    settings.columns.filter = Filter::Exclude(patterns(r"dbo\.customers\.(birth_date|updated_at)"));
    settings.columns.masks = vec![
        MaskRule {
            columns: patterns(r"dbo\.customers\.email"),
            mask: Mask::Chars(6),
        },
        MaskRule {
            columns: patterns(r"dbo\.customers\.(last_name|id)"),
            mask: Mask::Hash {
                algorithm: crate::masks::HashAlgorithm::Sha256,
                salt: "a".into(),
                v2: true,
            },
        },
    ];
    settings.events.schemas = true;
    let writer = capture(&mut script, &settings).await;
    let values = values(&writer);
    assert_eq!(values.len(), 3, "two reads and a delete");
    for value in &values {
        let payload = &value["payload"];
        let row = if payload["op"] == "d" {
            &payload["before"]
        } else {
            &payload["after"]
        };
        assert_eq!(row["email"], "******");
        // An int column keeps its value under a mask; the text is hashed.
        assert!(row["id"].is_i64(), "{row}");
        let last_name = row["last_name"].as_str().expect("hashed");
        assert_eq!(last_name.len(), 64, "{last_name}");
        assert!(last_name.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(row.get("birth_date").is_none() && row.get("updated_at").is_none());
        let fields = &value["schema"]["fields"][0]["fields"];
        let email = fields
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["field"] == "email")
            .expect("email");
        assert_eq!(email["parameters"]["masked"], "true");
    }
    // Keys are never masked.
    let keys: Vec<String> = writer
        .records()
        .into_iter()
        .filter(|r| r.topic == "server1.testDB.dbo.customers" && r.value.is_some())
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert!(
        keys.iter().all(|k| k.contains("\"payload\":{\"id\":100")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains("masked")), "{keys:?}");
}

#[tokio::test]
async fn time_precision_reaches_the_events() {
    let mut script = snapshot_script();
    let mut settings = settings();
    settings.events.time_precision = TimePrecision::Connect;
    let writer = capture(&mut script, &settings).await;
    let values = values(&writer);
    // updated_at is datetime2(7): nanoseconds in adaptive mode, ms in connect mode.
    let adaptive = values_of_default(&mut snapshot_script()).await;
    let connect = values[0]["after"]["updated_at"].as_i64().expect("ms");
    let nanos = adaptive[0]["after"]["updated_at"].as_i64().expect("ns");
    assert_eq!(connect, nanos.div_euclid(1_000_000));
}

async fn values_of_default(script: &mut Script) -> Vec<serde_json::Value> {
    values(&capture(script, &settings()).await)
}
