//! The microsystem's message type: the shared protocols (customers,
//! payment gateway) and the kit's (discovery, replication, broker,
//! projection), each carried in one variant, plus the world's own
//! protocol between its services, [`Internal`].

use super::orders::ShardEvent;
use super::read_model::StatusBatch;
use crate::domain::{CancelReason, CardOutcome, Lines, OrderCommand, OrderId};
use crate::parts::{Edge, GatewayMsg};
use sim::kit::Carry;
use sim::kit::broker::BrokerMsg;
use sim::kit::discovery::Discovery;
use sim::kit::projection::ProjectionMsg;
use sim::kit::replication::Replication;
use sim::{Message, ProcessId};

/// Every message of the microsystem's world.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// Customers and the front door.
    Edge(Edge),
    /// The external payment gateway.
    Gateway(GatewayMsg),
    /// Service discovery (registry, registrations, watches).
    Discovery(Box<Discovery>),
    /// Active-passive replication of the Orders shards.
    Replication(Replication<ShardEvent>),
    /// The broker carrying order-status changes to the read model.
    Broker(Box<BrokerMsg<StatusBatch>>),
    /// Queries to the read model (the projection's own protocol).
    Projection(ProjectionMsg<OrderId, Option<u8>>),
    /// Between the microsystem's own services.
    Internal(Internal),
}

/// What a saga step asks its participant to do, with the data it needs
/// (the kit's saga protocol carries only ids, so the microsystem's
/// coordinator speaks this richer one, while running the kit's state
/// machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Inventory: hold these lines.
    Reserve {
        /// The order's lines.
        lines: Lines,
    },
    /// Payments: charge this much.
    Pay {
        /// The order's value.
        amount_cents: u64,
        /// What the card issuer will say.
        card: CardOutcome,
    },
    /// Shipping: send the parcel (Inventory moves the reservation to
    /// shipped first).
    Ship,
}

/// The microsystem's own protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Internal {
    /// Front door to a processing instance: validate and price this
    /// customer's request.
    Handle {
        /// The customer to answer.
        client: ProcessId,
        /// The request.
        request: crate::domain::PlaceOrder,
    },
    /// Processing instance to front door: the request has left this
    /// instance (for the balancer's count of requests in progress).
    Handled {
        /// The order.
        order: OrderId,
    },
    /// Processing instance to saga coordinator: run the saga of this
    /// validated order.
    StartOrder {
        /// The customer to answer when the saga ends.
        client: ProcessId,
        /// The validated request.
        request: crate::domain::PlaceOrder,
    },
    /// Coordinator to processing instance: the saga is durably recorded.
    OrderAccepted {
        /// The order.
        order: OrderId,
    },
    /// Coordinator to processing instance: too many sagas are running.
    OrderRefused {
        /// The order.
        order: OrderId,
    },
    /// Coordinator to an Orders replica: decide these commands and write
    /// their events as one write.
    OrdersBatch {
        /// The coordinator's id for this write.
        request: u64,
        /// The commands, for distinct orders of the replica's shard.
        commands: Vec<OrderCommand>,
    },
    /// Orders replica to coordinator: nothing needed writing (the command
    /// had taken effect already).
    OrdersDone {
        /// The coordinator's request.
        request: u64,
    },
    /// Orders replica to coordinator: the batch's other commands are
    /// written (or needed nothing), but these did not fit the active's
    /// state and were left out (by position in the batch).
    OrdersPartly {
        /// The coordinator's request.
        request: u64,
        /// The commands left out.
        deferred: Vec<u32>,
    },
    /// Orders replica to coordinator: not taken (this replica is not the
    /// active); `active` is its guess of who is.
    OrdersRefused {
        /// The coordinator's request.
        request: u64,
        /// The replica it believes active.
        active: Option<ProcessId>,
    },
    /// Coordinator to participant: do step `step` of the order's saga.
    Execute {
        /// The order (the saga's id).
        order: OrderId,
        /// The step.
        step: u32,
        /// Whether the step comes after the pivot.
        after_pivot: bool,
        /// What to do.
        task: Task,
    },
    /// Coordinator to participant: undo step `step` (or make sure it never
    /// happens).
    Compensate {
        /// The order.
        order: OrderId,
        /// The step.
        step: u32,
    },
    /// Participant to coordinator: the step is done.
    Executed {
        /// The order.
        order: OrderId,
        /// The step.
        step: u32,
    },
    /// Participant to coordinator: the step was refused and had no effect.
    StepFailed {
        /// The order.
        order: OrderId,
        /// The step.
        step: u32,
        /// Why, for the order's cancellation.
        reason: CancelReason,
    },
    /// Participant to coordinator: the step is undone (or voided).
    Compensated {
        /// The order.
        order: OrderId,
        /// The step.
        step: u32,
    },
    /// Shipping to Inventory: move the order's reservation to shipped.
    ShipProducts {
        /// The order.
        order: OrderId,
    },
    /// Inventory to Shipping: the products have left the warehouse.
    ProductsShipped {
        /// The order.
        order: OrderId,
    },
    /// Inventory to Shipping: there is no reservation to ship.
    ShipRefused {
        /// The order.
        order: OrderId,
    },
    /// Processing instance to the lock holder (`[scaling]`): run this
    /// order's serialised section.
    Serialize {
        /// The order.
        order: OrderId,
    },
    /// Lock holder to processing instance: the order's serialised section
    /// is done and the lock released.
    Serialized {
        /// The order.
        order: OrderId,
    },
    /// Lock holder to a peer processing instance: drop what you cached
    /// about this order's change (coherency).
    Invalidate {
        /// The order.
        order: OrderId,
    },
    /// Peer processing instance to lock holder: invalidated.
    Invalidated {
        /// The order.
        order: OrderId,
    },
}

impl Internal {
    fn label(&self) -> &'static str {
        match self {
            Internal::Handle { .. } => "Handle",
            Internal::Handled { .. } => "Handled",
            Internal::StartOrder { .. } => "StartOrder",
            Internal::OrderAccepted { .. } => "OrderAccepted",
            Internal::OrderRefused { .. } => "OrderRefused",
            Internal::OrdersBatch { .. } => "OrdersBatch",
            Internal::OrdersDone { .. } => "OrdersDone",
            Internal::OrdersPartly { .. } => "OrdersPartly",
            Internal::OrdersRefused { .. } => "OrdersRefused",
            Internal::Execute { task, .. } => match task {
                Task::Reserve { .. } => "ReserveProducts",
                Task::Pay { .. } => "SubmitPayment",
                Task::Ship => "ShipOrder",
            },
            Internal::Compensate { step, .. } => match step {
                0 => "ReleaseReservation",
                1 => "RefundPayment",
                _ => "Compensate",
            },
            Internal::Executed { .. } => "StepExecuted",
            Internal::StepFailed { .. } => "StepFailed",
            Internal::Compensated { .. } => "StepCompensated",
            Internal::ShipProducts { .. } => "ShipProducts",
            Internal::ProductsShipped { .. } => "ProductsShipped",
            Internal::ShipRefused { .. } => "ShipRefused",
            Internal::Serialize { .. } => "Serialize",
            Internal::Serialized { .. } => "Serialized",
            Internal::Invalidate { .. } => "Invalidate",
            Internal::Invalidated { .. } => "Invalidated",
        }
    }

    fn digest(&self) -> u64 {
        let (code, a, b): (u64, u64, u64) = match self {
            Internal::Handle { client, request } => (1, request.order.0, u64::from(client.0)),
            Internal::Handled { order } => (2, order.0, 0),
            Internal::StartOrder { client, request } => (3, request.order.0, u64::from(client.0)),
            Internal::OrderAccepted { order } => (4, order.0, 0),
            Internal::OrderRefused { order } => (5, order.0, 0),
            Internal::OrdersBatch { request, commands } => {
                let folded = commands.iter().fold(0u64, |hash, command| {
                    let (kind, order) = match command {
                        OrderCommand::CreateOrder { order, .. } => (1, order.0),
                        OrderCommand::CompleteOrder { order } => (2, order.0),
                        OrderCommand::CancelOrder { order, reason } => {
                            (3 + *reason as u64, order.0)
                        }
                    };
                    mix(hash ^ order.wrapping_mul(31) ^ kind)
                });
                (6, *request, folded)
            }
            Internal::OrdersDone { request } => (7, *request, 0),
            Internal::OrdersPartly { request, deferred } => {
                (17, *request, deferred.iter().fold(0, |hash, index| mix(hash ^ u64::from(*index))))
            }
            Internal::OrdersRefused { request, active } => {
                (8, *request, active.map_or(u64::MAX, |active| u64::from(active.0)))
            }
            Internal::Execute { order, step, after_pivot, .. } => {
                (9, order.0, u64::from(*step) | (u64::from(*after_pivot) << 32))
            }
            Internal::Compensate { order, step } => (10, order.0, u64::from(*step)),
            Internal::Executed { order, step } => (11, order.0, u64::from(*step)),
            Internal::StepFailed { order, step, reason } => {
                (12, order.0, u64::from(*step) | ((*reason as u64) << 32))
            }
            Internal::Compensated { order, step } => (13, order.0, u64::from(*step)),
            Internal::ShipProducts { order } => (14, order.0, 0),
            Internal::ProductsShipped { order } => (15, order.0, 0),
            Internal::ShipRefused { order } => (16, order.0, 0),
            Internal::Serialize { order } => (18, order.0, 0),
            Internal::Serialized { order } => (19, order.0, 0),
            Internal::Invalidate { order } => (20, order.0, 0),
            Internal::Invalidated { order } => (21, order.0, 0),
        };
        mix(mix(code ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ b)
    }
}

/// The splitmix64 finaliser, for digests.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

fn replication_digest(message: &Replication<ShardEvent>) -> u64 {
    let aggregate = message.aggregate();
    let detail = match message {
        Replication::Write { request, events, .. } => request ^ (events.len() as u64) << 48,
        Replication::Written { request, epoch, last_sequence, .. } => {
            request ^ epoch << 40 ^ last_sequence.rotate_left(20)
        }
        Replication::WriteRejected { request, .. } => *request,
        Replication::Claim { epoch, from_sequence, .. } => epoch << 40 ^ from_sequence,
        Replication::Claimed { epoch, last_sequence, entries, .. } => {
            epoch << 40 ^ last_sequence ^ (entries.len() as u64) << 20
        }
        Replication::Append { epoch, write, events, .. } => {
            epoch << 40 ^ write ^ (events.len() as u64) << 20
        }
        Replication::Appended { epoch, write, last_sequence, .. } => {
            epoch << 40 ^ write ^ last_sequence.rotate_left(20)
        }
        Replication::Fenced { epoch, current_epoch, .. } => epoch << 20 ^ current_epoch,
        Replication::Overloaded { write, .. } => *write,
        Replication::CatchUp { from_sequence, .. } => *from_sequence,
        Replication::Entries { entries, last_sequence, epoch, .. } => {
            epoch << 40 ^ last_sequence ^ (entries.len() as u64) << 20
        }
        Replication::Heartbeat { epoch, last_sequence, .. } => epoch << 40 ^ last_sequence,
        Replication::Replicate { epoch, entries, .. } => {
            let last = entries.last().map_or(0, |entry| entry.sequence);
            epoch << 40 ^ last ^ (entries.len() as u64) << 20
        }
        Replication::Replicated { epoch, through, .. } => epoch << 40 ^ through,
    };
    mix(mix(fnv(message.label()) ^ aggregate) ^ detail)
}

fn fnv(text: &str) -> u64 {
    sim::trace::fnv1a(text)
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Edge(message) => message.label(),
            Msg::Gateway(message) => message.label(),
            Msg::Discovery(message) => message.label(),
            Msg::Replication(message) => message.label(),
            Msg::Broker(message) => message.label(),
            Msg::Projection(message) => message.label(),
            Msg::Internal(message) => message.label(),
        }
    }

    fn digest(&self) -> u64 {
        match self {
            Msg::Edge(message) => message.digest(),
            Msg::Gateway(message) => message.digest(),
            Msg::Discovery(message) => message.digest(),
            Msg::Replication(message) => replication_digest(message),
            Msg::Broker(message) => message.digest(),
            Msg::Projection(message) => message.digest(),
            Msg::Internal(message) => message.digest(),
        }
    }
}

macro_rules! carry {
    ($inner:ty, $variant:ident) => {
        impl Carry<$inner> for Msg {
            fn wrap(inner: $inner) -> Msg {
                Msg::$variant(inner)
            }
            fn unwrap(self) -> Result<$inner, Msg> {
                match self {
                    Msg::$variant(inner) => Ok(inner),
                    other => Err(other),
                }
            }
        }
    };
}

// Broker and discovery messages are the largest (names as strings, record
// batches, instance lists) and among the rarest: boxed, they no longer set
// the size every message is moved at (each event
// moves its message several times between queue, slab and handler).
macro_rules! carry_boxed {
    ($inner:ty, $variant:ident) => {
        impl Carry<$inner> for Msg {
            fn wrap(inner: $inner) -> Msg {
                Msg::$variant(Box::new(inner))
            }
            fn unwrap(self) -> Result<$inner, Msg> {
                match self {
                    Msg::$variant(inner) => Ok(*inner),
                    other => Err(other),
                }
            }
        }
    };
}

carry!(Edge, Edge);
carry!(GatewayMsg, Gateway);
carry_boxed!(Discovery, Discovery);
carry!(Replication<ShardEvent>, Replication);
carry_boxed!(BrokerMsg<StatusBatch>, Broker);
carry!(ProjectionMsg<OrderId, Option<u8>>, Projection);
carry!(Internal, Internal);
