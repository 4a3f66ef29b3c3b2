//! The standard benchmark workloads that `rlab bench` times.
//!
//! Each workload builds a [`sim::Sim`], runs it to a fixed amount of work
//! and returns what it did as a [`WorkloadResult`]. Nothing here reads a
//! clock: the library is deterministic (the same seed gives the same
//! result), and the binary measures wall time around the calls.
//!
//! - [`ping_pong`]: many processes, each on its own node, bouncing balls to
//!   random peers over exponential-latency links. This is the engine's
//!   hot path (queue, network sample, trace hash, handler dispatch) and
//!   nothing else.
//! - [`ping_pong_baseline`]: the same model as a minimal hand-written event
//!   loop over a binary heap, with no engine at all. It draws the same
//!   random numbers in the same order, so it ends at exactly the same
//!   simulated time; the ratio of the two wall times is the engine's
//!   overhead.
//! - [`mm1`]: an M/M/1 queue (λ = 0.9, μ = 1) through timers, messages and
//!   a one-core node.
//! - [`mixed`]: request/response with CPU work, timeouts, lossy and
//!   duplicating links, storage appends and syncs, a crash, a partition and
//!   a clock step, with the trace streamed to a sink.
//! - [`microsystem_orders`]: the order system's 16-node microsystem at
//!   1,000 orders a second (the order-system issue's speed target).
//! - [`sweep_architectures`]: the scaling lab's three-architecture sweep,
//!   across the machine's cores (the scaling issue's speed target).

mod mixed;
mod mm1;
mod orders;
mod ping_pong;
mod sweep;

pub use mixed::{MIXED_DURATION, MixedConfig, MixedResult, mixed};
pub use mm1::{Job, MM1_CUSTOMERS, Mm1Result, mm1, mm1_detailed};
pub use orders::{MICROSYSTEM_DURATION, microsystem_orders, microsystem_scenario};
pub use ping_pong::{
    Ball, PING_PONG_DELIVERIES, PING_PONG_LATENCY_MEAN, PING_PONG_PROCESSES, ping_pong,
    ping_pong_baseline, ping_pong_world, run_deliveries,
};
pub use sweep::{SWEEP_ARCHITECTURES_PATH, SWEEP_ARCHITECTURES_TOML, sweep_architectures};

use sim::{SimTime, Stream, TraceHash};
use std::cell::Cell;
use std::io;
use std::rc::Rc;

/// What one run of a workload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadResult {
    /// Events taken from the event queue (stale ones included); for the
    /// baseline, heap pops.
    pub events: u64,
    /// Messages handed to a handler; for the baseline, balls delivered.
    pub deliveries: u64,
    /// Simulated time when the run stopped.
    pub sim_time: SimTime,
    /// The trace hash of an engine run; `None` for the baseline, which has
    /// no trace.
    pub trace_hash: Option<TraceHash>,
    /// Trace events emitted (and hashed); zero for the baseline.
    pub trace_events: u64,
}

/// A writer that throws its bytes away and counts them, so a benchmark pays
/// for serialising the trace but not for storing it. Clones share the
/// count.
#[derive(Clone, Debug, Default)]
pub struct ByteCounter {
    bytes: Rc<Cell<u64>>,
}

impl ByteCounter {
    /// A counter at zero.
    pub fn new() -> ByteCounter {
        ByteCounter::default()
    }

    /// Bytes written so far through any clone.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }
}

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A uniformly random index in `0..count` other than `me`, with one draw.
#[inline]
fn other_than(stream: &mut Stream, me: u32, count: u32) -> u32 {
    let drawn = stream.below(u64::from(count - 1)) as u32;
    if drawn >= me { drawn + 1 } else { drawn }
}
