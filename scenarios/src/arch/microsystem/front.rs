//! The stateless part of Orders: the front door that spreads customers'
//! requests over processing instances, and the instances themselves
//! (validation and pricing, the anti-corruption layer), scaled out to
//! `microsystem.instances` nodes (ch. 5, "Microservices Come as Systems").

use super::message::{Internal, Msg};
use crate::domain::{OrderId, PlaceOrder, validate};
use crate::parts::{Answer, Edge};
use sim::kit::discovery::{Discovery, Registration, ServiceName};
use sim::kit::routing::Balancer;
use sim::{Ctx, DenseMap, Dist, LocalTime, Process, ProcessId, SimDuration, TimerId};
use std::collections::VecDeque;

/// The registry name of the processing instances.
pub fn processing_service() -> ServiceName {
    ServiceName::new("order-processing")
}

fn answer_failed(ctx: &mut Ctx<'_, Msg>, client: ProcessId, order: OrderId) {
    ctx.send(client, Msg::Edge(Edge::OrderAnswered { order, answer: Answer::Failed }));
}

/// The front door (an API gateway): the customers' entry point. It learns
/// the live processing instances from the registry and balances requests
/// over them with the kit's [`Balancer`], counting a request in progress
/// at an instance until the instance says it has passed it on. While it
/// knows no instance, requests wait in a bounded line; beyond it they are
/// answered `Failed` at once.
#[derive(Clone, Debug)]
pub struct FrontDoor {
    registry: ProcessId,
    balancer: Balancer<ProcessId>,
    revision: u64,
    waiting: VecDeque<(ProcessId, PlaceOrder)>,
    waiting_max: usize,
    watch_refresh: SimDuration,
}

impl FrontDoor {
    /// A front door balancing with `balancer` (empty: the registry fills it).
    pub fn new(
        registry: ProcessId,
        balancer: Balancer<ProcessId>,
        waiting_max: usize,
        watch_refresh: SimDuration,
    ) -> FrontDoor {
        FrontDoor {
            registry,
            balancer,
            revision: 0,
            waiting: VecDeque::new(),
            waiting_max,
            watch_refresh,
        }
    }

    /// The balancer (backends, requests in progress, picks).
    pub fn balancer(&self) -> &Balancer<ProcessId> {
        &self.balancer
    }

    fn route(&mut self, ctx: &mut Ctx<'_, Msg>, client: ProcessId, request: PlaceOrder) {
        match self.balancer.dispatch(ctx) {
            Some(instance) => {
                ctx.send(instance, Msg::Internal(Internal::Handle { client, request }));
            }
            None if self.waiting.len() < self.waiting_max => {
                self.waiting.push_back((client, request))
            }
            None => {
                ctx.count("microsystem.front_door_refused", 1);
                answer_failed(ctx, client, request.order);
            }
        }
    }

    fn watch(&self, ctx: &mut Ctx<'_, Msg>) {
        let watch = Discovery::Watch { service: processing_service() };
        ctx.send(self.registry, Msg::Discovery(Box::new(watch)));
    }

    fn changed(&mut self, ctx: &mut Ctx<'_, Msg>, instances: Vec<ProcessId>, revision: u64) {
        if revision < self.revision {
            return;
        }
        self.revision = revision;
        let gone: Vec<ProcessId> =
            self.balancer.backends().filter(|backend| !instances.contains(backend)).collect();
        for backend in gone {
            self.balancer.remove_traced(ctx, backend);
        }
        for instance in instances {
            self.balancer.add_traced(ctx, instance);
        }
        while !self.balancer.is_empty() {
            let Some((client, request)) = self.waiting.pop_front() else { break };
            self.route(ctx, client, request);
        }
    }
}

impl Process<Msg> for FrontDoor {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.watch(ctx);
        ctx.set_timer(self.watch_refresh, 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Edge(Edge::PlaceOrder(request)) => self.route(ctx, from, request),
            Msg::Internal(Internal::Handled { .. }) => {
                self.balancer.complete(ctx, from);
            }
            Msg::Discovery(discovery) => {
                if let Discovery::Changed { service, instances, revision }
                | Discovery::Resolved { service, instances, revision } = *discovery
                    && service == processing_service()
                {
                    self.changed(ctx, instances, revision);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, _tag: u64) {
        // A restarted registry has forgotten its watchers: watch again.
        self.watch(ctx);
        ctx.set_timer(self.watch_refresh, 0);
    }
}

/// How a processing instance behaves.
#[derive(Clone, Debug)]
pub struct ProcessingConfig {
    /// The saga coordinator.
    pub coordinator: ProcessId,
    /// Products in the catalogue (for validation).
    pub catalogue_size: u32,
    /// CPU time per request.
    pub cpu: Dist,
    /// How long to wait for the coordinator before asking again.
    pub retry: SimDuration,
    /// How long to keep asking before giving up on a request.
    pub give_up: SimDuration,
    /// Requests in progress at most; beyond it requests are refused.
    pub in_flight_max: usize,
    /// How often unanswered hand-offs are checked (one periodic tick
    /// rather than a timer per request).
    pub sweep_interval: SimDuration,
    /// The serialised section every valid request passes before it is
    /// handed on (`[scaling]`, see [`super::SerialSection`]); `None`: none.
    pub serial_section: Option<ProcessId>,
}

#[derive(Clone, Debug)]
struct InFlight {
    client: ProcessId,
    front_door: ProcessId,
    request: PlaceOrder,
    /// When the coordinator was first asked.
    asked_at: Option<LocalTime>,
    /// When to ask again.
    ask_again_at: Option<LocalTime>,
}

const REGISTRATION_TAG: u64 = 1 << 63;
const SWEEP_TAG: u64 = 1;

/// A stateless processing instance: validates (and prices) a request on
/// its node's CPU, then hands it to the saga coordinator and waits for the
/// coordinator to confirm it has durably taken it. It holds nothing that
/// outlives a request, so any instance can take any request and a
/// restarted one starts empty.
#[derive(Clone, Debug)]
pub struct Processing {
    config: ProcessingConfig,
    registration: Registration,
    /// By order id: the workload numbers orders densely, and the front door
    /// spreads them over few instances, so a table (iterated in id order,
    /// like a tree) serves the per-request lookups.
    in_flight: DenseMap<OrderId, InFlight>,
}

impl Processing {
    /// An instance registering with `registration` (whose timer tag must be
    /// [`Processing::registration_tag`]).
    pub fn new(config: ProcessingConfig, registration: Registration) -> Processing {
        Processing { config, registration, in_flight: DenseMap::new() }
    }

    /// The registration heartbeat's timer tag.
    pub fn registration_tag() -> u64 {
        REGISTRATION_TAG
    }

    fn done(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId) {
        if let Some(in_flight) = self.in_flight.remove(&order) {
            ctx.send(in_flight.front_door, Msg::Internal(Internal::Handled { order }));
        }
    }

    fn ask(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId) {
        let Some(in_flight) = self.in_flight.get_mut(&order) else { return };
        let start =
            Internal::StartOrder { client: in_flight.client, request: in_flight.request.clone() };
        ctx.send(self.config.coordinator, Msg::Internal(start));
        let now = ctx.now_local();
        in_flight.asked_at.get_or_insert(now);
        in_flight.ask_again_at = Some(now.plus(self.config.retry));
    }
}

impl Process<Msg> for Processing {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.registration.start(ctx);
        ctx.set_timer(self.config.sweep_interval, SWEEP_TAG);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        let Msg::Internal(message) = message else { return };
        match message {
            Internal::Handle { client, request } => {
                let order = request.order;
                if self.in_flight.contains_key(&order) {
                    return;
                }
                if self.in_flight.len() >= self.config.in_flight_max {
                    ctx.count("microsystem.processing_refused", 1);
                    answer_failed(ctx, client, order);
                    ctx.send(from, Msg::Internal(Internal::Handled { order }));
                    return;
                }
                let in_flight = InFlight {
                    client,
                    front_door: from,
                    request,
                    asked_at: None,
                    ask_again_at: None,
                };
                self.in_flight.insert(order, in_flight);
                let cpu = self.config.cpu.sample(ctx.rng());
                ctx.spend_cpu(cpu, order.0);
            }
            Internal::Serialized { order } => self.ask(ctx, order),
            Internal::Invalidate { order } => {
                // Dropping a cache entry costs this instance nothing worth
                // modelling; the lock holder pays per acknowledgement.
                ctx.send(from, Msg::Internal(Internal::Invalidated { order }));
            }
            Internal::OrderAccepted { order } => self.done(ctx, order),
            Internal::OrderRefused { order } => {
                if let Some(in_flight) = self.in_flight.get(&order) {
                    answer_failed(ctx, in_flight.client, order);
                }
                self.done(ctx, order);
            }
            _ => {}
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let order = OrderId(tag);
        let Some(in_flight) = self.in_flight.get(&order) else { return };
        match validate(&in_flight.request, self.config.catalogue_size) {
            Ok(()) => match self.config.serial_section {
                Some(lock) => ctx.send(lock, Msg::Internal(Internal::Serialize { order })),
                None => self.ask(ctx, order),
            },
            Err(_) => {
                ctx.count("microsystem.invalid_requests", 1);
                answer_failed(ctx, in_flight.client, order);
                self.done(ctx, order);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if self.registration.on_timer::<Msg>(ctx, tag) || tag != SWEEP_TAG {
            return;
        }
        let now = ctx.now_local();
        let due: Vec<OrderId> = self
            .in_flight
            .iter()
            .filter(|(_, in_flight)| in_flight.ask_again_at.is_some_and(|at| now >= at))
            .map(|(order, _)| *order)
            .collect();
        for order in due {
            let asked_at = self.in_flight[&order].asked_at;
            if asked_at.is_some_and(|asked| now >= asked.plus(self.config.give_up)) {
                // Whether the coordinator has it is unknown: answering
                // `Failed` could contradict the saga's own answer, so say
                // nothing and let the customer's timeout speak.
                ctx.count("microsystem.processing_gave_up", 1);
                self.done(ctx, order);
            } else {
                self.ask(ctx, order);
            }
        }
        ctx.set_timer(self.config.sweep_interval, SWEEP_TAG);
    }
}
