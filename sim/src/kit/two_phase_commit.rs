//! Two-phase commit: a coordinator asks every participant to prepare, and
//! commits only if all of them vote yes; a participant that voted yes holds
//! its lock, uncertain, until it hears the decision.
//!
//! *Reactive Microsystems*, ch. 6, calls two-phase commit "the
//! anti-availability protocol": atomicity across services is bought by
//! making every participant wait for every other and for the coordinator.
//! This module exists to show that cost in the trace. A participant down
//! during the prepare phase makes the whole transaction abort; a
//! coordinator down after collecting the votes leaves every prepared
//! participant locked for as long as it is down (`blocked` events, and the
//! lock durations in `committed`/`aborted`). The saga module is the
//! alternative the report recommends; a test compares the two.
//!
//! The pieces:
//! - [`Round`]: the coordinator's pure state machine for one transaction
//!   (collect votes, decide, collect acknowledgements).
//! - [`TransactionLedger`]: a participant's pure state machine (prepare
//!   and lock, refuse when locked, apply a decision, detect a decision that
//!   contradicts an earlier one).
//! - [`TwoPhaseCoordinator`] and [`TwoPhaseParticipant`]: the processes,
//!   generic over the world's message type through
//!   [`Carry<TwoPhaseProtocol>`](Carry).
//!
//! # The protocol as implemented
//!
//! 1. A client sends `BeginTransaction`. The coordinator logs `Begun` and,
//!    once it is durable, sends `Prepare` to every participant and arms the
//!    prepare timeout.
//! 2. A participant votes `No` if its script says so or if its resource is
//!    locked by another transaction it is uncertain about (a lock
//!    conflict). To vote `Yes` it logs `Prepared` and syncs first: from
//!    then on it may not decide alone.
//! 3. With every vote `Yes` the coordinator decides commit; with any `No`,
//!    or when the prepare timeout fires first (a participant down or cut
//!    off), it decides abort. The decision is logged and synced before
//!    anyone hears it, then sent to every participant and to the client,
//!    and re-sent every `resend_interval` to participants that have not
//!    acknowledged. When all have, the coordinator logs `Ended`.
//! 4. A participant applies the decision durably, releases its lock and
//!    acknowledges.
//!
//! A prepared participant that hears nothing for `decision_timeout` is
//! **blocked**: it traces `blocked` with how long it has been waiting, asks
//! the coordinator (`QueryDecision`) and keeps waiting; it never decides
//! alone. With cooperative termination (a participant's `peers` not
//! empty) it asks its peers too: a peer that knows the decision tells it,
//! and a peer that has not voted yet aborts at once (durably) and says so,
//! since the coordinator cannot commit without its vote. When every peer is
//! prepared too, cooperative termination blocks as well, which is the
//! point.
//!
//! The coordinator uses presumed abort: asked about a transaction it does
//! not know, it answers `Abort`. After a crash it replays its log: a
//! transaction begun but undecided is aborted (nobody can have committed
//! it), a decided one that had not ended has its decision re-sent; both
//! are traced as `recovered`. Participants replay their log too and ask
//! about anything still prepared.
//!
//! Transaction ids must be unique across coordinators: a participant may
//! serve several, and answers whichever sent the `Prepare`.
//!
//! # Example
//!
//! ```
//! use sim::kit::two_phase_commit::{
//!     ParticipantConfig, TransactionId, TwoPhaseCommitConfig, TwoPhaseCoordinator,
//!     TwoPhaseParticipant, TwoPhaseProtocol,
//! };
//! use sim::{NodeConfig, Seed, Sim, SimConfig, SimDuration, SimTime};
//!
//! let mut sim: Sim<TwoPhaseProtocol> = Sim::new(SimConfig::new(Seed(1)));
//! let nodes: Vec<_> = (0..3).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
//! let participant = TwoPhaseParticipant::new(ParticipantConfig::new("stock")).unwrap();
//! let a = sim.spawn(nodes[1], "a", { let p = participant.clone(); move || p.clone() });
//! let b = sim.spawn(nodes[2], "b", move || participant.clone());
//! let config = TwoPhaseCommitConfig::new("orders", vec![a, b]);
//! let coordinator = TwoPhaseCoordinator::new(config).unwrap();
//! let c = sim.spawn(nodes[0], "coordinator", move || coordinator.clone());
//! sim.post(SimTime::ZERO, c, TwoPhaseProtocol::BeginTransaction { transaction: TransactionId(1) });
//! sim.run();
//! let state = sim.process_state::<TwoPhaseParticipant<TwoPhaseProtocol>>(a).unwrap();
//! assert!(state.ledger().is_committed(TransactionId(1)));
//! ```

use crate::clock::LocalTime;
use crate::ids::{EXTERNAL, ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

/// One distributed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionId(pub u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// A participant's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    /// Prepared: will commit if told to, and holds its lock until told.
    Yes,
    /// Will not commit; the transaction must abort.
    No,
}

/// The messages of two-phase commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoPhaseProtocol {
    /// Client to coordinator: run a transaction over the participants.
    BeginTransaction {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Coordinator to participant: phase 1, vote.
    Prepare {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Participant to coordinator: its vote.
    Voted {
        /// The transaction.
        transaction: TransactionId,
        /// The vote.
        vote: Vote,
    },
    /// Phase 2: make the transaction's effects permanent.
    Commit {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Phase 2: undo the transaction's effects.
    Abort {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Participant to coordinator: the decision is applied.
    Acknowledged {
        /// The transaction.
        transaction: TransactionId,
    },
    /// A blocked participant asks the coordinator (or a peer) for the
    /// decision.
    QueryDecision {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Coordinator to client: committed everywhere (or being).
    TransactionCommitted {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Coordinator to client: aborted.
    TransactionAborted {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Coordinator to client: too many transactions in progress.
    TransactionRejected {
        /// The transaction.
        transaction: TransactionId,
    },
}

impl TwoPhaseProtocol {
    /// The variant's name, for a world's [`Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            TwoPhaseProtocol::BeginTransaction { .. } => "BeginTransaction",
            TwoPhaseProtocol::Prepare { .. } => "Prepare",
            TwoPhaseProtocol::Voted { .. } => "Voted",
            TwoPhaseProtocol::Commit { .. } => "Commit",
            TwoPhaseProtocol::Abort { .. } => "Abort",
            TwoPhaseProtocol::Acknowledged { .. } => "Acknowledged",
            TwoPhaseProtocol::QueryDecision { .. } => "QueryDecision",
            TwoPhaseProtocol::TransactionCommitted { .. } => "TransactionCommitted",
            TwoPhaseProtocol::TransactionAborted { .. } => "TransactionAborted",
            TwoPhaseProtocol::TransactionRejected { .. } => "TransactionRejected",
        }
    }

    /// The transaction it is about.
    pub fn transaction(&self) -> TransactionId {
        match *self {
            TwoPhaseProtocol::BeginTransaction { transaction }
            | TwoPhaseProtocol::Prepare { transaction }
            | TwoPhaseProtocol::Voted { transaction, .. }
            | TwoPhaseProtocol::Commit { transaction }
            | TwoPhaseProtocol::Abort { transaction }
            | TwoPhaseProtocol::Acknowledged { transaction }
            | TwoPhaseProtocol::QueryDecision { transaction }
            | TwoPhaseProtocol::TransactionCommitted { transaction }
            | TwoPhaseProtocol::TransactionAborted { transaction }
            | TwoPhaseProtocol::TransactionRejected { transaction } => transaction,
        }
    }

    /// A stable digest of the content, for a world's [`Message::digest`].
    pub fn digest(&self) -> u64 {
        let code: u64 = match self {
            TwoPhaseProtocol::BeginTransaction { .. } => 1,
            TwoPhaseProtocol::Prepare { .. } => 2,
            TwoPhaseProtocol::Voted { vote: Vote::Yes, .. } => 3,
            TwoPhaseProtocol::Voted { vote: Vote::No, .. } => 4,
            TwoPhaseProtocol::Commit { .. } => 5,
            TwoPhaseProtocol::Abort { .. } => 6,
            TwoPhaseProtocol::Acknowledged { .. } => 7,
            TwoPhaseProtocol::QueryDecision { .. } => 8,
            TwoPhaseProtocol::TransactionCommitted { .. } => 9,
            TwoPhaseProtocol::TransactionAborted { .. } => 10,
            TwoPhaseProtocol::TransactionRejected { .. } => 11,
        };
        (code << 56) ^ self.transaction().0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn decision(transaction: TransactionId, commit: bool) -> TwoPhaseProtocol {
        if commit {
            TwoPhaseProtocol::Commit { transaction }
        } else {
            TwoPhaseProtocol::Abort { transaction }
        }
    }
}

/// A world made only of two-phase-commit messages can use the protocol
/// itself as its message type.
impl Message for TwoPhaseProtocol {
    fn label(&self) -> &'static str {
        TwoPhaseProtocol::label(self)
    }
    fn digest(&self) -> u64 {
        TwoPhaseProtocol::digest(self)
    }
}

impl Carry<TwoPhaseProtocol> for TwoPhaseProtocol {
    fn wrap(inner: TwoPhaseProtocol) -> TwoPhaseProtocol {
        inner
    }
    fn unwrap(self) -> Result<TwoPhaseProtocol, TwoPhaseProtocol> {
        Ok(self)
    }
}

/// How a coordinator is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwoPhaseCommitConfig {
    /// Its name; its log is `two-phase-commit/<name>`.
    pub name: String,
    /// Every transaction runs over all of these (distinct, at least one).
    pub participants: Vec<ProcessId>,
    /// How long to wait for all votes before aborting.
    pub prepare_timeout: SimDuration,
    /// How often to re-send a decision to participants that have not
    /// acknowledged it.
    pub resend_interval: SimDuration,
    /// How many transactions may be in progress at once; more are
    /// rejected, so the coordinator's memory of open rounds is bounded.
    pub active_max: u32,
}

impl TwoPhaseCommitConfig {
    /// Defaults: a 1 s prepare timeout, re-sends every 200 ms, 1024
    /// transactions in progress at most.
    pub fn new(name: impl Into<String>, participants: Vec<ProcessId>) -> TwoPhaseCommitConfig {
        TwoPhaseCommitConfig {
            name: name.into(),
            participants,
            prepare_timeout: SimDuration::from_secs(1),
            resend_interval: SimDuration::from_millis(200),
            active_max: 1024,
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("two_phase_commit.name", "\"\"", "a non-empty name"));
        }
        if self.participants.is_empty() {
            return Err(ConfigError::new(
                "two_phase_commit.participants",
                "[]",
                "at least one participant",
            ));
        }
        let distinct: BTreeSet<ProcessId> = self.participants.iter().copied().collect();
        if distinct.len() != self.participants.len() {
            return Err(ConfigError::new(
                "two_phase_commit.participants",
                format!("{:?}", self.participants),
                "distinct processes",
            ));
        }
        for (field, value) in [
            ("two_phase_commit.prepare_timeout", self.prepare_timeout),
            ("two_phase_commit.resend_interval", self.resend_interval),
        ] {
            if value == SimDuration::ZERO {
                return Err(ConfigError::new(field, value, "a positive duration"));
            }
        }
        if self.active_max == 0 {
            return Err(ConfigError::new("two_phase_commit.active_max", 0, "at least 1"));
        }
        Ok(())
    }
}

/// How a participant is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantConfig {
    /// Its name; its log is `two-phase-commit-participant/<name>`.
    pub name: String,
    /// How long a prepared participant waits for the decision before it
    /// reports itself blocked and asks again (and again, each period).
    pub decision_timeout: SimDuration,
    /// Other participants to ask when blocked (cooperative termination);
    /// empty for the simple blocking protocol.
    pub peers: Vec<ProcessId>,
    /// Transactions it votes `No` on (a scripted refusal, e.g. out of
    /// stock).
    pub votes_no: BTreeSet<TransactionId>,
}

impl ParticipantConfig {
    /// Defaults: asks for the decision every 500 ms when blocked, no
    /// peers, votes `Yes` unless its resource is locked.
    pub fn new(name: impl Into<String>) -> ParticipantConfig {
        ParticipantConfig {
            name: name.into(),
            decision_timeout: SimDuration::from_millis(500),
            peers: Vec::new(),
            votes_no: BTreeSet::new(),
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new(
                "two_phase_commit.participant.name",
                "\"\"",
                "a non-empty name",
            ));
        }
        if self.decision_timeout == SimDuration::ZERO {
            return Err(ConfigError::new(
                "two_phase_commit.participant.decision_timeout",
                self.decision_timeout,
                "a positive duration",
            ));
        }
        Ok(())
    }
}

/// Where the coordinator is with one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundPhase {
    /// Collecting votes; these voted `Yes` so far.
    Preparing {
        /// Participants that voted `Yes`.
        yes: BTreeSet<ProcessId>,
    },
    /// Decided; these acknowledged so far.
    Decided {
        /// Commit or abort.
        commit: bool,
        /// Participants that applied it.
        acknowledged: BTreeSet<ProcessId>,
    },
    /// Every participant applied the decision.
    Ended {
        /// Commit or abort.
        commit: bool,
    },
}

/// The coordinator's pure state machine for one transaction.
///
/// ```
/// use sim::kit::two_phase_commit::{Round, Vote};
/// use sim::ProcessId;
///
/// let mut round = Round::new(2);
/// assert_eq!(round.on_vote(ProcessId(1), Vote::Yes), None);
/// assert_eq!(round.on_vote(ProcessId(2), Vote::Yes), Some(true)); // all yes: commit
/// round.decide(true);
/// assert!(!round.on_acknowledged(ProcessId(1)));
/// assert!(round.on_acknowledged(ProcessId(2))); // everyone applied it
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    participant_count: usize,
    phase: RoundPhase,
}

impl Round {
    /// A round over `participant_count` participants, collecting votes.
    pub fn new(participant_count: usize) -> Round {
        Round { participant_count, phase: RoundPhase::Preparing { yes: BTreeSet::new() } }
    }

    /// Where it is.
    pub fn phase(&self) -> &RoundPhase {
        &self.phase
    }

    /// The decision, once there is one.
    pub fn decision(&self) -> Option<bool> {
        match self.phase {
            RoundPhase::Preparing { .. } => None,
            RoundPhase::Decided { commit, .. } | RoundPhase::Ended { commit } => Some(commit),
        }
    }

    /// Counts a vote; returns the decision it makes (`true`: commit),
    /// if it makes one. Votes after the decision change nothing.
    pub fn on_vote(&mut self, participant: ProcessId, vote: Vote) -> Option<bool> {
        let RoundPhase::Preparing { yes } = &mut self.phase else { return None };
        match vote {
            Vote::No => Some(false),
            Vote::Yes => {
                yes.insert(participant);
                (yes.len() == self.participant_count).then_some(true)
            }
        }
    }

    /// The prepare timeout fired: abort, unless already decided.
    pub fn on_prepare_timeout(&self) -> Option<bool> {
        matches!(self.phase, RoundPhase::Preparing { .. }).then_some(false)
    }

    /// Records the decision.
    ///
    /// # Panics
    /// If a different decision was recorded: a coordinator never changes
    /// its mind.
    pub fn decide(&mut self, commit: bool) {
        if let Some(earlier) = self.decision() {
            assert_eq!(earlier, commit, "a decided transaction cannot be decided otherwise");
            return;
        }
        self.phase = RoundPhase::Decided { commit, acknowledged: BTreeSet::new() };
    }

    /// Counts an acknowledgement; returns whether every participant has
    /// now applied the decision (the round just ended).
    pub fn on_acknowledged(&mut self, participant: ProcessId) -> bool {
        let RoundPhase::Decided { commit, acknowledged } = &mut self.phase else { return false };
        acknowledged.insert(participant);
        if acknowledged.len() == self.participant_count {
            self.phase = RoundPhase::Ended { commit: *commit };
            return true;
        }
        false
    }

    /// Whether `participant` still has to acknowledge the decision.
    pub fn awaits(&self, participant: ProcessId) -> bool {
        matches!(&self.phase, RoundPhase::Decided { acknowledged, .. } if !acknowledged.contains(&participant))
    }

    /// Marks the round ended (replay).
    pub fn end(&mut self) {
        let commit = self.decision().expect("only a decided round ends");
        self.phase = RoundPhase::Ended { commit };
    }
}

/// A coordinator's log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorRecord {
    /// A transaction began, for `client`.
    Begun {
        /// The transaction.
        transaction: TransactionId,
        /// Who asked.
        client: ProcessId,
    },
    /// The decision.
    Decided {
        /// The transaction.
        transaction: TransactionId,
        /// Commit or abort.
        commit: bool,
    },
    /// Every participant applied the decision.
    Ended {
        /// The transaction.
        transaction: TransactionId,
    },
}

/// Where a participant is with one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionPhase {
    /// Voted `Yes`: locked and uncertain until the decision comes.
    Prepared {
        /// Who to ask for the decision.
        coordinator: ProcessId,
        /// The participant's clock when it prepared.
        since: LocalTime,
    },
    /// Committed.
    Committed,
    /// Aborted (voted `No`, told to abort, or aborted unilaterally before
    /// voting).
    Aborted,
}

/// A participant's log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    /// The transaction.
    pub transaction: TransactionId,
    /// Its new phase.
    pub phase: TransactionPhase,
}

/// What a participant does with a `Prepare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareAction {
    /// Log `Prepared`, take the lock, then vote `Yes`.
    Prepare,
    /// Already prepared: vote `Yes` again.
    RepeatYes,
    /// Vote `No` and log `Aborted`: unwilling.
    Refuse,
    /// Vote `No` and log `Aborted`: the resource is locked by another
    /// transaction this participant is uncertain about.
    RefuseLocked,
    /// Already aborted: vote `No` again.
    RepeatNo,
    /// Already committed: a stale duplicate, nothing to say.
    Ignore,
}

/// What a participant does with a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionAction {
    /// Log it, release the lock, acknowledge.
    Apply,
    /// Already applied: acknowledge again.
    Repeat,
    /// An abort for a transaction it never prepared: log `Aborted` (so a
    /// late `Prepare` is refused) and acknowledge.
    AbortUnprepared,
    /// The decision contradicts what it did (commit after a `No`, abort
    /// after a commit, commit without a `Yes`): atomicity is broken.
    Conflict,
}

/// A participant's pure state machine: the phase of every transaction it
/// has seen, and its one resource lock.
///
/// ```
/// use sim::kit::two_phase_commit::{PrepareAction, TransactionId, TransactionLedger, TransactionPhase};
/// use sim::{LocalTime, ProcessId};
///
/// let mut ledger = TransactionLedger::default();
/// assert_eq!(ledger.on_prepare(TransactionId(1), true), PrepareAction::Prepare);
/// ledger.apply(TransactionId(1), TransactionPhase::Prepared { coordinator: ProcessId(0), since: LocalTime(0) });
/// // While uncertain about tx1, the resource is not available to tx2.
/// assert_eq!(ledger.on_prepare(TransactionId(2), true), PrepareAction::RefuseLocked);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionLedger {
    phases: BTreeMap<TransactionId, TransactionPhase>,
    locked_by: Option<TransactionId>,
}

impl TransactionLedger {
    /// What to do with `Prepare { transaction }`; `willing` is whether the
    /// participant would vote `Yes` if nothing stood in the way.
    pub fn on_prepare(&self, transaction: TransactionId, willing: bool) -> PrepareAction {
        match self.phases.get(&transaction) {
            Some(TransactionPhase::Prepared { .. }) => PrepareAction::RepeatYes,
            Some(TransactionPhase::Aborted) => PrepareAction::RepeatNo,
            Some(TransactionPhase::Committed) => PrepareAction::Ignore,
            None if !willing => PrepareAction::Refuse,
            None if self.locked_by.is_some() => PrepareAction::RefuseLocked,
            None => PrepareAction::Prepare,
        }
    }

    /// What to do with a decision (`commit` or abort) for `transaction`.
    pub fn on_decision(&self, transaction: TransactionId, commit: bool) -> DecisionAction {
        match (self.phases.get(&transaction), commit) {
            (Some(TransactionPhase::Prepared { .. }), _) => DecisionAction::Apply,
            (Some(TransactionPhase::Committed), true)
            | (Some(TransactionPhase::Aborted), false) => DecisionAction::Repeat,
            (None, false) => DecisionAction::AbortUnprepared,
            _ => DecisionAction::Conflict,
        }
    }

    /// Moves `transaction` to `phase`, taking or releasing the lock.
    ///
    /// # Panics
    /// If preparing while the lock is held by another transaction: the
    /// caller must have asked [`TransactionLedger::on_prepare`].
    pub fn apply(&mut self, transaction: TransactionId, phase: TransactionPhase) {
        match phase {
            TransactionPhase::Prepared { .. } => {
                assert!(
                    self.locked_by.is_none_or(|holder| holder == transaction),
                    "{transaction} prepared while {:?} holds the lock",
                    self.locked_by
                );
                self.locked_by = Some(transaction);
            }
            TransactionPhase::Committed | TransactionPhase::Aborted => {
                if self.locked_by == Some(transaction) {
                    self.locked_by = None;
                }
            }
        }
        self.phases.insert(transaction, phase);
    }

    /// The phase of `transaction`, if seen.
    pub fn phase(&self, transaction: TransactionId) -> Option<TransactionPhase> {
        self.phases.get(&transaction).copied()
    }

    /// Whether `transaction` committed here.
    pub fn is_committed(&self, transaction: TransactionId) -> bool {
        self.phase(transaction) == Some(TransactionPhase::Committed)
    }

    /// The transaction holding the lock, uncertain, if any.
    pub fn locked_by(&self) -> Option<TransactionId> {
        self.locked_by
    }

    /// Every transaction seen, with its phase.
    pub fn phases(&self) -> impl Iterator<Item = (TransactionId, TransactionPhase)> + '_ {
        self.phases.iter().map(|(transaction, phase)| (*transaction, *phase))
    }
}

/// What to do once a sync completes: facts to trace, messages to send, a
/// timer to arm. Nothing leaves a process before the state it reports is
/// durable.
#[derive(Clone, Debug, Default)]
struct Deferred {
    facts: Vec<(&'static str, TransactionId, i64)>,
    messages: Vec<(ProcessId, TwoPhaseProtocol)>,
    arm: Option<(TransactionId, SimDuration)>,
}

fn send_all<M: Carry<TwoPhaseProtocol>>(
    ctx: &mut Ctx<'_, M>,
    messages: impl IntoIterator<Item = (ProcessId, TwoPhaseProtocol)>,
) {
    for (to, message) in messages {
        if to != EXTERNAL {
            ctx.send(to, M::wrap(message));
        }
    }
}

/// The two-phase-commit coordinator. Trace kinds (component
/// [`Component::TwoPhaseCommit`], key = transaction id): `committed` and
/// `aborted` when the decision is durable (value = `Yes` votes counted);
/// `recovered` after a restart for each transaction it had not finished
/// (value 1: commit re-sent, 0: abort); `rejected` beyond `active_max`.
///
/// `active_max` bounds the transactions in progress; ended ones stay
/// remembered (one small entry each, as in its log, which is never
/// compacted) so that a late query or a repeated begin gets the same
/// answer.
pub struct TwoPhaseCoordinator<M> {
    config: TwoPhaseCommitConfig,
    log: String,
    rounds: BTreeMap<TransactionId, CoordinatorRound>,
    unsynced: BTreeMap<u64, Deferred>,
    next_tag: u64,
    world: PhantomData<fn(M)>,
}

#[derive(Clone, Debug)]
struct CoordinatorRound {
    round: Round,
    client: ProcessId,
    timer: Option<TimerId>,
}

impl<M> Clone for TwoPhaseCoordinator<M> {
    fn clone(&self) -> Self {
        TwoPhaseCoordinator {
            config: self.config.clone(),
            log: self.log.clone(),
            rounds: self.rounds.clone(),
            unsynced: self.unsynced.clone(),
            next_tag: self.next_tag,
            world: PhantomData,
        }
    }
}

impl<M: Carry<TwoPhaseProtocol>> TwoPhaseCoordinator<M> {
    /// A coordinator, if `config` is valid.
    pub fn new(config: TwoPhaseCommitConfig) -> Result<TwoPhaseCoordinator<M>, ConfigError> {
        config.validate()?;
        let log = format!("two-phase-commit/{}", config.name);
        Ok(TwoPhaseCoordinator {
            config,
            log,
            rounds: BTreeMap::new(),
            unsynced: BTreeMap::new(),
            next_tag: 0,
            world: PhantomData,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &TwoPhaseCommitConfig {
        &self.config
    }

    /// The decision on `transaction`, if made (`true`: commit).
    pub fn decision(&self, transaction: TransactionId) -> Option<bool> {
        self.rounds.get(&transaction).and_then(|round| round.round.decision())
    }

    /// Every transaction it knows, with its round.
    pub fn rounds(&self) -> impl Iterator<Item = (TransactionId, &Round)> {
        self.rounds.iter().map(|(transaction, round)| (*transaction, &round.round))
    }

    fn in_progress(&self) -> usize {
        self.rounds
            .values()
            .filter(|round| !matches!(round.round.phase, RoundPhase::Ended { .. }))
            .count()
    }

    fn write(&mut self, ctx: &mut Ctx<'_, M>, record: CoordinatorRecord, then: Deferred) {
        ctx.append(&self.log, serde_json::to_vec(&record).expect("records serialise"));
        let tag = self.next_tag;
        self.next_tag += 1;
        self.unsynced.insert(tag, then);
        ctx.sync(tag);
    }

    fn begin(&mut self, ctx: &mut Ctx<'_, M>, client: ProcessId, transaction: TransactionId) {
        if let Some(round) = self.rounds.get(&transaction) {
            if let Some(commit) = round.round.decision() {
                send_all(ctx, [(client, outcome(transaction, commit))]);
            }
            return;
        }
        let in_progress = self.in_progress();
        if in_progress >= self.config.active_max as usize {
            ctx.trace(Component::TwoPhaseCommit, "rejected", transaction.0, in_progress as i64);
            ctx.count("two_phase_commit.rejected", 1);
            send_all(ctx, [(client, TwoPhaseProtocol::TransactionRejected { transaction })]);
            return;
        }
        let round = CoordinatorRound {
            round: Round::new(self.config.participants.len()),
            client,
            timer: None,
        };
        self.rounds.insert(transaction, round);
        let prepare = TwoPhaseProtocol::Prepare { transaction };
        let then = Deferred {
            facts: Vec::new(),
            messages: self.config.participants.iter().map(|p| (*p, prepare)).collect(),
            arm: Some((transaction, self.config.prepare_timeout)),
        };
        self.write(ctx, CoordinatorRecord::Begun { transaction, client }, then);
    }

    /// Records and (once durable) announces a decision.
    fn decide(&mut self, ctx: &mut Ctx<'_, M>, transaction: TransactionId, commit: bool) {
        let entry = self.rounds.get_mut(&transaction).expect("deciding a known transaction");
        let yes_votes = match &entry.round.phase {
            RoundPhase::Preparing { yes } => yes.len() as i64,
            _ => return,
        };
        entry.round.decide(commit);
        if let Some(timer) = entry.timer.take() {
            ctx.cancel_timer(timer);
        }
        let then = self.announcement(transaction, commit, yes_votes);
        self.write(ctx, CoordinatorRecord::Decided { transaction, commit }, then);
    }

    /// The decision to every participant and the client, the fact, and the
    /// re-send timer.
    fn announcement(&self, transaction: TransactionId, commit: bool, value: i64) -> Deferred {
        let entry = &self.rounds[&transaction];
        let decision = TwoPhaseProtocol::decision(transaction, commit);
        let mut messages: Vec<_> =
            self.config.participants.iter().map(|p| (*p, decision)).collect();
        messages.push((entry.client, outcome(transaction, commit)));
        Deferred {
            facts: vec![(if commit { "committed" } else { "aborted" }, transaction, value)],
            messages,
            arm: Some((transaction, self.config.resend_interval)),
        }
    }
}

fn outcome(transaction: TransactionId, commit: bool) -> TwoPhaseProtocol {
    if commit {
        TwoPhaseProtocol::TransactionCommitted { transaction }
    } else {
        TwoPhaseProtocol::TransactionAborted { transaction }
    }
}

impl<M: Carry<TwoPhaseProtocol>> Process<M> for TwoPhaseCoordinator<M> {
    /// Replays the log: undecided transactions are aborted, decided but
    /// unfinished ones have their decision re-sent.
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        let records: Vec<CoordinatorRecord> = ctx
            .read_log(&self.log)
            .iter()
            .map(|bytes| {
                serde_json::from_slice(bytes).expect("the coordinator log holds its records")
            })
            .collect();
        let participant_count = self.config.participants.len();
        for record in records {
            match record {
                CoordinatorRecord::Begun { transaction, client } => {
                    let round = Round::new(participant_count);
                    self.rounds
                        .insert(transaction, CoordinatorRound { round, client, timer: None });
                }
                CoordinatorRecord::Decided { transaction, commit } => self
                    .rounds
                    .get_mut(&transaction)
                    .expect("decided after begun")
                    .round
                    .decide(commit),
                CoordinatorRecord::Ended { transaction } => {
                    self.rounds.get_mut(&transaction).expect("ended after begun").round.end()
                }
            }
        }
        let unfinished: Vec<(TransactionId, Option<bool>)> = self
            .rounds
            .iter()
            .filter(|(_, entry)| !matches!(entry.round.phase, RoundPhase::Ended { .. }))
            .map(|(transaction, entry)| (*transaction, entry.round.decision()))
            .collect();
        for (transaction, decision) in unfinished {
            let commit = decision.unwrap_or(false);
            ctx.trace(Component::TwoPhaseCommit, "recovered", transaction.0, i64::from(commit));
            ctx.count("two_phase_commit.recovered", 1);
            match decision {
                // Nobody can have committed: abort, durably first.
                None => self.decide(ctx, transaction, false),
                Some(commit) => {
                    let mut then = self.announcement(transaction, commit, 0);
                    then.facts.clear();
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.unsynced.insert(tag, then);
                    ctx.sync(tag);
                }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        match message {
            TwoPhaseProtocol::BeginTransaction { transaction } => {
                self.begin(ctx, from, transaction)
            }
            TwoPhaseProtocol::Voted { transaction, vote } => {
                if !self.config.participants.contains(&from) {
                    return;
                }
                let Some(entry) = self.rounds.get_mut(&transaction) else { return };
                if let Some(commit) = entry.round.on_vote(from, vote) {
                    self.decide(ctx, transaction, commit);
                }
            }
            TwoPhaseProtocol::Acknowledged { transaction } => {
                let Some(entry) = self.rounds.get_mut(&transaction) else { return };
                if entry.round.on_acknowledged(from) {
                    if let Some(timer) = entry.timer.take() {
                        ctx.cancel_timer(timer);
                    }
                    ctx.count("two_phase_commit.ended", 1);
                    self.write(ctx, CoordinatorRecord::Ended { transaction }, Deferred::default());
                }
            }
            TwoPhaseProtocol::QueryDecision { transaction } => {
                match self.rounds.get(&transaction).map(|entry| entry.round.decision()) {
                    Some(Some(commit)) => {
                        send_all(ctx, [(from, TwoPhaseProtocol::decision(transaction, commit))])
                    }
                    // Still collecting votes: the decision will come.
                    Some(None) => {}
                    // Presumed abort: it never began, or it ended long ago
                    // as an abort (a commit is remembered).
                    None => send_all(ctx, [(from, TwoPhaseProtocol::Abort { transaction })]),
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, tag: u64) {
        let transaction = TransactionId(tag);
        let Some(entry) = self.rounds.get_mut(&transaction) else { return };
        if entry.timer != Some(timer) {
            return;
        }
        entry.timer = None;
        match entry.round.phase.clone() {
            RoundPhase::Preparing { .. } => {
                ctx.count("two_phase_commit.prepare_timeouts", 1);
                self.decide(ctx, transaction, false);
            }
            RoundPhase::Decided { commit, .. } => {
                let decision = TwoPhaseProtocol::decision(transaction, commit);
                let waiting: Vec<_> = self
                    .config
                    .participants
                    .iter()
                    .filter(|p| entry.round.awaits(**p))
                    .map(|p| (*p, decision))
                    .collect();
                ctx.count("two_phase_commit.decision_resends", waiting.len() as u64);
                send_all(ctx, waiting);
                entry.timer = Some(ctx.set_timer(self.config.resend_interval, transaction.0));
            }
            RoundPhase::Ended { .. } => {}
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some(then) = self.unsynced.remove(&tag) else { return };
        for (kind, transaction, value) in then.facts {
            ctx.trace(Component::TwoPhaseCommit, kind, transaction.0, value);
            ctx.count(&format!("two_phase_commit.{kind}"), 1);
        }
        send_all(ctx, then.messages);
        if let Some((transaction, after)) = then.arm
            && let Some(entry) = self.rounds.get_mut(&transaction)
            && !matches!(entry.round.phase, RoundPhase::Ended { .. })
        {
            if let Some(timer) = entry.timer.take() {
                ctx.cancel_timer(timer);
            }
            entry.timer = Some(ctx.set_timer(after, transaction.0));
        }
    }
}

/// A two-phase-commit participant guarding one resource. Trace kinds
/// (component [`Component::TwoPhaseCommit`], key = transaction id):
/// `prepared` when its `Yes` is durable (value 0); `voted` (value 1: yes,
/// 0: no); `committed` and `aborted` when applied (value = how long the
/// lock was held, in ns of its clock; 0 if it was not held); `blocked`
/// each `decision_timeout` it waits prepared (value = ns since it
/// prepared); `recovered` after a restart for each transaction still
/// prepared (value = ns since it prepared); `conflicting_decision` if told
/// a decision that contradicts what it did (never, if the protocol holds).
pub struct TwoPhaseParticipant<M> {
    config: ParticipantConfig,
    log: String,
    ledger: TransactionLedger,
    timers: BTreeMap<TransactionId, TimerId>,
    unsynced: BTreeMap<u64, Deferred>,
    next_tag: u64,
    world: PhantomData<fn(M)>,
}

impl<M> Clone for TwoPhaseParticipant<M> {
    fn clone(&self) -> Self {
        TwoPhaseParticipant {
            config: self.config.clone(),
            log: self.log.clone(),
            ledger: self.ledger.clone(),
            timers: self.timers.clone(),
            unsynced: self.unsynced.clone(),
            next_tag: self.next_tag,
            world: PhantomData,
        }
    }
}

impl<M: Carry<TwoPhaseProtocol>> TwoPhaseParticipant<M> {
    /// A participant, if `config` is valid.
    pub fn new(config: ParticipantConfig) -> Result<TwoPhaseParticipant<M>, ConfigError> {
        config.validate()?;
        let log = format!("two-phase-commit-participant/{}", config.name);
        Ok(TwoPhaseParticipant {
            config,
            log,
            ledger: TransactionLedger::default(),
            timers: BTreeMap::new(),
            unsynced: BTreeMap::new(),
            next_tag: 0,
            world: PhantomData,
        })
    }

    /// Its ledger.
    pub fn ledger(&self) -> &TransactionLedger {
        &self.ledger
    }

    /// Its configuration.
    pub fn config(&self) -> &ParticipantConfig {
        &self.config
    }

    /// Logs `phase` (if any) and defers `then` until it is durable.
    fn write(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        transaction: TransactionId,
        phase: Option<TransactionPhase>,
        then: Deferred,
    ) {
        if let Some(phase) = phase {
            self.ledger.apply(transaction, phase);
            let record = ParticipantRecord { transaction, phase };
            ctx.append(&self.log, serde_json::to_vec(&record).expect("records serialise"));
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.unsynced.insert(tag, then);
        ctx.sync(tag);
    }

    fn prepare(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, transaction: TransactionId) {
        let willing = !self.config.votes_no.contains(&transaction);
        let yes = TwoPhaseProtocol::Voted { transaction, vote: Vote::Yes };
        let no = TwoPhaseProtocol::Voted { transaction, vote: Vote::No };
        match self.ledger.on_prepare(transaction, willing) {
            PrepareAction::Prepare => {
                let phase =
                    TransactionPhase::Prepared { coordinator: from, since: ctx.now_local() };
                let then = Deferred {
                    facts: vec![("prepared", transaction, 0), ("voted", transaction, 1)],
                    messages: vec![(from, yes)],
                    arm: Some((transaction, self.config.decision_timeout)),
                };
                self.write(ctx, transaction, Some(phase), then);
            }
            PrepareAction::RepeatYes => self.write(
                ctx,
                transaction,
                None,
                Deferred { messages: vec![(from, yes)], ..Deferred::default() },
            ),
            action @ (PrepareAction::Refuse | PrepareAction::RefuseLocked) => {
                if action == PrepareAction::RefuseLocked {
                    ctx.count("two_phase_commit.lock_conflicts", 1);
                }
                let then = Deferred {
                    facts: vec![("voted", transaction, 0), ("aborted", transaction, 0)],
                    messages: vec![(from, no)],
                    arm: None,
                };
                self.write(ctx, transaction, Some(TransactionPhase::Aborted), then);
            }
            PrepareAction::RepeatNo => self.write(
                ctx,
                transaction,
                None,
                Deferred { messages: vec![(from, no)], ..Deferred::default() },
            ),
            PrepareAction::Ignore => {}
        }
    }

    fn decision(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        transaction: TransactionId,
        commit: bool,
    ) {
        let previous = self.ledger.phase(transaction);
        // Acknowledge to the coordinator (a peer that answered a query
        // has no use for it).
        let coordinator = match previous {
            Some(TransactionPhase::Prepared { coordinator, .. }) => coordinator,
            _ => from,
        };
        let acknowledged = TwoPhaseProtocol::Acknowledged { transaction };
        match self.ledger.on_decision(transaction, commit) {
            DecisionAction::Apply => {
                let Some(TransactionPhase::Prepared { since, .. }) = previous else {
                    unreachable!()
                };
                let held = (ctx.now_local().as_nanos() - since.as_nanos()).max(0);
                ctx.observe("two_phase_commit.lock_held", SimDuration::from_nanos(held as u64));
                if let Some(timer) = self.timers.remove(&transaction) {
                    ctx.cancel_timer(timer);
                }
                let (phase, kind) = if commit {
                    (TransactionPhase::Committed, "committed")
                } else {
                    (TransactionPhase::Aborted, "aborted")
                };
                let then = Deferred {
                    facts: vec![(kind, transaction, held)],
                    messages: vec![(coordinator, acknowledged)],
                    arm: None,
                };
                self.write(ctx, transaction, Some(phase), then);
            }
            DecisionAction::Repeat => self.write(
                ctx,
                transaction,
                None,
                Deferred { messages: vec![(coordinator, acknowledged)], ..Deferred::default() },
            ),
            DecisionAction::AbortUnprepared => {
                let then = Deferred {
                    facts: vec![("aborted", transaction, 0)],
                    messages: vec![(coordinator, acknowledged)],
                    arm: None,
                };
                self.write(ctx, transaction, Some(TransactionPhase::Aborted), then);
            }
            DecisionAction::Conflict => {
                ctx.trace(
                    Component::TwoPhaseCommit,
                    "conflicting_decision",
                    transaction.0,
                    i64::from(commit),
                );
                ctx.count("two_phase_commit.conflicting_decisions", 1);
            }
        }
    }

    /// A peer asks what we know (cooperative termination).
    fn answer_peer(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, transaction: TransactionId) {
        match self.ledger.phase(transaction) {
            Some(TransactionPhase::Committed) => self.write(
                ctx,
                transaction,
                None,
                Deferred {
                    messages: vec![(from, TwoPhaseProtocol::Commit { transaction })],
                    ..Deferred::default()
                },
            ),
            Some(TransactionPhase::Aborted) => self.write(
                ctx,
                transaction,
                None,
                Deferred {
                    messages: vec![(from, TwoPhaseProtocol::Abort { transaction })],
                    ..Deferred::default()
                },
            ),
            // Uncertain too: nothing to say.
            Some(TransactionPhase::Prepared { .. }) => {}
            // Not voted yet: abort now, so the coordinator can never get
            // our Yes, and say so once that is durable.
            None => {
                let then = Deferred {
                    facts: vec![("aborted", transaction, 0)],
                    messages: vec![(from, TwoPhaseProtocol::Abort { transaction })],
                    arm: None,
                };
                self.write(ctx, transaction, Some(TransactionPhase::Aborted), then);
            }
        }
    }

    fn arm(&mut self, ctx: &mut Ctx<'_, M>, transaction: TransactionId, after: SimDuration) {
        if let Some(timer) = self.timers.remove(&transaction) {
            ctx.cancel_timer(timer);
        }
        self.timers.insert(transaction, ctx.set_timer(after, transaction.0));
    }

    fn ask(&self, ctx: &mut Ctx<'_, M>, transaction: TransactionId, coordinator: ProcessId) {
        let query = TwoPhaseProtocol::QueryDecision { transaction };
        send_all(ctx, [(coordinator, query)]);
        let me = ctx.me();
        send_all(
            ctx,
            self.config.peers.iter().filter(|peer| **peer != me).map(|peer| (*peer, query)),
        );
    }
}

impl<M: Carry<TwoPhaseProtocol>> Process<M> for TwoPhaseParticipant<M> {
    /// Replays the log; anything still prepared stays locked and is asked
    /// about at once.
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        let records: Vec<ParticipantRecord> = ctx
            .read_log(&self.log)
            .iter()
            .map(|bytes| {
                serde_json::from_slice(bytes).expect("the participant log holds its records")
            })
            .collect();
        for record in records {
            self.ledger.apply(record.transaction, record.phase);
        }
        let in_doubt: Vec<(TransactionId, ProcessId, LocalTime)> = self
            .ledger
            .phases()
            .filter_map(|(transaction, phase)| match phase {
                TransactionPhase::Prepared { coordinator, since } => {
                    Some((transaction, coordinator, since))
                }
                _ => None,
            })
            .collect();
        for (transaction, coordinator, since) in in_doubt {
            let waited = ctx.now_local().as_nanos() - since.as_nanos();
            ctx.trace(Component::TwoPhaseCommit, "recovered", transaction.0, waited);
            ctx.count("two_phase_commit.recovered", 1);
            self.ask(ctx, transaction, coordinator);
            self.arm(ctx, transaction, self.config.decision_timeout);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        match message {
            TwoPhaseProtocol::Prepare { transaction } => self.prepare(ctx, from, transaction),
            TwoPhaseProtocol::Commit { transaction } => self.decision(ctx, from, transaction, true),
            TwoPhaseProtocol::Abort { transaction } => self.decision(ctx, from, transaction, false),
            TwoPhaseProtocol::QueryDecision { transaction }
                if self.config.peers.contains(&from) =>
            {
                self.answer_peer(ctx, from, transaction)
            }
            _ => {}
        }
    }

    /// Still prepared after `decision_timeout`: blocked. Say so, ask again.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, tag: u64) {
        let transaction = TransactionId(tag);
        if self.timers.get(&transaction) != Some(&timer) {
            return;
        }
        self.timers.remove(&transaction);
        let Some(TransactionPhase::Prepared { coordinator, since }) =
            self.ledger.phase(transaction)
        else {
            return;
        };
        let waited = ctx.now_local().as_nanos() - since.as_nanos();
        ctx.trace(Component::TwoPhaseCommit, "blocked", transaction.0, waited);
        ctx.count("two_phase_commit.blocked", 1);
        self.ask(ctx, transaction, coordinator);
        self.arm(ctx, transaction, self.config.decision_timeout);
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some(then) = self.unsynced.remove(&tag) else { return };
        for (kind, transaction, value) in then.facts {
            ctx.trace(Component::TwoPhaseCommit, kind, transaction.0, value);
            ctx.count(&format!("two_phase_commit.participant_{kind}"), 1);
        }
        send_all(ctx, then.messages);
        if let Some((transaction, after)) = then.arm
            && matches!(self.ledger.phase(transaction), Some(TransactionPhase::Prepared { .. }))
        {
            self.arm(ctx, transaction, after);
        }
    }
}

#[cfg(test)]
mod tests;
