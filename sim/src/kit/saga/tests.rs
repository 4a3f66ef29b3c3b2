//! Unit tests of the saga state machine, its definition and the ledger,
//! without a simulation.

use super::*;
use proptest::prelude::*;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

/// Four steps on processes 1..=4, with the pivot (if any) at `pivot`.
fn saga_with(pivot: Option<u32>) -> Saga {
    let mut definition = SagaDefinition::new("order");
    for step in 0..4u32 {
        definition.steps.push(SagaStep {
            name: format!("step{step}"),
            participant: ProcessId(step + 1),
            timeout: ms(10),
            pivot: pivot == Some(step),
        });
    }
    Saga::new(definition).unwrap()
}

/// Feeds `input` to `state`, applies what it decides, and returns the
/// decision.
fn feed(state: &mut SagaState, input: SagaInput) -> SagaDecision {
    let decision = state.decide(input);
    if let SagaDecision::Log(records) = &decision {
        records.iter().for_each(|record| state.apply(record));
    }
    decision
}

fn begin(saga: &Saga) -> SagaState {
    saga.begin(SagaId(1), ProcessId(9), LocalTime(0)).0
}

#[test]
fn every_step_done_completes_the_saga() {
    // Goal: the happy path logs each step then Completed, and stops commanding.
    let saga = saga_with(None);
    let mut state = begin(&saga);
    for step in 0..4 {
        assert_eq!(state.command(), Some(SagaCommand::Execute { step, after_pivot: false }));
        feed(&mut state, SagaInput::Executed { step });
    }
    assert_eq!(state.phase(), SagaPhase::Completed);
    assert_eq!(state.command(), None);
}

#[test]
fn a_refused_step_compensates_the_steps_before_it_in_reverse_order() {
    // Goal: a refusal at step 2 undoes 1 then 0, never the refused step.
    let saga = saga_with(None);
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Executed { step: 0 });
    feed(&mut state, SagaInput::Executed { step: 1 });
    let decision = feed(&mut state, SagaInput::Failed { step: 2 });
    assert_eq!(
        decision,
        SagaDecision::Log(SagaRecords::one(SagaRecord::StepFailed { saga: SagaId(1), step: 2 }))
    );
    assert_eq!(state.command(), Some(SagaCommand::Compensate { step: 1 }));
    feed(&mut state, SagaInput::Compensated { step: 1 });
    assert_eq!(state.command(), Some(SagaCommand::Compensate { step: 0 }));
    let decision = feed(&mut state, SagaInput::Compensated { step: 0 });
    assert_eq!(
        decision,
        SagaDecision::Log(
            SagaRecords::one(SagaRecord::StepCompensated { saga: SagaId(1), step: 0 })
                .and(SagaRecord::Aborted { saga: SagaId(1) })
        )
    );
    assert_eq!(state.phase(), SagaPhase::Aborted);
}

#[test]
fn a_refused_first_step_aborts_at_once() {
    // Goal: nothing ran, so nothing is compensated.
    let saga = saga_with(None);
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Failed { step: 0 });
    assert_eq!(state.phase(), SagaPhase::Aborted);
}

#[test]
fn a_timed_out_step_is_compensated_itself_first() {
    // Goal: an unknown outcome is treated as possibly done: undo it too.
    let saga = saga_with(None);
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Executed { step: 0 });
    feed(&mut state, SagaInput::TimedOut);
    assert_eq!(state.phase(), SagaPhase::Compensating { step: 1 });
    // A compensation that times out is sent again, never given up.
    assert_eq!(state.decide(SagaInput::TimedOut), SagaDecision::ResendNow);
}

#[test]
fn the_pivot_is_asked_again_on_timeout_and_a_refusal_before_it_is_final() {
    // Goal: the pivot is never compensated; its refusal aborts what came before.
    let saga = saga_with(Some(2));
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Executed { step: 0 });
    feed(&mut state, SagaInput::Executed { step: 1 });
    assert_eq!(state.decide(SagaInput::TimedOut), SagaDecision::ResendNow);
    feed(&mut state, SagaInput::Failed { step: 2 });
    assert_eq!(state.phase(), SagaPhase::Compensating { step: 1 });
}

#[test]
fn past_the_pivot_steps_only_go_forward() {
    // Goal: after the pivot, refusals and timeouts are retried, never compensated.
    let saga = saga_with(Some(1));
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Executed { step: 0 });
    feed(&mut state, SagaInput::Executed { step: 1 });
    assert!(state.pivot_passed());
    assert_eq!(state.command(), Some(SagaCommand::Execute { step: 2, after_pivot: true }));
    assert_eq!(state.decide(SagaInput::Failed { step: 2 }), SagaDecision::ResendLater);
    assert_eq!(state.decide(SagaInput::TimedOut), SagaDecision::ResendNow);
    feed(&mut state, SagaInput::Executed { step: 2 });
    feed(&mut state, SagaInput::Executed { step: 3 });
    assert_eq!(state.phase(), SagaPhase::Completed);
}

#[test]
fn late_and_duplicate_answers_change_nothing() {
    // Goal: answers about another step, or after the end, are ignored.
    let saga = saga_with(None);
    let mut state = begin(&saga);
    feed(&mut state, SagaInput::Executed { step: 0 });
    assert_eq!(state.decide(SagaInput::Executed { step: 0 }), SagaDecision::Ignore);
    assert_eq!(state.decide(SagaInput::Compensated { step: 1 }), SagaDecision::Ignore);
    feed(&mut state, SagaInput::TimedOut);
    // The late answer of the timed-out step: its compensation is under way.
    assert_eq!(state.decide(SagaInput::Executed { step: 1 }), SagaDecision::Ignore);
    feed(&mut state, SagaInput::Compensated { step: 1 });
    feed(&mut state, SagaInput::Compensated { step: 0 });
    for input in [
        SagaInput::Executed { step: 0 },
        SagaInput::Failed { step: 0 },
        SagaInput::Compensated { step: 0 },
        SagaInput::TimedOut,
    ] {
        assert_eq!(state.decide(input), SagaDecision::Ignore);
    }
}

#[test]
fn replaying_the_records_rebuilds_the_same_state() {
    // Goal: the log is enough to resume: restore + apply = the live state.
    let saga = saga_with(None);
    let (mut live, started) = saga.begin(SagaId(3), ProcessId(9), LocalTime(5));
    let mut log = vec![started];
    for input in
        [SagaInput::Executed { step: 0 }, SagaInput::Executed { step: 1 }, SagaInput::TimedOut]
    {
        if let SagaDecision::Log(records) = live.decide(input) {
            records.iter().for_each(|record| live.apply(record));
            log.extend(records);
        }
    }
    let bytes: Vec<Vec<u8>> = log.iter().map(SagaRecord::encode).collect();
    let decoded: Vec<SagaRecord> = bytes.iter().map(|b| SagaRecord::decode(b)).collect();
    let mut replayed = saga.restore(&decoded[0]);
    decoded[1..].iter().for_each(|record| replayed.apply(record));
    assert_eq!(replayed, live);
    assert_eq!(replayed.command(), Some(SagaCommand::Compensate { step: 2 }));
}

#[test]
fn invalid_definitions_are_rejected_naming_the_field() {
    // Goal: each bad value is caught when the saga is built, with its field.
    let good = saga_with(None).definition().clone();
    let field = |definition: SagaDefinition| Saga::new(definition).unwrap_err().field;

    assert_eq!(field(SagaDefinition { steps: vec![], ..good.clone() }), "saga.steps");
    let mut zero_timeout = good.clone();
    zero_timeout.steps[2].timeout = SimDuration::ZERO;
    assert_eq!(field(zero_timeout), "saga.steps[2].timeout");
    let mut two_pivots = good.clone();
    two_pivots.steps[0].pivot = true;
    two_pivots.steps[3].pivot = true;
    assert_eq!(field(two_pivots), "saga.steps.pivot");
    assert_eq!(
        field(SagaDefinition { retry_interval: SimDuration::ZERO, ..good.clone() }),
        "saga.retry_interval"
    );
    assert_eq!(field(SagaDefinition { active_max: 0, ..good.clone() }), "saga.active_max");
    assert_eq!(field(SagaDefinition { name: String::new(), ..good.clone() }), "saga.name");
    let message = Saga::new(SagaDefinition { steps: vec![], ..good }).unwrap_err().to_string();
    assert_eq!(message, "saga.steps = []: expected at least one step");
}

#[test]
fn the_ledger_gives_each_command_effect_at_most_once() {
    // Goal: repeated commands repeat the first answer; compensation voids a step that never ran.
    let mut ledger = StepLedger::default();
    let saga = SagaId(1);
    assert_eq!(ledger.on_execute(saga, 0, false), LedgerAction::Evaluate);
    ledger.record(saga, 0, StepOutcome::Executed);
    assert_eq!(ledger.on_execute(saga, 0, false), LedgerAction::RepeatExecuted);
    assert_eq!(ledger.on_compensate(saga, 0), LedgerAction::Undo);
    ledger.record(saga, 0, StepOutcome::Undone);
    assert_eq!(ledger.on_compensate(saga, 0), LedgerAction::RepeatCompensated);
    assert_eq!(ledger.on_execute(saga, 0, false), LedgerAction::RepeatFailed);

    ledger.record(saga, 1, StepOutcome::Failed);
    assert_eq!(ledger.on_execute(saga, 1, false), LedgerAction::RepeatFailed);
    // Past the pivot a refusal is temporary: the retry is evaluated afresh.
    assert_eq!(ledger.on_execute(saga, 1, true), LedgerAction::Evaluate);
    assert_eq!(ledger.on_compensate(saga, 1), LedgerAction::Void);
}

/// What a participant does when asked, in the FSM-only law test.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Executed,
    Failed,
    TimedOut,
}

fn answer_strategy() -> impl Strategy<Value = Answer> {
    // Mostly successes, so that sagas often get past the pivot.
    prop_oneof![6 => Just(Answer::Executed), 2 => Just(Answer::Failed), 2 => Just(Answer::TimedOut)]
}

proptest! {
    /// Law: whatever the participants answer, a saga's log reads either
    /// "every step executed, completed", or "steps 0..k executed, then
    /// every one of them that may have run compensated in reverse order,
    /// aborted"; and once the pivot is passed it never compensates.
    #[test]
    fn a_saga_ends_all_done_or_all_compensated_in_reverse_order(
        pivot in prop::option::of(0u32..4),
        answers in prop::collection::vec(answer_strategy(), 64),
        compensation_timeouts in prop::collection::vec(any::<bool>(), 64),
    ) {
        let saga = saga_with(pivot);
        let (mut state, started) = saga.begin(SagaId(1), ProcessId(9), LocalTime(0));
        let mut log = vec![started];
        let mut answers = answers.into_iter().chain(std::iter::repeat(Answer::Executed));
        let mut timeouts = compensation_timeouts.into_iter().chain(std::iter::repeat(false));
        // Bounded: 64 scripted answers, then everything succeeds.
        for _ in 0..1_000 {
            let input = match state.command() {
                None => break,
                Some(SagaCommand::Execute { step, .. }) => match answers.next().unwrap() {
                    Answer::Executed => SagaInput::Executed { step },
                    Answer::Failed => SagaInput::Failed { step },
                    Answer::TimedOut => SagaInput::TimedOut,
                },
                Some(SagaCommand::Compensate { step }) => {
                    if timeouts.next().unwrap() { SagaInput::TimedOut } else { SagaInput::Compensated { step } }
                }
            };
            if let SagaDecision::Log(records) = state.decide(input) {
                for record in &records {
                    state.apply(record);
                    let compensating = matches!(state.phase(), SagaPhase::Compensating { .. });
                    prop_assert!(!(state.pivot_passed() && compensating), "compensating past the pivot");
                }
                log.extend(records);
            }
        }
        prop_assert!(state.is_finished());
        let executed: Vec<u32> = log.iter().filter_map(|r| match r {
            SagaRecord::StepExecuted { step, .. } => Some(*step),
            _ => None,
        }).collect();
        let compensated: Vec<u32> = log.iter().filter_map(|r| match r {
            SagaRecord::StepCompensated { step, .. } => Some(*step),
            _ => None,
        }).collect();
        prop_assert_eq!(&executed, &(0..executed.len() as u32).collect::<Vec<_>>());
        match state.phase() {
            SagaPhase::Completed => {
                prop_assert_eq!(executed.len(), 4);
                prop_assert!(compensated.is_empty());
                prop_assert_eq!(log.last(), Some(&SagaRecord::Completed { saga: SagaId(1) }));
            }
            SagaPhase::Aborted => {
                prop_assert!(!state.pivot_passed());
                let timed_out = log.iter().any(|r| matches!(r, SagaRecord::StepTimedOut { .. }));
                // Done steps, plus the timed-out one, undone from the last down.
                let first = executed.len() as u32 + u32::from(timed_out);
                prop_assert_eq!(compensated, (0..first).rev().collect::<Vec<_>>());
                prop_assert_eq!(log.last(), Some(&SagaRecord::Aborted { saga: SagaId(1) }));
            }
            phase => prop_assert!(false, "unfinished: {:?}", phase),
        }
    }
}
