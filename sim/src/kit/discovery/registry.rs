//! The service registry: a process that knows which instances of each
//! service are alive, from their registrations and heartbeats.
//!
//! An instance registers under a [`ServiceName`] and renews its lease with
//! a heartbeat (an [`Discovery::Renew`]) every heartbeat interval; the
//! [`Registration`] helper does this for a process that embeds it. The
//! registry evicts an instance whose lease has not been renewed for longer
//! than the TTL, and can mark it suspected earlier with a failure detector,
//! hiding it from lookups until it is heard from again. Anyone can look a
//! service up once ([`Discovery::Lookup`]) or watch it
//! ([`Discovery::Watch`]) and be told of every change of its live
//! instances.
//!
//! The registry's state is volatile, as in a real one without replication:
//! after a restart it knows nothing, and rebuilds its table from the
//! heartbeats that follow, since a renewal from an unknown instance counts
//! as a registration. Watchers are lost with it; a watcher that finds its
//! targets silent simply watches again (as
//! [`VirtualAddress`](super::VirtualAddress) does).

use super::detector::{Detector, DetectorConfig, FailureDetector, Monitor, Transition};
use super::detector::{TimeoutDetector, TimeoutDetectorConfig};
use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::{Component, fnv1a};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

/// The stable name of a service, e.g. `payments`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// A service name.
    pub fn new(name: impl Into<String>) -> ServiceName {
        ServiceName(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable 64-bit key for traces and digests (FNV-1a of the name).
    pub fn key(&self) -> u64 {
        fnv1a(&self.0)
    }
}

impl From<&str> for ServiceName {
    fn from(name: &str) -> ServiceName {
        ServiceName::new(name)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The registry's protocol: commands to the registry, and what it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Add `instance` to `service` with a fresh lease.
    Register {
        /// The service.
        service: ServiceName,
        /// The instance.
        instance: ProcessId,
    },
    /// Renew the lease of `instance` (the heartbeat). An instance the
    /// registry does not know (evicted, or the registry restarted) is
    /// registered again.
    Renew {
        /// The service.
        service: ServiceName,
        /// The instance.
        instance: ProcessId,
    },
    /// Remove `instance` from `service` (a clean shutdown).
    Deregister {
        /// The service.
        service: ServiceName,
        /// The instance.
        instance: ProcessId,
    },
    /// Ask once for the live instances of `service`; answered with
    /// [`Discovery::Resolved`].
    Lookup {
        /// The service.
        service: ServiceName,
    },
    /// Subscribe to `service`: answered at once with
    /// [`Discovery::Changed`], and again at every change.
    Watch {
        /// The service.
        service: ServiceName,
    },
    /// Cancel a subscription.
    Unwatch {
        /// The service.
        service: ServiceName,
    },
    /// The answer to a lookup: the live instances, in id order.
    Resolved {
        /// The service.
        service: ServiceName,
        /// Its live instances.
        instances: Vec<ProcessId>,
        /// The revision of this list (see [`Discovery::Changed`]).
        revision: u64,
    },
    /// The live instances of a watched service changed (or the watch just
    /// started).
    Changed {
        /// The service.
        service: ServiceName,
        /// Its live instances, in id order.
        instances: Vec<ProcessId>,
        /// Increases with every change of the list, so that a receiver can
        /// ignore a list older than one it has already seen (replies can
        /// overtake each other on the network). It is at least the
        /// registry's local time in nanoseconds at the change, so it keeps
        /// increasing across a registry restart unless the clock is
        /// stepped back.
        revision: u64,
    },
    /// A registration was refused because the registry is full.
    RegistrationRejected {
        /// The service.
        service: ServiceName,
        /// The instance.
        instance: ProcessId,
    },
}

impl Discovery {
    /// A short name for a world's [`Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            Discovery::Register { .. } => "Register",
            Discovery::Renew { .. } => "Renew",
            Discovery::Deregister { .. } => "Deregister",
            Discovery::Lookup { .. } => "Lookup",
            Discovery::Watch { .. } => "Watch",
            Discovery::Unwatch { .. } => "Unwatch",
            Discovery::Resolved { .. } => "Resolved",
            Discovery::Changed { .. } => "Changed",
            Discovery::RegistrationRejected { .. } => "RegistrationRejected",
        }
    }

    /// A stable digest of the content, for a world's [`Message::digest`].
    pub fn digest(&self) -> u64 {
        let (code, service, rest): (u64, &ServiceName, u64) = match self {
            Discovery::Register { service, instance } => (1, service, u64::from(instance.0)),
            Discovery::Renew { service, instance } => (2, service, u64::from(instance.0)),
            Discovery::Deregister { service, instance } => (3, service, u64::from(instance.0)),
            Discovery::Lookup { service } => (4, service, 0),
            Discovery::Watch { service } => (5, service, 0),
            Discovery::Unwatch { service } => (6, service, 0),
            Discovery::Resolved { service, instances, revision } => {
                (7, service, mix(fold_ids(instances) ^ revision))
            }
            Discovery::Changed { service, instances, revision } => {
                (8, service, mix(fold_ids(instances) ^ revision))
            }
            Discovery::RegistrationRejected { service, instance } => {
                (9, service, u64::from(instance.0))
            }
        };
        mix(mix(code ^ service.key()) ^ rest)
    }
}

fn fold_ids(ids: &[ProcessId]) -> u64 {
    ids.iter().fold(0x9e37_79b9_7f4a_7c15, |hash, id| mix(hash ^ u64::from(id.0)))
}

/// The splitmix64 finaliser: a fixed, well-mixing permutation of `u64`.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Configuration of a [`Registry`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegistryConfig {
    /// How long a lease lasts without renewal: an instance silent for
    /// longer is evicted. Positive; it should span a few heartbeat
    /// intervals, so one lost heartbeat does not evict a live instance.
    pub ttl: SimDuration,
    /// A detector that may suspect a silent instance before its lease
    /// expires; suspected instances are hidden from lookups until they
    /// renew. `None`: only the TTL counts.
    pub detector: Option<DetectorConfig>,
    /// Most instances held, over all services; registrations beyond it
    /// are rejected. At least 1.
    pub instances_max: usize,
    /// Most watches held, over all services; watches beyond it are
    /// refused (the watcher still gets the current instances once). At
    /// least 1.
    pub watchers_max: usize,
}

impl RegistryConfig {
    /// A registry with leases of `ttl`, no early suspicion, room for 1024
    /// instances and 1024 watches.
    pub fn new(ttl: SimDuration) -> RegistryConfig {
        RegistryConfig { ttl, detector: None, instances_max: 1024, watchers_max: 1024 }
    }

    /// Rejects a zero TTL, zero bounds and an invalid detector.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl == SimDuration::ZERO {
            return Err(ConfigError::new("registry.ttl", self.ttl, "more than 0"));
        }
        if self.instances_max == 0 {
            return Err(ConfigError::new("registry.instances_max", 0, "at least 1"));
        }
        if self.watchers_max == 0 {
            return Err(ConfigError::new("registry.watchers_max", 0, "at least 1"));
        }
        if let Some(detector) = &self.detector {
            detector.validate()?;
        }
        Ok(())
    }
}

/// One registered instance: its lease and, if configured, the detector
/// that may suspect it early.
#[derive(Clone, Debug, PartialEq)]
struct Lease {
    expiry: TimeoutDetector,
    suspicion: Option<Monitor<Detector>>,
    /// When this lease next needs a look, kept up to date by
    /// [`Lease::refresh`] (a phi detector's deadline takes a search to
    /// find, so it is not recomputed at every message).
    deadline: LocalTime,
}

impl Lease {
    fn new(expiry: TimeoutDetector, suspicion: Option<Monitor<Detector>>) -> Lease {
        let mut lease = Lease { expiry, suspicion, deadline: LocalTime(0) };
        lease.refresh();
        lease
    }

    fn is_live(&self) -> bool {
        !self.suspicion.as_ref().is_some_and(Monitor::is_suspected)
    }

    /// Recomputes the deadline: expiry, or suspicion if that comes first.
    fn refresh(&mut self) {
        let expiry = self.expiry.suspicion_deadline();
        self.deadline = match self.suspicion.as_ref().and_then(Monitor::next_check) {
            Some(suspicion) => suspicion.min(expiry),
            None => expiry,
        };
    }

    fn heartbeat(&mut self, now: LocalTime) -> Option<Transition> {
        self.expiry.heartbeat(now);
        let transition = self.suspicion.as_mut().and_then(|monitor| monitor.heartbeat(now));
        self.refresh();
        transition
    }

    fn check(&mut self, now: LocalTime) -> Option<Transition> {
        let transition = self.suspicion.as_mut().and_then(|monitor| monitor.check(now));
        self.refresh();
        transition
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Service {
    leases: BTreeMap<ProcessId, Lease>,
    watchers: BTreeSet<ProcessId>,
    /// The revision of the live list; see [`Discovery::Changed`].
    revision: u64,
}

impl Service {
    fn live(&self) -> Vec<ProcessId> {
        self.leases.iter().filter(|(_, lease)| lease.is_live()).map(|(id, _)| *id).collect()
    }

    /// How many instances are live: `live().len()` without the list.
    fn live_count(&self) -> usize {
        self.leases.values().filter(|lease| lease.is_live()).count()
    }
}

/// The registry process. Its trace events (component
/// [`Component::Discovery`], key: the instance's process id, value: the
/// number of live instances of its service afterwards) are `registered`,
/// `deregistered`, `evicted`, `suspected`, `recovered` and
/// `registration_rejected`; a refused watch is `watch_rejected` (key: the
/// watcher).
pub struct Registry<M> {
    config: RegistryConfig,
    services: BTreeMap<ServiceName, Service>,
    instance_count: usize,
    watch_count: usize,
    alarm: Option<(TimerId, LocalTime)>,
    world: PhantomData<fn() -> M>,
}

impl<M> Clone for Registry<M> {
    fn clone(&self) -> Registry<M> {
        Registry {
            config: self.config,
            services: self.services.clone(),
            instance_count: self.instance_count,
            watch_count: self.watch_count,
            alarm: self.alarm,
            world: PhantomData,
        }
    }
}

impl<M: Carry<Discovery>> Registry<M> {
    /// An empty registry.
    pub fn new(config: RegistryConfig) -> Result<Registry<M>, ConfigError> {
        config.validate()?;
        Ok(Registry {
            config,
            services: BTreeMap::new(),
            instance_count: 0,
            watch_count: 0,
            alarm: None,
            world: PhantomData,
        })
    }

    /// The live instances of `service` (registered and not suspected), in
    /// id order.
    pub fn live_instances(&self, service: &ServiceName) -> Vec<ProcessId> {
        self.services.get(service).map(Service::live).unwrap_or_default()
    }

    /// Every registered instance of `service`, suspected ones included.
    pub fn registered_instances(&self, service: &ServiceName) -> Vec<ProcessId> {
        self.services
            .get(service)
            .map(|entry| entry.leases.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The watchers of `service`.
    pub fn watchers(&self, service: &ServiceName) -> Vec<ProcessId> {
        self.services
            .get(service)
            .map(|entry| entry.watchers.iter().copied().collect())
            .unwrap_or_default()
    }

    fn new_lease(&self, now: LocalTime) -> Lease {
        let expiry = TimeoutDetector::new(TimeoutDetectorConfig { timeout: self.config.ttl }, now)
            .expect("validated with the registry");
        let suspicion = self.config.detector.map(|config| {
            Monitor::new(Detector::new(config, now).expect("validated with the registry"))
        });
        Lease::new(expiry, suspicion)
    }

    /// Registers an instance the registry holds no lease for (a held
    /// lease is renewed by [`Registry::renew_known`] before messages get
    /// here); returns whether the instance is now registered.
    fn register(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        service: ServiceName,
        instance: ProcessId,
    ) -> bool {
        let now = ctx.now_local();
        let entry = self.services.entry(service.clone()).or_default();
        debug_assert!(!entry.leases.contains_key(&instance), "a held lease is renewed earlier");
        if self.instance_count >= self.config.instances_max {
            let live = entry.live().len();
            trace(ctx, "registration_rejected", instance, live);
            ctx.count("discovery.registration_rejected", 1);
            ctx.send(instance, M::wrap(Discovery::RegistrationRejected { service, instance }));
            return false;
        }
        let lease = self.new_lease(now);
        let entry = self.services.entry(service).or_default();
        entry.leases.insert(instance, lease);
        self.instance_count += 1;
        let live = entry.live().len();
        trace(ctx, "registered", instance, live);
        ctx.count("discovery.registered", 1);
        true
    }

    fn deregister(&mut self, ctx: &mut Ctx<'_, M>, service: &ServiceName, instance: ProcessId) {
        let Some(entry) = self.services.get_mut(service) else { return };
        if entry.leases.remove(&instance).is_some() {
            self.instance_count -= 1;
            let live = entry.live().len();
            trace(ctx, "deregistered", instance, live);
            ctx.count("discovery.deregistered", 1);
        }
    }

    /// Evicts expired leases and raises due suspicions.
    fn sweep(&mut self, ctx: &mut Ctx<'_, M>) -> Vec<(ServiceName, Vec<ProcessId>)> {
        let now = ctx.now_local();
        let mut before = Vec::new();
        for (name, entry) in &mut self.services {
            let live = entry.live();
            let mut evicted = Vec::new();
            let mut suspected = Vec::new();
            for (instance, lease) in &mut entry.leases {
                if lease.expiry.suspects(now) {
                    evicted.push((*instance, lease.expiry.silence(now)));
                } else if lease.check(now) == Some(Transition::Suspected) {
                    suspected.push(*instance);
                }
            }
            for (instance, _silence) in &evicted {
                entry.leases.remove(instance);
                self.instance_count -= 1;
            }
            let live_count = entry.live().len();
            for instance in suspected {
                trace(ctx, "suspected", instance, live_count);
                ctx.count("discovery.suspected", 1);
            }
            for (instance, silence) in evicted {
                trace(ctx, "evicted", instance, live_count);
                ctx.count("discovery.evicted", 1);
                ctx.observe("discovery.eviction_silence", silence);
            }
            before.push((name.clone(), live));
        }
        before
    }

    /// Gives each service whose live set differs from `before` a new
    /// revision, and tells its watchers.
    fn notify_changes(&mut self, ctx: &mut Ctx<'_, M>, before: Vec<(ServiceName, Vec<ProcessId>)>) {
        for (name, live_before) in before {
            let Some(entry) = self.services.get_mut(&name) else { continue };
            let live = entry.live();
            if live != live_before {
                announce(ctx, &name, entry, live);
            }
        }
    }

    fn revision(&self, service: &ServiceName) -> u64 {
        self.services.get(service).map_or(0, |entry| entry.revision)
    }

    /// Keeps one timer set for the earliest lease deadline.
    fn arm(&mut self, ctx: &mut Ctx<'_, M>) {
        let earliest = self
            .services
            .values()
            .flat_map(|entry| entry.leases.values().map(|lease| lease.deadline))
            .min();
        let Some(earliest) = earliest else { return };
        if let Some((timer, armed_for)) = self.alarm {
            if armed_for <= earliest {
                // A timer that fires early finds nothing due and re-arms.
                return;
            }
            ctx.cancel_timer(timer);
        }
        let now = ctx.now_local();
        let after = u64::try_from(earliest.as_nanos().saturating_sub(now.as_nanos())).unwrap_or(0);
        let timer = ctx.set_timer(SimDuration::from_nanos(after), 0);
        self.alarm = Some((timer, earliest));
    }

    /// Renews a lease the registry already holds, as [`Registry::handle`]
    /// followed by [`Registry::prune`] and [`Registry::arm`] would, but at
    /// the cost of this one lease rather than of every service and lease
    /// (renewals are nearly all of a registry's traffic). False if the
    /// instance is not registered: then nothing was done.
    ///
    /// Only this lease changes, so the live set changes only if its
    /// liveness does (a recovery); no service becomes empty, so pruning
    /// finds nothing; and the earliest deadline moves only if this lease's
    /// new one is earlier than the alarm. Every handler ends with `arm`, so
    /// an alarm is set for no later than every deadline whenever there are
    /// leases, and a new deadline at or after it leaves `arm` nothing to
    /// do.
    fn renew_known(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        service: &ServiceName,
        instance: ProcessId,
    ) -> bool {
        let now = ctx.now_local();
        let Some(entry) = self.services.get_mut(service) else { return false };
        let Some(lease) = entry.leases.get_mut(&instance) else { return false };
        let was_live = lease.is_live();
        let recovered = lease.heartbeat(now) == Some(Transition::Recovered);
        let (is_live, deadline) = (lease.is_live(), lease.deadline);
        ctx.count("discovery.renewed", 1);
        if recovered {
            let live = entry.live_count();
            trace(ctx, "recovered", instance, live);
            ctx.count("discovery.recovered", 1);
        }
        if was_live != is_live {
            let live = entry.live();
            announce(ctx, service, entry, live);
        }
        debug_assert!(self.alarm.is_some_and(|(_, armed_for)| {
            let mut others = self.services.iter().flat_map(|(name, entry)| {
                let others =
                    entry.leases.iter().filter(move |(id, _)| name != service || **id != instance);
                others.map(|(_, lease)| lease.deadline)
            });
            others.all(|other| other >= armed_for)
        }));
        if self.alarm.is_none_or(|(_, armed_for)| deadline < armed_for) {
            self.arm(ctx);
        }
        true
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: Discovery) {
        match message {
            Discovery::Register { service, instance } | Discovery::Renew { service, instance } => {
                let before = self.snapshot(&service);
                self.register(ctx, service, instance);
                self.notify_changes(ctx, before);
            }
            Discovery::Deregister { service, instance } => {
                let before = self.snapshot(&service);
                self.deregister(ctx, &service, instance);
                self.notify_changes(ctx, before);
            }
            Discovery::Lookup { service } => {
                let (instances, revision) =
                    (self.live_instances(&service), self.revision(&service));
                ctx.send(from, M::wrap(Discovery::Resolved { service, instances, revision }));
            }
            Discovery::Watch { service } => {
                let entry = self.services.entry(service.clone()).or_default();
                if !entry.watchers.contains(&from) {
                    if self.watch_count < self.config.watchers_max {
                        entry.watchers.insert(from);
                        self.watch_count += 1;
                    } else {
                        trace(ctx, "watch_rejected", from, entry.live().len());
                        ctx.count("discovery.watch_rejected", 1);
                    }
                }
                let (instances, revision) =
                    (self.live_instances(&service), self.revision(&service));
                ctx.send(from, M::wrap(Discovery::Changed { service, instances, revision }));
            }
            Discovery::Unwatch { service } => {
                if let Some(entry) = self.services.get_mut(&service)
                    && entry.watchers.remove(&from)
                {
                    self.watch_count -= 1;
                }
            }
            Discovery::Resolved { .. }
            | Discovery::Changed { .. }
            | Discovery::RegistrationRejected { .. } => {}
        }
    }

    /// Forgets services with no instances and no watchers, so that names
    /// seen once (a rejected registration, an evicted service) do not
    /// accumulate.
    fn prune(&mut self) {
        self.services.retain(|_, entry| !entry.leases.is_empty() || !entry.watchers.is_empty());
    }

    fn snapshot(&self, service: &ServiceName) -> Vec<(ServiceName, Vec<ProcessId>)> {
        vec![(service.clone(), self.live_instances(service))]
    }
}

/// Gives `entry` (service `name`, whose live set just changed to `live`) a
/// new revision, and tells its watchers.
fn announce<M: Carry<Discovery>>(
    ctx: &mut Ctx<'_, M>,
    name: &ServiceName,
    entry: &mut Service,
    live: Vec<ProcessId>,
) {
    let now = u64::try_from(ctx.now_local().as_nanos()).unwrap_or(0);
    entry.revision = (entry.revision + 1).max(now);
    for watcher in entry.watchers.iter().copied() {
        let service = name.clone();
        let (instances, revision) = (live.clone(), entry.revision);
        ctx.send(watcher, M::wrap(Discovery::Changed { service, instances, revision }));
        ctx.count("discovery.notified", 1);
    }
}

fn trace<M: Message>(ctx: &mut Ctx<'_, M>, kind: &'static str, instance: ProcessId, live: usize) {
    ctx.trace(Component::Discovery, kind, u64::from(instance.0), live as i64);
}

impl<M: Carry<Discovery>> Process<M> for Registry<M> {
    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        // Messages of other protocols are not for the registry.
        if let Ok(message) = message.unwrap() {
            if let Discovery::Register { service, instance }
            | Discovery::Renew { service, instance } = &message
                && self.renew_known(ctx, service, *instance)
            {
                return;
            }
            self.handle(ctx, from, message);
            self.prune();
            self.arm(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, _tag: u64) {
        if self.alarm.is_some_and(|(armed, _)| armed == timer) {
            self.alarm = None;
        }
        let before = self.sweep(ctx);
        self.notify_changes(ctx, before);
        self.prune();
        self.arm(ctx);
    }
}

/// Configuration of a [`Registration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// How often the lease is renewed. Positive, and well below the
    /// registry's TTL.
    pub heartbeat_interval: SimDuration,
}

impl RegistrationConfig {
    /// Rejects a zero interval.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval == SimDuration::ZERO {
            return Err(ConfigError::new(
                "registration.heartbeat_interval",
                self.heartbeat_interval,
                "more than 0",
            ));
        }
        Ok(())
    }
}

/// The instance's side of discovery, embedded in a service process: it
/// registers on [`Registration::start`] and renews its lease on a timer.
/// The host passes its timers through [`Registration::on_timer`].
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    registry: ProcessId,
    service: ServiceName,
    config: RegistrationConfig,
    timer_tag: u64,
    timer: Option<TimerId>,
}

impl Registration {
    /// Registration of the host under `service` at `registry`; its
    /// heartbeat timer uses the tag `timer_tag`, which the host must not
    /// use for anything else.
    pub fn new(
        registry: ProcessId,
        service: ServiceName,
        config: RegistrationConfig,
        timer_tag: u64,
    ) -> Result<Registration, ConfigError> {
        config.validate()?;
        Ok(Registration { registry, service, config, timer_tag, timer: None })
    }

    /// The service registered under.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// Whether heartbeats are being sent.
    pub fn is_active(&self) -> bool {
        self.timer.is_some()
    }

    /// Registers the host and starts the heartbeats.
    pub fn start<M: Carry<Discovery>>(&mut self, ctx: &mut Ctx<'_, M>) {
        let instance = ctx.me();
        ctx.send(
            self.registry,
            M::wrap(Discovery::Register { service: self.service.clone(), instance }),
        );
        self.timer = Some(ctx.set_timer(self.config.heartbeat_interval, self.timer_tag));
    }

    /// Handles the host's timer `tag`: if it is the heartbeat's, renews
    /// the lease, sets the next one and returns true.
    pub fn on_timer<M: Carry<Discovery>>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> bool {
        if tag != self.timer_tag || self.timer.is_none() {
            return false;
        }
        let instance = ctx.me();
        ctx.send(
            self.registry,
            M::wrap(Discovery::Renew { service: self.service.clone(), instance }),
        );
        self.timer = Some(ctx.set_timer(self.config.heartbeat_interval, self.timer_tag));
        true
    }

    /// Deregisters the host and stops the heartbeats.
    pub fn stop<M: Carry<Discovery>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        let instance = ctx.me();
        ctx.send(
            self.registry,
            M::wrap(Discovery::Deregister { service: self.service.clone(), instance }),
        );
    }
}
