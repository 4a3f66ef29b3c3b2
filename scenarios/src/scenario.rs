//! What a scenario says: the validated form of a scenario file.
//!
//! A scenario names the architectures to run, the workload, the network,
//! the payment gateway, each architecture's settings, the fault schedule,
//! the duration and seed, and what the run is expected to show. The file
//! format (`scenarios/*.toml`) is parsed and checked in [`crate::file`];
//! this module is the plain data every architecture reads.

use serde::{Deserialize, Serialize};
use sim::{Dist, SimDuration};
use std::collections::BTreeMap;
use std::fmt;

/// The three ways of building the order system (shared/DOMAIN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// One instance per service, blocking calls, thread and connection
    /// pools (ch. 2).
    Microlith,
    /// One instance per service, non-blocking, through a broker, with a
    /// breaker, timeouts, retries and backpressure (ch. 5).
    Reactive,
    /// Scaled-out stateless processing, sharded event-sourced aggregates
    /// with failover, a saga coordinator and a read model (ch. 5, 6).
    Microsystem,
}

impl Architecture {
    /// All three, in the order reports show them.
    pub const ALL: [Architecture; 3] =
        [Architecture::Microlith, Architecture::Reactive, Architecture::Microsystem];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Microlith => "microlith",
            Architecture::Reactive => "reactive",
            Architecture::Microsystem => "microsystem",
        }
    }

    /// Parses a name as written in files and on the command line.
    pub fn parse(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|arch| arch.name() == name)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Short name (the file name without extension, by convention).
    pub name: String,
    /// One paragraph: what this scenario shows.
    pub description: String,
    /// The architectures to run (all three by default).
    pub architectures: Vec<Architecture>,
    /// The master seed.
    pub seed: u64,
    /// How long orders arrive.
    pub duration: SimDuration,
    /// How long after the last arrival the run goes on, so orders in flight
    /// can finish before outcomes are counted.
    pub drain: SimDuration,
    /// The customers.
    pub workload: Workload,
    /// The links between nodes.
    pub network: Network,
    /// The external payment gateway.
    pub gateway: Gateway,
    /// Settings of the microlith.
    pub microlith: Microlith,
    /// Settings of the reactive microlith.
    pub reactive: Reactive,
    /// Settings of the microsystem.
    pub microsystem: Microsystem,
    /// How far the system is scaled out (`[topology]`).
    pub topology: Topology,
    /// Costs of scaling out that make contention and coherency emerge
    /// (`[scaling]`; off by default).
    pub scaling: Scaling,
    /// What goes wrong, and when.
    pub faults: Vec<FaultSpec>,
    /// Conditions on the outcome that make the run pass or fail.
    pub expectations: Vec<Expectation>,
    /// Invariant violations each architecture is expected to show (by
    /// default none); a scenario that teaches a failure names it here.
    pub expected_violations: BTreeMap<Architecture, Vec<String>>,
    // --- sweep (issue 5, `rlab sweep`) ---
    /// The sweep `rlab sweep` runs when the command line names none (the
    /// file's `[sweep]` section); `None` when the file declares none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepSpec>,
    // --- end sweep ---
}

/// How orders arrive and what they contain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Open loop (a rate, whatever the system does) or closed loop (users
    /// who wait for an answer, then think).
    pub arrivals: Arrivals,
    /// Products in the catalogue.
    pub products: u32,
    /// Zipf exponent of product popularity (0: uniform; 1: classic skew).
    pub zipf_exponent: f64,
    /// Lines per order, at least.
    pub lines_min: u32,
    /// Lines per order, at most.
    pub lines_max: u32,
    /// Units per line, at most (at least 1).
    pub quantity_max: u32,
    /// Cheapest product, in cents.
    pub price_cents_min: u64,
    /// Dearest product, in cents.
    pub price_cents_max: u64,
    /// Units of each product in stock at the start.
    pub stock_per_product: u64,
    /// Probability that a card is declined.
    pub decline_rate: f64,
    /// How long a customer waits for an answer before giving up.
    pub client_timeout: SimDuration,
}

/// The arrival process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Arrivals {
    /// Poisson arrivals whose rate follows a profile.
    Open {
        /// The rate from time zero, per second.
        rate_per_s: f64,
        /// Changes of rate over time, in time order.
        profile: Vec<RateChange>,
    },
    /// A fixed population of users, each placing an order, waiting for the
    /// answer (or its timeout), then thinking.
    Closed {
        /// How many users.
        users: u32,
        /// Mean think time (exponential).
        think_time: SimDuration,
    },
    /// A fixed population of users who act in step (a synchronous batch
    /// client): each round all of them place an order at the same instant,
    /// and the next round starts, after one think time, once every order
    /// of this one has been answered (or has timed out). With `users` in
    /// step with the number of nodes, this is the fixed-work-per-node,
    /// all-arrive-together experiment of Amdahl's law (Reactive
    /// Microsystems, ch. 5): every node reaches a serialised section at
    /// once and waits for the others' turns.
    Rounds {
        /// How many users.
        users: u32,
        /// Mean pause between rounds (exponential).
        think_time: SimDuration,
    },
}

/// A change of the open-loop rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateChange {
    /// When it starts.
    pub at: SimDuration,
    /// The rate it reaches, per second.
    pub rate_per_s: f64,
    /// Over how long the rate moves there linearly (zero: a step).
    pub ramp: SimDuration,
    /// If set, the rate goes back to what it was after this long (a burst).
    pub lasting: Option<SimDuration>,
}

/// The network every architecture runs on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    /// One-way latency between nodes.
    pub latency: Dist,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is duplicated.
    pub duplicate: f64,
    /// Probability a message is held back so later ones overtake it.
    pub reorder: f64,
    /// How long a held-back message can be delayed.
    pub reorder_window: SimDuration,
}

/// The external payment gateway.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gateway {
    /// How long it takes to answer.
    pub latency: Dist,
    /// Probability it answers with an error (and charges nothing).
    pub failure_rate: f64,
    /// Whether it honours idempotency keys (a retried charge is answered
    /// from its ledger). Off shows double charges.
    pub idempotent: bool,
}

/// Settings of the microlith.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Microlith {
    /// Worker threads per service.
    pub threads: u32,
    /// Database connections per service.
    pub connections: u32,
    /// CPU time per request per service.
    pub cpu: Dist,
    /// Time of one database call.
    pub database: Dist,
    /// How long a synchronous call waits before giving up.
    pub call_timeout: SimDuration,
    /// Whether all services share one database (and its connections).
    pub shared_database: bool,
    /// Cores per service node.
    pub cores: u32,
}

/// Settings of the reactive microlith.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reactive {
    /// Whether a circuit breaker guards the gateway.
    pub breaker_enabled: bool,
    /// The breaker's settings.
    pub breaker: BreakerSettings,
    /// How long a gateway call may take before it counts as failed.
    pub call_timeout: SimDuration,
    /// How many times a failed gateway call is retried.
    pub retries: u32,
    /// Bound of each service's intake queue; `None`: unbounded.
    pub queue_bound: Option<u32>,
    /// CPU time per message per service.
    pub cpu: Dist,
    /// Cores per service node.
    pub cores: u32,
}

/// A circuit breaker's settings, as a scenario states them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerSettings {
    /// Calls in the count-based window.
    pub window: u32,
    /// Calls needed before rates are judged.
    pub minimum_calls: u32,
    /// Failure rate that opens the breaker, in percent.
    pub failure_rate_percent: u32,
    /// How long it stays open.
    pub open_duration: SimDuration,
    /// Probe calls allowed when half-open.
    pub half_open_calls: u32,
}

/// Settings of the microsystem.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Microsystem {
    /// Stateless processing instances behind the gateway.
    pub instances: u32,
    /// How requests are spread over them (`round-robin`, `random`,
    /// `least-outstanding`, `p2c`).
    pub balancer: String,
    /// Shards of the Orders aggregate.
    pub shards: u32,
    /// Nodes the stateful part runs on.
    pub nodes: u32,
    /// Whether leader epochs fence deposed writers.
    pub fencing: bool,
    /// Heartbeat interval of replicas and registry.
    pub heartbeat: SimDuration,
    /// Silence after which a replica suspects the active.
    pub detection_timeout: SimDuration,
    /// How long a saga step may take.
    pub step_timeout: SimDuration,
    /// CPU time per request in a processing instance.
    pub cpu: Dist,
    /// Cores per node.
    pub cores: u32,
}

/// How far the system is scaled out: one number, `nodes`, that each
/// architecture interprets as honestly as its design allows (Reactive
/// Microsystems, ch. 2 and ch. 5):
///
/// - **microsystem**: `nodes` stateless processing instances, each on a
///   node of its own (it sets `microsystem.instances`). The stateful part
///   (shards, Orders nodes, coordinator, participants) keeps its settings:
///   it spends no modelled CPU, only latency, so it is not what limits a
///   sweep of the stateless part.
/// - **microlith**: scaling one service means scaling them all (ch. 2):
///   `nodes` replicas of the whole microlith (its four services, each
///   replica with its own thread and connection pools) behind a
///   round-robin front, all sharing the same database(s)
///   (`microlith.shared_database` chooses one for all four schemas or one
///   per schema): the database's cores and sessions are the serialised
///   section. Set to any value (1 included), the replicated layout with
///   its front is built, so a sweep compares like with like.
/// - **reactive microlith**: one instance per service, which it cannot
///   scale out (ch. 5): `nodes` has no effect; its throughput stays that
///   of its single instances.
///
/// `None` (the default) builds every architecture as its own settings say.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Topology {
    /// The scale-out number, if given.
    pub nodes: Option<u32>,
}

/// The costs of scaling out, for the microsystem's stateless processing
/// instances (Reactive Microsystems, ch. 5, Amdahl and the Universal
/// Scalability Law). Both are off by default.
///
/// - **Contention** (`serial`): after its parallel work on its instance,
///   each request passes a serialised section, a single lock holder on a
///   node of its own with one core (role `lock`), which spends `serial` of
///   CPU on it while the others queue. The lock's one core is what the
///   serial fraction of the Amdahl and USL fits measures.
/// - **Coherency** (`invalidation`): while holding the lock, the request's
///   change is broadcast as a cache invalidation to every other processing
///   instance, and the lock is released only once all of them have
///   acknowledged; the lock holder spends `invalidation` of CPU on each
///   acknowledgement. The lock is thus held longer the more peers there
///   are, and total throughput falls past a peak: that is the USL's
///   coherency term. It needs `serial`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scaling {
    /// CPU time of the serialised section per request; `None`: no lock.
    pub serial: Option<Dist>,
    /// CPU time the lock holder spends per peer's acknowledgement of an
    /// invalidation; `None`: no broadcast.
    pub invalidation: Option<Dist>,
}

/// A fault in a scenario, aimed at a role rather than a node id, so the
/// same file works for every architecture (each maps roles to its nodes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultSpec {
    /// When it starts.
    pub at: SimDuration,
    /// When it is undone, if it is a window.
    pub until: Option<SimDuration>,
    /// What happens.
    pub action: FaultAction,
}

/// What a scenario fault does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Crash the nodes playing `role` (restarted at `until`).
    Crash {
        /// The role, e.g. `payments`, `orders-active`.
        role: String,
    },
    /// Cut the nodes of one set of roles off from another, both ways.
    Partition {
        /// One side.
        side_a: Vec<String>,
        /// The other side.
        side_b: Vec<String>,
    },
    /// Make the links into the nodes of `role` slow (the gateway's, for
    /// instance).
    SlowLinks {
        /// The role whose incoming links slow down.
        role: String,
        /// The new latency.
        latency: Dist,
    },
    /// Step the clocks of the nodes of `role`.
    ClockStep {
        /// The role.
        role: String,
        /// Nanoseconds, forward if positive.
        delta_ns: i64,
    },
}

/// A condition on a run's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expectation {
    /// The architecture it applies to (all run ones if `None`).
    pub architecture: Option<Architecture>,
    /// A metric of the report (see [`crate::report::metric`]).
    pub metric: String,
    /// How to compare.
    pub op: Comparison,
    /// With what.
    pub value: f64,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `<`
    #[serde(rename = "<")]
    Less,
    /// `<=`
    #[serde(rename = "<=")]
    LessOrEqual,
    /// `>`
    #[serde(rename = ">")]
    Greater,
    /// `>=`
    #[serde(rename = ">=")]
    GreaterOrEqual,
    /// `==`
    #[serde(rename = "==")]
    Equal,
}

impl Comparison {
    /// Whether `actual op expected` holds.
    pub fn holds(self, actual: f64, expected: f64) -> bool {
        match self {
            Comparison::Less => actual < expected,
            Comparison::LessOrEqual => actual <= expected,
            Comparison::Greater => actual > expected,
            Comparison::GreaterOrEqual => actual >= expected,
            Comparison::Equal => (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Equal => "==",
        }
    }
}

impl Scenario {
    /// A small, valid scenario with sensible defaults for everything: the
    /// starting point of files (missing fields take these values) and of
    /// tests.
    pub fn default_named(name: &str) -> Scenario {
        let ms = SimDuration::from_millis;
        Scenario {
            name: name.to_string(),
            description: String::new(),
            architectures: Architecture::ALL.to_vec(),
            seed: 1,
            duration: SimDuration::from_secs(10),
            drain: SimDuration::from_secs(10),
            workload: Workload {
                arrivals: Arrivals::Open { rate_per_s: 50.0, profile: Vec::new() },
                products: 100,
                zipf_exponent: 0.0,
                lines_min: 1,
                lines_max: 3,
                quantity_max: 2,
                price_cents_min: 500,
                price_cents_max: 5_000,
                stock_per_product: 100_000,
                decline_rate: 0.0,
                client_timeout: SimDuration::from_secs(5),
            },
            network: Network {
                latency: Dist::constant(ms(1)),
                loss: 0.0,
                duplicate: 0.0,
                reorder: 0.0,
                reorder_window: SimDuration::ZERO,
            },
            gateway: Gateway {
                latency: Dist::constant(ms(50)),
                failure_rate: 0.0,
                idempotent: true,
            },
            microlith: Microlith {
                threads: 20,
                connections: 10,
                cpu: Dist::constant(ms(1)),
                database: Dist::constant(ms(2)),
                call_timeout: SimDuration::from_secs(1),
                shared_database: false,
                cores: 4,
            },
            reactive: Reactive {
                breaker_enabled: true,
                breaker: BreakerSettings {
                    window: 20,
                    minimum_calls: 10,
                    failure_rate_percent: 50,
                    open_duration: SimDuration::from_secs(5),
                    half_open_calls: 3,
                },
                call_timeout: SimDuration::from_secs(1),
                retries: 2,
                queue_bound: Some(1_000),
                cpu: Dist::constant(ms(1)),
                cores: 4,
            },
            microsystem: Microsystem {
                instances: 4,
                balancer: "least-outstanding".to_string(),
                shards: 4,
                nodes: 4,
                fencing: true,
                heartbeat: ms(100),
                detection_timeout: SimDuration::from_secs(1),
                step_timeout: SimDuration::from_secs(2),
                cpu: Dist::constant(ms(1)),
                cores: 4,
            },
            topology: Topology::default(),
            scaling: Scaling::default(),
            faults: Vec::new(),
            expectations: Vec::new(),
            expected_violations: BTreeMap::new(),
            sweep: None,
        }
    }
}
