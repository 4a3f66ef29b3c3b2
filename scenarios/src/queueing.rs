//! Queueing stations on the engine, and the theory they are checked against.

pub mod theory;
