//! The costs of scaling out the stateless part (`[scaling]`; Reactive
//! Microsystems, ch. 5, Amdahl's law and the Universal Scalability Law):
//! a serialised section every request passes, and the coherency traffic
//! it may have to wait for.
//!
//! [`SerialSection`] is a lock holder on a node of its own with one core:
//! processing instances send it [`Internal::Serialize`] once their
//! parallel work is done, it takes one request at a time in arrival order
//! (the others queue), spends `serial` of CPU on it and answers
//! [`Internal::Serialized`]. That one core is the contention: no number of
//! instances makes it go faster.
//!
//! With coherency on, the request, still holding the lock, has its change
//! invalidated at every other processing instance: the holder sends each
//! peer an [`Internal::Invalidate`] and releases the lock only once every
//! peer has answered [`Internal::Invalidated`], spending `invalidation` of
//! CPU on each answer. The lock is then held for `serial` plus a round trip
//! plus `invalidation` per peer, longer with every instance added, so past
//! some size adding instances lowers throughput.
//!
//! It models cost, not availability: it keeps no durable state, and while
//! it is down the requests waiting for it wait at their instances. A peer
//! that never acknowledges (crashed, or its message lost) holds the lock
//! up for [`ACKNOWLEDGEMENT_TIMEOUT`] at most; then the lock is released
//! anyway and `microsystem.invalidation_timeouts` counts it.

use super::message::{Internal, Msg};
use crate::domain::OrderId;
use sim::{Ctx, Dist, Process, ProcessId, SimDuration, TimerId};
use std::collections::VecDeque;

/// How long the lock holder waits for the peers' acknowledgements of one
/// invalidation before releasing the lock without the missing ones.
pub const ACKNOWLEDGEMENT_TIMEOUT: SimDuration = SimDuration::from_secs(1);

/// Work and timer tags carry the holder's sequence number shifted left by
/// one; the low bit tells serial work from an acknowledgement's work.
const ACKNOWLEDGEMENT_BIT: u64 = 1;

/// How the serialised section behaves.
#[derive(Clone, Debug)]
pub struct SerialSectionConfig {
    /// CPU time per request while holding the lock.
    pub serial: Dist,
    /// CPU time per peer's acknowledgement of an invalidation; `None`: no
    /// invalidations (contention only).
    pub invalidation: Option<Dist>,
    /// Every processing instance (the requester's peers are the others).
    pub instances: Vec<ProcessId>,
}

/// The request holding the lock.
#[derive(Clone, Debug)]
struct Holder {
    /// Tells this holding from earlier ones, for late work and timers.
    sequence: u64,
    instance: ProcessId,
    order: OrderId,
    /// Peers whose acknowledgement has not been processed yet.
    acknowledgements_pending: usize,
    /// The deadline of the broadcast, if one is under way.
    timeout: Option<TimerId>,
}

/// The lock holder: a single-core serialised section taking one request at
/// a time, in arrival order, with an optional invalidation broadcast held
/// under the lock.
#[derive(Clone, Debug)]
pub struct SerialSection {
    config: SerialSectionConfig,
    waiting: VecDeque<(ProcessId, OrderId)>,
    holder: Option<Holder>,
    next_sequence: u64,
}

impl SerialSection {
    /// A free lock with nobody waiting.
    pub fn new(config: SerialSectionConfig) -> SerialSection {
        SerialSection { config, waiting: VecDeque::new(), holder: None, next_sequence: 0 }
    }

    /// Requests waiting for the lock (not counting the holder).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn start_next(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.holder.is_some() {
            return;
        }
        let Some((instance, order)) = self.waiting.pop_front() else { return };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.holder =
            Some(Holder { sequence, instance, order, acknowledgements_pending: 0, timeout: None });
        let serial = self.config.serial.sample(ctx.rng());
        ctx.spend_cpu(serial, sequence << 1);
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(holder) = self.holder.take() {
            if let Some(timer) = holder.timeout {
                ctx.cancel_timer(timer);
            }
            ctx.send(holder.instance, Msg::Internal(Internal::Serialized { order: holder.order }));
        }
        self.start_next(ctx);
    }

    /// The holder with this sequence number, if it still holds the lock.
    fn holding(&mut self, sequence: u64) -> Option<&mut Holder> {
        self.holder.as_mut().filter(|holder| holder.sequence == sequence)
    }

    /// The serial work is done: broadcast the invalidation to the peers,
    /// or release at once if there is none to make.
    fn serial_done(&mut self, ctx: &mut Ctx<'_, Msg>, sequence: u64) {
        let coherency = self.config.invalidation.is_some();
        let instances = &self.config.instances;
        let Some(holder) = self.holder.as_mut().filter(|holder| holder.sequence == sequence) else {
            return;
        };
        if coherency {
            for peer in instances.iter().filter(|peer| **peer != holder.instance) {
                ctx.send(*peer, Msg::Internal(Internal::Invalidate { order: holder.order }));
                holder.acknowledgements_pending += 1;
            }
        }
        if holder.acknowledgements_pending == 0 {
            self.release(ctx);
        } else {
            holder.timeout = Some(ctx.set_timer(ACKNOWLEDGEMENT_TIMEOUT, sequence));
        }
    }
}

impl Process<Msg> for SerialSection {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Internal(Internal::Serialize { order }) => {
                self.waiting.push_back((from, order));
                self.start_next(ctx);
            }
            Msg::Internal(Internal::Invalidated { order }) => {
                let Some(invalidation) = self.config.invalidation.clone() else { return };
                let Some(holder) = self.holder.as_ref().filter(|holder| holder.order == order)
                else {
                    return;
                };
                let tag = holder.sequence << 1 | ACKNOWLEDGEMENT_BIT;
                let cost = invalidation.sample(ctx.rng());
                ctx.spend_cpu(cost, tag);
            }
            _ => {}
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let sequence = tag >> 1;
        if tag & ACKNOWLEDGEMENT_BIT == 0 {
            self.serial_done(ctx, sequence);
            return;
        }
        let Some(holder) = self.holding(sequence) else { return };
        holder.acknowledgements_pending = holder.acknowledgements_pending.saturating_sub(1);
        if holder.acknowledgements_pending == 0 {
            self.release(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, sequence: u64) {
        if self.holding(sequence).is_some_and(|holder| holder.acknowledgements_pending > 0) {
            ctx.count("microsystem.invalidation_timeouts", 1);
            if let Some(holder) = self.holder.as_mut() {
                holder.timeout = None;
            }
            self.release(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::net::LinkConfig;
    use sim::{NodeConfig, Seed, Sim, SimConfig, SimTime};

    /// Asks for the lock for each of its orders at start and notes when
    /// each answer came (local nanoseconds).
    #[derive(Clone, Debug)]
    struct Requester {
        lock: ProcessId,
        orders: Vec<u64>,
        answered: Vec<(u64, i64)>,
    }

    impl Process<Msg> for Requester {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            for order in &self.orders {
                ctx.send(self.lock, Msg::Internal(Internal::Serialize { order: OrderId(*order) }));
            }
        }

        fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
            if let Msg::Internal(Internal::Serialized { order }) = message {
                self.answered.push((order.0, ctx.now_local().as_nanos()));
            }
        }
    }

    /// A peer instance that acknowledges invalidations, or ignores them.
    #[derive(Clone, Debug)]
    struct Peer {
        answers: bool,
    }

    impl Process<Msg> for Peer {
        fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
            if let (true, Msg::Internal(Internal::Invalidate { order })) = (self.answers, message) {
                ctx.send(from, Msg::Internal(Internal::Invalidated { order }));
            }
        }
    }

    /// Runs a lock (1 ms serial, 1 ms per acknowledgement if `coherency`)
    /// with one requester of `orders` and peers that answer as `peers`
    /// says, over 1 ms links; returns when each order was answered, in ms.
    fn answered_at(orders: &[u64], peers: &[bool], coherency: bool) -> Vec<(u64, f64)> {
        let ms = SimDuration::from_millis;
        let mut sim = Sim::<Msg>::new(SimConfig::new(Seed(7)));
        sim.set_default_link(LinkConfig {
            latency: Dist::constant(ms(1)),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_window: SimDuration::ZERO,
        });
        let node = |sim: &mut Sim<Msg>, name: &str| sim.add_node(NodeConfig::new(name).cores(1));
        let lock = ProcessId(1 + peers.len() as u32);
        let requester = Requester { lock, orders: orders.to_vec(), answered: Vec::new() };
        let at = node(&mut sim, "requester");
        let requester = sim.spawn(at, "requester", move || requester.clone());
        let mut instances = vec![requester];
        for (index, answers) in peers.iter().copied().enumerate() {
            let at = node(&mut sim, &format!("peer-{index}"));
            instances.push(sim.spawn(at, format!("peer-{index}"), move || Peer { answers }));
        }
        let config = SerialSectionConfig {
            serial: Dist::constant(ms(1)),
            invalidation: coherency.then(|| Dist::constant(ms(1))),
            instances,
        };
        let at = node(&mut sim, "lock");
        assert_eq!(sim.spawn(at, "lock", move || SerialSection::new(config.clone())), lock);
        sim.run_until(SimTime::ZERO + SimDuration::from_secs(5));
        let state = sim.process_state::<Requester>(requester).expect("the requester runs");
        state.answered.iter().map(|(order, at)| (*order, *at as f64 / 1e6)).collect()
    }

    #[test]
    fn requests_queue_for_the_one_core_in_arrival_order() {
        // Three at once: each waits for those before it (1 ms link in,
        // 1 ms serial each, 1 ms link back).
        assert_eq!(answered_at(&[1, 2, 3], &[], false), [(1, 3.0), (2, 4.0), (3, 5.0)]);
    }

    #[test]
    fn the_lock_is_held_until_every_peer_acknowledged() {
        // 1 ms in, 1 ms serial, a 2 ms round trip to the peers, then 1 ms
        // of CPU per acknowledgement one after the other, 1 ms back: every
        // peer added holds the lock 1 ms longer.
        assert_eq!(answered_at(&[1], &[true], true), [(1, 6.0)]);
        assert_eq!(answered_at(&[1], &[true, true, true], true), [(1, 8.0)]);
        // Without coherency the peers are not asked.
        assert_eq!(answered_at(&[1], &[true, true, true], false), [(1, 3.0)]);
    }

    #[test]
    fn a_silent_peer_holds_the_lock_only_until_the_timeout() {
        let answered = answered_at(&[1, 2], &[true, false], true);
        let timeout_ms = ACKNOWLEDGEMENT_TIMEOUT.as_millis_f64();
        // Released at the deadline (set when the broadcast left, at 2 ms),
        // answered 1 ms later; the second order then waits its own turn.
        assert_eq!(answered[0], (1, 2.0 + timeout_ms + 1.0));
        assert_eq!(answered[1].0, 2);
        assert!(answered[1].1 > answered[0].1 + timeout_ms - 2.0, "{answered:?}");
    }
}
