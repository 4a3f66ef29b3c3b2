//! The round-robin front of a scaled-out microlith (`[topology] nodes`):
//! the customers' entry point, spreading orders over the replicas' Orders
//! services in turn and relaying each answer to its customer.
//!
//! It spends no CPU and holds no pool: a load balancer is not what this
//! model is about. What limits the replicas is what they share, the
//! database.

use super::protocol::MicrolithMsg;
use crate::domain::OrderId;
use crate::parts::Edge;
use sim::{Ctx, Process, ProcessId};
use std::collections::BTreeMap;

/// Round robin over the replicas' Orders services.
#[derive(Clone, Debug)]
pub struct Front {
    replicas: Vec<ProcessId>,
    next: usize,
    /// The customer of each order in progress.
    customers: BTreeMap<OrderId, ProcessId>,
}

impl Front {
    /// A front over `replicas` (their Orders services), starting at the
    /// first.
    pub fn new(replicas: Vec<ProcessId>) -> Front {
        assert!(!replicas.is_empty(), "a front needs a replica");
        Front { replicas, next: 0, customers: BTreeMap::new() }
    }

    /// Orders passed on and not answered yet.
    pub fn in_progress(&self) -> usize {
        self.customers.len()
    }
}

impl Process<MicrolithMsg> for Front {
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, MicrolithMsg>,
        from: ProcessId,
        message: MicrolithMsg,
    ) {
        match message {
            MicrolithMsg::Edge(Edge::PlaceOrder(request)) => {
                self.customers.insert(request.order, from);
                let replica = self.replicas[self.next % self.replicas.len()];
                self.next = self.next.wrapping_add(1);
                ctx.send(replica, MicrolithMsg::Edge(Edge::PlaceOrder(request)));
            }
            MicrolithMsg::Edge(Edge::OrderAnswered { order, answer }) => {
                if let Some(customer) = self.customers.remove(&order) {
                    ctx.send(customer, MicrolithMsg::Edge(Edge::OrderAnswered { order, answer }));
                }
            }
            _ => {}
        }
    }
}
