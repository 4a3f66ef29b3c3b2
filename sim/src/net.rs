//! The network: links between nodes with latency, loss, duplication and
//! reordering, and partitions (symmetric or one-way) that faults start and
//! heal.
//!
//! Every link uses the default [`LinkConfig`] unless overridden per ordered
//! pair of nodes. Messages between processes on the same node use the
//! loopback config and are never partitioned. The hot path (no overrides, no
//! partitions) costs two emptiness checks on top of the latency sample.

use crate::dist::Dist;
use crate::ids::NodeId;
use crate::rng::Stream;
use crate::time::SimDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one direction of a link behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// One-way delay of each message.
    pub latency: Dist,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice (the copy takes its own
    /// latency sample).
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_window`
    /// extra, so that later messages can overtake it.
    pub reorder: f64,
    /// The largest extra delay of a reordered message.
    pub reorder_window: SimDuration,
}

impl LinkConfig {
    /// A perfect link with a fixed delay.
    pub fn constant(latency: SimDuration) -> LinkConfig {
        LinkConfig::with_latency(Dist::constant(latency))
    }

    /// A link with the given latency and no loss, duplication or reordering.
    pub fn with_latency(latency: Dist) -> LinkConfig {
        LinkConfig {
            latency,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_window: SimDuration::ZERO,
        }
    }

    /// Checks every probability is in `[0, 1]` and the latency is valid;
    /// errors name the field under `field`.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        self.latency.validate(&format!("{field}.latency")).map_err(|error| error.to_string())?;
        for (name, value) in
            [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)]
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!(
                    "{field}.{name} = {value}: expected a probability between 0 and 1"
                ));
            }
        }
        Ok(())
    }
}

/// What the network decided for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Lost on the link; `degraded_by` is the fault that made the link
    /// lossy, if one did.
    Lost { degraded_by: Option<u32> },
    /// Blocked by the partition started by this fault.
    Partitioned { fault: u32 },
    /// Arrives after `delay`; if `copy_delay` is set, a duplicate arrives
    /// after that delay too. `degraded_by` is the fault that slowed the
    /// link, if one did.
    Delivered { delay: SimDuration, copy_delay: Option<SimDuration>, degraded_by: Option<u32> },
}

/// Traffic blocked from one set of nodes to another by one fault.
#[derive(Clone, Debug)]
struct ActivePartition {
    fault: u32,
    from: Vec<NodeId>,
    to: Vec<NodeId>,
    symmetric: bool,
}

impl ActivePartition {
    fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        let forward = self.from.contains(&from) && self.to.contains(&to);
        let backward = self.symmetric && self.to.contains(&from) && self.from.contains(&to);
        forward || backward
    }
}

/// All links, their overrides, and the partitions in force.
#[derive(Clone, Debug)]
pub struct Network {
    default: LinkConfig,
    loopback: LinkConfig,
    overrides: BTreeMap<(NodeId, NodeId), LinkConfig>,
    /// Overrides put in place by faults, with the fault that did it; they
    /// win over configured overrides until restored.
    degraded: BTreeMap<(NodeId, NodeId), (LinkConfig, u32)>,
    partitions: Vec<ActivePartition>,
}

impl Network {
    /// A network where every link behaves as `default`, and same-node
    /// messages arrive instantly.
    pub fn new(default: LinkConfig) -> Network {
        Network {
            default,
            loopback: LinkConfig::constant(SimDuration::ZERO),
            overrides: BTreeMap::new(),
            degraded: BTreeMap::new(),
            partitions: Vec::new(),
        }
    }

    /// Replaces the default link.
    pub fn set_default(&mut self, link: LinkConfig) {
        self.default = link;
    }

    /// Replaces the same-node link.
    pub fn set_loopback(&mut self, link: LinkConfig) {
        self.loopback = link;
    }

    /// Overrides the link from `from` to `to` (one direction).
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.overrides.insert((from, to), link);
    }

    /// The link config in force from `from` to `to`.
    #[inline]
    pub fn link(&self, from: NodeId, to: NodeId) -> &LinkConfig {
        self.link_and_fault(from, to).0
    }

    /// The link config in force, and the fault that degraded it if one
    /// did: one lookup serves both routing and the fault report.
    #[inline]
    fn link_and_fault(&self, from: NodeId, to: NodeId) -> (&LinkConfig, Option<u32>) {
        if from == to {
            return (&self.loopback, None);
        }
        if !self.degraded.is_empty()
            && let Some((link, fault)) = self.degraded.get(&(from, to))
        {
            return (link, Some(*fault));
        }
        if !self.overrides.is_empty()
            && let Some(link) = self.overrides.get(&(from, to))
        {
            return (link, None);
        }
        (&self.default, None)
    }

    /// The partition fault blocking `from` → `to`, if any.
    #[inline]
    pub(crate) fn blocked_by(&self, from: NodeId, to: NodeId) -> Option<u32> {
        if self.partitions.is_empty() || from == to {
            return None;
        }
        self.partitions.iter().find(|p| p.blocks(from, to)).map(|p| p.fault)
    }

    /// Whether any partition blocks `from` → `to` now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked_by(from, to).is_some()
    }

    /// Decides the fate of one message, drawing from the network stream.
    /// Draws happen in a fixed order (loss, latency, reorder, duplicate),
    /// and a zero probability draws nothing.
    #[inline]
    pub(crate) fn route(&self, from: NodeId, to: NodeId, stream: &mut Stream) -> Fate {
        if let Some(fault) = self.blocked_by(from, to) {
            return Fate::Partitioned { fault };
        }
        let (link, degraded_by) = self.link_and_fault(from, to);
        if stream.chance(link.loss) {
            return Fate::Lost { degraded_by };
        }
        let mut delay = link.latency.sample(stream);
        if stream.chance(link.reorder) {
            let window = link.reorder_window.as_nanos();
            delay = delay + SimDuration::from_nanos(stream.below(window.saturating_add(1)));
        }
        let copy_delay =
            if stream.chance(link.duplicate) { Some(link.latency.sample(stream)) } else { None };
        Fate::Delivered { delay, copy_delay, degraded_by }
    }

    pub(crate) fn start_partition(
        &mut self,
        fault: u32,
        from: Vec<NodeId>,
        to: Vec<NodeId>,
        symmetric: bool,
    ) {
        self.partitions.push(ActivePartition { fault, from, to, symmetric });
    }

    /// Ends the partitions started by `fault`; returns whether one was active.
    pub(crate) fn heal(&mut self, fault: u32) -> bool {
        let before = self.partitions.len();
        self.partitions.retain(|p| p.fault != fault);
        self.partitions.len() != before
    }

    /// Ends every partition; returns the faults that started them.
    pub(crate) fn heal_all(&mut self) -> Vec<u32> {
        self.partitions.drain(..).map(|p| p.fault).collect()
    }

    pub(crate) fn degrade(&mut self, from: NodeId, to: NodeId, link: LinkConfig, fault: u32) {
        self.degraded.insert((from, to), (link, fault));
    }

    pub(crate) fn restore(&mut self, from: NodeId, to: NodeId) -> bool {
        self.degraded.remove(&(from, to)).is_some()
    }

    /// Number of partitions in force.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}
