//! Charts over simulated time: the timeline a run gathers agrees with its
//! report, shows what the scenario did (the breaker opening during the
//! gateway outage), draws to a pinned SVG, and `rlab plot` / `--plots`
//! write real PNG and SVG files or refuse bad input with exit status 2.

use scenarios::report::Outcome;
use scenarios::scenario::{Architecture, Scenario};
use scenarios::timeline::{
    BreakerPhase, BreakerTimeline, BreakerTransition, Bucket, CountSeries, FaultWindow,
    Percentiles, QueueKind, QueueSeries, Timeline,
};
use std::path::{Path, PathBuf};
use visualize::charts::render_svg_string;
use visualize::charts::timeline::{TimelineChart, TimelineKind};

use crate::support::rlab;

fn scratch(name: &str) -> PathBuf {
    // Charts' tests check that files appear: clear what an earlier run left.
    let path = crate::support::scratch("charts", name);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn load(name: &str, overrides: &[&str]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
    let overrides: Vec<String> = overrides.iter().map(ToString::to_string).collect();
    scenarios::file::load(&path, &overrides).unwrap_or_else(|errors| panic!("{name}: {errors:?}"))
}

/// The width and height a PNG's header declares, if `bytes` is a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    if bytes.len() < 24 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    Some((number(16), number(20)))
}

/// Goal: the timeline counts what the report counts. Method: a short
/// baseline run of every architecture; the buckets up to the end of the
/// arrival window hold exactly the completions the throughput counts,
/// every request is placed in one bucket and ends in one, and the
/// compensations sampled add up to the report's.
#[test]
fn a_timeline_sums_to_its_report() {
    let scenario = load("baseline", &["duration_s=8", "drain_s=4"]);
    let outcomes: Vec<Outcome> = scenarios::run::compare(&scenario, 7);
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
        let timeline = &outcome.timeline;
        let name = outcome.architecture.name();
        assert_eq!(timeline.architecture, outcome.architecture);
        assert_eq!((timeline.seed, timeline.scenario.as_str()), (7, "baseline"));
        // 12 s of run in buckets of 100 ms (the narrowest width).
        assert_eq!(timeline.bucket_s, 0.1, "{name}");
        assert_eq!(timeline.buckets.len(), 120, "{name}");
        let in_window: u64 = timeline
            .buckets
            .iter()
            .filter(|bucket| bucket.end_s <= timeline.arrivals_end_s + 1e-9)
            .map(|bucket| bucket.completed)
            .sum();
        let counted = (outcome.throughput * 8.0).round() as u64;
        assert_eq!(in_window, counted, "{name}: completions in the arrival window");
        assert!(in_window > 100, "{name}: the run did some work");
        let placed: u64 = timeline.buckets.iter().map(|bucket| bucket.placed).sum();
        assert_eq!(placed, outcome.orders.requested, "{name}: placed");
        let ended: u64 = timeline
            .buckets
            .iter()
            .map(|bucket| bucket.completed + bucket.cancelled + bucket.failed + bucket.timed_out)
            .sum();
        // A calm baseline with a drain answers every request.
        assert_eq!(ended, outcome.orders.requested, "{name}: every request ended once");
        let compensations: u64 = timeline.buckets.iter().map(|bucket| bucket.compensations).sum();
        assert_eq!(compensations, outcome.compensations, "{name}: compensations");
        for bucket in &timeline.buckets {
            if let Some(latency) = bucket.latency_ms {
                assert!(latency.p50 <= latency.p95 && latency.p95 <= latency.p99);
                assert!(latency.p99 <= outcome.latency_ms.max, "{name}: bucket p99 above the max");
            }
        }
        assert_eq!(timeline.breaker.is_some(), outcome.architecture == Architecture::Reactive);
        assert_eq!(
            timeline.read_model.is_some(),
            outcome.architecture == Architecture::Microsystem
        );
        assert!(!timeline.queues.is_empty(), "{name}: queues are sampled");
    }
}

/// Goal: the breaker band tells the lesson of the gateway outage. Method:
/// the reactive microlith on `gateway-outage.toml` (gateway down from 20 s
/// to 40 s); the timeline's breaker is closed before the outage, opens
/// within a few seconds of it, stays away from closed while the gateway
/// is down, and is closed again at the end.
#[test]
fn the_breaker_band_is_open_during_the_gateway_outage() {
    let scenario = load("gateway-outage", &[]);
    let outcome = scenarios::run::run(
        &scenario,
        Architecture::Reactive,
        scenario.seed,
        &mut Default::default(),
    );
    let timeline = &outcome.timeline;
    let breaker = timeline.breaker.as_ref().expect("the reactive microlith has a breaker");
    assert_eq!(breaker.transitions.len() as u64, outcome.breaker_transitions);
    let first_open = breaker
        .transitions
        .iter()
        .find(|transition| transition.to == BreakerPhase::Open)
        .expect("the breaker opened");
    assert!((20.0..25.0).contains(&first_open.at_s), "opened at {}", first_open.at_s);
    assert_eq!(breaker.state_at(19.9), BreakerPhase::Closed);
    let mut instant = first_open.at_s + 0.01;
    while instant < 40.0 {
        assert_ne!(breaker.state_at(instant), BreakerPhase::Closed, "closed at {instant} s");
        instant += 0.25;
    }
    assert_eq!(breaker.state_at(timeline.end_s), BreakerPhase::Closed);
    // The gateway took no calls while the breaker was open, and the
    // fallback failed calls fast instead.
    let calls = &breaker.counts[0];
    let fast = &breaker.counts[1];
    assert_eq!((calls.name.as_str(), fast.name.as_str()), ("gateway calls", "failed fast"));
    let during = |series: &CountSeries| -> u64 {
        timeline
            .buckets
            .iter()
            .zip(&series.values)
            .filter(|(bucket, _)| bucket.start_s >= 21.0 && bucket.end_s <= 40.0)
            .map(|(_, count)| count)
            .sum()
    };
    assert!(during(fast) > 10 * during(calls), "fast {} calls {}", during(fast), during(calls));
    assert_eq!(timeline.fault_windows.len(), 1);
    assert_eq!(timeline.fault_windows[0].end_s, Some(40.0));
}

fn small_timeline(architecture: Architecture) -> Timeline {
    let bucket = |index: u64, completed: u64, failed: u64, latency: Option<f64>| Bucket {
        start_s: index as f64,
        end_s: index as f64 + 1.0,
        placed: completed + failed,
        completed,
        cancelled: 0,
        failed,
        timed_out: 0,
        latency_ms: latency.map(|p50| Percentiles { p50, p95: p50 * 2.0, p99: p50 * 4.0 }),
        compensations: failed,
    };
    Timeline {
        scenario: "hand-made".to_string(),
        architecture,
        seed: 42,
        bucket_s: 1.0,
        arrivals_end_s: 4.0,
        end_s: 4.0,
        buckets: vec![
            bucket(0, 10, 0, Some(50.0)),
            bucket(1, 2, 8, Some(900.0)),
            bucket(2, 0, 0, None),
            bucket(3, 9, 1, Some(60.0)),
        ],
        queues: vec![QueueSeries {
            name: "payments threads".to_string(),
            kind: QueueKind::Pool,
            values: vec![0.0, 12.5, 3.0, 0.0],
        }],
        breaker: (architecture == Architecture::Reactive).then(|| BreakerTimeline {
            transitions: vec![
                BreakerTransition { at_s: 1.2, from: BreakerPhase::Closed, to: BreakerPhase::Open },
                BreakerTransition {
                    at_s: 2.5,
                    from: BreakerPhase::Open,
                    to: BreakerPhase::HalfOpen,
                },
                BreakerTransition {
                    at_s: 2.8,
                    from: BreakerPhase::HalfOpen,
                    to: BreakerPhase::Closed,
                },
            ],
            counts: vec![CountSeries {
                name: "gateway calls".to_string(),
                values: vec![10, 3, 1, 9],
            }],
        }),
        read_model: None,
        fault_windows: vec![FaultWindow {
            start_s: 1.0,
            end_s: Some(2.5),
            label: "gateway down".to_string(),
        }],
        faults_fired: Vec::new(),
    }
}

/// Goal: a chart's SVG is stable and carries its title, axis labels with
/// units, legend and fault label. Method: a hand-made four-bucket timeline
/// of two architectures drawn as the breaker chart (band, counts, a
/// panel with the "no breaker" note), pinned with insta after review.
#[test]
fn a_small_breaker_chart_is_pinned() {
    let timelines =
        [small_timeline(Architecture::Microlith), small_timeline(Architecture::Reactive)];
    let svg = render_svg_string(&TimelineChart::new(TimelineKind::Breaker, &timelines), (640, 560))
        .unwrap();
    for text in [
        "hand-made: circuit breaker (microlith, reactive, seed 42)",
        "simulated time (s)",
        "calls per second",
        "no circuit breaker in this architecture",
        "gateway down",
        "breaker open",
        "gateway calls/s",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }
    insta::assert_snapshot!("small-breaker-chart", svg);
}

/// Goal: every kind draws on a run with and without its data, in both
/// formats, without failing.
#[test]
fn every_chart_draws_for_every_architecture() {
    let timelines = [
        small_timeline(Architecture::Microlith),
        small_timeline(Architecture::Reactive),
        small_timeline(Architecture::Microsystem),
    ];
    for kind in TimelineKind::ALL {
        let chart = TimelineChart::new(kind, &timelines);
        let svg = render_svg_string(&chart, chart.size()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", kind.name());
        let png = visualize::charts::render_png_bytes(&chart, (400, 300)).unwrap();
        assert_eq!(png_size(&png), Some((400, 300)), "{}", kind.name());
        assert_eq!(TimelineKind::parse(kind.name()), Some(kind));
    }
}

/// Goal: `rlab plot` draws a saved run as PNG and SVG, `--chart all`
/// fills a directory, and `run --plots` writes the same charts. Method:
/// check the PNG signature and declared size, and the SVG's root element.
#[test]
fn rlab_plot_writes_png_and_svg() {
    let saved = scratch("reactive.json");
    let saved_arg = saved.to_str().unwrap();
    let output = rlab(&[
        "run",
        "scenarios/baseline.toml",
        "--arch",
        "reactive",
        "--set",
        "duration_s=4",
        "--out",
        saved_arg,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));

    let png = scratch("throughput.png");
    let output =
        rlab(&["plot", saved_arg, "--chart", "throughput", "--out", png.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), Some((1100, 400)));
    assert!(bytes.len() > 10_000, "a real picture, not an empty one");

    let svg = scratch("latency.svg");
    let output = rlab(&["plot", saved_arg, "--chart", "latency", "--out", svg.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("baseline: latency of answered requests (reactive, seed"));

    let dir = scratch("all");
    let output = rlab(&["plot", saved_arg, "--chart", "all", "--out", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    for kind in TimelineKind::ALL {
        let path = dir.join(format!("baseline-reactive-{}.png", kind.name()));
        assert!(png_size(&std::fs::read(&path).unwrap()).is_some(), "{}", path.display());
    }

    let plots = scratch("plots");
    let output = rlab(&[
        "compare",
        "scenarios/baseline.toml",
        "--set",
        "duration_s=3",
        "--plots",
        plots.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::read(plots.join("baseline-queues.png")).unwrap();
    // Three panels, one per architecture.
    assert_eq!(png_size(&bytes), Some((1100, 70 + 3 * 330)));
}

/// Goal: bad input is one line and exit status 2, and leaves no file.
#[test]
fn rlab_plot_refuses_bad_input() {
    let missing = scratch("missing.json");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "plot".into(),
                "Cargo.toml".into(),
                "--chart".into(),
                "nope".into(),
                "--out".into(),
                "x.png".into(),
            ],
            "nope",
        ),
        (
            vec![
                "plot".into(),
                missing.display().to_string(),
                "--chart".into(),
                "latency".into(),
                "--out".into(),
                scratch("x.png").display().to_string(),
            ],
            "cannot read the saved run",
        ),
        (
            vec![
                "plot".into(),
                "Cargo.toml".into(),
                "--chart".into(),
                "latency".into(),
                "--out".into(),
                scratch("x.png").display().to_string(),
            ],
            "not a saved run",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = rlab(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    // A bad extension is refused before anything is written.
    let saved = scratch("for-bad-extension.json");
    let output = rlab(&[
        "run",
        "scenarios/baseline.toml",
        "--arch",
        "microlith",
        "--set",
        "duration_s=2",
        "--out",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let gif = scratch("chart.gif");
    let output = rlab(&[
        "plot",
        saved.to_str().unwrap(),
        "--chart",
        "sagas",
        "--out",
        gif.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("must end in .png or .svg"), "{stderr}");
    assert!(!gif.exists());

    // --plots naming a file, not a directory.
    let output = rlab(&["run", "scenarios/baseline.toml", "--plots", "Cargo.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--plots Cargo.toml: not a directory"), "{stderr}");
}
