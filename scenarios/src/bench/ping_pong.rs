//! Ping-pong: the engine's hot path, and the hand-written loop it is
//! measured against.
//!
//! The model: `processes` players, each alone on its node. At start each
//! player throws one ball to a uniformly random other player; whoever
//! catches a ball throws it on to a new random other player. Links have
//! exponential latency with mean [`PING_PONG_LATENCY_MEAN`] and nothing
//! else (no loss, duplication or reordering), so `processes` balls are in
//! flight at every moment. The run stops after exactly `deliveries`
//! catches.
//!
//! Random draws, in both implementations:
//! - player `i` picks peers from its own stream `Purpose::Process(i)`, one
//!   [`Stream::below`] per throw;
//! - every latency is one `Dist::exponential` sample from the single
//!   `Purpose::Network` stream, in the order the throws happen.
//!
//! Throws happen in the same order in both: the start throws in player
//! order at time zero (the engine's start events are queued in spawn order
//! before any delivery), then one throw per catch, catches ordered by
//! `(time, insertion sequence)`. Both queues number their insertions the
//! same way up to a constant offset (the engine's start events take the
//! first `processes` numbers), so ties between equal times, which do occur
//! when a latency rounds to the same nanosecond, are broken the same way
//! too. Hence the two end at the same simulated time, which
//! `tests/bench.rs` asserts.

use super::{WorkloadResult, other_than};
use sim::{
    Ctx, Dist, LinkConfig, Message, NodeConfig, Process, ProcessId, Purpose, Seed, Sim, SimConfig,
    SimDuration, SimTime, Stream,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Players in the standard run.
pub const PING_PONG_PROCESSES: u32 = 1_000;
/// Catches in the standard run.
pub const PING_PONG_DELIVERIES: u64 = 1_000_000;
/// Mean one-way latency of every link.
pub const PING_PONG_LATENCY_MEAN: SimDuration = SimDuration::from_millis(1);

/// The ball: how many times it has been thrown before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ball(pub u32);

impl Message for Ball {
    fn label(&self) -> &'static str {
        "Ball"
    }
    fn digest(&self) -> u64 {
        u64::from(self.0)
    }
}

/// A player: holds nothing but the number of players.
struct Player {
    players: u32,
}

impl Process<Ball> for Player {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Ball>) {
        self.throw(ctx, Ball(0));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Ball>, _from: ProcessId, ball: Ball) {
        self.throw(ctx, Ball(ball.0.wrapping_add(1)));
    }
}

impl Player {
    #[inline]
    fn throw(&self, ctx: &mut Ctx<'_, Ball>, ball: Ball) {
        let me = ctx.me().0;
        let to = other_than(ctx.rng(), me, self.players);
        ctx.send(ProcessId(to), ball);
    }
}

fn latency() -> Dist {
    Dist::exponential(PING_PONG_LATENCY_MEAN)
}

/// The ping-pong world, built but not run: one node and one player per
/// process, start events queued. Run it with [`run_deliveries`].
pub fn ping_pong_world(seed: Seed, processes: u32) -> Sim<Ball> {
    assert!(processes >= 2, "ping-pong needs at least two players, got {processes}");
    let mut config = SimConfig::new(seed);
    // Exactly `processes` events are ever pending (one ball each), so this
    // room is never outgrown and the run never reallocates the queue.
    config.queue_capacity = config.queue_capacity.max(processes as usize);
    let mut sim = Sim::new(config);
    sim.set_default_link(LinkConfig::with_latency(latency()));
    for index in 0..processes {
        let node = sim.add_node(NodeConfig::new(format!("n{index}")));
        sim.spawn(node, format!("player{index}"), move || Player { players: processes });
    }
    sim
}

/// Runs `sim` (a [`ping_pong_world`]) until `deliveries` more balls have
/// been caught. The start events are processed by the first call.
pub fn run_deliveries(sim: &mut Sim<Ball>, deliveries: u64) {
    let target = sim.stats().messages_delivered + deliveries;
    // Checked after every event; measured as fast as a hand-written loop
    // of `step` (the check is a copy of a few counters).
    sim.run_while(|sim| sim.stats().messages_delivered < target);
    assert_eq!(sim.stats().messages_delivered, target, "a ball is always in flight");
}

/// Runs ping-pong with `processes` players until `deliveries` catches.
/// `events` and `deliveries` in the result both count catches.
pub fn ping_pong(seed: Seed, processes: u32, deliveries: u64) -> WorkloadResult {
    let mut sim = ping_pong_world(seed, processes);
    run_deliveries(&mut sim, deliveries);
    let stats = sim.stats();
    WorkloadResult {
        events: stats.messages_delivered,
        deliveries: stats.messages_delivered,
        sim_time: sim.now(),
        trace_hash: Some(sim.trace_hash()),
        trace_events: stats.trace_events,
    }
}

/// The same model as [`ping_pong`] as a minimal event loop: a binary heap
/// of `(time, sequence, destination)` and nothing else. No engine, no
/// trace, no handlers: the floor that the engine's overhead is measured
/// from.
pub fn ping_pong_baseline(seed: Seed, processes: u32, deliveries: u64) -> WorkloadResult {
    assert!(processes >= 2, "ping-pong needs at least two players, got {processes}");
    let latency = latency();
    let mut network = Stream::new(seed, Purpose::Network);
    let mut players: Vec<Stream> =
        (0..processes).map(|index| Stream::new(seed, Purpose::Process(index))).collect();
    let mut queue: BinaryHeap<Reverse<(u64, u64, u32)>> =
        BinaryHeap::with_capacity(processes as usize);
    let mut next_seq = 0_u64;
    let mut now = 0_u64;
    for me in 0..processes {
        let to = other_than(&mut players[me as usize], me, processes);
        let at = now + latency.sample(&mut network).as_nanos();
        queue.push(Reverse((at, next_seq, to)));
        next_seq += 1;
    }
    for _ in 0..deliveries {
        let Reverse((at, _, me)) = queue.pop().expect("a ball is always in flight");
        now = at;
        let to = other_than(&mut players[me as usize], me, processes);
        let at = now + latency.sample(&mut network).as_nanos();
        queue.push(Reverse((at, next_seq, to)));
        next_seq += 1;
    }
    WorkloadResult {
        events: deliveries,
        deliveries,
        sim_time: SimTime::from_nanos(now),
        trace_hash: None,
        trace_events: 0,
    }
}
