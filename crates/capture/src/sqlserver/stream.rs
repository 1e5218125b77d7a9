//! The streaming pass loop, as Debezium's `SqlServerStreamingChangeEventSource` runs it:
//!
//! 1. the window: from `fn_cdc_increment_lsn(last commit)` (the stored commit itself on
//!    the first pass after a restart, with the skip rule dropping what was published) up
//!    to the last commit of the next `max_transactions` transactions in
//!    `cdc.lsn_time_mapping`, capped at `fn_cdc_get_max_lsn()`;
//! 2. the plan: which capture instance of each table covers which part of the window;
//! 3. the rows of every change table, merged in log order (`__$start_lsn,
//!    __$command_id, __$seqval, __$operation`) as they arrive ([`super::merge`]: one
//!    cursor per change table, never the whole window in memory);
//! 4. events: 1 → `d` (+ tombstone), 2 → `c`, 3 followed by 4 → one `u` (or, when the
//!    key changed, `d` + tombstone + `c`), transaction BEGIN/END and blocks when enabled,
//!    schema-change events at instance switches, heartbeats when configured;
//! 5. events and the new offset committed together, in parts of `batch_size` records
//!    published while the window is still being read; with transaction metadata the
//!    open transaction travels in the offset (Debezium's `TransactionContext`).

use std::collections::BTreeMap;

use super::lsn::Lsn;
use super::merge::Merge;
use super::plan;
use super::tables::{CdcTables, ChangeRow, Operation};
use crate::envelope::{
    self, Change, Op, Snapshot, Source, TableChange, TableSchema, TransactionBlock,
};
use crate::offsets::{Offset, Position, SkipRule, Transaction};
use crate::{CaptureError, CaptureSettings, Clock, EventWriter, OutRecord};

/// The streaming state between passes.
pub struct Streamer {
    settings: CaptureSettings,
    clock: Clock,
    /// The last commit LSN fully read.
    last_commit: Lsn,
    /// The position of the last published event (what the offset says).
    position: Option<Position>,
    /// Set after a restart from a streaming offset, for the first pass.
    skip: Option<SkipRule>,
    /// The capture instance in use per table.
    current: BTreeMap<String, String>,
    /// When the last heartbeat was sent, epoch ms.
    last_heartbeat_ms: i64,
    /// The position of the last event assembled: the next event at the same
    /// `(commit, command, change)` continues its `event_serial_no`.
    last_assembled: Option<Position>,
    /// Capture instances dropped because they disappeared (a metric).
    dropped_instances: u64,
    /// Changes left out by `event.processing.failure.handling.mode`.
    events_skipped: u64,
    /// With transaction metadata: the transaction of the last published event, whose END
    /// waits for the next transaction's first event (as Debezium's `TransactionMonitor`).
    transaction: Option<Transaction>,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer")
            .field("last_commit", &self.last_commit)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// One change event being assembled, with what its offset and transaction need.
struct Event {
    records: Vec<OutRecord>,
    position: Position,
    /// `<db>.<schema>.<table>` (Debezium's `data_collection`); empty for a schema change.
    table: String,
    /// The commit time (the transaction events' `ts_ms`).
    commit_ts_ms: i64,
}

impl Streamer {
    pub fn new(settings: CaptureSettings, clock: Clock) -> Self {
        Self {
            settings,
            clock,
            last_commit: Lsn::ZERO,
            position: None,
            skip: None,
            current: BTreeMap::new(),
            last_heartbeat_ms: 0,
            last_assembled: None,
            dropped_instances: 0,
            events_skipped: 0,
            transaction: None,
        }
    }

    /// How many capture instances disappeared and were dropped so far.
    pub fn dropped_instances(&self) -> u64 {
        self.dropped_instances
    }

    /// Changes left out so far by `event.processing.failure.handling.mode`.
    pub fn events_skipped(&self) -> u64 {
        self.events_skipped
    }

    /// Continues after `offset`: a snapshot's position (stream from the next commit) or
    /// a streaming position (re-read its commit with the skip rule).
    pub fn resume_from(&mut self, offset: Offset) {
        match offset {
            Offset::Snapshot { commit, .. } => {
                self.last_commit = commit;
                self.skip = None;
                self.transaction = None;
            }
            Offset::Stream(position, transaction) => {
                self.last_commit = position.commit;
                self.position = Some(position);
                self.last_assembled = Some(position);
                self.skip = Some(SkipRule::new(position));
                self.transaction = transaction.filter(|_| self.settings.transaction_metadata);
            }
        }
    }

    /// An error if the change tables no longer hold the changes after `commit` (the
    /// cleanup job removed them): as Debezium's `validateLogPosition`, the stored commit
    /// against `MIN(start_lsn)` of the change tables. The cleanup job moves an
    /// instance's `start_lsn` forward as it deletes (it is what `fn_cdc_get_min_lsn`
    /// returns), so no instance may be set aside as "newer" here.
    pub async fn check_gap<T: CdcTables>(
        &mut self,
        tables: &mut T,
        commit: Lsn,
    ) -> Result<(), CaptureError> {
        let instances = tables.capture_instances().await?;
        let oldest = instances
            .iter()
            .filter(|i| self.settings.tables.contains(&i.table.id()))
            // `Lsn::MAX`: a start not established yet (NULL).
            .filter(|i| i.start_lsn != Lsn::MAX)
            .min_by_key(|i| i.start_lsn);
        match oldest {
            Some(oldest) if oldest.start_lsn > commit => Err(CaptureError::CleanupGap {
                table: oldest.table.id(),
                offset: commit,
                min: oldest.start_lsn,
            }),
            _ => Ok(()),
        }
    }

    /// Runs one pass; `true` when it read a window (call again at once), `false` when
    /// there was nothing new (wait before the next).
    pub async fn pass<T: CdcTables, W: EventWriter>(
        &mut self,
        tables: &mut T,
        writer: &mut W,
    ) -> Result<bool, CaptureError> {
        let from = if self.skip.is_some() {
            self.last_commit
        } else {
            self.last_commit.increment()
        };
        let Some(max) = tables.max_lsn().await? else {
            return Ok(false);
        };
        if max < from {
            self.heartbeat(writer).await?;
            return Ok(false);
        }
        let to = if self.settings.max_transactions == 0 {
            // `max.iteration.transactions = 0`: no bound, up to the max LSN.
            max
        } else {
            // `max_transactions` new transactions: after a restart the window starts at
            // the stored commit, read again, so it holds one more (as Debezium's does).
            let transactions = if self.skip.is_some() {
                self.settings.max_transactions.saturating_add(1)
            } else {
                self.settings.max_transactions
            };
            let Some(to) = tables.window_end(from, transactions).await? else {
                self.heartbeat(writer).await?;
                return Ok(false);
            };
            to.min(max)
        };
        if to < from {
            self.heartbeat(writer).await?;
            return Ok(false);
        }
        let mut instances = tables.capture_instances().await?;
        self.settings.columns.apply(&mut instances)?;
        let plan = plan::plan(
            &self.settings.tables,
            &instances,
            &mut self.current,
            (from, to),
            self.settings.on_vanished,
        )?;
        for dropped in &plan.dropped {
            self.dropped_instances += 1;
            tracing::error!(
                table = %dropped.table,
                instance = %dropped.instance,
                from = %dropped.from,
                replaced_by = dropped.replaced_by.as_deref().unwrap_or("none"),
                "capture instance disappeared (CDC disabled or re-enabled on the table): dropped, as Debezium does; changes it held from this LSN on are LOST; re-snapshot the table, or set on_instance_vanished = \"fail\" to stop instead"
            );
        }
        let mut switches = plan.switches.clone();
        switches.sort_by_key(|s| s.at);
        let mut switches = switches.into_iter().peekable();
        let mut out = Output::default();
        {
            let streams = tables.changes(&plan.reads).await?;
            let mut merge = Merge::new(streams);
            while let Some((row, index)) = merge.next().await? {
                while let Some(switch) = switches.next_if(|s| s.at <= row.start_lsn) {
                    if let Some(event) = self.schema_change(&switch, &row) {
                        self.emit(event, &mut out, to, writer).await?;
                    }
                }
                let table = &plan.reads[index].instance.table;
                let skip_first = self.skip_row(&row);
                let event = match row.operation {
                    Operation::UpdateBefore => {
                        let pair = |next: &ChangeRow| {
                            next.operation == Operation::UpdateAfter && next.seqval == row.seqval
                        };
                        let Some(after) = merge.next_of_if(index, pair).await? else {
                            return Err(CaptureError::UnpairedUpdate {
                                table: table.id(),
                                lsn: row.seqval,
                            });
                        };
                        let skip_second = self.skip_row(&after);
                        if skip_first && skip_second {
                            continue;
                        }
                        self.update(table, &row, &after)
                    }
                    Operation::UpdateAfter => {
                        return Err(CaptureError::UnpairedUpdate {
                            table: table.id(),
                            lsn: row.seqval,
                        });
                    }
                    Operation::Insert | Operation::Delete if !skip_first => {
                        self.single(table, &row)
                    }
                    _ => continue,
                };
                let event = match event {
                    Ok(event) => event,
                    Err(CaptureError::Row(error)) => {
                        self.settings.on_event_failure.handle(error)?;
                        self.events_skipped += 1;
                        continue;
                    }
                    Err(other) => return Err(other),
                };
                let op = match row.operation {
                    Operation::Insert => 'c',
                    Operation::Delete => 'd',
                    _ => 'u',
                };
                if self.settings.skipped_operations.contains(&op) {
                    continue;
                }
                self.emit(event, &mut out, to, writer).await?;
            }
        }
        for switch in switches {
            // A switch with no row after it in this window still takes effect.
            let marker = ChangeRow {
                start_lsn: switch.at,
                seqval: switch.at,
                operation: Operation::Insert,
                command_id: 0,
                commit_ts_ms: (self.clock)() / 1_000,
                values: Vec::new(),
            };
            if let Some(event) = self.schema_change(&switch, &marker) {
                self.emit(event, &mut out, to, writer).await?;
            }
        }
        self.skip = None;
        self.last_commit = to;
        let events = out.events;
        self.finish(out, to, writer).await?;
        tracing::debug!(%from, %to, events, "pass done");
        Ok(true)
    }

    /// Applies the skip rule of the first pass after a restart.
    fn skip_row(&mut self, row: &ChangeRow) -> bool {
        match &mut self.skip {
            Some(rule) => rule.skip_row(row.start_lsn, row.command_id, row.seqval),
            None => false,
        }
    }

    /// The position of an event made of `rows` change rows at `row`: as Debezium's
    /// `SqlServerOffsetContext`, `event_serial_no` counts rows at one position (1 for an
    /// insert or delete, 2 for an update, more when several events share a position),
    /// which is what the skip rule counts on restart.
    fn next_position(&mut self, row: &ChangeRow, rows: i64) -> Position {
        let serial = match self.last_assembled {
            Some(last)
                if (last.commit, last.command, last.change)
                    == (row.start_lsn, Some(row.command_id), row.seqval) =>
            {
                last.serial + rows
            }
            _ => rows,
        };
        let position = Position {
            commit: row.start_lsn,
            change: row.seqval,
            serial,
            command: Some(row.command_id),
        };
        self.last_assembled = Some(position);
        position
    }

    fn source(row: &ChangeRow, serial: i64) -> Source {
        Source {
            ts_ms: row.commit_ts_ms,
            snapshot: Snapshot::False,
            change_lsn: Some(row.seqval),
            commit_lsn: Some(row.start_lsn),
            event_serial_no: Some(serial),
        }
    }

    fn record(
        &self,
        table: &TableSchema,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> OutRecord {
        OutRecord {
            topic: table.topic(&self.settings.events),
            key,
            value,
            headers: Vec::new(),
        }
    }

    /// A value without its transaction block (added in `publish` once the
    /// transaction's order is known).
    fn change_value(
        &self,
        table: &TableSchema,
        op: Op,
        before: Option<&[super::types::SqlValue]>,
        after: Option<&[super::types::SqlValue]>,
        source: Source,
        tx: Option<&TransactionBlock>,
    ) -> Result<Vec<u8>, CaptureError> {
        let change = Change {
            op,
            before,
            after,
            source,
            transaction: tx,
            now_us: (self.clock)(),
        };
        Ok(envelope::value(table, &change, &self.settings.events)?)
    }

    fn single(&mut self, table: &TableSchema, row: &ChangeRow) -> Result<Event, CaptureError> {
        let position = self.next_position(row, 1);
        let source = Self::source(row, position.serial);
        let key = envelope::key(table, &row.values, &self.settings.events, &source)?;
        let mut records = Vec::new();
        let (op, before, after) = match row.operation {
            Operation::Delete => (Op::Delete, Some(row.values.as_slice()), None),
            _ => (Op::Create, None, Some(row.values.as_slice())),
        };
        let value = self.change_value(table, op, before, after, source, None)?;
        records.push(self.record(table, key.clone(), Some(value)));
        if op == Op::Delete && self.settings.tombstones {
            records.push(self.record(table, key, None));
        }
        Ok(Event {
            records,
            position,
            table: self.data_collection(table),
            commit_ts_ms: row.commit_ts_ms,
        })
    }

    fn update(
        &mut self,
        table: &TableSchema,
        before: &ChangeRow,
        after: &ChangeRow,
    ) -> Result<Event, CaptureError> {
        let position = self.next_position(after, 2);
        let source = Self::source(after, position.serial);
        let old_key = envelope::key(table, &before.values, &self.settings.events, &source)?;
        let new_key = envelope::key(table, &after.values, &self.settings.events, &source)?;
        let mut records = Vec::new();
        if old_key == new_key {
            let value = self.change_value(
                table,
                Op::Update,
                Some(&before.values),
                Some(&after.values),
                source,
                None,
            )?;
            records.push(self.record(table, new_key, Some(value)));
        } else {
            // A primary-key update: delete (+ tombstone) under the old key, create under
            // the new, with Debezium's headers linking the two.
            let delete =
                self.change_value(table, Op::Delete, Some(&before.values), None, source, None)?;
            let mut record = self.record(table, old_key.clone(), Some(delete));
            record.headers.push((
                "__debezium.newkey".into(),
                new_key.clone().unwrap_or_default(),
            ));
            if self.settings.tombstones {
                // Debezium's tombstone is the delete record without a value: same headers.
                let tombstone = OutRecord {
                    value: None,
                    ..record.clone()
                };
                records.push(record);
                records.push(tombstone);
            } else {
                records.push(record);
            }
            let create =
                self.change_value(table, Op::Create, None, Some(&after.values), source, None)?;
            let mut record = self.record(table, new_key, Some(create));
            record
                .headers
                .push(("__debezium.oldkey".into(), old_key.unwrap_or_default()));
            records.push(record);
        }
        Ok(Event {
            records,
            position,
            table: self.data_collection(table),
            commit_ts_ms: after.commit_ts_ms,
        })
    }

    /// `<db>.<schema>.<table>`: how Debezium names a table in transaction metadata.
    fn data_collection(&self, table: &TableSchema) -> String {
        format!("{}.{}", self.settings.events.database, table.id())
    }

    /// The schema-change event (`ALTER`) of an instance switch, at the first row read
    /// through the new instance (or the switch LSN when no row follows in the window);
    /// `None` with `include_schema_changes` off (the switch is logged either way).
    fn schema_change(&self, switch: &plan::Switch, row: &ChangeRow) -> Option<Event> {
        tracing::info!(table = %switch.table, from = %switch.from, to = %switch.to.name, at = %switch.at, schema_changed = switch.schema_changed, "capture instance switch");
        // Debezium skips the migration when the new instance's table is identical.
        if !self.settings.schema_changes || !switch.schema_changed {
            return None;
        }
        let source = Source {
            ts_ms: row.commit_ts_ms,
            snapshot: Snapshot::False,
            change_lsn: self.last_assembled.map(|p| p.change),
            commit_lsn: Some(switch.at),
            event_serial_no: self.last_assembled.map(|p| p.serial),
        };
        let (key, value) = envelope::schema_change_event(
            &self.settings.events,
            &switch.to.table,
            TableChange::Alter,
            &source,
            (self.clock)() / 1_000,
        );
        Some(Event {
            records: vec![OutRecord {
                topic: self.settings.events.prefix.clone(),
                key: Some(key),
                value: Some(value),
                headers: Vec::new(),
            }],
            // Not a change position: `publish` keeps the previous one.
            position: Position {
                commit: Lsn::ZERO,
                change: Lsn::ZERO,
                serial: 0,
                command: None,
            },
            table: String::new(),
            commit_ts_ms: row.commit_ts_ms,
        })
    }

    /// Adds `event` to the part being filled (with transaction metadata: after END of
    /// the previous transaction and BEGIN of its own when it opens one, and with its
    /// `transaction` block); commits the part once it holds `batch_size` records, so a
    /// window is published while it is read.
    async fn emit<W: EventWriter>(
        &mut self,
        event: Event,
        out: &mut Output,
        to: Lsn,
        writer: &mut W,
    ) -> Result<(), CaptureError> {
        let is_change = !event.table.is_empty();
        if is_change {
            out.events += 1;
            self.position = Some(event.position);
            if self.settings.transaction_metadata {
                self.add_transaction_metadata(event, &mut out.part);
            } else {
                out.part.extend(event.records);
            }
        } else {
            out.part.extend(event.records);
        }
        if out.part.len() >= self.settings.batch_size {
            self.commit_part(&mut out.part, to, writer).await?;
        }
        Ok(())
    }

    /// Debezium's `TransactionMonitor`: at a data event of another transaction, END of
    /// the previous one (with this event's time) and BEGIN of this one; a `transaction`
    /// block in every data record (a primary-key update's delete and create count as
    /// two, its tombstone none). The open transaction travels in the offset, so a
    /// restart continues its order and still ends it.
    fn add_transaction_metadata(&mut self, event: Event, part: &mut Vec<OutRecord>) {
        let id = event.position.commit.to_string();
        let tx_topic = format!("{}.transaction", self.settings.events.prefix);
        let mut boundary = |status: &str, transaction: &Transaction| {
            let counts = (status == "END").then_some(transaction.per_table.as_slice());
            let (key, value) = envelope::transaction_event(
                &self.settings.events,
                status,
                &transaction.id,
                counts,
                event.commit_ts_ms,
            );
            part.push(OutRecord {
                topic: tx_topic.clone(),
                key: Some(key),
                value: Some(value),
                headers: Vec::new(),
            });
        };
        if self.transaction.as_ref().is_none_or(|open| open.id != id) {
            if let Some(ended) = self.transaction.take() {
                boundary("END", &ended);
            }
            let begun = Transaction {
                id: id.clone(),
                per_table: Vec::new(),
            };
            boundary("BEGIN", &begun);
            self.transaction = Some(begun);
        }
        let Some(open) = self.transaction.as_mut() else {
            return;
        };
        for mut record in event.records {
            if let Some(value) = &record.value {
                let data_collection_order = open.count(&event.table);
                let block = TransactionBlock {
                    id: id.clone(),
                    total_order: open.total(),
                    data_collection_order,
                };
                record.value = Some(with_transaction(value, &block));
            }
            part.push(record);
        }
    }

    /// Ends the pass: publishes what is left with the window's end as the offset.
    async fn finish<W: EventWriter>(
        &mut self,
        out: Output,
        to: Lsn,
        writer: &mut W,
    ) -> Result<(), CaptureError> {
        let mut part = out.part;
        // The window is read to `to`: whatever the last event was, nothing up to `to`
        // is left, so the offset moves to the window's end (a restart skips the whole
        // commit `to`: its changes all precede its commit record).
        let position = match self.position {
            Some(p) if p.commit == to => p,
            _ => Position {
                commit: to,
                change: to,
                serial: 0,
                command: None,
            },
        };
        self.position = Some(position);
        if let Some(interval) = self.settings.heartbeat {
            let now_ms = (self.clock)() / 1_000;
            if now_ms - self.last_heartbeat_ms >= interval.as_millis() as i64 {
                part.push(self.heartbeat_record(now_ms));
                self.last_heartbeat_ms = now_ms;
            }
        }
        writer
            .commit(part, Offset::Stream(position, self.transaction.clone()))
            .await?;
        Ok(())
    }

    /// Commits `part` with the position of its last event (the window's end if it has
    /// none yet).
    async fn commit_part<W: EventWriter>(
        &self,
        part: &mut Vec<OutRecord>,
        to: Lsn,
        writer: &mut W,
    ) -> Result<(), CaptureError> {
        let position = self.position.unwrap_or(Position {
            commit: to,
            change: to,
            serial: 0,
            command: None,
        });
        let offset = Offset::Stream(position, self.transaction.clone());
        writer.commit(std::mem::take(part), offset).await?;
        Ok(())
    }

    fn heartbeat_record(&self, now_ms: i64) -> OutRecord {
        let (key, value) = envelope::heartbeat_event(&self.settings.events, now_ms);
        OutRecord {
            topic: format!("__debezium-heartbeat.{}", self.settings.events.prefix),
            key: Some(key),
            value: Some(value),
            headers: Vec::new(),
        }
    }

    /// Sends a heartbeat (with the unchanged offset) if one is due.
    async fn heartbeat<W: EventWriter>(&mut self, writer: &mut W) -> Result<(), CaptureError> {
        let Some(interval) = self.settings.heartbeat else {
            return Ok(());
        };
        let now_ms = (self.clock)() / 1_000;
        if now_ms - self.last_heartbeat_ms < interval.as_millis() as i64 {
            return Ok(());
        }
        self.last_heartbeat_ms = now_ms;
        let offset = match self.position {
            Some(p) => Offset::Stream(p, self.transaction.clone()),
            None => Offset::Snapshot {
                commit: self.last_commit,
                completed: true,
            },
        };
        writer
            .commit(vec![self.heartbeat_record(now_ms)], offset)
            .await?;
        Ok(())
    }
}

/// What a pass has assembled and not yet committed.
#[derive(Default)]
struct Output {
    part: Vec<OutRecord>,
    /// Change events emitted in the pass (for the log).
    events: usize,
}

/// Replaces the envelope's `"transaction":null` with `block` (the value was built
/// without one; the block's order is known only once the transaction is complete).
fn with_transaction(value: &[u8], block: &TransactionBlock) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    let mut replacement = String::from(",\"transaction\":{\"id\":");
    super::types::push_json_string(&mut replacement, &block.id);
    replacement.push_str(&format!(
        ",\"total_order\":{},\"data_collection_order\":{}}},\"op\":",
        block.total_order, block.data_collection_order
    ));
    // The last occurrence: row values cannot contain this byte sequence unescaped.
    match text.rfind(",\"transaction\":null,\"op\":") {
        Some(at) => {
            let mut out = text[..at].to_owned();
            out.push_str(&replacement);
            out.push_str(&text[at + ",\"transaction\":null,\"op\":".len()..]);
            out.into_bytes()
        }
        None => value.to_vec(),
    }
}
