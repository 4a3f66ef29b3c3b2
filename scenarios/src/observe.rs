//! What a finished run of an order world is judged on: the customers'
//! requests, the system of record, the gateway's ledger, stock, parcels,
//! replicated writes and the read model, gathered by each architecture
//! from its processes' final states and its trace.

use crate::domain::{OrderId, OrderStatus, Payments, StockCount};
use crate::parts::Request;
use crate::scenario::Architecture;
use crate::timeline::GaugeRecord;
use serde::Serialize;
use sim::kit::replication::AcceptedAppend;
use sim::{EngineStats, FiredFault, SimTime, TraceHash};
use std::collections::BTreeMap;

/// Everything an architecture reports about one run.
#[derive(Clone, Debug)]
pub struct Observations {
    /// Which architecture ran.
    pub architecture: Architecture,
    /// The seed.
    pub seed: u64,
    /// The run's trace hash.
    pub trace_hash: TraceHash,
    /// What the engine did.
    pub engine: EngineStats,
    /// When the run ended.
    pub ended_at: SimTime,
    /// Every customer request, in the order placed.
    pub requests: Vec<Request>,
    /// The system of record: every order it accepted, with its final status.
    pub orders: BTreeMap<OrderId, OrderStatus>,
    /// What each order was worth, in cents (from the workload).
    pub order_values: BTreeMap<OrderId, u64>,
    /// The gateway's ledger.
    pub payments: Payments,
    /// Units of stock at the start.
    pub stock_initial: u64,
    /// Units of stock at the end, by where they are.
    pub stock_final: StockCount,
    /// Parcels sent per order.
    pub parcels: BTreeMap<OrderId, u32>,
    /// Appends accepted by replicated logs (microsystem), for the
    /// single-writer invariant.
    pub writes: Option<Vec<AcceptedAppend>>,
    /// The read model compared with the system of record after quiescence
    /// (microsystem): orders whose status differs.
    pub read_model_mismatches: Option<Vec<OrderId>>,
    /// Compensating actions run.
    pub compensations: u64,
    /// Circuit-breaker state changes.
    pub breaker_transitions: u64,
    /// Process and node restarts.
    pub restarts: u64,
    /// Failovers to a passive replica.
    pub failovers: u64,
    /// Largest read-model lag seen, in milliseconds.
    pub read_model_lag_ms: f64,
    /// Faults that fired, with what they touched.
    pub faults_fired: Vec<FiredFault>,
    /// Faults of the scenario this architecture has no node for.
    pub faults_not_applicable: Vec<String>,
    /// Gauges sampled during the run, for its timeline.
    pub gauges: GaugeRecord,
}

/// A short description of a fired fault for reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultReport {
    /// When, in seconds.
    pub at_s: f64,
    /// What.
    pub fault: String,
    /// Whether it could act (crashing a node already down cannot).
    pub applied: bool,
    /// What it touched, in words.
    pub touched: String,
}

impl FaultReport {
    /// Describes a fired fault, naming nodes by `node_name`.
    pub fn from_fired(fired: &FiredFault) -> FaultReport {
        let touched = &fired.touched;
        let mut parts = Vec::new();
        if touched.processes_stopped > 0 {
            parts.push(format!("{} processes stopped", touched.processes_stopped));
        }
        if touched.processes_restarted > 0 {
            parts.push(format!("{} processes restarted", touched.processes_restarted));
        }
        if touched.writes_lost > 0 {
            parts.push(format!("{} unsynced writes lost", touched.writes_lost));
        }
        if touched.messages_dropped > 0 {
            parts.push(format!("{} messages dropped", touched.messages_dropped));
        }
        if touched.messages_delayed > 0 {
            parts.push(format!("{} messages delayed", touched.messages_delayed));
        }
        if touched.timers_moved > 0 {
            parts.push(format!("{} timers moved", touched.timers_moved));
        }
        FaultReport {
            at_s: fired.at.as_secs_f64(),
            fault: fired.fault.to_string(),
            applied: fired.applied,
            touched: if parts.is_empty() { "nothing".to_string() } else { parts.join(", ") },
        }
    }
}
