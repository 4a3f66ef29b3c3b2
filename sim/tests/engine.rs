//! Fault stories and engine behaviour, told through small worlds.
//! Each test reads like the situation it checks.

use sim::trace::{DropReason, MemorySink, TraceEvent};
use sim::{
    Acquire, ClockConfig, Ctx, Dist, Fault, FaultSchedule, LinkConfig, Mailbox, Message,
    NodeConfig, NodeId, Process, ProcessId, ResourceConfig, ResourceId, Seed, Sim, SimConfig,
    SimDuration, SimTime, TimerId,
};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Hello(u64),
    Request(u64),
    Reply(u64),
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Hello(_) => "Hello",
            Msg::Request(_) => "Request",
            Msg::Reply(_) => "Reply",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Hello(n) => *n,
            Msg::Request(n) => n.wrapping_mul(3),
            Msg::Reply(n) => n.wrapping_mul(5),
        }
    }
}

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// Records everything it receives; replies to requests.
#[derive(Default)]
struct Recorder {
    received: Vec<(ProcessId, Msg)>,
    timers: Vec<u64>,
}

impl Process<Msg> for Recorder {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        if let Msg::Request(n) = message {
            ctx.send(from, Msg::Reply(n));
        }
        self.received.push((from, message));
    }
    fn on_timer(&mut self, _ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        self.timers.push(tag);
    }
}

/// Sends `Hello(i)` to `to` every 10 ms, for `count` messages.
struct Talker {
    to: ProcessId,
    sent: u64,
    count: u64,
}

impl Process<Msg> for Talker {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(ms(10), 0);
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, Msg>, _from: ProcessId, _message: Msg) {}
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, _tag: u64) {
        ctx.send(self.to, Msg::Hello(self.sent));
        self.sent += 1;
        if self.sent < self.count {
            ctx.set_timer(ms(10), 0);
        }
    }
}

fn world(nodes: u32) -> (Sim<Msg>, Vec<NodeId>) {
    let mut sim = Sim::new(SimConfig::new(Seed(1)));
    sim.set_default_link(LinkConfig::constant(ms(1)));
    let ids = (0..nodes).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
    (sim, ids)
}

#[test]
fn partition_isolates_then_heals_and_the_report_counts_what_it_dropped() {
    let (mut sim, nodes) = world(2);
    let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
    sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 10 });
    // Talker sends at 10, 20, ..., 100 ms; the partition covers 35..75 ms,
    // so the sends at 40, 50, 60 and 70 ms are dropped.
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(35),
        at_ms(75),
        Fault::Partition { side_a: vec![nodes[0]], side_b: vec![nodes[1]] },
    ));
    sim.run();
    let got: Vec<u64> = sim
        .process_state::<Recorder>(receiver)
        .unwrap()
        .received
        .iter()
        .map(|(_, m)| match m {
            Msg::Hello(n) => *n,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(got, vec![0, 1, 2, 7, 8, 9]);
    let fired = sim.fired_faults();
    assert_eq!(fired.len(), 2);
    assert!(fired[0].applied && fired[1].applied);
    assert_eq!(fired[0].touched.messages_dropped, 4);
    assert!(!sim.link(nodes[0], nodes[1]).blocked);
}

#[test]
fn a_degraded_link_counts_the_messages_it_delayed() {
    // Talker sends at 10, 20, ..., 100 ms; the link is slow from 35 to 75 ms,
    // so the sends at 40, 50, 60 and 70 ms cross it slowly, and only they
    // count as touched.
    let (mut sim, nodes) = world(2);
    let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
    sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 10 });
    let slow = LinkConfig::constant(ms(100));
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(35),
        at_ms(75),
        Fault::DegradeLink { from: nodes[0], to: nodes[1], link: slow },
    ));
    sim.run();
    let fired = sim.fired_faults();
    assert_eq!(fired[0].touched.messages_delayed, 4);
    assert!(fired[1].applied && fired[1].touched.is_nothing());
}

#[test]
fn a_oneway_partition_drops_only_one_direction() {
    let (mut sim, nodes) = world(2);
    let a = sim.spawn(nodes[0], "a", Recorder::default);
    let b = sim.spawn(nodes[1], "b", Recorder::default);
    sim.schedule_faults(
        &FaultSchedule::new()
            .at(SimTime::ZERO, Fault::PartitionOneway { from: vec![nodes[0]], to: vec![nodes[1]] }),
    );
    sim.run();
    // Injected messages do not cross the network; use a process to send.
    struct Once(ProcessId);
    impl Process<Msg> for Once {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            ctx.send(self.0, Msg::Hello(1));
        }
        fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
    }
    sim.spawn(nodes[0], "a-sender", move || Once(b));
    sim.spawn(nodes[1], "b-sender", move || Once(a));
    sim.run();
    assert!(sim.process_state::<Recorder>(b).unwrap().received.is_empty(), "n0 -> n1 is blocked");
    assert_eq!(sim.process_state::<Recorder>(a).unwrap().received.len(), 1, "n1 -> n0 flows");
}

/// Keeps a counter in memory and logs every increment; recovers the count
/// from the durable log on start. Syncs only every second increment.
#[derive(Default)]
struct Counter {
    count: u64,
    recovered: u64,
}

impl Process<Msg> for Counter {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.recovered = ctx.read_log("counter").len() as u64;
        self.count = self.recovered;
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, _message: Msg) {
        self.count += 1;
        ctx.append("counter", self.count.to_le_bytes());
        if self.count.is_multiple_of(2) {
            ctx.sync(self.count);
        }
    }
}

#[test]
fn a_crash_loses_volatile_state_and_unsynced_writes_and_restart_recovers_from_the_log() {
    let (mut sim, nodes) = world(1);
    let counter = sim.spawn(nodes[0], "counter", Counter::default);
    for i in 0..5 {
        sim.post(at_ms(i), counter, Msg::Hello(i));
    }
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(10),
        at_ms(20),
        Fault::CrashNode { node: nodes[0] },
    ));
    // A message arriving while the node is down is lost.
    sim.post(at_ms(15), counter, Msg::Hello(99));
    sim.run_until(at_ms(12));
    assert!(sim.process_state::<Counter>(counter).is_none(), "no state survives a crash");
    assert!(!sim.process(counter).alive);
    sim.run();
    let state = sim.process_state::<Counter>(counter).unwrap();
    // Five increments, synced after the 2nd and 4th: the 5th was lost.
    assert_eq!(state.recovered, 4);
    assert_eq!(sim.process(counter).incarnation, 1);
    let fired = sim.fired_faults();
    assert_eq!(fired[0].touched.writes_lost, 1);
    assert_eq!(fired[0].touched.processes_stopped, 1);
    assert_eq!(fired[0].touched.messages_dropped, 1, "the message to the down node");
    assert_eq!(fired[1].touched.processes_restarted, 1);
}

#[test]
fn crashing_a_node_that_is_already_down_fires_but_touches_nothing() {
    let (mut sim, nodes) = world(1);
    sim.spawn(nodes[0], "r", Recorder::default);
    sim.schedule_faults(
        &FaultSchedule::new()
            .at(at_ms(1), Fault::CrashNode { node: nodes[0] })
            .at(at_ms(2), Fault::CrashNode { node: nodes[0] }),
    );
    sim.run();
    let fired = sim.fired_faults();
    assert!(fired[0].applied && !fired[0].touched.is_nothing());
    assert!(!fired[1].applied && fired[1].touched.is_nothing());
}

/// Sets one timer on start and records when (locally) it fired.
struct Sleeper {
    after: SimDuration,
    fired_at: Option<i64>,
}

impl Process<Msg> for Sleeper {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(self.after, 1);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, _: u64) {
        self.fired_at = Some(ctx.now_local().as_nanos());
    }
}

#[test]
fn timers_follow_the_local_clock_through_drift_and_steps() {
    let mut sim: Sim<Msg> = Sim::new(SimConfig::new(Seed(1)));
    let fast = sim
        .add_node(NodeConfig::new("fast").clock(ClockConfig { offset_ns: 0, drift_ppm: 1000.0 }));
    let stepped = sim.add_node(NodeConfig::new("stepped"));
    let a = sim.spawn(fast, "a", || Sleeper { after: SimDuration::from_secs(10), fired_at: None });
    let b =
        sim.spawn(stepped, "b", || Sleeper { after: SimDuration::from_secs(10), fired_at: None });
    // Stepping b's clock back by 2 s at t = 1 s delays its timer by 2 s.
    sim.schedule_faults(
        &FaultSchedule::new()
            .at(at_ms(1000), Fault::StepClock { node: stepped, delta_ns: -2_000_000_000 }),
    );
    sim.run_until(SimTime::from_nanos(9_990_100_000));
    // A 1000 ppm clock runs 1.001 times as fast: its 10 s timer fires at
    // 10 s / 1.001 = 9.99001 s of global time, almost 10 ms early.
    assert_eq!(sim.process_state::<Sleeper>(a).unwrap().fired_at, Some(10_000_000_000));
    assert!(sim.process_state::<Sleeper>(b).unwrap().fired_at.is_none());
    sim.run_until(SimTime::from_nanos(11_999_999_999));
    assert!(sim.process_state::<Sleeper>(b).unwrap().fired_at.is_none());
    sim.run();
    assert_eq!(sim.now(), SimTime::from_nanos(12_000_000_000));
    assert_eq!(sim.fired_faults()[0].touched.timers_moved, 1);
}

#[test]
fn a_crash_cancels_pending_timers() {
    let (mut sim, nodes) = world(1);
    let sleeper = sim.spawn(nodes[0], "s", || Sleeper { after: ms(50), fired_at: None });
    sim.schedule_faults(&FaultSchedule::new().at(at_ms(10), Fault::CrashNode { node: nodes[0] }));
    sim.run();
    assert_eq!(sim.stats().timers_fired, 0);
    assert!(sim.process_state::<Sleeper>(sleeper).is_none());
}

/// Takes `work` of CPU per message, one message at a time.
struct Worker {
    work: SimDuration,
    done: Vec<u64>,
}

impl Process<Msg> for Worker {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _: ProcessId, message: Msg) {
        if let Msg::Hello(n) = message {
            ctx.spend_cpu(self.work, n);
        }
    }
    fn on_work_done(&mut self, _: &mut Ctx<'_, Msg>, tag: u64) {
        self.done.push(tag);
    }
}

#[test]
fn a_bounded_mailbox_drops_arrivals_when_full() {
    let (mut sim, nodes) = world(1);
    let worker = sim.spawn_with(nodes[0], "w", Mailbox::Sequential { capacity: Some(2) }, || {
        Box::new(Worker { work: ms(10), done: Vec::new() })
    });
    // Five at once: one in service, two wait, two are dropped.
    for i in 0..5 {
        sim.post(SimTime::ZERO, worker, Msg::Hello(i));
    }
    sim.run();
    assert_eq!(sim.process_state::<Worker>(worker).unwrap().done, vec![0, 1, 2]);
    assert_eq!(sim.stats().messages_dropped, 2);
    assert_eq!(sim.now(), at_ms(30), "one at a time, 10 ms each");
}

#[test]
fn cores_are_a_queueing_station() {
    let mut sim: Sim<Msg> = Sim::new(SimConfig::new(Seed(1)));
    let node = sim.add_node(NodeConfig::new("two-cores").cores(2));
    let worker = sim.spawn(node, "w", || Worker { work: ms(10), done: Vec::new() });
    for i in 0..4 {
        sim.post(SimTime::ZERO, worker, Msg::Hello(i));
    }
    sim.run_until(at_ms(5));
    let view = sim.node(node);
    assert_eq!((view.busy_cores, view.ready_queue), (2, 2));
    sim.run();
    assert_eq!(sim.now(), at_ms(20), "two waves of two");
    let view = sim.node(node);
    assert!((view.utilisation - 1.0).abs() < 1e-9, "both cores busy all along");
    // Two jobs waited 10 ms each over 20 ms: mean ready queue 1.
    assert!((view.mean_ready_queue - 1.0).abs() < 1e-9);
}

/// A blocking caller: each request takes a thread from the pool, calls the
/// backend and holds the thread until the reply comes back.
struct BlockingCaller {
    pool: ResourceId,
    backend: ProcessId,
    replies: Vec<(u64, i64)>,
    waiting: Vec<u64>,
}

impl Process<Msg> for BlockingCaller {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _: ProcessId, message: Msg) {
        match message {
            Msg::Hello(n) => match ctx.acquire(self.pool, n) {
                Acquire::Granted => ctx.send(self.backend, Msg::Request(n)),
                Acquire::Queued => self.waiting.push(n),
                Acquire::Rejected => {}
            },
            Msg::Reply(n) => {
                self.replies.push((n, ctx.now_local().as_nanos()));
                ctx.release(self.pool);
            }
            Msg::Request(_) => {}
        }
    }
    fn on_granted(&mut self, ctx: &mut Ctx<'_, Msg>, _: ResourceId, tag: u64) {
        ctx.send(self.backend, Msg::Request(tag));
    }
}

#[test]
fn a_blocking_call_holds_its_thread_until_the_reply() {
    let (mut sim, nodes) = world(2);
    let pool = sim.add_resource(
        nodes[0],
        ResourceConfig { name: "threads".into(), capacity: 2, queue_max: Some(1) },
    );
    let backend = sim.spawn(nodes[1], "backend", Recorder::default);
    let caller = sim.spawn(nodes[0], "caller", move || BlockingCaller {
        pool,
        backend,
        replies: Vec::new(),
        waiting: Vec::new(),
    });
    for i in 0..4 {
        sim.post(SimTime::ZERO, caller, Msg::Hello(i));
    }
    sim.run();
    let state = sim.process_state::<BlockingCaller>(caller).unwrap();
    // Two threads: requests 0 and 1 go at once (2 ms round trip), 2 waits
    // for a thread, 3 is rejected because the wait line holds one.
    assert_eq!(state.replies, vec![(0, 2_000_000), (1, 2_000_000), (2, 4_000_000)]);
    assert_eq!(state.waiting, vec![2]);
    let view = sim.resource(pool);
    assert_eq!((view.in_use, view.rejected), (0, 1));
}

#[test]
fn loss_and_duplication_happen_at_their_configured_rates() {
    let (mut sim, nodes) = world(2);
    sim.set_default_link(LinkConfig {
        latency: Dist::exponential(ms(5)),
        loss: 0.1,
        duplicate: 0.2,
        reorder: 0.0,
        reorder_window: SimDuration::ZERO,
    });
    let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
    sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 20_000 });
    sim.run();
    let stats = sim.stats();
    let lost = stats.messages_dropped as f64 / 20_000.0;
    let duplicated = stats.messages_duplicated as f64 / 20_000.0;
    assert!((lost - 0.1).abs() < 0.01, "loss rate {lost}");
    assert!(
        (duplicated - 0.18).abs() < 0.01,
        "duplication applies to the 90% not lost: {duplicated}"
    );
    assert_eq!(
        stats.messages_delivered,
        20_000 - stats.messages_dropped + stats.messages_duplicated
    );
}

#[test]
fn the_trace_carries_lamport_and_vector_clocks() {
    let (mut sim, nodes) = world(2);
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let server = sim.spawn(nodes[1], "server", Recorder::default);
    struct Client(ProcessId);
    impl Process<Msg> for Client {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            ctx.send(self.0, Msg::Request(7));
        }
        fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
    }
    let client = sim.spawn(nodes[0], "client", move || Client(server));
    sim.run();
    let records = &sink.borrow().records;
    let delivered_reply = records
        .iter()
        .find(|r| matches!(&r.event, TraceEvent::MessageDelivered { label: "Reply", .. }))
        .unwrap();
    let clock = delivered_reply.vector_clock.as_ref().unwrap();
    // The client's reply delivery has seen the server's send of the reply.
    assert!(clock[&server.0] >= 2 && clock[&client.0] >= 2, "{clock:?}");
    assert!(delivered_reply.lamport.unwrap() > 2);
    assert!(records.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert!(
        records.iter().all(|r| !matches!(
            r.event,
            TraceEvent::MessageDropped { reason: DropReason::Loss, .. }
        ))
    );
}

#[test]
fn the_trace_hash_does_not_depend_on_whether_a_sink_is_attached() {
    let run = |traced: bool| {
        let (mut sim, nodes) = world(2);
        if traced {
            sim.set_trace_sink(Box::new(MemorySink::default()));
        }
        let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
        sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 50 });
        sim.run();
        sim.trace_hash()
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn stepping_shows_upcoming_events_in_firing_order() {
    let (mut sim, nodes) = world(2);
    let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
    sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 2 });
    sim.schedule_faults(&FaultSchedule::new().at(at_ms(15), Fault::CrashNode { node: nodes[1] }));
    // Two start events come first, then the talker's timer, then the fault.
    let upcoming = sim.upcoming_events(10);
    let kinds: Vec<&str> = upcoming.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, vec!["start", "start", "fault"]);
    sim.step();
    sim.step();
    let upcoming = sim.upcoming_events(10);
    assert_eq!(upcoming[0].kind, "timer");
    assert_eq!(upcoming[0].time, at_ms(10));
    assert_eq!(upcoming[1].detail, "crash n1");
    sim.step();
    assert_eq!(sim.now(), at_ms(10));
    let upcoming = sim.upcoming_events(1);
    assert_eq!((upcoming[0].kind, upcoming[0].detail.as_str()), ("deliver", "Hello"));
}

#[test]
fn first_divergence_points_at_the_first_differing_record() {
    use sim::trace::first_divergence;
    let record = |label: &'static str| {
        let (mut sim, nodes) = world(2);
        let sink = Rc::new(RefCell::new(MemorySink::default()));
        sim.set_trace_sink(Box::new(sink.clone()));
        let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
        sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 3 });
        sim.run_until(at_ms(25));
        sim.post(at_ms(25), receiver, if label == "a" { Msg::Hello(1) } else { Msg::Hello(2) });
        sim.run();
        sink.borrow().records.clone()
    };
    let a = record("a");
    let b = record("b");
    assert_eq!(first_divergence(&a, &a), None);
    let index = first_divergence(&a, &b).expect("the posted messages differ");
    assert!(matches!(a[index].event, TraceEvent::MessageSent { .. }), "{:?}", a[index].event);
    assert_eq!(first_divergence(&a, &a[..a.len() - 1]), Some(a.len() - 1));
}

/// Counts messages; fails on `Hello(13)` (a poison message).
#[derive(Default)]
struct Fragile {
    seen: Vec<u64>,
}

impl Process<Msg> for Fragile {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _: ProcessId, message: Msg) {
        if let Msg::Hello(n) = message {
            if n == 13 {
                ctx.fail("poison");
                return;
            }
            self.seen.push(n);
        }
    }
}

/// Decides with a fixed answer for every failure, and counts them.
struct Parent {
    decision: &'static str,
    failures: Vec<(ProcessId, &'static str)>,
}

impl Process<Msg> for Parent {
    fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
    fn on_child_failed(&mut self, ctx: &mut Ctx<'_, Msg>, child: ProcessId, reason: &'static str) {
        self.failures.push((child, reason));
        match self.decision {
            "resume" => ctx.resume(child),
            "restart" => ctx.restart(child),
            "stop" => ctx.stop(child),
            _ => ctx.fail("escalated"),
        }
    }
}

fn supervised(decision: &'static str) -> Sim<Msg> {
    let (mut sim, nodes) = world(1);
    let child = sim.spawn(nodes[0], "child", Fragile::default);
    let parent = sim.spawn(nodes[0], "parent", move || Parent { decision, failures: Vec::new() });
    sim.supervise(child, parent);
    for (i, n) in [1, 2, 13, 3, 4].into_iter().enumerate() {
        sim.post(at_ms(i as u64), child, Msg::Hello(n));
    }
    sim.run();
    sim
}

#[test]
fn a_supervisor_that_resumes_keeps_the_child_state() {
    let sim = supervised("resume");
    assert_eq!(sim.process_state::<Fragile>(ProcessId(0)).unwrap().seen, vec![1, 2, 3, 4]);
    assert_eq!(
        sim.process_state::<Parent>(ProcessId(1)).unwrap().failures,
        vec![(ProcessId(0), "poison")]
    );
}

#[test]
fn a_supervisor_that_restarts_gives_the_child_fresh_state() {
    let sim = supervised("restart");
    assert_eq!(sim.process_state::<Fragile>(ProcessId(0)).unwrap().seen, vec![3, 4]);
    assert_eq!(sim.process(ProcessId(0)).incarnation, 1);
}

#[test]
fn a_stopped_child_turns_later_messages_into_dead_letters() {
    let sim = supervised("stop");
    assert!(sim.process_state::<Fragile>(ProcessId(0)).is_none());
    let dead: Vec<u64> = sim.dead_letters().iter().map(|letter| letter.message_id).collect();
    assert_eq!(dead.len(), 2, "Hello(3) and Hello(4)");
    assert_eq!(sim.stats().dead_letters, 2);
}

#[test]
fn escalation_fails_the_supervisor_which_with_no_parent_is_stopped() {
    let sim = supervised("escalate");
    assert_eq!(sim.process(ProcessId(1)).status, sim::ProcessStatus::Stopped);
    // The child's fate was never decided, and then its supervisor was
    // gone: it stays suspended, and its mail waits.
    assert_eq!(sim.process(ProcessId(0)).status, sim::ProcessStatus::Suspended);
    assert_eq!(sim.process(ProcessId(0)).mailbox_len, 2);
}

#[test]
fn messages_that_arrive_while_suspended_are_handled_in_order_after_resume() {
    // The parent is remote-free but slow to decide: it sleeps 5 ms before
    // resuming, while two more messages arrive.
    struct SlowParent;
    impl Process<Msg> for SlowParent {
        fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
        fn on_child_failed(&mut self, ctx: &mut Ctx<'_, Msg>, child: ProcessId, _: &'static str) {
            ctx.set_timer(ms(5), u64::from(child.0));
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, tag: u64) {
            ctx.resume(ProcessId(tag as u32));
        }
    }
    let (mut sim, nodes) = world(1);
    let child = sim.spawn(nodes[0], "child", Fragile::default);
    let parent = sim.spawn(nodes[0], "parent", || SlowParent);
    sim.supervise(child, parent);
    for (i, n) in [13, 7, 8].into_iter().enumerate() {
        sim.post(at_ms(i as u64), child, Msg::Hello(n));
    }
    sim.post(at_ms(10), child, Msg::Hello(9));
    sim.run_until(at_ms(4));
    assert_eq!(sim.process(child).status, sim::ProcessStatus::Suspended);
    assert_eq!(sim.process(child).mailbox_len, 2);
    sim.run();
    assert_eq!(sim.process_state::<Fragile>(child).unwrap().seen, vec![7, 8, 9]);
}

#[test]
fn a_resumed_process_is_told_and_gets_the_timers_that_came_due_while_suspended() {
    // The child sets a 2 ms timer, then fails at 1 ms; its supervisor
    // resumes it at 5 ms. The timer came due at 2 ms, while suspended.
    #[derive(Default)]
    struct Napper {
        resumed: bool,
        fired: Vec<i64>,
    }
    impl Process<Msg> for Napper {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            ctx.set_timer(ms(2), 7);
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {
            ctx.fail("tired");
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, _: u64) {
            assert!(self.resumed, "on_resumed comes before deferred timers");
            self.fired.push(ctx.now_local().as_nanos());
        }
        fn on_resumed(&mut self, _: &mut Ctx<'_, Msg>) {
            self.resumed = true;
        }
    }
    struct LateParent;
    impl Process<Msg> for LateParent {
        fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
        fn on_child_failed(&mut self, ctx: &mut Ctx<'_, Msg>, child: ProcessId, _: &'static str) {
            ctx.set_timer(ms(4), u64::from(child.0));
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, tag: u64) {
            ctx.resume(ProcessId(tag as u32));
        }
    }
    let (mut sim, nodes) = world(1);
    let child = sim.spawn(nodes[0], "child", Napper::default);
    let parent = sim.spawn(nodes[0], "parent", || LateParent);
    sim.supervise(child, parent);
    sim.post(at_ms(1), child, Msg::Hello(0));
    sim.run();
    let napper = sim.process_state::<Napper>(child).unwrap();
    assert!(napper.resumed);
    assert_eq!(napper.fired, vec![5_000_000], "fired on resume at 5 ms, not lost");
}

#[test]
fn a_degraded_link_reports_the_messages_it_delayed_and_lost() {
    // Talker sends every 10 ms for 1 s over a link that a fault makes slow
    // and 50% lossy from 0 to 2 s: every message is charged to the fault.
    let (mut sim, nodes) = world(2);
    let receiver = sim.spawn(nodes[1], "receiver", Recorder::default);
    sim.spawn(nodes[0], "talker", move || Talker { to: receiver, sent: 0, count: 100 });
    let mut link = LinkConfig::constant(ms(20));
    link.loss = 0.5;
    sim.schedule_faults(&FaultSchedule::new().window(
        SimTime::ZERO,
        at_ms(2_000),
        Fault::DegradeLink { from: nodes[0], to: nodes[1], link },
    ));
    sim.run();
    let touched = sim.fired_faults()[0].touched;
    assert_eq!(touched.messages_delayed + touched.messages_dropped, 100, "{touched:?}");
    assert!(touched.messages_dropped > 30 && touched.messages_delayed > 30, "{touched:?}");
    assert_eq!(touched.messages_dropped, sim.stats().messages_dropped);
}
