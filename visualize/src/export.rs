//! Trace exports: the JSON-lines trace written by `rlab run --trace`,
//! converted for tools built to explore distributed executions.
