//! [`DenseMap`]: an ordered map for integer-like keys that come as a dense
//! run, such as order ids numbered by a workload, saga ids, or request and
//! sync tags counted up from some start.
//!
//! Such keys are looked up far more often than anything else is done with
//! them, and a `BTreeMap` pays a tree search (a dozen comparisons and cache
//! misses at tens of thousands of entries) for each lookup. A `DenseMap`
//! keeps one slot per key between the smallest and the largest key
//! present, so a lookup is an index, and iteration walks the slots in key
//! order: the same order as a `BTreeMap`'s, which is what keeps every
//! output that iterates it unchanged. Slots freed at either end are
//! trimmed, so a map whose oldest keys leave first (orders finishing,
//! requests answered) stays as small as the live run of keys.
//!
//! Keys that are not dense (random ids, a few far-apart keys) would make
//! the table mostly holes; when the span of the keys outgrows the entries
//! by far, the map switches to a `BTreeMap` and back once the keys are
//! dense again (checked only after as many changes as there are entries,
//! so switching stays cheap). Both forms behave the same; only speed and
//! memory differ.
//!
//! ```
//! use sim::DenseMap;
//!
//! let mut pending: DenseMap<u64, &str> = DenseMap::new();
//! pending.insert(11, "b");
//! pending.insert(10, "a");
//! pending.insert(12, "c");
//! assert_eq!(pending.remove(&10), Some("a"));
//! assert_eq!(pending.get(&12), Some(&"c"));
//! let keys: Vec<u64> = pending.keys().copied().collect();
//! assert_eq!(keys, [11, 12]);
//! ```

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque, btree_map, vec_deque};
use std::fmt;
use std::ops::Index;

/// A key a [`DenseMap`] can hold: an integer-like value whose position in
/// the key order is [`DenseKey::position`].
pub trait DenseKey: Copy + Ord {
    /// The key as an integer; keys compare as their positions do.
    fn position(self) -> u64;
}

impl DenseKey for u64 {
    fn position(self) -> u64 {
        self
    }
}

impl DenseKey for u32 {
    fn position(self) -> u64 {
        u64::from(self)
    }
}

/// Holes allowed in a dense table whatever its size.
const SLACK: u64 = 1024;
/// Holes allowed per entry: beyond `SLACK + SPREAD * len` slots, the keys
/// are taken to be sparse. Four, not more: a shard holding every
/// sixteenth order id kept 15 empty slots per entry at 32, and faulting in
/// that memory cost the 16-node benchmark more than its lookups saved.
const SPREAD: u64 = 4;

/// Whether `len` entries spread over `span` consecutive keys are worth a
/// dense table.
fn dense_enough(span: u64, len: usize) -> bool {
    span <= SLACK.saturating_add(SPREAD.saturating_mul(len as u64))
}

/// An ordered map from dense integer-like keys to values (see the module
/// docs). Its iteration order is key order, as a `BTreeMap`'s.
#[derive(Clone)]
pub struct DenseMap<K, V> {
    form: Form<K, V>,
}

#[derive(Clone)]
enum Form<K, V> {
    /// `slots[i]` holds the entry of the key at position `base + i`, if
    /// any; the first and last slots are never empty.
    Dense { base: u64, slots: VecDeque<Option<(K, V)>>, len: usize },
    /// Keys too spread out for a table. `until_check` counts the changes
    /// left before looking again whether they are dense now.
    Sparse { map: BTreeMap<K, V>, until_check: usize },
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap { form: Form::Dense { base: 0, slots: VecDeque::new(), len: 0 } }
    }
}

impl<K: DenseKey, V> DenseMap<K, V> {
    /// An empty map.
    pub fn new() -> DenseMap<K, V> {
        DenseMap::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Dense { len, .. } => *len,
            Form::Sparse { map, .. } => map.len(),
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        match &self.form {
            Form::Dense { base, slots, .. } => {
                let index = key.position().checked_sub(*base)?;
                let (_, value) = slots.get(usize::try_from(index).ok()?)?.as_ref()?;
                Some(value)
            }
            Form::Sparse { map, .. } => map.get(key),
        }
    }

    /// The value of `key`, mutably, if present.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match &mut self.form {
            Form::Dense { base, slots, .. } => {
                let index = key.position().checked_sub(*base)?;
                let (_, value) = slots.get_mut(usize::try_from(index).ok()?)?.as_mut()?;
                Some(value)
            }
            Form::Sparse { map, .. } => map.get_mut(key),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Sets the value of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.make_room(key) {
            let (slot, len) = self.dense_slot(key);
            return match slot {
                Some((_, old)) => Some(std::mem::replace(old, value)),
                None => {
                    *slot = Some((key, value));
                    *len += 1;
                    None
                }
            };
        }
        let Form::Sparse { map, .. } = &mut self.form else { unreachable!("sparse") };
        let old = map.insert(key, value);
        if old.is_none() {
            self.counted_change();
        }
        old
    }

    /// The value of `key`, inserting `make()` first if it is absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if self.make_room(key) {
            let (slot, len) = self.dense_slot(key);
            if slot.is_none() {
                *len += 1;
            }
            let (_, value) = slot.get_or_insert_with(|| (key, make()));
            return value;
        }
        let Form::Sparse { map, .. } = &mut self.form else { unreachable!("sparse") };
        if let btree_map::Entry::Vacant(vacant) = map.entry(key) {
            vacant.insert(make());
            self.counted_change();
        }
        self.get_mut(&key).expect("just inserted")
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        match &mut self.form {
            Form::Dense { base, slots, len } => {
                let index = usize::try_from(key.position().checked_sub(*base)?).ok()?;
                let (_, value) = slots.get_mut(index)?.take()?;
                *len -= 1;
                // Keep both ends filled, so the table spans only live keys.
                while slots.back().is_some_and(Option::is_none) {
                    slots.pop_back();
                }
                while slots.front().is_some_and(Option::is_none) {
                    slots.pop_front();
                    *base += 1;
                }
                Some(value)
            }
            Form::Sparse { map, .. } => {
                let value = map.remove(key)?;
                self.counted_change();
                Some(value)
            }
        }
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            inner: match &self.form {
                Form::Dense { slots, len, .. } => IterForm::Dense(slots.iter(), *len),
                Form::Sparse { map, .. } => IterForm::Sparse(map.iter()),
            },
        }
    }

    /// Entries in key order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut {
            inner: match &mut self.form {
                Form::Dense { slots, len, .. } => IterMutForm::Dense(slots.iter_mut(), *len),
                Form::Sparse { map, .. } => IterMutForm::Sparse(map.iter_mut()),
            },
        }
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.iter().map(|(key, _)| key)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.iter().map(|(_, value)| value)
    }

    /// Values in key order, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + '_ {
        self.iter_mut().map(|(_, value)| value)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = DenseMap::default();
    }

    /// Makes the table reach `key`'s slot, unless that would make it
    /// mostly holes: then switches to the sparse form. Whether the map is
    /// (still) a table. A slot added at an end is empty: the caller fills
    /// it, so the ends stay filled.
    fn make_room(&mut self, key: K) -> bool {
        let position = key.position();
        let Form::Dense { base, slots, len } = &mut self.form else { return false };
        if *len == 0 {
            slots.clear();
            slots.push_back(None);
            *base = position;
            return true;
        }
        let last = *base + (slots.len() as u64 - 1);
        if position >= *base && position <= last {
            // Inside the table: the span stays, the entries can only grow.
            if dense_enough(last - *base + 1, *len + 1) {
                return true;
            }
        } else {
            let span = (position.max(last) - position.min(*base)).saturating_add(1);
            if dense_enough(span, *len + 1) {
                if position < *base {
                    for _ in position..*base {
                        slots.push_front(None);
                    }
                    *base = position;
                } else if position == last + 1 {
                    // The usual growth: the next key after the last.
                    slots.push_back(None);
                } else {
                    slots.resize_with((position - *base) as usize + 1, || None);
                }
                return true;
            }
        }
        self.go_sparse();
        false
    }

    /// The slot of `key` in the table, which reaches it (see
    /// [`DenseMap::make_room`]), and the entry count.
    fn dense_slot(&mut self, key: K) -> (&mut Option<(K, V)>, &mut usize) {
        let Form::Dense { base, slots, len } = &mut self.form else { unreachable!("dense") };
        (&mut slots[(key.position() - *base) as usize], len)
    }

    fn go_sparse(&mut self) {
        let Form::Dense { slots, len, .. } = &mut self.form else { return };
        let until_check = *len + 1;
        let map = std::mem::take(slots).into_iter().flatten().collect();
        self.form = Form::Sparse { map, until_check };
    }

    /// Counts one insertion or removal in the sparse form, and goes back
    /// to a table when enough changes have passed and the keys are dense
    /// again (an empty map always is).
    fn counted_change(&mut self) {
        let Form::Sparse { map, until_check } = &mut self.form else { return };
        *until_check = until_check.saturating_sub(1);
        if *until_check > 0 && !map.is_empty() {
            return;
        }
        let span = match (map.first_key_value(), map.last_key_value()) {
            (Some((first, _)), Some((last, _))) => {
                (last.position() - first.position()).saturating_add(1)
            }
            _ => 0,
        };
        if !dense_enough(span, map.len()) {
            *until_check = map.len().max(1);
            return;
        }
        let map = std::mem::take(map);
        let base = map.first_key_value().map_or(0, |(key, _)| key.position());
        let mut slots = VecDeque::with_capacity(span as usize);
        let len = map.len();
        for (key, value) in map {
            let index = (key.position() - base) as usize;
            slots.resize_with(index, || None);
            slots.push_back(Some((key, value)));
        }
        self.form = Form::Dense { base, slots, len };
    }
}

impl<K: DenseKey, V> Index<&K> for DenseMap<K, V> {
    type Output = V;

    /// # Panics
    /// If `key` is absent, as `BTreeMap` does.
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry for the key in the DenseMap")
    }
}

/// The iterator of [`DenseMap::iter`].
pub struct Iter<'a, K, V> {
    inner: IterForm<'a, K, V>,
}

enum IterForm<'a, K, V> {
    /// The slots, and how many entries are left in them.
    Dense(vec_deque::Iter<'a, Option<(K, V)>>, usize),
    Sparse(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterForm::Dense(slots, left) => {
                let (key, value) = slots.find_map(Option::as_ref)?;
                *left -= 1;
                Some((key, value))
            }
            IterForm::Sparse(entries) => entries.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len();
        (left, Some(left))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterForm::Dense(slots, left) => {
                let (key, value) = slots.rev().find_map(Option::as_ref)?;
                *left -= 1;
                Some((key, value))
            }
            IterForm::Sparse(entries) => entries.next_back(),
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {
    fn len(&self) -> usize {
        match &self.inner {
            IterForm::Dense(_, left) => *left,
            IterForm::Sparse(entries) => entries.len(),
        }
    }
}

/// The iterator of [`DenseMap::iter_mut`].
pub struct IterMut<'a, K, V> {
    inner: IterMutForm<'a, K, V>,
}

enum IterMutForm<'a, K, V> {
    Dense(vec_deque::IterMut<'a, Option<(K, V)>>, usize),
    Sparse(btree_map::IterMut<'a, K, V>),
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterMutForm::Dense(slots, left) => {
                let (key, value) = slots.find_map(Option::as_mut)?;
                *left -= 1;
                Some((&*key, value))
            }
            IterMutForm::Sparse(entries) => entries.next(),
        }
    }
}

impl<K, V> DoubleEndedIterator for IterMut<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterMutForm::Dense(slots, left) => {
                let (key, value) = slots.rev().find_map(Option::as_mut)?;
                *left -= 1;
                Some((&*key, value))
            }
            IterMutForm::Sparse(entries) => entries.next_back(),
        }
    }
}

impl<'a, K: DenseKey, V> IntoIterator for &'a DenseMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

impl<'a, K: DenseKey, V> IntoIterator for &'a mut DenseMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = IterMut<'a, K, V>;

    fn into_iter(self) -> IterMut<'a, K, V> {
        self.iter_mut()
    }
}

impl<K: DenseKey, V> FromIterator<(K, V)> for DenseMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = DenseMap::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

impl<K: DenseKey, V: PartialEq> PartialEq for DenseMap<K, V> {
    /// Equal when the entries are, whatever the form.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: DenseKey, V: Eq> Eq for DenseMap<K, V> {}

impl<K: DenseKey + fmt::Debug, V: fmt::Debug> fmt::Debug for DenseMap<K, V> {
    /// As a `BTreeMap` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: DenseKey + Serialize, V: Serialize> Serialize for DenseMap<K, V> {
    /// As a map in key order, exactly as a `BTreeMap` serialises.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, K: DenseKey + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for DenseMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<K, V>::deserialize(deserializer)?;
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        GetOrInsert(u64, u32),
        Bump(u64),
    }

    /// Keys mostly in a dense run, now and then far away (so both forms and
    /// the switches between them are exercised).
    fn key() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => 1_000u64..1_080,
            1 => 0u64..5_000,
            1 => Just(u64::MAX),
            1 => Just(0u64),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => key().prop_map(Op::Remove),
            1 => (key(), any::<u32>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
            1 => key().prop_map(Op::Bump),
        ]
    }

    proptest! {
        /// Whatever is done to it, a DenseMap holds, answers and iterates
        /// exactly as a BTreeMap does.
        #[test]
        fn behaves_like_a_btree_map(ops in prop::collection::vec(op(), 0..400)) {
            let mut dense: DenseMap<u64, u32> = DenseMap::new();
            let mut model: BTreeMap<u64, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(dense.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(dense.remove(&k), model.remove(&k)),
                    Op::GetOrInsert(k, v) => {
                        let got = *dense.get_or_insert_with(k, || v);
                        prop_assert_eq!(got, *model.entry(k).or_insert(v));
                    }
                    Op::Bump(k) => {
                        if let Some(v) = dense.get_mut(&k) { *v = v.wrapping_add(1); }
                        if let Some(v) = model.get_mut(&k) { *v = v.wrapping_add(1); }
                    }
                }
                prop_assert_eq!(dense.len(), model.len());
                prop_assert!(dense.iter().eq(model.iter()));
                prop_assert!(dense.iter().rev().eq(model.iter().rev()));
                prop_assert_eq!(dense.iter().len(), model.len());
            }
            for k in [0, 999, 1_000, 1_040, 1_079, 4_999, u64::MAX] {
                prop_assert_eq!(dense.get(&k), model.get(&k));
                prop_assert_eq!(dense.contains_key(&k), model.contains_key(&k));
            }
            for (_, value) in dense.iter_mut() {
                *value = value.wrapping_mul(3);
            }
            for value in model.values_mut() {
                *value = value.wrapping_mul(3);
            }
            prop_assert!(dense.iter().eq(model.iter()));
            prop_assert_eq!(format!("{dense:?}"), format!("{model:?}"));
            prop_assert_eq!(serde_json::to_string(&dense).unwrap(), serde_json::to_string(&model).unwrap());
            let back: DenseMap<u64, u32> = serde_json::from_str(&serde_json::to_string(&dense).unwrap()).unwrap();
            prop_assert!(back == dense);
        }
    }

    #[test]
    fn a_run_of_keys_leaving_from_the_front_keeps_the_table_small() {
        // Goal: orders finishing in id order free their slots, so the
        // table spans only the orders still open.
        let mut map = DenseMap::new();
        for key in 0u64..10_000 {
            map.insert(key, key);
            if key >= 10 {
                map.remove(&(key - 10));
            }
        }
        let Form::Dense { base, slots, len } = &map.form else { panic!("dense keys stay dense") };
        assert_eq!((*base, slots.len(), *len), (9_990, 10, 10));
    }

    #[test]
    fn far_apart_keys_switch_to_a_tree_and_back() {
        // Goal: a far key does not allocate a table to reach it; once it
        // is gone, the map is a table again.
        let mut map = DenseMap::new();
        map.insert(5u64, 'a');
        map.insert(u64::MAX, 'z');
        assert!(matches!(map.form, Form::Sparse { .. }));
        map.remove(&u64::MAX);
        map.insert(6, 'b');
        assert!(matches!(map.form, Form::Dense { .. }));
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&5, &'a'), (&6, &'b')]);
    }
}
