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
//! it is down the requests waiting for it wait at their instances.

use super::message::{Internal, Msg};
use crate::domain::OrderId;
use sim::{Ctx, Dist, Process, ProcessId};

/// The lock holder's work tags.
const SERIAL_WORK: u64 = 0;
const ACKNOWLEDGEMENT_WORK: u64 = 1;

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

/// The batch being committed.
#[derive(Clone, Debug, Default)]
struct Batch {
    /// Its requests, in arrival order.
    requests: Vec<(ProcessId, OrderId)>,
    /// The one whose section runs now.
    current: usize,
    /// Peers whose acknowledgement of the current request's invalidation
    /// has not been processed yet.
    acknowledgements_pending: usize,
}

/// The lock holder: a single-core serialised section that commits the
/// requests waiting for it as one batch, with an optional invalidation
/// broadcast per request under the lock.
#[derive(Clone, Debug)]
pub struct SerialSection {
    config: SerialSectionConfig,
    waiting: Vec<(ProcessId, OrderId)>,
    batch: Option<Batch>,
}

impl SerialSection {
    /// A free lock with nobody waiting.
    pub fn new(config: SerialSectionConfig) -> SerialSection {
        SerialSection { config, waiting: Vec::new(), batch: None }
    }

    /// Requests waiting for the next batch.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn start_batch(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.batch.is_some() || self.waiting.is_empty() {
            return;
        }
        let requests = std::mem::take(&mut self.waiting);
        self.batch = Some(Batch { requests, current: 0, acknowledgements_pending: 0 });
        self.run_current(ctx);
    }

    fn run_current(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let serial = self.config.serial.sample(ctx.rng());
        ctx.spend_cpu(serial, SERIAL_WORK);
    }

    /// The current request's section is done: on to the next one, or
    /// commit the batch and answer all of its requests.
    fn next(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(batch) = self.batch.as_mut() else { return };
        batch.current += 1;
        if batch.current < batch.requests.len() {
            self.run_current(ctx);
            return;
        }
        let batch = self.batch.take().expect("checked above");
        for (instance, order) in batch.requests {
            ctx.send(instance, Msg::Internal(Internal::Serialized { order }));
        }
        self.start_batch(ctx);
    }

    /// The current request's serial work is done: broadcast its
    /// invalidation to the peers, or go on at once if there is none.
    fn serial_done(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(batch) = self.batch.as_mut() else { return };
        let (instance, order) = batch.requests[batch.current];
        if self.config.invalidation.is_some() {
            for peer in self.config.instances.iter().filter(|peer| **peer != instance) {
                ctx.send(*peer, Msg::Internal(Internal::Invalidate { order }));
                batch.acknowledgements_pending += 1;
            }
        }
        if batch.acknowledgements_pending == 0 {
            self.next(ctx);
        }
    }

    fn current_order(&self) -> Option<OrderId> {
        self.batch.as_ref().map(|batch| batch.requests[batch.current].1)
    }
}

impl Process<Msg> for SerialSection {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Internal(Internal::Serialize { order }) => {
                self.waiting.push((from, order));
                self.start_batch(ctx);
            }
            Msg::Internal(Internal::Invalidated { order }) => {
                let current = self.current_order() == Some(order);
                if let (true, Some(invalidation)) = (current, &self.config.invalidation) {
                    let cost = invalidation.sample(ctx.rng());
                    ctx.spend_cpu(cost, ACKNOWLEDGEMENT_WORK);
                }
            }
            _ => {}
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        match tag {
            SERIAL_WORK => self.serial_done(ctx),
            ACKNOWLEDGEMENT_WORK => {
                let Some(batch) = self.batch.as_mut() else { return };
                batch.acknowledgements_pending = batch.acknowledgements_pending.saturating_sub(1);
                if batch.acknowledgements_pending == 0 {
                    self.next(ctx);
                }
            }
            _ => {}
        }
    }
}
