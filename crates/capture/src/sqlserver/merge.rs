//! The change tables of a pass merged in log order as their rows arrive, as Debezium's
//! streaming source merges its result sets (`tableWithSmallestLsn`): one open cursor per
//! change table and one row held per cursor, so a window of any size (a 10-million-row
//! transaction) runs in memory bounded by the number of tables, not by the window.

use futures::StreamExt;

use super::lsn::Lsn;
use super::tables::{ChangeRow, Operation, Rows, TablesError};

/// The read order of change rows: `__$start_lsn, __$command_id, __$seqval, __$operation`.
fn order(row: &ChangeRow) -> (Lsn, i32, Lsn, Operation) {
    (row.start_lsn, row.command_id, row.seqval, row.operation)
}

/// A k-way merge of the per-table row streams (see the module docs).
pub struct Merge<'a> {
    streams: Vec<Rows<'a>>,
    /// The next row of each stream; `None` once it ended.
    heads: Vec<Option<ChangeRow>>,
    started: bool,
}

impl<'a> Merge<'a> {
    pub fn new(streams: Vec<Rows<'a>>) -> Self {
        let heads = streams.iter().map(|_| None).collect();
        Self {
            streams,
            heads,
            started: false,
        }
    }

    async fn refill(&mut self, index: usize) -> Result<(), TablesError> {
        self.heads[index] = self.streams[index].next().await.transpose()?;
        Ok(())
    }

    async fn start(&mut self) -> Result<(), TablesError> {
        if !self.started {
            for index in 0..self.streams.len() {
                self.refill(index).await?;
            }
            self.started = true;
        }
        Ok(())
    }

    /// The next row in log order and the index of the stream it came from (ties go to
    /// the lower index); `None` once every stream ended.
    pub async fn next(&mut self) -> Result<Option<(ChangeRow, usize)>, TablesError> {
        self.start().await?;
        let smallest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(index, head)| head.as_ref().map(|row| (index, row)))
            .min_by_key(|(_, row)| order(row))
            .map(|(index, _)| index);
        let Some(index) = smallest else {
            return Ok(None);
        };
        let row = self.heads[index].take();
        self.refill(index).await?;
        Ok(row.map(|row| (row, index)))
    }

    /// The next row of stream `index` if `accept` takes it (an update's after-image,
    /// which follows its before-image in the same change table).
    pub async fn next_of_if(
        &mut self,
        index: usize,
        accept: impl FnOnce(&ChangeRow) -> bool,
    ) -> Result<Option<ChangeRow>, TablesError> {
        self.start().await?;
        if !self.heads[index].as_ref().is_some_and(accept) {
            return Ok(None);
        }
        let row = self.heads[index].take();
        self.refill(index).await?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(commit: u8, command: i32, seqval: u8) -> ChangeRow {
        let lsn = |n: u8| {
            let mut bytes = [0; 10];
            bytes[9] = n;
            Lsn(bytes)
        };
        ChangeRow {
            start_lsn: lsn(commit),
            seqval: lsn(seqval),
            operation: Operation::Insert,
            command_id: command,
            commit_ts_ms: 0,
            values: Vec::new(),
        }
    }

    fn stream(rows: Vec<ChangeRow>) -> Rows<'static> {
        futures::stream::iter(rows.into_iter().map(Ok)).boxed()
    }

    #[tokio::test]
    async fn rows_come_out_in_log_order_across_tables() {
        let mut merge = Merge::new(vec![
            stream(vec![row(5, 1, 1), row(5, 3, 2), row(7, 1, 1)]),
            stream(vec![row(5, 2, 9), row(6, 1, 1)]),
            stream(vec![]),
        ]);
        let mut out = Vec::new();
        while let Some((row, index)) = merge.next().await.expect("merge") {
            out.push((row.start_lsn.0[9], row.command_id, index));
        }
        assert_eq!(
            out,
            [(5, 1, 0), (5, 2, 1), (5, 3, 0), (6, 1, 1), (7, 1, 0)],
            "by commit, then command id (not change LSN)"
        );
    }

    #[tokio::test]
    async fn an_error_of_one_table_ends_the_merge() {
        let failing: Rows<'static> = futures::stream::iter(vec![
            Ok(row(5, 1, 1)),
            Err(TablesError::Query("gone".into())),
        ])
        .boxed();
        let mut merge = Merge::new(vec![failing]);
        // The first row is read with the error behind it: the error comes with the refill.
        assert!(merge.next().await.is_err());
    }
}
