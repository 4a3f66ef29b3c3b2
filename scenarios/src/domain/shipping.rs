//! The Shipping aggregate: parcels handed to the carrier. Shipping is the
//! saga's pivot: once a parcel left, the order can only complete.

use super::{Events, OrderId, Rejection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A command to Shipping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShippingCommand {
    /// Send the order's parcel.
    ShipOrder {
        /// The order.
        order: OrderId,
    },
}

/// A fact about parcels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShippingEvent {
    /// The parcel left.
    ParcelSent {
        /// The order.
        order: OrderId,
    },
}

/// Parcels sent, per order, counting every dispatch (more than one is a
/// double shipment).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    parcels: BTreeMap<OrderId, u32>,
}

impl Shipping {
    /// Decides a command; a repeat for a sent parcel is a no-op.
    pub fn decide(&self, command: &ShippingCommand) -> Result<Events<ShippingEvent>, Rejection> {
        match command {
            ShippingCommand::ShipOrder { order } => {
                if self.parcels.contains_key(order) {
                    Ok(Events::none())
                } else {
                    Ok(Events::one(ShippingEvent::ParcelSent { order: *order }))
                }
            }
        }
    }

    /// Applies an event.
    pub fn evolve(&mut self, event: &ShippingEvent) {
        match event {
            ShippingEvent::ParcelSent { order } => *self.parcels.entry(*order).or_default() += 1,
        }
    }

    /// Parcels per order.
    pub fn parcels(&self) -> &BTreeMap<OrderId, u32> {
        &self.parcels
    }
}
