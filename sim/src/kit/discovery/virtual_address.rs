//! Stable virtual addresses: send to a service by name, wherever its
//! instance currently runs.
//!
//! A [`VirtualAddress`] is embedded in a sending process. It watches the
//! service in the [registry](super::Registry), sends each message to the
//! current instance, and keeps it until that instance acknowledges it
//! ([`Delivery::Accepted`]). While no instance is known, messages wait in a
//! bounded buffer; when an attempt goes unacknowledged (the instance
//! crashed, the link lost the message) the message is retried with
//! exponential backoff, and at once when the registry names a new instance
//! (a failover). A message that cannot be delivered, because the buffer is
//! full or its attempts are used up, becomes a dead letter: traced,
//! counted, and kept for inspection. Every message sent is thus delivered
//! or dead-lettered, never silently lost: `sent = delivered +
//! dead-lettered + pending` at all times.
//!
//! A try at a moment when no instance is known counts as a failed attempt,
//! so a message cannot wait forever for a service that never comes back.
//!
//! Delivery is at least once: a message whose acknowledgement was lost is
//! sent again, and a dead letter may have been processed after all (its
//! acknowledgements were lost). The receiving side, [`Recipient`],
//! acknowledges every copy and drops copies it has already seen.

use super::registry::{Discovery, ServiceName};
use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message};
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::{BTreeMap, BTreeSet};

/// The delivery protocol between a [`VirtualAddress`] and a [`Recipient`],
/// carrying the application's payload `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery<T> {
    /// Deliver `payload`; the sender's `sequence` numbers its messages.
    Deliver {
        /// The sender's number for this message.
        sequence: u64,
        /// The application message.
        payload: T,
    },
    /// The recipient has the message numbered `sequence`.
    Accepted {
        /// The sender's number for the message.
        sequence: u64,
    },
}

impl<T> Delivery<T> {
    /// A short name for a world's [`Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            Delivery::Deliver { .. } => "Deliver",
            Delivery::Accepted { .. } => "Accepted",
        }
    }
}

/// Configuration of a [`VirtualAddress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualAddressConfig {
    /// Most messages held at once, waiting or in flight; a message sent
    /// while it is full is dead-lettered. At least 1.
    pub buffer_size: usize,
    /// Attempts per message before it is dead-lettered. At least 1.
    pub attempts_max: u32,
    /// How long an attempt waits for its acknowledgement. Positive.
    pub ack_timeout: SimDuration,
    /// The wait before the first retry; it doubles with each further
    /// attempt. Positive.
    pub backoff_initial: SimDuration,
    /// The longest wait between attempts. At least `backoff_initial`.
    pub backoff_max: SimDuration,
    /// How many dead letters are kept for inspection; later ones are only
    /// counted.
    pub dead_letters_kept: usize,
}

impl VirtualAddressConfig {
    /// Defaults: a buffer of 1024, 8 attempts, 100 ms acknowledgement
    /// timeout, backoff from 50 ms up to 1 s, 1024 dead letters kept.
    pub fn new() -> VirtualAddressConfig {
        VirtualAddressConfig {
            buffer_size: 1024,
            attempts_max: 8,
            ack_timeout: SimDuration::from_millis(100),
            backoff_initial: SimDuration::from_millis(50),
            backoff_max: SimDuration::from_secs(1),
            dead_letters_kept: 1024,
        }
    }

    /// Rejects zero bounds and timeouts and a backoff cap below its start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.buffer_size == 0 {
            return Err(ConfigError::new("virtual_address.buffer_size", 0, "at least 1"));
        }
        if self.attempts_max == 0 {
            return Err(ConfigError::new("virtual_address.attempts_max", 0, "at least 1"));
        }
        if self.ack_timeout == SimDuration::ZERO {
            return Err(ConfigError::new(
                "virtual_address.ack_timeout",
                self.ack_timeout,
                "more than 0",
            ));
        }
        if self.backoff_initial == SimDuration::ZERO {
            return Err(ConfigError::new(
                "virtual_address.backoff_initial",
                self.backoff_initial,
                "more than 0",
            ));
        }
        if self.backoff_max < self.backoff_initial {
            return Err(ConfigError::new(
                "virtual_address.backoff_max",
                self.backoff_max,
                format!("at least backoff_initial ({})", self.backoff_initial),
            ));
        }
        Ok(())
    }

    /// The wait after `attempts` failed attempts: `backoff_initial`
    /// doubled `attempts − 1` times, capped at `backoff_max`.
    pub fn backoff(&self, attempts: u32) -> SimDuration {
        let doublings = attempts.saturating_sub(1).min(63);
        let nanos = self.backoff_initial.as_nanos().saturating_mul(1 << doublings);
        SimDuration::from_nanos(nanos.min(self.backoff_max.as_nanos()))
    }
}

impl Default for VirtualAddressConfig {
    fn default() -> VirtualAddressConfig {
        VirtualAddressConfig::new()
    }
}

/// Why a message was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UndeliveredReason {
    /// The buffer was full when it was sent.
    BufferFull,
    /// Every attempt failed: unacknowledged, or no instance was known.
    AttemptsExhausted,
}

impl UndeliveredReason {
    /// The number traced as the value of a `dead_lettered` event.
    pub fn code(self) -> i64 {
        match self {
            UndeliveredReason::BufferFull => 1,
            UndeliveredReason::AttemptsExhausted => 2,
        }
    }
}

/// A dead letter of a virtual address: a message it gave up on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered<T> {
    /// The message's number.
    pub sequence: u64,
    /// The message.
    pub payload: T,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up.
    pub reason: UndeliveredReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Sent to `to`; unacknowledged by `deadline` means the attempt failed.
    InFlight { to: ProcessId, deadline: LocalTime },
    /// Waiting for the next attempt at `until`, or for an instance.
    Waiting { until: LocalTime },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending<T> {
    payload: T,
    attempts: u32,
    stage: Stage,
}

impl<T> Pending<T> {
    fn due(&self) -> LocalTime {
        match self.stage {
            Stage::InFlight { deadline, .. } => deadline,
            Stage::Waiting { until } => until,
        }
    }
}

/// A stable address for a service, embedded in the sending process.
///
/// The host calls [`VirtualAddress::start`] from its `on_start`, offers
/// each incoming message to [`VirtualAddress::handle`] and each timer to
/// [`VirtualAddress::on_timer`], and sends with [`VirtualAddress::send`].
///
/// Trace events (component [`Component::Discovery`]; key: the message's
/// sequence number unless said otherwise): `buffered`, `forwarded` (value:
/// the attempt), `retry_scheduled` (value: failed attempts so far),
/// `delivered` (value: attempts used), `dead_lettered` (value:
/// [`UndeliveredReason::code`]), and `retargeted` (key: the new instance,
/// or `u64::MAX` for none; value: the previous one, or −1).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualAddress<T> {
    config: VirtualAddressConfig,
    service: ServiceName,
    registry: ProcessId,
    timer_tag: u64,
    target: Option<ProcessId>,
    /// The revision of the newest instance list applied.
    revision: u64,
    next_sequence: u64,
    pending: BTreeMap<u64, Pending<T>>,
    alarm: Option<(TimerId, LocalTime)>,
    delivered_count: u64,
    dead_letter_count: u64,
    dead_letters: Vec<Undelivered<T>>,
}

impl<T: Clone + 'static> VirtualAddress<T> {
    /// An address for `service`, resolved through `registry`; its timer
    /// uses the tag `timer_tag`, which the host must not use otherwise.
    pub fn new(
        service: ServiceName,
        registry: ProcessId,
        config: VirtualAddressConfig,
        timer_tag: u64,
    ) -> Result<VirtualAddress<T>, ConfigError> {
        config.validate()?;
        Ok(VirtualAddress {
            config,
            service,
            registry,
            timer_tag,
            target: None,
            revision: 0,
            next_sequence: 0,
            pending: BTreeMap::new(),
            alarm: None,
            delivered_count: 0,
            dead_letter_count: 0,
            dead_letters: Vec::new(),
        })
    }

    /// The service addressed.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The instance messages go to now, if one is known.
    pub fn target(&self) -> Option<ProcessId> {
        self.target
    }

    /// Messages sent so far.
    pub fn sent_count(&self) -> u64 {
        self.next_sequence
    }

    /// Messages acknowledged by an instance.
    pub fn delivered_count(&self) -> u64 {
        self.delivered_count
    }

    /// Messages given up.
    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letter_count
    }

    /// Messages waiting or in flight.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The dead letters kept (the first `dead_letters_kept`).
    pub fn dead_letters(&self) -> &[Undelivered<T>] {
        &self.dead_letters
    }

    /// Starts watching the service.
    pub fn start<M>(&mut self, ctx: &mut Ctx<'_, M>)
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        let watch = Discovery::Watch { service: self.service.clone() };
        ctx.send(self.registry, <M as Carry<Discovery>>::wrap(watch));
    }

    /// Sends `payload` to the service; returns its sequence number. It is
    /// forwarded at once if an instance is known, buffered otherwise, or
    /// dead-lettered if the buffer is full.
    pub fn send<M>(&mut self, ctx: &mut Ctx<'_, M>, payload: T) -> u64
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        ctx.count("discovery.sent", 1);
        if self.pending.len() >= self.config.buffer_size {
            self.dead_letter(ctx, sequence, payload, 0, UndeliveredReason::BufferFull);
            return sequence;
        }
        let until = ctx.now_local().plus(self.config.backoff(1));
        self.pending
            .insert(sequence, Pending { payload, attempts: 0, stage: Stage::Waiting { until } });
        match self.target {
            Some(target) => self.forward(ctx, sequence, target),
            None => {
                ctx.trace(Component::Discovery, "buffered", sequence, 0);
                ctx.count("discovery.buffered", 1);
            }
        }
        self.arm(ctx);
        sequence
    }

    /// Offers an incoming message: registry news about this service and
    /// acknowledgements are taken (`Ok`); anything else is given back.
    pub fn handle<M>(&mut self, ctx: &mut Ctx<'_, M>, message: M) -> Result<(), M>
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        let message = match <M as Carry<Discovery>>::unwrap(message) {
            Ok(
                Discovery::Changed { service, instances, revision }
                | Discovery::Resolved { service, instances, revision },
            ) if service == self.service => {
                // A list older than one already applied was overtaken on
                // the network; applying it could bring back a dead target.
                if revision >= self.revision {
                    self.revision = revision;
                    self.resolve(ctx, &instances);
                }
                return Ok(());
            }
            Ok(other) => return Err(<M as Carry<Discovery>>::wrap(other)),
            Err(message) => message,
        };
        match <M as Carry<Delivery<T>>>::unwrap(message) {
            Ok(Delivery::Accepted { sequence }) => {
                self.acknowledge(ctx, sequence);
                Ok(())
            }
            Ok(other) => Err(<M as Carry<Delivery<T>>>::wrap(other)),
            Err(message) => Err(message),
        }
    }

    /// Handles the host's timer `tag`; returns whether it was this
    /// address's. Failed attempts are retried or dead-lettered, and due
    /// retries are forwarded.
    pub fn on_timer<M>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> bool
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        if tag != self.timer_tag {
            return false;
        }
        self.alarm = None;
        let now = ctx.now_local();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.due() <= now)
            .map(|(sequence, _)| *sequence)
            .collect();
        let mut failed = false;
        for sequence in due {
            let pending = &self.pending[&sequence];
            match (pending.stage, self.target) {
                (Stage::Waiting { .. }, Some(target)) => self.forward(ctx, sequence, target),
                (Stage::Waiting { .. }, None) => {
                    // A try with nowhere to go is a failed attempt.
                    let pending = self.pending.get_mut(&sequence).expect("due");
                    pending.attempts += 1;
                    self.retry_or_give_up(ctx, sequence, now);
                    failed = true;
                }
                (Stage::InFlight { .. }, _) => {
                    self.retry_or_give_up(ctx, sequence, now);
                    failed = true;
                }
            }
        }
        if failed {
            // The instance may be gone or our news of it lost: ask again
            // (which also renews a watch lost in a registry restart).
            let watch = Discovery::Watch { service: self.service.clone() };
            ctx.send(self.registry, <M as Carry<Discovery>>::wrap(watch));
        }
        self.arm(ctx);
        true
    }

    fn retry_or_give_up<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        sequence: u64,
        now: LocalTime,
    ) {
        let pending = self.pending.get_mut(&sequence).expect("pending");
        if pending.attempts >= self.config.attempts_max {
            let pending = self.pending.remove(&sequence).expect("pending");
            let reason = UndeliveredReason::AttemptsExhausted;
            self.dead_letter(ctx, sequence, pending.payload, pending.attempts, reason);
            return;
        }
        pending.stage = Stage::Waiting { until: now.plus(self.config.backoff(pending.attempts)) };
        let attempts = i64::from(pending.attempts);
        ctx.trace(Component::Discovery, "retry_scheduled", sequence, attempts);
        ctx.count("discovery.retried", 1);
    }

    fn forward<M>(&mut self, ctx: &mut Ctx<'_, M>, sequence: u64, to: ProcessId)
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        let deadline = ctx.now_local().plus(self.config.ack_timeout);
        let pending = self.pending.get_mut(&sequence).expect("pending");
        debug_assert!(pending.attempts < self.config.attempts_max);
        pending.attempts += 1;
        pending.stage = Stage::InFlight { to, deadline };
        let attempts = i64::from(pending.attempts);
        let payload = pending.payload.clone();
        ctx.send(to, <M as Carry<Delivery<T>>>::wrap(Delivery::Deliver { sequence, payload }));
        ctx.trace(Component::Discovery, "forwarded", sequence, attempts);
    }

    fn acknowledge<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, sequence: u64) {
        // A second acknowledgement (of a retried copy) finds nothing.
        if let Some(pending) = self.pending.remove(&sequence) {
            self.delivered_count += 1;
            ctx.trace(Component::Discovery, "delivered", sequence, i64::from(pending.attempts));
            ctx.count("discovery.delivered", 1);
        }
    }

    fn dead_letter<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        sequence: u64,
        payload: T,
        attempts: u32,
        reason: UndeliveredReason,
    ) {
        self.dead_letter_count += 1;
        ctx.trace(Component::Discovery, "dead_lettered", sequence, reason.code());
        ctx.count("discovery.dead_lettered", 1);
        if self.dead_letters.len() < self.config.dead_letters_kept {
            self.dead_letters.push(Undelivered { sequence, payload, attempts, reason });
        }
    }

    /// Takes the registry's latest list of instances.
    fn resolve<M>(&mut self, ctx: &mut Ctx<'_, M>, instances: &[ProcessId])
    where
        M: Carry<Discovery> + Carry<Delivery<T>>,
    {
        // Stay with the current instance while it is listed (a sticky
        // choice keeps order and avoids needless moves); otherwise take the
        // first, so every sender picks the same one.
        let previous = self.target;
        let target = match previous {
            Some(current) if instances.contains(&current) => Some(current),
            _ => instances.first().copied(),
        };
        if target == previous {
            return;
        }
        self.target = target;
        let key = target.map_or(u64::MAX, |target| u64::from(target.0));
        ctx.trace(Component::Discovery, "retargeted", key, previous.map_or(-1, |p| i64::from(p.0)));
        ctx.count("discovery.retargeted", 1);
        let Some(target) = target else { return };
        // Failover: everything waiting, and everything in flight to an
        // instance that is no longer the target, goes to the new one now.
        let moving: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| match pending.stage {
                Stage::Waiting { .. } => true,
                Stage::InFlight { to, .. } => {
                    to != target && pending.attempts < self.config.attempts_max
                }
            })
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in moving {
            self.forward(ctx, sequence, target);
        }
        self.arm(ctx);
    }

    /// Keeps one timer set for the earliest due message.
    fn arm<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(earliest) = self.pending.values().map(Pending::due).min() else { return };
        if let Some((timer, armed_for)) = self.alarm {
            if armed_for <= earliest {
                return;
            }
            ctx.cancel_timer(timer);
        }
        let now = ctx.now_local();
        let after = u64::try_from(earliest.as_nanos().saturating_sub(now.as_nanos())).unwrap_or(0);
        let timer = ctx.set_timer(SimDuration::from_nanos(after), self.timer_tag);
        self.alarm = Some((timer, earliest));
    }
}

/// The receiving side of [`Delivery`], embedded in a service instance: it
/// acknowledges every copy and hands each message on once.
///
/// It remembers, per sender, the last `remembered_per_sender` sequence
/// numbers it accepted. A copy older than that is handed on again: a
/// duplicate is the price of never dropping a first copy that arrives
/// late.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    remembered_per_sender: usize,
    seen: BTreeMap<ProcessId, BTreeSet<u64>>,
    duplicate_count: u64,
}

impl Recipient {
    /// A recipient remembering `remembered_per_sender` numbers per sender
    /// (at least 1).
    pub fn new(remembered_per_sender: usize) -> Result<Recipient, ConfigError> {
        if remembered_per_sender == 0 {
            return Err(ConfigError::new("recipient.remembered_per_sender", 0, "at least 1"));
        }
        Ok(Recipient { remembered_per_sender, seen: BTreeMap::new(), duplicate_count: 0 })
    }

    /// Copies acknowledged but not handed on.
    pub fn duplicate_count(&self) -> u64 {
        self.duplicate_count
    }

    /// Takes a delivery from `from`: acknowledges it and returns the
    /// payload unless this copy is a duplicate. Acknowledgements (which a
    /// recipient does not expect) give `None`.
    pub fn accept<M, T>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        delivery: Delivery<T>,
    ) -> Option<T>
    where
        M: Carry<Delivery<T>>,
    {
        let Delivery::Deliver { sequence, payload } = delivery else { return None };
        ctx.send(from, M::wrap(Delivery::Accepted { sequence }));
        let seen = self.seen.entry(from).or_default();
        if !seen.insert(sequence) {
            self.duplicate_count += 1;
            ctx.trace(Component::Discovery, "duplicate_dropped", sequence, i64::from(from.0));
            ctx.count("discovery.duplicates", 1);
            return None;
        }
        if seen.len() > self.remembered_per_sender {
            seen.pop_first();
        }
        Some(payload)
    }
}
