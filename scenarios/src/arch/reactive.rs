//! The reactive microlith (Reactive Microsystems, ch. 5, "Toward Reactive
//! Microliths"): still one instance per service, but non-blocking, and
//! talking only through a pub/sub broker.
//!
//! The world:
//!
//! | node (role) | process | what it does |
//! |---|---|---|
//! | `broker` | [`Broker`] | durable topics `orders`, `inventory`, `payments`, `shipping`; consumer groups with committed offsets |
//! | `orders` | [`Service`]`<`[`OrdersLogic`]`>` | takes `PlaceOrder` (bounded edge lane), `CreateOrder`, publishes `OrderCreated`; completes or cancels on the others' facts and answers the customer |
//! | `inventory` | [`Service`]`<`[`InventoryLogic`]`>` | reserves on `OrderCreated`; ships on `PaymentApproved` (the pivot); releases on a failed or declined payment |
//! | `payments` | [`Service`]`<`[`PaymentsLogic`]`>` | charges on `ProductsReserved` through the gateway: deadline, retries with backoff and jitter, circuit breaker failing fast; refunds payments whose outcome is unknown |
//! | `shipping` | [`Service`]`<`[`ShippingLogic`]`>` | sends the parcel on `PaymentApproved` |
//! | `gateway` | [`PaymentGateway`](crate::parts::PaymentGateway) | the external payment gateway |
//! | (customers) | [`Clients`](crate::parts::Clients) | place orders, wait for the answer |
//!
//! The saga is a choreography: no coordinator, each service reacts to the
//! facts it subscribes to. Orders completes an order once both
//! `ProductsShipped` and `ParcelSent` are in; a rejected reservation, a
//! declined card or a failed payment cancels it, while Inventory releases
//! the reservation and Payments refunds a charge whose outcome it could not
//! learn, each on its own.
//!
//! What makes it hold together (shared by every service, in
//! [`service`]):
//! - **Non-blocking handlers.** Only CPU time (`reactive.cpu` per message
//!   on `reactive.cores` cores) occupies a service; waiting for the broker
//!   or the gateway holds nothing.
//! - **Durable state, outbox, at-least-once.** A service writes its domain
//!   events and the facts it will publish in one synced append to its own
//!   log, publishes the facts once durable, and commits consumed offsets
//!   only once their effects are durable. A crash loses nothing decided:
//!   the restarted service replays its log, publishes what was not
//!   acknowledged, and resumes from the committed offsets; messages sent to
//!   it meanwhile wait in the broker. Every handler is idempotent (the
//!   domain aggregates are), so redelivered and republished facts are
//!   harmless.
//! - **Bounded intake, backpressure.** New requests wait in a lane bounded
//!   by `reactive.queue_bound` and are refused (`Failed`, at once) beyond
//!   it; records are fetched from the broker only while the intake has room
//!   for a full batch, so an overloaded service leaves the backlog in the
//!   broker rather than in its memory. With no bound, queues and latency
//!   grow for as long as the overload lasts.
//! - **Timeouts, retries, breaker.** See [`payments`].
//!
//! `[topology] nodes` has no effect here: with one instance per service it
//! has nothing to scale out (ch. 5), so a sweep of the number of nodes
//! shows the flat line of what its single instances carry.
//!
//! What it still cannot do: scale a service out, or keep a service
//! available while its single instance is down. And backpressure stops at
//! the broker: the front door refuses work only when Orders itself is
//! saturated; a slower service further down shows as consumer lag (the
//! broker's `broker.lag.GROUP.TOPIC` series), with latency growing while the
//! topic's backlog does.

pub mod facts;
pub mod inventory;
pub mod journal;
pub mod orders;
pub mod payments;
pub mod service;
pub mod shipping;

use crate::domain::{OrderId, OrderStatus, Shipping};
use crate::harness::{self, Hooks, Roles};
use crate::observe::Observations;
use crate::parts::{Edge, GatewayMsg};
use crate::scenario::{Architecture, Scenario};
use crate::timeline::{BreakerReading, GaugeRecord, GaugeSet, QueueProbe, Reader};
use facts::{Fact, TOPICS};
use inventory::{InventoryLogic, StockBook};
use journal::{Ledgered, replay_storage};
use orders::{OrdersBook, OrdersLogic};
use payments::{BreakerChange, PaymentBook, PaymentsLogic, PaymentsSettings};
use service::{Lane, Logic, Service, ServiceConfig};
use shipping::ShippingLogic;
use sim::kit::Carry;
use sim::kit::backpressure::BufferStats;
use sim::kit::breaker::{BreakerConfig, SlidingWindow};
use sim::kit::broker::{Broker, BrokerConfig, BrokerMsg, SessionConfig, TopicConfig};
use sim::{Fault, Message, Metrics, NodeConfig, NodeId, ProcessId, Seed, Sim};
use std::collections::BTreeMap;

/// Partitions per topic. One consumer per group reads them all, so more
/// partitions would add fetches, not parallelism; order is kept per order
/// id either way (the record key).
const PARTITIONS: u32 = 1;

/// Everything the reactive microlith's processes say to each other.
#[derive(Clone, Debug)]
pub enum ReactiveMsg {
    /// Customers and the front door.
    Edge(Edge),
    /// Payments and the external gateway.
    Gateway(GatewayMsg),
    /// The services and the broker.
    Broker(BrokerMsg<Fact>),
}

impl Message for ReactiveMsg {
    fn label(&self) -> &'static str {
        match self {
            ReactiveMsg::Edge(edge) => edge.label(),
            ReactiveMsg::Gateway(gateway) => gateway.label(),
            ReactiveMsg::Broker(broker) => broker.label(),
        }
    }

    fn digest(&self) -> u64 {
        match self {
            ReactiveMsg::Edge(edge) => edge.digest(),
            ReactiveMsg::Gateway(gateway) => gateway.digest(),
            ReactiveMsg::Broker(broker) => match broker {
                // The broker's digest covers numbers only; fold the fact in
                // so a change of content changes the hash.
                BrokerMsg::Publish { payload, .. } => broker.digest() ^ payload.digest(),
                _ => broker.digest(),
            },
        }
    }
}

impl Carry<Edge> for ReactiveMsg {
    fn wrap(inner: Edge) -> Self {
        ReactiveMsg::Edge(inner)
    }
    fn unwrap(self) -> Result<Edge, Self> {
        match self {
            ReactiveMsg::Edge(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

impl Carry<GatewayMsg> for ReactiveMsg {
    fn wrap(inner: GatewayMsg) -> Self {
        ReactiveMsg::Gateway(inner)
    }
    fn unwrap(self) -> Result<GatewayMsg, Self> {
        match self {
            ReactiveMsg::Gateway(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

impl Carry<BrokerMsg<Fact>> for ReactiveMsg {
    fn wrap(inner: BrokerMsg<Fact>) -> Self {
        ReactiveMsg::Broker(inner)
    }
    fn unwrap(self) -> Result<BrokerMsg<Fact>, Self> {
        match self {
            ReactiveMsg::Broker(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

/// A run of the reactive microlith with what its report does not show:
/// for tests and lessons that look inside.
pub struct ReactiveRun {
    /// What the report is built from.
    pub observations: Observations,
    /// The run's named metrics (counters such as
    /// `payments.gateway_charges`, `orders.shed`, `breaker.opened`; series
    /// such as `payments.gateway_charges` per second and the lanes'
    /// `NAME.length`).
    pub metrics: Metrics,
    /// The breaker's changes of state, on the Payments node's clock (those
    /// of Payments' last incarnation, if it restarted).
    pub breaker_changes: Vec<BreakerChange>,
    /// The edge lane of Orders: offered, rejected (shed), high water.
    pub orders_edge: BufferStats,
}

/// Runs the reactive microlith on `scenario`.
pub fn run(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> Observations {
    run_detailed(scenario, seed, hooks).observations
}

/// Runs the reactive microlith on `scenario`, keeping the details.
pub fn run_detailed(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> ReactiveRun {
    let mut sim = harness::new_sim::<ReactiveMsg>(scenario, seed);
    if let Some(sink) = hooks.trace.take() {
        sim.set_trace_sink(sink);
    }
    let settings = &scenario.reactive;
    let mut roles = Roles::new();
    let mut add_node = |sim: &mut Sim<ReactiveMsg>, role: &str, cores: u32| -> NodeId {
        let node = sim.add_node(NodeConfig::new(role).cores(cores));
        roles.entry(role.to_string()).or_default().push(node);
        node
    };

    // Process ids are handed out in spawn order; the services need the
    // ids of processes spawned after them (the gateway, the customers).
    let first = sim.process_count() as u32;
    let ids = Ids {
        broker: ProcessId(first),
        orders: ProcessId(first + 1),
        inventory: ProcessId(first + 2),
        payments: ProcessId(first + 3),
        shipping: ProcessId(first + 4),
        gateway: ProcessId(first + 5),
        clients: ProcessId(first + 6),
    };

    let session = SessionConfig::default();
    let mut broker_config = BrokerConfig::new(
        TOPICS.iter().map(|topic| TopicConfig::new(*topic, PARTITIONS)).collect(),
    );
    broker_config.session = session;
    let broker = Broker::<Fact>::new(broker_config).expect("a valid broker configuration");
    let broker_node = add_node(&mut sim, "broker", 4);
    let spawned = sim.spawn(broker_node, "broker", move || broker.clone());
    assert_eq!(spawned, ids.broker);

    let service = ServiceConfig {
        broker: ids.broker,
        cpu: settings.cpu.clone(),
        cores: settings.cores,
        queue_bound: settings.queue_bound,
        session,
    };
    let cores = settings.cores;

    let node = add_node(&mut sim, OrdersLogic::NAME, cores);
    let (config, clients, catalogue_size) =
        (service.clone(), ids.clients, scenario.workload.products);
    let spawned = sim.spawn(node, OrdersLogic::NAME, move || {
        Service::new(OrdersLogic { clients, catalogue_size }, config.clone())
    });
    assert_eq!(spawned, ids.orders);

    let node = add_node(&mut sim, InventoryLogic::NAME, cores);
    let (config, workload) = (service.clone(), scenario.workload.clone());
    let spawned = sim.spawn(node, InventoryLogic::NAME, move || {
        let logic = InventoryLogic {
            products: workload.products,
            stock_per_product: workload.stock_per_product,
        };
        Service::new(logic, config.clone())
    });
    assert_eq!(spawned, ids.inventory);

    let node = add_node(&mut sim, PaymentsLogic::NAME, cores);
    let config = service.clone();
    let payments = PaymentsSettings {
        gateway: ids.gateway,
        call_timeout: settings.call_timeout,
        retries: settings.retries,
        breaker: settings.breaker_enabled.then(|| breaker_config(scenario)),
    };
    let spawned = sim.spawn(node, PaymentsLogic::NAME, move || {
        Service::new(PaymentsLogic::new(payments.clone()), config.clone())
    });
    assert_eq!(spawned, ids.payments);

    let node = add_node(&mut sim, ShippingLogic::NAME, cores);
    let config = service.clone();
    let spawned =
        sim.spawn(node, ShippingLogic::NAME, move || Service::new(ShippingLogic, config.clone()));
    assert_eq!(spawned, ids.shipping);

    let gateway = harness::add_gateway(&mut sim, scenario, &mut roles);
    assert_eq!(gateway, ids.gateway);
    let clients = harness::add_clients(&mut sim, scenario, seed, ids.orders);
    assert_eq!(clients, ids.clients);

    let (schedule, not_applicable) = harness::fault_schedule(scenario, &roles);
    sim.schedule_faults(&schedule);
    let gauges = harness::drive_sampled(&mut sim, scenario, hooks, &gauges(scenario, &roles, &ids));

    let mut run = observe(&sim, scenario, &roles, &ids, not_applicable);
    run.observations.gauges = gauges;
    run
}

/// The lesson-5 breaker of a scenario's settings.
fn breaker_config(scenario: &Scenario) -> BreakerConfig {
    let breaker = &scenario.reactive.breaker;
    BreakerConfig {
        sliding_window: SlidingWindow::Count { size: breaker.window },
        minimum_calls: breaker.minimum_calls,
        failure_rate_threshold_percent: breaker.failure_rate_percent,
        open_duration: breaker.open_duration,
        permitted_half_open_calls: breaker.half_open_calls,
        ..BreakerConfig::default()
    }
}

struct Ids {
    broker: ProcessId,
    orders: ProcessId,
    inventory: ProcessId,
    payments: ProcessId,
    shipping: ProcessId,
    gateway: ProcessId,
    clients: ProcessId,
}

/// A service's durable state at the end: from the running process, or,
/// if its node is down, replayed from what its storage holds durably.
fn final_state<L: Logic>(
    sim: &Sim<ReactiveMsg>,
    process: ProcessId,
    book: impl FnOnce() -> L::Book,
) -> Ledgered<L::Book> {
    let running = sim.process_state::<Service<L>>(process);
    match running.and_then(|service| service.shell.started_state()) {
        Some(state) => state.clone(),
        None => replay_storage(sim.storage(sim.process(process).node), L::NAME, book()),
    }
}

fn observe(
    sim: &Sim<ReactiveMsg>,
    scenario: &Scenario,
    roles: &Roles,
    ids: &Ids,
    not_applicable: Vec<String>,
) -> ReactiveRun {
    let workload = &scenario.workload;
    let orders: Ledgered<OrdersBook> =
        final_state::<OrdersLogic>(sim, ids.orders, OrdersBook::default);
    let stock: Ledgered<StockBook> = final_state::<InventoryLogic>(sim, ids.inventory, || {
        InventoryLogic {
            products: workload.products,
            stock_per_product: workload.stock_per_product,
        }
        .initial_book()
    });
    let payments: Ledgered<PaymentBook> =
        final_state::<PaymentsLogic>(sim, ids.payments, PaymentBook::default);
    let shipping: Ledgered<Shipping> =
        final_state::<ShippingLogic>(sim, ids.shipping, Shipping::default);
    let (requests, order_values) = harness::requests(sim, ids.clients);
    let statuses: BTreeMap<OrderId, OrderStatus> =
        orders.book.orders.orders().iter().map(|(order, record)| (*order, record.status)).collect();
    let metrics = sim.metrics().clone();
    let breaker_transitions = ["breaker.opened", "breaker.half_opened", "breaker.closed"]
        .iter()
        .map(|name| metrics.counter(name))
        .sum();
    let service_nodes: Vec<NodeId> = ["broker", "orders", "inventory", "payments", "shipping"]
        .iter()
        .flat_map(|role| roles.get(*role).cloned().unwrap_or_default())
        .collect();
    let restarts = sim
        .fired_faults()
        .iter()
        .filter(|fired| fired.applied)
        .filter_map(|fired| match fired.fault {
            Fault::RestartNode { node } if service_nodes.contains(&node) => {
                Some(u64::from(fired.touched.processes_restarted))
            }
            _ => None,
        })
        .sum();
    let payments_logic =
        sim.process_state::<Service<PaymentsLogic>>(ids.payments).map(|service| &service.logic);
    let orders_edge = sim
        .process_state::<Service<OrdersLogic>>(ids.orders)
        .map(|service| service.shell.lane_stats(Lane::Edge))
        .unwrap_or_default();
    let observations = Observations {
        architecture: Architecture::Reactive,
        seed: sim.seed().0,
        trace_hash: sim.trace_hash(),
        engine: sim.stats(),
        ended_at: sim.now(),
        requests,
        orders: statuses,
        order_values,
        payments: harness::ledger(sim, ids.gateway),
        stock_initial: u64::from(workload.products) * workload.stock_per_product,
        stock_final: stock.book.inventory.units(),
        parcels: shipping.book.parcels().clone(),
        writes: None,
        read_model_mismatches: None,
        compensations: stock.book.released + payments.book.refunds + orders.book.cancelled,
        breaker_transitions,
        restarts,
        failovers: 0,
        read_model_lag_ms: 0.0,
        faults_fired: sim.fired_faults().to_vec(),
        faults_not_applicable: not_applicable,
        gauges: GaugeRecord::default(),
    };
    ReactiveRun {
        observations,
        metrics,
        breaker_changes: payments_logic
            .map(|logic| logic.breaker_changes.clone())
            .unwrap_or_default(),
        orders_edge,
    }
}

/// What the timeline samples in the reactive microlith: each service
/// node's cores and each service's intake (its three lanes together), the
/// compensations recorded in the services' books, and the breaker with
/// the gateway calls it let through or failed fast.
fn gauges<'a>(scenario: &Scenario, roles: &Roles, ids: &Ids) -> GaugeSet<'a, ReactiveMsg> {
    fn intake<L: Logic>(sim: &Sim<ReactiveMsg>, process: ProcessId) -> Option<f64> {
        let service = sim.process_state::<Service<L>>(process)?;
        let held = [Lane::Reply, Lane::Record, Lane::Edge]
            .iter()
            .map(|lane| {
                let stats = service.shell.lane_stats(*lane);
                stats.offered.saturating_sub(stats.taken + stats.dropped + stats.rejected)
            })
            .sum::<u64>();
        Some(held as f64)
    }
    let mut queues = Vec::new();
    for role in ["broker", "orders", "inventory", "payments", "shipping"] {
        for node in roles.get(role).into_iter().flatten() {
            queues.push(QueueProbe::Cores { node: *node, name: format!("{role} cores") });
        }
    }
    let (orders, inventory, payments, shipping) =
        (ids.orders, ids.inventory, ids.payments, ids.shipping);
    let readers: [(&str, Reader<'a, ReactiveMsg, f64>); 4] = [
        ("orders", Box::new(move |sim| intake::<OrdersLogic>(sim, orders))),
        ("inventory", Box::new(move |sim| intake::<InventoryLogic>(sim, inventory))),
        ("payments", Box::new(move |sim| intake::<PaymentsLogic>(sim, payments))),
        ("shipping", Box::new(move |sim| intake::<ShippingLogic>(sim, shipping))),
    ];
    for (name, read) in readers {
        queues.push(QueueProbe::Read { name: format!("{name} intake"), read });
    }
    let compensations = Box::new(move |sim: &Sim<ReactiveMsg>| {
        let started = |process| sim.process_state::<Service<InventoryLogic>>(process);
        let released = started(inventory)?.shell.started_state()?.book.released;
        let refunds = sim
            .process_state::<Service<PaymentsLogic>>(payments)?
            .shell
            .started_state()?
            .book
            .refunds;
        let cancelled = sim
            .process_state::<Service<OrdersLogic>>(orders)?
            .shell
            .started_state()?
            .book
            .cancelled;
        Some(released + refunds + cancelled)
    });
    let payments_node = roles.get("payments").and_then(|nodes| nodes.first().copied());
    let breaker = (scenario.reactive.breaker_enabled && payments_node.is_some()).then(|| {
        let node = payments_node.expect("checked above");
        Box::new(move |sim: &Sim<ReactiveMsg>| {
            let logic = &sim.process_state::<Service<PaymentsLogic>>(payments)?.logic;
            Some(BreakerReading {
                incarnation: sim.process(payments).incarnation,
                state: logic.breaker_state()?,
                changes: logic
                    .breaker_changes
                    .iter()
                    .map(|change| (change.at, change.from, change.to))
                    .collect(),
                clock_now: sim.node(node).clock,
            })
        }) as Reader<'a, ReactiveMsg, BreakerReading>
    });
    GaugeSet {
        queues,
        compensations: Some(compensations),
        breaker,
        breaker_counters: vec![
            ("gateway calls".to_string(), "payments.gateway_charges".to_string()),
            ("failed fast".to_string(), "payments.fail_fast".to_string()),
        ],
        read_model: None,
    }
}
