//! One partition's records as the broker holds them in memory, and how
//! records, commits and epochs are laid out in the node's storage.
//!
//! The storage log of a partition is append-only (the engine offers no
//! truncation), so a record's offset is simply its index in that log.
//! Retention therefore works on the in-memory copy: removed records can no
//! longer be fetched, and a restart drops them again from what it reads.

use super::{Payload, Record};
use crate::clock::LocalTime;
use crate::time::SimDuration;
use std::collections::VecDeque;

/// How long records are kept, per partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Durable records kept at most; older ones are removed.
    pub records_max: u64,
    /// Records older than this (by their write time) are removed.
    pub age: Option<SimDuration>,
}

/// A partition's retained records, from the low watermark to the end.
/// Those below the high watermark are durable and visible to consumers;
/// the rest wait for the broker's next sync.
#[derive(Clone, Debug)]
pub(crate) struct PartitionLog<P> {
    records: VecDeque<Record<P>>,
    low_watermark: u64,
    high_watermark: u64,
}

/// What a fetch found: the records from `start` on (possibly none), and
/// where the next fetch should begin.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slice<P> {
    pub records: Vec<Record<P>>,
    pub start: u64,
    pub next_offset: u64,
}

impl<P: Payload> PartitionLog<P> {
    pub fn new() -> PartitionLog<P> {
        PartitionLog { records: VecDeque::new(), low_watermark: 0, high_watermark: 0 }
    }

    /// Rebuilds the log from what storage holds after a restart, applying
    /// retention as of `now`. Nothing is visible until
    /// [`PartitionLog::make_durable`] confirms it.
    pub fn recover(
        stored: crate::storage::Records<'_>,
        now: LocalTime,
        retention: Retention,
    ) -> PartitionLog<P> {
        let length = stored.len() as u64;
        let mut low_watermark = length.saturating_sub(retention.records_max);
        if let Some(age) = retention.age {
            while low_watermark < length
                && is_expired(
                    record_write_time(
                        stored.get(low_watermark as usize).expect("below the length"),
                    ),
                    now,
                    age,
                )
            {
                low_watermark += 1;
            }
        }
        let records = stored
            .skip(low_watermark as usize)
            .iter()
            .zip(low_watermark..)
            .map(|(bytes, offset)| decode_record(offset, bytes))
            .collect();
        PartitionLog { records, low_watermark, high_watermark: low_watermark }
    }

    /// The first offset still retained.
    pub fn low_watermark(&self) -> u64 {
        self.low_watermark
    }

    /// The first offset not yet durable: consumers see offsets below it.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// The offset the next appended record gets.
    pub fn next_offset(&self) -> u64 {
        self.low_watermark + self.records.len() as u64
    }

    /// Appends a record (not yet durable); returns its offset.
    pub fn append(&mut self, key: u64, write_time: LocalTime, payload: P) -> u64 {
        let offset = self.next_offset();
        self.records.push_back(Record { offset, key, write_time, payload });
        offset
    }

    /// Makes every record below `upto` durable and visible; returns whether
    /// the high watermark moved.
    pub fn make_durable(&mut self, upto: u64) -> bool {
        let upto = upto.min(self.next_offset());
        if upto > self.high_watermark {
            self.high_watermark = upto;
            true
        } else {
            false
        }
    }

    /// Up to `max` durable records from `from` on. A `from` below the low
    /// watermark starts at the earliest retained record instead; one beyond
    /// the high watermark waits at the high watermark.
    pub fn fetch(&self, from: u64, max: usize) -> Slice<P> {
        let start = from.clamp(self.low_watermark, self.high_watermark);
        let available = (self.high_watermark - start) as usize;
        let count = available.min(max);
        let first = (start - self.low_watermark) as usize;
        let records: Vec<Record<P>> = self.records.range(first..first + count).cloned().collect();
        Slice { records, start, next_offset: start + count as u64 }
    }

    /// Removes durable records beyond the retention bounds as of `now`;
    /// returns how many went.
    pub fn retain(&mut self, now: LocalTime, retention: Retention) -> u64 {
        let mut removed = 0;
        while let Some(front) = self.records.front() {
            let durable = front.offset < self.high_watermark;
            let too_many = self.high_watermark - self.low_watermark > retention.records_max;
            let too_old = retention.age.is_some_and(|age| is_expired(front.write_time, now, age));
            if !(durable && (too_many || too_old)) {
                break;
            }
            self.records.pop_front();
            self.low_watermark += 1;
            removed += 1;
        }
        removed
    }

    /// The durable records, in offset order.
    pub fn durable_records(&self) -> impl Iterator<Item = &Record<P>> {
        let durable = (self.high_watermark - self.low_watermark) as usize;
        self.records.range(..durable)
    }
}

fn is_expired(write_time: LocalTime, now: LocalTime, age: SimDuration) -> bool {
    write_time.plus(age) < now
}

/// A record in storage: key and write time as little-endian words, then the
/// payload in postcard (the offset is the record's index in the log).
/// Written onto the end of `bytes` (the storage log itself, no copy).
pub(crate) fn write_record<P: Payload>(
    key: u64,
    write_time: LocalTime,
    payload: &P,
    bytes: &mut Vec<u8>,
) {
    bytes.extend_from_slice(&key.to_le_bytes());
    bytes.extend_from_slice(&write_time.as_nanos().to_le_bytes());
    crate::kit::persistence::postcard_onto(payload, bytes)
        .expect("a broker payload must be encodable by serde (see `Payload`)");
}

#[cfg(test)]
fn encode_record<P: Payload>(key: u64, write_time: LocalTime, payload: &P) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_record(key, write_time, payload, &mut bytes);
    bytes
}

pub(crate) fn decode_record<P: Payload>(offset: u64, bytes: &[u8]) -> Record<P> {
    assert!(bytes.len() >= 16, "a stored record has a 16-byte header");
    let key = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
    let write_time = record_write_time(bytes);
    let payload = postcard::from_bytes(&bytes[16..])
        .expect("a stored payload decodes as the payload type it was written as");
    Record { offset, key, write_time, payload }
}

fn record_write_time(bytes: &[u8]) -> LocalTime {
    LocalTime(i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")))
}

/// A committed offset in storage: the group and topic names, each with a
/// little-endian length, then partition and offset.
/// Written onto the end of `bytes` (the storage log itself, no copy).
pub(crate) fn write_commit(
    group: &str,
    topic: &str,
    partition: u32,
    offset: u64,
    bytes: &mut Vec<u8>,
) {
    for name in [group, topic] {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes.extend_from_slice(&partition.to_le_bytes());
    bytes.extend_from_slice(&offset.to_le_bytes());
}

#[cfg(test)]
fn encode_commit(group: &str, topic: &str, partition: u32, offset: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_commit(group, topic, partition, offset, &mut bytes);
    bytes
}

/// The stored commit's group, topic, partition and offset.
pub(crate) fn decode_commit(bytes: &[u8]) -> (String, String, u32, u64) {
    let mut rest = bytes;
    let mut names = [String::new(), String::new()];
    for name in &mut names {
        let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        *name = String::from_utf8(rest[4..4 + length].to_vec()).expect("names are UTF-8");
        rest = &rest[4 + length..];
    }
    let partition = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
    let offset = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let [group, topic] = names;
    (group, topic, partition, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEEP_ALL: Retention = Retention { records_max: u64::MAX, age: None };

    fn ms(millis: i64) -> LocalTime {
        LocalTime(millis * 1_000_000)
    }

    fn log_with(count: u64) -> PartitionLog<u64> {
        let mut log = PartitionLog::new();
        for i in 0..count {
            log.append(i, ms(i as i64), i * 10);
        }
        log
    }

    #[test]
    fn appended_records_stay_invisible_until_durable() {
        // Goal: a consumer never sees a record a crash could still take back.
        let mut log = log_with(3);
        assert!(log.fetch(0, 10).records.is_empty());
        assert!(log.make_durable(2));
        let slice = log.fetch(0, 10);
        assert_eq!(slice.records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(slice.next_offset, 2);
        assert!(!log.make_durable(1), "the high watermark never moves back");
        assert!(log.make_durable(99));
        assert_eq!(log.high_watermark(), 3, "never beyond what was appended");
    }

    #[test]
    fn count_retention_removes_the_oldest_durable_records() {
        // Goal: retention by count keeps the newest records and moves the low watermark.
        let mut log = log_with(5);
        log.make_durable(4);
        let removed = log.retain(ms(0), Retention { records_max: 2, age: None });
        assert_eq!(removed, 2);
        assert_eq!(log.low_watermark(), 2);
        assert_eq!(log.durable_records().map(|r| r.offset).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn age_retention_removes_old_records_but_never_undurable_ones() {
        // Goal: records older than the retention age go; unsynced ones stay whatever their age.
        let mut log = log_with(5); // written at 0..4 ms
        log.make_durable(3);
        let retention = Retention { records_max: 100, age: Some(SimDuration::from_millis(2)) };
        assert_eq!(log.retain(ms(10), retention), 3);
        assert_eq!(log.low_watermark(), 3);
        assert_eq!(log.next_offset(), 5);
    }

    #[test]
    fn a_fetch_below_the_low_watermark_starts_at_the_earliest_record() {
        // Goal: a consumer that fell behind retention resumes at the earliest offset.
        let mut log = log_with(6);
        log.make_durable(6);
        log.retain(ms(0), Retention { records_max: 3, age: None });
        let slice = log.fetch(1, 2);
        assert_eq!(slice.start, 3);
        assert_eq!(slice.records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(slice.next_offset, 5);
    }

    #[test]
    fn recovery_applies_retention_and_keeps_offsets() {
        // Goal: a restarted broker gives records the offsets they had, minus what retention removed.
        let mut storage = crate::storage::Storage::default();
        for i in 0..5u64 {
            storage.append("p", &encode_record(i, ms(i as i64), &i));
        }
        let log: PartitionLog<u64> = PartitionLog::recover(
            storage.read("p"),
            ms(10),
            Retention { records_max: 3, age: None },
        );
        assert_eq!(log.low_watermark(), 2);
        assert_eq!(log.next_offset(), 5);
        assert_eq!(log.high_watermark(), 2, "nothing visible before the recovery sync");
        let retention = Retention { records_max: 10, age: Some(SimDuration::from_millis(7)) };
        let log: PartitionLog<u64> = PartitionLog::recover(storage.read("p"), ms(10), retention);
        assert_eq!(log.low_watermark(), 3, "records written at 0, 1, 2 ms are older than 7 ms");
    }

    #[test]
    fn encodings_round_trip() {
        // Goal: what the broker writes, it reads back unchanged.
        let bytes = encode_record(7, LocalTime(-5), &("order".to_string(), 3u32));
        let record: Record<(String, u32)> = decode_record(9, &bytes);
        assert_eq!(
            record,
            Record {
                offset: 9,
                key: 7,
                write_time: LocalTime(-5),
                payload: ("order".to_string(), 3)
            }
        );
        let commit = encode_commit("billing", "orders", 4, 123);
        assert_eq!(decode_commit(&commit), ("billing".into(), "orders".into(), 4, 123));
    }

    proptest! {
        /// Law: a fetch returns durable records in offset order, contiguous
        /// from where it starts, and never beyond the high watermark.
        #[test]
        fn fetches_are_contiguous_and_durable(
            appended in 0u64..40,
            durable in 0u64..50,
            keep in 1u64..20,
            from in 0u64..60,
            max in 1usize..16,
        ) {
            let mut log = log_with(appended);
            log.make_durable(durable);
            log.retain(ms(0), Retention { records_max: keep, ..KEEP_ALL });
            let slice = log.fetch(from, max);
            prop_assert!(slice.records.len() <= max);
            prop_assert!(slice.next_offset <= log.high_watermark());
            for (i, record) in slice.records.iter().enumerate() {
                prop_assert_eq!(record.offset, slice.start + i as u64);
                prop_assert_eq!(record.payload, record.offset * 10);
            }
            prop_assert_eq!(slice.next_offset, slice.start + slice.records.len() as u64);
        }
    }
}
