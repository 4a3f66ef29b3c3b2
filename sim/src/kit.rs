//! `kit`: the building blocks of reactive systems, as reusable, observable
//! components written only against [`Process`](crate::Process) and
//! [`Ctx`](crate::Ctx). The core never imports this module.
//!
//! Each block lives in its own module and reports what it does as trace
//! events of its own [`Component`](crate::Component) kind
//! ([`Ctx::trace`](crate::Ctx::trace)), so a breaker opening or a saga
//! compensating shows up in the trace, its hash, and every export.
//!
//! Two shapes recur:
//! - **State machines a process embeds** (breaker, retry policy, bulkhead,
//!   failure detectors, hash rings, CRDTs, logical clocks, the saga's
//!   state): plain data with a pure core that takes the node's local time
//!   as an argument, so laws can be property-tested without a simulation,
//!   plus thin methods that take a `Ctx` to trace.
//! - **Processes** (registry, supervisor, broker, replicas, projection,
//!   saga coordinator, two-phase-commit roles): generic over the world's
//!   message type `M`, which carries each block's protocol through
//!   [`Carry`].
//!
//! Configurations are validated when a block is built; a bad one is a
//! [`ConfigError`] naming the field, the value and what is allowed.

use crate::process::Message;
use std::fmt;

pub mod backpressure;
pub mod breaker;
pub mod broker;
pub mod bulkhead;
pub mod crdt;
pub mod discovery;
pub mod logical_time;
pub mod persistence;
pub mod projection;
pub mod replication;
pub mod retry;
pub mod routing;
pub mod saga;
pub mod supervision;
pub mod two_phase_commit;

/// A world's message type that can carry a building block's protocol
/// message `T`. A world implements it once per protocol it uses, usually
/// as one enum variant wrapping `T`.
///
/// ```
/// use sim::Message;
/// use sim::kit::Carry;
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum Ping { Ping }
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum WorldMsg { Ping(Ping), Other }
///
/// impl Message for WorldMsg {
///     fn label(&self) -> &'static str {
///         match self { WorldMsg::Ping(_) => "Ping", WorldMsg::Other => "Other" }
///     }
/// }
///
/// impl Carry<Ping> for WorldMsg {
///     fn wrap(inner: Ping) -> Self { WorldMsg::Ping(inner) }
///     fn unwrap(self) -> Result<Ping, Self> {
///         match self { WorldMsg::Ping(inner) => Ok(inner), other => Err(other) }
///     }
/// }
///
/// assert_eq!(WorldMsg::wrap(Ping::Ping).unwrap(), Ok(Ping::Ping));
/// assert_eq!(<WorldMsg as Carry<Ping>>::unwrap(WorldMsg::Other), Err(WorldMsg::Other));
/// ```
pub trait Carry<T>: Message {
    /// Wraps a protocol message into the world's message type.
    fn wrap(inner: T) -> Self;
    /// Takes the protocol message out, or gives the message back if it
    /// carries something else.
    fn unwrap(self) -> Result<T, Self>;
}

/// A building block's configuration was invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, with its block as prefix, e.g. `breaker.window_size`.
    pub field: String,
    /// The offending value, as written.
    pub value: String,
    /// What is allowed, e.g. `at least 1`.
    pub expected: String,
}

impl ConfigError {
    /// An error for `field` holding `value`, which should be `expected`.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> ConfigError {
        ConfigError { field: field.into(), value: value.to_string(), expected: expected.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: expected {}", self.field, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}
