//! Transactions the server streams before they commit (pgoutput protocol 2,
//! `streaming 'on'`): their changes arrive in blocks while they run, interleaved with
//! other transactions, and may still abort. Each is kept in a file of its own until its
//! Stream Commit, then read back in order as one transaction ([`Replay`]); a Stream Abort
//! deletes the file, or cuts it back to where the aborted subtransaction began (as
//! PostgreSQL's own subscriber does: every change after a subtransaction's first belongs
//! to it or to a subtransaction inside it, all aborted with it). Memory stays bounded by
//! a write buffer per open transaction, whatever the transactions' sizes.
//!
//! A file holds records `lsn (u64) | length (u32) | message`, the message in protocol 1's
//! form (the xid taken off). The files live in a directory of their own, removed when the
//! [`Spills`] is dropped; after a restart the server streams unfinished transactions
//! again from their start.

use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::offsets::Lsn;

/// Buffer of each open transaction's file.
const BUFFER: usize = 256 * 1024;

/// A spill file's I/O failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct SpillError {
    pub path: PathBuf,
    pub reason: String,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |e| SpillError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// One open transaction's file.
struct SpillFile {
    path: PathBuf,
    writer: BufWriter<tokio::fs::File>,
    /// Bytes written (the offset of the next record).
    len: u64,
    /// Each (sub)transaction with changes here, in order of its first one: where that one
    /// starts, and the records before it.
    firsts: Vec<(u32, u64, u64)>,
    seen: HashSet<u32>,
    records: u64,
}

/// The files of the transactions being streamed.
pub struct Spills {
    dir: PathBuf,
    open: HashMap<u32, SpillFile>,
}

impl Spills {
    /// A directory of its own under `parent` (created; removed on drop). Directories
    /// left by a capture that was killed (its process gone) are removed first.
    pub fn new(parent: &Path) -> Result<Spills, SpillError> {
        remove_orphans(parent);
        let dir = parent.join(format!(
            "sluice-streamed-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
        Ok(Spills {
            dir,
            open: HashMap::new(),
        })
    }

    /// Transactions with a file open (streamed, not yet committed or aborted).
    pub fn open_transactions(&self) -> usize {
        self.open.len()
    }

    /// A block of `xid` begins; its first block starts the file afresh.
    pub async fn start(&mut self, xid: u32, first: bool) -> Result<(), SpillError> {
        if first && let Some(old) = self.open.remove(&xid) {
            drop(old.writer);
            tokio::fs::remove_file(&old.path)
                .await
                .map_err(at(&old.path))?;
        }
        if !self.open.contains_key(&xid) {
            let path = self.dir.join(format!("{xid}.changes"));
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .await
                .map_err(at(&path))?;
            self.open.insert(
                xid,
                SpillFile {
                    path,
                    writer: BufWriter::with_capacity(BUFFER, file),
                    len: 0,
                    firsts: Vec::new(),
                    seen: HashSet::new(),
                    records: 0,
                },
            );
        }
        Ok(())
    }

    /// Appends a change of `subxid` (a subtransaction of `xid`, or `xid` itself), given
    /// as its tag and the bytes after its xid.
    pub async fn append(
        &mut self,
        xid: u32,
        subxid: u32,
        lsn: Lsn,
        tag: u8,
        rest: &[u8],
    ) -> Result<(), SpillError> {
        if !self.open.contains_key(&xid) {
            self.start(xid, false).await?;
        }
        let Some(file) = self.open.get_mut(&xid) else {
            unreachable!("opened above")
        };
        if file.seen.insert(subxid) {
            file.firsts.push((subxid, file.len, file.records));
        }
        let length = (rest.len() + 1) as u32;
        let mut head = [0u8; 13];
        head[..8].copy_from_slice(&lsn.to_be_bytes());
        head[8..12].copy_from_slice(&length.to_be_bytes());
        head[12] = tag;
        let w = &mut file.writer;
        w.write_all(&head).await.map_err(at(&file.path))?;
        w.write_all(rest).await.map_err(at(&file.path))?;
        file.len += 12 + u64::from(length);
        file.records += 1;
        Ok(())
    }

    /// A Stream Abort: the whole transaction (`subxid == xid`) is dropped, or the file is
    /// cut back to where `subxid` began (its Relation and Type messages kept). Returns
    /// the records cut.
    pub async fn abort(&mut self, xid: u32, subxid: u32) -> Result<u64, SpillError> {
        if subxid == xid {
            let Some(file) = self.open.remove(&xid) else {
                return Ok(0);
            };
            drop(file.writer);
            tokio::fs::remove_file(&file.path)
                .await
                .map_err(at(&file.path))?;
            return Ok(file.records);
        }
        let Some(file) = self.open.get_mut(&xid) else {
            return Ok(0);
        };
        let Some(index) = file.firsts.iter().rposition(|&(s, ..)| s == subxid) else {
            return Ok(0); // none of its changes were streamed
        };
        let (_, cut, records_before) = file.firsts[index];
        for (s, ..) in file.firsts.drain(index..) {
            file.seen.remove(&s);
        }
        let w = &mut file.writer;
        w.flush().await.map_err(at(&file.path))?;
        // Relation and Type messages in the cut part stay: the server sends a table's
        // description once per streamed transaction, and changes after the rollback
        // rely on it.
        let mut kept = Vec::new();
        let mut region = Replay::open_at(&file.path, cut, file.len - cut).await?;
        region.remove_on_drop = false;
        while let Some((lsn, message)) = region.next().await? {
            if matches!(message.first(), Some(b'R' | b'Y')) {
                kept.push((lsn, message));
            }
        }
        drop(region);
        let w = &mut file.writer;
        w.get_mut().set_len(cut).await.map_err(at(&file.path))?;
        w.get_mut()
            .seek(SeekFrom::Start(cut))
            .await
            .map_err(at(&file.path))?;
        file.len = cut;
        let dropped = file.records - records_before;
        file.records = records_before;
        for (lsn, message) in kept {
            self.append(xid, xid, lsn, message[0], &message[1..])
                .await?;
        }
        Ok(dropped)
    }

    /// A Stream Commit: the transaction's changes, to be read back in order (an empty
    /// replay when none were streamed).
    pub async fn commit(&mut self, xid: u32) -> Result<Option<Replay>, SpillError> {
        let Some(mut file) = self.open.remove(&xid) else {
            return Ok(None);
        };
        file.writer.flush().await.map_err(at(&file.path))?;
        drop(file.writer);
        Replay::open(&file.path, file.len).await.map(Some)
    }
}

/// Removes `sluice-streamed-<pid>-*` directories whose process no longer runs (Linux's
/// /proc tells; elsewhere nothing is removed).
fn remove_orphans(parent: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sluice-streamed-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!(
                    dir = %entry.path().display(),
                    "removed the streamed transactions of a capture that stopped without cleaning up"
                ),
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove a stale spill directory")
                }
            }
        }
    }
}

impl Drop for Spills {
    fn drop(&mut self) {
        self.open.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A committed transaction's changes read back; the file is removed when it is dropped.
/// Reads in chunks of [`BUFFER`] and hands out each message as a slice of its chunk (no
/// copy, no allocation per message).
pub struct Replay {
    path: PathBuf,
    /// Whether dropping it removes the file (a committed transaction's replay does).
    remove_on_drop: bool,
    file: tokio::fs::File,
    /// Read, not yet handed out.
    buffer: BytesMut,
    /// In the file, not yet read.
    unread: u64,
}

impl Replay {
    async fn open(path: &Path, len: u64) -> Result<Replay, SpillError> {
        Replay::open_at(path, 0, len).await
    }

    /// The `len` bytes of records from `start`.
    async fn open_at(path: &Path, start: u64, len: u64) -> Result<Replay, SpillError> {
        let mut file = tokio::fs::File::open(path).await.map_err(at(path))?;
        file.seek(SeekFrom::Start(start)).await.map_err(at(path))?;
        Ok(Replay {
            path: path.to_owned(),
            remove_on_drop: true,
            file,
            buffer: BytesMut::new(),
            unread: len,
        })
    }

    /// Makes `wanted` bytes available in the buffer (reading on from the file).
    async fn fill(&mut self, wanted: usize) -> Result<(), SpillError> {
        while self.buffer.len() < wanted {
            if self.unread == 0 {
                return Err(SpillError {
                    path: self.path.clone(),
                    reason: "a record cut short (the file was changed by something else)".into(),
                });
            }
            let chunk = (self.unread as usize).min(BUFFER.max(wanted - self.buffer.len()));
            self.buffer.reserve(chunk);
            let read = (&mut self.file)
                .take(chunk as u64)
                .read_buf(&mut self.buffer)
                .await
                .map_err(at(&self.path))?;
            if read == 0 {
                return Err(SpillError {
                    path: self.path.clone(),
                    reason: "the file ended early (it was changed by something else)".into(),
                });
            }
            self.unread -= read as u64;
        }
        Ok(())
    }

    /// The next change and its LSN, in protocol 1's form.
    pub async fn next(&mut self) -> Result<Option<(Lsn, Bytes)>, SpillError> {
        if self.buffer.is_empty() && self.unread == 0 {
            return Ok(None);
        }
        self.fill(12).await?;
        let lsn = u64::from_be_bytes(self.buffer[..8].try_into().expect("8 bytes"));
        let length = u32::from_be_bytes(self.buffer[8..12].try_into().expect("4 bytes")) as usize;
        self.fill(12 + length).await?;
        let _ = self.buffer.split_to(12);
        Ok(Some((lsn, self.buffer.split_to(length).freeze())))
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(replay: &mut Replay) -> Vec<(Lsn, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((lsn, message)) = replay.next().await.expect("read") {
            out.push((lsn, message.to_vec()));
        }
        out
    }

    #[tokio::test]
    async fn interleaved_transactions_come_back_whole_and_in_order() {
        let parent = std::env::temp_dir();
        let mut spills = Spills::new(&parent).expect("dir");
        let dir = spills.dir.clone();
        spills.start(10, true).await.expect("start");
        spills
            .append(10, 10, 100, b'I', b"a")
            .await
            .expect("append");
        spills.start(20, true).await.expect("start");
        spills
            .append(20, 20, 110, b'I', b"x")
            .await
            .expect("append");
        spills
            .append(10, 10, 120, b'U', b"bb")
            .await
            .expect("append");
        assert_eq!(spills.open_transactions(), 2);
        let mut replay = spills.commit(10).await.expect("commit").expect("spilled");
        assert_eq!(
            read_all(&mut replay).await,
            [(100, b"Ia".to_vec()), (120, b"Ubb".to_vec())]
        );
        let path = replay.path.clone();
        drop(replay);
        assert!(!path.exists(), "a replayed file is removed");
        assert_eq!(spills.abort(20, 20).await.expect("abort"), 1);
        assert_eq!(spills.open_transactions(), 0);
        assert!(spills.commit(20).await.expect("commit").is_none());
        drop(spills);
        assert!(!dir.exists(), "the directory goes with the spills");
    }

    #[tokio::test]
    async fn an_aborted_subtransaction_is_cut_out_with_those_inside_it() {
        let mut spills = Spills::new(&std::env::temp_dir()).expect("dir");
        spills.start(10, true).await.expect("start");
        spills
            .append(10, 10, 100, b'I', b"top")
            .await
            .expect("append");
        spills
            .append(10, 11, 110, b'I', b"sub")
            .await
            .expect("append");
        spills
            .append(10, 12, 115, b'R', b"rel")
            .await
            .expect("append");
        spills
            .append(10, 12, 120, b'I', b"nested")
            .await
            .expect("append");
        spills
            .append(10, 11, 130, b'I', b"sub again")
            .await
            .expect("append");
        assert_eq!(spills.abort(10, 99).await.expect("unknown"), 0);
        assert_eq!(spills.abort(10, 11).await.expect("abort"), 4);
        spills
            .append(10, 13, 140, b'D', b"after")
            .await
            .expect("append");
        spills
            .append(10, 10, 150, b'I', b"top again")
            .await
            .expect("append");
        let mut replay = spills.commit(10).await.expect("commit").expect("spilled");
        assert_eq!(
            read_all(&mut replay).await,
            [
                (100, b"Itop".to_vec()),
                (115, b"Rrel".to_vec()),
                (140, b"Dafter".to_vec()),
                (150, b"Itop again".to_vec())
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn directories_of_processes_gone_are_removed_and_live_ones_kept() {
        let parent = std::env::temp_dir().join(format!("sluice-orphans-{}", std::process::id()));
        std::fs::create_dir_all(&parent).expect("dir");
        // PIDs above the kernel's maximum (4194304) never run.
        let gone = parent.join("sluice-streamed-4194305-1");
        let live = parent.join(format!("sluice-streamed-{}-1", std::process::id()));
        let other = parent.join("not-ours");
        for dir in [&gone, &live, &other] {
            std::fs::create_dir_all(dir).expect("dir");
        }
        std::fs::write(gone.join("7.changes"), b"x").expect("file");
        let spills = Spills::new(&parent).expect("spills");
        assert!(!gone.exists(), "a dead process's directory is removed");
        assert!(live.exists() && other.exists(), "others are left alone");
        drop(spills);
        std::fs::remove_dir_all(&parent).ok();
    }
}
