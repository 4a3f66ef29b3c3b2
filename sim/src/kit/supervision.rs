//! Supervision: supervisor hierarchies that decide what happens to a child
//! that fails.
//!
//! "Let it crash" (Reactive Microsystems, ch. 5, on failure handling and
//! self-healing, after Erlang and Akka): a component does not defend
//! against every failure itself. It fails, and its supervisor, which sees
//! the failure from outside, decides with a **directive**:
//!
//! - **Resume**: carry on with the state as it was (the failure was
//!   harmless);
//! - **Restart**: throw the in-memory state away and start fresh from the
//!   factory (the state may be corrupt); what waits in the mailbox is kept;
//! - **Stop**: the child is gone for good; mail to it becomes dead letters;
//! - **Escalate**: the supervisor cannot decide, so it fails itself and its
//!   own supervisor decides. Supervisors therefore compose into trees.
//!
//! A **strategy** says which children a restart or stop applies to:
//! [`Strategy::OneForOne`] only the failed child; [`Strategy::AllForOne`]
//! every child (for children that only make sense together);
//! [`Strategy::RestForOne`] the failed child and every child after it in
//! the configured order (for a pipeline where later children depend on
//! earlier ones). A resume always concerns the failed child alone.
//!
//! Two safety valves keep a crash loop from spinning: a **restart limit**
//! (at most `restarts_max` restart decisions within `within`, counted per
//! supervisor as in Erlang/OTP; the next failure escalates) and a
//! **restart backoff** (the failed child stays suspended, its messages
//! waiting, for `delay_min`, then twice as long after each further failure
//! up to `delay_max`, starting over once it has run `reset_after` without
//! failing).
//!
//! The pieces:
//! - [`SupervisorConfig`] (children, [`Strategy`], [`Decider`],
//!   [`RestartLimit`], [`Backoff`]), validated when a block is built.
//! - [`Supervision`]: the pure decision core. [`Supervision::decide`] takes
//!   the node's local time, the failed child and the reason, and returns a
//!   [`Decision`]; no simulation needed.
//! - [`Supervisor`]: a process, generic over the world's message type,
//!   that applies decisions with the engine's primitives
//!   ([`Ctx::resume`], [`Ctx::restart`], [`Ctx::stop`], [`Ctx::fail`]).
//!   Spawn the children first, then the supervisor with
//!   [`Supervisor::factory`], then register each child with
//!   [`Sim::supervise`](crate::Sim::supervise). When the supervisor itself
//!   is restarted (by its own supervisor), it restarts all its children, so
//!   a subtree restarts as a whole.
//!
//! Dead letters (mail to stopped or unknown processes) are kept by the core:
//! [`Sim::dead_letters`](crate::Sim::dead_letters).
//!
//! Limits, from the core's primitives: while a supervisor is itself
//! suspended (it escalated), failures of its other children find nobody to
//! decide and the core stops those children; its backoff timers are
//! dropped. If its own supervisor then restarts it, it restarts every
//! child (stopped ones included), so the subtree recovers. If its
//! supervisor *resumes* it instead, it is not told, so the child that
//! caused the escalation stays suspended: have the grandparent restart an
//! escalating supervisor rather than resume it.
//!
//! Trace events ([`Component::Supervisor`], key: the child): `resumed`,
//! `restarted` (value: restarts decided so far by this supervisor
//! incarnation, 0 for a restart along with the supervisor itself),
//! `stopped`, `backoff_scheduled` (value: the delay in nanoseconds),
//! `limit_exceeded` (value: restarts in the window), `escalated` (value: 0
//! when the decider said so, 1 when the restart limit was exceeded).
//! Counters: `supervisor.resumed`, `supervisor.restarted`,
//! `supervisor.stopped`, `supervisor.escalated`,
//! `supervisor.limit_exceeded`; histogram `supervisor.backoff`.
//!
//! # Example
//!
//! A supervisor restarts a worker that failed on a poison message; the
//! worker's state starts over and later mail is handled.
//!
//! ```
//! use sim::kit::supervision::{Decider, Directive, Strategy, Supervisor, SupervisorConfig};
//! use sim::{Ctx, Message, NodeConfig, Process, ProcessId, Seed, Sim, SimConfig, SimTime};
//!
//! #[derive(Clone, Debug)]
//! struct Job(u64);
//! impl Message for Job {
//!     fn label(&self) -> &'static str { "Job" }
//! }
//!
//! /// Remembers its jobs; job 13 is poison.
//! #[derive(Default)]
//! struct Worker { done: Vec<u64> }
//! impl Process<Job> for Worker {
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Job>, _: ProcessId, job: Job) {
//!         if job.0 == 13 { ctx.fail("poison"); } else { self.done.push(job.0); }
//!     }
//! }
//!
//! let mut sim: Sim<Job> = Sim::new(SimConfig::new(Seed(1)));
//! let node = sim.add_node(NodeConfig::new("n0"));
//! let worker = sim.spawn(node, "worker", Worker::default);
//! let mut config = SupervisorConfig::new(vec![worker], Strategy::OneForOne);
//! config.decider = Decider::new(Directive::Escalate).rule("poison", Directive::Restart);
//! let supervisor = Supervisor::<Job>::new(config)?;
//! let parent = sim.spawn(node, "supervisor", supervisor.factory());
//! sim.supervise(worker, parent);
//!
//! for (at, job) in [(1, 1), (2, 13), (3, 2)] {
//!     sim.post(SimTime::from_nanos(at * 1_000_000), worker, Job(job));
//! }
//! sim.run();
//! assert_eq!(sim.process_state::<Worker>(worker).unwrap().done, vec![2]);
//! assert_eq!(sim.process(worker).incarnation, 1);
//! # Ok::<(), sim::kit::ConfigError>(())
//! ```

use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::ConfigError;
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// The reason a supervisor fails with when its decider says
/// [`Directive::Escalate`].
pub const ESCALATED_FAILURE: &str = "escalated: child failed";

/// The reason a supervisor fails with when a restart would exceed its
/// [`RestartLimit`].
pub const ESCALATED_RESTART_LIMIT: &str = "escalated: restart limit exceeded";

/// Which children a restart or stop applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// Every child.
    AllForOne,
    /// The failed child and every child after it, in configured order.
    RestForOne,
}

impl Strategy {
    /// The name used in configurations: `one_for_one`, `all_for_one`,
    /// `rest_for_one`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::AllForOne => "all_for_one",
            Strategy::RestForOne => "rest_for_one",
        }
    }

    /// The children, in order, that a restart or stop of `failed` applies
    /// to. A failed process missing from `children` concerns itself only.
    pub fn affected(self, children: &[ProcessId], failed: ProcessId) -> Vec<ProcessId> {
        let Some(position) = children.iter().position(|child| *child == failed) else {
            return vec![failed];
        };
        match self {
            Strategy::OneForOne => vec![failed],
            Strategy::AllForOne => children.to_vec(),
            Strategy::RestForOne => children[position..].to_vec(),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Strategy, ConfigError> {
        match text {
            "one_for_one" => Ok(Strategy::OneForOne),
            "all_for_one" => Ok(Strategy::AllForOne),
            "rest_for_one" => Ok(Strategy::RestForOne),
            _ => Err(ConfigError::new(
                "supervisor.strategy",
                text,
                "one of one_for_one, all_for_one, rest_for_one",
            )),
        }
    }
}

/// What to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Let the failed child carry on with its state.
    Resume,
    /// Start the affected children afresh.
    Restart,
    /// Stop the affected children for good.
    Stop,
    /// Fail the supervisor itself, for its own supervisor to decide.
    Escalate,
}

impl Directive {
    /// The name used in configurations: `resume`, `restart`, `stop`,
    /// `escalate`.
    pub fn name(self) -> &'static str {
        match self {
            Directive::Resume => "resume",
            Directive::Restart => "restart",
            Directive::Stop => "stop",
            Directive::Escalate => "escalate",
        }
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Directive {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Directive, ConfigError> {
        match text {
            "resume" => Ok(Directive::Resume),
            "restart" => Ok(Directive::Restart),
            "stop" => Ok(Directive::Stop),
            "escalate" => Ok(Directive::Escalate),
            _ => Err(ConfigError::new(
                "supervisor.directive",
                text,
                "one of resume, restart, stop, escalate",
            )),
        }
    }
}

/// Maps a failure reason (the argument of [`Ctx::fail`]) to a directive:
/// the first rule whose reason matches exactly, else the default.
///
/// ```
/// use sim::kit::supervision::{Decider, Directive};
///
/// let decider = Decider::new(Directive::Restart)
///     .rule("poison", Directive::Stop)
///     .rule("glitch", "resume".parse()?);
/// assert_eq!(decider.decide("glitch"), Directive::Resume);
/// assert_eq!(decider.decide("connection reset"), Directive::Restart);
/// # Ok::<(), sim::kit::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decider {
    /// (reason, directive) pairs, one per reason.
    pub rules: Vec<(String, Directive)>,
    /// The directive for any other reason.
    pub default: Directive,
}

impl Decider {
    /// A decider with no rules: `default` for every failure.
    pub fn new(default: Directive) -> Decider {
        Decider { rules: Vec::new(), default }
    }

    /// Adds a rule (builder style).
    pub fn rule(mut self, reason: impl Into<String>, directive: Directive) -> Decider {
        self.rules.push((reason.into(), directive));
        self
    }

    /// The directive for `reason`.
    pub fn decide(&self, reason: &str) -> Directive {
        self.rules
            .iter()
            .find(|(rule, _)| rule == reason)
            .map_or(self.default, |(_, directive)| *directive)
    }

    /// Rejects two rules for the same reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for (reason, _) in &self.rules {
            if !seen.insert(reason.as_str()) {
                return Err(ConfigError::new("supervisor.decider", reason, "one rule per reason"));
            }
        }
        Ok(())
    }
}

/// At most `restarts_max` restart decisions within any `within` of local
/// time; the failure that would need one more escalates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartLimit {
    /// Restarts allowed in the window (at least 1).
    pub restarts_max: u32,
    /// The window's length (more than 0).
    pub within: SimDuration,
}

impl RestartLimit {
    /// Rejects a zero count (leave the limit out for unlimited restarts,
    /// or decide `escalate` for none) and a zero window.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.restarts_max == 0 {
            return Err(ConfigError::new(
                "supervisor.restart_limit.restarts_max",
                0,
                "at least 1 (to allow no restart, decide escalate instead)",
            ));
        }
        if self.within == SimDuration::ZERO {
            return Err(ConfigError::new(
                "supervisor.restart_limit.within",
                self.within,
                "more than 0",
            ));
        }
        Ok(())
    }
}

/// Exponential restart backoff: `delay_min` for the first restart, doubled
/// for each further one, capped at `delay_max`; a child that ran
/// `reset_after` since its last restart starts over from `delay_min`.
///
/// ```
/// use sim::kit::supervision::Backoff;
/// use sim::SimDuration;
///
/// let ms = SimDuration::from_millis;
/// let backoff = Backoff { delay_min: ms(100), delay_max: ms(500), reset_after: ms(10_000) };
/// let delays: Vec<_> = (0..5).map(|attempt| backoff.delay(attempt)).collect();
/// assert_eq!(delays, vec![ms(100), ms(200), ms(400), ms(500), ms(500)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (more than 0).
    pub delay_min: SimDuration,
    /// The largest delay (at least `delay_min`).
    pub delay_max: SimDuration,
    /// Running this long without failing resets the delay (more than 0).
    pub reset_after: SimDuration,
}

impl Backoff {
    /// The delay before restart number `attempt` (from 0) of a streak.
    pub fn delay(&self, attempt: u32) -> SimDuration {
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        let nanos = self.delay_min.as_nanos().saturating_mul(factor);
        SimDuration::from_nanos(nanos.min(self.delay_max.as_nanos()))
    }

    /// Rejects a zero first delay, a first delay above the largest, and a
    /// zero reset period.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.delay_min == SimDuration::ZERO {
            return Err(ConfigError::new(
                "supervisor.backoff.delay_min",
                self.delay_min,
                "more than 0 (leave the backoff out to restart at once)",
            ));
        }
        if self.delay_min > self.delay_max {
            return Err(ConfigError::new(
                "supervisor.backoff.delay_min",
                self.delay_min,
                format!("at most backoff.delay_max ({})", self.delay_max),
            ));
        }
        if self.reset_after == SimDuration::ZERO {
            return Err(ConfigError::new(
                "supervisor.backoff.reset_after",
                self.reset_after,
                "more than 0",
            ));
        }
        Ok(())
    }
}

/// How a supervisor is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Its children, in order (the order rest-for-one follows).
    pub children: Vec<ProcessId>,
    /// Which children a restart or stop applies to.
    pub strategy: Strategy,
    /// Failure reason to directive.
    pub decider: Decider,
    /// A bound on restarts, if any.
    pub restart_limit: Option<RestartLimit>,
    /// A delay before restarts, if any (else restarts are immediate).
    pub backoff: Option<Backoff>,
}

impl SupervisorConfig {
    /// Restart on every failure, immediately and without limit.
    pub fn new(children: Vec<ProcessId>, strategy: Strategy) -> SupervisorConfig {
        SupervisorConfig {
            children,
            strategy,
            decider: Decider::new(Directive::Restart),
            restart_limit: None,
            backoff: None,
        }
    }

    /// Checks every part; errors name the field as `supervisor.…`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.children.is_empty() {
            return Err(ConfigError::new("supervisor.children", "[]", "at least one child"));
        }
        let mut seen = BTreeSet::new();
        for child in &self.children {
            if !seen.insert(*child) {
                return Err(ConfigError::new("supervisor.children", child, "each child once"));
            }
        }
        self.decider.validate()?;
        if let Some(limit) = &self.restart_limit {
            limit.validate()?;
        }
        if let Some(backoff) = &self.backoff {
            backoff.validate()?;
        }
        Ok(())
    }
}

/// Why a supervisor escalates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escalation {
    /// The decider said [`Directive::Escalate`].
    Directive,
    /// A restart would exceed the [`RestartLimit`]; `restarts` were already
    /// in the window.
    RestartLimitExceeded {
        /// Restarts in the window when the failure came.
        restarts: u32,
    },
}

impl Escalation {
    /// The reason the supervisor fails with.
    pub fn reason(self) -> &'static str {
        match self {
            Escalation::Directive => ESCALATED_FAILURE,
            Escalation::RestartLimitExceeded { .. } => ESCALATED_RESTART_LIMIT,
        }
    }
}

/// What a supervisor does about one failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Resume the failed child.
    Resume {
        /// The failed child.
        child: ProcessId,
    },
    /// Restart these children, in order, after `delay`.
    Restart {
        /// The children, in order, the failed one included.
        children: Vec<ProcessId>,
        /// The backoff (zero: at once).
        delay: SimDuration,
        /// Restarts decided so far, this one included.
        restarts: u64,
    },
    /// Stop these children.
    Stop {
        /// The children, in order.
        children: Vec<ProcessId>,
    },
    /// Fail the supervisor.
    Escalate {
        /// The failed child.
        child: ProcessId,
        /// Why.
        cause: Escalation,
    },
}

/// The pure decision core of a supervisor: its configuration, the restarts
/// inside the limit's window, and each child's backoff streak.
///
/// ```
/// use sim::kit::supervision::{
///     Decision, Escalation, RestartLimit, Strategy, Supervision, SupervisorConfig,
/// };
/// use sim::{LocalTime, ProcessId, SimDuration};
///
/// let child = ProcessId(0);
/// let mut config = SupervisorConfig::new(vec![child], Strategy::OneForOne);
/// config.restart_limit =
///     Some(RestartLimit { restarts_max: 2, within: SimDuration::from_secs(10) });
/// let mut supervision = Supervision::new(config)?;
/// let at = |secs: i64| LocalTime(secs * 1_000_000_000);
/// assert!(matches!(supervision.decide(at(0), child, "boom"), Decision::Restart { .. }));
/// assert!(matches!(supervision.decide(at(1), child, "boom"), Decision::Restart { .. }));
/// assert_eq!(
///     supervision.decide(at(2), child, "boom"),
///     Decision::Escalate { child, cause: Escalation::RestartLimitExceeded { restarts: 2 } }
/// );
/// // Ten seconds after the first restart, the window has room again.
/// assert!(matches!(supervision.decide(at(10), child, "boom"), Decision::Restart { .. }));
/// # Ok::<(), sim::kit::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Supervision {
    config: SupervisorConfig,
    /// When each restart inside the current window was decided (kept only
    /// with a limit, and never more than `restarts_max`).
    window: VecDeque<LocalTime>,
    restarts: u64,
    /// Per child: restarts in its current backoff streak, and when its
    /// last restart took effect.
    streaks: BTreeMap<ProcessId, (u32, LocalTime)>,
}

impl Supervision {
    /// A fresh decision core, if `config` is valid.
    pub fn new(config: SupervisorConfig) -> Result<Supervision, ConfigError> {
        config.validate()?;
        Ok(Supervision { config, window: VecDeque::new(), restarts: 0, streaks: BTreeMap::new() })
    }

    /// Its configuration.
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    /// Restarts decided so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Restarts decided within the limit's window ending at `now` (0
    /// without a limit).
    pub fn restarts_in_window(&self, now: LocalTime) -> u32 {
        let Some(limit) = self.config.restart_limit else { return 0 };
        self.window.iter().filter(|at| within_window(**at, now, limit.within)).count() as u32
    }

    /// Decides what to do about `child` failing with `reason` at `now`.
    pub fn decide(&mut self, now: LocalTime, child: ProcessId, reason: &str) -> Decision {
        let affected = self.config.strategy.affected(&self.config.children, child);
        match self.config.decider.decide(reason) {
            Directive::Resume => Decision::Resume { child },
            Directive::Stop => {
                let children = affected;
                for stopped in &children {
                    self.streaks.remove(stopped);
                }
                Decision::Stop { children }
            }
            Directive::Escalate => Decision::Escalate { child, cause: Escalation::Directive },
            Directive::Restart => {
                if let Some(limit) = self.config.restart_limit {
                    while self
                        .window
                        .front()
                        .is_some_and(|at| !within_window(*at, now, limit.within))
                    {
                        self.window.pop_front();
                    }
                    let restarts = self.window.len() as u32;
                    if restarts >= limit.restarts_max {
                        return Decision::Escalate {
                            child,
                            cause: Escalation::RestartLimitExceeded { restarts },
                        };
                    }
                    self.window.push_back(now);
                }
                self.restarts += 1;
                let children = affected;
                let delay = self.backoff_delay(now, child);
                Decision::Restart { children, delay, restarts: self.restarts }
            }
        }
    }

    /// The failed child's next backoff delay, advancing its streak.
    fn backoff_delay(&mut self, now: LocalTime, child: ProcessId) -> SimDuration {
        let Some(backoff) = self.config.backoff else { return SimDuration::ZERO };
        let (attempt, last_restart) = self.streaks.entry(child).or_insert((0, now));
        if within_window(*last_restart, now, backoff.reset_after) {
            // Still inside the streak (or the clock went back).
        } else {
            *attempt = 0;
        }
        let delay = backoff.delay(*attempt);
        *attempt = attempt.saturating_add(1);
        *last_restart = now.plus(delay);
        delay
    }
}

/// Whether `at` lies within the `length` of local time ending at `now`
/// (times after `now`, after a clock step back, count as inside).
fn within_window(at: LocalTime, now: LocalTime, length: SimDuration) -> bool {
    let age = i128::from(now.as_nanos()) - i128::from(at.as_nanos());
    age < i128::from(length.as_nanos())
}

/// A restart waiting for its backoff timer.
#[derive(Clone, Debug)]
struct PendingRestart {
    timer: TimerId,
    children: Vec<ProcessId>,
    restarts: u64,
}

/// A supervisor process: it takes no messages, and applies its
/// [`Supervision`]'s decisions to the children that fail.
#[derive(Clone, Debug)]
pub struct Supervisor<M> {
    supervision: Supervision,
    /// Built to replace an earlier instance (a restart of the supervisor):
    /// on start, it restarts all its children.
    replaces_earlier: bool,
    pending: Vec<PendingRestart>,
    _world: PhantomData<fn() -> M>,
}

impl<M: Message> Supervisor<M> {
    /// A supervisor, if `config` is valid.
    pub fn new(config: SupervisorConfig) -> Result<Supervisor<M>, ConfigError> {
        Ok(Supervisor {
            supervision: Supervision::new(config)?,
            replaces_earlier: false,
            pending: Vec::new(),
            _world: PhantomData,
        })
    }

    /// The factory to spawn it with: the first instance it builds is the
    /// original, every later one (after the supervisor was restarted, or
    /// its node rebooted) restarts all children when it starts.
    pub fn factory(self) -> impl FnMut() -> Supervisor<M> + 'static {
        let mut built = 0u64;
        move || {
            let mut instance = self.clone();
            instance.replaces_earlier = built > 0;
            built += 1;
            instance
        }
    }

    /// Its decision core (restart counts, configuration).
    pub fn supervision(&self) -> &Supervision {
        &self.supervision
    }

    /// Children waiting for a backoff timer before their restart.
    pub fn pending_restarts(&self) -> Vec<ProcessId> {
        self.pending.iter().flat_map(|pending| pending.children.iter().copied()).collect()
    }

    fn restart(ctx: &mut Ctx<'_, M>, children: &[ProcessId], restarts: u64) {
        for child in children {
            ctx.restart(*child);
            ctx.trace(Component::Supervisor, "restarted", key(*child), restarts as i64);
            ctx.count("supervisor.restarted", 1);
        }
    }
}

fn key(child: ProcessId) -> u64 {
    u64::from(child.0)
}

impl<M: Message> Process<M> for Supervisor<M> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.replaces_earlier {
            let children = self.supervision.config.children.clone();
            Self::restart(ctx, &children, 0);
        }
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, M>, _from: ProcessId, _message: M) {}

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, _tag: u64) {
        let Some(position) = self.pending.iter().position(|pending| pending.timer == timer) else {
            return;
        };
        let pending = self.pending.remove(position);
        Self::restart(ctx, &pending.children, pending.restarts);
    }

    fn on_child_failed(&mut self, ctx: &mut Ctx<'_, M>, child: ProcessId, reason: &'static str) {
        let now = ctx.now_local();
        match self.supervision.decide(now, child, reason) {
            Decision::Resume { child } => {
                ctx.resume(child);
                ctx.trace(Component::Supervisor, "resumed", key(child), 0);
                ctx.count("supervisor.resumed", 1);
            }
            Decision::Restart { children, delay, restarts } => {
                if delay == SimDuration::ZERO {
                    Self::restart(ctx, &children, restarts);
                } else {
                    // The failed child stays suspended (its mail waits);
                    // the others keep running until the timer.
                    let timer = ctx.set_timer(delay, 0);
                    ctx.trace(
                        Component::Supervisor,
                        "backoff_scheduled",
                        key(child),
                        i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX),
                    );
                    ctx.observe("supervisor.backoff", delay);
                    self.pending.push(PendingRestart { timer, children, restarts });
                }
            }
            Decision::Stop { children } => {
                for pending in &mut self.pending {
                    pending.children.retain(|waiting| !children.contains(waiting));
                }
                for child in children {
                    ctx.stop(child);
                    ctx.trace(Component::Supervisor, "stopped", key(child), 0);
                    ctx.count("supervisor.stopped", 1);
                }
            }
            Decision::Escalate { child, cause } => {
                let value = match cause {
                    Escalation::Directive => 0,
                    Escalation::RestartLimitExceeded { restarts } => {
                        ctx.trace(
                            Component::Supervisor,
                            "limit_exceeded",
                            key(child),
                            i64::from(restarts),
                        );
                        ctx.count("supervisor.limit_exceeded", 1);
                        1
                    }
                };
                ctx.trace(Component::Supervisor, "escalated", key(child), value);
                ctx.count("supervisor.escalated", 1);
                ctx.fail(cause.reason());
            }
        }
    }
}
