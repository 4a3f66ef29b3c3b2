//! Scenario files: TOML in human units, parsed and validated into a
//! [`Scenario`].
//!
//! Parsing goes in two steps (ripgrep's LowArgs → HiArgs): the text becomes
//! a raw tree in which every value remembers its line (module `tree`), `--set`
//! overrides are applied to that tree, and the tree is then read field by
//! field into a [`Scenario`] that starts from [`Scenario::default_named`], so
//! a missing field keeps its default (module `read`). Every mistake is collected
//! (rust-analyzer style) and reported as a [`FileError`] naming the file,
//! the line, the field, the value and what was expected. Unknown fields are
//! errors, with the nearest valid name suggested, so a typo is never
//! silently ignored.
//!
//! The format, field by field, is the one `scenarios/baseline.toml` shows;
//! every field is optional except `name` and `description`. Durations are
//! written in the unit their name ends with (`_s` or `_ms`, floats allowed),
//! rates per second, distributions as tables such as
//! `{ kind = "lognormal", mean_ms = 50, cv = 0.3 }`.
//!
//! # Example
//!
//! ```
//! use scenarios::file;
//!
//! let text = r#"
//! name = "demo"
//! description = "A small example."
//!
//! [workload]
//! rate_per_s = -5
//! rate_pr_s = 10
//! "#;
//! let errors = file::parse("demo.toml", text, &[]).unwrap_err();
//! let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
//! assert_eq!(lines, [
//!     "demo.toml:6: workload.rate_per_s = -5: expected a rate per second, > 0 and at most 1000000",
//!     "demo.toml:7: workload.rate_pr_s: unknown field; did you mean `rate_per_s`?",
//! ]);
//!
//! // Overrides are checked like the file's own values.
//! let overrides = ["workload.rate_per_s=500".to_string()];
//! let fixed = "name = \"demo\"\ndescription = \"A small example.\"\n";
//! let scenario = file::parse("demo.toml", fixed, &overrides).unwrap();
//! assert!(matches!(
//!     scenario.workload.arrivals,
//!     scenarios::scenario::Arrivals::Open { rate_per_s: 500.0, .. }
//! ));
//! ```

mod read;
mod tree;

use crate::scenario::{
    Architecture, Arrivals, BreakerSettings, Comparison, Expectation, FaultAction, FaultSpec,
    Gateway, Microlith, Microsystem, Network, RateChange, Reactive, Scaling, Scenario, Topology,
    Workload,
};
use read::{
    Errors, Fields, Unit, array, boolean, choice, count, count64, dist, duration, names, number,
    probability,
};
use sim::SimDuration;
use std::fmt;
use std::path::Path;
use tree::{Node, Value};

/// A mistake in a scenario file (or in a `--set` override of it).
///
/// Its `Display` is one line, `file:line: field = value: message`, e.g.
/// `scenarios/x.toml:12: workload.rate_per_s = -5: expected a rate per
/// second, > 0 and at most 1000000`. A value that came from `--set` shows
/// `(from --set)` instead of a line; a field that is missing altogether
/// shows no line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The file, as the caller named it.
    pub file: String,
    /// The 1-based line of the offending key or value, if it is in the file.
    pub line: Option<usize>,
    /// Whether the offending value came from a `--set` override.
    pub from_set: bool,
    /// The dotted path of the field, e.g. `faults.0.at_s`; empty for errors
    /// about the file as a whole (unreadable, not TOML).
    pub field: String,
    /// The offending value as written, if there is one.
    pub value: Option<String>,
    /// What is wrong, usually "expected ...".
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        } else if self.from_set {
            f.write_str(" (from --set)")?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            f.write_str(&self.field)?;
            if let Some(value) = &self.value {
                write!(f, " = {value}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

/// The architecture names a file may use.
pub const ARCHITECTURES: &[&str] = &["microlith", "reactive", "microsystem"];

/// The roles a fault may aim at. Each architecture maps a role to its own
/// nodes and reports a fault whose role it does not have as "not
/// applicable" (the microlith has no `broker`, only the microsystem has
/// `orders-active`, ...).
pub const ROLES: &[&str] = &[
    "edge",
    "saga",
    "gateway",
    "orders",
    "inventory",
    "payments",
    "shipping",
    "database",
    "broker",
    "orders-active",
    "orders-passive",
    "processing",
];

/// The fault actions.
pub const ACTIONS: &[&str] = &["crash", "partition", "slow-links", "clock-step"];

/// The report metrics an expectation may compare: those
/// [`crate::report::metric`] knows.
pub const METRICS: &[&str] = &crate::report::METRICS;

/// The invariants checked on every run, by the names reports and
/// `[expect_violations]` use.
pub const INVARIANTS: &[&str] = &crate::invariants::NAMES;

/// The microsystem's load-balancing strategies: the names of
/// `sim::kit::routing::Strategy` (a test keeps the two lists equal).
pub const BALANCERS: &[&str] = &["round-robin", "random", "least-outstanding", "p2c"];

/// The comparison operators of an expectation.
const OPS: &[&str] = &["<", "<=", ">", ">=", "=="];

// Bounds that refuse absurd sizes before a run tries to allocate or
// simulate them. They sit far above anything the lab needs (the issue's
// largest run is 16 nodes at 1,000 orders/s); a value beyond one is almost
// always a typo or a unit mistake.
/// Orders (or rate-profile rates) per second.
const RATE_MAX: f64 = 1e6;
/// Closed-loop users.
const USERS_MAX: u32 = 1_000_000;
/// Threads or connections of a pool.
const THREADS_MAX: u32 = 100_000;
/// Instances, shards, nodes and cores.
const NODES_MAX: u32 = 1024;
/// Products in the catalogue.
const PRODUCTS_MAX: u32 = 10_000_000;
/// Lines per order.
const LINES_MAX: u32 = 1_000;
/// Units per line.
const QUANTITY_MAX: u32 = 1_000_000;
/// Price of one product: ten million currency units.
const PRICE_CENTS_MAX: u64 = 1_000_000_000;
/// Stock of one product.
const STOCK_MAX: u64 = 1_000_000_000_000;
/// Calls in a breaker's window, or probes when half-open.
const BREAKER_CALLS_MAX: u32 = 100_000;
/// Retries of one call.
const RETRIES_MAX: u32 = 100;
/// Bound of an intake queue.
const QUEUE_BOUND_MAX: u32 = 10_000_000;
/// Characters of a name.
const NAME_CHARS_MAX: usize = 100;
/// Characters of a description.
const DESCRIPTION_CHARS_MAX: usize = 4_000;
/// Closed-loop users when `arrivals = "closed"` does not say how many.
const USERS_DEFAULT: u32 = 50;
/// Mean think time when `arrivals = "closed"` does not say.
const THINK_TIME_DEFAULT: SimDuration = SimDuration::from_millis(500);

/// Parses and validates a scenario file's `text`, after applying the
/// `--set PATH=VALUE` `overrides` in order. `path_for_messages` is only used
/// to name the file in errors. All errors are returned, in file order, with
/// the override errors last.
pub fn parse(
    path_for_messages: &str,
    text: &str,
    overrides: &[String],
) -> Result<Scenario, Vec<FileError>> {
    let mut root = tree::parse_document(path_for_messages, text)?;
    let mut errors = Errors::new(path_for_messages);
    for text in overrides {
        tree::apply_override(&mut root, path_for_messages, text, &mut errors.list);
    }
    let scenario = scenario(&mut errors, &root);
    // --- sweep: every point of the file's own sweep must be a valid scenario ---
    if errors.list.is_empty()
        && let Some(spec) = &scenario.sweep
    {
        check_sweep_points(&mut errors, &root, spec);
    }
    // --- end sweep ---
    if errors.list.is_empty() {
        return Ok(scenario);
    }
    let mut list = errors.list;
    // File order; errors without a line (missing top-level fields) first,
    // override errors last. The sort is stable, so errors on one line keep
    // the order the fields were read in.
    list.sort_by_key(|error| match (error.line, error.from_set) {
        (Some(line), _) => line,
        (None, false) => 0,
        (None, true) => usize::MAX,
    });
    Err(list)
}

/// Reads the file at `path` and [`parse`]s it. Only for use before a run:
/// nothing inside a simulation reads files.
pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, Vec<FileError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&file, &text, overrides),
        Err(error) => Err(vec![FileError {
            file,
            line: None,
            from_set: false,
            field: String::new(),
            value: None,
            message: format!("cannot read the file: {error}"),
        }]),
    }
}

/// The whole file.
fn scenario(errors: &mut Errors, root: &tree::Table) -> Scenario {
    let mut fields = Fields::root(root);
    let name =
        fields.require(errors, "name", "every scenario has a short name", text(NAME_CHARS_MAX));
    let mut scenario = Scenario::default_named(name.as_deref().unwrap_or(""));
    if let Some(description) = fields.require(
        errors,
        "description",
        "every scenario says, in a paragraph, what it shows",
        text(DESCRIPTION_CHARS_MAX),
    ) {
        scenario.description = description;
    }
    if let Some(architectures) = fields.get(errors, "architectures", names(ARCHITECTURES)) {
        if architectures.is_empty() {
            let node = fields.peek("architectures").expect("just read");
            errors.bad_value("architectures", node, "at least one architecture");
        } else {
            scenario.architectures = architectures
                .iter()
                .map(|name| Architecture::parse(name).expect("names() checks the names"))
                .collect();
        }
    }
    if let Some(seed) = fields.get(errors, "seed", count64(0, i64::MAX as u64)) {
        scenario.seed = seed;
    }
    if let Some(duration) = fields.get(errors, "duration_s", duration(Unit::Seconds, false)) {
        scenario.duration = duration;
    }
    if let Some(drain) = fields.get(errors, "drain_s", duration(Unit::Seconds, true)) {
        scenario.drain = drain;
    }
    let node = fields.take("workload");
    workload(errors, node, scenario.duration, &mut scenario.workload);
    let node = fields.take("network");
    network(errors, node, &mut scenario.network);
    let node = fields.take("gateway");
    gateway(errors, node, &mut scenario.gateway);
    let node = fields.take("microlith");
    microlith(errors, node, &mut scenario.microlith);
    let node = fields.take("reactive");
    reactive(errors, node, &mut scenario.reactive);
    let node = fields.take("microsystem");
    microsystem(errors, node, &mut scenario.microsystem);
    let node = fields.take("topology");
    topology(errors, node, &mut scenario.topology);
    let node = fields.take("scaling");
    scaling(errors, node, &mut scenario.scaling);
    let horizon = scenario.duration.saturating_add(scenario.drain);
    if let Some(faults) =
        fields.get(errors, "faults", |errors, path, node| faults(errors, path, node, horizon))
    {
        scenario.faults = faults;
    }
    let running = scenario.architectures.clone();
    if let Some(expectations) = fields
        .get(errors, "expect", |errors, path, node| expectations(errors, path, node, &running))
    {
        scenario.expectations = expectations;
    }
    let node = fields.take("expect_violations");
    expected_violations(errors, node, &running, &mut scenario);
    // --- sweep ---
    let node = fields.take("sweep");
    scenario.sweep = sweep_section(errors, node);
    // --- end sweep ---
    fields.finish(errors);
    scenario
}

/// A non-empty, one-line string of at most `max` characters.
fn text(max: usize) -> impl Fn(&mut Errors, &str, &Node) -> Option<String> + Copy {
    move |errors, path, node| {
        let expected = format!("a non-empty string of at most {max} characters");
        let Value::String(text) = &node.value else {
            errors.wrong_type(path, node, &expected);
            return None;
        };
        let text = text.trim();
        if text.is_empty() || text.chars().count() > max {
            errors.bad_value(path, node, &expected);
            return None;
        }
        Some(text.to_string())
    }
}

/// A rate per second, more than zero and at most [`RATE_MAX`].
fn rate() -> impl Fn(&mut Errors, &str, &Node) -> Option<f64> + Copy {
    number("a rate per second, > 0 and at most 1000000", |rate| rate > 0.0 && rate <= RATE_MAX)
}

/// Seconds as a file writes them, for messages (`60`, `0.5`).
fn secs(duration: SimDuration) -> f64 {
    duration.as_secs_f64()
}

fn workload(errors: &mut Errors, node: Option<&Node>, window: SimDuration, out: &mut Workload) {
    let mut fields = Fields::of(errors, "workload", node, "a table ([workload])");
    let default_kind = match out.arrivals {
        Arrivals::Open { .. } => "open",
        Arrivals::Closed { .. } => "closed",
        Arrivals::Rounds { .. } => "rounds",
    };
    let kind = fields
        .get(errors, "arrivals", choice(&["open", "closed", "rounds"]))
        .unwrap_or(default_kind);
    let open_only = "only open arrivals have a rate (workload.arrivals = \"closed\")";
    let closed_only = "only closed arrivals have users (set workload.arrivals = \"closed\")";
    if kind == "open" {
        let mut rate_per_s = match &out.arrivals {
            Arrivals::Open { rate_per_s, .. } => *rate_per_s,
            Arrivals::Closed { .. } | Arrivals::Rounds { .. } => unreachable!("defaults are open"),
        };
        if let Some(rate) = fields.get(errors, "rate_per_s", rate()) {
            rate_per_s = rate;
        }
        let profile = fields
            .get(errors, "profile", |errors, path, node| profile(errors, path, node, window))
            .unwrap_or_default();
        fields.not_applicable(errors, "users", closed_only);
        fields.not_applicable(errors, "think_time_ms", closed_only);
        out.arrivals = Arrivals::Open { rate_per_s, profile };
    } else {
        fields.not_applicable(errors, "rate_per_s", open_only);
        fields.not_applicable(errors, "profile", open_only);
        let users = fields.get(errors, "users", count(1, USERS_MAX)).unwrap_or(USERS_DEFAULT);
        let think_time = fields
            .get(errors, "think_time_ms", duration(Unit::Millis, true))
            .unwrap_or(THINK_TIME_DEFAULT);
        out.arrivals = if kind == "rounds" {
            Arrivals::Rounds { users, think_time }
        } else {
            Arrivals::Closed { users, think_time }
        };
    }
    if let Some(products) = fields.get(errors, "products", count(1, PRODUCTS_MAX)) {
        out.products = products;
    }
    let zipf = number("a Zipf exponent from 0 to 10", |s| (0.0..=10.0).contains(&s));
    if let Some(exponent) = fields.get(errors, "zipf_exponent", zipf) {
        out.zipf_exponent = exponent;
    }
    if let Some(lines) = fields.get(errors, "lines_min", count(1, LINES_MAX)) {
        out.lines_min = lines;
    }
    if let Some(lines) = fields.get(errors, "lines_max", count(1, LINES_MAX)) {
        out.lines_max = lines;
    }
    if out.lines_min > out.lines_max {
        let key = if fields.peek("lines_max").is_some() { "lines_max" } else { "lines_min" };
        let message =
            format!("expected lines_min ({}) <= lines_max ({})", out.lines_min, out.lines_max);
        errors.push(fields.origin_of(key), &fields.path_of(key), None, message);
    }
    if let Some(quantity) = fields.get(errors, "quantity_max", count(1, QUANTITY_MAX)) {
        out.quantity_max = quantity;
    }
    if let Some(price) = fields.get(errors, "price_cents_min", count64(1, PRICE_CENTS_MAX)) {
        out.price_cents_min = price;
    }
    if let Some(price) = fields.get(errors, "price_cents_max", count64(1, PRICE_CENTS_MAX)) {
        out.price_cents_max = price;
    }
    if out.price_cents_min > out.price_cents_max {
        let key = if fields.peek("price_cents_max").is_some() {
            "price_cents_max"
        } else {
            "price_cents_min"
        };
        let message = format!(
            "expected price_cents_min ({}) <= price_cents_max ({})",
            out.price_cents_min, out.price_cents_max
        );
        errors.push(fields.origin_of(key), &fields.path_of(key), None, message);
    }
    if let Some(stock) = fields.get(errors, "stock_per_product", count64(0, STOCK_MAX)) {
        out.stock_per_product = stock;
    }
    if let Some(rate) = fields.get(errors, "decline_rate", probability) {
        out.decline_rate = rate;
    }
    if let Some(timeout) = fields.get(errors, "client_timeout_ms", duration(Unit::Millis, false)) {
        out.client_timeout = timeout;
    }
    fields.finish(errors);
}

/// `workload.profile`: rate changes in time order, inside the arrival
/// window.
fn profile(
    errors: &mut Errors,
    path: &str,
    node: &Node,
    window: SimDuration,
) -> Option<Vec<RateChange>> {
    let items = array(errors, path, node)?;
    let mut changes = Vec::with_capacity(items.len());
    let mut previous: Option<SimDuration> = None;
    let what = "a table such as { at_s = 30, rate_per_s = 200 }";
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}.{index}");
        let mut fields = Fields::of(errors, &item_path, Some(item), what);
        let at = fields.require(
            errors,
            "at_s",
            "each rate change says when it starts",
            duration(Unit::Seconds, true),
        );
        let rate_per_s = fields.require(
            errors,
            "rate_per_s",
            "each rate change says the rate it reaches",
            rate(),
        );
        let ramp = fields.get(errors, "ramp_s", duration(Unit::Seconds, true));
        let lasting = fields.get(errors, "lasting_s", duration(Unit::Seconds, false));
        if let Some(at) = at {
            let at_node = fields.peek("at_s").expect("just read");
            let at_path = fields.path_of("at_s");
            if at >= window {
                let expected =
                    format!("a time inside the arrival window, < duration_s ({})", secs(window));
                errors.bad_value(&at_path, at_node, &expected);
            } else if let Some(previous) = previous.filter(|previous| at <= *previous) {
                let expected = format!(
                    "a time after the previous change's ({}): changes are listed in time order",
                    secs(previous)
                );
                errors.bad_value(&at_path, at_node, &expected);
            }
            previous = Some(at);
        }
        fields.finish(errors);
        if let (Some(at), Some(rate_per_s)) = (at, rate_per_s) {
            changes.push(RateChange {
                at,
                rate_per_s,
                ramp: ramp.unwrap_or(SimDuration::ZERO),
                lasting,
            });
        }
    }
    Some(changes)
}

fn network(errors: &mut Errors, node: Option<&Node>, out: &mut Network) {
    let mut fields = Fields::of(errors, "network", node, "a table ([network])");
    if let Some(latency) = fields.get(errors, "latency", dist) {
        out.latency = latency;
    }
    if let Some(p) = fields.get(errors, "loss", probability) {
        out.loss = p;
    }
    if let Some(p) = fields.get(errors, "duplicate", probability) {
        out.duplicate = p;
    }
    if let Some(p) = fields.get(errors, "reorder", probability) {
        out.reorder = p;
    }
    if let Some(window) = fields.get(errors, "reorder_window_ms", duration(Unit::Millis, true)) {
        out.reorder_window = window;
    }
    if out.reorder > 0.0 && out.reorder_window == SimDuration::ZERO {
        let key = "reorder_window_ms";
        let message = format!(
            "expected a window > 0 when network.reorder = {} (how long a held-back message may wait)",
            out.reorder
        );
        let value = fields.peek(key).map(Node::render);
        // Point at the window if it is written, else at the reorder rate.
        let origin = fields.peek(key).or(fields.peek("reorder")).map(|node| node.origin);
        errors.push(origin.or(fields.origin_of(key)), &fields.path_of(key), value, message);
    }
    fields.finish(errors);
}

fn gateway(errors: &mut Errors, node: Option<&Node>, out: &mut Gateway) {
    let mut fields = Fields::of(errors, "gateway", node, "a table ([gateway])");
    if let Some(latency) = fields.get(errors, "latency", dist) {
        out.latency = latency;
    }
    if let Some(p) = fields.get(errors, "failure_rate", probability) {
        out.failure_rate = p;
    }
    if let Some(flag) = fields.get(errors, "idempotent", boolean) {
        out.idempotent = flag;
    }
    fields.finish(errors);
}

fn microlith(errors: &mut Errors, node: Option<&Node>, out: &mut Microlith) {
    let mut fields = Fields::of(errors, "microlith", node, "a table ([microlith])");
    if let Some(threads) = fields.get(errors, "threads", count(1, THREADS_MAX)) {
        out.threads = threads;
    }
    if let Some(connections) = fields.get(errors, "connections", count(1, THREADS_MAX)) {
        out.connections = connections;
    }
    if let Some(cpu) = fields.get(errors, "cpu", dist) {
        out.cpu = cpu;
    }
    if let Some(database) = fields.get(errors, "database", dist) {
        out.database = database;
    }
    if let Some(timeout) = fields.get(errors, "call_timeout_ms", duration(Unit::Millis, false)) {
        out.call_timeout = timeout;
    }
    if let Some(flag) = fields.get(errors, "shared_database", boolean) {
        out.shared_database = flag;
    }
    if let Some(cores) = fields.get(errors, "cores", count(1, NODES_MAX)) {
        out.cores = cores;
    }
    fields.finish(errors);
}

fn reactive(errors: &mut Errors, node: Option<&Node>, out: &mut Reactive) {
    let mut fields = Fields::of(errors, "reactive", node, "a table ([reactive])");
    if let Some(flag) = fields.get(errors, "breaker_enabled", boolean) {
        out.breaker_enabled = flag;
    }
    let node = fields.take("breaker");
    breaker(errors, node, &mut out.breaker);
    if let Some(timeout) = fields.get(errors, "call_timeout_ms", duration(Unit::Millis, false)) {
        out.call_timeout = timeout;
    }
    if let Some(retries) = fields.get(errors, "retries", count(0, RETRIES_MAX)) {
        out.retries = retries;
    }
    if let Some(bound) = fields.get(errors, "queue_bound", count(0, QUEUE_BOUND_MAX)) {
        // 0 is how a file says "unbounded" (the overload scenario's foil).
        out.queue_bound = (bound > 0).then_some(bound);
    }
    if let Some(cpu) = fields.get(errors, "cpu", dist) {
        out.cpu = cpu;
    }
    if let Some(cores) = fields.get(errors, "cores", count(1, NODES_MAX)) {
        out.cores = cores;
    }
    fields.finish(errors);
}

/// `reactive.breaker`, checked as `sim::kit::breaker` checks its config.
fn breaker(errors: &mut Errors, node: Option<&Node>, out: &mut BreakerSettings) {
    let what = "a table such as { window = 20, minimum_calls = 10 }";
    let mut fields = Fields::of(errors, "reactive.breaker", node, what);
    let calls = count(1, BREAKER_CALLS_MAX);
    if let Some(window) = fields.get(errors, "window", calls) {
        out.window = window;
    }
    if let Some(minimum) = fields.get(errors, "minimum_calls", calls) {
        out.minimum_calls = minimum;
    }
    if out.minimum_calls > out.window {
        let key = if fields.peek("minimum_calls").is_some() { "minimum_calls" } else { "window" };
        let message = format!(
            "expected minimum_calls ({}) <= window ({}): a count window cannot hold more calls",
            out.minimum_calls, out.window
        );
        errors.push(fields.origin_of(key), &fields.path_of(key), None, message);
    }
    if let Some(percent) = fields.get(errors, "failure_rate_percent", count(1, 100)) {
        out.failure_rate_percent = percent;
    }
    if let Some(open) = fields.get(errors, "open_ms", duration(Unit::Millis, false)) {
        out.open_duration = open;
    }
    if let Some(probes) = fields.get(errors, "half_open_calls", calls) {
        out.half_open_calls = probes;
    }
    fields.finish(errors);
}

fn microsystem(errors: &mut Errors, node: Option<&Node>, out: &mut Microsystem) {
    let mut fields = Fields::of(errors, "microsystem", node, "a table ([microsystem])");
    if let Some(instances) = fields.get(errors, "instances", count(1, NODES_MAX)) {
        out.instances = instances;
    }
    if let Some(balancer) = fields.get(errors, "balancer", choice(BALANCERS)) {
        out.balancer = balancer.to_string();
    }
    if let Some(shards) = fields.get(errors, "shards", count(1, NODES_MAX)) {
        out.shards = shards;
    }
    if let Some(nodes) = fields.get(errors, "nodes", count(1, NODES_MAX)) {
        out.nodes = nodes;
    }
    if let Some(flag) = fields.get(errors, "fencing", boolean) {
        out.fencing = flag;
    }
    let ms = duration(Unit::Millis, false);
    if let Some(heartbeat) = fields.get(errors, "heartbeat_ms", ms) {
        out.heartbeat = heartbeat;
    }
    if let Some(timeout) = fields.get(errors, "detection_timeout_ms", ms) {
        out.detection_timeout = timeout;
    }
    if out.detection_timeout <= out.heartbeat {
        let key = if fields.peek("detection_timeout_ms").is_some() {
            "detection_timeout_ms"
        } else {
            "heartbeat_ms"
        };
        let message = format!(
            "expected detection_timeout_ms ({}) > heartbeat_ms ({}): \
             otherwise every replica suspects a healthy active between two heartbeats",
            out.detection_timeout.as_millis_f64(),
            out.heartbeat.as_millis_f64()
        );
        errors.push(fields.origin_of(key), &fields.path_of(key), None, message);
    }
    if let Some(timeout) = fields.get(errors, "step_timeout_ms", ms) {
        out.step_timeout = timeout;
    }
    if let Some(cpu) = fields.get(errors, "cpu", dist) {
        out.cpu = cpu;
    }
    if let Some(cores) = fields.get(errors, "cores", count(1, NODES_MAX)) {
        out.cores = cores;
    }
    fields.finish(errors);
}

/// `[topology]`: the scale-out number every architecture interprets (see
/// [`Topology`]).
fn topology(errors: &mut Errors, node: Option<&Node>, out: &mut Topology) {
    let mut fields = Fields::of(errors, "topology", node, "a table ([topology])");
    if let Some(nodes) = fields.get(errors, "nodes", count(1, NODES_MAX)) {
        out.nodes = Some(nodes);
    }
    fields.finish(errors);
}

/// `[scaling]`: the contention and coherency knobs (see [`Scaling`]).
/// Coherency is a broadcast made while holding the lock, so it needs one.
fn scaling(errors: &mut Errors, node: Option<&Node>, out: &mut Scaling) {
    let mut fields = Fields::of(errors, "scaling", node, "a table ([scaling])");
    if let Some(serial) = fields.get(errors, "serial", dist) {
        out.serial = Some(serial);
    }
    if let Some(invalidation) = fields.get(errors, "invalidation", dist) {
        out.invalidation = Some(invalidation);
    }
    if out.invalidation.is_some() && out.serial.is_none() {
        let message = "expected scaling.serial as well: invalidations are broadcast while \
                       holding the serialised section's lock";
        errors.push(fields.origin_of("invalidation"), "scaling.invalidation", None, message);
    }
    fields.finish(errors);
}

/// `[[faults]]`: each inside the run (`duration_s + drain_s`, the
/// `horizon`), with the fields its action takes.
fn faults(
    errors: &mut Errors,
    path: &str,
    node: &Node,
    horizon: SimDuration,
) -> Option<Vec<FaultSpec>> {
    let items = array(errors, path, node)?;
    let mut faults = Vec::with_capacity(items.len());
    let what = "a table ([[faults]])";
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}.{index}");
        let mut fields = Fields::of(errors, &item_path, Some(item), what);
        let seconds = duration(Unit::Seconds, true);
        let at = fields.require(errors, "at_s", "each fault says when it starts", seconds);
        let until = fields.get(errors, "until_s", seconds);
        let within = format!("a time within the run, <= duration_s + drain_s ({})", secs(horizon));
        if at.is_some_and(|at| at > horizon) {
            let node = fields.peek("at_s").expect("just read");
            errors.bad_value(&fields.path_of("at_s"), node, &within);
        }
        if let Some(until) = until {
            let node = fields.peek("until_s").expect("just read");
            let until_path = fields.path_of("until_s");
            if until > horizon {
                errors.bad_value(&until_path, node, &within);
            } else if let Some(at) = at.filter(|at| until <= *at) {
                let expected = format!("a time after at_s ({})", secs(at));
                errors.bad_value(&until_path, node, &expected);
            }
        }
        let action = fields.require(
            errors,
            "action",
            "each fault says what happens (crash, partition, slow-links or clock-step)",
            choice(ACTIONS),
        );
        let action = match action {
            Some(action) => fault_action(errors, &mut fields, action),
            None => {
                fields.ignore_rest();
                None
            }
        };
        fields.finish(errors);
        if let (Some(at), Some(action)) = (at, action) {
            faults.push(FaultSpec { at, until, action });
        }
    }
    Some(faults)
}

/// The action-specific fields of a fault.
fn fault_action(errors: &mut Errors, fields: &mut Fields<'_>, action: &str) -> Option<FaultAction> {
    // The keys each action takes; the others are reported as not used.
    let takes: &[&'static str] = match action {
        "crash" => &["role"],
        "partition" => &["side_a", "side_b"],
        "slow-links" => &["role", "latency"],
        "clock-step" => &["role", "delta_ms"],
        _ => unreachable!("choice() only returns listed actions"),
    };
    for key in ["role", "side_a", "side_b", "latency", "delta_ms"] {
        if !takes.contains(&key) {
            let why = format!("action = \"{action}\" takes only {}", takes.join(" and "));
            fields.not_applicable(errors, key, &why);
        }
    }
    let needs = format!("action = \"{action}\" needs {}", takes.join(" and "));
    let role = takes
        .contains(&"role")
        .then(|| fields.require(errors, "role", &needs, choice(ROLES)))
        .flatten()
        .map(str::to_string);
    match action {
        "crash" => Some(FaultAction::Crash { role: role? }),
        "partition" => {
            let side_a = fields.require(errors, "side_a", &needs, side);
            let side_b = fields.require(errors, "side_b", &needs, side);
            let (side_a, side_b) = (side_a?, side_b?);
            if let Some(both) = side_a.iter().find(|role| side_b.contains(role)) {
                let node = fields.peek("side_b").expect("just read");
                let expected = format!("roles not on side_a too ({both:?} is on both sides)");
                errors.bad_value(&fields.path_of("side_b"), node, &expected);
                return None;
            }
            Some(FaultAction::Partition { side_a, side_b })
        }
        "slow-links" => {
            let latency = fields.require(errors, "latency", &needs, dist);
            Some(FaultAction::SlowLinks { role: role?, latency: latency? })
        }
        "clock-step" => {
            let step =
                number("a clock step in milliseconds, not 0, at most one day either way", |ms| {
                    ms != 0.0 && ms.abs() <= read::DURATION_MAX.as_millis_f64()
                });
            let delta_ms = fields.require(errors, "delta_ms", &needs, step);
            // At most a day in nanoseconds, far inside i64.
            let delta_ns = (delta_ms? * 1e6).round() as i64;
            Some(FaultAction::ClockStep { role: role?, delta_ns })
        }
        _ => unreachable!("choice() only returns listed actions"),
    }
}

/// One side of a partition: at least one role, each once.
fn side(errors: &mut Errors, path: &str, node: &Node) -> Option<Vec<String>> {
    let roles = names(ROLES)(errors, path, node)?;
    if roles.is_empty() {
        errors.bad_value(path, node, "at least one role");
        return None;
    }
    Some(roles.into_iter().map(str::to_string).collect())
}

/// `[[expect]]`: conditions on report metrics.
fn expectations(
    errors: &mut Errors,
    path: &str,
    node: &Node,
    running: &[Architecture],
) -> Option<Vec<Expectation>> {
    let items = array(errors, path, node)?;
    let mut expectations = Vec::with_capacity(items.len());
    let what = "a table ([[expect]])";
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}.{index}");
        let mut fields = Fields::of(errors, &item_path, Some(item), what);
        let architecture = fields.get(errors, "architecture", |errors, path, node| {
            architecture_run(errors, path, node, running)
        });
        let metric =
            fields.require(errors, "metric", "each expectation names a metric", choice(METRICS));
        let op = fields.require(errors, "op", "each expectation has an operator", choice(OPS));
        let value = fields.require(
            errors,
            "value",
            "each expectation has a value to compare with",
            number("a finite number", |_| true),
        );
        fields.finish(errors);
        let (Some(metric), Some(op), Some(value)) = (metric, op, value) else { continue };
        let op = match op {
            "<" => Comparison::Less,
            "<=" => Comparison::LessOrEqual,
            ">" => Comparison::Greater,
            ">=" => Comparison::GreaterOrEqual,
            "==" => Comparison::Equal,
            _ => unreachable!("choice() only returns listed operators"),
        };
        expectations.push(Expectation { architecture, metric: metric.to_string(), op, value });
    }
    Some(expectations)
}

/// An architecture name that this scenario runs.
fn architecture_run(
    errors: &mut Errors,
    path: &str,
    node: &Node,
    running: &[Architecture],
) -> Option<Architecture> {
    let architecture = Architecture::parse(choice(ARCHITECTURES)(errors, path, node)?)
        .expect("choice() checks the names");
    if running.contains(&architecture) {
        return Some(architecture);
    }
    let names: Vec<&str> = running.iter().map(|arch| arch.name()).collect();
    let expected = format!("an architecture this scenario runs ({})", names.join(", "));
    errors.bad_value(path, node, &expected);
    None
}

/// `[expect_violations]`: per architecture, the invariants it is expected to
/// break.
fn expected_violations(
    errors: &mut Errors,
    node: Option<&Node>,
    running: &[Architecture],
    out: &mut Scenario,
) {
    let what = "a table such as { microsystem = [\"single_writer_per_epoch\"] }";
    let mut fields = Fields::of(errors, "expect_violations", node, what);
    for architecture in Architecture::ALL {
        let Some(node) = fields.take(architecture.name()) else { continue };
        let path = fields.path_of(architecture.name());
        if !running.contains(&architecture) {
            let names: Vec<&str> = running.iter().map(|arch| arch.name()).collect();
            let message = format!(
                "not used: this scenario does not run {architecture} (architectures = {names:?})"
            );
            errors.push(Some(node.origin), &path, None, message);
            continue;
        }
        if let Some(invariants) = names(INVARIANTS)(errors, &path, node) {
            out.expected_violations
                .insert(architecture, invariants.into_iter().map(str::to_string).collect());
        }
    }
    fields.finish(errors);
}

// --- sweep (issue 5, `rlab sweep`) ---

/// A sweep point that is not a valid scenario: which point, the overrides
/// that built it, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointError {
    /// The point's index in the sweep.
    pub point: usize,
    /// The `PATH=VALUE` overrides of the point.
    pub overrides: Vec<String>,
    /// The errors, as [`parse`] reports them.
    pub errors: Vec<FileError>,
}

/// Parses `text` once with the `--set` `overrides` and builds one scenario
/// per point of `spec`, each with the point's overrides applied after
/// them. A point's own `[sweep]` section is read but its points are not
/// checked again.
///
/// Call [`parse`] first: it reports the file's own mistakes one per line.
///
/// # Errors
/// The first point that is not a valid scenario (an unknown path, a value
/// out of its field's range), or, as point 0, a text or `--set` override
/// that does not apply.
pub fn parse_points(
    path_for_messages: &str,
    text: &str,
    overrides: &[String],
    spec: &crate::sweep::SweepSpec,
) -> Result<Vec<Scenario>, PointError> {
    let fail = |point, errors| PointError { point, overrides: spec.overrides(point), errors };
    let mut root =
        tree::parse_document(path_for_messages, text).map_err(|errors| fail(0, errors))?;
    let mut errors = Vec::new();
    for text in overrides {
        tree::apply_override(&mut root, path_for_messages, text, &mut errors);
    }
    if !errors.is_empty() {
        return Err(fail(0, errors));
    }
    (0..spec.points())
        .map(|point| {
            read_point(path_for_messages, &root, &spec.overrides(point))
                .map_err(|errors| fail(point, errors))
        })
        .collect()
}

/// Reads the scenario that `root` becomes with `overrides` applied.
fn read_point(
    file: &str,
    root: &tree::Table,
    overrides: &[String],
) -> Result<Scenario, Vec<FileError>> {
    let mut root = root.clone();
    let mut errors = Errors::new(file);
    for text in overrides {
        tree::apply_override(&mut root, file, text, &mut errors.list);
    }
    let scenario = scenario(&mut errors, &root);
    if errors.list.is_empty() { Ok(scenario) } else { Err(errors.list) }
}

/// `[sweep]`: `vary`, a list of `"PATH=V1,V2,..."` strings (the first is
/// the x-axis), and `seeds`, seeds per point (1 by default).
fn sweep_section(errors: &mut Errors, node: Option<&Node>) -> Option<crate::sweep::SweepSpec> {
    use crate::sweep::{SEEDS_MAX, SweepSpec, Vary};
    node?;
    let what = "a table such as [sweep] vary = [\"microsystem.instances=1,2,4,8\"]";
    let mut fields = Fields::of(errors, "sweep", node, what);
    let vary = fields.require(
        errors,
        "vary",
        "a sweep names the fields it varies, e.g. vary = [\"microsystem.instances=1,2,4,8\"]",
        |errors, path, node| {
            let items = array(errors, path, node)?;
            if items.is_empty() {
                errors.bad_value(path, node, "at least one \"PATH=V1,V2,...\" string");
                return None;
            }
            let mut list = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{path}.{index}");
                let text = read::string(errors, &item_path, item)?;
                match Vary::parse(text) {
                    Ok(vary) => list.push(vary),
                    Err(message) => {
                        errors.push(Some(item.origin), &item_path, Some(item.render()), message);
                        return None;
                    }
                }
            }
            Some(list)
        },
    );
    let seeds = fields.get(errors, "seeds", count(1, SEEDS_MAX)).unwrap_or(1);
    let origin = fields.origin_of("vary");
    fields.finish(errors);
    match SweepSpec::new(vary?, seeds) {
        Ok(spec) => Some(spec),
        Err(message) => {
            errors.push(origin, "sweep.vary", None, message);
            None
        }
    }
}

/// Checks that every point of the file's sweep is a valid scenario (a
/// path that does not exist, or a value out of its field's range, is an
/// error at the `vary` line).
fn check_sweep_points(errors: &mut Errors, root: &tree::Table, spec: &crate::sweep::SweepSpec) {
    let origin = root
        .get("sweep")
        .and_then(|entry| match &entry.node.value {
            Value::Table(table) => table.get("vary").map(|entry| entry.node.origin),
            _ => None,
        })
        .or(Some(tree::Origin::Set));
    for point in 0..spec.points() {
        let overrides = spec.overrides(point);
        let Err(point_errors) = read_point(&errors.file_name(), root, &overrides) else {
            continue;
        };
        let first = &point_errors[0];
        let value = first.value.as_deref().map(|value| format!(" = {value}")).unwrap_or_default();
        let message = format!(
            "point {point} ({}) is not a valid scenario: {}{value}: {}",
            overrides.join(" "),
            first.field,
            first.message
        );
        errors.push(origin, "sweep.vary", None, message);
        // One point is enough to show what is wrong.
        return;
    }
}

// --- end sweep ---

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\ndescription = \"A test.\"\n";

    fn errors_of(text: &str, overrides: &[&str]) -> Vec<String> {
        let overrides: Vec<String> = overrides.iter().map(ToString::to_string).collect();
        match parse("t.toml", text, &overrides) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn minimal_file_takes_the_defaults() {
        // Goal: a file with only the two required fields is the default
        // scenario with that name and description.
        let scenario = parse("t.toml", MINIMAL, &[]).unwrap();
        let mut expected = Scenario::default_named("t");
        expected.description = "A test.".to_string();
        assert_eq!(scenario, expected);
    }

    #[test]
    fn missing_required_fields_have_no_line() {
        // Goal: an empty file names both required fields, without a line.
        assert_eq!(
            errors_of("", &[]),
            [
                "t.toml: name: missing; every scenario has a short name",
                "t.toml: description: missing; every scenario says, in a paragraph, what it shows",
            ]
        );
    }

    #[test]
    fn distributions_map_to_sim_dists() {
        // Goal: every distribution kind converts to its `sim::Dist`, in
        // milliseconds, and `Dist::validate` errors name the file's keys.
        let ms = SimDuration::from_millis;
        let text = format!(
            "{MINIMAL}[network]\nlatency = {{ kind = \"bimodal\", slow_probability = 0.1, \
             fast = {{ kind = \"uniform\", min_ms = 1, max_ms = 2 }}, \
             slow = {{ kind = \"pareto\", min_ms = 10, shape = 1.5 }} }}\n\
             [gateway]\nlatency = {{ kind = \"lognormal\", mean_ms = 50, cv = 0.3 }}\n"
        );
        let scenario = parse("t.toml", &text, &[]).unwrap();
        assert_eq!(
            scenario.network.latency,
            sim::Dist::bimodal(
                sim::Dist::uniform(ms(1), ms(2)),
                sim::Dist::pareto(ms(10), 1.5),
                0.1
            )
        );
        assert_eq!(scenario.gateway.latency, sim::Dist::lognormal(ms(50), 0.3));
        let bad = format!(
            "{MINIMAL}[network]\nlatency = {{ kind = \"uniform\", min_ms = 5, max_ms = 2 }}\n"
        );
        assert_eq!(
            errors_of(&bad, &[]),
            ["t.toml:4: network.latency.min_ms = 5: expected a duration <= max (2ms)"]
        );
    }

    #[test]
    fn balancer_names_are_the_kits() {
        // Goal: the file accepts exactly the strategies the kit's balancer
        // implements.
        let kit: Vec<&str> =
            sim::kit::routing::Strategy::ALL.iter().map(|strategy| strategy.name()).collect();
        assert_eq!(BALANCERS, kit);
    }

    #[test]
    fn sweep_section_is_read_and_every_point_checked() {
        // Goal: `[sweep]` gives the default sweep; its mistakes name the
        // line, and a point that is not a valid scenario is an error at
        // the `vary` line, before anything runs.
        let text = format!(
            "{MINIMAL}[sweep]\nvary = [\"microsystem.instances=1,2,4\", \"workload.rate_per_s=10,20,40\"]\nseeds = 3\n"
        );
        let spec = parse("t.toml", &text, &[]).unwrap().sweep.unwrap();
        assert_eq!((spec.points(), spec.seeds), (3, 3));
        assert_eq!(spec.overrides(2), ["microsystem.instances=4", "workload.rate_per_s=40"]);
        assert_eq!(parse("t.toml", MINIMAL, &[]).unwrap().sweep, None);
        let cases = [
            (
                "vary = []",
                "t.toml:4: sweep.vary = []: expected at least one \"PATH=V1,V2,...\" string",
            ),
            (
                "vary = [\"a.b=1,x\"]",
                "t.toml:4: sweep.vary.0 = \"a.b=1,x\": value `x` is not a finite number",
            ),
            (
                "vary = [\"a.b=1,2\", \"c.d=1\"]",
                "t.toml:4: sweep.vary: c.d has 1 values but a.b has 2: fields vary in lockstep, so they need as many values each",
            ),
            (
                "seeds = 2",
                "t.toml:3: sweep.vary: missing; a sweep names the fields it varies, e.g. vary = [\"microsystem.instances=1,2,4,8\"]",
            ),
            (
                "vary = [\"microsystem.instancez=1,2\"]",
                "t.toml:4: sweep.vary: point 0 (microsystem.instancez=1) is not a valid scenario: microsystem.instancez: unknown field; did you mean `instances`?",
            ),
            (
                "vary = [\"microsystem.instances=1,0\"]",
                "t.toml:4: sweep.vary: point 1 (microsystem.instances=0) is not a valid scenario: microsystem.instances = 0: expected a whole number from 1 to 1024",
            ),
            (
                "vary = [\"a=1\"]\nseed = 2",
                "t.toml:5: sweep.seed: unknown field; did you mean `seeds`?",
            ),
        ];
        for (section, expected) in cases {
            let text = format!("{MINIMAL}[sweep]\n{section}\n");
            assert_eq!(errors_of(&text, &[]), [expected], "{section}");
        }
    }

    #[test]
    fn sweep_points_are_built_after_the_overrides() {
        // Goal: each point is the file with `--set` and then the point's
        // values applied.
        let spec = crate::sweep::SweepSpec::new(
            vec![crate::sweep::Vary::parse("microsystem.instances=1,8").unwrap()],
            1,
        )
        .unwrap();
        let overrides = ["microsystem.cores=2".to_string()];
        let points = parse_points("t.toml", MINIMAL, &overrides, &spec).unwrap();
        let built: Vec<(u32, u32)> =
            points.iter().map(|s| (s.microsystem.instances, s.microsystem.cores)).collect();
        assert_eq!(built, [(1, 2), (8, 2)]);
        let bad = crate::sweep::SweepSpec::new(
            vec![crate::sweep::Vary::parse("microsystem.instances=1,5000").unwrap()],
            1,
        )
        .unwrap();
        let error = parse_points("t.toml", MINIMAL, &[], &bad).unwrap_err();
        assert_eq!(
            (error.point, error.overrides.clone()),
            (1, vec!["microsystem.instances=5000".to_string()])
        );
        assert_eq!(error.errors[0].field, "microsystem.instances");
    }

    #[test]
    fn nearest_names_are_suggested() {
        // Goal: typos get the nearest valid name; far-off words get the list.
        assert_eq!(read::nearest("rate_pr_s", &["rate_per_s", "users"]).unwrap(), "`rate_per_s`");
        assert_eq!(read::nearest("zzz", &["rate_per_s", "users"]), None);
        assert_eq!(read::nearest("crahs", ACTIONS).unwrap(), "`crash`");
        assert_eq!(read::nearest("=>", OPS), None);
    }
}
