//! Service discovery and location transparency: a registry of live
//! instances kept fresh by heartbeats, failure detectors that turn silence
//! into suspicion, and stable virtual addresses that hide where (and
//! whether) a service's instance currently runs.
//!
//! In a microsystem a service is several instances that come and go:
//! they are restarted by supervisors, moved between nodes, replaced after
//! a failover. Reactive Microsystems (ch. 5, "Microservices Come as
//! Systems") asks that callers address a service by a stable name and not
//! by a physical location, and that messages to a service in the middle of
//! moving are held, retried or sent to a dead-letter queue instead of
//! vanishing. This module provides the three pieces:
//! - [`Registry`], a process, with [`Registration`] embedded in each
//!   instance: instances register under a [`ServiceName`], renew a lease
//!   with heartbeats, and are evicted when the lease runs out (optionally
//!   suspected earlier by a failure detector); lookups and watches return
//!   the live instances. The protocol is [`Discovery`], carried in the
//!   world's message type through [`Carry`](crate::kit::Carry).
//! - [`TimeoutDetector`] and [`PhiAccrualDetector`], pure state machines fed
//!   the local arrival times of heartbeats, with [`Monitor`] to report each
//!   change of mind once.
//! - [`VirtualAddress`], embedded in a sender, and [`Recipient`], embedded
//!   in an instance: the sender names a service, and every message it sends
//!   ends up acknowledged by some instance or as a kept, counted dead
//!   letter, whatever crashes and moves happen in between.
//!
//! Everything reports to the trace as [`Component::Discovery`](crate::Component::Discovery)
//! events; each type's documentation lists its kinds.
//!
//! ```
//! use sim::kit::Carry;
//! use sim::kit::discovery::{
//!     Delivery, Discovery, Recipient, Registration, RegistrationConfig, Registry,
//!     RegistryConfig, ServiceName, VirtualAddress, VirtualAddressConfig,
//! };
//! use sim::{Ctx, Fault, FaultSchedule, Message, NodeConfig, Process, ProcessId, Seed, Sim};
//! use sim::{SimConfig, SimDuration, SimTime, TimerId};
//!
//! #[derive(Clone, Debug)]
//! enum Msg { Discovery(Discovery), Delivery(Delivery<u64>) }
//! impl Message for Msg {
//!     fn label(&self) -> &'static str {
//!         match self { Msg::Discovery(m) => m.label(), Msg::Delivery(m) => m.label() }
//!     }
//! }
//! impl Carry<Discovery> for Msg {
//!     fn wrap(inner: Discovery) -> Msg { Msg::Discovery(inner) }
//!     fn unwrap(self) -> Result<Discovery, Msg> {
//!         match self { Msg::Discovery(inner) => Ok(inner), other => Err(other) }
//!     }
//! }
//! impl Carry<Delivery<u64>> for Msg {
//!     fn wrap(inner: Delivery<u64>) -> Msg { Msg::Delivery(inner) }
//!     fn unwrap(self) -> Result<Delivery<u64>, Msg> {
//!         match self { Msg::Delivery(inner) => Ok(inner), other => Err(other) }
//!     }
//! }
//!
//! /// An instance of `orders`: registers, heartbeats, accepts deliveries.
//! struct Orders { registration: Registration, recipient: Recipient }
//! impl Process<Msg> for Orders {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) { self.registration.start(ctx); }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
//!         if let Msg::Delivery(delivery) = message {
//!             if let Some(order) = self.recipient.accept(ctx, from, delivery) {
//!                 ctx.record("OrderReceived", order);
//!             }
//!         }
//!     }
//!     fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
//!         self.registration.on_timer(ctx, tag);
//!     }
//! }
//!
//! /// Sends one order a second to whichever instance of `orders` is live.
//! struct Client { orders: VirtualAddress<u64> }
//! impl Process<Msg> for Client {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
//!         self.orders.start(ctx);
//!         ctx.set_timer(SimDuration::from_secs(1), 1);
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
//!         let _ = self.orders.handle(ctx, message);
//!     }
//!     fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
//!         if !self.orders.on_timer(ctx, tag) && self.orders.sent_count() < 10 {
//!             self.orders.send(ctx, self.orders.sent_count());
//!             ctx.set_timer(SimDuration::from_secs(1), 1);
//!         }
//!     }
//! }
//!
//! let mut sim = Sim::<Msg>::new(SimConfig::new(Seed(1)));
//! let nodes: Vec<_> = (0..4).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
//! let registry = Registry::new(RegistryConfig::new(SimDuration::from_millis(1500))).unwrap();
//! let registry = sim.spawn(nodes[0], "registry", move || registry.clone());
//! let heartbeats = RegistrationConfig { heartbeat_interval: SimDuration::from_millis(500) };
//! for node in [nodes[1], nodes[2]] {
//!     sim.spawn(node, "orders", move || Orders {
//!         registration: Registration::new(registry, "orders".into(), heartbeats, 7).unwrap(),
//!         recipient: Recipient::new(64).unwrap(),
//!     });
//! }
//! let address = VirtualAddress::new(
//!     ServiceName::new("orders"), registry, VirtualAddressConfig::new(), 2).unwrap();
//! let client = sim.spawn(nodes[3], "client", move || Client { orders: address.clone() });
//! // The first instance's node dies mid-run; the client fails over to the other.
//! sim.schedule_faults(&FaultSchedule::new()
//!     .at(SimTime::from_nanos(4_500_000_000), Fault::CrashNode { node: nodes[1] }));
//! sim.run_until(SimTime::from_nanos(20_000_000_000));
//! let orders = &sim.process_state::<Client>(client).unwrap().orders;
//! assert_eq!(orders.sent_count(), 10);
//! assert_eq!(orders.delivered_count() + orders.dead_letter_count(), 10);
//! assert_eq!(orders.delivered_count(), 10);
//! ```

pub mod detector;
pub mod registry;
pub mod virtual_address;

pub use detector::{
    Detector, DetectorConfig, FailureDetector, IntervalModel, Monitor, PhiAccrualConfig,
    PhiAccrualDetector, TimeoutDetector, TimeoutDetectorConfig, Transition,
};
pub use registry::{
    Discovery, Registration, RegistrationConfig, Registry, RegistryConfig, ServiceName,
};
pub use virtual_address::{
    Delivery, Recipient, Undelivered, UndeliveredReason, VirtualAddress, VirtualAddressConfig,
};

#[cfg(test)]
mod tests;
