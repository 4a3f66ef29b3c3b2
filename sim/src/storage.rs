//! A node's durable storage: named append-only logs with fsync semantics.
//!
//! Appends land in the page cache at once and are readable, but only a
//! completed sync makes them durable. A crash truncates every log to what
//! was synced, which is how "writes not yet synced are lost" shows up.

use std::collections::BTreeMap;

/// The logs of one node.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    /// Each log's position in `logs`, by name. Logs are never removed, so
    /// positions are stable and a [`SyncMark`] can name logs by position
    /// (no string copies on the sync path).
    index: BTreeMap<String, usize>,
    logs: Vec<Log>,
}

#[derive(Clone, Debug, Default)]
struct Log {
    records: Vec<Vec<u8>>,
    synced: usize,
}

/// A point up to which each log will be durable once a sync completes:
/// the length of each log then, by position (logs created later are not
/// covered).
#[derive(Clone, Debug, Default)]
pub(crate) struct SyncMark {
    lengths: Vec<usize>,
}

impl Storage {
    /// Appends one record to `log`, creating the log if needed.
    pub fn append(&mut self, log: &str, record: Vec<u8>) {
        match self.index.get(log) {
            Some(position) => self.logs[*position].records.push(record),
            None => {
                self.index.insert(log.to_string(), self.logs.len());
                self.logs.push(Log { records: vec![record], synced: 0 });
            }
        }
    }

    fn log(&self, log: &str) -> Option<&Log> {
        self.index.get(log).map(|position| &self.logs[*position])
    }

    /// All records of `log`, synced or not; empty if it does not exist.
    pub fn read(&self, log: &str) -> &[Vec<u8>] {
        self.log(log).map_or(&[], |log| log.records.as_slice())
    }

    /// How many records of `log` are durable.
    pub fn synced_len(&self, log: &str) -> usize {
        self.log(log).map_or(0, |log| log.synced)
    }

    /// Drops the first `count` records of `log` (compaction after a
    /// snapshot, retention). Takes effect at once and durably, as a
    /// file-system truncation that needs no separate sync would; returns how
    /// many records were removed.
    pub fn truncate_front(&mut self, log: &str, count: usize) -> usize {
        let Some(position) = self.index.get(log) else { return 0 };
        let log = &mut self.logs[*position];
        let removed = count.min(log.records.len());
        log.records.drain(..removed);
        log.synced = log.synced.saturating_sub(removed);
        removed
    }

    /// Records written but not yet durable, over all logs.
    pub fn unsynced_count(&self) -> usize {
        self.logs.iter().map(|log| log.records.len() - log.synced).sum()
    }

    /// Names of the logs, in order.
    pub fn log_names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Notes how far each log reaches now, for a sync that completes later.
    pub(crate) fn mark(&self) -> SyncMark {
        SyncMark { lengths: self.logs.iter().map(|log| log.records.len()).collect() }
    }

    /// Completes a sync: everything up to `mark` is durable.
    pub(crate) fn complete(&mut self, mark: &SyncMark) {
        for (log, length) in self.logs.iter_mut().zip(&mark.lengths) {
            // A crash between mark and completion truncated the log
            // already; never claim more than exists.
            log.synced = log.synced.max((*length).min(log.records.len()));
        }
    }

    /// Loses every unsynced record, as a crash does; returns how many.
    pub(crate) fn crash(&mut self) -> usize {
        let mut lost = 0;
        for log in &mut self.logs {
            lost += log.records.len() - log.synced;
            log.records.truncate(log.synced);
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_exactly_the_unsynced_tail() {
        let mut storage = Storage::default();
        storage.append("orders", b"a".to_vec());
        storage.append("orders", b"b".to_vec());
        let mark = storage.mark();
        storage.append("orders", b"c".to_vec());
        storage.complete(&mark);
        assert_eq!(storage.synced_len("orders"), 2);
        assert_eq!(storage.read("orders").len(), 3, "unsynced writes are readable");
        assert_eq!(storage.crash(), 1);
        assert_eq!(storage.read("orders"), &[b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn truncating_the_front_keeps_the_synced_boundary_in_place() {
        let mut storage = Storage::default();
        for byte in [1u8, 2, 3] {
            storage.append("log", vec![byte]);
        }
        storage.complete(&storage.mark());
        storage.append("log", vec![4]);
        assert_eq!(storage.truncate_front("log", 2), 2);
        assert_eq!(storage.synced_len("log"), 1);
        assert_eq!(storage.crash(), 1, "the unsynced 4 is still the only thing a crash loses");
        assert_eq!(storage.read("log"), &[vec![3u8]]);
        assert_eq!(storage.truncate_front("absent", 5), 0);
    }

    #[test]
    fn a_sync_interrupted_by_a_crash_claims_nothing_lost() {
        let mut storage = Storage::default();
        storage.append("log", b"x".to_vec());
        let mark = storage.mark();
        assert_eq!(storage.crash(), 1);
        storage.complete(&mark);
        assert_eq!(storage.synced_len("log"), 0);
        assert!(storage.read("log").is_empty());
    }
}
