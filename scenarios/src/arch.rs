//! The order system built three ways on the same domain, workload, gateway
//! and faults. Each module builds its world, runs it through
//! [`crate::harness::drive`], and returns [`crate::observe::Observations`].

pub mod microlith;
pub mod microsystem;
pub mod reactive;
