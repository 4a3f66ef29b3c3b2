//! One run over simulated time: throughput, latency percentiles, queue
//! lengths, breaker state, read-model lag and saga outcomes, with fault
//! windows shaded and labelled.
