//! Closed-form steady-state results from queueing theory.
//!
//! `rlab queue` prints these next to the simulated numbers, and the tests use
//! them as the oracle the simulator is checked against. Everything is a pure
//! function of a `StationModel` in SI units (rates per second, times in
//! seconds), with no dependency on the engine.
//!
//! Only models with an exact textbook answer get one: M/M/1, M/M/c, M/D/1,
//! M/G/1 and D/D/c, plus tandems of M/M/c (and D/D/c) stations. Anything else
//! returns `None` rather than an approximation, so a caller never mistakes a
//! heuristic for the truth.
//!
//! ```
//! # use scenarios::queueing::theory::{station, StationModel};
//! // M/M/1 at 90% load: the mean time in system is 1 / (μ − λ) = 10 s.
//! let metrics = station(&StationModel::mmc(0.9, 1.0, 1)).unwrap();
//! assert!((metrics.mean_time_in_system - 10.0).abs() < 1e-9);
//! ```

use serde::Serialize;

/// How customers arrive at a station: the "A" in Kendall's A/S/c notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ArrivalKind {
    /// A Poisson process: exponential inter-arrival times with mean 1/λ ("M").
    Poisson,
    /// One arrival exactly every 1/λ seconds ("D").
    Deterministic,
}

/// How long service takes: the "S" in Kendall's A/S/c notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServiceKind {
    /// Exponential service times with mean E\[S\] ("M"); E\[S²\] = 2·E\[S\]².
    Exponential,
    /// Every service takes exactly E\[S\] ("D"); E\[S²\] = E\[S\]².
    Deterministic,
    /// Any distribution, described by its first two moments ("G").
    General,
}

/// One queueing station: `servers` identical servers sharing a single FCFS
/// queue of unbounded length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StationModel {
    /// λ, arrivals per second.
    pub arrival_rate: f64,
    /// E\[S\] = 1/μ, the mean service time in seconds.
    pub service_mean: f64,
    /// E\[S²\], the second moment of the service time in seconds².
    ///
    /// Only read for [`ServiceKind::General`]: the exponential and
    /// deterministic kinds imply their own second moment (2·E\[S\]² and
    /// E\[S\]²), so a stale value here cannot contradict the kind.
    pub service_second_moment: f64,
    /// c, the number of servers.
    pub servers: u32,
    /// The arrival process.
    pub arrivals: ArrivalKind,
    /// The service-time distribution.
    pub service: ServiceKind,
}

/// Steady-state means of a station (or of a whole tandem, end to end).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// W, the mean time from arrival to departure, in seconds.
    pub mean_time_in_system: f64,
    /// Wq, the mean time spent waiting before service starts, in seconds.
    pub mean_wait: f64,
    /// Lq, the mean number of customers waiting (not those in service).
    pub mean_queue_length: f64,
    /// L, the mean number of customers present, waiting or in service.
    pub mean_number_in_system: f64,
    /// ρ = λ·E\[S\]/c, the fraction of time each server is busy.
    pub utilisation: f64,
}

impl StationModel {
    /// An M/M/c station: Poisson arrivals at `arrival_rate` per second and
    /// exponential service with mean `service_mean` seconds on `servers`
    /// servers.
    pub fn mmc(arrival_rate: f64, service_mean: f64, servers: u32) -> StationModel {
        StationModel {
            arrival_rate,
            service_mean,
            service_second_moment: 2.0 * service_mean * service_mean,
            servers,
            arrivals: ArrivalKind::Poisson,
            service: ServiceKind::Exponential,
        }
    }

    /// An M/D/c station: Poisson arrivals and a fixed service time of
    /// `service_mean` seconds.
    pub fn mdc(arrival_rate: f64, service_mean: f64, servers: u32) -> StationModel {
        StationModel {
            arrival_rate,
            service_mean,
            service_second_moment: service_mean * service_mean,
            servers,
            arrivals: ArrivalKind::Poisson,
            service: ServiceKind::Deterministic,
        }
    }

    /// An M/G/c station: Poisson arrivals and a general service time given by
    /// its mean (seconds) and second moment (seconds²).
    pub fn mgc(
        arrival_rate: f64,
        service_mean: f64,
        service_second_moment: f64,
        servers: u32,
    ) -> StationModel {
        StationModel {
            arrival_rate,
            service_mean,
            service_second_moment,
            servers,
            arrivals: ArrivalKind::Poisson,
            service: ServiceKind::General,
        }
    }

    /// A D/D/c station: one arrival every 1/`arrival_rate` seconds and a
    /// fixed service time of `service_mean` seconds.
    pub fn ddc(arrival_rate: f64, service_mean: f64, servers: u32) -> StationModel {
        StationModel {
            arrival_rate,
            service_mean,
            service_second_moment: service_mean * service_mean,
            servers,
            arrivals: ArrivalKind::Deterministic,
            service: ServiceKind::Deterministic,
        }
    }
}

/// The per-server utilisation ρ = λ·E\[S\]/c.
///
/// This is the offered load a = λ·E\[S\] (in Erlangs) shared over the c
/// servers; a station has a steady state only while ρ < 1. With zero servers
/// the result is infinite (or NaN when nothing arrives either).
pub fn utilisation(model: &StationModel) -> f64 {
    model.arrival_rate * model.service_mean / f64::from(model.servers)
}

/// The Erlang C formula: the probability that an arrival to an M/M/c queue
/// with offered load `offered_load` = a = λ/μ Erlangs finds all `servers`
/// busy and has to wait.
///
/// The textbook form divides aᶜ/c! by a sum of such terms, which overflows
/// long before c = 1000. Instead this runs the Erlang B (loss) recursion
/// B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)), whose every step stays in
/// \[0, 1\], and then converts blocking into waiting with
/// C = c·B / (c − a·(1 − B)).
///
/// When a ≥ c the queue has no steady state and every arrival eventually
/// waits, so the result is 1. A negative or NaN load gives NaN.
pub fn erlang_c(servers: u32, offered_load: f64) -> f64 {
    if offered_load.is_nan() || offered_load < 0.0 {
        return f64::NAN;
    }
    let servers_f64 = f64::from(servers);
    if offered_load >= servers_f64 {
        return 1.0;
    }
    let mut blocking = 1.0;
    for k in 1..=servers {
        let carried = offered_load * blocking;
        blocking = carried / (f64::from(k) + carried);
    }
    servers_f64 * blocking / (servers_f64 - offered_load * (1.0 - blocking))
}

/// Steady-state metrics of one station, where an exact closed form exists.
///
/// - **M/M/c** (including M/M/1): Erlang C gives the chance of waiting, and a
///   waiting customer waits on average E\[S\]/(c − a), so
///   Wq = C(c, a)·E\[S\]/(c − a). For c = 1 this is ρ·E\[S\]/(1 − ρ).
/// - **M/G/1** (including M/D/1): the Pollaczek–Khinchine mean-value formula
///   Wq = λ·E\[S²\] / (2(1 − ρ)); the wait grows with the service-time
///   variance, which is why M/D/1 waits half as long as M/M/1.
/// - **D/D/c**: arrivals are evenly spaced and services identical, so when
///   ρ < 1 some server is always free at an arrival (each server sees a new
///   customer only every c/λ > E\[S\] seconds) and Wq = 0.
///
/// Then W = Wq + E\[S\], and Little's law (L = λW, Lq = λWq) gives the
/// counts.
///
/// Returns `None` when the queue is unstable (ρ ≥ 1), when the inputs are
/// not a valid station (no servers, a negative or non-finite rate, a
/// non-positive service time, a second moment below E\[S\]²), and when no
/// exact formula is known: M/G/c with c > 1 and non-exponential service, and
/// deterministic arrivals with random service (D/M/c, D/G/c).
pub fn station(model: &StationModel) -> Option<Metrics> {
    if !is_valid(model) {
        return None;
    }
    let rho = utilisation(model);
    if rho >= 1.0 {
        return None;
    }
    let mean_wait = match (model.arrivals, model.service) {
        (ArrivalKind::Poisson, ServiceKind::Exponential) => {
            let servers = f64::from(model.servers);
            let offered_load = model.arrival_rate * model.service_mean;
            erlang_c(model.servers, offered_load) * model.service_mean / (servers - offered_load)
        }
        (ArrivalKind::Poisson, ServiceKind::Deterministic | ServiceKind::General) => {
            if model.servers != 1 {
                // M/G/c has no exact closed form; the usual approximations
                // (Lee–Longton, Allen–Cunneen) are not oracles.
                return None;
            }
            model.arrival_rate * second_moment(model) / (2.0 * (1.0 - rho))
        }
        (ArrivalKind::Deterministic, ServiceKind::Deterministic) => 0.0,
        (ArrivalKind::Deterministic, ServiceKind::Exponential | ServiceKind::General) => {
            // G/M/c and G/G/c need the root of a transform equation or
            // remain open; not a closed form.
            return None;
        }
    };
    Some(with_littles_law(model, mean_wait, rho))
}

/// Steady-state end-to-end metrics of `stations` identical stations in
/// series, each customer visiting every station once.
///
/// Burke's theorem says the departure process of a stable M/M/c queue is
/// again Poisson at rate λ, so every station of an M/M/c tandem sees Poisson
/// arrivals and behaves as its own M/M/c queue (the open Jackson network
/// result). Means add by linearity, so with K stations W, Wq, L and Lq are K
/// times the single-station values, and the per-server utilisation is
/// unchanged.
///
/// A D/D/c tandem is also exact: with no waiting, each station's departures
/// are its arrivals shifted by E\[S\], still evenly spaced at 1/λ, so every
/// station is the same D/D/c queue with Wq = 0.
///
/// For K = 1 this is [`station`]. For K > 1 every other model returns `None`:
/// Burke's theorem needs exponential service, and without it the second
/// station's arrivals are not Poisson (nor even renewal), so the single-station
/// formulas do not apply downstream. Zero stations, invalid inputs and
/// unstable stations also give `None`.
pub fn tandem(model: &StationModel, stations: u32) -> Option<Metrics> {
    match stations {
        0 => return None,
        1 => return station(model),
        _ => {}
    }
    let product_form = matches!(
        (model.arrivals, model.service),
        (ArrivalKind::Poisson, ServiceKind::Exponential)
            | (ArrivalKind::Deterministic, ServiceKind::Deterministic)
    );
    if !product_form {
        return None;
    }
    let one = station(model)?;
    let count = f64::from(stations);
    Some(Metrics {
        mean_time_in_system: count * one.mean_time_in_system,
        mean_wait: count * one.mean_wait,
        mean_queue_length: count * one.mean_queue_length,
        mean_number_in_system: count * one.mean_number_in_system,
        utilisation: one.utilisation,
    })
}

/// Rejects models that do not describe a real station, so the formulas never
/// see a zero server count, a negative rate or an impossible variance.
fn is_valid(model: &StationModel) -> bool {
    let rate_ok = model.arrival_rate.is_finite() && model.arrival_rate >= 0.0;
    let mean_ok = model.service_mean.is_finite() && model.service_mean > 0.0;
    let moment_ok = match model.service {
        ServiceKind::Exponential | ServiceKind::Deterministic => true,
        // E[S²] = Var[S] + E[S]² ≥ E[S]². The small relative slack admits a
        // moment estimated from samples that lands an ulp or two below.
        ServiceKind::General => {
            let floor = model.service_mean * model.service_mean * (1.0 - 1e-9);
            model.service_second_moment.is_finite() && model.service_second_moment >= floor
        }
    };
    model.servers >= 1 && rate_ok && mean_ok && moment_ok
}

/// The service time's E\[S²\], implied by the kind where the kind fixes it.
fn second_moment(model: &StationModel) -> f64 {
    match model.service {
        ServiceKind::Exponential => 2.0 * model.service_mean * model.service_mean,
        ServiceKind::Deterministic => model.service_mean * model.service_mean,
        ServiceKind::General => model.service_second_moment,
    }
}

/// Completes the metrics from the mean wait: W = Wq + E\[S\], then Little's
/// law for the counts, which holds for any stable queue.
fn with_littles_law(model: &StationModel, mean_wait: f64, rho: f64) -> Metrics {
    let mean_time_in_system = mean_wait + model.service_mean;
    Metrics {
        mean_time_in_system,
        mean_wait,
        mean_queue_length: model.arrival_rate * mean_wait,
        mean_number_in_system: model.arrival_rate * mean_time_in_system,
        utilisation: rho,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Relative closeness, so one tolerance serves values from 1e-3 to 1e3.
    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance * expected.abs().max(1.0)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(close(actual, expected, 1e-12), "actual {actual}, expected {expected}");
    }

    #[test]
    fn mm1_at_ninety_percent_matches_the_textbook() {
        // Goal: pin M/M/1 with λ = 0.9, μ = 1 to W = 10, Wq = 9, Lq = 8.1, L = 9.
        let metrics = station(&StationModel::mmc(0.9, 1.0, 1)).unwrap();
        assert_close(metrics.mean_time_in_system, 10.0);
        assert_close(metrics.mean_wait, 9.0);
        assert_close(metrics.mean_queue_length, 8.1);
        assert_close(metrics.mean_number_in_system, 9.0);
        assert_close(metrics.utilisation, 0.9);
    }

    #[test]
    fn mmc_with_one_server_is_mm1() {
        // Goal: the Erlang C path at c = 1 reduces to Wq = ρ/(μ − λ) over a range of loads.
        for step in 0..100 {
            let service_rate = 2.5;
            let arrival_rate = service_rate * f64::from(step) / 100.0;
            let metrics = station(&StationModel::mmc(arrival_rate, 1.0 / service_rate, 1)).unwrap();
            let rho = arrival_rate / service_rate;
            assert_close(metrics.mean_wait, rho / (service_rate - arrival_rate));
            assert_close(metrics.mean_time_in_system, 1.0 / (service_rate - arrival_rate));
        }
    }

    #[test]
    fn erlang_c_known_values() {
        // Goal: spot-check Erlang C: c = 2, a = 1 gives 1/3, and c = 1 gives C = a.
        assert_close(erlang_c(2, 1.0), 1.0 / 3.0);
        assert_close(erlang_c(1, 0.25), 0.25);
        assert_close(erlang_c(1, 0.9), 0.9);
        assert_eq!(erlang_c(3, 0.0), 0.0);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        assert_eq!(erlang_c(3, 7.5), 1.0);
        assert!(erlang_c(3, -1.0).is_nan());
        assert!(erlang_c(3, f64::NAN).is_nan());
    }

    #[test]
    fn erlang_c_matches_the_textbook_sum_for_small_c() {
        // Goal: the Erlang B recursion agrees with the direct aᶜ/c! formula where that does not overflow.
        for servers in 1..=12_u32 {
            for tenth in 1..(10 * servers) {
                let load = f64::from(tenth) / 10.0;
                let mut term = 1.0; // aᵏ/k!
                let mut sum = 0.0; // Σ_{k<c} aᵏ/k!
                for k in 0..servers {
                    sum += term;
                    term *= load / f64::from(k + 1);
                }
                let c = f64::from(servers);
                let tail = term * c / (c - load);
                let expected = tail / (sum + tail);
                let actual = erlang_c(servers, load);
                assert!(
                    close(actual, expected, 1e-10),
                    "c={servers} a={load}: {actual} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn erlang_c_is_stable_for_a_thousand_servers() {
        // Goal: c = 1000 gives finite probabilities that rise with load, where aᶜ/c! would overflow.
        let mut previous = 0.0;
        for load in [500.0, 900.0, 950.0, 990.0, 999.0, 999.9] {
            let probability = erlang_c(1000, load);
            assert!(probability.is_finite());
            assert!((0.0..=1.0).contains(&probability));
            assert!(probability >= previous, "a={load}: {probability} < {previous}");
            previous = probability;
        }
        // Reference from the direct formula in 50-digit arithmetic (mpmath).
        assert!(close(erlang_c(1000, 999.0), 0.961_239_260_408_419_1, 1e-12));
        // Far below capacity, waiting is vanishingly rare.
        assert!(erlang_c(1000, 500.0) < 1e-50);
    }

    #[test]
    fn md1_waits_half_as_long_as_mm1() {
        // Goal: by Pollaczek–Khinchine, halving Var[S]'s contribution halves Wq at the same ρ.
        for rho in [0.1, 0.5, 0.8, 0.99] {
            let mm1 = station(&StationModel::mmc(rho, 1.0, 1)).unwrap();
            let md1 = station(&StationModel::mdc(rho, 1.0, 1)).unwrap();
            assert_close(md1.mean_wait, mm1.mean_wait / 2.0);
            assert_close(md1.mean_queue_length, mm1.mean_queue_length / 2.0);
        }
    }

    #[test]
    fn pollaczek_khinchine_with_exponential_moment_is_mm1() {
        // Goal: M/G/1 with E[S²] = 2/μ² reproduces every M/M/1 metric.
        let service_rate = 4.0;
        let service_mean = 1.0 / service_rate;
        for arrival_rate in [0.4, 2.0, 3.6, 3.96] {
            let general = StationModel::mgc(
                arrival_rate,
                service_mean,
                2.0 / (service_rate * service_rate),
                1,
            );
            let pk = station(&general).unwrap();
            let mm1 = station(&StationModel::mmc(arrival_rate, service_mean, 1)).unwrap();
            assert_close(pk.mean_wait, mm1.mean_wait);
            assert_close(pk.mean_time_in_system, mm1.mean_time_in_system);
            assert_close(pk.mean_queue_length, mm1.mean_queue_length);
            assert_close(pk.mean_number_in_system, mm1.mean_number_in_system);
            assert_close(pk.utilisation, mm1.utilisation);
        }
    }

    #[test]
    fn ddc_never_waits() {
        // Goal: a stable D/D/c has Wq = 0, W = E[S], and L = λE[S] busy servers on average.
        let metrics = station(&StationModel::ddc(7.0, 0.4, 3)).unwrap();
        assert_eq!(metrics.mean_wait, 0.0);
        assert_eq!(metrics.mean_queue_length, 0.0);
        assert_close(metrics.mean_time_in_system, 0.4);
        assert_close(metrics.mean_number_in_system, 2.8);
        assert_close(metrics.utilisation, 7.0 * 0.4 / 3.0);
    }

    #[test]
    fn unstable_stations_have_no_steady_state() {
        // Goal: ρ ≥ 1 gives None for every model, at exactly 1 and above.
        for arrival_rate in [1.0, 1.5] {
            assert_eq!(station(&StationModel::mmc(arrival_rate, 1.0, 1)), None);
            assert_eq!(station(&StationModel::mdc(arrival_rate, 1.0, 1)), None);
            assert_eq!(station(&StationModel::mgc(arrival_rate, 1.0, 3.0, 1)), None);
            assert_eq!(station(&StationModel::ddc(arrival_rate, 1.0, 1)), None);
            assert_eq!(station(&StationModel::mmc(4.0 * arrival_rate, 1.0, 4)), None);
            assert_eq!(station(&StationModel::ddc(4.0 * arrival_rate, 1.0, 4)), None);
            assert_eq!(tandem(&StationModel::mmc(arrival_rate, 1.0, 1), 3), None);
        }
    }

    #[test]
    fn models_without_a_closed_form_return_none() {
        // Goal: M/G/c with c > 1, and deterministic arrivals with random service, are refused.
        assert_eq!(station(&StationModel::mdc(1.0, 1.0, 2)), None);
        assert_eq!(station(&StationModel::mgc(1.0, 1.0, 3.0, 2)), None);
        let mut dm1 = StationModel::mmc(0.5, 1.0, 1);
        dm1.arrivals = ArrivalKind::Deterministic;
        assert_eq!(station(&dm1), None);
        let mut dg1 = StationModel::mgc(0.5, 1.0, 3.0, 1);
        dg1.arrivals = ArrivalKind::Deterministic;
        assert_eq!(station(&dg1), None);
    }

    #[test]
    fn invalid_models_return_none() {
        // Goal: nonsense inputs (no servers, bad rates, impossible variance) never reach a formula.
        assert_eq!(station(&StationModel::mmc(0.5, 1.0, 0)), None);
        assert_eq!(station(&StationModel::mmc(-0.5, 1.0, 1)), None);
        assert_eq!(station(&StationModel::mmc(f64::NAN, 1.0, 1)), None);
        assert_eq!(station(&StationModel::mmc(0.5, 0.0, 1)), None);
        assert_eq!(station(&StationModel::mmc(0.5, f64::INFINITY, 1)), None);
        assert_eq!(station(&StationModel::mgc(0.5, 1.0, 0.5, 1)), None);
        assert_eq!(station(&StationModel::mgc(0.5, 1.0, f64::NAN, 1)), None);
        // A zero-variance general service is just M/D/1.
        assert_eq!(
            station(&StationModel::mgc(0.5, 1.0, 1.0, 1)),
            station(&StationModel::mdc(0.5, 1.0, 1))
        );
    }

    #[test]
    fn no_arrivals_means_no_queue() {
        // Goal: λ = 0 is a valid idle station: W = E[S], nothing waits, nobody is present.
        let metrics = station(&StationModel::mmc(0.0, 0.3, 2)).unwrap();
        assert_eq!(metrics.mean_wait, 0.0);
        assert_close(metrics.mean_time_in_system, 0.3);
        assert_eq!(metrics.mean_number_in_system, 0.0);
        assert_eq!(metrics.utilisation, 0.0);
    }

    #[test]
    fn tandem_of_one_is_a_station() {
        // Goal: K = 1 gives exactly `station`, for every model, including those refused for K > 1.
        for model in [
            StationModel::mmc(0.7, 1.0, 1),
            StationModel::mmc(2.5, 1.0, 3),
            StationModel::mdc(0.7, 1.0, 1),
            StationModel::mgc(0.7, 1.0, 4.0, 1),
            StationModel::ddc(2.5, 1.0, 3),
        ] {
            assert_eq!(tandem(&model, 1), station(&model));
        }
    }

    #[test]
    fn mmc_tandem_scales_every_mean_by_k() {
        // Goal: by Burke's theorem K M/M/c stations in series have K times the means and the same ρ.
        let model = StationModel::mmc(2.5, 1.0, 3);
        let one = station(&model).unwrap();
        let five = tandem(&model, 5).unwrap();
        assert_close(five.mean_time_in_system, 5.0 * one.mean_time_in_system);
        assert_close(five.mean_wait, 5.0 * one.mean_wait);
        assert_close(five.mean_queue_length, 5.0 * one.mean_queue_length);
        assert_close(five.mean_number_in_system, 5.0 * one.mean_number_in_system);
        assert_eq!(five.utilisation, one.utilisation);
        // Little's law still holds end to end.
        assert_close(five.mean_number_in_system, model.arrival_rate * five.mean_time_in_system);
    }

    #[test]
    fn tandem_refuses_non_markovian_chains() {
        // Goal: K > 1 without Burke's theorem is None, except D/D/c, which never waits anywhere.
        assert_eq!(tandem(&StationModel::mdc(0.5, 1.0, 1), 2), None);
        assert_eq!(tandem(&StationModel::mgc(0.5, 1.0, 2.0, 1), 2), None);
        assert_eq!(tandem(&StationModel::mmc(0.5, 1.0, 1), 0), None);
        let dd = tandem(&StationModel::ddc(2.0, 1.0, 3), 4).unwrap();
        assert_eq!(dd.mean_wait, 0.0);
        assert_close(dd.mean_time_in_system, 4.0);
        assert_close(dd.mean_number_in_system, 8.0);
    }

    proptest! {
        // Goal: for any stable M/M/c, Little's law (L = λW, Lq = λWq) and W = Wq + E[S] hold,
        // and Wq never falls as λ rises with everything else fixed.
        #[test]
        fn mmc_obeys_littles_law_and_waits_grow_with_load(
            servers in 1_u32..=64,
            service_mean in 1e-3_f64..10.0,
            rho_low in 0.0_f64..0.995,
            rho_step in 0.0_f64..1.0,
        ) {
            let rho_high = rho_low + rho_step * (0.995 - rho_low);
            let capacity = f64::from(servers) / service_mean;
            let low = StationModel::mmc(rho_low * capacity, service_mean, servers);
            let high = StationModel::mmc(rho_high * capacity, service_mean, servers);
            let low_metrics = station(&low).unwrap();
            let high_metrics = station(&high).unwrap();
            for (model, metrics) in [(low, low_metrics), (high, high_metrics)] {
                prop_assert!(close(metrics.mean_number_in_system, model.arrival_rate * metrics.mean_time_in_system, 1e-12));
                prop_assert!(close(metrics.mean_queue_length, model.arrival_rate * metrics.mean_wait, 1e-12));
                prop_assert!(close(metrics.mean_time_in_system, metrics.mean_wait + service_mean, 1e-12));
                prop_assert!(metrics.mean_wait >= 0.0);
                prop_assert!(metrics.utilisation < 1.0);
            }
            // Rounding can nudge equal loads apart by an ulp, hence the tiny slack.
            prop_assert!(
                high_metrics.mean_wait >= low_metrics.mean_wait * (1.0 - 1e-12),
                "Wq fell from {} to {} as ρ rose from {} to {}",
                low_metrics.mean_wait, high_metrics.mean_wait, rho_low, rho_high
            );
        }

        // Goal: Erlang C is a probability, rising with load and falling as servers are added.
        #[test]
        fn erlang_c_is_a_monotone_probability(servers in 1_u32..=200, fraction in 0.0_f64..1.0) {
            let load = fraction * f64::from(servers);
            let probability = erlang_c(servers, load);
            prop_assert!((0.0..=1.0).contains(&probability));
            prop_assert!(erlang_c(servers + 1, load) <= probability * (1.0 + 1e-12));
            let higher = load + 0.5 * (f64::from(servers) - load);
            prop_assert!(erlang_c(servers, higher) >= probability * (1.0 - 1e-12));
        }
    }
}
