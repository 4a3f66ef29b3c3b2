//! The microlith (Reactive Microsystems, ch. 2): one instance of each
//! service, synchronous calls that hold a worker thread while they wait,
//! blocking database access through a connection pool, no breaker, no
//! retries, no saga.
//!
//! # The world
//!
//! | node | role | processes and pools |
//! |---|---|---|
//! | `orders`, `inventory`, `payments`, `shipping` | the service's name | one [`Service`] each; a thread pool of `microlith.threads` with a wait line of [`THREAD_QUEUE_PER_THREAD`] × threads; a connection pool of `microlith.connections`; `microlith.cores` cores |
//! | `orders-db`, ... (or one `database` with `microlith.shared_database`) | `database` | one [`Database`] each; `microlith.cores` cores (the scenario has no setting of its own for database nodes); `microlith.connections` sessions, so a shared database also shares its sessions among the four services |
//! | `front` (only with `topology.nodes`) | `front` | the round-robin [`Front`] over the replicas' Orders services |
//! | `gateway` | `gateway` | the external payment gateway (shared part) |
//! | `clients` | none | the customers (shared part) |
//!
//! # Scaling out (`[topology] nodes`)
//!
//! Scaling one service of a microlith means scaling all of them
//! (Reactive Microsystems, ch. 2). With `topology.nodes = N`, the world
//! has N replicas of the four services (nodes `orders-0`, `inventory-0`,
//! ..., each with its own pools; every replica's nodes play the service's
//! role) behind a round-robin [`Front`], and all replicas share the
//! database(s) above: their cores and sessions (`microlith.connections`,
//! with a wait line grown to the N replicas' pools) are the serialised
//! section, so throughput flattens once the database saturates. Without
//! it the single microlith is built exactly as before.
//!
//! # The order flow
//!
//! A customer's `PlaceOrder` reaches Orders, which takes a thread (or, if
//! the pool's wait line is full, answers `Failed` at once), spends
//! `microlith.cpu` on a core, validates the order ([`crate::domain::validate`]),
//! then, holding its thread throughout, makes one blocking call after the
//! other, each bounded by `microlith.call_timeout`:
//!
//! 1. its database: `CreateOrder` (the order is now accepted);
//! 2. Inventory: `ReserveProducts` (Inventory takes a thread of its own and
//!    runs the command against its database);
//! 3. Payments: `SubmitPayment` (Payments takes a thread and calls the
//!    gateway with `GatewayMsg::Charge`, holding its thread until the
//!    gateway answers or the timeout fires, then records the outcome in its
//!    database);
//! 4. Shipping: `ShipOrder` (Shipping takes a thread, calls Inventory's
//!    `ShipProducts`, then records the parcel in its database);
//! 5. its database: `CompleteOrder`;
//!
//! and answers the customer with `Edge::OrderAnswered`. Every database call
//! holds the caller's thread *and* one of its connections while the
//! database spends `microlith.database` on one of its cores.
//!
//! A business refusal gets the straightforward treatment: out of stock
//! cancels the order (`OutOfStock`); a declined card releases the
//! reservation, then cancels the order (`PaymentDeclined`). A failed or
//! timed-out call makes Orders answer `Failed` and mark the order
//! cancelled (`OutOfStock` for a failed reservation, `PaymentFailed`,
//! `ShippingFailed`), and nothing more: there is no saga, so work that may
//! have happened downstream is never undone. A payment call that timed out
//! after the gateway charged the card is never refunded; a reservation
//! whose answer was lost is never released; a parcel that left after
//! Shipping's answer was lost belongs to a cancelled order. That is why the
//! money invariant breaks under faults here, honestly.
//!
//! # What the pools teach
//!
//! A thread is held from the moment a request gets it until the request's
//! answer leaves, so a service's throughput is bounded by its pool size
//! divided by how long each request holds a thread. When the gateway slows
//! from 50 ms to 500 ms, Payments' and Orders' threads sit waiting, Orders'
//! wait line fills, and new orders are turned away at once, while
//! Inventory and Shipping sit idle: a slow dependency takes the whole flow
//! down (cascading failure). The wait line is bounded at
//! [`THREAD_QUEUE_PER_THREAD`] × threads: enough to absorb a burst at
//! normal speed, and short enough that, at the lesson's 500 ms gateway,
//! a queued order still gets its answer before the customers' 5 s timeout
//! (the line holds about 2 s of work), so overload shows as quick
//! rejections and long but answered waits rather than silent growth.
//!
//! # Crashes
//!
//! A service restarts empty: its in-flight requests are lost (their
//! callers time out; orders it had accepted stay `Created` forever, which
//! the no-lost-orders invariant reports). A database syncs its
//! write-ahead log before every answer and replays it on restart, so its
//! data survives; a database still down at the end of a run is read from
//! its durable log. The Orders database is the system of record for
//! orders, Inventory's for stock, Shipping's for parcels; the gateway's
//! ledger is the truth about money.

pub mod database;
pub mod front;
pub mod protocol;
pub mod service;

pub use database::{Database, DatabaseConfig, Schemas, Tables};
pub use front::Front;
pub use protocol::{CallResult, MicrolithMsg, Query, Refusal, ServiceRequest};
pub use service::{Peers, Service, ServiceConfig, ServiceKind, Stage};

use crate::harness::{self, Hooks, Roles};
use crate::observe::Observations;
use crate::scenario::{Architecture, Scenario};
use crate::timeline::{GaugeRecord, GaugeSet, QueueProbe};
use sim::{EXTERNAL, Fault, NodeConfig, NodeId, ProcessId, ResourceConfig, ResourceId, Seed, Sim};
use std::collections::BTreeMap;

/// The wait line of each service's thread pool holds this many requests
/// per thread. Four lines' worth at the lesson's settings (20 threads,
/// about 0.54 s per order once the gateway takes 500 ms) is about 2 s of
/// waiting: visible in the latency, still inside the customers' 5 s
/// timeout.
pub const THREAD_QUEUE_PER_THREAD: u32 = 4;

/// The services, in the order they are built (each only calls services
/// built before it).
pub const SERVICES: [ServiceKind; 4] =
    [ServiceKind::Inventory, ServiceKind::Payments, ServiceKind::Shipping, ServiceKind::Orders];

/// Runs the microlith on `scenario`.
pub fn run(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> Observations {
    let mut world = MicrolithWorld::build(scenario, seed, hooks);
    let gauges = world.gauges();
    let gauges = harness::drive_sampled(&mut world.sim, scenario, hooks, &gauges);
    let mut observations = world.observe();
    observations.gauges = gauges;
    observations
}

/// One service as built: its process, node and pools.
#[derive(Clone, Copy, Debug)]
pub struct ServiceParts {
    /// The service process.
    pub process: ProcessId,
    /// Its node.
    pub node: NodeId,
    /// Its worker threads.
    pub threads: ResourceId,
    /// Its database connections.
    pub connections: ResourceId,
    /// Its database.
    pub database: ProcessId,
}

/// One database as built.
#[derive(Clone, Copy, Debug)]
pub struct DatabaseParts {
    /// The database process.
    pub process: ProcessId,
    /// Its node.
    pub node: NodeId,
    /// Its sessions.
    pub sessions: ResourceId,
    /// The tables it holds.
    pub schemas: Schemas,
}

/// The microlith's world, built and ready to run: [`run`] drives it to the
/// end; tests may step it themselves to look at it mid-run.
pub struct MicrolithWorld {
    sim: Sim<MicrolithMsg>,
    scenario: Scenario,
    seed: Seed,
    clients: ProcessId,
    gateway: ProcessId,
    services: BTreeMap<ServiceKind, ServiceParts>,
    databases: Vec<DatabaseParts>,
    not_applicable: Vec<String>,
}

impl MicrolithWorld {
    /// Builds the world for `scenario` and schedules its faults.
    pub fn build(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> MicrolithWorld {
        let settings = &scenario.microlith;
        let workload = &scenario.workload;
        let mut sim = harness::new_sim::<MicrolithMsg>(scenario, seed);
        if let Some(sink) = hooks.trace.take() {
            sim.set_trace_sink(sink);
        }
        let mut roles = Roles::new();
        // `[topology] nodes`: that many replicas of the whole microlith,
        // sharing the databases; `None`: the single microlith, as before.
        let replicas = scenario.topology.nodes;
        let replica_count = replicas.unwrap_or(1).max(1);

        // The databases: one per service, or one shared by all four.
        let layout: Vec<(&str, Schemas, u32)> = if settings.shared_database {
            vec![("database", Schemas::ALL, 4)]
        } else {
            vec![
                ("inventory-db", Schemas { inventory: true, ..Schemas::default() }, 1),
                ("payments-db", Schemas { payments: true, ..Schemas::default() }, 1),
                ("shipping-db", Schemas { shipping: true, ..Schemas::default() }, 1),
                ("orders-db", Schemas { orders: true, ..Schemas::default() }, 1),
            ]
        };
        let mut databases = Vec::new();
        for (name, schemas, clients) in layout {
            let node = sim.add_node(NodeConfig::new(name).cores(settings.cores));
            roles.entry("database".to_string()).or_default().push(node);
            let sessions = sim.add_resource(
                node,
                ResourceConfig {
                    name: format!("{name}.sessions"),
                    capacity: settings.connections,
                    // Every waiting query holds a client connection, so the
                    // line never exceeds the clients' pools together.
                    queue_max: Some(settings.connections * clients * replica_count),
                },
            );
            let config = DatabaseConfig {
                schemas,
                products: workload.products,
                stock_per_product: workload.stock_per_product,
                sessions,
                query_time: settings.database.clone(),
            };
            let process =
                sim.spawn(node, format!("{name}-server"), move || Database::new(config.clone()));
            databases.push(DatabaseParts { process, node, sessions, schemas });
        }
        let database_for = |kind: ServiceKind| -> ProcessId {
            let holds = |schemas: &Schemas| match kind {
                ServiceKind::Orders => schemas.orders,
                ServiceKind::Inventory => schemas.inventory,
                ServiceKind::Payments => schemas.payments,
                ServiceKind::Shipping => schemas.shipping,
            };
            databases
                .iter()
                .find(|database| holds(&database.schemas))
                .map(|database| database.process)
                .expect("every service has a database")
        };

        let gateway = harness::add_gateway(&mut sim, scenario, &mut roles);

        // The services, each calling only services built before it; with
        // replicas, a full set per replica, each set calling only its own.
        let mut services = BTreeMap::new();
        let mut entry_points = Vec::new();
        for replica in 0..replica_count {
            let built = Self::build_services(
                &mut sim,
                scenario,
                &mut roles,
                gateway,
                &database_for,
                replicas.map(|_| replica),
            );
            entry_points.push(built[&ServiceKind::Orders].process);
            if replica == 0 {
                services = built;
            }
        }

        let entry = match replicas {
            None => entry_points[0],
            Some(_) => {
                let node = sim.add_node(NodeConfig::new("front").cores(1));
                roles.entry("front".to_string()).or_default().push(node);
                sim.spawn(node, "front", move || Front::new(entry_points.clone()))
            }
        };
        let clients = harness::add_clients(&mut sim, scenario, seed, entry);
        let (schedule, not_applicable) = harness::fault_schedule(scenario, &roles);
        sim.schedule_faults(&schedule);
        MicrolithWorld {
            sim,
            scenario: scenario.clone(),
            seed,
            clients,
            gateway,
            services,
            databases,
            not_applicable,
        }
    }

    /// One set of the four services, calling each other and the given
    /// databases. `replica`: its index when the microlith is replicated
    /// (node names then end in `-index`; every replica's nodes play the
    /// service's role), `None` for the single microlith.
    fn build_services(
        sim: &mut Sim<MicrolithMsg>,
        scenario: &Scenario,
        roles: &mut Roles,
        gateway: ProcessId,
        database_for: &dyn Fn(ServiceKind) -> ProcessId,
        replica: Option<u32>,
    ) -> BTreeMap<ServiceKind, ServiceParts> {
        let settings = &scenario.microlith;
        // Each service calls only services built before it.
        let mut peers = Peers {
            inventory: EXTERNAL,
            payments: EXTERNAL,
            shipping: EXTERNAL,
            gateway,
            database: EXTERNAL,
        };
        let mut services = BTreeMap::new();
        for kind in SERVICES {
            let name = match replica {
                None => kind.name().to_string(),
                Some(index) => format!("{}-{index}", kind.name()),
            };
            let node = sim.add_node(NodeConfig::new(name.clone()).cores(settings.cores));
            roles.entry(kind.name().to_string()).or_default().push(node);
            let threads = sim.add_resource(
                node,
                ResourceConfig {
                    name: format!("{name}.threads"),
                    capacity: settings.threads,
                    queue_max: Some(THREAD_QUEUE_PER_THREAD * settings.threads),
                },
            );
            let connections = sim.add_resource(
                node,
                ResourceConfig {
                    name: format!("{name}.connections"),
                    capacity: settings.connections,
                    // Only a thread waits for a connection.
                    queue_max: Some(settings.threads),
                },
            );
            let database = database_for(kind);
            let config = ServiceConfig {
                kind,
                threads,
                thread_count: settings.threads,
                connections,
                cpu: settings.cpu.clone(),
                call_timeout: settings.call_timeout,
                products: scenario.workload.products,
                peers: Peers { database, ..peers },
            };
            let process = sim.spawn(node, name.clone(), move || Service::new(config.clone()));
            match kind {
                ServiceKind::Inventory => peers.inventory = process,
                ServiceKind::Payments => peers.payments = process,
                ServiceKind::Shipping => peers.shipping = process,
                ServiceKind::Orders => {}
            }
            services.insert(kind, ServiceParts { process, node, threads, connections, database });
        }

        services
    }

    /// The engine.
    pub fn sim(&self) -> &Sim<MicrolithMsg> {
        &self.sim
    }

    /// The engine, to step it.
    pub fn sim_mut(&mut self) -> &mut Sim<MicrolithMsg> {
        &mut self.sim
    }

    /// A service's process and pools (the first replica's when `topology.nodes`
    /// replicates the microlith).
    pub fn service(&self, kind: ServiceKind) -> ServiceParts {
        self.services[&kind]
    }

    /// The databases.
    pub fn databases(&self) -> &[DatabaseParts] {
        &self.databases
    }

    /// What a service's jobs are waiting on now (empty while it is down; the
    /// first replica's when replicated).
    pub fn threads_blocked_on(&self, kind: ServiceKind) -> BTreeMap<&'static str, usize> {
        self.sim
            .process_state::<Service>(self.services[&kind].process)
            .map(Service::threads_blocked_on)
            .unwrap_or_default()
    }

    /// The tables of the database holding `schema`'s data: live if its
    /// process runs, otherwise as replayed from its durable log.
    fn tables(&self, holds: impl Fn(&Schemas) -> bool) -> Tables {
        let parts = self
            .databases
            .iter()
            .find(|database| holds(&database.schemas))
            .expect("every schema has a database");
        match self.sim.process_state::<Database>(parts.process) {
            Some(database) => database.tables().clone(),
            None => {
                let workload = &self.scenario.workload;
                let initial =
                    Tables::new(parts.schemas, workload.products, workload.stock_per_product);
                initial.replay(self.sim.storage(parts.node).read(database::WAL))
            }
        }
    }

    /// What the run showed, from the final states.
    pub fn observe(&self) -> Observations {
        let (requests, order_values) = harness::requests(&self.sim, self.clients);
        let orders_table = self.tables(|schemas| schemas.orders).orders.unwrap_or_default();
        let orders =
            orders_table.orders().iter().map(|(order, record)| (*order, record.status)).collect();
        let inventory = self.tables(|schemas| schemas.inventory).inventory.unwrap_or_default();
        let shipping = self.tables(|schemas| schemas.shipping).shipping.unwrap_or_default();
        let workload = &self.scenario.workload;
        let restarts = self
            .sim
            .fired_faults()
            .iter()
            .filter(|fired| fired.applied && matches!(fired.fault, Fault::RestartNode { .. }))
            .count() as u64;
        Observations {
            architecture: Architecture::Microlith,
            seed: self.seed.0,
            trace_hash: self.sim.trace_hash(),
            engine: self.sim.stats(),
            ended_at: self.sim.now(),
            requests,
            orders,
            order_values,
            payments: harness::ledger(&self.sim, self.gateway),
            stock_initial: u64::from(workload.products) * workload.stock_per_product,
            stock_final: inventory.units(),
            parcels: shipping.parcels().clone(),
            writes: None,
            read_model_mismatches: None,
            compensations: self.sim.metrics().counter("microlith.compensations"),
            breaker_transitions: 0,
            restarts,
            failovers: 0,
            read_model_lag_ms: 0.0,
            faults_fired: self.sim.fired_faults().to_vec(),
            faults_not_applicable: self.not_applicable.clone(),
            gauges: GaugeRecord::default(),
        }
    }

    /// What the timeline samples: each service's cores, threads and
    /// connections, each database's cores and sessions, and the
    /// compensations counted (none in this architecture, which has no
    /// saga, but counted the same way as elsewhere).
    fn gauges<'a>(&self) -> GaugeSet<'a, MicrolithMsg> {
        let mut queues = Vec::new();
        for kind in SERVICES {
            let parts = self.services[&kind];
            let name = kind.name();
            queues.push(QueueProbe::Cores { node: parts.node, name: format!("{name} cores") });
            queues.push(QueueProbe::Pool {
                resource: parts.threads,
                name: format!("{name} threads"),
            });
            queues.push(QueueProbe::Pool {
                resource: parts.connections,
                name: format!("{name} connections"),
            });
        }
        for database in &self.databases {
            let name = self.sim.node(database.node).name;
            queues.push(QueueProbe::Cores { node: database.node, name: format!("{name} cores") });
            queues.push(QueueProbe::Pool {
                resource: database.sessions,
                name: format!("{name} sessions"),
            });
        }
        GaugeSet {
            queues,
            compensations: Some(Box::new(|sim: &Sim<MicrolithMsg>| {
                Some(sim.metrics().counter("microlith.compensations"))
            })),
            ..GaugeSet::none()
        }
    }
}
