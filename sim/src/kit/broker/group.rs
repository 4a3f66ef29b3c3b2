//! A consumer group's membership and partition ownership, as the broker
//! (its coordinator) keeps them: a pure state machine over local time.

use crate::clock::LocalTime;
use crate::ids::ProcessId;
use crate::time::SimDuration;
use std::collections::BTreeMap;

/// Assigns `partitions` among `members`: sorted members, partitions in
/// order, dealt round robin, so partition `p` goes to the `p mod n`-th
/// member. The result has one owner per partition (`None` everywhere when
/// there are no members), and owner counts differ by at most one.
///
/// ```
/// use sim::ProcessId;
/// use sim::kit::broker::assign_partitions;
///
/// let owners = assign_partitions(&[ProcessId(7), ProcessId(3)], 3);
/// assert_eq!(owners, vec![Some(ProcessId(3)), Some(ProcessId(7)), Some(ProcessId(3))]);
/// ```
pub fn assign_partitions(members: &[ProcessId], partitions: u32) -> Vec<Option<ProcessId>> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    (0..partitions as usize)
        .map(|partition| (!sorted.is_empty()).then(|| sorted[partition % sorted.len()]))
        .collect()
}

/// A fetch waiting at the broker for records to become durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parked {
    pub member: ProcessId,
    pub request: u64,
    pub from_offset: u64,
    pub max: u32,
}

/// One group's state for one topic.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// Live members and when each was last heard from.
    pub members: BTreeMap<ProcessId, LocalTime>,
    /// Bumped at every rebalance; unique across broker restarts because the
    /// broker's epoch is its high word.
    pub generation: u64,
    rebalances: u32,
    /// The owner of each partition under the current generation.
    pub owners: Vec<Option<ProcessId>>,
    /// The next offset to consume, per partition, as last committed.
    pub committed: Vec<u64>,
    /// One past the highest offset handed to this group since the broker
    /// started, per partition: anything fetched below it is a redelivery.
    pub delivered_upto: Vec<u64>,
    /// At most one waiting fetch per partition (a consumer has only one
    /// outstanding per partition, so a newer one replaces an older one).
    pub parked: Vec<Option<Parked>>,
}

impl Group {
    pub fn new(partitions: u32) -> Group {
        let count = partitions as usize;
        Group {
            members: BTreeMap::new(),
            generation: 0,
            rebalances: 0,
            owners: vec![None; count],
            committed: vec![0; count],
            delivered_upto: vec![0; count],
            parked: vec![None; count],
        }
    }

    /// Notes that `member` was heard from; returns whether it is new.
    pub fn touch(&mut self, member: ProcessId, now: LocalTime) -> bool {
        self.members.insert(member, now).is_none()
    }

    /// Removes `member`; returns whether it was there.
    pub fn remove(&mut self, member: ProcessId) -> bool {
        self.members.remove(&member).is_some()
    }

    /// Members not heard from for longer than `session_timeout`.
    pub fn expired(&self, now: LocalTime, session_timeout: SimDuration) -> Vec<ProcessId> {
        self.members
            .iter()
            .filter(|(_, heard)| heard.plus(session_timeout) < now)
            .map(|(member, _)| *member)
            .collect()
    }

    /// Starts a new generation under broker `epoch` and reassigns every
    /// partition; returns the parked fetches (with their partitions) whose
    /// member lost the partition.
    pub fn rebalance(&mut self, epoch: u64) -> Vec<(u32, Parked)> {
        self.rebalances = self.rebalances.checked_add(1).expect("fewer than 2^32 rebalances");
        self.generation = (epoch << 32) | u64::from(self.rebalances);
        let members: Vec<ProcessId> = self.members.keys().copied().collect();
        self.owners = assign_partitions(&members, self.owners.len() as u32);
        let mut evicted = Vec::new();
        for (partition, (parked, owner)) in self.parked.iter_mut().zip(&self.owners).enumerate() {
            if parked.as_ref().is_some_and(|fetch| Some(fetch.member) != *owner) {
                evicted.extend(parked.take().map(|fetch| (partition as u32, fetch)));
            }
        }
        evicted
    }

    /// The partitions `member` owns, in order.
    pub fn partitions_of(&self, member: ProcessId) -> Vec<u32> {
        (0..self.owners.len() as u32).filter(|p| self.owners[*p as usize] == Some(member)).collect()
    }

    /// Whether `member` owns `partition` now.
    pub fn owns(&self, member: ProcessId, partition: u32) -> bool {
        self.owners.get(partition as usize).is_some_and(|owner| *owner == Some(member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(millis: i64) -> LocalTime {
        LocalTime(millis * 1_000_000)
    }

    #[test]
    fn a_silent_member_expires_after_the_session_timeout() {
        // Goal: the coordinator notices a member whose heartbeats stopped.
        let mut group = Group::new(2);
        group.touch(ProcessId(1), ms(0));
        group.touch(ProcessId(2), ms(0));
        group.touch(ProcessId(2), ms(80));
        let timeout = SimDuration::from_millis(100);
        assert!(
            group.expired(ms(100), timeout).is_empty(),
            "exactly at the timeout is still alive"
        );
        assert_eq!(group.expired(ms(101), timeout), vec![ProcessId(1)]);
    }

    #[test]
    fn a_rebalance_bumps_the_generation_and_evicts_fetches_of_former_owners() {
        // Goal: a parked fetch of a member that lost its partition is handed back.
        let mut group = Group::new(2);
        group.touch(ProcessId(1), ms(0));
        group.rebalance(3);
        assert_eq!(group.generation, (3 << 32) | 1);
        assert_eq!(group.partitions_of(ProcessId(1)), vec![0, 1]);
        group.parked[1] =
            Some(Parked { member: ProcessId(1), request: 9, from_offset: 0, max: 10 });
        group.touch(ProcessId(2), ms(0));
        let evicted = group.rebalance(3);
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].0, 1);
        assert_eq!(evicted[0].1.request, 9);
        assert!(group.owns(ProcessId(2), 1));
        assert!(group.generation > (3 << 32) | 1);
        group.rebalance(4);
        assert!(group.generation > (4 << 32), "a later epoch outranks every earlier generation");
    }

    proptest! {
        /// Law: after a rebalance each partition has exactly one owner in
        /// the group, that owner is a member, and the load is balanced.
        #[test]
        fn every_partition_has_exactly_one_owner_after_a_rebalance(
            members in proptest::collection::btree_set(0u32..50, 1..12),
            partitions in 1u32..40,
            leavers in proptest::collection::vec(0u32..50, 0..6),
        ) {
            let mut group = Group::new(partitions);
            for member in &members {
                group.touch(ProcessId(*member), ms(0));
            }
            group.rebalance(1);
            for leaver in leavers {
                group.remove(ProcessId(leaver));
            }
            group.rebalance(1);
            let live: Vec<ProcessId> = group.members.keys().copied().collect();
            let mut load: BTreeMap<ProcessId, u32> = BTreeMap::new();
            for owner in &group.owners {
                match owner {
                    Some(owner) => {
                        prop_assert!(live.contains(owner));
                        *load.entry(*owner).or_default() += 1;
                    }
                    None => prop_assert!(live.is_empty()),
                }
            }
            let owned: u32 = live.iter().map(|m| group.partitions_of(*m).len() as u32).sum();
            prop_assert_eq!(owned, if live.is_empty() { 0 } else { partitions });
            if let (Some(most), Some(least)) = (load.values().max(), load.values().min()) {
                prop_assert!(most - least <= 1);
            }
        }
    }
}
