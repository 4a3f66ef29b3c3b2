//! Routing requests to the instances of a service: load balancing for
//! stateless instances, and sticky routing by consistent hashing for
//! stateful ones.
//!
//! Reactive Microsystems (ch. 5, "Microservices Come as Systems") scales
//! the stateless part of a service out behind a gateway that spreads the
//! requests, while the stateful part is sharded so that each aggregate
//! lives in exactly one place, found by its key (ch. 6). The two needs call
//! for two tools:
//! - [`Balancer`] spreads requests over interchangeable backends with a
//!   [`Strategy`]: round robin, random, least outstanding requests, or the
//!   power of two random choices. Strategies that look at load see the
//!   requests in progress per backend ([`Balancer::begin`],
//!   [`Balancer::end`]), so a slow backend, which holds its requests
//!   longer, gets fewer new ones.
//! - [`HashRing`] sends each key to the same member while membership holds
//!   still, and when a member joins or leaves moves only about 1/N of the
//!   keys, reporting exactly which ranges moved ([`Rebalance`]) so their
//!   state can follow.
//!
//! Both are plain data with pure methods for tests and laws, plus thin
//! methods that take a process's [`Ctx`](crate::Ctx) to draw from its
//! random stream and trace as [`Component::Routing`](crate::Component::Routing).
//! Randomness comes only from a [`Stream`](crate::Stream) passed in, and
//! hashing only from the specified [`key_hash`].
//!
//! ```
//! use sim::kit::routing::{Balancer, HashRing, HashRingConfig, Strategy};
//! use sim::{ProcessId, Purpose, Seed, Stream};
//!
//! let workers = [ProcessId(3), ProcessId(4), ProcessId(5)];
//! let mut rng = Stream::new(Seed(9), Purpose::Model(1));
//! let mut balancer = Balancer::with_backends(Strategy::RoundRobin, workers);
//! let picks: Vec<_> = (0..4).map(|_| balancer.pick(&mut rng).unwrap()).collect();
//! assert_eq!(picks, [ProcessId(3), ProcessId(4), ProcessId(5), ProcessId(3)]);
//!
//! let ring = HashRing::with_members(HashRingConfig::default(), workers).unwrap();
//! let owner = ring.route(b"customer-42").unwrap();
//! assert_eq!(ring.route(b"customer-42"), Some(owner)); // sticky
//! ```

use crate::ids::{NodeId, ProcessId};
use std::fmt::Debug;

pub mod balancer;
pub mod hash_ring;

pub use balancer::{Balancer, Strategy};
pub use hash_ring::{HashRing, HashRingConfig, MovedRange, Rebalance, VIRTUAL_NODES_MAX, key_hash};

/// Something requests can be routed to: a process, a node, a shard
/// number. Its stable id places it on a hash ring and keys its trace
/// events, so it must not change between runs.
pub trait RouteTarget: Copy + Ord + Debug + 'static {
    /// A number that identifies this target in every run.
    fn stable_id(self) -> u64;
}

impl RouteTarget for ProcessId {
    fn stable_id(self) -> u64 {
        u64::from(self.0)
    }
}

impl RouteTarget for NodeId {
    fn stable_id(self) -> u64 {
        u64::from(self.0)
    }
}

impl RouteTarget for u32 {
    fn stable_id(self) -> u64 {
        u64::from(self)
    }
}

impl RouteTarget for u64 {
    fn stable_id(self) -> u64 {
        self
    }
}

#[cfg(test)]
mod tests;
