//! Faults: scripted ([`FaultSchedule`]) or drawn from the seed
//! ([`FaultMix::draw`], swarm testing), and the report of which faults
//! actually fired and what they touched ([`FiredFault`]).
//!
//! A fault that fires but touches nothing (crashing a node that is already
//! down, a partition no message tried to cross) is reported as such: a
//! fault scenario must be able to show that its faults mattered.

use crate::dist::Dist;
use crate::ids::NodeId;
use crate::net::LinkConfig;
use crate::rng::{Purpose, Seed, Stream};
use crate::time::{SimDuration, SimTime};
use serde::Serialize;
use std::fmt;

/// An action on the world, named as an intent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Crash a node: its processes lose their state, pending work and timers
    /// vanish, unsynced writes are lost.
    CrashNode {
        /// The node.
        node: NodeId,
    },
    /// Restart a crashed node; its processes start again from durable state.
    RestartNode {
        /// The node.
        node: NodeId,
    },
    /// Block traffic between two groups of nodes, both ways.
    Partition {
        /// One side.
        side_a: Vec<NodeId>,
        /// The other side.
        side_b: Vec<NodeId>,
    },
    /// Block traffic from one group of nodes to another, one way only.
    PartitionOneway {
        /// Senders whose messages are dropped.
        from: Vec<NodeId>,
        /// Receivers they cannot reach.
        to: Vec<NodeId>,
    },
    /// End the partition started by the fault at index `partition` of the
    /// same schedule.
    Heal {
        /// Index of the partition fault.
        partition: u32,
    },
    /// End every partition in force.
    HealAll,
    /// Make one direction of a link behave as `link` (slow, lossy, ...).
    DegradeLink {
        /// Sending node.
        from: NodeId,
        /// Receiving node.
        to: NodeId,
        /// The degraded behaviour.
        link: LinkConfig,
    },
    /// Give a degraded link its configured behaviour back.
    RestoreLink {
        /// Sending node.
        from: NodeId,
        /// Receiving node.
        to: NodeId,
    },
    /// Jump a node's clock forward (positive) or backward (negative).
    StepClock {
        /// The node.
        node: NodeId,
        /// Nanoseconds.
        delta_ns: i64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn nodes(list: &[NodeId]) -> String {
            let names: Vec<String> = list.iter().map(ToString::to_string).collect();
            format!("{{{}}}", names.join(","))
        }
        match self {
            Fault::CrashNode { node } => write!(f, "crash {node}"),
            Fault::RestartNode { node } => write!(f, "restart {node}"),
            Fault::Partition { side_a, side_b } => {
                write!(f, "partition {}|{}", nodes(side_a), nodes(side_b))
            }
            Fault::PartitionOneway { from, to } => {
                write!(f, "partition {}->{}", nodes(from), nodes(to))
            }
            Fault::Heal { partition } => write!(f, "heal partition #{partition}"),
            Fault::HealAll => write!(f, "heal all partitions"),
            Fault::DegradeLink { from, to, link } => {
                write!(f, "degrade {from}->{to} (latency {}, loss {})", link.latency, link.loss)
            }
            Fault::RestoreLink { from, to } => write!(f, "restore {from}->{to}"),
            Fault::StepClock { node, delta_ns } => {
                let sign = if *delta_ns < 0 { "-" } else { "+" };
                write!(
                    f,
                    "step clock of {node} by {sign}{}",
                    SimDuration::from_nanos(delta_ns.unsigned_abs())
                )
            }
        }
    }
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduledFault {
    /// When it fires.
    pub at: SimTime,
    /// What it does.
    pub fault: Fault,
}

/// A scripted list of faults. A fault's index is its position in the list;
/// faults at the same time fire in index order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultSchedule {
    /// The faults, in the order they were added.
    pub faults: Vec<ScheduledFault>,
}

impl FaultSchedule {
    /// An empty schedule.
    pub fn new() -> FaultSchedule {
        FaultSchedule::default()
    }

    /// Adds `fault` at `at`; returns its index.
    pub fn add(&mut self, at: SimTime, fault: Fault) -> u32 {
        let index = u32::try_from(self.faults.len()).expect("fewer than 2^32 faults");
        self.faults.push(ScheduledFault { at, fault });
        index
    }

    /// Adds `fault` at `at` (builder style).
    pub fn at(mut self, at: SimTime, fault: Fault) -> FaultSchedule {
        self.add(at, fault);
        self
    }

    /// Adds `fault` at `from` and its undoing at `until`: a crash is
    /// followed by a restart, a partition by its heal, a degraded link by its
    /// restoration, a clock step by the opposite step. Faults that cannot be
    /// undone are added alone.
    pub fn window(mut self, from: SimTime, until: SimTime, fault: Fault) -> FaultSchedule {
        assert!(from <= until, "a fault window must not end before it starts");
        let undo = match &fault {
            Fault::CrashNode { node } => Some(Fault::RestartNode { node: *node }),
            Fault::Partition { .. } | Fault::PartitionOneway { .. } => {
                Some(Fault::Heal { partition: self.faults.len() as u32 })
            }
            Fault::DegradeLink { from, to, .. } => {
                Some(Fault::RestoreLink { from: *from, to: *to })
            }
            Fault::StepClock { node, delta_ns } => {
                Some(Fault::StepClock { node: *node, delta_ns: -*delta_ns })
            }
            Fault::RestartNode { .. }
            | Fault::Heal { .. }
            | Fault::HealAll
            | Fault::RestoreLink { .. } => None,
        };
        self.add(from, fault);
        if let Some(undo) = undo {
            self.add(until, undo);
        }
        self
    }

    /// Checks that every fault names existing nodes and that heals name
    /// partition faults; errors say which fault is wrong.
    pub fn validate(&self, node_count: u32) -> Result<(), String> {
        let check = |index: usize, node: NodeId| {
            if node.0 >= node_count {
                Err(format!(
                    "faults[{index}]: node {node} does not exist (the world has {node_count} nodes)"
                ))
            } else {
                Ok(())
            }
        };
        for (index, scheduled) in self.faults.iter().enumerate() {
            match &scheduled.fault {
                Fault::CrashNode { node }
                | Fault::RestartNode { node }
                | Fault::StepClock { node, .. } => check(index, *node)?,
                Fault::Partition { side_a: a, side_b: b }
                | Fault::PartitionOneway { from: a, to: b } => {
                    if a.is_empty() || b.is_empty() {
                        return Err(format!(
                            "faults[{index}]: a partition needs nodes on both sides"
                        ));
                    }
                    for node in a.iter().chain(b) {
                        check(index, *node)?;
                    }
                }
                Fault::Heal { partition } => {
                    let target = self.faults.get(*partition as usize).map(|f| &f.fault);
                    if !matches!(
                        target,
                        Some(Fault::Partition { .. } | Fault::PartitionOneway { .. })
                    ) {
                        return Err(format!(
                            "faults[{index}]: heal names #{partition}, which is not a partition"
                        ));
                    }
                }
                Fault::HealAll => {}
                Fault::DegradeLink { from, to, link } => {
                    check(index, *from)?;
                    check(index, *to)?;
                    link.validate(&format!("faults[{index}].link"))?;
                }
                Fault::RestoreLink { from, to } => {
                    check(index, *from)?;
                    check(index, *to)?;
                }
            }
        }
        Ok(())
    }
}

/// What a fired fault changed in the world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Touched {
    /// Processes that lost their volatile state.
    pub processes_stopped: u32,
    /// Processes started again.
    pub processes_restarted: u32,
    /// Unsynced writes lost.
    pub writes_lost: u32,
    /// Messages dropped because of this fault (partitions, crashed
    /// receivers, degraded links' loss).
    pub messages_dropped: u64,
    /// Messages sent over a link this fault degraded.
    pub messages_delayed: u64,
    /// Timers whose firing time moved (clock steps).
    pub timers_moved: u32,
}

impl Touched {
    /// Whether the fault changed anything at all.
    pub fn is_nothing(&self) -> bool {
        *self == Touched::default()
    }
}

/// A fault that fired, and what it touched.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FiredFault {
    /// Its index in the schedule.
    pub index: u32,
    /// When it fired.
    pub at: SimTime,
    /// What it was.
    pub fault: Fault,
    /// Whether the world was in a state the fault could act on (crashing a
    /// node already down is not).
    pub applied: bool,
    /// What it changed, counted until the end of the run.
    pub touched: Touched,
}

/// Which kinds of fault a swarm run uses, drawn from the seed. Swarm testing
/// (Groce et al., 2012) turns whole kinds of fault on or off per seed,
/// because a mix of everything at once tends to hide the bugs that one kind
/// alone would expose.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultMix {
    /// Node crashes, each followed by a restart.
    pub crashes: bool,
    /// Symmetric partitions between two random groups.
    pub partitions: bool,
    /// One-way partitions.
    pub oneway_partitions: bool,
    /// Links made slow (ten times the base latency) for a while.
    pub slow_links: bool,
    /// Links made lossy for a while.
    pub lossy_links: bool,
    /// Clock steps, forward and backward.
    pub clock_steps: bool,
    /// The schedule drawn for this mix.
    pub schedule: FaultSchedule,
}

/// What a swarm draw may touch.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// The nodes faults may hit.
    pub nodes: Vec<NodeId>,
    /// The span of the run; faults start in its first 80% so that their
    /// undoing fits in.
    pub duration: SimDuration,
    /// How many faults of each enabled kind, at most.
    pub per_kind_max: u32,
    /// The latency of a slowed link.
    pub slow_latency: Dist,
}

impl FaultMix {
    /// Draws a fault mix from the seed's fault stream only, so the same seed
    /// gives the same mix and the workload's streams are untouched.
    pub fn draw(seed: Seed, config: &SwarmConfig) -> FaultMix {
        assert!(!config.nodes.is_empty(), "a swarm needs nodes to break");
        let mut stream = Stream::new(seed, Purpose::Faults);
        let mut mix = FaultMix {
            crashes: stream.chance(0.5),
            partitions: stream.chance(0.5),
            oneway_partitions: stream.chance(0.5),
            slow_links: stream.chance(0.5),
            lossy_links: stream.chance(0.5),
            clock_steps: stream.chance(0.5),
            schedule: FaultSchedule::new(),
        };
        let duration = config.duration.as_nanos();
        let window = |stream: &mut Stream| {
            let start = stream.below(duration / 10 * 8 + 1);
            let length = 1 + stream.below(duration / 5 + 1);
            (SimTime::from_nanos(start), SimTime::from_nanos((start + length).min(duration)))
        };
        let node_count = config.nodes.len() as u64;
        let pick = |stream: &mut Stream| config.nodes[stream.below(node_count) as usize];
        let split = |stream: &mut Stream| {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for node in &config.nodes {
                if stream.chance(0.5) { a.push(*node) } else { b.push(*node) }
            }
            if a.is_empty() {
                a.push(b.pop().expect("nodes is not empty"));
            }
            if b.is_empty() && a.len() > 1 {
                b.push(a.pop().expect("a has more than one node"));
            }
            (a, b)
        };
        let mut schedule = FaultSchedule::new();
        let count = |stream: &mut Stream| 1 + stream.below(u64::from(config.per_kind_max.max(1)));
        if mix.crashes {
            for _ in 0..count(&mut stream) {
                let (from, until) = window(&mut stream);
                schedule =
                    schedule.window(from, until, Fault::CrashNode { node: pick(&mut stream) });
            }
        }
        if mix.partitions && node_count > 1 {
            for _ in 0..count(&mut stream) {
                let (from, until) = window(&mut stream);
                let (side_a, side_b) = split(&mut stream);
                schedule = schedule.window(from, until, Fault::Partition { side_a, side_b });
            }
        }
        if mix.oneway_partitions && node_count > 1 {
            for _ in 0..count(&mut stream) {
                let (from, until) = window(&mut stream);
                let (sources, targets) = split(&mut stream);
                schedule = schedule.window(
                    from,
                    until,
                    Fault::PartitionOneway { from: sources, to: targets },
                );
            }
        }
        for (enabled, lossy) in [(mix.slow_links, false), (mix.lossy_links, true)] {
            if !enabled || node_count < 2 {
                continue;
            }
            for _ in 0..count(&mut stream) {
                let (from, until) = window(&mut stream);
                let source = pick(&mut stream);
                let target = pick(&mut stream);
                let mut link = LinkConfig::with_latency(config.slow_latency.clone());
                if lossy {
                    link.loss = 0.1 + 0.4 * stream.unit();
                }
                schedule = schedule.window(
                    from,
                    until,
                    Fault::DegradeLink { from: source, to: target, link },
                );
            }
        }
        if mix.clock_steps {
            for _ in 0..count(&mut stream) {
                let (from, until) = window(&mut stream);
                // Up to one second either way: large enough to reorder
                // wall-clock stamps, small against typical run lengths.
                let magnitude = 1 + stream.below(1_000_000_000) as i64;
                let delta_ns = if stream.chance(0.5) { magnitude } else { -magnitude };
                schedule = schedule.window(
                    from,
                    until,
                    Fault::StepClock { node: pick(&mut stream), delta_ns },
                );
            }
        }
        mix.schedule = schedule;
        mix
    }

    /// The enabled kinds, by name, for reports.
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            (self.crashes, "crashes"),
            (self.partitions, "partitions"),
            (self.oneway_partitions, "oneway_partitions"),
            (self.slow_links, "slow_links"),
            (self.lossy_links, "lossy_links"),
            (self.clock_steps, "clock_steps"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_pairs_each_fault_with_its_undoing() {
        let schedule = FaultSchedule::new()
            .window(
                SimTime::from_nanos(1),
                SimTime::from_nanos(2),
                Fault::CrashNode { node: NodeId(1) },
            )
            .window(
                SimTime::from_nanos(3),
                SimTime::from_nanos(4),
                Fault::Partition { side_a: vec![NodeId(0)], side_b: vec![NodeId(1)] },
            );
        assert_eq!(schedule.faults[1].fault, Fault::RestartNode { node: NodeId(1) });
        assert_eq!(schedule.faults[3].fault, Fault::Heal { partition: 2 });
        assert_eq!(schedule.validate(2), Ok(()));
        assert!(schedule.validate(1).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn swarm_draws_depend_only_on_the_seed_and_vary_across_seeds() {
        let config = SwarmConfig {
            nodes: (0..4).map(NodeId).collect(),
            duration: SimDuration::from_secs(10),
            per_kind_max: 3,
            slow_latency: Dist::constant(SimDuration::from_millis(100)),
        };
        assert_eq!(FaultMix::draw(Seed(5), &config), FaultMix::draw(Seed(5), &config));
        let kinds: std::collections::BTreeSet<Vec<&str>> =
            (0..32).map(|seed| FaultMix::draw(Seed(seed), &config).kinds()).collect();
        assert!(kinds.len() > 8, "32 seeds should give many different mixes, got {}", kinds.len());
        for seed in 0..32 {
            let mix = FaultMix::draw(Seed(seed), &config);
            assert_eq!(mix.schedule.validate(4), Ok(()), "seed {seed}");
        }
    }
}
