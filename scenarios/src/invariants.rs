//! The invariants every order run is checked against (shared/DESIGN.md),
//! whatever its architecture. Weaker architectures are expected to break
//! some of them under faults; a check reports what broke and the first
//! place it broke, never hides it.

use crate::domain::{OrderStatus, StockCount};
use crate::observe::Observations;
use serde::Serialize;
use sim::kit::replication::{FencingViolation, check_fencing};

/// The names of all invariants, in report order.
pub const NAMES: [&str; 7] = [
    "no_lost_orders",
    "stock_conserved",
    "money_conserved",
    "no_shipped_and_refunded",
    "single_writer_per_epoch",
    "read_models_converge",
    "no_double_charge_or_ship",
];

/// The verdict on one invariant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Its name (one of [`NAMES`]).
    pub name: &'static str,
    /// Whether it held.
    pub held: bool,
    /// What was checked, or the first violation and how many there were.
    pub detail: String,
}

/// Checks every invariant.
pub fn check(observed: &Observations) -> Vec<Verdict> {
    vec![
        no_lost_orders(observed),
        stock_conserved(observed.stock_initial, observed.stock_final),
        money_conserved(observed),
        no_shipped_and_refunded(observed),
        single_writer_per_epoch(observed),
        read_models_converge(observed),
        no_double_charge_or_ship(observed),
    ]
}

fn verdict(name: &'static str, violations: Vec<String>, fine: String) -> Verdict {
    match violations.first() {
        None => Verdict { name, held: true, detail: fine },
        Some(first) => Verdict {
            name,
            held: false,
            detail: if violations.len() == 1 {
                first.clone()
            } else {
                format!("{first} (and {} more)", violations.len() - 1)
            },
        },
    }
}

/// Every order the system accepted ended completed or cancelled.
fn no_lost_orders(observed: &Observations) -> Verdict {
    let lost: Vec<String> = observed
        .orders
        .iter()
        .filter(|(_, status)| **status == OrderStatus::Created)
        .map(|(order, _)| format!("{order} was accepted but never completed or cancelled"))
        .collect();
    verdict("no_lost_orders", lost, format!("{} accepted orders all ended", observed.orders.len()))
}

/// Every unit is available, reserved or shipped: none made, none vanished.
fn stock_conserved(initial: u64, final_count: StockCount) -> Verdict {
    let total = final_count.total();
    let violations = if total == initial {
        Vec::new()
    } else {
        vec![format!(
            "{initial} units at the start, {total} at the end ({} available, {} reserved, {} shipped)",
            final_count.available, final_count.reserved, final_count.shipped
        )]
    };
    verdict("stock_conserved", violations, format!("{initial} units accounted for"))
}

/// Charged minus refunded equals the value of completed orders, counting
/// charges made for calls that timed out.
fn money_conserved(observed: &Observations) -> Verdict {
    let charged: u64 = observed.payments.charged().values().sum();
    let refunded: u64 = observed.payments.refunded().values().sum();
    let completed: u64 = observed
        .orders
        .iter()
        .filter(|(_, status)| **status == OrderStatus::Completed)
        .map(|(order, _)| observed.order_values.get(order).copied().unwrap_or(0))
        .sum();
    let mut violations = Vec::new();
    // Name the first order whose own books do not balance.
    for (order, amount) in observed.payments.charged() {
        let kept =
            amount - observed.payments.refunded().get(order).copied().unwrap_or(0).min(*amount);
        let due = match observed.orders.get(order) {
            Some(OrderStatus::Completed) => observed.order_values.get(order).copied().unwrap_or(0),
            _ => 0,
        };
        if kept != due {
            violations.push(format!("{order}: kept {kept} cents, owed {due}"));
        }
    }
    for (order, status) in &observed.orders {
        if *status == OrderStatus::Completed && !observed.payments.charged().contains_key(order) {
            violations.push(format!("{order} completed without being charged"));
        }
    }
    if violations.is_empty() && charged - refunded.min(charged) != completed {
        violations.push(format!(
            "charged {charged} − refunded {refunded} ≠ completed orders' value {completed} (cents)"
        ));
    }
    verdict(
        "money_conserved",
        violations,
        format!("charged {charged} − refunded {refunded} = completed {completed} cents"),
    )
}

/// Shipping is the pivot: a shipped order is never refunded.
fn no_shipped_and_refunded(observed: &Observations) -> Verdict {
    let violations: Vec<String> = observed
        .parcels
        .keys()
        .filter(|order| observed.payments.refunded().contains_key(order))
        .map(|order| format!("{order} was shipped and refunded"))
        .collect();
    verdict(
        "no_shipped_and_refunded",
        violations,
        format!("{} parcels, none refunded", observed.parcels.len()),
    )
}

/// At most one writer per aggregate per epoch, and no stale epoch after a
/// newer one (architectures without replicated writers hold it trivially).
fn single_writer_per_epoch(observed: &Observations) -> Verdict {
    let Some(writes) = &observed.writes else {
        return Verdict {
            name: "single_writer_per_epoch",
            held: true,
            detail: "no replicated writers in this architecture".to_string(),
        };
    };
    let violations: Vec<String> = check_fencing(writes)
        .into_iter()
        .map(|violation| match violation {
            FencingViolation::SharedEpoch { append, first_writer } => format!(
                "aggregate {} epoch {}: {} wrote at {} after {} had written in the same epoch",
                append.aggregate, append.epoch, append.writer, append.time, first_writer
            ),
            FencingViolation::StaleEpoch { append, newer_epoch } => format!(
                "aggregate {}: {} wrote in epoch {} at {} after epoch {} was in use",
                append.aggregate, append.writer, append.epoch, append.time, newer_epoch
            ),
        })
        .collect();
    verdict(
        "single_writer_per_epoch",
        violations,
        format!("{} replicated appends checked", writes.len()),
    )
}

/// After quiescence the read model agrees with the system of record.
fn read_models_converge(observed: &Observations) -> Verdict {
    let Some(mismatches) = &observed.read_model_mismatches else {
        return Verdict {
            name: "read_models_converge",
            held: true,
            detail: "no read model in this architecture".to_string(),
        };
    };
    let violations: Vec<String> =
        mismatches.iter().map(|order| format!("read model disagrees on {order}")).collect();
    verdict("read_models_converge", violations, "the read model matches the write side".to_string())
}

/// Duplicates never charge or ship twice.
fn no_double_charge_or_ship(observed: &Observations) -> Verdict {
    let mut violations: Vec<String> = observed
        .payments
        .charge_count()
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(order, count)| format!("{order} was charged {count} times"))
        .collect();
    violations.extend(
        observed
            .parcels
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(order, count)| format!("{order} was shipped {count} times")),
    );
    verdict(
        "no_double_charge_or_ship",
        violations,
        "every charge and parcel happened once".to_string(),
    )
}
