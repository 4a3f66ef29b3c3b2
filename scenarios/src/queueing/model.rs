//! The processes of a queueing run: a source, K stations and a sink, each a
//! process on its own node, passing customers as messages.
//!
//! Only the stations use the engine's station primitive: a customer's
//! service is CPU work ([`Ctx::spend_cpu`]) on a node whose cores are the
//! servers, so waiting happens in the node's ready queue, exactly as it will
//! for the order system's services. The source and the sink spend no CPU.

use super::BATCHES;
use sim::{Ctx, Dist, LocalTime, Message, Process, ProcessId, SimDuration, Stream, TimerId};

/// One customer on its way through the tandem.
#[derive(Clone, Debug)]
pub(super) struct Customer {
    /// Its number in arrival order, from 0.
    pub(super) id: u64,
    /// When it reached the first station, on that station's clock. Clocks
    /// are perfect in this model, so every node reads the same time and the
    /// sink may subtract this from its own reading.
    pub(super) entered: LocalTime,
    /// The service it has received so far, summed over stations.
    pub(super) service: SimDuration,
}

impl Message for Customer {
    fn label(&self) -> &'static str {
        "Customer"
    }

    fn digest(&self) -> u64 {
        // FNV-1a over the three words: stable and independent of `std`'s
        // hashers, as the trace hash requires.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for word in [self.id, self.entered.as_nanos() as u64, self.service.as_nanos()] {
            hash ^= word;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
}

/// How the source spaces its customers.
#[derive(Clone, Debug)]
pub(super) enum Interarrival {
    /// Exponential gaps (a Poisson process), drawn from the source's
    /// `Purpose::Workload` stream.
    Poisson { gap: Dist },
    /// Customer `i` (from 0) arrives at `round((i + 1) · spacing)` ns, so
    /// rounding never accumulates over a long run.
    Deterministic { spacing_ns: f64 },
}

/// Sends `customers` customers to the first station, one per timer.
pub(super) struct Source {
    pub(super) first_station: ProcessId,
    pub(super) interarrival: Interarrival,
    /// The `Purpose::Workload` stream; deterministic arrivals draw nothing.
    pub(super) stream: Stream,
    pub(super) customers: u64,
    pub(super) sent: u64,
}

impl Source {
    /// The gap from the previous arrival (or from the start) to arrival
    /// number `index`.
    fn gap_before(&mut self, index: u64) -> SimDuration {
        match &mut self.interarrival {
            Interarrival::Poisson { gap } => gap.sample(&mut self.stream),
            Interarrival::Deterministic { spacing_ns } => {
                let at = |i: u64| SimDuration::from_nanos_f64(i as f64 * *spacing_ns).as_nanos();
                SimDuration::from_nanos(at(index + 1) - at(index))
            }
        }
    }
}

impl Process<Customer> for Source {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Customer>) {
        if self.customers > 0 {
            let gap = self.gap_before(0);
            ctx.set_timer(gap, 0);
        }
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Customer>, _from: ProcessId, _message: Customer) {
        unreachable!("nothing sends to the source");
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Customer>, _timer: TimerId, _tag: u64) {
        let customer = Customer {
            id: self.sent,
            // Stamped by the first station on arrival.
            entered: LocalTime(0),
            service: SimDuration::ZERO,
        };
        ctx.send(self.first_station, customer);
        self.sent += 1;
        if self.sent < self.customers {
            let gap = self.gap_before(self.sent);
            ctx.set_timer(gap, self.sent);
        }
    }
}

/// A queueing station: serves each customer with CPU work on its node and
/// passes it on when the work is done.
pub(super) struct Station {
    pub(super) next: ProcessId,
    /// The first station stamps each customer's arrival time.
    pub(super) first: bool,
    /// Service times, drawn from this process's own stream
    /// (`Purpose::Process(id)`), so each station's service times are
    /// independent of the arrivals and of every other station.
    pub(super) service: Dist,
    /// Customers waiting or in service, indexed by the work tag.
    pub(super) present: Vec<Option<Customer>>,
    /// Free slots of `present`, reused so the table stays as small as the
    /// largest number present at once.
    pub(super) free: Vec<u64>,
}

impl Process<Customer> for Station {
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, Customer>,
        _from: ProcessId,
        mut customer: Customer,
    ) {
        if self.first {
            customer.entered = ctx.now_local();
        }
        let service = self.service.sample(ctx.rng());
        customer.service = customer.service + service;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.present[slot as usize] = Some(customer);
                slot
            }
            None => {
                self.present.push(Some(customer));
                (self.present.len() - 1) as u64
            }
        };
        // Waits in the node's ready queue while all cores (servers) are busy.
        ctx.spend_cpu(service, slot);
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Customer>, tag: u64) {
        let customer = self.present[tag as usize].take().expect("work done for a customer present");
        self.free.push(tag);
        ctx.send(self.next, customer);
    }
}

/// Records every customer leaving the last station. Sums are kept in integer
/// nanoseconds (exact), per batch of completions, so memory does not grow
/// with the number of customers.
pub(super) struct Sink {
    /// Completions discarded as warm-up.
    pub(super) warmup: u64,
    /// Completions per batch after the warm-up.
    pub(super) batch_size: u64,
    pub(super) completed: u64,
    pub(super) time_in_system_ns: u128,
    pub(super) wait_ns: u128,
    pub(super) batch_time_in_system_ns: [u128; BATCHES],
    pub(super) batch_wait_ns: [u128; BATCHES],
}

impl Sink {
    pub(super) fn new(warmup: u64, batch_size: u64) -> Sink {
        assert!(batch_size > 0, "a batch needs at least one customer");
        Sink {
            warmup,
            batch_size,
            completed: 0,
            time_in_system_ns: 0,
            wait_ns: 0,
            batch_time_in_system_ns: [0; BATCHES],
            batch_wait_ns: [0; BATCHES],
        }
    }

    /// Completions counted in the statistics (after the warm-up).
    pub(super) fn measured(&self) -> u64 {
        self.completed.saturating_sub(self.warmup)
    }
}

impl Process<Customer> for Sink {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Customer>, _from: ProcessId, customer: Customer) {
        let index = self.completed;
        self.completed += 1;
        if index < self.warmup {
            return;
        }
        let now = ctx.now_local().as_nanos();
        let time_in_system = u64::try_from(now - customer.entered.as_nanos())
            .expect("a customer leaves after it arrived");
        let wait = time_in_system
            .checked_sub(customer.service.as_nanos())
            .expect("time in system includes the service received");
        self.time_in_system_ns += u128::from(time_in_system);
        self.wait_ns += u128::from(wait);
        let batch = ((index - self.warmup) / self.batch_size) as usize;
        // The few completions past the last full batch count in the means
        // but in no batch.
        if batch < BATCHES {
            self.batch_time_in_system_ns[batch] += u128::from(time_in_system);
            self.batch_wait_ns[batch] += u128::from(wait);
        }
    }
}
