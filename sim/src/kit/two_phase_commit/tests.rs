//! Unit tests of the two-phase-commit state machines and configurations,
//! without a simulation.

use super::*;
use proptest::prelude::*;

const A: ProcessId = ProcessId(1);
const B: ProcessId = ProcessId(2);
const C: ProcessId = ProcessId(3);

fn prepared() -> TransactionPhase {
    TransactionPhase::Prepared { coordinator: ProcessId(0), since: LocalTime(0) }
}

#[test]
fn all_yes_commits_and_the_round_ends_when_all_acknowledge() {
    // Goal: the decision waits for the last Yes; the round for the last ack.
    let mut round = Round::new(3);
    assert_eq!(round.on_vote(A, Vote::Yes), None);
    assert_eq!(round.on_vote(A, Vote::Yes), None, "a duplicate vote counts once");
    assert_eq!(round.on_vote(B, Vote::Yes), None);
    assert_eq!(round.on_vote(C, Vote::Yes), Some(true));
    round.decide(true);
    assert!(round.awaits(A));
    assert!(!round.on_acknowledged(A));
    assert!(!round.on_acknowledged(A));
    assert!(!round.awaits(A));
    assert!(!round.on_acknowledged(B));
    assert!(round.on_acknowledged(C));
    assert_eq!(round.phase(), &RoundPhase::Ended { commit: true });
}

#[test]
fn one_no_or_a_timeout_aborts_and_late_votes_change_nothing() {
    // Goal: abort is decided at the first No, or when votes are missing at the timeout.
    let mut round = Round::new(3);
    round.on_vote(A, Vote::Yes);
    assert_eq!(round.on_vote(B, Vote::No), Some(false));
    round.decide(false);
    assert_eq!(round.on_vote(C, Vote::Yes), None);
    assert_eq!(round.on_prepare_timeout(), None);
    assert_eq!(round.decision(), Some(false));

    let mut waiting = Round::new(2);
    waiting.on_vote(A, Vote::Yes);
    assert_eq!(waiting.on_prepare_timeout(), Some(false));
}

#[test]
fn a_prepared_participant_is_locked_until_the_decision() {
    // Goal: Yes takes the lock; other transactions are refused until it is released.
    let mut ledger = TransactionLedger::default();
    let (one, two) = (TransactionId(1), TransactionId(2));
    assert_eq!(ledger.on_prepare(one, true), PrepareAction::Prepare);
    ledger.apply(one, prepared());
    assert_eq!(ledger.locked_by(), Some(one));
    assert_eq!(ledger.on_prepare(one, true), PrepareAction::RepeatYes);
    assert_eq!(ledger.on_prepare(two, true), PrepareAction::RefuseLocked);
    assert_eq!(ledger.on_decision(one, true), DecisionAction::Apply);
    ledger.apply(one, TransactionPhase::Committed);
    assert_eq!(ledger.locked_by(), None);
    assert_eq!(ledger.on_prepare(two, true), PrepareAction::Prepare);
    assert_eq!(ledger.on_prepare(one, true), PrepareAction::Ignore);
}

#[test]
fn decisions_that_contradict_what_a_participant_did_are_conflicts() {
    // Goal: the ledger detects broken atomicity rather than obeying.
    let mut ledger = TransactionLedger::default();
    let (voted_no, committed, unknown) = (TransactionId(1), TransactionId(2), TransactionId(3));
    assert_eq!(ledger.on_prepare(voted_no, false), PrepareAction::Refuse);
    ledger.apply(voted_no, TransactionPhase::Aborted);
    assert_eq!(ledger.on_prepare(voted_no, true), PrepareAction::RepeatNo);
    assert_eq!(ledger.on_decision(voted_no, true), DecisionAction::Conflict);
    assert_eq!(ledger.on_decision(voted_no, false), DecisionAction::Repeat);
    ledger.apply(committed, prepared());
    ledger.apply(committed, TransactionPhase::Committed);
    assert_eq!(ledger.on_decision(committed, false), DecisionAction::Conflict);
    assert_eq!(ledger.on_decision(unknown, true), DecisionAction::Conflict);
    assert_eq!(ledger.on_decision(unknown, false), DecisionAction::AbortUnprepared);
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    // Goal: each bad value is caught when the process is built, with its field.
    let good = TwoPhaseCommitConfig::new("orders", vec![A, B]);
    let field = |config: TwoPhaseCommitConfig| {
        TwoPhaseCoordinator::<TwoPhaseProtocol>::new(config).err().unwrap().field
    };
    assert_eq!(
        field(TwoPhaseCommitConfig { participants: vec![], ..good.clone() }),
        "two_phase_commit.participants"
    );
    assert_eq!(
        field(TwoPhaseCommitConfig { participants: vec![A, A], ..good.clone() }),
        "two_phase_commit.participants"
    );
    assert_eq!(
        field(TwoPhaseCommitConfig { prepare_timeout: SimDuration::ZERO, ..good.clone() }),
        "two_phase_commit.prepare_timeout"
    );
    assert_eq!(
        field(TwoPhaseCommitConfig { resend_interval: SimDuration::ZERO, ..good.clone() }),
        "two_phase_commit.resend_interval"
    );
    assert_eq!(
        field(TwoPhaseCommitConfig { active_max: 0, ..good.clone() }),
        "two_phase_commit.active_max"
    );
    assert_eq!(
        field(TwoPhaseCommitConfig { name: String::new(), ..good }),
        "two_phase_commit.name"
    );

    let participant = ParticipantConfig::new("stock");
    let error = TwoPhaseParticipant::<TwoPhaseProtocol>::new(ParticipantConfig {
        decision_timeout: SimDuration::ZERO,
        ..participant
    })
    .err()
    .unwrap();
    assert_eq!(error.field, "two_phase_commit.participant.decision_timeout");
    assert_eq!(
        error.to_string(),
        "two_phase_commit.participant.decision_timeout = 0ns: expected a positive duration"
    );
}

proptest! {
    /// Law (coordinator alone): whatever order and duplication of votes
    /// and timeouts, the round commits only if every participant voted
    /// Yes, and never changes its decision.
    #[test]
    fn a_round_commits_only_with_every_yes_and_never_changes_its_mind(
        events in prop::collection::vec((0u32..4, prop::option::of(any::<bool>())), 0..24),
    ) {
        let mut round = Round::new(4);
        let mut yes = BTreeSet::new();
        let mut no = false;
        let mut decided = None;
        for (participant, vote) in events {
            // `None` stands for the prepare timeout firing.
            let decision = match vote {
                Some(true) => {
                    if decided.is_none() { yes.insert(participant); }
                    round.on_vote(ProcessId(participant), Vote::Yes)
                }
                Some(false) => {
                    if decided.is_none() { no = true; }
                    round.on_vote(ProcessId(participant), Vote::No)
                }
                None => round.on_prepare_timeout(),
            };
            if let Some(commit) = decision {
                prop_assert!(decided.is_none(), "decided twice");
                prop_assert_eq!(commit, yes.len() == 4 && !no);
                round.decide(commit);
                decided = Some(commit);
            }
            prop_assert_eq!(round.decision(), decided);
        }
    }
}
