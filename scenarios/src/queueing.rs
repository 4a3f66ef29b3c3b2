//! Queueing stations on the engine, and the theory they are checked against.
//!
//! [`run`] simulates one station, or `K` identical stations in tandem, with
//! the same primitives the order system uses, and returns a [`QueueReport`]
//! that sets the measured means beside the closed-form values of
//! [`theory`] where one exists. Nothing in the report is computed from a
//! formula: every number emerges from the run.
//!
//! # The model
//!
//! - A **source** process on its own node sends customers to the first
//!   station, one per timer: exponential gaps drawn from the
//!   `Purpose::Workload` stream (Poisson arrivals) or evenly spaced ones.
//! - Each **station** is a process on its own node with `servers` cores.
//!   It serves a customer by [`spend_cpu`](sim::Ctx::spend_cpu) for a
//!   service time drawn from its own process stream
//!   (`Purpose::Process(id)`), so customers wait in the node's ready queue
//!   (the cores are the servers, FCFS), and on completion sends the customer
//!   on to the next station or to the sink.
//! - A **sink** process records each customer's time in system (arrival at
//!   the first station to departure from the last) and the service it
//!   received; the wait is the difference. A process must not read global
//!   time, so both ends are read with `now_local()`; clocks are perfect
//!   here, so that reading equals global time on every node.
//! - Links are constant and zero-latency, so moving between stations takes
//!   no time.
//!
//! # What is measured, and how
//!
//! - **Warm-up.** The run starts empty, which biases early customers
//!   towards short waits, so the first 10% of customers, in completion
//!   order, are left out of every statistic ([`QueueReport::warmup_customers`]).
//! - **W and Wq** ([`QueueReport::mean_time_in_system`],
//!   [`QueueReport::mean_wait`]) are means over the remaining customers,
//!   summed exactly in integer nanoseconds.
//! - **95% confidence intervals** come from [`stats::batch_means_ci95`]
//!   over [`BATCHES`] batches of consecutive completions after the warm-up
//!   (the few completions past the last full batch are left out of the
//!   batches only). The sink keeps per-batch sums rather than every
//!   observation, so memory does not grow with the number of customers; the
//!   batch means are then handed to `batch_means_ci95` as one observation
//!   each, which gives the same interval.
//! - **Lq, L and utilisation** are time averages kept by the engine for
//!   each station node (ready-queue length and busy cores), taken over the
//!   window from the end of the warm-up (the moment the last warm-up
//!   customer leaves) to the end of the run, and summed (Lq, L) or averaged
//!   (utilisation, per server) over the stations.
//! - **Little's law** is checked, not assumed: [`Little`] sets the engine's
//!   time-average number in system beside the measured throughput times the
//!   measured W, both over the same window.
//!
//! # Example
//!
//! ```
//! use scenarios::queueing::{self, QueueParams, Service};
//! use scenarios::queueing::theory::ArrivalKind;
//! use sim::Seed;
//!
//! // M/M/1 at 50% load: theory says W = 1/(μ − λ) = 2 s.
//! let params = QueueParams {
//!     arrivals: ArrivalKind::Poisson,
//!     lambda: 0.5,
//!     service: Service::Exponential,
//!     mu: 1.0,
//!     servers: 1,
//!     customers: 5_000,
//!     stations: 1,
//! };
//! let report = queueing::run(&params, Seed(7))?;
//! let theory = report.theory.expect("M/M/1 has a closed form");
//! assert!((theory.mean_time_in_system - 2.0).abs() < 1e-12);
//! assert!((report.mean_time_in_system / 2.0 - 1.0).abs() < 0.2);
//! assert!((report.utilisation - 0.5).abs() < 0.05);
//!
//! // An unstable model is refused before anything runs.
//! let overloaded = QueueParams { lambda: 2.0, ..params };
//! assert!(queueing::run(&overloaded, Seed(7)).unwrap_err().contains("utilisation 2.000"));
//! # Ok::<(), String>(())
//! ```

pub mod theory;

mod model;

use crate::stats::{self, Interval};
use model::{Customer, Interarrival, Sink, Source, Station};
use serde::Serialize;
use sim::{
    Dist, LinkConfig, NodeConfig, NodeId, Purpose, RunOutcome, Seed, Sim, SimConfig, SimDuration,
    Stream, TraceHash,
};
use theory::{ArrivalKind, ServiceKind, StationModel};

/// The smallest arrival or service rate accepted, per second: a mean time
/// of 1000 s.
pub const RATE_MIN: f64 = 1e-3;
/// The largest arrival or service rate accepted, per second: a mean time of
/// 1 µs, a thousand times the engine's nanosecond resolution, so rounding
/// samples to whole nanoseconds stays far below the statistical noise.
pub const RATE_MAX: f64 = 1e6;
/// The largest coefficient of variation accepted for lognormal service.
/// Beyond it the tail is so heavy that no feasible run would estimate the
/// mean wait, and the largest samples approach the simulated-time limit.
pub const CV_MAX: f64 = 10.0;
/// The most servers per station.
pub const SERVERS_MAX: u32 = 1024;
/// The fewest customers: enough that after the warm-up every one of the
/// [`BATCHES`] batches holds a few customers.
pub const CUSTOMERS_MIN: u64 = 100;
/// The most customers in one run.
pub const CUSTOMERS_MAX: u64 = 100_000_000;
/// The most stations in a tandem.
pub const STATIONS_MAX: u32 = 64;
/// The most station visits (customers × stations) in one run: about two
/// billion events, several minutes of a release build.
pub const VISITS_MAX: u64 = 1_000_000_000;
/// The longest expected arrival span (customers / λ) in seconds. Simulated
/// time is `u64` nanoseconds, about 1.8e10 s in all; this leaves room for the
/// waits and the largest service samples on top.
pub const SPAN_MAX_SECS: f64 = 1e9;
/// Batches for the batch-means confidence intervals: within the usual ten to
/// thirty (see [`stats::batch_means_ci95`]).
pub const BATCHES: usize = 20;

/// The service-time distribution of every station, with mean 1/μ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Service {
    /// Exponential ("M").
    Exponential,
    /// Always exactly 1/μ ("D").
    Deterministic,
    /// Lognormal with coefficient of variation `cv` ("G").
    LogNormal {
        /// Standard deviation over mean, in (0, [`CV_MAX`]].
        cv: f64,
    },
    /// Uniform on \[0, 2/μ\] ("G"; coefficient of variation 1/√3).
    Uniform,
}

impl Service {
    /// The name `rlab queue --service` uses.
    pub fn name(&self) -> &'static str {
        match self {
            Service::Exponential => "exp",
            Service::Deterministic => "det",
            Service::LogNormal { .. } => "lognormal",
            Service::Uniform => "uniform",
        }
    }
}

/// One queueing model: what `rlab queue` takes, free of the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueParams {
    /// The arrival process of the source.
    pub arrivals: ArrivalKind,
    /// λ, customers per second.
    pub lambda: f64,
    /// The service-time distribution.
    pub service: Service,
    /// μ, the service rate of one server, per second (mean service 1/μ).
    pub mu: f64,
    /// Servers (cores) per station.
    pub servers: u32,
    /// Customers to send through, warm-up included.
    pub customers: u64,
    /// Identical stations in tandem.
    pub stations: u32,
}

impl QueueParams {
    /// Checks every parameter, returning the first problem as one line that
    /// names the `rlab queue` flag, the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        check_rate("--lambda", self.lambda)?;
        check_rate("--mu", self.mu)?;
        if let Service::LogNormal { cv } = self.service
            && !(cv.is_finite() && cv > 0.0 && cv <= CV_MAX)
        {
            return Err(format!(
                "--cv {cv} is not allowed: expected a finite coefficient of variation > 0 and at most {CV_MAX}"
            ));
        }
        if !(1..=SERVERS_MAX).contains(&self.servers) {
            return Err(format!(
                "--servers {} is out of range: expected 1 to {SERVERS_MAX}",
                self.servers
            ));
        }
        if !(CUSTOMERS_MIN..=CUSTOMERS_MAX).contains(&self.customers) {
            return Err(format!(
                "--customers {} is out of range: expected {CUSTOMERS_MIN} to {CUSTOMERS_MAX}",
                self.customers
            ));
        }
        if !(1..=STATIONS_MAX).contains(&self.stations) {
            return Err(format!(
                "--stations {} is out of range: expected 1 to {STATIONS_MAX}",
                self.stations
            ));
        }
        let visits = self.customers.saturating_mul(u64::from(self.stations));
        if visits > VISITS_MAX {
            return Err(format!(
                "--customers {} with --stations {} makes {visits} station visits; at most {VISITS_MAX} are allowed",
                self.customers, self.stations
            ));
        }
        let span = self.customers as f64 / self.lambda;
        if span > SPAN_MAX_SECS {
            return Err(format!(
                "--customers {} with --lambda {} spans about {span:.3e} s of simulated time; at most {SPAN_MAX_SECS:e} s fits (use fewer customers or a higher rate)",
                self.customers, self.lambda
            ));
        }
        let capacity = f64::from(self.servers) * self.mu;
        let utilisation = self.lambda / capacity;
        if utilisation >= 1.0 {
            return Err(format!(
                "--lambda {} with --mu {} and --servers {} gives utilisation {utilisation:.3}; a stable queue needs lambda < servers × mu ({capacity})",
                self.lambda, self.mu, self.servers
            ));
        }
        Ok(())
    }

    /// The per-server utilisation ρ = λ/(cμ) the model offers.
    pub fn offered_utilisation(&self) -> f64 {
        self.lambda / (f64::from(self.servers) * self.mu)
    }

    /// One station as queueing theory describes it. Lognormal and uniform
    /// service are "G", given by E\[S²\] = Var\[S\] + E\[S\]².
    pub fn station_model(&self) -> StationModel {
        let mean = 1.0 / self.mu;
        let (service, second_moment) = match self.service {
            Service::Exponential => (ServiceKind::Exponential, 2.0 * mean * mean),
            Service::Deterministic => (ServiceKind::Deterministic, mean * mean),
            Service::LogNormal { cv } => (ServiceKind::General, mean * mean * (1.0 + cv * cv)),
            // Uniform on [0, 2m] has variance (2m)²/12.
            Service::Uniform => {
                (ServiceKind::General, mean * mean + (2.0 * mean) * (2.0 * mean) / 12.0)
            }
        };
        StationModel {
            arrival_rate: self.lambda,
            service_mean: mean,
            service_second_moment: second_moment,
            servers: self.servers,
            arrivals: self.arrivals,
            service,
        }
    }

    /// The closed-form end-to-end means, where queueing theory has them
    /// (see [`theory::tandem`]).
    pub fn theory(&self) -> Option<theory::Metrics> {
        theory::tandem(&self.station_model(), self.stations)
    }

    /// Kendall's notation for one station, e.g. `M/M/1` or `M/G/3`.
    pub fn kendall(&self) -> String {
        let arrivals = match self.arrivals {
            ArrivalKind::Poisson => "M",
            ArrivalKind::Deterministic => "D",
        };
        let service = match self.service {
            Service::Exponential => "M",
            Service::Deterministic => "D",
            Service::LogNormal { .. } | Service::Uniform => "G",
        };
        format!("{arrivals}/{service}/{}", self.servers)
    }

    /// Customers left out of the statistics as warm-up: the first 10%.
    pub fn warmup_customers(&self) -> u64 {
        self.customers / 10
    }

    /// The service-time distribution in engine units.
    fn service_dist(&self) -> Dist {
        let mean = SimDuration::from_secs_f64(1.0 / self.mu);
        match self.service {
            Service::Exponential => Dist::exponential(mean),
            Service::Deterministic => Dist::constant(mean),
            Service::LogNormal { cv } => Dist::lognormal(mean, cv),
            Service::Uniform => {
                Dist::uniform(SimDuration::ZERO, SimDuration::from_secs_f64(2.0 / self.mu))
            }
        }
    }
}

fn check_rate(flag: &str, rate: f64) -> Result<(), String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "{flag} {rate} is not allowed: expected a finite rate > 0 (per second)"
        ));
    }
    if !(RATE_MIN..=RATE_MAX).contains(&rate) {
        return Err(format!(
            "{flag} {rate} is out of range: expected a rate from {RATE_MIN} to {RATE_MAX} per second (times are simulated in whole nanoseconds)"
        ));
    }
    Ok(())
}

/// Little's law, measured: two estimates of the mean number in system over
/// the window after the warm-up that agree when the run is long enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Little {
    /// L, the engine's time average of customers present (waiting or in
    /// service), summed over stations.
    pub l: f64,
    /// The measured throughput times the measured mean time in system.
    pub lambda_w: f64,
    /// Lq, the engine's time average of customers waiting.
    pub lq: f64,
    /// The measured throughput times the measured mean wait.
    pub lambda_wq: f64,
}

/// What one run measured, beside theory. All times are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    /// The master seed.
    pub seed: u64,
    /// `poisson` or `deterministic`.
    pub arrivals: &'static str,
    /// `exp`, `det`, `lognormal` or `uniform`.
    pub service: &'static str,
    /// The lognormal coefficient of variation, if any.
    pub cv: Option<f64>,
    /// λ, per second.
    pub lambda: f64,
    /// μ, per second and server.
    pub mu: f64,
    /// Servers per station.
    pub servers: u32,
    /// Stations in tandem.
    pub stations: u32,
    /// Customers simulated, warm-up included.
    pub customers: u64,
    /// Customers left out as warm-up (the first 10% to complete).
    pub warmup_customers: u64,
    /// W, the mean time from arrival at the first station to departure from
    /// the last.
    pub mean_time_in_system: f64,
    /// Wq, the mean total time spent waiting for a server, over all
    /// stations.
    pub mean_wait: f64,
    /// Lq, the time-average number waiting, summed over stations.
    pub mean_queue_length: f64,
    /// L, the time-average number present, summed over stations.
    pub mean_number_in_system: f64,
    /// The fraction of time a server is busy, averaged over servers and
    /// stations.
    pub utilisation: f64,
    /// Customers completed per second after the warm-up.
    pub throughput: f64,
    /// The 95% confidence interval of W, as `[low, high]`.
    pub ci95_time_in_system: Interval,
    /// The 95% confidence interval of Wq, as `[low, high]`.
    pub ci95_wait: Interval,
    /// The Little's-law check.
    pub little: Little,
    /// The closed-form values, or `None` where no exact formula exists.
    pub theory: Option<theory::Metrics>,
    /// Events the engine processed.
    pub events: u64,
    /// The digest of the run's trace.
    pub trace_hash: TraceHash,
    /// Simulated time at the end of the run.
    pub simulated_seconds: f64,
}

/// Engine time averages of one station node at one moment, as integrals
/// from time zero (value × seconds).
struct Integrals {
    at_secs: f64,
    waiting: Vec<f64>,
    busy: Vec<f64>,
}

impl Integrals {
    fn take(sim: &Sim<Customer>, stations: &[NodeId]) -> Integrals {
        let at_secs = sim.now().as_secs_f64();
        let (mut waiting, mut busy) = (Vec::new(), Vec::new());
        for &node in stations {
            // The views give means since time zero; times the elapsed time
            // they are integrals again, which can be differenced.
            let view = sim.node(node);
            waiting.push(view.mean_ready_queue * at_secs);
            busy.push(view.utilisation * f64::from(view.cores) * at_secs);
        }
        Integrals { at_secs, waiting, busy }
    }
}

/// Simulates `params` with `seed` and reports what it measured.
///
/// Returns the message of [`QueueParams::validate`] for a bad or unstable
/// model, without running anything.
pub fn run(params: &QueueParams, seed: Seed) -> Result<QueueReport, String> {
    params.validate()?;
    let stations = params.stations as usize;
    let customers = params.customers;
    let warmup = params.warmup_customers();
    let batch_size = (customers - warmup) / BATCHES as u64;

    // Per customer: one source timer, K + 1 deliveries and K pieces of work;
    // plus one start per process. Reaching twice that would be a bug.
    let expected_events =
        customers * (2 * u64::from(params.stations) + 2) + u64::from(params.stations) + 2;
    let mut config = SimConfig::new(seed);
    config.events_max = 2 * expected_events + 1_000;
    // The engine keeps per-interval time averages; one bucket per simulated
    // second would grow with the run, so aim for about 64 buckets.
    let span_secs = customers as f64 / params.lambda;
    config.metrics_interval = SimDuration::from_secs_f64((span_secs / 64.0).max(1.0));
    let mut sim: Sim<Customer> = Sim::new(config);
    sim.set_default_link(LinkConfig::constant(SimDuration::ZERO));

    let source_node = sim.add_node(NodeConfig::new("source"));
    let station_nodes: Vec<NodeId> = (1..=stations)
        .map(|k| sim.add_node(NodeConfig::new(format!("station{k}")).cores(params.servers)))
        .collect();
    let sink_node = sim.add_node(NodeConfig::new("sink"));

    // Spawned back to front so each process knows the id of the next.
    let sink = sim.spawn(sink_node, "sink", move || Sink::new(warmup, batch_size));
    let mut next = sink;
    for (index, &node) in station_nodes.iter().enumerate().rev() {
        let service = params.service_dist();
        next = sim.spawn(node, format!("station{}", index + 1), move || Station {
            next,
            first: index == 0,
            service: service.clone(),
            present: Vec::new(),
            free: Vec::new(),
        });
    }
    let first_station = next;
    let mean_gap_ns = 1e9 / params.lambda;
    let arrivals = params.arrivals;
    sim.spawn(source_node, "source", move || Source {
        first_station,
        interarrival: match arrivals {
            ArrivalKind::Poisson => Interarrival::Poisson {
                gap: Dist::exponential(SimDuration::from_nanos_f64(mean_gap_ns)),
            },
            ArrivalKind::Deterministic => Interarrival::Deterministic { spacing_ns: mean_gap_ns },
        },
        stream: Stream::new(seed, Purpose::Workload),
        customers,
        sent: 0,
    });

    let completed =
        |sim: &Sim<Customer>| sim.process_state::<Sink>(sink).map_or(0, |s| s.completed);
    let outcome = sim.run_while(|sim| completed(sim) < warmup);
    assert_eq!(outcome, RunOutcome::ConditionMet, "the run stopped before the warm-up ended");
    let start = Integrals::take(&sim, &station_nodes);
    let outcome = sim.run();
    assert_eq!(outcome, RunOutcome::Idle, "the run stopped before every customer left");
    let end = Integrals::take(&sim, &station_nodes);

    let state = sim.process_state::<Sink>(sink).expect("the sink never crashes");
    assert_eq!(state.completed, customers, "every customer reaches the sink");
    let measured = state.measured() as f64;
    let mean_time_in_system = state.time_in_system_ns as f64 / measured / 1e9;
    let mean_wait = state.wait_ns as f64 / measured / 1e9;
    let batch_means = |sums: &[u128; BATCHES]| -> Vec<f64> {
        sums.iter().map(|sum| *sum as f64 / batch_size as f64 / 1e9).collect()
    };
    let ci95 = |sums: &[u128; BATCHES]| {
        stats::batch_means_ci95(&batch_means(sums), BATCHES)
            .expect("BATCHES finite batch means give an interval")
    };

    let window = end.at_secs - start.at_secs;
    assert!(window > 0.0, "customers after the warm-up take time");
    let (mut queue_length, mut number_in_system, mut busy_fraction) = (0.0, 0.0, 0.0);
    for k in 0..stations {
        let waiting = (end.waiting[k] - start.waiting[k]) / window;
        let busy = (end.busy[k] - start.busy[k]) / window;
        queue_length += waiting;
        number_in_system += waiting + busy;
        busy_fraction += busy / f64::from(params.servers);
    }
    let throughput = measured / window;

    Ok(QueueReport {
        seed: seed.0,
        arrivals: match params.arrivals {
            ArrivalKind::Poisson => "poisson",
            ArrivalKind::Deterministic => "deterministic",
        },
        service: params.service.name(),
        cv: match params.service {
            Service::LogNormal { cv } => Some(cv),
            _ => None,
        },
        lambda: params.lambda,
        mu: params.mu,
        servers: params.servers,
        stations: params.stations,
        customers,
        warmup_customers: warmup,
        mean_time_in_system,
        mean_wait,
        mean_queue_length: queue_length,
        mean_number_in_system: number_in_system,
        utilisation: busy_fraction / stations as f64,
        throughput,
        ci95_time_in_system: ci95(&state.batch_time_in_system_ns),
        ci95_wait: ci95(&state.batch_wait_ns),
        little: Little {
            l: number_in_system,
            lambda_w: throughput * mean_time_in_system,
            lq: queue_length,
            lambda_wq: throughput * mean_wait,
        },
        theory: params.theory(),
        events: sim.stats().events,
        trace_hash: sim.trace_hash(),
        simulated_seconds: sim.now().as_secs_f64(),
    })
}
