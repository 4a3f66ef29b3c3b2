//! `sim`: rlab's deterministic discrete-event simulation engine.
//!
//! One [`Sim`] is one world: [nodes](NodeConfig) with cores, clocks and
//! durable [storage](Storage), hosting [processes](Process) (actors) that
//! talk over a [network](Network) of links with latency, loss, duplication,
//! reordering and partitions. Time is an integer count of nanoseconds
//! ([`SimTime`]) and advances from one event to the next; every random draw
//! comes from a ChaCha [`Stream`] derived from one master [`Seed`], one
//! stream per purpose. The same seed and setup give the same run, and the
//! same [`TraceHash`], on any machine, in debug and release.
//!
//! How the pieces fit:
//! - [`Sim`] owns everything and runs the loop ([`Sim::step`],
//!   [`Sim::run_until`]); it also answers questions about the world with
//!   plain data ([`Sim::node`], [`Sim::process`], [`Sim::link`]), which is
//!   what a terminal UI draws.
//! - A [`Process`] reacts to messages, timers, completed CPU work, granted
//!   resources and completed syncs, and acts only through its [`Ctx`].
//! - Faults come as a scripted [`FaultSchedule`] or drawn per seed as a
//!   [`FaultMix`]; [`Sim::fired_faults`] says which fired and what they
//!   touched.
//! - The [`trace`] records every step as a past-tense [`TraceEvent`];
//!   it is always hashed, and streamed to a [`TraceSink`] when one is
//!   attached.
//!
//! The engine does no file or terminal I/O, reads no wall clock, starts no
//! threads and iterates no hash maps.

#![warn(missing_docs)]

pub mod clock;
pub mod dense;
pub mod dist;
pub mod fault;
pub mod ids;
pub mod kit;
pub mod metrics;
pub mod net;
pub mod process;
pub mod queue;
pub mod rng;
pub mod storage;
pub mod time;
pub mod trace;
mod world;

pub use clock::{ClockConfig, LocalTime};
pub use dense::{DenseKey, DenseMap};
pub use dist::Dist;
pub use fault::{Fault, FaultMix, FaultSchedule, FiredFault, SwarmConfig, Touched};
pub use ids::{EXTERNAL, NodeId, ProcessId, ResourceId, TimerId};
pub use metrics::{LatencySummary, Metrics};
pub use net::{LinkConfig, Network};
pub use process::{Acquire, Ctx, Mailbox, Message, Process};
pub use rng::{Purpose, Seed, Stream};
pub use storage::Storage;
pub use time::{SimDuration, SimTime};
pub use trace::{Component, TraceEvent, TraceHash, TraceSink};
pub use world::{
    DEAD_LETTERS_KEPT, DeadLetter, EngineStats, LinkView, NodeConfig, NodeSeries, NodeView,
    PendingView, ProcessStatus, ProcessView, ResourceConfig, ResourceView, RunOutcome, Sim,
    SimConfig,
};
