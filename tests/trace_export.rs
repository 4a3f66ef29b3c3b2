//! `rlab trace export`: the Chrome JSON, ShiViz log and space-time SVG made
//! from a real run's trace and from a small hand-built one, the window and
//! order filters, and the errors for bad input.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use visualize::export::read::{Trace, read_trace};
use visualize::export::select::{Filter, select};
use visualize::export::{Format, export, lamport_svg, shiviz};

use crate::support::rlab;

fn scratch(name: &str) -> PathBuf {
    crate::support::scratch("trace_export", name)
}

/// One second of the microsystem on the baseline scenario, traced once for
/// every test of this module.
fn run_trace() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| {
        let path = scratch("baseline-microsystem.jsonl");
        let output = rlab(&[
            "run",
            "scenarios/baseline.toml",
            "--arch",
            "microsystem",
            "--set",
            "duration_s=1",
            "--set",
            "drain_s=1",
            "--trace",
            path.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        path
    })
}

/// The trace's lines as plain JSON, read independently of the exporter.
fn raw_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn export_file(args: &[&str], name: &str) -> String {
    let out = scratch(name);
    let mut all =
        vec!["trace", "export", run_trace().to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = rlab(&all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("wrote ") && stdout.contains("messages"), "{stdout}");
    std::fs::read_to_string(out).unwrap()
}

/// Messages delivered within [from, to] whose send is also within it.
fn delivered_within(records: &[Value], from_ns: u64, to_ns: u64) -> usize {
    let within = |r: &&Value| (from_ns..=to_ns).contains(&r["time"].as_u64().unwrap());
    let sent: Vec<u64> = records
        .iter()
        .filter(within)
        .filter(|r| r["event"] == "MessageSent")
        .map(|r| r["message_id"].as_u64().unwrap())
        .collect();
    records
        .iter()
        .filter(within)
        .filter(|r| r["event"] == "MessageDelivered")
        .filter(|r| sent.contains(&r["message_id"].as_u64().unwrap()))
        .count()
}

/// The Chrome JSON parses, names nodes and processes, pairs one flow start
/// with one flow end per message delivered in the window, and keeps every
/// timestamp inside the window.
#[test]
fn perfetto_json_has_named_tracks_and_one_flow_per_delivered_message() {
    let text = export_file(&["--format", "perfetto", "--from", "100ms", "--to", "150ms"], "w.json");
    let document: Value = serde_json::from_str(&text).unwrap();
    let events = document["traceEvents"].as_array().unwrap();
    let count = |phase: &str| events.iter().filter(|e| e["ph"] == phase).count();
    let expected = delivered_within(&raw_records(run_trace()), 100_000_000, 150_000_000);
    assert!(expected > 10, "the window should hold traffic, found {expected} messages");
    assert_eq!(count("s"), expected);
    assert_eq!(count("f"), expected);
    let flow_ids = |phase: &str| {
        let mut ids: Vec<u64> =
            events.iter().filter(|e| e["ph"] == phase).map(|e| e["id"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(flow_ids("s"), flow_ids("f"), "every flow starts and ends once");
    for end in events.iter().filter(|e| e["ph"] == "f") {
        assert_eq!(end["bp"], "e");
    }
    let names = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == kind)
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("thread_name").contains(&"order-saga".to_string()), "{:?}", names("thread_name"));
    assert!(names("process_name").contains(&"broker".to_string()), "{:?}", names("process_name"));
    for event in events.iter().filter(|e| e["ph"] != "M") {
        let ts = event["ts"].as_f64().unwrap();
        assert!((100_000.0..=150_000.0).contains(&ts), "{event}");
    }
}

/// The ShiViz log starts with its regex and an empty delimiter line; then
/// every pair of lines is an event and `HOST {clock}`, the clock is JSON
/// keyed by host names with the host's own entry, and each host's own entry
/// counts 1, 2, 3... as ShiViz requires (here over a window, which needs
/// the renumbering).
#[test]
fn shiviz_log_matches_its_regex_and_clocks_count_from_one() {
    let text = export_file(&["--format", "shiviz", "--from", "120ms", "--to", "200ms"], "w.log");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(shiviz::PARSING_REGEX));
    assert_eq!(lines.next(), Some(""));
    let rest: Vec<&str> = lines.collect();
    assert!(rest.len() > 100 && rest.len().is_multiple_of(2), "{} lines", rest.len());
    let mut own: BTreeMap<String, u64> = BTreeMap::new();
    for pair in rest.chunks(2) {
        // `(?<event>.*)` then `(?<host>\S*) (?<clock>{.*})`.
        assert!(!pair[0].is_empty());
        let (host, clock) = pair[1].split_once(' ').unwrap();
        assert!(!host.is_empty() && !host.contains(char::is_whitespace), "{}", pair[1]);
        assert!(clock.starts_with('{') && clock.ends_with('}'), "{}", pair[1]);
        let clock: BTreeMap<String, u64> = serde_json::from_str(clock).unwrap();
        let previous = own.entry(host.to_string()).or_insert(0);
        assert_eq!(clock.get(host), Some(&(*previous + 1)), "{}", pair[1]);
        *previous += 1;
    }
    // Every clock names only hosts that have events of their own.
    for pair in rest.chunks(2) {
        let clock: BTreeMap<String, u64> =
            serde_json::from_str(pair[1].split_once(' ').unwrap().1).unwrap();
        assert!(clock.keys().all(|key| own.contains_key(key)), "unknown host in {}", pair[1]);
    }
}

/// `--order` keeps every domain event of that order and none of another
/// order's, and its messages both start and end in the selection.
#[test]
fn order_history_keeps_its_own_domain_events_only() {
    let records = raw_records(run_trace());
    let domain_keys = |key: u64| {
        records.iter().filter(|r| r["event"] == "DomainEvent" && r["key"] == key).count()
    };
    assert!(domain_keys(4) >= 3);
    let text = export_file(&["--format", "perfetto", "--order", "4"], "o.json");
    let document: Value = serde_json::from_str(&text).unwrap();
    let events = document["traceEvents"].as_array().unwrap();
    let domain: Vec<&Value> = events.iter().filter(|e| e["cat"] == "domain").collect();
    assert_eq!(domain.len(), domain_keys(4));
    assert!(domain.iter().all(|e| e["args"]["key"] == 4), "another order's event slipped in");
    let sagas: Vec<&Value> = events
        .iter()
        .filter(|e| e["cat"] == "component" && e["name"].as_str().unwrap().starts_with("saga "))
        .collect();
    assert!(!sagas.is_empty() && sagas.iter().all(|e| e["args"]["key"] == 4));
    assert_eq!(
        events.iter().filter(|e| e["ph"] == "s").count(),
        events.iter().filter(|e| e["ph"] == "f").count()
    );
}

/// Bad input: one line on stderr naming the problem, exit status 2, and
/// no output file.
#[test]
fn bad_input_exits_2_with_one_line() {
    let malformed = scratch("malformed.jsonl");
    let good = std::fs::read_to_string(run_trace()).unwrap();
    let mut lines: Vec<&str> = good.lines().take(5).collect();
    lines.push("{\"seq\": 5, \"time\": \"soon\"}");
    std::fs::write(&malformed, lines.join("\n")).unwrap();
    let trace = run_trace().to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&trace, "--format", "shiviz", "--order", "999999"], "--order 999999"),
        (
            vec![&trace, "--format", "shiviz", "--from", "1.5x"],
            "--from 1.5x: expected a duration like 250ms",
        ),
        (
            vec![&trace, "--format", "shiviz", "--from", "2s", "--to", "1s"],
            "--to 1s: must be after --from 2s",
        ),
        (vec![&trace, "--format", "svg"], "svg"),
        (vec!["no-such-trace.jsonl", "--format", "perfetto"], "no-such-trace.jsonl"),
        (vec![malformed.to_str().unwrap(), "--format", "perfetto"], "line 6"),
    ];
    for (args, expected) in cases {
        let out = scratch("should-not-exist.out");
        let _ = std::fs::remove_file(&out);
        let mut all = vec!["trace", "export", "--out", out.to_str().unwrap()];
        all.extend(args.iter().copied());
        let output = rlab(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} left a file behind");
    }
}

/// A tiny world: a client, an orders service and a payments service; two
/// orders (7 and 8), a charge lost while the payments node is down, and
/// the node's restart.
const TINY_TRACE: &str = r#"{"seq":0,"time":0,"lamport":null,"vector_clock":null,"event":"NodeAdded","node":0,"name":"alpha"}
{"seq":1,"time":0,"lamport":null,"vector_clock":null,"event":"NodeAdded","node":1,"name":"beta"}
{"seq":2,"time":0,"lamport":null,"vector_clock":null,"event":"NodeAdded","node":2,"name":"gamma"}
{"seq":3,"time":0,"lamport":1,"vector_clock":{"0":1},"event":"ProcessSpawned","process":0,"node":0,"name":"client"}
{"seq":4,"time":0,"lamport":1,"vector_clock":{"1":1},"event":"ProcessSpawned","process":1,"node":1,"name":"orders"}
{"seq":5,"time":0,"lamport":1,"vector_clock":{"2":1},"event":"ProcessSpawned","process":2,"node":2,"name":"payments"}
{"seq":6,"time":1000000,"lamport":2,"vector_clock":{"0":2},"event":"MessageSent","message_id":0,"from":0,"to":1,"label":"PlaceOrder","digest":1}
{"seq":7,"time":3000000,"lamport":3,"vector_clock":{"0":2,"1":2},"event":"MessageDelivered","message_id":0,"from":0,"to":1,"label":"PlaceOrder"}
{"seq":8,"time":3000000,"lamport":4,"vector_clock":{"0":2,"1":3},"event":"DomainEvent","process":1,"label":"OrderCreated","key":7}
{"seq":9,"time":3000000,"lamport":5,"vector_clock":{"0":2,"1":4},"event":"MessageSent","message_id":1,"from":1,"to":2,"label":"Charge","digest":2}
{"seq":10,"time":4000000,"lamport":3,"vector_clock":{"0":3},"event":"MessageSent","message_id":2,"from":0,"to":1,"label":"PlaceOrder","digest":3}
{"seq":11,"time":5000000,"lamport":6,"vector_clock":{"0":2,"1":4,"2":2},"event":"MessageDelivered","message_id":1,"from":1,"to":2,"label":"Charge"}
{"seq":12,"time":5000000,"lamport":7,"vector_clock":{"0":2,"1":4,"2":3},"event":"MessageSent","message_id":3,"from":2,"to":1,"label":"Charged","digest":4}
{"seq":13,"time":6000000,"lamport":6,"vector_clock":{"0":3,"1":5},"event":"MessageDelivered","message_id":2,"from":0,"to":1,"label":"PlaceOrder"}
{"seq":14,"time":6000000,"lamport":7,"vector_clock":{"0":3,"1":6},"event":"DomainEvent","process":1,"label":"OrderCreated","key":8}
{"seq":15,"time":6000000,"lamport":8,"vector_clock":{"0":3,"1":7},"event":"MessageSent","message_id":4,"from":1,"to":2,"label":"Charge","digest":5}
{"seq":16,"time":7000000,"lamport":null,"vector_clock":null,"event":"NodeCrashed","node":2,"processes_stopped":1,"writes_lost":0}
{"seq":17,"time":7000000,"lamport":null,"vector_clock":null,"event":"MessageDropped","message_id":4,"from":1,"to":2,"label":"Charge","reason":"node_down"}
{"seq":18,"time":8000000,"lamport":9,"vector_clock":{"0":3,"1":8,"2":3},"event":"MessageDelivered","message_id":3,"from":2,"to":1,"label":"Charged"}
{"seq":19,"time":8000000,"lamport":10,"vector_clock":{"0":3,"1":9,"2":3},"event":"DomainEvent","process":1,"label":"PaymentApproved","key":7}
{"seq":20,"time":9000000,"lamport":11,"vector_clock":{"0":3,"1":10,"2":3},"event":"MessageSent","message_id":5,"from":1,"to":0,"label":"OrderConfirmed","digest":6}
{"seq":21,"time":10000000,"lamport":null,"vector_clock":null,"event":"NodeRestarted","node":2}
{"seq":22,"time":11000000,"lamport":12,"vector_clock":{"0":4,"1":10,"2":3},"event":"MessageDelivered","message_id":5,"from":1,"to":0,"label":"OrderConfirmed"}
"#;

fn tiny() -> Trace {
    read_trace(TINY_TRACE.as_bytes()).unwrap()
}

/// The order rule of `visualize::export`, worked by hand on the tiny
/// trace: order 7 starts at the client's send (seq 6) and ends with
/// PaymentApproved (seq 19); the second order's OrderCreated (seq 14) is
/// left out, the client's second request (seq 10) stays because the
/// orders service handled it before approving order 7, the crash falls in
/// the lifetime, and everything after PaymentApproved goes.
#[test]
fn order_history_follows_the_documented_rule() {
    let trace = tiny();
    let selection = select(&trace, Filter { order: Some(7), ..Filter::default() }).unwrap();
    let seqs: Vec<u64> = selection.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19]);
    let arrows = selection.arrows();
    let labels: Vec<(&str, bool)> =
        arrows.iter().map(|a| (a.label.as_str(), a.dropped.is_some())).collect();
    assert_eq!(
        labels,
        vec![
            ("PlaceOrder", false),
            ("Charge", false),
            ("PlaceOrder", false),
            ("Charge", true),
            ("Charged", false)
        ]
    );
    let error = select(&trace, Filter { order: Some(9), ..Filter::default() }).unwrap_err();
    assert!(error.to_string().starts_with("--order 9:"), "{error}");
}

/// A window keeps what lies within it, bounds included, and a message
/// only when both its ends do.
#[test]
fn window_keeps_its_bounds_and_whole_messages() {
    let trace = tiny();
    let filter = Filter { from_ns: Some(3_000_000), to_ns: Some(8_000_000), order: None };
    let selection = select(&trace, filter).unwrap();
    assert!(selection.records.iter().all(|r| (3_000_000..=8_000_000).contains(&r.time_ns)));
    assert_eq!(selection.records.first().unwrap().seq, 7);
    assert_eq!(selection.records.last().unwrap().seq, 19);
    // PlaceOrder 0 was sent before the window: no arrow for it.
    let ids: Vec<u64> = selection.arrows().iter().map(|a| a.message_id).collect();
    assert_eq!(ids, vec![1, 2, 4, 3]);
}

/// ShiViz renumbers a window's clocks so each host counts from 1 while
/// happened-before stays as it was.
#[test]
fn shiviz_renumbering_keeps_happened_before() {
    let trace = tiny();
    let filter = Filter { from_ns: Some(5_000_000), to_ns: None, order: None };
    let (text, summary) = export(&trace, filter, Format::Shiviz).unwrap();
    let lines: Vec<&str> = text.lines().skip(3).step_by(2).collect();
    assert_eq!(summary.events, lines.len());
    assert_eq!(
        lines,
        vec![
            r#"payments {"payments":1}"#,
            r#"payments {"payments":2}"#,
            r#"orders {"orders":1}"#,
            r#"orders {"orders":2}"#,
            r#"orders {"orders":3}"#,
            r#"orders {"orders":4,"payments":2}"#,
            r#"orders {"orders":5,"payments":2}"#,
            r#"orders {"orders":6,"payments":2}"#,
            r#"client {"client":1,"orders":6,"payments":2}"#,
        ]
    );
}

/// The space-time diagram of the tiny trace, pinned and reviewed: three
/// process lines, five delivered messages with arrowheads and labels, the
/// lost charge ending in a cross, the crash and restart on `payments`, the
/// domain events in green, and a millisecond axis.
#[test]
fn lamport_svg_of_a_tiny_trace() {
    let trace = tiny();
    let selection = select(&trace, Filter::default()).unwrap();
    let (svg, summary) = lamport_svg::write(&selection);
    assert_eq!((summary.processes, summary.messages), (3, 5));
    insta::assert_snapshot!("lamport-tiny", svg);
}

/// The tiny trace in Chrome JSON: a flow per delivered message (not for
/// the lost one), the loss on the addressee's thread, and the crash and
/// restart as instants on the payments node's track.
#[test]
fn perfetto_marks_losses_and_crashes() {
    let (text, summary) = export(&tiny(), Filter::default(), Format::Perfetto).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    let events = document["traceEvents"].as_array().unwrap();
    let mut flow_ids: Vec<u64> =
        events.iter().filter(|e| e["ph"] == "s").map(|e| e["id"].as_u64().unwrap()).collect();
    flow_ids.sort_unstable();
    assert_eq!(flow_ids, vec![0, 1, 2, 3, 5]);
    assert_eq!(summary.messages, 5);
    let instant = |name: &str| {
        events
            .iter()
            .find(|e| e["ph"] == "i" && e["name"].as_str().unwrap().starts_with(name))
            .cloned()
    };
    let lost = instant("lost Charge").expect("the loss is shown");
    assert_eq!((lost["pid"].as_u64(), lost["tid"].as_u64()), (Some(2), Some(2)));
    let crash = instant("node crashed").expect("the crash is shown");
    assert_eq!(
        (crash["s"].as_str(), crash["pid"].as_u64(), crash["ts"].as_f64()),
        (Some("p"), Some(2), Some(7000.0))
    );
    assert!(instant("node restarted").is_some());
}

/// A selection with more marks than the diagram draws is cut at
/// `MAX_MARKS`, and the footer says how many were left out.
#[test]
fn lamport_svg_caps_busy_selections() {
    let mut text = String::from(
        r#"{"seq":0,"time":0,"lamport":1,"vector_clock":{"0":1},"event":"ProcessSpawned","process":0,"node":0,"name":"ticker"}"#,
    );
    let ticks = lamport_svg::MAX_MARKS + 500;
    for tick in 1..=ticks {
        text.push_str(&format!(
            "\n{{\"seq\":{tick},\"time\":{},\"lamport\":{},\"vector_clock\":{{\"0\":{}}},\"event\":\"TimerFired\",\"process\":0,\"tag\":{tick}}}",
            tick * 1000,
            tick + 1,
            tick + 1
        ));
    }
    let trace = read_trace(text.as_bytes()).unwrap();
    let (svg, summary) = lamport_svg::write(&select(&trace, Filter::default()).unwrap());
    assert_eq!(svg.matches("<circle").count(), lamport_svg::MAX_MARKS);
    assert_eq!(summary.events, lamport_svg::MAX_MARKS);
    assert!(svg.contains(&format!("{} of {ticks} marks drawn", lamport_svg::MAX_MARKS)), "{svg}");
    assert!(svg.contains("500 later ones left out"));
}
