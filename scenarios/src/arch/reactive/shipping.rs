//! Shipping: sends the parcel when the payment is approved. After the
//! pivot nothing is compensated, so Shipping only ever moves forward.

use super::ReactiveMsg;
use super::facts::{Fact, TOPIC_PAYMENTS};
use super::service::{Logic, Shell, Source};
use crate::domain::{Shipping, ShippingCommand, ShippingEvent};
use sim::Ctx;

impl super::journal::Book for Shipping {
    type Event = ShippingEvent;

    fn apply(&mut self, event: &ShippingEvent) {
        self.evolve(event);
    }
}

/// The Shipping service's business part.
pub struct ShippingLogic;

impl Logic for ShippingLogic {
    type Book = Shipping;
    type Local = ();
    type Action = ();
    const NAME: &'static str = "shipping";
    const TOPICS: &'static [&'static str] = &[TOPIC_PAYMENTS];

    fn initial_book(&self) -> Shipping {
        Shipping::default()
    }

    fn wants(fact: &Fact) -> bool {
        matches!(fact, Fact::PaymentApproved { .. })
    }

    fn on_fact(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        fact: Fact,
        source: Source,
    ) {
        let order = fact.order();
        match shell.book().decide(&ShippingCommand::ShipOrder { order }) {
            Ok(events) if !events.is_empty() => {
                let sent = Fact::ParcelSent { order };
                shell.persist(ctx, events.into(), vec![sent], Some(source), Vec::new());
            }
            // Sent already: a redelivered approval ships nothing twice.
            _ => shell.done(source),
        }
    }
}
