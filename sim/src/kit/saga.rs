//! Sagas: a process manager that runs a business transaction as a
//! sequence of local steps across participants, undoing what was done with
//! compensating actions when a later step fails, and resuming from its
//! event log after a crash.
//!
//! *Reactive Microsystems*, ch. 6 ("Coordinating Work Across Aggregates"),
//! argues against distributed transactions between services and for sagas
//! instead: each step commits locally at once, and atomicity is restored
//! afterwards by compensations run in reverse order ("guess, apologise,
//! compensate"). Sagas give all-or-nothing outcomes but no isolation:
//! concurrent sagas see each other's intermediate states. The report also
//! insists the coordinator be a durable finite-state machine, since a
//! process manager that forgets where it was after a crash leaves orders
//! half-done.
//!
//! The pieces:
//! - [`SagaDefinition`]: the ordered [`SagaStep`]s (name, participant,
//!   timeout, whether it is the pivot), validated into a [`Saga`].
//! - [`SagaState`]: the pure state machine of one saga instance. It
//!   [decides](SagaState::decide) what an input means as a list of
//!   [`SagaRecord`]s to log, [applies](SagaState::apply) records (live and
//!   in replay), and says which [command](SagaState::command) must be in
//!   flight. It knows nothing of time or messages, so its laws are tested
//!   without a simulation.
//! - [`SagaCoordinator`]: the process that runs sagas over the
//!   [`SagaProtocol`], logging every state change to node storage and
//!   acting only once it is durable, and resuming unfinished sagas in
//!   [`Process::on_start`] by replaying the log and re-sending the command
//!   that was in flight.
//! - [`SagaParticipant`] with its [`StepLedger`]: a participant that
//!   remembers the outcome of every `(saga, step)`, so commands redelivered
//!   by the network or re-sent after a timeout or a coordinator restart
//!   have effect at most once.
//!
//! # The rules
//!
//! Steps run one at a time, in order. When step `k` answers `Failed`, the
//! steps before it are compensated in reverse order (`k - 1` down to `0`);
//! the failed step had no effect, and its participant keeps answering
//! `Failed` to any late copy of the command. When step `k` times out its
//! outcome is unknown, so it is compensated too, first: compensating a step
//! that never ran is a no-op for an idempotent participant, which then
//! refuses a late copy of the command (DOMAIN.md: a refund of a charge that
//! never happened is a no-op).
//!
//! The pivot is the point of no return (shipping, in the order saga). It
//! is never compensated: while it runs, a timeout re-sends it until the
//! participant gives a definite answer; once it has succeeded, nothing is
//! compensated any more and later steps are retried forward (immediately
//! after a timeout, after [`SagaDefinition::retry_interval`] after a
//! refusal) until they succeed.
//!
//! Compensations must eventually succeed: the protocol has no way to refuse
//! one. A compensation whose acknowledgement does not come within the
//! step's timeout is re-sent, without limit. A participant that is down
//! delays the saga's end, never changes it.
//!
//! # Durability
//!
//! Every state change is appended to the log `saga/<name>` and acted on
//! only in [`Process::on_synced`], so a crash either loses a change before
//! anyone heard of it, or finds it in the log on restart. The log grows by
//! a few records per step and is never compacted (compaction is the
//! persistence block's business).
//!
//! # Example
//!
//! ```
//! use sim::kit::saga::{Saga, SagaCoordinator, SagaDefinition, SagaId, SagaParticipant, SagaPhase, SagaProtocol};
//! use sim::{LinkConfig, NodeConfig, Seed, Sim, SimConfig, SimDuration, SimTime};
//!
//! let mut sim: Sim<SagaProtocol> = Sim::new(SimConfig::new(Seed(1)));
//! sim.set_default_link(LinkConfig::constant(SimDuration::from_millis(1)));
//! let nodes: Vec<_> = (0..3).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
//! let inventory = sim.spawn(nodes[1], "inventory", || SagaParticipant::new("inventory"));
//! let payments = sim.spawn(nodes[2], "payments", || SagaParticipant::new("payments"));
//! let timeout = SimDuration::from_millis(50);
//! let definition = SagaDefinition::new("order")
//!     .step("reserve_products", inventory, timeout)
//!     .step("submit_payment", payments, timeout)
//!     .pivot_step("ship_products", inventory, timeout);
//! let saga = Saga::new(definition).expect("a valid definition");
//! let coordinator = sim.spawn(nodes[0], "orders", move || SagaCoordinator::new(saga.clone()));
//! sim.post(SimTime::ZERO, coordinator, SagaProtocol::StartSaga { saga: SagaId(7) });
//! sim.run();
//! let state = sim.process_state::<SagaCoordinator<SagaProtocol>>(coordinator).unwrap();
//! assert_eq!(state.phase(SagaId(7)), Some(SagaPhase::Completed));
//! ```

use crate::clock::LocalTime;
use crate::dense::{DenseKey, DenseMap};
use crate::ids::{EXTERNAL, ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// One run of a saga, e.g. the saga of one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SagaId(pub u64);

impl DenseKey for SagaId {
    fn position(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "saga{}", self.0)
    }
}

/// The messages of the saga protocol. Commands are imperative, answers
/// past tense. Steps are numbered from 0 in definition order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaProtocol {
    /// Asks the coordinator to run a saga (idempotent: a known saga is not
    /// started twice; a finished one gets its outcome again).
    StartSaga {
        /// The saga.
        saga: SagaId,
    },
    /// Asks a participant to do a step.
    Execute {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
        /// The step comes after the pivot: a refusal is temporary and the
        /// coordinator will ask again, so the participant must evaluate a
        /// repeated command afresh instead of repeating its refusal.
        after_pivot: bool,
    },
    /// Asks a participant to undo a step (or to make sure it never
    /// happens, if it has not run).
    Compensate {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A participant did the step.
    Executed {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A participant refused the step; it had no effect.
    Failed {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A participant undid the step (or voided it if it never ran).
    Compensated {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// The coordinator tells the requester that every step was done.
    SagaCompleted {
        /// The saga.
        saga: SagaId,
    },
    /// The coordinator tells the requester that every step done was undone.
    SagaAborted {
        /// The saga.
        saga: SagaId,
    },
    /// The coordinator refused to start the saga: too many are running.
    SagaRejected {
        /// The saga.
        saga: SagaId,
    },
}

impl SagaProtocol {
    /// The variant's name, for a world's [`Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            SagaProtocol::StartSaga { .. } => "StartSaga",
            SagaProtocol::Execute { .. } => "Execute",
            SagaProtocol::Compensate { .. } => "Compensate",
            SagaProtocol::Executed { .. } => "Executed",
            SagaProtocol::Failed { .. } => "Failed",
            SagaProtocol::Compensated { .. } => "Compensated",
            SagaProtocol::SagaCompleted { .. } => "SagaCompleted",
            SagaProtocol::SagaAborted { .. } => "SagaAborted",
            SagaProtocol::SagaRejected { .. } => "SagaRejected",
        }
    }

    /// A stable digest of the content, for a world's [`Message::digest`].
    pub fn digest(&self) -> u64 {
        let (code, saga, step) = match *self {
            SagaProtocol::StartSaga { saga } => (1, saga, 0),
            SagaProtocol::Execute { saga, step, after_pivot } => {
                (2, saga, u64::from(step) | (u64::from(after_pivot) << 32))
            }
            SagaProtocol::Compensate { saga, step } => (3, saga, u64::from(step)),
            SagaProtocol::Executed { saga, step } => (4, saga, u64::from(step)),
            SagaProtocol::Failed { saga, step } => (5, saga, u64::from(step)),
            SagaProtocol::Compensated { saga, step } => (6, saga, u64::from(step)),
            SagaProtocol::SagaCompleted { saga } => (7, saga, 0),
            SagaProtocol::SagaAborted { saga } => (8, saga, 0),
            SagaProtocol::SagaRejected { saga } => (9, saga, 0),
        };
        (code << 56) ^ saga.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step
    }
}

/// A world made only of saga messages can use the protocol itself as its
/// message type (handy in tests and examples).
impl Message for SagaProtocol {
    fn label(&self) -> &'static str {
        SagaProtocol::label(self)
    }
    fn digest(&self) -> u64 {
        SagaProtocol::digest(self)
    }
}

impl Carry<SagaProtocol> for SagaProtocol {
    fn wrap(inner: SagaProtocol) -> SagaProtocol {
        inner
    }
    fn unwrap(self) -> Result<SagaProtocol, SagaProtocol> {
        Ok(self)
    }
}

/// One step of a saga.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaStep {
    /// A name for humans, e.g. `submit_payment`.
    pub name: String,
    /// The process that executes and compensates it.
    pub participant: ProcessId,
    /// How long to wait for an answer to a command before treating the
    /// outcome as unknown (local time of the coordinator's node).
    pub timeout: SimDuration,
    /// Whether this is the point of no return (at most one per saga).
    pub pivot: bool,
}

/// What a saga is: its steps and how patient the coordinator is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaDefinition {
    /// The saga's name; the coordinator's log is `saga/<name>`.
    pub name: String,
    /// The steps, in execution order.
    pub steps: Vec<SagaStep>,
    /// How long to wait before asking again a step past the pivot that
    /// refused.
    pub retry_interval: SimDuration,
    /// How many sagas may run at once; more are rejected
    /// ([`SagaProtocol::SagaRejected`]), so the coordinator's memory is
    /// bounded by it.
    pub active_max: u32,
}

impl SagaDefinition {
    /// The retry interval new definitions get.
    pub const DEFAULT_RETRY_INTERVAL: SimDuration = SimDuration::from_millis(100);
    /// The bound on running sagas new definitions get.
    pub const DEFAULT_ACTIVE_MAX: u32 = 1024;

    /// A definition with no steps yet and default limits.
    pub fn new(name: impl Into<String>) -> SagaDefinition {
        SagaDefinition {
            name: name.into(),
            steps: Vec::new(),
            retry_interval: SagaDefinition::DEFAULT_RETRY_INTERVAL,
            active_max: SagaDefinition::DEFAULT_ACTIVE_MAX,
        }
    }

    /// Adds an ordinary (compensable) step (builder style).
    pub fn step(
        mut self,
        name: impl Into<String>,
        participant: ProcessId,
        timeout: SimDuration,
    ) -> SagaDefinition {
        self.steps.push(SagaStep { name: name.into(), participant, timeout, pivot: false });
        self
    }

    /// Adds the pivot step (builder style).
    pub fn pivot_step(
        mut self,
        name: impl Into<String>,
        participant: ProcessId,
        timeout: SimDuration,
    ) -> SagaDefinition {
        self.steps.push(SagaStep { name: name.into(), participant, timeout, pivot: true });
        self
    }

    /// Checks the definition: a name, at least one step, non-zero
    /// timeouts, at most one pivot, a non-zero retry interval and room for
    /// at least one running saga.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("saga.name", "\"\"", "a non-empty name"));
        }
        if self.steps.is_empty() {
            return Err(ConfigError::new("saga.steps", "[]", "at least one step"));
        }
        if u32::try_from(self.steps.len()).is_err() {
            return Err(ConfigError::new("saga.steps", self.steps.len(), "fewer than 2^32 steps"));
        }
        for (index, step) in self.steps.iter().enumerate() {
            if step.timeout == SimDuration::ZERO {
                return Err(ConfigError::new(
                    format!("saga.steps[{index}].timeout"),
                    step.timeout,
                    "a positive duration",
                ));
            }
        }
        let pivots = self.steps.iter().filter(|step| step.pivot).count();
        if pivots > 1 {
            return Err(ConfigError::new("saga.steps.pivot", pivots, "at most one pivot step"));
        }
        if self.retry_interval == SimDuration::ZERO {
            return Err(ConfigError::new(
                "saga.retry_interval",
                self.retry_interval,
                "a positive duration",
            ));
        }
        if self.active_max == 0 {
            return Err(ConfigError::new("saga.active_max", 0, "at least 1"));
        }
        Ok(())
    }
}

/// A validated [`SagaDefinition`]: the only way to build a coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saga {
    definition: SagaDefinition,
    pivot: Option<u32>,
}

impl Saga {
    /// Validates `definition`.
    pub fn new(definition: SagaDefinition) -> Result<Saga, ConfigError> {
        definition.validate()?;
        let pivot = definition.steps.iter().position(|step| step.pivot).map(|index| index as u32);
        Ok(Saga { definition, pivot })
    }

    /// The definition.
    pub fn definition(&self) -> &SagaDefinition {
        &self.definition
    }

    /// Number of steps (at least one).
    pub fn step_count(&self) -> u32 {
        self.definition.steps.len() as u32
    }

    /// The pivot step, if there is one.
    pub fn pivot(&self) -> Option<u32> {
        self.pivot
    }

    /// One step.
    pub fn step(&self, step: u32) -> &SagaStep {
        &self.definition.steps[step as usize]
    }

    /// A new instance of this saga, and the record that says it started.
    pub fn begin(
        &self,
        saga: SagaId,
        requester: ProcessId,
        now: LocalTime,
    ) -> (SagaState, SagaRecord) {
        let record = SagaRecord::Started { saga, requester, at: now };
        (self.restore(&record), record)
    }

    /// The instance a `Started` record describes (replay).
    ///
    /// # Panics
    /// If `record` is not `Started`: a log that does not begin a saga
    /// with it is corrupt.
    pub fn restore(&self, record: &SagaRecord) -> SagaState {
        let SagaRecord::Started { saga, requester, at } = *record else {
            panic!("a saga's first record must be Started, found {record:?}");
        };
        SagaState {
            saga,
            requester,
            started_at: at,
            step_count: self.step_count(),
            pivot: self.pivot,
            phase: SagaPhase::Executing { step: 0 },
            pivot_passed: false,
        }
    }
}

/// Where a saga instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SagaPhase {
    /// Waiting for `step` to be done; the steps before it are done.
    Executing {
        /// The step in flight.
        step: u32,
    },
    /// Undoing `step`; the steps after it that were started are undone.
    Compensating {
        /// The step whose compensation is in flight.
        step: u32,
    },
    /// Every step is done (final).
    Completed,
    /// Every step that may have run was undone (final).
    Aborted,
}

/// A state change of a saga, as appended to the coordinator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaRecord {
    /// The saga was accepted.
    Started {
        /// The saga.
        saga: SagaId,
        /// Who asked, to be told the outcome.
        requester: ProcessId,
        /// The coordinator's clock when it started.
        at: LocalTime,
    },
    /// A step was done.
    StepExecuted {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A step before or at the pivot was refused: compensation begins with
    /// the step before it.
    StepFailed {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A step before the pivot did not answer in time: compensation begins
    /// with the step itself, since its outcome is unknown.
    StepTimedOut {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// A step was undone (or voided).
    StepCompensated {
        /// The saga.
        saga: SagaId,
        /// The step.
        step: u32,
    },
    /// Every step was done.
    Completed {
        /// The saga.
        saga: SagaId,
    },
    /// Every step that may have run was undone.
    Aborted {
        /// The saga.
        saga: SagaId,
    },
}

impl SagaRecord {
    /// The saga it is about.
    pub fn saga(&self) -> SagaId {
        match *self {
            SagaRecord::Started { saga, .. }
            | SagaRecord::StepExecuted { saga, .. }
            | SagaRecord::StepFailed { saga, .. }
            | SagaRecord::StepTimedOut { saga, .. }
            | SagaRecord::StepCompensated { saga, .. }
            | SagaRecord::Completed { saga }
            | SagaRecord::Aborted { saga } => saga,
        }
    }

    /// The step it is about, if any.
    pub fn step(&self) -> Option<u32> {
        match *self {
            SagaRecord::StepExecuted { step, .. }
            | SagaRecord::StepFailed { step, .. }
            | SagaRecord::StepTimedOut { step, .. }
            | SagaRecord::StepCompensated { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The trace kind that reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            SagaRecord::Started { .. } => "started",
            SagaRecord::StepExecuted { .. } => "step_executed",
            SagaRecord::StepFailed { .. } => "step_failed",
            SagaRecord::StepTimedOut { .. } => "step_timed_out",
            SagaRecord::StepCompensated { .. } => "compensated",
            SagaRecord::Completed { .. } => "completed",
            SagaRecord::Aborted { .. } => "aborted",
        }
    }

    /// The bytes stored in the log.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a saga record always serialises")
    }

    /// A record read back from the log.
    ///
    /// # Panics
    /// If the bytes are not a record: storage never corrupts, so a bad
    /// record is a bug.
    pub fn decode(bytes: &[u8]) -> SagaRecord {
        postcard::from_bytes(bytes).expect("the saga log holds only saga records")
    }
}

/// What happened to the command in flight, as the state machine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaInput {
    /// The participant did `step`.
    Executed {
        /// The step.
        step: u32,
    },
    /// The participant refused `step`.
    Failed {
        /// The step.
        step: u32,
    },
    /// The participant undid `step`.
    Compensated {
        /// The step.
        step: u32,
    },
    /// The command in flight got no answer within its step's timeout.
    TimedOut,
}

/// What the state machine wants done about an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaDecision {
    /// Log these records; once they are durable, act on the new phase.
    Log(SagaRecords),
    /// Send the command in flight again now (after a timeout that changes
    /// nothing: the pivot is re-asked, a later step or a compensation is
    /// retried).
    ResendNow,
    /// Send the command in flight again after the retry interval (a step
    /// past the pivot refused).
    ResendLater,
    /// Nothing to do: a duplicate or late answer.
    Ignore,
}

/// The records one decision logs: the step's record, then the saga's end
/// when that ends it. Kept inline (a decision is made for every answer a
/// coordinator gets); reads as a slice.
#[derive(Clone, Copy)]
pub struct SagaRecords {
    /// The records; a second slot not in use repeats the first.
    records: [SagaRecord; 2],
    len: usize,
}

impl SagaRecords {
    /// One record.
    pub fn one(record: SagaRecord) -> SagaRecords {
        SagaRecords { records: [record, record], len: 1 }
    }

    /// These records, then `record`.
    ///
    /// # Panics
    /// If there are two already: no decision logs more.
    pub fn and(mut self, record: SagaRecord) -> SagaRecords {
        assert!(self.len < 2, "a saga decision logs at most two records");
        self.records[self.len] = record;
        self.len += 1;
        self
    }
}

impl std::ops::Deref for SagaRecords {
    type Target = [SagaRecord];

    fn deref(&self) -> &[SagaRecord] {
        &self.records[..self.len]
    }
}

impl IntoIterator for SagaRecords {
    type Item = SagaRecord;
    type IntoIter = std::iter::Take<std::array::IntoIter<SagaRecord, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter().take(self.len)
    }
}

impl<'a> IntoIterator for &'a SagaRecords {
    type Item = &'a SagaRecord;
    type IntoIter = std::slice::Iter<'a, SagaRecord>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for SagaRecords {
    fn eq(&self, other: &SagaRecords) -> bool {
        **self == **other
    }
}

impl Eq for SagaRecords {}

impl fmt::Debug for SagaRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The command a saga needs in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaCommand {
    /// Do the step.
    Execute {
        /// The step.
        step: u32,
        /// Whether it comes after the pivot.
        after_pivot: bool,
    },
    /// Undo the step.
    Compensate {
        /// The step.
        step: u32,
    },
}

/// One saga instance: a pure finite-state machine.
///
/// ```
/// use sim::kit::saga::{Saga, SagaDecision, SagaDefinition, SagaId, SagaInput, SagaPhase};
/// use sim::{LocalTime, ProcessId, SimDuration};
///
/// let timeout = SimDuration::from_millis(10);
/// let saga = Saga::new(
///     SagaDefinition::new("order")
///         .step("reserve", ProcessId(1), timeout)
///         .step("pay", ProcessId(2), timeout),
/// )
/// .unwrap();
/// let (mut state, _started) = saga.begin(SagaId(1), ProcessId(9), LocalTime(0));
/// let SagaDecision::Log(records) = state.decide(SagaInput::Executed { step: 0 }) else { panic!() };
/// records.iter().for_each(|record| state.apply(record));
/// // Payment times out: its outcome is unknown, so it is compensated first.
/// let SagaDecision::Log(records) = state.decide(SagaInput::TimedOut) else { panic!() };
/// records.iter().for_each(|record| state.apply(record));
/// assert_eq!(state.phase(), SagaPhase::Compensating { step: 1 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaState {
    saga: SagaId,
    requester: ProcessId,
    started_at: LocalTime,
    step_count: u32,
    pivot: Option<u32>,
    phase: SagaPhase,
    pivot_passed: bool,
}

impl SagaState {
    /// The saga.
    pub fn saga(&self) -> SagaId {
        self.saga
    }

    /// Who asked for it.
    pub fn requester(&self) -> ProcessId {
        self.requester
    }

    /// The coordinator's clock when it started.
    pub fn started_at(&self) -> LocalTime {
        self.started_at
    }

    /// Where it is.
    pub fn phase(&self) -> SagaPhase {
        self.phase
    }

    /// Whether it is completed or aborted.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, SagaPhase::Completed | SagaPhase::Aborted)
    }

    /// Whether the pivot step has succeeded (from then on it must complete).
    pub fn pivot_passed(&self) -> bool {
        self.pivot_passed
    }

    fn is_after_pivot(&self, step: u32) -> bool {
        self.pivot.is_some_and(|pivot| step > pivot)
    }

    /// What `input` means in the current phase. Pure: nothing changes
    /// until the returned records are [applied](SagaState::apply).
    pub fn decide(&self, input: SagaInput) -> SagaDecision {
        let saga = self.saga;
        match (self.phase, input) {
            (SagaPhase::Executing { step }, SagaInput::Executed { step: answered })
                if answered == step =>
            {
                let mut records = SagaRecords::one(SagaRecord::StepExecuted { saga, step });
                if step + 1 == self.step_count {
                    records = records.and(SagaRecord::Completed { saga });
                }
                SagaDecision::Log(records)
            }
            (SagaPhase::Executing { step }, SagaInput::Failed { step: answered })
                if answered == step =>
            {
                if self.is_after_pivot(step) {
                    return SagaDecision::ResendLater;
                }
                let mut records = SagaRecords::one(SagaRecord::StepFailed { saga, step });
                if step == 0 {
                    records = records.and(SagaRecord::Aborted { saga });
                }
                SagaDecision::Log(records)
            }
            (SagaPhase::Executing { step }, SagaInput::TimedOut) => {
                if self.pivot.is_some_and(|pivot| step >= pivot) {
                    // The pivot is never compensated, so it is asked again
                    // until it answers; later steps only go forward.
                    return SagaDecision::ResendNow;
                }
                SagaDecision::Log(SagaRecords::one(SagaRecord::StepTimedOut { saga, step }))
            }
            (SagaPhase::Compensating { step }, SagaInput::Compensated { step: answered })
                if answered == step =>
            {
                let mut records = SagaRecords::one(SagaRecord::StepCompensated { saga, step });
                if step == 0 {
                    records = records.and(SagaRecord::Aborted { saga });
                }
                SagaDecision::Log(records)
            }
            (SagaPhase::Compensating { .. }, SagaInput::TimedOut) => SagaDecision::ResendNow,
            _ => SagaDecision::Ignore,
        }
    }

    /// Moves to the state `record` describes.
    ///
    /// # Panics
    /// If the record does not follow from the current phase: the log or
    /// the caller is broken.
    pub fn apply(&mut self, record: &SagaRecord) {
        assert_eq!(record.saga(), self.saga, "record {record:?} applied to {}", self.saga);
        let next = match (self.phase, *record) {
            (SagaPhase::Executing { step }, SagaRecord::StepExecuted { step: done, .. })
                if done == step =>
            {
                if self.pivot == Some(step) {
                    self.pivot_passed = true;
                }
                if step + 1 == self.step_count {
                    SagaPhase::Completed
                } else {
                    SagaPhase::Executing { step: step + 1 }
                }
            }
            (SagaPhase::Executing { step }, SagaRecord::StepFailed { step: failed, .. })
                if failed == step && !self.is_after_pivot(step) =>
            {
                match step.checked_sub(1) {
                    Some(previous) => SagaPhase::Compensating { step: previous },
                    None => SagaPhase::Aborted,
                }
            }
            (SagaPhase::Executing { step }, SagaRecord::StepTimedOut { step: late, .. })
                if late == step && self.pivot.is_none_or(|pivot| step < pivot) =>
            {
                SagaPhase::Compensating { step }
            }
            (
                SagaPhase::Compensating { step },
                SagaRecord::StepCompensated { step: undone, .. },
            ) if undone == step => match step.checked_sub(1) {
                Some(previous) => SagaPhase::Compensating { step: previous },
                None => SagaPhase::Aborted,
            },
            (SagaPhase::Completed, SagaRecord::Completed { .. }) => SagaPhase::Completed,
            (SagaPhase::Aborted, SagaRecord::Aborted { .. }) => SagaPhase::Aborted,
            (phase, record) => panic!("{}: record {record:?} cannot follow {phase:?}", self.saga),
        };
        self.phase = next;
    }

    /// The command that must be in flight now, if the saga is not finished.
    pub fn command(&self) -> Option<SagaCommand> {
        match self.phase {
            SagaPhase::Executing { step } => {
                Some(SagaCommand::Execute { step, after_pivot: self.is_after_pivot(step) })
            }
            SagaPhase::Compensating { step } => Some(SagaCommand::Compensate { step }),
            SagaPhase::Completed | SagaPhase::Aborted => None,
        }
    }
}

/// The coordinator: runs sagas of one [`Saga`] over the [`SagaProtocol`],
/// durably. Trace kinds (component [`Component::Saga`], key = saga id):
/// `started`, `step_executed`, `step_failed`, `step_timed_out`,
/// `compensated` (value = step) when the record is durable;
/// `compensating` (value = step) when a compensation is sent;
/// `completed`, `aborted` (value = duration in ns on the coordinator's
/// clock); `resumed` (value = step in flight) after a restart; `rejected`
/// when `active_max` sagas are already running. A refusal or a timeout
/// that changes nothing (past the pivot) is traced as `step_failed` or
/// `step_timed_out` at once.
///
/// `active_max` bounds the sagas running at once; finished ones stay
/// remembered (one small entry each, as in the log) so that a repeated
/// start gets the same outcome instead of running the saga again.
pub struct SagaCoordinator<M> {
    saga: Saga,
    log: String,
    instances: BTreeMap<SagaId, Instance>,
    /// Records (and sagas to act on) waiting for the sync with this tag.
    unsynced: BTreeMap<u64, Vec<Pending>>,
    next_tag: u64,
    running: u32,
    world: PhantomData<fn(M)>,
}

/// A saga instance with what the coordinator tracks about its command.
#[derive(Clone, Debug)]
struct Instance {
    state: SagaState,
    /// Bumped at every logged change; a completed sync acts on the saga
    /// only if it covers the latest change.
    version: u64,
    /// The timer of the command in flight, or of a backoff before
    /// re-sending it.
    timer: Option<TimerId>,
    backing_off: bool,
    /// Sends of the current command so far (volatile).
    attempts: u32,
}

#[derive(Clone, Debug)]
struct Pending {
    saga: SagaId,
    version: u64,
    records: Vec<SagaRecord>,
}

impl<M: Carry<SagaProtocol>> SagaCoordinator<M> {
    /// A coordinator for `saga`, logging to `saga/<name>`.
    pub fn new(saga: Saga) -> SagaCoordinator<M> {
        let log = format!("saga/{}", saga.definition.name);
        SagaCoordinator {
            saga,
            log,
            instances: BTreeMap::new(),
            unsynced: BTreeMap::new(),
            next_tag: 0,
            running: 0,
            world: PhantomData,
        }
    }

    /// The saga it runs.
    pub fn saga(&self) -> &Saga {
        &self.saga
    }

    /// The name of its log in node storage.
    pub fn log_name(&self) -> &str {
        &self.log
    }

    /// Where a saga is, as far as this incarnation knows (including
    /// changes not yet durable).
    pub fn phase(&self, saga: SagaId) -> Option<SagaPhase> {
        self.instances.get(&saga).map(|instance| instance.state.phase)
    }

    /// Every saga it knows, with its state.
    pub fn sagas(&self) -> impl Iterator<Item = &SagaState> {
        self.instances.values().map(|instance| &instance.state)
    }

    /// How many sagas are not finished.
    pub fn running(&self) -> u32 {
        self.running
    }

    fn tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    fn start(&mut self, ctx: &mut Ctx<'_, M>, requester: ProcessId, saga: SagaId) {
        if let Some(instance) = self.instances.get(&saga) {
            match instance.state.phase {
                SagaPhase::Completed => {
                    notify(ctx, requester, SagaProtocol::SagaCompleted { saga })
                }
                SagaPhase::Aborted => notify(ctx, requester, SagaProtocol::SagaAborted { saga }),
                // Already running: a duplicate start changes nothing.
                _ => ctx.count("saga.duplicate_starts", 1),
            }
            return;
        }
        if self.running >= self.saga.definition.active_max {
            ctx.trace(Component::Saga, "rejected", saga.0, i64::from(self.running));
            ctx.count("saga.rejected", 1);
            notify(ctx, requester, SagaProtocol::SagaRejected { saga });
            return;
        }
        let (state, record) = self.saga.begin(saga, requester, ctx.now_local());
        self.running += 1;
        self.instances.insert(
            saga,
            Instance { state, version: 0, timer: None, backing_off: false, attempts: 0 },
        );
        self.log(ctx, saga, vec![record]);
    }

    /// Appends `records` (already decided) and applies them; the saga acts
    /// again once a sync covering them completes.
    fn log(&mut self, ctx: &mut Ctx<'_, M>, saga: SagaId, records: Vec<SagaRecord>) {
        let instance = self.instances.get_mut(&saga).expect("logging a known saga");
        if let Some(timer) = instance.timer.take() {
            ctx.cancel_timer(timer);
        }
        instance.backing_off = false;
        let was_finished = instance.state.is_finished();
        for record in &records {
            ctx.append(&self.log, record.encode());
            // `Started` was applied when the instance was built.
            if !matches!(record, SagaRecord::Started { .. }) {
                instance.state.apply(record);
            }
        }
        if !was_finished && instance.state.is_finished() {
            self.running -= 1;
        }
        instance.version += 1;
        let pending = Pending { saga, version: instance.version, records };
        let tag = self.tag();
        self.unsynced.insert(tag, vec![pending]);
        ctx.sync(tag);
    }

    /// Sends the command the saga needs now and arms its timeout, or tells
    /// the requester the outcome if it is finished.
    fn act(&mut self, ctx: &mut Ctx<'_, M>, saga: SagaId) {
        let instance = self.instances.get_mut(&saga).expect("acting on a known saga");
        instance.attempts = 0;
        match instance.state.phase {
            SagaPhase::Completed => {
                notify(ctx, instance.state.requester, SagaProtocol::SagaCompleted { saga })
            }
            SagaPhase::Aborted => {
                notify(ctx, instance.state.requester, SagaProtocol::SagaAborted { saga })
            }
            SagaPhase::Compensating { step } => {
                ctx.trace(Component::Saga, "compensating", saga.0, i64::from(step));
                self.send_command(ctx, saga);
            }
            SagaPhase::Executing { .. } => self.send_command(ctx, saga),
        }
    }

    fn send_command(&mut self, ctx: &mut Ctx<'_, M>, saga: SagaId) {
        let instance = self.instances.get_mut(&saga).expect("a known saga");
        let Some(command) = instance.state.command() else { return };
        let (step, message) = match command {
            SagaCommand::Execute { step, after_pivot } => {
                (step, SagaProtocol::Execute { saga, step, after_pivot })
            }
            SagaCommand::Compensate { step } => (step, SagaProtocol::Compensate { saga, step }),
        };
        let definition = self.saga.step(step);
        instance.attempts += 1;
        ctx.send(definition.participant, M::wrap(message));
        if let Some(timer) = instance.timer.take() {
            ctx.cancel_timer(timer);
        }
        instance.backing_off = false;
        instance.timer = Some(ctx.set_timer(definition.timeout, saga.0));
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, M>, saga: SagaId, input: SagaInput) {
        let Some(instance) = self.instances.get_mut(&saga) else { return };
        let phase = instance.state.phase;
        match instance.state.decide(input) {
            SagaDecision::Log(records) => self.log(ctx, saga, records.to_vec()),
            SagaDecision::ResendNow => {
                match phase {
                    SagaPhase::Executing { step } => {
                        ctx.trace(Component::Saga, "step_timed_out", saga.0, i64::from(step));
                        ctx.count("saga.step_timeouts", 1);
                    }
                    _ => ctx.count("saga.compensation_retries", 1),
                }
                self.send_command(ctx, saga);
            }
            SagaDecision::ResendLater => {
                if let SagaPhase::Executing { step } = phase {
                    ctx.trace(Component::Saga, "step_failed", saga.0, i64::from(step));
                }
                ctx.count("saga.step_failures", 1);
                if let Some(timer) = instance.timer.take() {
                    ctx.cancel_timer(timer);
                }
                instance.backing_off = true;
                instance.timer = Some(ctx.set_timer(self.saga.definition.retry_interval, saga.0));
            }
            SagaDecision::Ignore => ctx.count("saga.stale_answers", 1),
        }
    }

    /// Reports a durable record in the trace and metrics.
    fn report(&self, ctx: &mut Ctx<'_, M>, record: &SagaRecord) {
        let saga = record.saga();
        let value = match record {
            SagaRecord::Completed { .. } | SagaRecord::Aborted { .. } => {
                let started_at = self.instances.get(&saga).map(|i| i.state.started_at);
                let elapsed = started_at.map_or(0, |at| ctx.now_local().as_nanos() - at.as_nanos());
                if elapsed >= 0 {
                    let name = if matches!(record, SagaRecord::Completed { .. }) {
                        "saga.completed_duration"
                    } else {
                        "saga.aborted_duration"
                    };
                    ctx.observe(name, SimDuration::from_nanos(elapsed as u64));
                }
                elapsed
            }
            _ => record.step().map_or(0, i64::from),
        };
        ctx.trace(Component::Saga, record.kind(), saga.0, value);
        let counter = match record {
            SagaRecord::Started { .. } => "saga.started",
            SagaRecord::StepExecuted { .. } => "saga.steps_executed",
            SagaRecord::StepFailed { .. } => "saga.step_failures",
            SagaRecord::StepTimedOut { .. } => "saga.step_timeouts",
            SagaRecord::StepCompensated { .. } => "saga.compensations",
            SagaRecord::Completed { .. } => "saga.completed",
            SagaRecord::Aborted { .. } => "saga.aborted",
        };
        ctx.count(counter, 1);
    }
}

fn notify<M: Carry<SagaProtocol>>(ctx: &mut Ctx<'_, M>, to: ProcessId, message: SagaProtocol) {
    if to != EXTERNAL {
        ctx.send(to, M::wrap(message));
    }
}

impl<M: Carry<SagaProtocol>> Process<M> for SagaCoordinator<M> {
    /// Replays the log and resumes every unfinished saga once the replayed
    /// state is known durable (a supervisor restart may find an unsynced
    /// tail in the page cache).
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        let records: Vec<SagaRecord> =
            ctx.read_log(&self.log).iter().map(SagaRecord::decode).collect();
        for record in &records {
            match record {
                SagaRecord::Started { saga, .. } => {
                    let state = self.saga.restore(record);
                    let instance = Instance {
                        state,
                        version: 0,
                        timer: None,
                        backing_off: false,
                        attempts: 0,
                    };
                    let previous = self.instances.insert(*saga, instance);
                    assert!(previous.is_none(), "{saga} started twice in the log");
                }
                other => {
                    let instance = self
                        .instances
                        .get_mut(&other.saga())
                        .expect("every logged saga begins with Started");
                    instance.state.apply(other);
                }
            }
        }
        let mut pending = Vec::new();
        for (saga, instance) in &self.instances {
            if instance.state.is_finished() {
                continue;
            }
            let step = match instance.state.phase {
                SagaPhase::Executing { step } | SagaPhase::Compensating { step } => step,
                _ => 0,
            };
            ctx.trace(Component::Saga, "resumed", saga.0, i64::from(step));
            ctx.count("saga.resumed", 1);
            pending.push(Pending { saga: *saga, version: 0, records: Vec::new() });
        }
        self.running = pending.len() as u32;
        if !pending.is_empty() {
            let tag = self.tag();
            self.unsynced.insert(tag, pending);
            ctx.sync(tag);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        let (saga, step, input) = match message {
            SagaProtocol::StartSaga { saga } => return self.start(ctx, from, saga),
            SagaProtocol::Executed { saga, step } => (saga, step, SagaInput::Executed { step }),
            SagaProtocol::Failed { saga, step } => (saga, step, SagaInput::Failed { step }),
            SagaProtocol::Compensated { saga, step } => {
                (saga, step, SagaInput::Compensated { step })
            }
            _ => return,
        };
        // Only the step's own participant may answer for it.
        if step >= self.saga.step_count() || self.saga.step(step).participant != from {
            ctx.count("saga.stale_answers", 1);
            return;
        }
        self.handle(ctx, saga, input);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, tag: u64) {
        let saga = SagaId(tag);
        let Some(instance) = self.instances.get_mut(&saga) else { return };
        if instance.timer != Some(timer) {
            return;
        }
        instance.timer = None;
        if instance.backing_off {
            instance.backing_off = false;
            self.send_command(ctx, saga);
        } else {
            self.handle(ctx, saga, SagaInput::TimedOut);
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some(pending) = self.unsynced.remove(&tag) else { return };
        for Pending { saga, version, records } in pending {
            for record in &records {
                self.report(ctx, record);
            }
            // A later change not yet durable will act when its sync ends.
            if self.instances.get(&saga).is_some_and(|instance| instance.version == version) {
                self.act(ctx, saga);
            }
        }
    }
}

/// What a participant remembers about one `(saga, step)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepOutcome {
    /// Done, with effect.
    Executed,
    /// Refused, without effect.
    Failed,
    /// Done, then undone.
    Undone,
    /// Compensated before it ever ran: it never will.
    Voided,
}

/// What a participant should do with a command, per its [`StepLedger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerAction {
    /// Answer `Executed` again: the step is done.
    RepeatExecuted,
    /// Answer `Failed` again: refused before, or compensated.
    RepeatFailed,
    /// Answer `Compensated` again: already undone or voided.
    RepeatCompensated,
    /// Decide now whether to do the step (its effect happens here).
    Evaluate,
    /// Undo the step's effect, record [`StepOutcome::Undone`].
    Undo,
    /// Record [`StepOutcome::Voided`]: nothing to undo, and a late copy of
    /// the command must be refused.
    Void,
}

/// The idempotency memory of a participant: the outcome of every
/// `(saga, step)` it has handled, so each command has effect at most once
/// however often it is delivered.
///
/// ```
/// use sim::kit::saga::{LedgerAction, SagaId, StepLedger, StepOutcome};
///
/// let mut ledger = StepLedger::default();
/// // A compensation that overtakes its command voids the step...
/// assert_eq!(ledger.on_compensate(SagaId(1), 0), LedgerAction::Void);
/// ledger.record(SagaId(1), 0, StepOutcome::Voided);
/// // ...so the late command is refused instead of taking effect.
/// assert_eq!(ledger.on_execute(SagaId(1), 0, false), LedgerAction::RepeatFailed);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepLedger {
    /// Keyed by saga, then step: saga ids are usually dense (an order's
    /// saga has its order's id), and every command looks its saga up.
    outcomes: DenseMap<SagaId, SagaSteps>,
}

/// Steps of one saga kept inline; sagas longer than this keep the rest in
/// a map.
const INLINE_STEPS: usize = 4;

/// The outcomes remembered for one saga's steps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SagaSteps {
    first: [Option<StepOutcome>; INLINE_STEPS],
    rest: BTreeMap<u32, StepOutcome>,
}

impl SagaSteps {
    fn get(&self, step: u32) -> Option<StepOutcome> {
        match self.first.get(step as usize) {
            Some(outcome) => *outcome,
            None => self.rest.get(&step).copied(),
        }
    }

    fn set(&mut self, step: u32, outcome: StepOutcome) {
        match self.first.get_mut(step as usize) {
            Some(slot) => *slot = Some(outcome),
            None => {
                self.rest.insert(step, outcome);
            }
        }
    }

    /// Every outcome, in step order.
    fn iter(&self) -> impl Iterator<Item = (u32, StepOutcome)> + '_ {
        let first = (0u32..)
            .zip(self.first.iter())
            .filter_map(|(step, outcome)| outcome.map(|outcome| (step, outcome)));
        first.chain(self.rest.iter().map(|(step, outcome)| (*step, *outcome)))
    }
}

impl StepLedger {
    /// What to do with `Execute { saga, step, after_pivot }`.
    pub fn on_execute(&self, saga: SagaId, step: u32, after_pivot: bool) -> LedgerAction {
        match self.outcome(saga, step) {
            None => LedgerAction::Evaluate,
            Some(StepOutcome::Executed) => LedgerAction::RepeatExecuted,
            // Past the pivot a refusal is temporary: the coordinator only
            // goes forward, so it asks again and expects a fresh answer.
            Some(StepOutcome::Failed) if after_pivot => LedgerAction::Evaluate,
            Some(StepOutcome::Failed | StepOutcome::Undone | StepOutcome::Voided) => {
                LedgerAction::RepeatFailed
            }
        }
    }

    /// What to do with `Compensate { saga, step }`.
    pub fn on_compensate(&self, saga: SagaId, step: u32) -> LedgerAction {
        match self.outcome(saga, step) {
            None | Some(StepOutcome::Failed) => LedgerAction::Void,
            Some(StepOutcome::Executed) => LedgerAction::Undo,
            Some(StepOutcome::Undone | StepOutcome::Voided) => LedgerAction::RepeatCompensated,
        }
    }

    /// Remembers an outcome.
    pub fn record(&mut self, saga: SagaId, step: u32, outcome: StepOutcome) {
        self.outcomes.get_or_insert_with(saga, SagaSteps::default).set(step, outcome);
    }

    /// The outcome remembered for `(saga, step)`.
    pub fn outcome(&self, saga: SagaId, step: u32) -> Option<StepOutcome> {
        self.outcomes.get(&saga).and_then(|steps| steps.get(step))
    }

    /// Every remembered outcome, in `(saga, step)` order.
    pub fn outcomes(&self) -> impl Iterator<Item = ((SagaId, u32), StepOutcome)> + '_ {
        self.outcomes
            .iter()
            .flat_map(|(saga, steps)| steps.iter().map(|(step, outcome)| ((*saga, step), outcome)))
    }
}

/// Faults a [`SagaParticipant`] plays, for tests and scenarios. Counts are
/// kept in memory, so a participant restart starts them again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParticipantScript {
    /// Refuse the first `n` evaluations of `(saga, step)` (`u32::MAX`:
    /// always).
    pub refusals: BTreeMap<(SagaId, u32), u32>,
    /// Ignore (no effect, no answer) the first `n` deliveries of
    /// `Execute` for `(saga, step)`, so the coordinator times out.
    pub silences: BTreeMap<(SagaId, u32), u32>,
}

/// A durable, idempotent saga participant: it applies each step at most
/// once, logs every outcome in `saga-participant/<name>` and answers only
/// once the outcome is durable. Its "effect" is the logged outcome itself;
/// a real service would change its own state in the same record.
///
/// Trace kinds (component [`Component::Saga`], key = saga id, value =
/// step): `step_applied`, `step_refused`, `step_undone`, `step_voided`,
/// when durable.
pub struct SagaParticipant<M> {
    log: String,
    ledger: StepLedger,
    script: ParticipantScript,
    /// Answers waiting for the sync with this tag, with the fact to report.
    unsynced: BTreeMap<u64, Answer>,
    next_tag: u64,
    world: PhantomData<fn(M)>,
}

/// An answer waiting for the participant's log to be durable.
#[derive(Clone, Copy, Debug)]
struct Answer {
    to: ProcessId,
    answer: SagaProtocol,
    /// The trace kind of the fact it reports, if it reports a new one.
    fact: Option<&'static str>,
}

/// A participant's log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LedgerRecord {
    saga: SagaId,
    step: u32,
    outcome: StepOutcome,
}

impl<M: Carry<SagaProtocol>> SagaParticipant<M> {
    /// A participant that does every step it is asked.
    pub fn new(name: &str) -> SagaParticipant<M> {
        SagaParticipant::with_script(name, ParticipantScript::default())
    }

    /// A participant that plays `script`.
    pub fn with_script(name: &str, script: ParticipantScript) -> SagaParticipant<M> {
        SagaParticipant {
            log: format!("saga-participant/{name}"),
            ledger: StepLedger::default(),
            script,
            unsynced: BTreeMap::new(),
            next_tag: 0,
            world: PhantomData,
        }
    }

    /// Its ledger (durable outcomes, plus any not yet synced).
    pub fn ledger(&self) -> &StepLedger {
        &self.ledger
    }

    fn remember(&mut self, ctx: &mut Ctx<'_, M>, saga: SagaId, step: u32, outcome: StepOutcome) {
        self.ledger.record(saga, step, outcome);
        ctx.append(&self.log, postcard::to_stdvec(&LedgerRecord { saga, step, outcome }).unwrap());
    }

    /// Answers after a sync, so the answer never runs ahead of the log.
    fn answer(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        to: ProcessId,
        answer: SagaProtocol,
        fact: Option<&'static str>,
    ) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.unsynced.insert(tag, Answer { to, answer, fact });
        ctx.sync(tag);
    }
}

fn take_one(counts: &mut BTreeMap<(SagaId, u32), u32>, key: (SagaId, u32)) -> bool {
    match counts.get_mut(&key) {
        Some(left) if *left > 0 => {
            if *left != u32::MAX {
                *left -= 1;
            }
            true
        }
        _ => false,
    }
}

impl<M: Carry<SagaProtocol>> Process<M> for SagaParticipant<M> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        for bytes in ctx.read_log(&self.log) {
            let record: LedgerRecord =
                postcard::from_bytes(bytes).expect("the participant log holds ledger records");
            self.ledger.record(record.saga, record.step, record.outcome);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        match message {
            SagaProtocol::Execute { saga, step, after_pivot } => {
                if take_one(&mut self.script.silences, (saga, step)) {
                    ctx.count("saga.participant_silences", 1);
                    return;
                }
                let executed = SagaProtocol::Executed { saga, step };
                let failed = SagaProtocol::Failed { saga, step };
                match self.ledger.on_execute(saga, step, after_pivot) {
                    LedgerAction::RepeatExecuted => self.answer(ctx, from, executed, None),
                    LedgerAction::Evaluate => {
                        if take_one(&mut self.script.refusals, (saga, step)) {
                            self.remember(ctx, saga, step, StepOutcome::Failed);
                            self.answer(ctx, from, failed, Some("step_refused"));
                        } else {
                            self.remember(ctx, saga, step, StepOutcome::Executed);
                            self.answer(ctx, from, executed, Some("step_applied"));
                        }
                    }
                    _ => self.answer(ctx, from, failed, None),
                }
            }
            SagaProtocol::Compensate { saga, step } => {
                let compensated = SagaProtocol::Compensated { saga, step };
                match self.ledger.on_compensate(saga, step) {
                    LedgerAction::Undo => {
                        self.remember(ctx, saga, step, StepOutcome::Undone);
                        self.answer(ctx, from, compensated, Some("step_undone"));
                    }
                    LedgerAction::Void => {
                        self.remember(ctx, saga, step, StepOutcome::Voided);
                        self.answer(ctx, from, compensated, Some("step_voided"));
                    }
                    _ => self.answer(ctx, from, compensated, None),
                }
            }
            _ => {}
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some(Answer { to, answer, fact }) = self.unsynced.remove(&tag) else { return };
        if let (
            Some(kind),
            SagaProtocol::Executed { saga, step }
            | SagaProtocol::Failed { saga, step }
            | SagaProtocol::Compensated { saga, step },
        ) = (fact, answer)
        {
            ctx.trace(Component::Saga, kind, saga.0, i64::from(step));
            ctx.count(&format!("saga.{kind}"), 1);
        }
        ctx.send(to, M::wrap(answer));
    }
}

#[cfg(test)]
mod tests;
