//! `rlab queue` and `scenarios::queueing`: simulated stations reproduce
//! queueing theory, deterministically, and bad input is refused cleanly.
//!
//! Customer counts are chosen so the whole module runs in about a second
//! of a debug build (see `check_queue`'s callers); seeds are fixed, so
//! nothing here can flake.

use scenarios::queueing::theory::ArrivalKind;
use scenarios::queueing::{self, QueueParams, QueueReport, Service};
use serde_json::Value;
use sim::Seed;
use std::process::{Command, Output};

/// M/M/1 with λ = 0.5, μ = 1 and `customers` customers; the base of most
/// cases below.
fn mm1(lambda: f64, customers: u64) -> QueueParams {
    QueueParams {
        arrivals: ArrivalKind::Poisson,
        lambda,
        service: Service::Exponential,
        mu: 1.0,
        servers: 1,
        customers,
        stations: 1,
    }
}

/// Runs `params` with `seed` and checks the run against theory: the 95% CI
/// of W contains theory's W, the measured utilisation is within 3% of
/// λ/(cμ), and Little's law (time-average L against throughput × W) holds
/// within 5%. Returns the report for further checks.
fn check_queue(params: QueueParams, seed: u64) -> QueueReport {
    let report = queueing::run(&params, Seed(seed)).expect("a valid, stable model");
    let theory = params.theory().expect("the model has a closed form");
    let ci = report.ci95_time_in_system;
    let context = format!(
        "{} λ={} K={} seed={seed}: W {:.4} CI [{:.4}, {:.4}], theory {:.4}",
        params.kendall(),
        params.lambda,
        params.stations,
        report.mean_time_in_system,
        ci.low,
        ci.high,
        theory.mean_time_in_system
    );
    assert!(ci.contains(theory.mean_time_in_system), "{context}: theory outside the 95% CI");
    let rho = params.offered_utilisation();
    assert!(
        (report.utilisation / rho - 1.0).abs() < 0.03,
        "{context}: utilisation {} vs ρ {rho}",
        report.utilisation
    );
    let little = report.little;
    assert!(
        (little.l / little.lambda_w - 1.0).abs() < 0.05,
        "{context}: Little's law, L {} vs λW {}",
        little.l,
        little.lambda_w
    );
    report
}

#[test]
fn single_stations_match_closed_forms() {
    // Goal: the engine's station primitive (cores as servers, the ready
    // queue as the waiting line) reproduces M/M/1, M/M/c with Erlang C,
    // M/D/1 and M/G/1 by Pollaczek-Khinchine. Method: check_queue per case.
    let cases = [
        mm1(0.5, 20_000),
        mm1(0.8, 50_000),
        QueueParams { lambda: 2.4, servers: 3, ..mm1(0.5, 30_000) },
        QueueParams { lambda: 0.7, service: Service::Deterministic, ..mm1(0.5, 20_000) },
        // cv = 2 gives a heavy tail (E[S⁴] = 625·E[S]⁴), so W converges
        // slowly and needs the most customers.
        QueueParams { lambda: 0.6, service: Service::LogNormal { cv: 2.0 }, ..mm1(0.5, 100_000) },
        QueueParams { lambda: 0.7, service: Service::Uniform, ..mm1(0.5, 30_000) },
    ];
    for params in cases {
        check_queue(params, 1);
    }
}

#[test]
fn mm1_tandem_matches_jackson() {
    // Goal: three M/M/1 stations in series behave as three independent
    // M/M/1 queues (Burke, Jackson): W = 3/(μ − λ) = 6 s at λ = 0.5.
    let report = check_queue(QueueParams { stations: 3, ..mm1(0.5, 30_000) }, 1);
    let theory = report.theory.expect("M/M/1 tandems have a closed form");
    assert_eq!(theory.mean_time_in_system, 6.0);
}

#[test]
fn deterministic_queue_never_waits() {
    // Goal: D/D/1 is exact: nobody waits, every customer spends exactly 1/μ,
    // and the interval collapses to that point.
    let params = QueueParams {
        arrivals: ArrivalKind::Deterministic,
        service: Service::Deterministic,
        ..mm1(0.9, 1_000)
    };
    let report = check_queue(params, 1);
    assert_eq!(report.mean_wait, 0.0);
    assert_eq!(report.mean_queue_length, 0.0);
    assert_eq!(report.mean_time_in_system, 1.0);
    assert_eq!(report.ci95_time_in_system.half_width(), 0.0);
}

#[test]
fn batch_means_interval_covers_mm1_theory_about_95_percent_of_the_time() {
    // Goal: a real coverage check of the whole chain (simulation, warm-up,
    // batch means). Method: 20 seeds of M/M/1 at λ = 0.5 with 10,000
    // customers each; at least 15 intervals must contain W = 2 (a correct
    // 95% interval misses more than 5 of 20 with probability 0.3%). The
    // intervals must also be honest in width: their mean half-width must
    // match 1.96 times the seed-to-seed spread of W, so an interval made
    // needlessly wide cannot pass either.
    let reports: Vec<QueueReport> =
        (100..120).map(|seed| queueing::run(&mm1(0.5, 10_000), Seed(seed)).unwrap()).collect();
    let covered = reports.iter().filter(|r| r.ci95_time_in_system.contains(2.0)).count();
    assert!(covered >= 15, "only {covered} of 20 intervals contain W = 2");
    let estimates: Vec<f64> = reports.iter().map(|r| r.mean_time_in_system).collect();
    let spread = 1.96 * scenarios::stats::sample_variance(&estimates).sqrt();
    let half_width = scenarios::stats::mean(
        &reports.iter().map(|r| r.ci95_time_in_system.half_width()).collect::<Vec<_>>(),
    );
    let ratio = half_width / spread;
    assert!((0.6..1.6).contains(&ratio), "mean half-width {half_width} vs 1.96·sd {spread}");
}

#[test]
fn same_seed_same_trace_and_different_seed_different_trace() {
    // Goal: a run is a pure function of (params, seed), and the seed matters.
    let params = QueueParams { servers: 2, stations: 2, lambda: 1.2, ..mm1(0.5, 2_000) };
    let first = queueing::run(&params, Seed(9)).unwrap();
    let again = queueing::run(&params, Seed(9)).unwrap();
    let other = queueing::run(&params, Seed(10)).unwrap();
    assert_eq!(first, again);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn small_mm1_run_has_a_pinned_trace_hash() {
    // Goal: pin the trace of one small run, so any change to the engine or
    // the model that alters behaviour shows up here; the same value comes
    // out of `cargo run --release -- queue --lambda 0.5 --mu 1
    // --customers 1000 --seed 1 --json` (the debug/release promise).
    let report = queueing::run(&mm1(0.5, 1_000), Seed(1)).unwrap();
    insta::assert_snapshot!(report.trace_hash.to_string(), @"11bcdf3e7d0ea81f");
    assert_eq!(report.events, 4_003, "per customer: a timer, two deliveries, one piece of work");
}

#[test]
fn library_refuses_bad_models_naming_the_flag() {
    // Goal: validation names the flag, the value and what is allowed.
    let cases = [
        (QueueParams { lambda: -1.0, ..mm1(0.5, 1_000) }, "--lambda -1 is not allowed"),
        (QueueParams { mu: f64::NAN, ..mm1(0.5, 1_000) }, "--mu NaN is not allowed"),
        (
            QueueParams { mu: 1e9, lambda: 1.0, ..mm1(0.5, 1_000) },
            "--mu 1000000000 is out of range",
        ),
        (QueueParams { service: Service::LogNormal { cv: 0.0 }, ..mm1(0.5, 1_000) }, "--cv 0"),
        (
            QueueParams { servers: 0, ..mm1(0.5, 1_000) },
            "--servers 0 is out of range: expected 1 to 1024",
        ),
        (mm1(0.5, 10), "--customers 10 is out of range: expected 100 to 100000000"),
        (
            QueueParams { stations: 65, ..mm1(0.5, 1_000) },
            "--stations 65 is out of range: expected 1 to 64",
        ),
        (
            QueueParams { lambda: 0.001, mu: 1.0, ..mm1(0.5, 100_000_000) },
            "spans about 1.000e11 s of simulated time",
        ),
        (
            mm1(1.0, 1_000),
            "gives utilisation 1.000; a stable queue needs lambda < servers × mu (1)",
        ),
    ];
    for (params, expected) in cases {
        let message = queueing::run(&params, Seed(1)).unwrap_err();
        assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        assert!(!message.contains('\n'), "{message:?} is one line");
    }
}

// ----- the command line -----

fn rlab_queue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlab"))
        .arg("queue")
        .args(args)
        .output()
        .expect("the rlab binary runs")
}

/// Checks that `args` are refused with exit status 2, nothing on stdout and
/// one line on stderr containing each of `expected`.
fn check_refused(args: &[&str], expected: &[&str]) {
    let output = rlab_queue(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: {stderr:?} should contain {text:?}");
    }
}

#[test]
fn cli_json_has_every_field_and_null_theory_without_closed_form() {
    // Goal: `--json` prints one object with the documented fields; a model
    // with no exact formula (deterministic arrivals, exponential service)
    // says so with `"theory": null`.
    let base = ["--lambda", "0.5", "--mu", "1", "--customers", "1000", "--seed", "3", "--json"];
    let parse = |extra: &[&str]| -> Value {
        let output = rlab_queue(&[&base[..], extra].concat());
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stderr.is_empty(), "nothing on stderr when the seed is given");
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
    };
    let json = parse(&[]);
    for key in [
        "mean_time_in_system",
        "mean_wait",
        "mean_queue_length",
        "mean_number_in_system",
        "utilisation",
        "throughput",
        "events",
        "seed",
        "warmup_customers",
    ] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    let ci = json["ci95_time_in_system"].as_array().expect("an array");
    assert_eq!(ci.len(), 2);
    assert!(ci[0].as_f64() <= json["mean_time_in_system"].as_f64());
    assert_eq!(json["trace_hash"].as_str().map(str::len), Some(16));
    assert_eq!(json["seed"], 3);
    assert_eq!(json["theory"]["mean_time_in_system"], 2.0);
    assert!(json["theory"]["utilisation"].is_number());

    let json = parse(&["--arrivals", "deterministic"]);
    assert!(json["theory"].is_null(), "D/M/1 has no closed form: {json}");
    let json = parse(&["--service", "lognormal", "--cv", "0.5", "--stations", "2"]);
    assert!(json["theory"].is_null(), "an M/G/1 tandem has no closed form: {json}");
}

#[test]
fn cli_picks_and_prints_a_seed_when_none_is_given() {
    // Goal: without --seed the seed is printed first (so the run can be
    // replayed) and the table names it again.
    let output = rlab_queue(&["--lambda", "0.5", "--mu", "1", "--customers", "1000"]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let seed = stderr.strip_prefix("seed=").expect("stderr starts with seed=").trim();
    seed.parse::<u64>().expect("a u64 seed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("seed={seed}")), "{stdout}");
    assert!(stdout.contains("mean time in system W"), "{stdout}");
}

#[test]
fn cli_refuses_bad_input_with_one_line_and_status_2() {
    // Goal: every kind of bad value gets one line naming the flag, exit 2.
    let stable = ["--mu", "1", "--customers", "1000"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [&stable[..], extra].concat() };
    check_refused(
        &with(&["--lambda", "2"]),
        &["--lambda 2", "utilisation 2.000", "lambda < servers × mu (1)"],
    );
    check_refused(&with(&["--lambda=-1"]), &["--lambda -1", "rate > 0"]);
    check_refused(&with(&["--lambda", "0"]), &["--lambda 0", "rate > 0"]);
    check_refused(&with(&["--lambda", "fast"]), &["'fast'", "--lambda"]);
    check_refused(&with(&["--lambda", "0.5", "--service", "foo"]), &["'foo'", "--service"]);
    check_refused(
        &with(&["--lambda", "0.5", "--service", "lognormal"]),
        &["--service lognormal needs --cv"],
    );
    check_refused(
        &with(&["--lambda", "0.5", "--cv", "2"]),
        &["--cv 2 is only allowed with --service lognormal"],
    );
    check_refused(&with(&["--lambda", "0.5", "--servers", "0"]), &["--servers 0", "1 to 1024"]);
    check_refused(
        &with(&["--lambda", "0.5", "--stations", "1000"]),
        &["--stations 1000", "1 to 64"],
    );
    check_refused(
        &["--lambda", "0.5", "--mu", "1", "--customers", "1000000000000"],
        &["--customers 1000000000000", "100 to 100000000"],
    );
    // The spaced spelling of a negative value reaches validation too.
    check_refused(&with(&["--lambda", "-1"]), &["--lambda -1", "> 0"]);
    // clap's own errors are folded into one line that still says what is
    // allowed or what is missing.
    check_refused(&with(&["--service", "foo"]), &["--service", "possible values"]);
}
