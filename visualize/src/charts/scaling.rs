//! Throughput versus the number of nodes: measured points with their
//! spread, the fitted Amdahl and USL curves, and the linear ideal.
