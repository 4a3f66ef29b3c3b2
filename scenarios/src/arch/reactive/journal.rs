//! Each service's durable memory: its domain events and its outbox, in one
//! event log ([`sim::kit::persistence`]).
//!
//! A service decides a command into domain events and the facts it will
//! publish, and writes both in one append, synced before anything else
//! happens (the transactional outbox). A fact is marked published once the
//! broker acknowledged it; after a crash, every fact not marked is
//! published again. The broker may then hold a fact twice, which the
//! consumers' idempotent handlers absorb: that is at-least-once delivery.

use super::facts::Fact;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sim::Storage;
use sim::kit::persistence::Aggregate;
use std::collections::BTreeMap;

/// The part of a service's state its own business rules evolve.
pub trait Book: Clone + Serialize + DeserializeOwned + 'static {
    /// What it is built from.
    type Event: Clone + std::fmt::Debug + Serialize + DeserializeOwned + 'static;
    /// Folds one event in (deterministic, so replay rebuilds the state).
    fn apply(&mut self, event: &Self::Event);
}

/// One record of a service's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Entry<E> {
    /// A domain event.
    Domain(E),
    /// A fact to publish, with its outbox id.
    Outbound {
        /// Its id among this service's facts.
        id: u64,
        /// The fact.
        fact: Fact,
    },
    /// Facts the broker acknowledged.
    Published {
        /// Their outbox ids.
        ids: Vec<u64>,
    },
}

/// A service's durable state: its book and the facts not yet published.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ledgered<B> {
    /// The domain state.
    pub book: B,
    /// Facts decided and not yet acknowledged by the broker, by outbox id.
    pub outbox: BTreeMap<u64, Fact>,
    /// The next outbox id.
    pub next_out: u64,
}

impl<B> Ledgered<B> {
    /// A fresh state around `book`.
    pub fn new(book: B) -> Ledgered<B> {
        Ledgered { book, outbox: BTreeMap::new(), next_out: 0 }
    }
}

impl<B: Book> Aggregate for Ledgered<B> {
    type Event = Entry<B::Event>;

    fn apply(&mut self, entry: &Entry<B::Event>) {
        match entry {
            Entry::Domain(event) => self.book.apply(event),
            Entry::Outbound { id, fact } => {
                self.outbox.insert(*id, fact.clone());
                self.next_out = self.next_out.max(id + 1);
            }
            Entry::Published { ids } => {
                for id in ids {
                    self.outbox.remove(id);
                }
            }
        }
    }
}

/// The storage log name of a service's events (as
/// [`sim::kit::persistence::EventLog`] names it: namespace, aggregate 0).
pub fn events_log(namespace: &str) -> String {
    format!("{namespace}/0/events")
}

/// Rebuilds a service's durable state straight from a node's storage: for
/// a service whose node is down when the run ends, this is what a restart
/// would find.
pub fn replay_storage<B: Book>(storage: &Storage, namespace: &str, book: B) -> Ledgered<B> {
    let mut state = Ledgered::new(book);
    let log = events_log(namespace);
    for (index, record) in storage.read(&log).iter().enumerate() {
        let (_, entry): (u64, Entry<B::Event>) =
            sim::kit::persistence::decode_stored_event(&log, index, record)
                .expect("a service log holds its own entries");
        state.apply(&entry);
    }
    state
}
