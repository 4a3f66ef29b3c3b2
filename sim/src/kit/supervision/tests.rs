use super::Strategy;
use super::*;
use crate::rng::Seed;
use crate::time::SimTime;
use crate::trace::{TraceEvent, TraceRecord, TraceSink};
use crate::world::{NodeConfig, ProcessStatus, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Work(u64),
    Fail(&'static str),
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Work(_) => "Work",
            Msg::Fail(_) => "Fail",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Work(n) => *n,
            Msg::Fail(reason) => reason.len() as u64,
        }
    }
}

/// Remembers its work (its in-memory state); fails when told to.
#[derive(Default)]
struct Worker {
    seen: Vec<u64>,
}

impl Process<Msg> for Worker {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _: ProcessId, message: Msg) {
        match message {
            Msg::Work(n) => self.seen.push(n),
            Msg::Fail(reason) => ctx.fail(reason),
        }
    }
}

/// Fails as soon as it starts: a crash loop.
struct CrashOnStart;

impl Process<Msg> for CrashOnStart {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.fail("boot failed");
    }
    fn on_message(&mut self, _: &mut Ctx<'_, Msg>, _: ProcessId, _: Msg) {}
}

/// What the trace showed: supervisor decisions and process starts.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Decided { at: SimTime, by: ProcessId, kind: &'static str, child: u64, value: i64 },
    Started { at: SimTime, process: ProcessId, incarnation: u32 },
}

#[derive(Clone, Default)]
struct Events(Rc<RefCell<Vec<Seen>>>);

impl TraceSink for Events {
    fn record(&mut self, record: &TraceRecord<'_>) {
        let at = record.time;
        let seen = match record.event {
            TraceEvent::Component {
                process,
                component: Component::Supervisor,
                kind,
                key,
                value,
            } => Seen::Decided { at, by: *process, kind, child: *key, value: *value },
            TraceEvent::ProcessStarted { process, incarnation } => {
                Seen::Started { at, process: *process, incarnation: *incarnation }
            }
            _ => return,
        };
        self.0.borrow_mut().push(seen);
    }
}

impl Events {
    /// (child, value) of each decision of `kind`.
    fn decided(&self, kind: &str) -> Vec<(u64, i64)> {
        self.0
            .borrow()
            .iter()
            .filter_map(|seen| match seen {
                Seen::Decided { kind: k, child, value, .. } if *k == kind => Some((*child, *value)),
                _ => None,
            })
            .collect()
    }

    /// (time, kind) of every decision, in order.
    fn decisions(&self) -> Vec<(SimTime, &'static str)> {
        self.0
            .borrow()
            .iter()
            .filter_map(|seen| match seen {
                Seen::Decided { at, kind, .. } => Some((*at, *kind)),
                Seen::Started { .. } => None,
            })
            .collect()
    }

    /// Processes started again (incarnation above 0), in order.
    fn restarts(&self) -> Vec<(SimTime, ProcessId)> {
        self.0
            .borrow()
            .iter()
            .filter_map(|seen| match seen {
                Seen::Started { at, process, incarnation } if *incarnation > 0 => {
                    Some((*at, *process))
                }
                _ => None,
            })
            .collect()
    }
}

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

fn local_secs(secs: i64) -> LocalTime {
    LocalTime(secs * 1_000_000_000)
}

/// A supervisor over `count` workers on one node.
struct Tree {
    sim: Sim<Msg>,
    supervisor: ProcessId,
    children: Vec<ProcessId>,
    events: Events,
}

fn tree(count: usize, configure: impl FnOnce(&mut SupervisorConfig)) -> Tree {
    let mut sim = Sim::new(SimConfig::new(Seed(6)));
    let events = Events::default();
    sim.set_trace_sink(Box::new(events.clone()));
    let node = sim.add_node(NodeConfig::new("n0"));
    let children: Vec<ProcessId> =
        (0..count).map(|i| sim.spawn(node, format!("child{i}"), Worker::default)).collect();
    let mut config = SupervisorConfig::new(children.clone(), Strategy::OneForOne);
    configure(&mut config);
    let supervisor = Supervisor::<Msg>::new(config).unwrap();
    let supervisor = sim.spawn(node, "supervisor", supervisor.factory());
    for child in &children {
        sim.supervise(*child, supervisor);
    }
    Tree { sim, supervisor, children, events }
}

impl Tree {
    fn seen(&self, child: usize) -> Vec<u64> {
        self.sim.process_state::<Worker>(self.children[child]).unwrap().seen.clone()
    }
    fn incarnations(&self) -> Vec<u32> {
        self.children.iter().map(|child| self.sim.process(*child).incarnation).collect()
    }
    /// Work(1) to every child, then `child` fails with `reason`, then
    /// Work(2) to every child.
    fn fail_between_work(&mut self, child: usize, reason: &'static str) {
        for target in self.children.clone() {
            self.sim.post(at_ms(1), target, Msg::Work(1));
            self.sim.post(at_ms(3), target, Msg::Work(2));
        }
        self.sim.post(at_ms(2), self.children[child], Msg::Fail(reason));
        self.sim.run();
    }
}

// ----- the pure parts -----

#[test]
fn strategies_pick_the_failed_child_all_or_the_rest_in_order() {
    // Goal: each strategy's affected set, and an unknown child affects itself only.
    let children = [ProcessId(3), ProcessId(1), ProcessId(7)];
    let affected =
        |strategy: Strategy, failed: u32| strategy.affected(&children, ProcessId(failed));
    assert_eq!(affected(Strategy::OneForOne, 1), vec![ProcessId(1)]);
    assert_eq!(affected(Strategy::AllForOne, 1), children.to_vec());
    assert_eq!(affected(Strategy::RestForOne, 1), vec![ProcessId(1), ProcessId(7)]);
    assert_eq!(affected(Strategy::RestForOne, 3), children.to_vec());
    assert_eq!(affected(Strategy::AllForOne, 9), vec![ProcessId(9)]);
}

#[test]
fn the_decider_uses_the_first_matching_rule_else_the_default() {
    // Goal: exact reason match wins, anything else takes the default.
    let decider = Decider::new(Directive::Escalate)
        .rule("poison", Directive::Stop)
        .rule("connection reset", Directive::Restart);
    assert_eq!(decider.decide("poison"), Directive::Stop);
    assert_eq!(decider.decide("connection reset"), Directive::Restart);
    assert_eq!(decider.decide("poison pill"), Directive::Escalate);
}

#[test]
fn strategies_and_directives_parse_from_their_names_and_unknown_names_name_the_field() {
    // Goal: FromStr round-trips the documented names; others are errors naming the field.
    for strategy in [Strategy::OneForOne, Strategy::AllForOne, Strategy::RestForOne] {
        assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
    }
    for directive in [Directive::Resume, Directive::Restart, Directive::Stop, Directive::Escalate] {
        assert_eq!(directive.to_string().parse::<Directive>(), Ok(directive));
    }
    let error = "one_for_all".parse::<Strategy>().unwrap_err();
    assert_eq!(error.field, "supervisor.strategy");
    assert!(error.to_string().contains("one_for_all"));
    assert_eq!("reboot".parse::<Directive>().unwrap_err().field, "supervisor.directive");
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    // Goal: every bad value fails Supervisor::new with its field.
    let field = |configure: &dyn Fn(&mut SupervisorConfig)| {
        let mut config =
            SupervisorConfig::new(vec![ProcessId(0), ProcessId(1)], Strategy::AllForOne);
        configure(&mut config);
        Supervisor::<Msg>::new(config).map(drop).unwrap_err().field
    };
    let limit = |restarts_max, within| Some(RestartLimit { restarts_max, within });
    let backoff =
        |delay_min, delay_max, reset_after| Some(Backoff { delay_min, delay_max, reset_after });
    assert_eq!(field(&|c| c.children.clear()), "supervisor.children");
    assert_eq!(field(&|c| c.children.push(ProcessId(0))), "supervisor.children");
    assert_eq!(
        field(&|c| c.restart_limit = limit(0, ms(10_000))),
        "supervisor.restart_limit.restarts_max"
    );
    assert_eq!(
        field(&|c| c.restart_limit = limit(3, SimDuration::ZERO)),
        "supervisor.restart_limit.within"
    );
    assert_eq!(
        field(&|c| c.backoff = backoff(ms(500), ms(100), ms(1))),
        "supervisor.backoff.delay_min"
    );
    assert_eq!(
        field(&|c| c.backoff = backoff(SimDuration::ZERO, ms(100), ms(1))),
        "supervisor.backoff.delay_min"
    );
    assert_eq!(
        field(&|c| c.backoff = backoff(ms(1), ms(100), SimDuration::ZERO)),
        "supervisor.backoff.reset_after"
    );
    assert_eq!(
        field(&|c| {
            c.decider = Decider::new(Directive::Stop)
                .rule("x", Directive::Resume)
                .rule("x", Directive::Restart)
        }),
        "supervisor.decider"
    );
    let mut good = SupervisorConfig::new(vec![ProcessId(0)], Strategy::RestForOne);
    good.restart_limit = limit(3, ms(10_000));
    good.backoff = backoff(ms(100), ms(100), ms(1_000));
    assert!(Supervisor::<Msg>::new(good).is_ok());
}

#[test]
fn a_backoff_streak_starts_over_after_a_quiet_period() {
    // Goal: delays double while failures come close together, and reset after reset_after.
    let child = ProcessId(0);
    let mut config = SupervisorConfig::new(vec![child], Strategy::OneForOne);
    config.backoff =
        Some(Backoff { delay_min: ms(100), delay_max: ms(1_000), reset_after: ms(5_000) });
    let mut supervision = Supervision::new(config).unwrap();
    let delay = |supervision: &mut Supervision, secs| match supervision.decide(
        local_secs(secs),
        child,
        "boom",
    ) {
        Decision::Restart { delay, .. } => delay,
        other => panic!("{other:?}"),
    };
    assert_eq!(delay(&mut supervision, 0), ms(100));
    assert_eq!(delay(&mut supervision, 1), ms(200));
    assert_eq!(delay(&mut supervision, 2), ms(400));
    // 5 s after the last restart took effect (at 2.4 s): a fresh streak.
    assert_eq!(delay(&mut supervision, 8), ms(100));
}

proptest! {
    /// Law: backoff delays grow exponentially (each the double of the
    /// previous) up to the cap, and never exceed it.
    #[test]
    fn backoff_delays_double_up_to_the_cap(
        min_ms in 1u64..1_000,
        extra_ms in 0u64..100_000,
        attempts in 1u32..70,
    ) {
        let backoff = Backoff {
            delay_min: ms(min_ms),
            delay_max: ms(min_ms + extra_ms),
            reset_after: ms(1),
        };
        let mut previous = backoff.delay(0);
        prop_assert_eq!(previous, backoff.delay_min);
        for attempt in 1..attempts {
            let delay = backoff.delay(attempt);
            prop_assert!(delay <= backoff.delay_max);
            let doubled = previous.as_nanos().saturating_mul(2);
            prop_assert_eq!(delay.as_nanos(), doubled.min(backoff.delay_max.as_nanos()));
            previous = delay;
        }
    }

    /// Law: whatever the failure times, the restarts inside any window of
    /// `within` never exceed `restarts_max`, and a failure escalates
    /// exactly when the window already holds `restarts_max` restarts.
    #[test]
    fn restarts_in_any_window_never_exceed_the_limit_and_the_next_failure_escalates(
        restarts_max in 1u32..6,
        within_ms in 1u64..5_000,
        gaps_ms in proptest::collection::vec(0u64..2_000, 1..60),
        strategy in prop_oneof![
            Just(Strategy::OneForOne),
            Just(Strategy::AllForOne),
            Just(Strategy::RestForOne),
        ],
    ) {
        let children = vec![ProcessId(0), ProcessId(1), ProcessId(2)];
        let mut config = SupervisorConfig::new(children.clone(), strategy);
        config.restart_limit = Some(RestartLimit { restarts_max, within: ms(within_ms) });
        let mut supervision = Supervision::new(config).unwrap();
        let within = i64::try_from(ms(within_ms).as_nanos()).unwrap();
        let mut now = 0i64;
        let mut restarts: Vec<i64> = Vec::new();
        for (index, gap) in gaps_ms.iter().enumerate() {
            now += i64::try_from(ms(*gap).as_nanos()).unwrap();
            let child = children[index % children.len()];
            let in_window = restarts.iter().filter(|at| now - **at < within).count() as u32;
            match supervision.decide(LocalTime(now), child, "boom") {
                Decision::Restart { .. } => {
                    prop_assert!(in_window < restarts_max);
                    restarts.push(now);
                }
                Decision::Escalate { cause, .. } => {
                    prop_assert_eq!(in_window, restarts_max);
                    prop_assert_eq!(cause, Escalation::RestartLimitExceeded { restarts: in_window });
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            let after = restarts.iter().filter(|at| now - **at < within).count() as u32;
            prop_assert_eq!(supervision.restarts_in_window(LocalTime(now)), after);
        }
        for (index, at) in restarts.iter().enumerate() {
            let in_window = restarts[..=index].iter().filter(|earlier| at - **earlier < within).count();
            prop_assert!(in_window <= restarts_max as usize);
        }
    }
}

// ----- in a simulation -----

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    // Goal: the failed child starts afresh; its siblings keep their state.
    let mut tree = tree(3, |_| {});
    tree.fail_between_work(1, "boom");
    assert_eq!(tree.incarnations(), vec![0, 1, 0]);
    assert_eq!((tree.seen(0), tree.seen(1), tree.seen(2)), (vec![1, 2], vec![2], vec![1, 2]));
    assert_eq!(tree.events.decided("restarted"), vec![(u64::from(tree.children[1].0), 1)]);
    assert_eq!(tree.sim.metrics().counter("supervisor.restarted"), 1);
}

#[test]
fn all_for_one_restarts_every_child_and_resets_its_state() {
    // Goal: lesson 6: one failure restarts all children; all in-memory state is lost.
    let mut tree = tree(3, |config| config.strategy = Strategy::AllForOne);
    tree.fail_between_work(1, "boom");
    assert_eq!(tree.incarnations(), vec![1, 1, 1]);
    assert_eq!((tree.seen(0), tree.seen(1), tree.seen(2)), (vec![2], vec![2], vec![2]));
    assert_eq!(tree.events.decided("restarted").len(), 3);
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_after_it_in_order() {
    // Goal: children before the failed one are untouched; the rest restart in configured order.
    let mut tree = tree(4, |config| config.strategy = Strategy::RestForOne);
    tree.fail_between_work(1, "boom");
    assert_eq!(tree.incarnations(), vec![0, 1, 1, 1]);
    assert_eq!(tree.seen(0), vec![1, 2]);
    assert_eq!(tree.seen(3), vec![2]);
    let restarted: Vec<ProcessId> =
        tree.events.restarts().into_iter().map(|(_, process)| process).collect();
    assert_eq!(restarted, tree.children[1..].to_vec());
}

#[test]
fn resume_keeps_the_child_state() {
    // Goal: a glitch resumed by the decider loses nothing.
    let mut tree = tree(2, |config| {
        config.decider = Decider::new(Directive::Restart).rule("glitch", Directive::Resume);
    });
    tree.fail_between_work(0, "glitch");
    assert_eq!(tree.incarnations(), vec![0, 0]);
    assert_eq!(tree.seen(0), vec![1, 2]);
    assert_eq!(tree.events.decided("resumed"), vec![(u64::from(tree.children[0].0), 0)]);
}

#[test]
fn stopped_children_and_unknown_addresses_turn_mail_into_dead_letters() {
    // Goal: all-for-one stop stops every child; later mail to them, and to
    // an address nobody has, lands in the dead letters.
    let mut tree = tree(2, |config| {
        config.strategy = Strategy::AllForOne;
        config.decider = Decider::new(Directive::Stop);
    });
    tree.fail_between_work(0, "poison");
    for child in &tree.children {
        assert_eq!(tree.sim.process(*child).status, ProcessStatus::Stopped);
    }
    assert_eq!(tree.events.decided("stopped").len(), 2);
    tree.sim.post(at_ms(10), tree.children[1], Msg::Work(3));
    tree.sim.post(at_ms(10), ProcessId(99), Msg::Work(4));
    tree.sim.run();
    let dead: Vec<(ProcessId, &str)> =
        tree.sim.dead_letters().iter().map(|letter| (letter.to, letter.label)).collect();
    // Work(2) to both (posted for 3 ms, after the stop at 2 ms), then the two above.
    assert_eq!(
        dead,
        vec![
            (tree.children[0], "Work"),
            (tree.children[1], "Work"),
            (tree.children[1], "Work"),
            (ProcessId(99), "Work"),
        ]
    );
}

#[test]
fn a_poison_message_redelivered_beyond_the_limit_escalates() {
    // Goal: lesson 6: limit 3 restarts in 10 s; the same poison message
    // arriving 5 times in 10 s escalates on the 4th failure.
    let mut tree = tree(1, |config| {
        config.restart_limit = Some(RestartLimit { restarts_max: 3, within: ms(10_000) });
    });
    for at in [500, 1_000, 2_000, 3_000, 4_000] {
        tree.sim.post(at_ms(at), tree.children[0], Msg::Fail("poison"));
    }
    tree.sim.run();
    let decisions = tree.events.decisions();
    assert_eq!(
        decisions,
        vec![
            (at_ms(500), "restarted"),
            (at_ms(1_000), "restarted"),
            (at_ms(2_000), "restarted"),
            (at_ms(3_000), "limit_exceeded"),
            (at_ms(3_000), "escalated"),
        ]
    );
    assert_eq!(tree.events.decided("escalated"), vec![(u64::from(tree.children[0].0), 1)]);
    // No grandparent: the supervisor is stopped, the child stays suspended
    // with the fifth copy waiting in its mailbox.
    assert_eq!(tree.sim.process(tree.supervisor).status, ProcessStatus::Stopped);
    assert_eq!(tree.sim.process(tree.children[0]).status, ProcessStatus::Suspended);
    assert_eq!(tree.sim.process(tree.children[0]).mailbox_len, 1);
}

#[test]
fn a_sliding_window_forgets_old_restarts() {
    // Goal: failures spaced so that no 10 s window holds more than 3 never escalate.
    let mut tree = tree(1, |config| {
        config.restart_limit = Some(RestartLimit { restarts_max: 3, within: ms(10_000) });
    });
    for i in 0..10 {
        tree.sim.post(at_ms(1 + i * 4_000), tree.children[0], Msg::Fail("flaky"));
    }
    tree.sim.run();
    assert_eq!(tree.events.decided("restarted").len(), 10);
    assert!(tree.events.decided("escalated").is_empty());
}

#[test]
fn a_two_level_hierarchy_escalates_to_the_grandparent_which_restarts_the_subtree() {
    // Goal: a failure the supervisor cannot handle goes up one level; the
    // grandparent restarts the supervisor, which restarts its children.
    let mut sim = Sim::new(SimConfig::new(Seed(6)));
    let events = Events::default();
    sim.set_trace_sink(Box::new(events.clone()));
    let node = sim.add_node(NodeConfig::new("n0"));
    let c0 = sim.spawn(node, "c0", Worker::default);
    let c1 = sim.spawn(node, "c1", Worker::default);
    let mut config = SupervisorConfig::new(vec![c0, c1], Strategy::OneForOne);
    config.decider = Decider::new(Directive::Restart).rule("fatal", Directive::Escalate);
    let middle = sim.spawn(node, "middle", Supervisor::<Msg>::new(config).unwrap().factory());
    let config = SupervisorConfig::new(vec![middle], Strategy::OneForOne);
    let top = sim.spawn(node, "top", Supervisor::<Msg>::new(config).unwrap().factory());
    sim.supervise(c0, middle);
    sim.supervise(c1, middle);
    sim.supervise(middle, top);

    for child in [c0, c1] {
        sim.post(at_ms(1), child, Msg::Work(1));
        sim.post(at_ms(3), child, Msg::Work(2));
        sim.post(at_ms(5), child, Msg::Work(3));
    }
    // Handled one level down: only c0 restarts.
    sim.post(at_ms(2), c0, Msg::Fail("transient"));
    // Escalated: the whole subtree restarts.
    sim.post(at_ms(4), c1, Msg::Fail("fatal"));
    sim.run();

    let decisions: Vec<(ProcessId, &str, u64, i64)> = events
        .0
        .borrow()
        .iter()
        .filter_map(|seen| match seen {
            Seen::Decided { by, kind, child, value, .. } => Some((*by, *kind, *child, *value)),
            Seen::Started { .. } => None,
        })
        .collect();
    let key = |process: ProcessId| u64::from(process.0);
    assert_eq!(
        decisions,
        vec![
            (middle, "restarted", key(c0), 1),
            (middle, "escalated", key(c1), 0),
            (top, "restarted", key(middle), 1),
            (middle, "restarted", key(c0), 0),
            (middle, "restarted", key(c1), 0),
        ]
    );
    assert_eq!(sim.process(middle).incarnation, 1);
    assert_eq!((sim.process(c0).incarnation, sim.process(c1).incarnation), (2, 1));
    for child in [c0, c1] {
        assert_eq!(sim.process_state::<Worker>(child).unwrap().seen, vec![3]);
    }
}

#[test]
fn a_crash_loop_backs_off_exponentially_up_to_the_cap_then_hits_the_limit() {
    // Goal: each restart of a child that fails at once waits twice as long
    // as the previous, up to the cap; meanwhile it stays suspended and its
    // mail waits; the restart limit finally escalates.
    let mut sim = Sim::new(SimConfig::new(Seed(6)));
    let events = Events::default();
    sim.set_trace_sink(Box::new(events.clone()));
    let node = sim.add_node(NodeConfig::new("n0"));
    let child = sim.spawn(node, "child", || CrashOnStart);
    let mut config = SupervisorConfig::new(vec![child], Strategy::OneForOne);
    config.backoff =
        Some(Backoff { delay_min: ms(100), delay_max: ms(800), reset_after: ms(10_000) });
    config.restart_limit = Some(RestartLimit { restarts_max: 8, within: ms(60_000) });
    let supervisor =
        sim.spawn(node, "supervisor", Supervisor::<Msg>::new(config).unwrap().factory());
    sim.supervise(child, supervisor);
    sim.post(at_ms(50), child, Msg::Work(7));

    sim.run_until(at_ms(60));
    assert_eq!(sim.process(child).status, ProcessStatus::Suspended);
    assert_eq!(sim.process(child).mailbox_len, 1);
    let pending = sim.process_state::<Supervisor<Msg>>(supervisor).unwrap().pending_restarts();
    assert_eq!(pending, vec![child]);
    sim.run();

    let delays: Vec<i64> = events
        .decided("backoff_scheduled")
        .into_iter()
        .map(|(_, nanos)| nanos / 1_000_000)
        .collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 800, 800, 800, 800]);
    let starts: Vec<SimTime> = events.restarts().into_iter().map(|(at, _)| at).collect();
    let expected: Vec<SimTime> =
        [100, 300, 700, 1_500, 2_300, 3_100, 3_900, 4_700].into_iter().map(at_ms).collect();
    assert_eq!(starts, expected);
    assert_eq!(events.decided("limit_exceeded"), vec![(u64::from(child.0), 8)]);
    assert_eq!(sim.metrics().latency("supervisor.backoff").unwrap().count, 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Law, in a running world: whatever the times at which a child
    /// fails, the restarts the supervisor performs inside any window never
    /// exceed the limit, and the first failure that finds the window full
    /// escalates (a simple model of the window predicts every decision).
    #[test]
    fn in_a_simulation_restarts_never_exceed_the_limit_and_the_next_failure_escalates(
        restarts_max in 1u32..5,
        within_ms in 1u64..3_000,
        gaps_ms in proptest::collection::vec(0u64..1_000, 1..25),
    ) {
        let mut tree = tree(2, |config| {
            config.restart_limit = Some(RestartLimit { restarts_max, within: ms(within_ms) });
        });
        let mut at = 0;
        let mut failures = Vec::new();
        for (index, gap) in gaps_ms.iter().enumerate() {
            at += gap;
            let child = tree.children[index % 2];
            tree.sim.post(at_ms(at), child, Msg::Fail("boom"));
            failures.push((at, child));
        }
        tree.sim.run();

        // The model: a window of restart times; stop at the escalation.
        let mut restarts: Vec<u64> = Vec::new();
        let mut expected = Vec::new();
        let mut suspended = None;
        for (at, child) in failures {
            if suspended.is_some() {
                break;
            }
            let in_window = restarts.iter().filter(|earlier| at - **earlier < within_ms).count();
            if in_window < restarts_max as usize {
                restarts.push(at);
                expected.push((at_ms(at), "restarted"));
            } else {
                expected.push((at_ms(at), "limit_exceeded"));
                expected.push((at_ms(at), "escalated"));
                suspended = Some(child);
            }
        }
        // After the escalation the other child's failures find no
        // supervisor (the core stops it); neither makes a decision.
        prop_assert_eq!(tree.events.decisions(), expected);
        let restarted: Vec<u64> = tree
            .events
            .restarts()
            .into_iter()
            .map(|(at, _)| at.as_nanos() / 1_000_000)
            .collect();
        for (index, at) in restarted.iter().enumerate() {
            let in_window = restarted[..=index].iter().filter(|earlier| at - **earlier < within_ms).count();
            prop_assert!(in_window <= restarts_max as usize);
        }
        if let Some(child) = suspended {
            prop_assert_eq!(tree.sim.process(tree.supervisor).status, ProcessStatus::Stopped);
            prop_assert_eq!(tree.sim.process(child).status, ProcessStatus::Suspended);
        }
    }
}
