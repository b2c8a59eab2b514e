//! The `kgroup` command's output contracts for `sim`, `demo` and `assign`
//! (issue contracts: one summary line, JSON shapes, exit codes), run on the
//! built binary. `kgroup join` is tested against the test broker in
//! `tests/tests/e2e_join.rs`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const KGROUP: &str = env!("CARGO_BIN_EXE_kgroup");

fn kgroup(args: &[&str]) -> Output {
    Command::new(KGROUP)
        .args(args)
        .output()
        .expect("kgroup runs")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 stdout")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `schedules=N violations=V invariant_checks=C elapsed_ms=E`, parsed.
fn summary(line: &str) -> Option<[u64; 4]> {
    let mut values = [0u64; 4];
    let keys = ["schedules", "violations", "invariant_checks", "elapsed_ms"];
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() != 4 {
        return None;
    }
    for ((field, key), value) in fields.iter().zip(keys).zip(values.iter_mut()) {
        *value = field.strip_prefix(key)?.strip_prefix('=')?.parse().ok()?;
    }
    Some(values)
}

#[test]
fn sim_ends_with_exactly_one_summary_line_and_exit_0() {
    let out = kgroup(&["sim", "--seeds", "3", "--faults", "light"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = stdout_lines(&out);
    let summaries: Vec<[u64; 4]> = lines.iter().filter_map(|l| summary(l)).collect();
    assert_eq!(summaries.len(), 1, "exactly one summary line: {lines:?}");
    let last = lines.last().expect("output");
    let [schedules, violations, checks, _] = summary(last).expect("summary last");
    assert_eq!((schedules, violations), (3, 0));
    assert!(checks > 0, "{last}");
}

#[test]
fn sim_json_per_schedule_names_seed_trace_hash_and_ends_with_the_summary() {
    let out = kgroup(&["sim", "--seed", "11", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = stdout_lines(&out);
    let (last, objects) = lines.split_last().expect("output");
    assert_eq!(summary(last).map(|s| s[0]), Some(1), "{lines:?}");
    assert!(!objects.is_empty(), "one object for the one schedule run");
    for line in objects {
        let v: Value = serde_json::from_str(line).expect("a JSON object per line");
        assert_eq!(v["seed"], 11, "{v}");
        assert!(
            v["trace_hash"].as_str().is_some_and(|h| h.len() == 16),
            "{v}"
        );
    }
    // Same seed, same trace.
    let again = stdout_lines(&kgroup(&["sim", "--seed", "11", "--json"]));
    let hash = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["trace_hash"].clone())
            .collect()
    };
    assert_eq!(hash(objects), hash(&again[..again.len() - 1]));
}

#[test]
fn sim_bad_usage_exits_2() {
    let out = kgroup(&["sim", "--seeds", "1", "--faults", "apocalyptic"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn demo_json_is_one_deterministic_object_with_nothing_violated() {
    let run = || {
        let out = kgroup(&["demo", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let lines = stdout_lines(&out);
        assert_eq!(lines.len(), 1, "one JSON object: {lines:?}");
        let mut v: Value = serde_json::from_str(&lines[0]).expect("JSON");
        // CPU time is the one thing that differs from run to run.
        assert!(v["cpu_ms"].is_u64(), "{v}");
        v.as_object_mut().expect("object").remove("cpu_ms");
        v
    };
    let v = run();
    assert_eq!(v["violations"], json!([]), "{v}");
    assert!(v["invariant_checks"].as_u64().is_some_and(|c| c > 0), "{v}");
    assert!(
        v["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    assert_eq!(v, run(), "same seed, same output");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // A full trace is ~125 KiB, more than a pipe holds: the writer is
    // still writing when the reader goes away, whatever the timing.
    let mut child = Command::new(KGROUP)
        .args(["sim", "--seed", "3", "--trace"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgroup sim runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a first line");
    // The reader is dropped here: the rest of the trace has nowhere to go.
    let out = child.wait_with_output().expect("kgroup sim ends");
    assert!(first.contains("action: start"), "{first:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert_eq!(out.status.code(), Some(141), "128 + SIGPIPE: {out:?}");
}

fn assign(input: &Value) -> Output {
    let mut child = Command::new(KGROUP)
        .args(["assign", "--input", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgroup assign runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("input written");
    child.wait_with_output().expect("kgroup assign ends")
}

#[test]
fn assign_range_gives_the_java_layout_for_every_member() {
    let out = assign(&json!({
        "assignor": "range",
        "topics": {"t1": 5},
        "members": [
            {"member_id": "c2", "topics": ["t1"]},
            {"member_id": "c1", "topics": ["t1"]},
            {"member_id": "c3", "topics": ["t1"]}
        ]
    }));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    // Java's RangeAssignor: members by id, the first 5 % 3 get one extra.
    assert_eq!(
        v,
        json!({
            "c1": [["t1", 0], ["t1", 1]],
            "c2": [["t1", 2], ["t1", 3]],
            "c3": [["t1", 4]]
        })
    );
}

#[test]
fn assign_rejects_bad_input_with_one_line_and_exit_2() {
    let out = assign(&json!({"assignor": "range", "topics": {}, "members": [], "extra": 1}));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("kgroup assign:"), "{stderr}");
}
