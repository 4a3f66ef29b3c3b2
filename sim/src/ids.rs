//! Sized newtype ids. Each is a dense index into a `Vec` owned by the
//! simulation, which is why they are cheap to copy and compare and why
//! iteration over them is in a fixed order.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! dense_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The index of this id in the simulation's tables.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

dense_id!(
    /// A machine: it hosts processes, has cores and a clock, and can crash.
    NodeId,
    "n"
);
dense_id!(
    /// An actor hosted on a node.
    ProcessId,
    "p"
);
dense_id!(
    /// A queueing resource on a node: a thread pool or a connection pool.
    ResourceId,
    "r"
);

/// A pending timer. Stays valid until it fires or is cancelled, even when a
/// clock step reschedules it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// The sender recorded for a message injected from outside the simulation
/// (by a test or a workload driver), rather than sent by a process.
pub const EXTERNAL: ProcessId = ProcessId(u32::MAX);
