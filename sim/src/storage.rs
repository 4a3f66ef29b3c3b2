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
    /// Buffers of completed sync marks, reused by the next marks: a busy
    /// node syncs several times per request, and a mark would otherwise
    /// allocate every time.
    spare_marks: Vec<Vec<usize>>,
    /// The log appended to last: a node's writer usually appends to the
    /// same log again, and checking it is one name comparison where the
    /// index costs a search.
    recent: Option<usize>,
}

/// Where a log sits in its node's storage, learnt from
/// [`Storage::append_records`] and handed back to it on the next append, so
/// that a busy writer's appends skip the search by name (a tree of long,
/// alike names such as `store/entries/3/events`). It is only a hint: a
/// stale or foreign one costs the search and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogId(usize);

/// One log, stored flat: every record's bytes back to back in one buffer
/// and each record's end offset beside it. A record costs no allocation of
/// its own (a run appends hundreds of thousands), and dropping a node's
/// storage frees two buffers per log rather than one per record.
#[derive(Clone, Debug, Default)]
struct Log {
    /// Its name (also the key in [`Storage::index`]), to check a [`LogId`].
    name: String,
    bytes: Vec<u8>,
    /// End offset in `bytes` of each record, including the `dead` ones.
    ends: Vec<usize>,
    /// Records at the front dropped by [`Storage::truncate_front`] but not
    /// yet compacted away; they are not part of the log.
    dead: usize,
    /// Durable records among the live ones.
    synced: usize,
}

impl Log {
    fn len(&self) -> usize {
        self.ends.len() - self.dead
    }

    fn records(&self) -> Records<'_> {
        Records { bytes: &self.bytes, ends: &self.ends[self.dead..], start: self.dead_bytes() }
    }

    fn dead_bytes(&self) -> usize {
        if self.dead == 0 { 0 } else { self.ends[self.dead - 1] }
    }

    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    /// Keeps the first `keep` live records.
    fn truncate(&mut self, keep: usize) {
        let keep = keep.min(self.len());
        self.ends.truncate(self.dead + keep);
        let end = self.ends.last().copied().unwrap_or(0).max(self.dead_bytes());
        self.bytes.truncate(end);
    }

    /// Drops the first `count` live records.
    fn drop_front(&mut self, count: usize) {
        self.dead += count;
        // Compact once the dead prefix outweighs the live log, so a log
        // truncated often costs amortised constant time per record.
        if self.dead > self.len() {
            let dead_bytes = self.dead_bytes();
            self.bytes.drain(..dead_bytes);
            self.ends.drain(..self.dead);
            for end in &mut self.ends {
                *end -= dead_bytes;
            }
            self.dead = 0;
        }
    }
}

/// The records of one log, oldest first, borrowed from storage.
#[derive(Clone, Copy, Debug)]
pub struct Records<'a> {
    bytes: &'a [u8],
    /// End offset of each record in `bytes`.
    ends: &'a [usize],
    /// Where the first record starts in `bytes`.
    start: usize,
}

impl<'a> Records<'a> {
    /// No records.
    pub const EMPTY: Records<'static> = Records { bytes: &[], ends: &[], start: 0 };

    /// How many records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `index`th record, if there is one.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { self.start } else { self.ends[index - 1] };
        Some(&self.bytes[start..end])
    }

    /// The newest record, if any.
    pub fn last(&self) -> Option<&'a [u8]> {
        self.len().checked_sub(1).and_then(|index| self.get(index))
    }

    /// The records from `index` on (none if `index` is past the end).
    pub fn skip(&self, index: usize) -> Records<'a> {
        let index = index.min(self.len());
        let start = if index == 0 { self.start } else { self.ends[index - 1] };
        Records { bytes: self.bytes, ends: &self.ends[index..], start }
    }

    /// The records, oldest first.
    pub fn iter(&self) -> RecordsIter<'a> {
        RecordsIter { records: *self, next: 0 }
    }

    /// Owned copies of the records (for tests and inspection).
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

impl<'a> IntoIterator for Records<'a> {
    type Item = &'a [u8];
    type IntoIter = RecordsIter<'a>;

    fn into_iter(self) -> RecordsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Records<'a> {
    type Item = &'a [u8];
    type IntoIter = RecordsIter<'a>;

    fn into_iter(self) -> RecordsIter<'a> {
        self.iter()
    }
}

/// Iterates over [`Records`], oldest first.
#[derive(Clone, Debug)]
pub struct RecordsIter<'a> {
    records: Records<'a>,
    next: usize,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let record = self.records.get(self.next)?;
        self.next += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.records.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for RecordsIter<'_> {}

impl<'a> DoubleEndedIterator for RecordsIter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.next >= self.records.len() {
            return None;
        }
        let last = self.records.len() - 1;
        let record = self.records.get(last);
        self.records.ends = &self.records.ends[..last];
        record
    }
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
    pub fn append(&mut self, log: &str, record: &[u8]) {
        let (position, _) = self.position_or_create(log, None);
        self.logs[position].push(record);
    }

    /// Appends `count` records to `log` (creating the log if needed), each
    /// written by `encode(i, bytes)` straight onto the end of the log's
    /// buffer, with no copy in between. If any `encode` fails, none of the
    /// records is appended and its error is returned. `hint` is the
    /// [`LogId`] an earlier call returned for this log, if any; the one
    /// returned is for the next call.
    pub fn append_records<E>(
        &mut self,
        log: &str,
        hint: Option<LogId>,
        count: usize,
        mut encode: impl FnMut(usize, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<LogId, E> {
        let (position, created) = self.position_or_create(log, hint);
        let target = &mut self.logs[position];
        let (records_before, bytes_before) = (target.ends.len(), target.bytes.len());
        for index in 0..count {
            if let Err(error) = encode(index, &mut target.bytes) {
                target.ends.truncate(records_before);
                target.bytes.truncate(bytes_before);
                if created {
                    // As if never asked: a failed append leaves no empty log.
                    self.logs.pop();
                    self.index.remove(log);
                    self.recent = None;
                }
                return Err(error);
            }
            target.ends.push(target.bytes.len());
        }
        Ok(LogId(position))
    }

    /// The position of `log` in `logs` (checking `hint` first), creating
    /// the log if it does not exist; and whether it was created.
    fn position_or_create(&mut self, log: &str, hint: Option<LogId>) -> (usize, bool) {
        let is_log =
            |position: &usize| self.logs.get(*position).is_some_and(|known| known.name == log);
        if let Some(position) = hint.map(|LogId(position)| position).filter(is_log) {
            return (position, false);
        }
        if let Some(position) = self.recent.filter(is_log) {
            return (position, false);
        }
        let (position, created) = match self.index.get(log) {
            Some(position) => (*position, false),
            None => {
                let position = self.logs.len();
                self.index.insert(log.to_string(), position);
                self.logs.push(Log { name: log.to_string(), ..Log::default() });
                (position, true)
            }
        };
        self.recent = Some(position);
        (position, created)
    }

    fn log(&self, log: &str) -> Option<&Log> {
        self.index.get(log).map(|position| &self.logs[*position])
    }

    /// All records of `log`, synced or not; empty if it does not exist.
    pub fn read(&self, log: &str) -> Records<'_> {
        self.log(log).map_or(Records::EMPTY, Log::records)
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
        let removed = count.min(log.len());
        log.drop_front(removed);
        log.synced = log.synced.saturating_sub(removed);
        removed
    }

    /// Records written but not yet durable, over all logs.
    pub fn unsynced_count(&self) -> usize {
        self.logs.iter().map(|log| log.len() - log.synced).sum()
    }

    /// Names of the logs, in order.
    pub fn log_names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Notes how far each log reaches now, for a sync that completes later.
    pub(crate) fn mark(&mut self) -> SyncMark {
        let mut lengths = self.spare_marks.pop().unwrap_or_default();
        lengths.clear();
        lengths.extend(self.logs.iter().map(Log::len));
        SyncMark { lengths }
    }

    /// Completes a sync: everything up to `mark` is durable.
    pub(crate) fn complete(&mut self, mark: SyncMark) {
        for (log, length) in self.logs.iter_mut().zip(&mark.lengths) {
            // A crash between mark and completion truncated the log
            // already; never claim more than exists.
            log.synced = log.synced.max((*length).min(log.len()));
        }
        self.spare_marks.push(mark.lengths);
    }

    /// Loses every unsynced record, as a crash does; returns how many.
    pub(crate) fn crash(&mut self) -> usize {
        let mut lost = 0;
        for log in &mut self.logs {
            lost += log.len() - log.synced;
            log.truncate(log.synced);
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
        storage.append("orders", b"a");
        storage.append("orders", b"b");
        let mark = storage.mark();
        storage.append("orders", b"c");
        storage.complete(mark);
        assert_eq!(storage.synced_len("orders"), 2);
        assert_eq!(storage.read("orders").len(), 3, "unsynced writes are readable");
        assert_eq!(storage.crash(), 1);
        assert_eq!(storage.read("orders").to_vecs(), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn truncating_the_front_keeps_the_synced_boundary_in_place() {
        let mut storage = Storage::default();
        for byte in [1u8, 2, 3] {
            storage.append("log", &[byte]);
        }
        let mark = storage.mark();
        storage.complete(mark);
        storage.append("log", &[4]);
        assert_eq!(storage.truncate_front("log", 2), 2);
        assert_eq!(storage.synced_len("log"), 1);
        assert_eq!(storage.crash(), 1, "the unsynced 4 is still the only thing a crash loses");
        assert_eq!(storage.read("log").to_vecs(), vec![vec![3u8]]);
        assert_eq!(storage.truncate_front("absent", 5), 0);
    }

    #[test]
    fn records_encoded_in_place_are_appended_all_or_none() {
        let mut storage = Storage::default();
        let write = |index: usize, bytes: &mut Vec<u8>| {
            bytes.push(b'a' + index as u8);
            Ok::<(), ()>(())
        };
        let id = storage.append_records("log", None, 2, write).unwrap();
        let fail_second = |index: usize, bytes: &mut Vec<u8>| {
            bytes.push(b'x');
            if index == 1 { Err(()) } else { Ok(()) }
        };
        assert_eq!(storage.append_records("log", Some(id), 3, fail_second), Err(()));
        assert_eq!(storage.append_records("new", None, 3, fail_second), Err(()));
        assert_eq!(
            storage.log_names().collect::<Vec<_>>(),
            ["log"],
            "a failed append creates no log"
        );
        storage.append("other", b"o");
        // A hint for another log is checked and ignored.
        assert_eq!(storage.append_records("other", Some(id), 1, write), Ok(LogId(1)));
        assert_eq!(storage.read("log").to_vecs(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(storage.read("other").to_vecs(), vec![b"o".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn a_sync_interrupted_by_a_crash_claims_nothing_lost() {
        let mut storage = Storage::default();
        storage.append("log", b"x");
        let mark = storage.mark();
        assert_eq!(storage.crash(), 1);
        storage.complete(mark);
        assert_eq!(storage.synced_len("log"), 0);
        assert!(storage.read("log").is_empty());
    }
}
