//! Processes are actors: private state, reacting to messages, timers and
//! completed work, acting on the world only through a [`Ctx`].
//!
//! A process never touches another process's state and never sees global
//! time; everything it can do is a method on [`Ctx`], which makes every
//! effect visible to the engine and so to the trace.
//!
//! ```
//! use sim::{Ctx, LinkConfig, Message, NodeConfig, Process, ProcessId, Seed, Sim, SimConfig, SimDuration};
//!
//! #[derive(Clone, Debug)]
//! struct Ping(u32);
//! impl Message for Ping {
//!     fn label(&self) -> &'static str { "Ping" }
//!     fn digest(&self) -> u64 { u64::from(self.0) }
//! }
//!
//! /// Bounces each ping back to its sender until the count reaches 10.
//! struct Bouncer { peer: ProcessId }
//! impl Process<Ping> for Bouncer {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Ping>) {
//!         if ctx.me() < self.peer { ctx.send(self.peer, Ping(0)); }
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Ping>, from: ProcessId, ping: Ping) {
//!         if ping.0 < 10 { ctx.send(from, Ping(ping.0 + 1)); }
//!     }
//! }
//!
//! let mut sim = Sim::new(SimConfig::new(Seed(7)));
//! sim.set_default_link(LinkConfig::constant(SimDuration::from_millis(5)));
//! let a = sim.add_node(NodeConfig::new("a"));
//! let b = sim.add_node(NodeConfig::new("b"));
//! sim.spawn(a, "left", || Bouncer { peer: ProcessId(1) });
//! sim.spawn(b, "right", || Bouncer { peer: ProcessId(0) });
//! sim.run();
//! // Eleven one-way trips of 5 ms each.
//! assert_eq!(sim.now().as_nanos(), 55_000_000);
//! assert_eq!(sim.stats().messages_delivered, 11);
//! ```

use crate::clock::LocalTime;
use crate::ids::{NodeId, ProcessId, ResourceId, TimerId};
use crate::rng::Stream;
use crate::time::SimDuration;
use crate::trace::{Component, TraceEvent};
use crate::world::{Control, Core};
use std::any::Any;

/// What processes send each other. `Clone` because the network can
/// duplicate a message.
pub trait Message: Clone + 'static {
    /// A short name for traces and diagrams, e.g. `PlaceOrder`.
    fn label(&self) -> &'static str;
    /// A stable digest of the content, folded into the trace hash so that a
    /// change of content (not only of timing) changes the hash. It must not
    /// depend on anything but the content: no pointers, no `std` hashers.
    fn digest(&self) -> u64 {
        0
    }
}

/// An actor. Every handler gets a [`Ctx`] through which it acts.
///
/// A process's fields are its volatile state: a crash of its node drops the
/// value, and a restart builds a fresh one with the factory given to
/// [`crate::Sim::spawn`], which then recovers what it needs from the node's
/// durable storage in [`Process::on_start`].
pub trait Process<M: Message>: Any {
    /// Called when the process starts, and again after every restart.
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        let _ = ctx;
    }
    /// Called for each message delivered.
    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M);
    /// Called when a timer set with [`Ctx::set_timer`] fires.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, tag: u64) {
        let _ = (ctx, timer, tag);
    }
    /// Called when CPU work started with [`Ctx::spend_cpu`] completes.
    fn on_work_done(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let _ = (ctx, tag);
    }
    /// Called when a resource this process queued for becomes its own.
    fn on_granted(&mut self, ctx: &mut Ctx<'_, M>, resource: ResourceId, tag: u64) {
        let _ = (ctx, resource, tag);
    }
    /// Called on a supervisor when a child it supervises (see
    /// [`crate::Sim::supervise`]) fails with [`Ctx::fail`]. The child is
    /// suspended until this handler decides with [`Ctx::resume`],
    /// [`Ctx::restart`] or [`Ctx::stop`]; to escalate, the supervisor fails
    /// itself. The default restarts the child: let it crash.
    fn on_child_failed(&mut self, ctx: &mut Ctx<'_, M>, child: ProcessId, reason: &'static str) {
        let _ = reason;
        ctx.restart(child);
    }
    /// Called when this process's supervisor resumes it after a failure,
    /// before any message that waited meanwhile. Timers that came due while
    /// it was suspended fire right after this.
    fn on_resumed(&mut self, ctx: &mut Ctx<'_, M>) {
        let _ = ctx;
    }
    /// Called when a [`Ctx::sync`] completes: earlier appends are durable.
    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let _ = (ctx, tag);
    }
}

/// How a process takes its messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mailbox {
    /// Each message is handled the moment it arrives, even while earlier
    /// messages' CPU work is still running (a non-blocking service).
    #[default]
    Immediate,
    /// One message at a time: the next is handled only when all CPU work
    /// started by the previous one has completed (an actor). Messages wait
    /// in a mailbox of at most `capacity` (unbounded if `None`); arrivals to
    /// a full mailbox are dropped and traced.
    Sequential {
        /// The mailbox bound.
        capacity: Option<u32>,
    },
}

/// The answer to [`Ctx::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// A unit was free and is now held by the caller.
    Granted,
    /// The caller waits in line; [`Process::on_granted`] follows.
    Queued,
    /// The wait queue was full; nothing is held.
    Rejected,
}

/// A process's window on the world during one handler call.
pub struct Ctx<'a, M: Message> {
    pub(crate) core: &'a mut Core<M>,
    pub(crate) me: ProcessId,
    pub(crate) node: NodeId,
}

impl<M: Message> Ctx<'_, M> {
    /// This process.
    pub fn me(&self) -> ProcessId {
        self.me
    }

    /// The node hosting this process.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The node's clock reading now (skewed; never the global time).
    pub fn now_local(&self) -> LocalTime {
        self.core.local_time(self.node)
    }

    /// Sends `message` to `to` over the network.
    #[inline]
    pub fn send(&mut self, to: ProcessId, message: M) {
        self.core.send(self.me, self.node, to, message);
    }

    /// Sets a timer that fires when this node's clock has advanced by
    /// `after` (in local time, so skew and steps change when it fires).
    pub fn set_timer(&mut self, after: SimDuration, tag: u64) -> TimerId {
        self.core.set_timer(self.me, self.node, after, tag)
    }

    /// Cancels a pending timer; returns whether it was still pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }

    /// Runs `duration` of CPU work on one of the node's cores, waiting in
    /// the node's ready queue while all cores are busy.
    /// [`Process::on_work_done`] follows with `tag`.
    pub fn spend_cpu(&mut self, duration: SimDuration, tag: u64) {
        self.core.spend_cpu(self.me, self.node, duration, tag);
    }

    /// Asks for one unit of a resource (a thread, a connection) on this
    /// node.
    pub fn acquire(&mut self, resource: ResourceId, tag: u64) -> Acquire {
        self.core.acquire(self.me, self.node, resource, tag)
    }

    /// Gives back one unit of a resource; the first waiter, if any, gets it.
    pub fn release(&mut self, resource: ResourceId) {
        self.core.release(self.node, resource);
    }

    /// This process's own random stream.
    pub fn rng(&mut self) -> &mut Stream {
        &mut self.core.processes[self.me.index()].stream
    }

    /// Records a fact of the modelled business, e.g. `("OrderCreated", id)`.
    pub fn record(&mut self, label: &'static str, key: u64) {
        self.core.record(self.me, label, key);
    }

    /// Appends a record to a log in the node's storage. It survives a crash
    /// only once a later [`Ctx::sync`] has completed.
    pub fn append(&mut self, log: &str, record: impl AsRef<[u8]>) {
        self.core.nodes[self.node.index()].storage.append(log, record.as_ref());
    }

    /// [`Ctx::append`] for a frequent writer: `id` keeps the log's [`LogId`]
    /// from one call to the next (start with `None`), which spares the
    /// search by name.
    ///
    /// [`LogId`]: crate::storage::LogId
    pub fn append_to(
        &mut self,
        log: &str,
        id: &mut Option<crate::storage::LogId>,
        record: impl AsRef<[u8]>,
    ) {
        let storage = &mut self.core.nodes[self.node.index()].storage;
        let Ok(written) = storage.append_records(log, *id, 1, |_, bytes| {
            bytes.extend_from_slice(record.as_ref());
            Ok::<(), std::convert::Infallible>(())
        });
        *id = Some(written);
    }

    /// Appends `count` records to a log in the node's storage, each encoded
    /// by `encode(i, bytes)` straight onto the log (all or none of them);
    /// durable like [`Ctx::append`]'s. Returns the log's [`LogId`] to pass
    /// as `hint` next time, which spares the search by name; see
    /// [`crate::Storage::append_records`].
    ///
    /// [`LogId`]: crate::storage::LogId
    pub fn append_records<E>(
        &mut self,
        log: &str,
        hint: Option<crate::storage::LogId>,
        count: usize,
        encode: impl FnMut(usize, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<crate::storage::LogId, E> {
        let storage = &mut self.core.nodes[self.node.index()].storage;
        storage.append_records(log, hint, count, encode)
    }

    /// The records of a log on this node, synced or not (what the process
    /// reads back is what its page cache would hold).
    pub fn read_log(&self, log: &str) -> crate::storage::Records<'_> {
        self.core.nodes[self.node.index()].storage.read(log)
    }

    /// How many records of a log on this node are durable (survive a crash).
    pub fn synced_len(&self, log: &str) -> usize {
        self.core.nodes[self.node.index()].storage.synced_len(log)
    }

    /// Drops the first `count` records of a log on this node (compaction,
    /// retention); see [`crate::Storage::truncate_front`].
    pub fn truncate_front(&mut self, log: &str, count: usize) -> usize {
        self.core.nodes[self.node.index()].storage.truncate_front(log, count)
    }

    /// Makes every record appended so far durable after the node's fsync
    /// latency; [`Process::on_synced`] follows with `tag`.
    pub fn sync(&mut self, tag: u64) {
        self.core.sync(self.me, self.node, tag);
    }

    /// Fails this process: it stops handling events when this handler
    /// returns, and its supervisor decides what happens next (with no
    /// supervisor, it is stopped). The failing message is not redelivered.
    pub fn fail(&mut self, reason: &'static str) {
        self.core.controls.push(Control::Fail { process: self.me, reason });
    }

    /// Restarts `process` with fresh state from its factory, keeping its
    /// mailbox (a supervisor's decision; works on suspended, running and
    /// stopped processes, not on ones whose node is down).
    pub fn restart(&mut self, process: ProcessId) {
        self.core.controls.push(Control::Restart { process });
    }

    /// Stops `process` for good; what waits in its mailbox, and everything
    /// sent to it later, becomes dead letters.
    pub fn stop(&mut self, process: ProcessId) {
        self.core.controls.push(Control::Stop { process });
    }

    /// Resumes a suspended `process` with its state as it was.
    pub fn resume(&mut self, process: ProcessId) {
        self.core.controls.push(Control::Resume { process });
    }

    /// Reports what a building block did, as a trace event of its own kind.
    pub fn trace(&mut self, component: Component, kind: &'static str, key: u64, value: i64) {
        let event = TraceEvent::Component { process: self.me, component, kind, key, value };
        self.core.trace(event);
    }

    /// Adds `amount` to a named counter.
    pub fn count(&mut self, name: &str, amount: u64) {
        self.core.metrics.count(name, amount);
    }

    /// Records a duration in a named latency histogram.
    pub fn observe(&mut self, name: &str, duration: SimDuration) {
        self.core.metrics.observe(name, duration);
    }

    /// Adds a value to a named time series at the current time.
    pub fn sample(&mut self, name: &str, value: f64) {
        let now = self.core.now;
        self.core.metrics.sample(name, now, value);
    }
}
