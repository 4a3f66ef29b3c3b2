//! `scenarios`: models built on the engine.
//!
//! Today: queueing stations and tandems that validate the engine's station
//! primitives against queueing theory ([`queueing`]), the statistics they
//! need ([`stats`]), and the standard benchmark workloads ([`bench`](mod@bench)).
//! The order system's three architectures and the scenario file format
//! arrive with the order-system issue.

pub mod arch;
pub mod bench;
pub mod domain;
pub mod file;
pub mod fit;
pub mod harness;
pub mod invariants;
pub mod observe;
pub mod parts;
pub mod queueing;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod sweep;
pub mod workload;
