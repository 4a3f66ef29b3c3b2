//! The event queue: earliest time first, ties broken by insertion order.
//!
//! The heap holds small fixed-size keys `(time, seq, slot)`; payloads live
//! in a slab indexed by `slot` and recycled through a free list, so in a
//! steady state neither pushing nor popping allocates, and heap sifts move
//! 16 bytes whatever the payload's size. `seq` is a counter that never
//! repeats, so the order of events is total and reproducible.
//!
//! An event can be taken out before its time ([`EventQueue::remove`], used
//! for cancelled timers): its payload leaves the slab at once and its key
//! stays in the heap as a tombstone, skipped when it surfaces. Once
//! tombstones outnumber the live keys the heap is rebuilt without them, so
//! a run that cancels thousands of timeouts keeps a heap no deeper than
//! twice its live events, while a run that cancels nothing pays nothing.
//! (Tried and dropped: a 4-ary heap with a position index per slot was
//! faster on the largest heaps but cost the small-heap ping-pong benchmark
//! up to a fifth of its speed; a FIFO lane
//! for events due at the current time, skipping the heap, gained about 3%
//! on the 16-node microsystem and cost ping-pong about as much; a
//! hand-written binary heap choosing the smaller child without a branch
//! was slower than `std`'s on both benchmarks; a radix heap, which
//! exploits that no event is scheduled before the last one popped, moved
//! only about three keys per pop yet ran the 16-node microsystem about 8%
//! slower than these two small binary heaps.)

use crate::time::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Tombstones tolerated before a rebuild is considered at all.
const TOMBSTONES_MIN: usize = 64;

/// A min-queue of payloads keyed by `(SimTime, insertion sequence)`.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// Everything but timers: deliveries, completions, wake-ups, mostly
    /// due within a few milliseconds.
    soon: Lane,
    /// Timers, which mostly wait far longer (timeouts, heartbeats). Kept
    /// apart so the many of them that are pending do not deepen the heap
    /// that every other event is pushed into and popped from; which lane
    /// holds a key never changes the order of events, since both lanes
    /// share one sequence and `pop` takes the smaller of the two fronts.
    timers: Lane,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

/// One heap of keys, with its tombstones.
#[derive(Debug)]
struct Lane {
    heap: BinaryHeap<Reverse<Key>>,
    /// Keys in `heap` whose event was removed.
    tombstones: usize,
}

/// `(time, seq, slot)` packed into one `u128`, so that ordering keys is a
/// single integer comparison and a heap sift moves 16 bytes: the time in
/// the high 64 bits, then the sequence number in 40 bits (a trillion
/// events), then the slot in 24 bits (16 million pending events). Because
/// every `seq` is distinct, the slot never decides an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u128);

const SLOT_BITS: u32 = 24;

/// Set in the handle of an event in the timer lane (slots never reach it).
const TIMER_HANDLE: u32 = 1 << 31;
const SEQ_BITS: u32 = 40;

impl Key {
    #[inline]
    fn new(time: SimTime, seq: u64, slot: u32) -> Key {
        debug_assert!(seq < 1 << SEQ_BITS && slot < 1 << SLOT_BITS);
        let low = (seq << SLOT_BITS) | u64::from(slot);
        Key((u128::from(time.as_nanos()) << 64) | u128::from(low))
    }

    #[inline]
    fn time(self) -> SimTime {
        SimTime::from_nanos((self.0 >> 64) as u64)
    }

    #[inline]
    fn slot(self) -> u32 {
        (self.0 as u32) & ((1 << SLOT_BITS) - 1)
    }
}

impl Lane {
    fn with_capacity(capacity: usize) -> Lane {
        Lane { heap: BinaryHeap::with_capacity(capacity), tombstones: 0 }
    }

    #[inline]
    fn front(&self) -> Option<Key> {
        self.heap.peek().map(|Reverse(key)| *key)
    }

    /// Pops tombstones off the top, so the root is always a live event.
    #[inline]
    fn bury_top<E>(&mut self, slab: &[Option<E>], free: &mut Vec<u32>) {
        if self.tombstones == 0 {
            return;
        }
        while let Some(Reverse(key)) = self.heap.peek() {
            let slot = key.slot();
            if slab[slot as usize].is_some() {
                break;
            }
            self.heap.pop();
            free.push(slot);
            self.tombstones -= 1;
        }
    }

    /// Counts one more tombstone, and rebuilds the heap from its live keys
    /// once they are outnumbered (what pops next depends on the keys
    /// alone, so this cannot change behaviour).
    fn bury<E>(&mut self, slab: &[Option<E>], free: &mut Vec<u32>) {
        self.tombstones += 1;
        self.bury_top(slab, free);
        if self.tombstones >= TOMBSTONES_MIN && self.tombstones * 2 > self.heap.len() {
            self.heap.retain(|Reverse(key)| {
                let live = slab[key.slot() as usize].is_some();
                if !live {
                    free.push(key.slot());
                }
                live
            });
            self.tombstones = 0;
        }
    }

    fn len(&self) -> usize {
        self.heap.len() - self.tombstones
    }
}

impl<E> EventQueue<E> {
    /// An empty queue with room for `capacity` pending events before it
    /// needs to grow.
    pub fn with_capacity(capacity: usize) -> EventQueue<E> {
        EventQueue {
            soon: Lane::with_capacity(capacity),
            timers: Lane::with_capacity(capacity),
            slab: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`; returns the handle that names it for
    /// [`EventQueue::remove`] until it is popped or removed.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) -> u32 {
        self.push_in(time, event, false)
    }

    /// Schedules a timer: the same as [`EventQueue::push`], in the lane
    /// kept for events that mostly wait long.
    #[inline]
    pub fn push_timer(&mut self, time: SimTime, event: E) -> u32 {
        self.push_in(time, event, true)
    }

    #[inline]
    fn push_in(&mut self, time: SimTime, event: E, timer: bool) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                debug_assert!(self.slab[slot as usize].is_none());
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                let slot = self.slab.len() as u32;
                assert!(slot < 1 << SLOT_BITS, "more than 2^24 events pending at once");
                self.slab.push(Some(event));
                slot
            }
        };
        let seq = self.next_seq;
        assert!(seq < 1 << SEQ_BITS, "more than 2^40 events scheduled in one run");
        self.next_seq += 1;
        if timer {
            self.timers.heap.push(Reverse(Key::new(time, seq, slot)));
            slot | TIMER_HANDLE
        } else {
            self.soon.heap.push(Reverse(Key::new(time, seq, slot)));
            slot
        }
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        // Neither front is ever a tombstone (see `Lane::bury_top`).
        let lane = match (self.soon.front(), self.timers.front()) {
            (Some(_), None) => &mut self.soon,
            (Some(soon), Some(timer)) if timer < soon => &mut self.timers,
            (Some(_), _) => &mut self.soon,
            (None, Some(_)) => &mut self.timers,
            (None, None) => return None,
        };
        let Reverse(key) = lane.heap.pop().expect("the chosen lane has a front");
        let slot = key.slot();
        let event =
            self.slab[slot as usize].take().expect("queue slot holds its event until popped");
        self.free.push(slot);
        lane.bury_top(&self.slab, &mut self.free);
        Some((key.time(), event))
    }

    /// Takes the event named by `handle` out of the queue before its time
    /// (a cancelled timer), so it never pops; `None` if the handle names
    /// nothing pending. Its slot stays reserved until its key leaves the
    /// heap.
    pub fn remove(&mut self, handle: u32) -> Option<E> {
        let slot = handle & !TIMER_HANDLE;
        let event = self.slab.get_mut(slot as usize)?.take()?;
        let lane = if handle & TIMER_HANDLE != 0 { &mut self.timers } else { &mut self.soon };
        lane.bury(&self.slab, &mut self.free);
        Some(event)
    }

    /// The time of the earliest event, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        match (self.soon.front(), self.timers.front()) {
            (Some(soon), Some(timer)) => Some(soon.min(timer).time()),
            (soon, timer) => soon.or(timer).map(Key::time),
        }
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.soon.len() + self.timers.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pending event with its time and sequence number, in no
    /// particular order; for inspection only, never for behaviour (sort by
    /// `(time, seq)` to get firing order).
    pub fn pending(&self) -> impl Iterator<Item = (SimTime, u64, &E)> {
        self.soon.heap.iter().chain(self.timers.heap.iter()).filter_map(|Reverse(key)| {
            let seq = (key.0 as u64) >> SLOT_BITS;
            self.slab[key.slot() as usize].as_ref().map(|event| (key.time(), seq, event))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The queue pops exactly what a naive stable sort by time would:
        /// earliest first, and same-time events in insertion order, whichever
        /// lane they were pushed into, even when pops and removals interleave
        /// with pushes (slots get recycled), and a removed event is gone and
        /// is the one asked for.
        #[test]
        fn matches_a_stable_sort(
            ops in prop::collection::vec((0u64..20, 0u8..4, any::<prop::sample::Index>()), 1..800)
        ) {
            let mut queue = EventQueue::with_capacity(4);
            // (time, label, slot), in insertion order.
            let mut model: Vec<(u64, usize, u32)> = Vec::new();
            for (label, (time, op, pick)) in ops.into_iter().enumerate() {
                match op {
                    0 => {
                        let expected = if model.is_empty() {
                            None
                        } else {
                            let earliest =
                                (0..model.len()).min_by_key(|&i| (model[i].0, i)).unwrap();
                            let (time, label, _) = model.remove(earliest);
                            Some((time, label))
                        };
                        let actual = queue.pop().map(|(t, l): (SimTime, usize)| (t.as_nanos(), l));
                        prop_assert_eq!(actual, expected);
                    }
                    1 if !model.is_empty() => {
                        let (_, label, slot) = model.remove(pick.index(model.len()));
                        prop_assert_eq!(queue.remove(slot), Some(label));
                        prop_assert_eq!(queue.remove(slot), None, "a removed slot holds nothing");
                    }
                    _ => {
                        // Op 3 schedules in the timer lane: which lane
                        // holds an event must never change the order.
                        let time = SimTime::from_nanos(time);
                        let slot = if op == 3 {
                            queue.push_timer(time, label)
                        } else {
                            queue.push(time, label)
                        };
                        model.push((time.as_nanos(), label, slot));
                    }
                }
            }
            prop_assert_eq!(queue.len(), model.len());
        }
    }
}
