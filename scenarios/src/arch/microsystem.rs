//! The microsystem (Reactive Microsystems, ch. 5 "Microservices Come as
//! Systems", ch. 6): every service is itself a distributed system.
//!
//! # Nodes, processes and roles
//!
//! | node | processes | role |
//! |---|---|---|
//! | `edge` | [`FrontDoor`] (the customers' entry point), the service [`Registry`] | `edge` |
//! | `processing-i` (× `instances`, or `topology.nodes` when given) | one stateless [`Processing`] instance | `processing` |
//! | `lock` (only with `[scaling] serial`) | the [`SerialSection`]: a single-core lock every valid order passes, with optional invalidation broadcasts to the other instances | `lock` |
//! | `event-log` | one [`LogStore`] per Orders shard: the authoritative event logs and the fencing point | `database` |
//! | `orders-j` (× `nodes`) | [`OrdersReplica`]s: shard `s`'s active on node `s mod nodes`, its passive on the next | `orders`; the node of shard 0's active is also `orders-active`, of its passive `orders-passive` |
//! | `inventory`, `payments`, `shipping` | the saga's participants ([`InventoryService`], [`PaymentsService`], [`ShippingService`]) | `inventory`, `payments`, `shipping` |
//! | `saga` | the durable saga coordinator [`OrderSagas`] | `saga` |
//! | `broker` | the [`Broker`] and the read model's [`Projection`] | `broker` |
//!
//! plus the harness's `gateway` (the external payment gateway) and the
//! customers. Every node with processes of ours has a [`Supervisor`]
//! (one-for-one, at most 5 restarts in 10 s) over them: let it crash.
//!
//! # An order's way through
//!
//! The customer's `PlaceOrder` reaches the front door, which picks a
//! processing instance with the kit's balancer (`microsystem.balancer`)
//! among those the registry lists as live. The instance validates and
//! prices it on its node's CPU (`microsystem.cpu`, `microsystem.cores`),
//! then hands it to the coordinator, which records it durably and takes
//! over: `CreateOrder` to the order's shard (consistent hashing of the
//! order id over `microsystem.shards` shards; the shard's active is found
//! through the registry), then the saga ReserveProducts → SubmitPayment
//! (Payments calls the gateway) → ShipProducts (the pivot), with
//! compensations in reverse order, then `CompleteOrder` or
//! `CancelOrder(reason)`, and finally the customer's answer. Each shard's
//! active publishes its status changes to the broker, and the projection
//! folds them into the order-status read model, which lags the system of
//! record (`read_model_lag_ms`) and must agree with it after the drain.
//!
//! On the critical path an order crosses 22 links, the instance's CPU and
//! the gateway (73 ms with the default scenario's 1 ms links, 1 ms of CPU
//! and a 50 ms gateway); nothing else costs time, because every sync is
//! instant (nodes fsync in zero time) and no queue forms at moderate load.
//!
//! # Scaling out (`[topology]`, `[scaling]`)
//!
//! `topology.nodes` sets the number of processing instances; the stateful
//! part keeps its settings, because it spends no modelled CPU (its cost
//! is latency), so it is not what limits a sweep of the stateless part.
//! `[scaling]` adds the costs of scaling out (Reactive Microsystems, ch. 5,
//! Amdahl and the USL): with `serial`, a valid order passes the
//! [`SerialSection`] after its instance's CPU work and before the
//! coordinator sees it (contention); with `invalidation` too, the lock is
//! held until every other instance has acknowledged an invalidation
//! (coherency). See [`SerialSection`] for the model.
//!
//! # Made to carry a thousand orders a second
//!
//! - Writes to a shard are pipelined: one batch in flight per shard, and
//!   the commands that come meanwhile go together in the next (group
//!   commit); under load one replicated write carries several orders.
//! - The coordinator journals every change but waits for the sync only
//!   before acting on an acceptance (the order must not be forgotten) or a
//!   decision to compensate (it must not be taken back); the rest is
//!   synced every 10 ms: every command it sends is idempotent at its
//!   receiver, so a forward step lost in a crash is simply redone.
//! - Deadlines (step timeouts, retries) are checked by one periodic sweep
//!   per process rather than a timer per command.
//! - Each active publishes its status changes after lingering 10 ms, so a
//!   published record carries several.
//!
//! # Where the system is unavailable
//!
//! - The first active of each shard is elected at the first heartbeat tick
//!   (a fresh group does not wait a detection timeout,
//!   [`ReplicationConfig::bootstrap_timeout`]): the first orders wait
//!   about one heartbeat.
//! - While a shard fails over, writes to it wait (the coordinator retries)
//!   for about a detection timeout.
//! - The event-log node (role `database`) is one node: while it is down no
//!   shard can be written. The coordinator is one process: while it is
//!   down orders wait at the processing instances, which give up after a
//!   step timeout without answering, so customers time out.
//!
//! # Failover and fencing
//!
//! Each shard is the kit's active-passive replication: the active
//! heartbeats every `microsystem.heartbeat`; a passive that hears nothing
//! for `microsystem.detection_timeout` claims the next epoch at the store,
//! catches up from the log and takes writes. With `microsystem.fencing`
//! the store refuses appends from any epoch but the current one (and
//! refuses claims against an active it still hears); without it, a
//! partition between the two replicas lets both write, and the
//! `single_writer_per_epoch` invariant shows it.
//!
//! # What is observed
//!
//! The system of record is the stores' logs, read from the event-log
//! node's storage at the end; accepted appends come from the stores'
//! in-memory audit ([`LogStore::accepted`]; a store that restarted has
//! forgotten what it accepted before, which the report cannot see);
//! stock, parcels and the read model from their processes, or, if a node
//! is down at the end, from what its storage holds.

mod codec;
mod front;
mod lock;
mod message;
mod orders;
mod read_model;
mod saga;
mod services;

pub use front::{FrontDoor, Processing, ProcessingConfig};
pub use lock::{SerialSection, SerialSectionConfig};
pub use message::{Internal, Msg, Task};
pub use orders::{OrdersReplica, OrdersShard, ShardEvent};
pub use read_model::{StatusBatch, StatusView};
pub use saga::{CoordinatorConfig, OrderSagas};
pub use services::{InventoryService, PaymentsService, ShippingService};

use crate::domain::{Inventory, OrderId, OrderStatus, ProductId, Shipping};
use crate::harness::{self, Hooks, Roles};
use crate::observe::Observations;
use crate::scenario::{Architecture, Scenario};
use crate::timeline::{GaugeRecord, GaugeSet, QueueProbe, ReadModelProbe};
use sim::kit::broker::{
    Broker, BrokerConfig, Producer, ProducerConfig, SessionConfig, TopicConfig,
};
use sim::kit::discovery::{Registration, RegistrationConfig, Registry, RegistryConfig};
use sim::kit::projection::{Projection, ProjectionConfig};
use sim::kit::replication::{LogStore, Replica, ReplicaGroup, ReplicationConfig};
use sim::kit::routing::{Balancer, HashRing, HashRingConfig, Strategy};
use sim::kit::saga::{Saga, SagaDefinition, StepLedger};
use sim::kit::supervision::{
    RestartLimit, Strategy as SupervisionStrategy, Supervisor, SupervisorConfig,
};
use sim::{Fault, NodeConfig, NodeId, ProcessId, Seed, Sim, SimDuration};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Requests a processing instance holds at most (validating, or waiting
/// for the coordinator); beyond it, it refuses at once.
const PROCESSING_IN_FLIGHT_MAX: usize = 256;

/// Requests the front door holds while it knows no live instance.
const FRONT_DOOR_WAITING_MAX: usize = 1_000;

/// How often the coordinator and the processing instances look at their
/// deadlines (and the coordinator group-commits its journal): deadlines
/// are noticed up to this late.
const SWEEP_INTERVAL: SimDuration = SimDuration::from_millis(10);

/// Sagas running at once at most; beyond it, new orders are refused.
const SAGAS_RUNNING_MAX: u32 = 10_000;

/// CPU time for the projection to apply one published batch of status
/// changes (a modelling choice: the read model is not the bottleneck
/// here; lesson 10's projection has its own capacity).
const PROJECTION_BATCH_COST: SimDuration = SimDuration::from_micros(100);

/// The microsystem's processes, for reading their state at the end.
struct World {
    front_door: ProcessId,
    stores: Vec<(ProcessId, NodeId)>,
    replicas: Vec<Vec<ProcessId>>,
    event_log: NodeId,
    inventory: (ProcessId, NodeId),
    shipping: (ProcessId, NodeId),
    projection: (ProcessId, NodeId),
    coordinator: ProcessId,
}

/// Runs the microsystem on `scenario`.
///
/// # Panics
/// If `microsystem.balancer` names no balancing strategy (the scenario
/// file's validation rejects that first).
pub fn run(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> Observations {
    let mut sim = harness::new_sim::<Msg>(scenario, seed);
    if let Some(sink) = hooks.trace.take() {
        sim.set_trace_sink(sink);
    }
    let mut roles = Roles::new();
    let gateway = harness::add_gateway(&mut sim, scenario, &mut roles);
    let world = build(&mut sim, scenario, &mut roles, gateway);
    let clients = harness::add_clients(&mut sim, scenario, seed, world.front_door);
    let (schedule, not_applicable) = harness::fault_schedule(scenario, &roles);
    sim.schedule_faults(&schedule);
    let gauges = gauges(&sim, &roles, &world);
    let gauges = harness::drive_sampled(&mut sim, scenario, hooks, &gauges);
    let mut observations = observe(&sim, scenario, seed, &world, gateway, clients, not_applicable);
    observations.gauges = gauges;
    observations
}

fn build(sim: &mut Sim<Msg>, scenario: &Scenario, roles: &mut Roles, gateway: ProcessId) -> World {
    let settings = &scenario.microsystem;
    let shards = settings.shards.max(1);
    let node_count = settings.nodes.max(1);
    let cores = settings.cores.max(1);
    let role = |roles: &mut Roles, name: &str, node: NodeId| {
        roles.entry(name.to_string()).or_default().push(node);
    };
    let add_node =
        |sim: &mut Sim<Msg>, name: String| sim.add_node(NodeConfig::new(name).cores(cores));
    let heartbeat = settings.heartbeat;
    let detection = settings.detection_timeout;
    // Supervised processes, by node, for a supervisor per node at the end.
    let mut supervised: BTreeMap<NodeId, Vec<ProcessId>> = BTreeMap::new();

    // The front door's node also runs the registry. Leases last one
    // detection timeout, renewed every heartbeat.
    let edge = add_node(sim, "edge".to_string());
    role(roles, "edge", edge);
    let registry_config = RegistryConfig::new(detection);
    let registry = Registry::<Msg>::new(registry_config).expect("a valid registry");
    let registry = sim.spawn(edge, "registry", move || registry.clone());
    let registration = RegistrationConfig { heartbeat_interval: heartbeat };

    // The broker and the read model.
    let broker_node = add_node(sim, "broker".to_string());
    role(roles, "broker", broker_node);
    let session = SessionConfig {
        heartbeat_interval: SimDuration::from_secs(1),
        session_timeout: SimDuration::from_secs(5),
    };
    let mut broker_config = BrokerConfig::new(vec![TopicConfig::new(orders::STATUS_TOPIC, shards)]);
    broker_config.session = session;
    let broker = Broker::<StatusBatch>::new(broker_config).expect("a valid broker");
    let broker = sim.spawn(broker_node, "broker", move || broker.clone());
    let mut projection_config =
        ProjectionConfig::new("order-status-view", orders::STATUS_TOPIC, session);
    projection_config.event_cost = PROJECTION_BATCH_COST;
    projection_config.snapshot_every = 1_000;
    let projection =
        Projection::<StatusView>::new(projection_config, broker).expect("a valid projection");
    let projection = sim.spawn(broker_node, "order-status-view", move || projection.clone());
    supervised.entry(broker_node).or_default().extend([broker, projection]);

    // The Orders shards: a store each on the event-log node, two replicas
    // each on the Orders nodes.
    let replication = ReplicationConfig {
        heartbeat_interval: heartbeat,
        detection_timeout: detection,
        write_timeout: detection,
        fencing: settings.fencing,
        // A fresh group elects its first active at the first heartbeat
        // tick instead of after a detection timeout of silence.
        bootstrap_timeout: Some(SimDuration::from_nanos(1)),
        ..ReplicationConfig::new()
    };
    let event_log = add_node(sim, "event-log".to_string());
    role(roles, "database", event_log);
    let mut stores = Vec::new();
    for shard in 0..shards {
        let store = LogStore::<ShardEvent>::new(&replication).expect("a valid replication config");
        let id = sim.spawn(event_log, format!("orders-log-{shard}"), move || store.clone());
        supervised.entry(event_log).or_default().push(id);
        stores.push((id, event_log));
    }
    let orders_nodes: Vec<NodeId> =
        (0..node_count).map(|index| add_node(sim, format!("orders-{index}"))).collect();
    for node in &orders_nodes {
        role(roles, "orders", *node);
    }
    role(roles, "orders-active", orders_nodes[0]);
    role(roles, "orders-passive", orders_nodes[1 % orders_nodes.len()]);
    let mut shard_replicas = Vec::new();
    for shard in 0..shards {
        let first = ProcessId(sim.process_count() as u32);
        let replicas = vec![first, ProcessId(first.0 + 1)];
        let group = ReplicaGroup {
            aggregate: u64::from(shard),
            store: stores[shard as usize].0,
            replicas: replicas.clone(),
        };
        for (rank, expected) in replicas.iter().enumerate() {
            let node = orders_nodes[(shard as usize + rank) % orders_nodes.len()];
            let replica = Replica::new(&replication, &group, OrdersShard::default())
                .expect("a valid replica group");
            let registration = Registration::new(
                registry,
                orders::service_name(shard),
                registration,
                OrdersReplica::registration_tag(),
            )
            .expect("a valid registration");
            let producer =
                Producer::new(ProducerConfig::default(), broker).expect("a valid producer");
            let value = OrdersReplica::new(shard, replica, registration, producer, detection);
            let name = format!("orders-{shard}-{}", if rank == 0 { "a" } else { "b" });
            let id = sim.spawn(node, name, move || value.clone());
            assert_eq!(id, *expected, "replica ids are known before they are spawned");
            supervised.entry(node).or_default().push(id);
        }
        shard_replicas.push(replicas);
    }

    // The saga's participants.
    let inventory_node = add_node(sim, "inventory".to_string());
    role(roles, "inventory", inventory_node);
    let stock = initial_stock(scenario);
    let inventory_value = InventoryService::new(stock);
    let inventory = sim.spawn(inventory_node, "inventory", move || inventory_value.clone());
    supervised.entry(inventory_node).or_default().push(inventory);
    let payments_node = add_node(sim, "payments".to_string());
    role(roles, "payments", payments_node);
    let payments_value = PaymentsService::new(gateway, settings.step_timeout);
    let payments = sim.spawn(payments_node, "payments", move || payments_value.clone());
    supervised.entry(payments_node).or_default().push(payments);
    let shipping_node = add_node(sim, "shipping".to_string());
    role(roles, "shipping", shipping_node);
    let shipping_value = ShippingService::new(inventory);
    let shipping = sim.spawn(shipping_node, "shipping", move || shipping_value.clone());
    supervised.entry(shipping_node).or_default().push(shipping);

    // The coordinator.
    let saga_node = add_node(sim, "saga".to_string());
    role(roles, "saga", saga_node);
    let timeout = settings.step_timeout;
    let mut definition = SagaDefinition::new("order")
        .step("reserve_products", inventory, timeout)
        .step("submit_payment", payments, timeout)
        .pivot_step("ship_products", shipping, timeout);
    definition.active_max = SAGAS_RUNNING_MAX;
    let ring = HashRing::with_members(HashRingConfig::default(), 0..shards).expect("a valid ring");
    let coordinator_config = Rc::new(CoordinatorConfig {
        saga: Saga::new(definition).expect("a valid saga"),
        registry,
        shards: shard_replicas.clone(),
        ring,
        write_retry: detection,
        write_backoff: heartbeat,
        watch_refresh: detection,
        sweep_interval: SWEEP_INTERVAL,
        batch_max: replication.batch_max,
    });
    let coordinator =
        sim.spawn(saga_node, "order-saga", move || OrderSagas::new(coordinator_config.clone()));
    supervised.entry(saga_node).or_default().push(coordinator);

    // The stateless part: the front door and the processing instances.
    let strategy: Strategy = settings.balancer.parse().unwrap_or_else(|error| {
        panic!("microsystem.balancer: {error}");
    });
    let front_door_value =
        FrontDoor::new(registry, Balancer::new(strategy), FRONT_DOOR_WAITING_MAX, detection);
    let front_door = sim.spawn(edge, "front-door", move || front_door_value.clone());
    supervised.entry(edge).or_default().extend([registry, front_door]);
    let instances = scenario.topology.nodes.unwrap_or(settings.instances).max(1);
    let serial_section = add_serial_section(sim, scenario, roles, instances);
    let processing_config = ProcessingConfig {
        coordinator,
        catalogue_size: scenario.workload.products,
        cpu: settings.cpu.clone(),
        retry: detection,
        give_up: settings.step_timeout,
        in_flight_max: PROCESSING_IN_FLIGHT_MAX,
        sweep_interval: SWEEP_INTERVAL,
        serial_section,
    };
    let first_instance = ProcessId(sim.process_count() as u32);
    for index in 0..instances {
        let node = add_node(sim, format!("processing-{index}"));
        role(roles, "processing", node);
        let registration = Registration::new(
            registry,
            front::processing_service(),
            registration,
            Processing::registration_tag(),
        )
        .expect("a valid registration");
        let value = Processing::new(processing_config.clone(), registration);
        let id = sim.spawn(node, format!("processing-{index}"), move || value.clone());
        assert_eq!(id, ProcessId(first_instance.0 + index), "instance ids are known in advance");
        supervised.entry(node).or_default().push(id);
    }

    // Let it crash: a supervisor per node over that node's processes.
    for (node, children) in supervised {
        let mut config = SupervisorConfig::new(children.clone(), SupervisionStrategy::OneForOne);
        config.restart_limit =
            Some(RestartLimit { restarts_max: 5, within: SimDuration::from_secs(10) });
        let supervisor = Supervisor::<Msg>::new(config).expect("a valid supervisor");
        // Built afresh at a node restart without restarting the children
        // again (the node's restart already started them).
        let parent = sim.spawn(node, "supervisor", move || supervisor.clone());
        for child in children {
            sim.supervise(child, parent);
        }
    }

    World {
        front_door,
        stores,
        replicas: shard_replicas,
        event_log,
        inventory: (inventory, inventory_node),
        shipping: (shipping, shipping_node),
        projection: (projection, broker_node),
        coordinator,
    }
}

/// The serialised section of `[scaling]`, if the scenario has one: a lock
/// holder on a node of its own with one core (role `lock`), told the
/// processing instances that will be spawned right after it (ids
/// consecutive from the next one), for its invalidation broadcasts.
fn add_serial_section(
    sim: &mut Sim<Msg>,
    scenario: &Scenario,
    roles: &mut Roles,
    instances: u32,
) -> Option<ProcessId> {
    let serial = scenario.scaling.serial.clone()?;
    let node = sim.add_node(NodeConfig::new("lock").cores(1));
    roles.entry("lock".to_string()).or_default().push(node);
    let first_instance = sim.process_count() as u32 + 1;
    let config = SerialSectionConfig {
        serial,
        invalidation: scenario.scaling.invalidation.clone(),
        instances: (0..instances).map(|index| ProcessId(first_instance + index)).collect(),
    };
    Some(sim.spawn(node, "lock", move || SerialSection::new(config.clone())))
}

fn initial_stock(scenario: &Scenario) -> Inventory {
    let per_product = scenario.workload.stock_per_product;
    Inventory::with_stock(
        (0..scenario.workload.products).map(|product| (ProductId(product), per_product)),
    )
}

fn observe(
    sim: &Sim<Msg>,
    scenario: &Scenario,
    seed: Seed,
    world: &World,
    gateway: ProcessId,
    clients: ProcessId,
    not_applicable: Vec<String>,
) -> Observations {
    let (requests, order_values) = harness::requests(sim, clients);
    let orders = system_of_record(sim, world);
    let inventory = match sim.process_state::<InventoryService>(world.inventory.0) {
        Some(service) => service.inventory().clone(),
        None => {
            let mut inventory = initial_stock(scenario);
            let records = sim.storage(world.inventory.1).read("inventory/log");
            InventoryService::replay(records, &mut inventory, &mut StepLedger::default());
            inventory
        }
    };
    let parcels = match sim.process_state::<ShippingService>(world.shipping.0) {
        Some(service) => service.shipping().parcels().clone(),
        None => {
            let mut shipping = Shipping::default();
            let records = sim.storage(world.shipping.1).read("shipping/log");
            ShippingService::replay(records, &mut shipping, &mut StepLedger::default());
            shipping.parcels().clone()
        }
    };
    let writes = world
        .stores
        .iter()
        .filter_map(|(store, _)| sim.process_state::<LogStore<ShardEvent>>(*store))
        .flat_map(|store| store.accepted().iter().copied())
        .collect();
    let mismatches = with_read_model(sim, world, |view| {
        let mut mismatches: Vec<OrderId> = orders
            .iter()
            .filter(|(order, status)| view.status(**order) != Some(**status))
            .map(|(order, _)| *order)
            .collect();
        mismatches.extend(
            view.orders().map(|(order, _)| order).filter(|order| !orders.contains_key(order)),
        );
        mismatches.sort_unstable();
        mismatches
    });
    let metrics = sim.metrics();
    let lag_ms = metrics.series("projection.lag_ms").map_or(0.0, |series| {
        series
            .buckets
            .iter()
            .filter(|bucket| bucket.count > 0)
            .map(|bucket| bucket.max)
            .fold(0.0, f64::max)
    });
    let node_restarts = sim
        .fired_faults()
        .iter()
        .filter(|fired| fired.applied && matches!(fired.fault, Fault::RestartNode { .. }))
        .count() as u64;
    let _ = world.coordinator;
    Observations {
        architecture: Architecture::Microsystem,
        seed: seed.0,
        trace_hash: sim.trace_hash(),
        engine: sim.stats(),
        ended_at: sim.now(),
        requests,
        orders,
        order_values,
        payments: harness::ledger(sim, gateway),
        stock_initial: u64::from(scenario.workload.products) * scenario.workload.stock_per_product,
        stock_final: inventory.units(),
        parcels,
        writes: Some(writes),
        read_model_mismatches: Some(mismatches),
        compensations: metrics.counter("microsystem.compensations"),
        breaker_transitions: 0,
        restarts: metrics.counter("supervisor.restarted") + node_restarts,
        failovers: metrics.counter("microsystem.failovers"),
        read_model_lag_ms: lag_ms,
        faults_fired: sim.fired_faults().to_vec(),
        faults_not_applicable: not_applicable,
        gauges: GaugeRecord::default(),
    }
}

/// The system of record: every order in the Orders shards' logs, with the
/// status the log gives it. The authoritative log of a shard is its
/// store's; a replica that has applied exactly as many entries as that log
/// holds has the same memory image (replicas apply the store's entries by
/// sequence number), so its state is used instead of decoding the log.
fn system_of_record(sim: &Sim<Msg>, world: &World) -> BTreeMap<OrderId, OrderStatus> {
    let storage = sim.storage(world.event_log);
    let mut all = BTreeMap::new();
    for (shard, replicas) in world.replicas.iter().enumerate() {
        let shard = shard as u32;
        let logged = storage.read(&orders::store_log_name(shard)).len() as u64;
        let caught_up = replicas
            .iter()
            .filter_map(|replica| sim.process_state::<OrdersReplica>(*replica))
            .find(|replica| replica.replica().applied_sequence() == logged);
        match caught_up {
            Some(replica) => {
                let records = replica.replica().state().orders().orders();
                all.extend(records.iter().map(|(order, record)| (*order, record.status)));
            }
            None => {
                let mut shard_orders = crate::domain::Orders::default();
                for event in orders::store_events(storage, shard) {
                    shard_orders.evolve(&event);
                }
                all.extend(
                    shard_orders.orders().iter().map(|(order, record)| (*order, record.status)),
                );
            }
        }
    }
    all
}

/// Calls `f` with the read model at the end: the live projection's, or the
/// last snapshot its node's storage holds if it is down.
fn with_read_model<T>(sim: &Sim<Msg>, world: &World, f: impl FnOnce(&StatusView) -> T) -> T {
    if let Some(projection) = sim.process_state::<Projection<StatusView>>(world.projection.0) {
        return f(projection.model());
    }
    let snapshots = sim.storage(world.projection.1).read("order-status-view/snapshots");
    let model = snapshots
        .last()
        .and_then(|bytes| {
            serde_json::from_slice::<(serde_json::Value, bool, StatusView)>(bytes).ok()
        })
        .map(|(_, _, model)| model)
        .unwrap_or_default();
    f(&model)
}

/// What the timeline samples in the microsystem: every node's cores, the
/// coordinator's and the front door's mailboxes, the compensations the
/// coordinator counted, and the read model's lag.
fn gauges<'a>(sim: &Sim<Msg>, roles: &Roles, world: &World) -> GaugeSet<'a, Msg> {
    let mut nodes: Vec<NodeId> = roles.values().flatten().copied().collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut queues: Vec<QueueProbe<'a, Msg>> = nodes
        .into_iter()
        .map(|node| QueueProbe::Cores { node, name: format!("{} cores", sim.node(node).name) })
        .collect();
    queues
        .push(QueueProbe::Mailbox { process: world.front_door, name: "front-door mailbox".into() });
    queues.push(QueueProbe::Mailbox { process: world.coordinator, name: "saga mailbox".into() });
    let projection = world.projection.0;
    GaugeSet {
        queues,
        compensations: Some(Box::new(|sim: &Sim<Msg>| {
            Some(sim.metrics().counter("microsystem.compensations"))
        })),
        read_model: Some(ReadModelProbe {
            lag_ms_series: "projection.lag_ms".to_string(),
            lag_events: Box::new(move |sim: &Sim<Msg>| {
                let projection = sim.process_state::<Projection<StatusView>>(projection)?;
                Some(projection.progress().lag_events() as f64)
            }),
        }),
        ..GaugeSet::none()
    }
}
