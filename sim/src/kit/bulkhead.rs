//! Bulkhead: a bound on how many calls to one dependency are in flight at
//! once, so that one slow dependency cannot take every resource of its
//! caller with it.
//!
//! A ship's bulkheads keep a leak in one compartment from sinking the ship.
//! In a service, the compartment is the share of capacity (threads,
//! connections, outstanding requests) spent on one dependency: give each
//! dependency its own bound and a dependency that turns slow fills only its
//! own compartment, while calls to the others go on as before (Reactive
//! Microsystems, ch. 1 *Isolate All the Things*; ch. 5 pairs bulkheads
//! with circuit breakers and supervision to contain failure).
//!
//! [`Bulkhead`] is standalone state, not built on the engine's
//! [`ResourceId`](crate::ResourceId) pools: it decides at once whether a
//! call is admitted, queued or rejected, holds nothing in the engine, and so
//! suits non-blocking callers (an `Immediate` mailbox with many calls out).
//! To model a *blocking* thread pool, where waiting holds a thread, use an
//! engine resource with a `queue_max` instead; it has the same shape.
//!
//! A call is identified by an id the caller picks. [`Bulkhead::try_enter`]
//! admits it while fewer than `max_concurrent` calls are in flight, queues
//! it while fewer than `max_waiting` wait, and rejects it otherwise (the
//! caller answers with a fallback at once). [`Bulkhead::on_exit`] frees the
//! call's place and admits the oldest waiting call, whose id it returns so
//! the caller can now make that call. [`Bulkhead::on_withdraw`] takes a
//! waiting call out of the line (its own deadline passed). The methods
//! taking a [`Ctx`] trace each step as a [`Component::Bulkhead`] event:
//! `admitted`, `queued`, `rejected`, `released`, `withdrawn`.
//!
//! ```
//! use sim::kit::bulkhead::{Bulkhead, BulkheadConfig, Entry};
//!
//! let mut shipping = Bulkhead::new(BulkheadConfig { max_concurrent: 2, max_waiting: 1 }).unwrap();
//! assert_eq!(shipping.try_enter(1), Entry::Admitted);
//! assert_eq!(shipping.try_enter(2), Entry::Admitted);
//! assert_eq!(shipping.try_enter(3), Entry::Queued);
//! assert_eq!(shipping.try_enter(4), Entry::Rejected);
//! // Call 1 completes: call 3 takes its place.
//! assert_eq!(shipping.on_exit(1), Some(3));
//! assert_eq!((shipping.in_flight(), shipping.waiting()), (2, 0));
//! ```

use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::trace::Component;
use std::collections::{BTreeSet, VecDeque};

/// How a bulkhead is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls in flight at once (at least 1).
    pub max_concurrent: u32,
    /// Calls waiting for a place; 0 rejects at once when full.
    pub max_waiting: u32,
}

impl BulkheadConfig {
    /// Checks `max_concurrent` is at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::new("bulkhead.max_concurrent", 0, "at least 1"));
        }
        Ok(())
    }
}

/// The answer to [`Bulkhead::try_enter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Make the call now; report it with [`Bulkhead::on_exit`] when done.
    Admitted,
    /// Wait: a later [`Bulkhead::on_exit`] returns this call's id when it
    /// is admitted.
    Queued,
    /// Full: fail fast (run the fallback).
    Rejected,
}

/// Bounded concurrency for calls to one dependency; see the module docs.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    config: BulkheadConfig,
    key: u64,
    in_flight: BTreeSet<u64>,
    /// Oldest first.
    waiting: VecDeque<u64>,
}

impl Bulkhead {
    /// An empty bulkhead under a validated `config`.
    pub fn new(config: BulkheadConfig) -> Result<Bulkhead, ConfigError> {
        config.validate()?;
        Ok(Bulkhead {
            config,
            key: 0,
            in_flight: BTreeSet::new(),
            waiting: VecDeque::with_capacity(config.max_waiting.min(1_024) as usize),
        })
    }

    /// The same bulkhead, naming itself `key` in traces (builder style; to
    /// tell a process's bulkheads apart). The default is 0.
    pub fn with_key(mut self, key: u64) -> Bulkhead {
        self.key = key;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &BulkheadConfig {
        &self.config
    }

    /// The key it traces under.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.len() as u32
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.len() as u32
    }

    /// Whether `call` is in flight.
    pub fn is_in_flight(&self, call: u64) -> bool {
        self.in_flight.contains(&call)
    }

    /// Asks to make `call`.
    ///
    /// # Panics
    /// If `call` is already in flight or waiting: ids must be unique among
    /// the calls inside.
    pub fn try_enter(&mut self, call: u64) -> Entry {
        assert!(
            !self.in_flight.contains(&call) && !self.waiting.contains(&call),
            "call {call} is already in the bulkhead"
        );
        if self.in_flight.len() < self.config.max_concurrent as usize {
            self.in_flight.insert(call);
            Entry::Admitted
        } else if self.waiting.len() < self.config.max_waiting as usize {
            self.waiting.push_back(call);
            Entry::Queued
        } else {
            Entry::Rejected
        }
    }

    /// `call` is done: frees its place and admits the oldest waiting call,
    /// whose id is returned. A call that is not in flight changes nothing
    /// (`None`).
    pub fn on_exit(&mut self, call: u64) -> Option<u64> {
        if !self.in_flight.remove(&call) {
            return None;
        }
        let next = self.waiting.pop_front()?;
        self.in_flight.insert(next);
        Some(next)
    }

    /// A waiting `call` gives up; returns whether it was waiting.
    pub fn on_withdraw(&mut self, call: u64) -> bool {
        match self.waiting.iter().position(|&waiting| waiting == call) {
            Some(position) => {
                self.waiting.remove(position);
                true
            }
            None => false,
        }
    }

    /// [`try_enter`](Bulkhead::try_enter), traced: `admitted` (value: calls
    /// in flight), `queued` (value: calls waiting) or `rejected` (value:
    /// calls in flight), with the metrics `bulkhead.admitted`,
    /// `bulkhead.queued` and `bulkhead.rejected`.
    pub fn enter<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, call: u64) -> Entry {
        let entry = self.try_enter(call);
        let (kind, metric, value) = match entry {
            Entry::Admitted => ("admitted", "bulkhead.admitted", self.in_flight()),
            Entry::Queued => ("queued", "bulkhead.queued", self.waiting()),
            Entry::Rejected => ("rejected", "bulkhead.rejected", self.in_flight()),
        };
        ctx.trace(Component::Bulkhead, kind, self.key, i64::from(value));
        ctx.count(metric, 1);
        entry
    }

    /// [`on_exit`](Bulkhead::on_exit), traced: `released` (value: calls in
    /// flight after), then `admitted` if a waiting call took the place.
    pub fn exit<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, call: u64) -> Option<u64> {
        let known = self.in_flight.contains(&call);
        let next = self.on_exit(call);
        if known {
            let in_flight_after = self.in_flight() - u32::from(next.is_some());
            ctx.trace(Component::Bulkhead, "released", self.key, i64::from(in_flight_after));
        }
        if next.is_some() {
            ctx.trace(Component::Bulkhead, "admitted", self.key, i64::from(self.in_flight()));
            ctx.count("bulkhead.admitted", 1);
        }
        next
    }

    /// [`on_withdraw`](Bulkhead::on_withdraw), traced as `withdrawn`
    /// (value: calls still waiting) with the metric `bulkhead.withdrawn`.
    pub fn withdraw<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, call: u64) -> bool {
        let withdrawn = self.on_withdraw(call);
        if withdrawn {
            ctx.trace(Component::Bulkhead, "withdrawn", self.key, i64::from(self.waiting()));
            ctx.count("bulkhead.withdrawn", 1);
        }
        withdrawn
    }
}

#[cfg(test)]
mod tests;
