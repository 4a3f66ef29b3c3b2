use super::*;
use crate::ids::{ProcessId, TimerId};
use crate::net::LinkConfig;
use crate::process::Process;
use crate::rng::Seed;
use crate::time::{SimDuration, SimTime};
use crate::trace::{MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

fn bulkhead(max_concurrent: u32, max_waiting: u32) -> Bulkhead {
    Bulkhead::new(BulkheadConfig { max_concurrent, max_waiting }).unwrap()
}

#[test]
fn a_bulkhead_needs_room_for_at_least_one_call() {
    // Goal: max_concurrent 0 is rejected naming the field; no waiting room
    // is fine (it rejects at once when full).
    let error = Bulkhead::new(BulkheadConfig { max_concurrent: 0, max_waiting: 5 }).unwrap_err();
    assert_eq!(error.field, "bulkhead.max_concurrent");
    assert_eq!(error.to_string(), "bulkhead.max_concurrent = 0: expected at least 1");
    assert!(Bulkhead::new(BulkheadConfig { max_concurrent: 1, max_waiting: 0 }).is_ok());
}

#[test]
fn waiting_calls_are_admitted_in_arrival_order_and_can_withdraw() {
    // Goal: the line is first-come first-served, a withdrawn call leaves
    // it, and exits of unknown calls change nothing.
    let mut bulkhead = bulkhead(1, 3);
    assert_eq!(bulkhead.try_enter(10), Entry::Admitted);
    for call in [11, 12, 13] {
        assert_eq!(bulkhead.try_enter(call), Entry::Queued);
    }
    assert_eq!(bulkhead.try_enter(14), Entry::Rejected);
    assert!(bulkhead.on_withdraw(12));
    assert!(!bulkhead.on_withdraw(12));
    assert_eq!(bulkhead.on_exit(99), None);
    assert_eq!(bulkhead.on_exit(10), Some(11));
    assert_eq!(bulkhead.on_exit(11), Some(13));
    assert_eq!(bulkhead.on_exit(13), None);
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}

#[derive(Clone, Debug)]
enum Op {
    /// A new call asks to enter.
    Enter,
    /// The in-flight call at this position (modulo their number) is done,
    /// or an unknown call if none is in flight.
    Exit(usize),
    /// The waiting call at this position gives up.
    Withdraw(usize),
}

proptest! {
    /// Law: whatever the sequence of enters, exits and withdrawals, calls
    /// in flight never exceed `max_concurrent` and waiting calls never
    /// exceed `max_waiting`; and, against a reference model, a call is
    /// admitted exactly when there is room, queued exactly when there is
    /// none but the line has room, no call waits while there is room, and
    /// waiting calls are admitted in arrival order.
    #[test]
    fn in_flight_never_exceeds_max_concurrent_and_waiting_never_exceeds_max_waiting(
        max_concurrent in 1u32..6,
        max_waiting in 0u32..6,
        ops in prop::collection::vec(
            prop_oneof![
                3 => Just(Op::Enter),
                2 => any::<usize>().prop_map(Op::Exit),
                1 => any::<usize>().prop_map(Op::Withdraw),
            ],
            1..300,
        ),
    ) {
        let mut bulkhead = bulkhead(max_concurrent, max_waiting);
        let mut in_flight: Vec<u64> = Vec::new();
        let mut waiting: Vec<u64> = Vec::new();
        let mut next_call = 0u64;
        for op in ops {
            match op {
                Op::Enter => {
                    let call = next_call;
                    next_call += 1;
                    let expected = if in_flight.len() < max_concurrent as usize {
                        in_flight.push(call);
                        Entry::Admitted
                    } else if waiting.len() < max_waiting as usize {
                        waiting.push(call);
                        Entry::Queued
                    } else {
                        Entry::Rejected
                    };
                    prop_assert_eq!(bulkhead.try_enter(call), expected);
                }
                Op::Exit(pick) => {
                    if in_flight.is_empty() {
                        prop_assert_eq!(bulkhead.on_exit(u64::MAX), None);
                        continue;
                    }
                    let call = in_flight.remove(pick % in_flight.len());
                    let expected = (!waiting.is_empty()).then(|| waiting.remove(0));
                    in_flight.extend(expected);
                    prop_assert_eq!(bulkhead.on_exit(call), expected);
                }
                Op::Withdraw(pick) => {
                    if waiting.is_empty() {
                        continue;
                    }
                    let call = waiting.remove(pick % waiting.len());
                    prop_assert!(bulkhead.on_withdraw(call));
                }
            }
            prop_assert!(bulkhead.in_flight() <= max_concurrent);
            prop_assert!(bulkhead.waiting() <= max_waiting);
            prop_assert_eq!(bulkhead.in_flight() as usize, in_flight.len());
            prop_assert_eq!(bulkhead.waiting() as usize, waiting.len());
            if bulkhead.waiting() > 0 {
                prop_assert_eq!(bulkhead.in_flight(), max_concurrent, "a call waits while there is room");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// In a simulation: lesson 7, shipping slowed to 3 s

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    CheckStock { call: u64 },
    StockChecked { call: u64 },
    ShipProducts { call: u64 },
    ProductsShipped { call: u64 },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::CheckStock { .. } => "CheckStock",
            Msg::StockChecked { .. } => "StockChecked",
            Msg::ShipProducts { .. } => "ShipProducts",
            Msg::ProductsShipped { .. } => "ProductsShipped",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::CheckStock { call }
            | Msg::StockChecked { call }
            | Msg::ShipProducts { call }
            | Msg::ProductsShipped { call } => *call,
        }
    }
}

/// Answers each request after `service_time`, many at once (non-blocking).
struct Service {
    service_time: SimDuration,
    requests: BTreeMap<TimerId, (ProcessId, Msg)>,
}

impl Process<Msg> for Service {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        let reply = match message {
            Msg::CheckStock { call } => Msg::StockChecked { call },
            Msg::ShipProducts { call } => Msg::ProductsShipped { call },
            _ => return,
        };
        let timer = ctx.set_timer(self.service_time, 0);
        self.requests.insert(timer, (from, reply));
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
        let (to, reply) = self.requests.remove(&timer).expect("one reply per timer");
        ctx.send(to, reply);
    }
}

const TICK: u64 = u64::MAX;
const QUEUE_TIMEOUT: SimDuration = SimDuration::from_secs(1);
const INVENTORY: usize = 0;
const SHIPPING: usize = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    sent: u64,
    succeeded: u64,
    rejected: u64,
    timed_out: u64,
}

/// Orders: every 50 ms a stock check and a shipment (20 per second each),
/// each through the bulkhead of its dependency (the same one for both in
/// the shared variant). A queued call gives up after 1 s.
struct Orders {
    inventory: ProcessId,
    shipping: ProcessId,
    /// Per dependency, an index into `bulkheads`.
    bulkhead_of: [usize; 2],
    bulkheads: Vec<Bulkhead>,
    /// Calls admitted or waiting: (dependency, queue timer if waiting).
    calls: BTreeMap<u64, (usize, Option<TimerId>)>,
    next_call: u64,
    tallies: [Tally; 2],
}

impl Orders {
    fn start_call(&mut self, ctx: &mut Ctx<'_, Msg>, dependency: usize) {
        let call = self.next_call;
        self.next_call += 1;
        self.tallies[dependency].sent += 1;
        match self.bulkheads[self.bulkhead_of[dependency]].enter(ctx, call) {
            Entry::Admitted => {
                self.calls.insert(call, (dependency, None));
                self.send(ctx, call, dependency);
            }
            Entry::Queued => {
                let timer = ctx.set_timer(QUEUE_TIMEOUT, call);
                self.calls.insert(call, (dependency, Some(timer)));
            }
            // The fallback: answer "try later" at once.
            Entry::Rejected => self.tallies[dependency].rejected += 1,
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>, call: u64, dependency: usize) {
        if dependency == SHIPPING {
            ctx.send(self.shipping, Msg::ShipProducts { call });
        } else {
            ctx.send(self.inventory, Msg::CheckStock { call });
        }
    }

    fn finish_call(&mut self, ctx: &mut Ctx<'_, Msg>, call: u64) {
        let (dependency, _) = self.calls.remove(&call).expect("a reply to a call in flight");
        self.tallies[dependency].succeeded += 1;
        let bulkhead = self.bulkhead_of[dependency];
        if let Some(next) = self.bulkheads[bulkhead].exit(ctx, call) {
            let (next_dependency, timer) = self.calls.get_mut(&next).expect("a waiting call");
            let next_dependency = *next_dependency;
            ctx.cancel_timer(timer.take().expect("a waiting call has a queue timer"));
            self.send(ctx, next, next_dependency);
        }
    }
}

impl Process<Msg> for Orders {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(SimDuration::from_millis(50), TICK);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        match message {
            Msg::StockChecked { call } | Msg::ProductsShipped { call } => {
                self.finish_call(ctx, call)
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if tag == TICK {
            if ctx.now_local().as_nanos() < SimDuration::from_secs(60).as_nanos() as i64 {
                ctx.set_timer(SimDuration::from_millis(50), TICK);
            }
            self.start_call(ctx, SHIPPING);
            self.start_call(ctx, INVENTORY);
            return;
        }
        // A queued call waited too long.
        let (dependency, _) = self.calls.remove(&tag).expect("queue timers are cancelled");
        assert!(self.bulkheads[self.bulkhead_of[dependency]].withdraw(ctx, tag));
        self.tallies[dependency].timed_out += 1;
    }
}

struct Run {
    tallies: [Tally; 2],
    rejected_by_bulkhead: BTreeMap<u64, u64>,
    peak_in_flight: BTreeMap<u64, i64>,
}

/// Runs 60 s of orders against inventory (10 ms) and shipping (3 s, the
/// slowed dependency). `shared`: one bulkhead of 30 with a line of 100 for
/// both (a shared thread pool); otherwise 10 each, rejecting when full.
fn run_orders(shared: bool) -> Run {
    let mut sim = Sim::new(SimConfig::new(Seed(7)));
    let trace = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(trace.clone()));
    sim.set_default_link(LinkConfig::constant(SimDuration::from_millis(2)));
    let orders_node = sim.add_node(NodeConfig::new("orders"));
    let inventory_node = sim.add_node(NodeConfig::new("inventory"));
    let shipping_node = sim.add_node(NodeConfig::new("shipping"));
    let inventory = sim.spawn(inventory_node, "inventory", || Service {
        service_time: SimDuration::from_millis(10),
        requests: BTreeMap::new(),
    });
    let shipping = sim.spawn(shipping_node, "shipping", || Service {
        service_time: SimDuration::from_secs(3),
        requests: BTreeMap::new(),
    });
    let orders = sim.spawn(orders_node, "orders", move || {
        let (bulkhead_of, bulkheads) = if shared {
            ([0, 0], vec![bulkhead(30, 100).with_key(0)])
        } else {
            ([0, 1], vec![bulkhead(10, 0).with_key(0), bulkhead(10, 0).with_key(1)])
        };
        Orders {
            inventory,
            shipping,
            bulkhead_of,
            bulkheads,
            calls: BTreeMap::new(),
            next_call: 0,
            tallies: [Tally::default(); 2],
        }
    });
    sim.run_until(SimTime::from_nanos(SimDuration::from_secs(60).as_nanos()));
    let tallies = sim.process_state::<Orders>(orders).unwrap().tallies;
    let mut rejected_by_bulkhead = BTreeMap::new();
    let mut peak_in_flight = BTreeMap::new();
    for record in &trace.borrow().records {
        if let TraceEvent::Component { component: Component::Bulkhead, kind, key, value, .. } =
            record.event
        {
            if kind == "rejected" {
                *rejected_by_bulkhead.entry(key).or_default() += 1;
            }
            if kind == "admitted" {
                let peak = peak_in_flight.entry(key).or_insert(0);
                *peak = value.max(*peak);
            }
        }
    }
    Run { tallies, rejected_by_bulkhead, peak_in_flight }
}

#[test]
fn a_slow_dependency_fills_only_its_own_bulkhead_and_its_excess_calls_are_rejected_at_once() {
    // Goal: lesson 7's shape. With a bulkhead of 10 per dependency, shipping
    // (3 s per call) is capped at 10 / 3 s ≈ 3.3 calls per second and the
    // rest are rejected at once, while every stock check succeeds. With one
    // shared bulkhead of 30 and a line of 100, shipping calls take every
    // place and fill the line, and stock checks collapse.
    let separate = run_orders(false);
    let [inventory, shipping] = separate.tallies;
    assert_eq!(inventory.sent, 1_200);
    assert_eq!(inventory.succeeded, 1_199, "all but the call still in flight at 60 s");
    assert_eq!(inventory.rejected, 0);
    // Each place turns over every 3.05 s (3 s of service, a 4 ms round
    // trip, and the wait for the next 50 ms tick): 10 × 19 calls in 60 s,
    // 3.17 per second, within 10% of the lesson's 10 / 3 s ≈ 3.3.
    assert_eq!(shipping.succeeded, 190);
    let throughput_per_s = shipping.succeeded as f64 / 60.0;
    assert!((3.0..3.67).contains(&throughput_per_s), "shipping ran {throughput_per_s}/s");
    assert_eq!(shipping.rejected + shipping.succeeded + 10, shipping.sent);
    assert_eq!(separate.rejected_by_bulkhead.get(&1), Some(&shipping.rejected));
    assert_eq!(separate.rejected_by_bulkhead.get(&0), None);
    assert_eq!(separate.peak_in_flight.get(&1), Some(&10));

    let shared = run_orders(true);
    let [inventory, shipping] = shared.tallies;
    // Shipping calls hold the 30 places for 3 s each; a stock check that
    // finds them taken queues behind shipping calls and gives up after 1 s.
    assert_eq!(inventory.succeeded, 29);
    assert_eq!(inventory.timed_out, 1_151);
    let success_percent = inventory.succeeded * 100 / inventory.sent;
    assert!(success_percent < 20, "stock checks succeeded {success_percent}% with a shared pool");
    assert_eq!(shipping.succeeded, 570);
    assert_eq!(shared.peak_in_flight.get(&0), Some(&30));
}
