//! Sticky routing by consistent hashing (Karger et al., 1997).

use super::RouteTarget;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::trace::Component;
use std::collections::{BTreeMap, BTreeSet};

/// Configuration of a [`HashRing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashRingConfig {
    /// Points each member places on the ring, 1 to
    /// [`VIRTUAL_NODES_MAX`]. More points even out the shares: a member's
    /// share of the key space deviates from the mean by about
    /// 1/√`virtual_nodes` (relative standard deviation).
    pub virtual_nodes: u32,
}

/// The most points per member accepted; it bounds the ring's memory.
pub const VIRTUAL_NODES_MAX: u32 = 10_000;

impl HashRingConfig {
    /// Rejects zero (or too many) virtual nodes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.virtual_nodes == 0 || self.virtual_nodes > VIRTUAL_NODES_MAX {
            return Err(ConfigError::new(
                "hash_ring.virtual_nodes",
                self.virtual_nodes,
                format!("1 to {VIRTUAL_NODES_MAX}"),
            ));
        }
        Ok(())
    }
}

impl Default for HashRingConfig {
    /// 160 points per member, as in libketama.
    fn default() -> HashRingConfig {
        HashRingConfig { virtual_nodes: 160 }
    }
}

/// The hash of a key: 64-bit FNV-1a of its bytes, then the splitmix64
/// finaliser (FNV-1a alone mixes short keys poorly into the high bits,
/// which decide a key's place on the ring). Fixed forever: changing it
/// moves every key.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(hash)
}

/// The splitmix64 finaliser (Steele, Lea and Flood, 2014).
fn splitmix64(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Where a member's `replica`-th point sits: the key hash of its stable id
/// and the replica number, both as little-endian bytes.
fn point_position(stable_id: u64, replica: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&stable_id.to_le_bytes());
    bytes[8..].copy_from_slice(&replica.to_le_bytes());
    key_hash(&bytes)
}

/// A range of hashes, `first..=last`, whose owner changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovedRange<N> {
    /// The first hash of the range.
    pub first: u64,
    /// The last hash of the range (inclusive).
    pub last: u64,
    /// The owner before (`None`: the ring was empty).
    pub from: Option<N>,
    /// The owner after (`None`: the ring is now empty).
    pub to: Option<N>,
}

impl<N> MovedRange<N> {
    /// How many hashes the range holds, as a float (a whole ring is 2^64).
    pub fn span(&self) -> f64 {
        (self.last - self.first) as f64 + 1.0
    }
}

/// What a change of membership moved: the ranges of the hash space that
/// changed owner, in hash order, adjacent ones with the same move merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebalance<N> {
    /// The moved ranges.
    pub moved: Vec<MovedRange<N>>,
}

impl<N: Copy> Rebalance<N> {
    /// Whether nothing moved.
    pub fn is_empty(&self) -> bool {
        self.moved.is_empty()
    }

    /// The fraction of the whole key space that moved.
    pub fn moved_share(&self) -> f64 {
        // 2^64 written out: exact in f64, and no platform maths involved.
        self.moved.iter().map(MovedRange::span).sum::<f64>() / 18_446_744_073_709_551_616.0
    }

    /// The move of the range holding `hash`, if it moved.
    pub fn moves(&self, hash: u64) -> Option<&MovedRange<N>> {
        let index = self.moved.partition_point(|range| range.last < hash);
        self.moved.get(index).filter(|range| range.first <= hash)
    }
}

/// A consistent-hash ring: each member places
/// [`HashRingConfig::virtual_nodes`] points on a ring of 2^64 positions,
/// and a key belongs to the member owning the first point at or after the
/// key's hash (wrapping around). When a member joins, it takes over only
/// the ranges just before its points, about 1/(N+1) of the keys; when it
/// leaves, only its own keys move. Point positions depend only on the
/// members' stable ids, so the same members give the same routes whatever
/// order they joined in.
///
/// The ring is plain data; [`HashRing::add_traced`] and
/// [`HashRing::remove_traced`] trace the change as `rebalanced`
/// (component [`Component::Routing`]; key: the member's stable id; value:
/// the number of moved ranges) and sample the moved share as
/// `routing.moved_share`.
///
/// ```
/// use sim::kit::routing::{HashRing, HashRingConfig, key_hash};
///
/// let mut ring = HashRing::new(HashRingConfig { virtual_nodes: 100 }).unwrap();
/// for shard in 0u32..4 {
///     ring.add(shard);
/// }
/// let owner = ring.route(b"order-17").unwrap();
/// let rebalance = ring.add(4);
/// // About a fifth of the key space moved, all of it to the new member.
/// assert!((rebalance.moved_share() - 0.2).abs() < 0.1);
/// assert!(rebalance.moved.iter().all(|range| range.to == Some(4)));
/// // A key stays put unless its range moved.
/// if rebalance.moves(key_hash(b"order-17")).is_none() {
///     assert_eq!(ring.route(b"order-17"), Some(owner));
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing<N> {
    virtual_nodes: u32,
    /// Points by (position, owner's stable id): two points at the same
    /// position (a 64-bit collision) are ordered by id, never by arrival.
    points: BTreeMap<(u64, u64), N>,
    members: BTreeSet<N>,
}

impl<N: RouteTarget> HashRing<N> {
    /// An empty ring.
    pub fn new(config: HashRingConfig) -> Result<HashRing<N>, ConfigError> {
        config.validate()?;
        Ok(HashRing {
            virtual_nodes: config.virtual_nodes,
            points: BTreeMap::new(),
            members: BTreeSet::new(),
        })
    }

    /// A ring holding `members`.
    pub fn with_members(
        config: HashRingConfig,
        members: impl IntoIterator<Item = N>,
    ) -> Result<HashRing<N>, ConfigError> {
        let mut ring = HashRing::new(config)?;
        for member in members {
            ring.add(member);
        }
        Ok(ring)
    }

    /// The members, in id order.
    pub fn members(&self) -> impl Iterator<Item = N> + '_ {
        self.members.iter().copied()
    }

    /// Whether `member` is on the ring.
    pub fn contains(&self, member: N) -> bool {
        self.members.contains(&member)
    }

    /// The member owning `key`, or `None` on an empty ring.
    pub fn route(&self, key: &[u8]) -> Option<N> {
        self.route_hash(key_hash(key))
    }

    /// The member owning the position `hash`.
    pub fn route_hash(&self, hash: u64) -> Option<N> {
        self.points
            .range((hash, 0)..)
            .next()
            .or_else(|| self.points.iter().next())
            .map(|(_, member)| *member)
    }

    /// Adds `member` and reports what moved (nothing if it was already on
    /// the ring).
    pub fn add(&mut self, member: N) -> Rebalance<N> {
        if !self.members.insert(member) {
            return Rebalance { moved: Vec::new() };
        }
        let before = self.segments();
        let id = member.stable_id();
        for replica in 0..self.virtual_nodes {
            self.points.insert((point_position(id, replica), id), member);
        }
        diff(&before, &self.segments())
    }

    /// Removes `member` and reports what moved (nothing if it was not on
    /// the ring).
    pub fn remove(&mut self, member: N) -> Rebalance<N> {
        if !self.members.remove(&member) {
            return Rebalance { moved: Vec::new() };
        }
        let before = self.segments();
        let id = member.stable_id();
        for replica in 0..self.virtual_nodes {
            self.points.remove(&(point_position(id, replica), id));
        }
        diff(&before, &self.segments())
    }

    /// [`HashRing::add`], traced as `rebalanced`.
    pub fn add_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, member: N) -> Rebalance<N> {
        let rebalance = self.add(member);
        trace_rebalance(ctx, member, &rebalance);
        rebalance
    }

    /// [`HashRing::remove`], traced as `rebalanced`.
    pub fn remove_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, member: N) -> Rebalance<N> {
        let rebalance = self.remove(member);
        trace_rebalance(ctx, member, &rebalance);
        rebalance
    }

    /// The ring as inclusive ranges of hashes with their owners, in hash
    /// order, covering `0..=u64::MAX` (empty for an empty ring).
    fn segments(&self) -> Vec<(u64, u64, N)> {
        let Some((_, first_owner)) = self.points.iter().next() else { return Vec::new() };
        let mut segments = Vec::with_capacity(self.points.len() + 1);
        let mut start: u64 = 0;
        let mut open = true;
        for ((position, _), owner) in &self.points {
            // A colliding point after the first at one position owns
            // nothing (nor does anything after a point at the very end).
            if !open || *position < start {
                continue;
            }
            segments.push((start, *position, *owner));
            match position.checked_add(1) {
                Some(next) => start = next,
                None => open = false,
            }
        }
        if open {
            segments.push((start, u64::MAX, *first_owner));
        }
        segments
    }
}

fn trace_rebalance<M: Message, N: RouteTarget>(
    ctx: &mut Ctx<'_, M>,
    member: N,
    rebalance: &Rebalance<N>,
) {
    if rebalance.is_empty() {
        return;
    }
    let count = rebalance.moved.len() as i64;
    ctx.trace(Component::Routing, "rebalanced", member.stable_id(), count);
    ctx.count("routing.rebalanced", 1);
    ctx.sample("routing.moved_share", rebalance.moved_share());
}

/// The ranges whose owner differs between two segmentations of the ring.
fn diff<N: RouteTarget>(before: &[(u64, u64, N)], after: &[(u64, u64, N)]) -> Rebalance<N> {
    let mut moved: Vec<MovedRange<N>> = Vec::new();
    let mut push = |first: u64, last: u64, from: Option<N>, to: Option<N>| {
        if from == to {
            return;
        }
        if let Some(previous) = moved.last_mut()
            && previous.from == from
            && previous.to == to
            && previous.last.checked_add(1) == Some(first)
        {
            previous.last = last;
            return;
        }
        moved.push(MovedRange { first, last, from, to });
    };
    match (before.is_empty(), after.is_empty()) {
        (true, true) => {}
        (true, false) => {
            after.iter().for_each(|&(first, last, to)| push(first, last, None, Some(to)))
        }
        (false, true) => {
            before.iter().for_each(|&(first, last, from)| push(first, last, Some(from), None));
        }
        (false, false) => {
            // Both cover 0..=u64::MAX: walk them together, cutting at every
            // boundary of either.
            let (mut left, mut right) = (0, 0);
            let mut start: u64 = 0;
            loop {
                let (_, left_last, from) = before[left];
                let (_, right_last, to) = after[right];
                let last = left_last.min(right_last);
                push(start, last, Some(from), Some(to));
                if last == u64::MAX {
                    break;
                }
                start = last + 1;
                if left_last == last {
                    left += 1;
                }
                if right_last == last {
                    right += 1;
                }
            }
        }
    }
    Rebalance { moved }
}
