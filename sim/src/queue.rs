//! The event queue: earliest time first, ties broken by insertion order.
//!
//! The heap holds small fixed-size keys `(time, seq, slot)`; payloads live in
//! a slab indexed by `slot` and recycled through a free list, so in a steady
//! state neither pushing nor popping allocates, and heap sifts move 24 bytes
//! whatever the payload's size. `seq` is a counter that never repeats, so the
//! order of events is total and reproducible.

use crate::time::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A min-queue of payloads keyed by `(SimTime, insertion sequence)`.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Key>>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    time: SimTime,
    seq: u64,
    slot: u32,
}

impl<E> EventQueue<E> {
    /// An empty queue with room for `capacity` pending events before it
    /// needs to grow.
    pub fn with_capacity(capacity: usize) -> EventQueue<E> {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            slab: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`; returns its sequence number.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) -> u64 {
        let slot = match self.free.pop() {
            Some(slot) => {
                debug_assert!(self.slab[slot as usize].is_none());
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                let slot = u32::try_from(self.slab.len()).expect("more than 2^32 pending events");
                self.slab.push(Some(event));
                slot
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Key { time, seq, slot }));
        seq
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let Reverse(key) = self.heap.pop()?;
        let event =
            self.slab[key.slot as usize].take().expect("queue slot holds its event until popped");
        self.free.push(key.slot);
        Some((key.time, event))
    }

    /// The time of the earliest event, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|Reverse(key)| key.time)
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Every pending event with its time and sequence number, in no
    /// particular order; for inspection only, never for behaviour (sort by
    /// `(time, seq)` to get firing order).
    pub fn pending(&self) -> impl Iterator<Item = (SimTime, u64, &E)> {
        self.heap.iter().filter_map(|Reverse(key)| {
            self.slab[key.slot as usize].as_ref().map(|event| (key.time, key.seq, event))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The queue pops exactly what a naive stable sort by time would:
        /// earliest first, and same-time events in insertion order, even when
        /// pops interleave with pushes (slots get recycled).
        #[test]
        fn matches_a_stable_sort(ops in prop::collection::vec((0u64..20, any::<bool>()), 1..300)) {
            let mut queue = EventQueue::with_capacity(4);
            let mut model: Vec<(u64, usize)> = Vec::new();
            for (label, (time, pop)) in ops.into_iter().enumerate() {
                if pop {
                    let expected = if model.is_empty() {
                        None
                    } else {
                        let earliest = (0..model.len()).min_by_key(|&i| (model[i].0, i)).unwrap();
                        Some(model.remove(earliest))
                    };
                    let actual = queue.pop().map(|(t, l): (SimTime, usize)| (t.as_nanos(), l));
                    prop_assert_eq!(actual, expected);
                } else {
                    queue.push(SimTime::from_nanos(time), label);
                    model.push((time, label));
                }
            }
            prop_assert_eq!(queue.len(), model.len());
        }
    }
}
