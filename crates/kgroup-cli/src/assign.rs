//! `kgroup assign`: run a built-in assignor on a JSON description of a group.
//!
//! Input (`--input FILE`):
//! `{"assignor": "cooperative-sticky", "topics": {"t1": 3},
//!   "partition_racks": {"t1": [["r1", "r2"], ["r2"], ["r3"]]},
//!   "members": [{"member_id": "c1", "instance_id": null, "rack": null,
//!   "topics": ["t1"], "owned": [["t1", 0]], "generation": 1}]}`
//! (`partition_racks`, `instance_id`, `rack`, `owned`, `generation` optional).
//! Output (`--output FILE`, else stdout): `{"c1": [["t1", 0], ...], ...}`,
//! every member present, partitions sorted.
//!
//! For `sticky` the member's `owned` and `generation` are encoded into the
//! `StickyAssignorUserData` the Java client would send, so the assignor reads
//! them through its real decoding path; `cooperative-sticky` reads them as
//! the subscription's owned partitions and generation.
//!
//! `--repeat N` runs one warm-up and N timed assignments and prints one
//! `RESULT` line on stderr; the times cover only the `assign` call.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kgroup::TopicPartition;
use kgroup::assignor::userdata::encode_sticky;
use kgroup::assignor::{
    Builtin, ClusterMetadata, CompactAssignment, MemberSubscription, TopicInfo,
};
use serde::Deserialize;

/// Arguments of `kgroup assign`.
#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    /// JSON input file.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the assignment JSON (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Time N more runs after one warm-up; print a RESULT line on stderr.
    #[arg(long)]
    repeat: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    assignor: String,
    topics: BTreeMap<String, i64>,
    #[serde(default)]
    partition_racks: BTreeMap<String, Vec<Vec<String>>>,
    members: Vec<InputMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputMember {
    member_id: String,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    rack: Option<String>,
    topics: Vec<String>,
    #[serde(default)]
    owned: Vec<(String, i32)>,
    #[serde(default)]
    generation: Option<i32>,
}

/// Runs the subcommand; any error is one line on stderr and exit code 2.
pub fn run(args: AssignArgs) -> ! {
    match run_inner(&args) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("kgroup assign: {e}");
            std::process::exit(2);
        }
    }
}

fn run_inner(args: &AssignArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("cannot read {}: {e}", args.input.display()))?;
    let input: Input =
        serde_json::from_str(&text).map_err(|e| format!("invalid input JSON: {e}"))?;
    drop(text);
    let assignor = Builtin::from_name(&input.assignor).ok_or_else(|| {
        format!(
            "unknown assignor {:?} (range, roundrobin, sticky, cooperative-sticky)",
            input.assignor
        )
    })?;
    let metadata = metadata(&input)?;
    let sticky = input.assignor == "sticky";
    let members: Vec<MemberSubscription> = input
        .members
        .into_iter()
        .map(|m| {
            let owned: Vec<TopicPartition> = m
                .owned
                .into_iter()
                .map(|(t, p)| TopicPartition::new(t, p))
                .collect();
            let user_data = (sticky && (!owned.is_empty() || m.generation.is_some()))
                .then(|| encode_sticky(&owned, m.generation));
            MemberSubscription {
                member_id: m.member_id,
                instance_id: m.instance_id,
                rack: m.rack,
                topics: m.topics,
                owned,
                generation: m.generation,
                user_data,
            }
        })
        .collect();

    // The timed call: the same algorithm and result as `Assignor::assign`,
    // in compact form (no String per partition; see docs/benchmarks.md).
    let assign = || {
        assignor
            .assign_compact(&metadata, &members)
            .map_err(|e| e.to_string())
    };
    let (result, times) = match args.repeat {
        None => (assign()?, Vec::new()),
        Some(n) => {
            drop(assign()?); // warm-up
            let mut times = Vec::with_capacity(n as usize);
            let mut last = None;
            for _ in 0..n.max(1) {
                drop(last.take());
                #[allow(clippy::disallowed_methods)] // the CLI may read the clock
                let start = Instant::now();
                let r = assign()?;
                times.push(start.elapsed());
                last = Some(r);
            }
            (last.ok_or("no run")?, times)
        }
    };
    write_output(args.output.as_deref(), &result)?;
    if let Some(n) = args.repeat {
        let moved = moved(&members, &result);
        print_result(&args.input, n.max(1), &times, moved);
    }
    Ok(())
}

fn metadata(input: &Input) -> Result<ClusterMetadata, String> {
    for t in input.partition_racks.keys() {
        if !input.topics.contains_key(t) {
            return Err(format!("partition_racks for unknown topic {t:?}"));
        }
    }
    input
        .topics
        .iter()
        .map(|(name, &n)| {
            let partitions = i32::try_from(n)
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("topic {name:?}: invalid partition count {n}"))?;
            let racks = input.partition_racks.get(name).cloned().unwrap_or_default();
            if !racks.is_empty() && racks.len() != partitions as usize {
                return Err(format!(
                    "topic {name:?}: {} partition_racks entries for {partitions} partitions",
                    racks.len()
                ));
            }
            Ok((
                name.clone(),
                TopicInfo {
                    partitions,
                    partition_racks: racks,
                },
            ))
        })
        .collect()
}

fn write_output(path: Option<&Path>, result: &CompactAssignment<'_>) -> Result<(), String> {
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        w.write_all(b"{")?;
        for i in 0..result.len() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, result.member_id(i))?;
            w.write_all(b":[")?;
            for (k, (t, p)) in result.partitions(i).enumerate() {
                if k > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(b"[")?;
                serde_json::to_writer(&mut *w, t)?;
                write!(w, ",{p}]")?;
            }
            w.write_all(b"]")?;
        }
        w.write_all(b"}\n")?;
        w.flush()
    };
    match path {
        Some(p) => {
            let f = std::fs::File::create(p)
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            write(&mut std::io::BufWriter::new(f))
                .map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        None => {
            let out = std::io::stdout();
            write(&mut std::io::BufWriter::new(out.lock()))
                .map_err(|e| format!("cannot write stdout: {e}"))
        }
    }
}

/// Partitions some member listed as owned that `result` gives to someone
/// else or to no one (withheld, or no longer assigned), each counted once.
fn moved(members: &[MemberSubscription], result: &CompactAssignment<'_>) -> usize {
    let mut changed: Vec<(&str, i32)> = members
        .iter()
        .flat_map(|m| {
            m.owned
                .iter()
                .filter(move |tp| {
                    result.owner_of(&tp.topic, tp.partition) != Some(m.member_id.as_str())
                })
                .map(|tp| (tp.topic.as_str(), tp.partition))
        })
        .collect();
    changed.sort_unstable();
    changed.dedup();
    changed.len()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_result(input: &Path, runs: u32, times: &[Duration], moved: usize) {
    let mut sorted: Vec<Duration> = times.to_vec();
    sorted.sort_unstable();
    let min = sorted.first().copied().unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    let median = match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or_default(),
        n => {
            let a = sorted.get(n / 2 - 1).copied().unwrap_or_default();
            let b = sorted.get(n / 2).copied().unwrap_or_default();
            (a + b) / 2
        }
    };
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!(
        "RESULT impl=kgroup scenario={stem} phase=assign runs={runs} min_ms={:.3} median_ms={:.3} max_ms={:.3} peak_rss_mib={:.1} moved={moved}",
        ms(min),
        ms(median),
        ms(max),
        peak_rss_mib()
    );
}

/// Peak resident set size (`VmHWM` in /proc/self/status), MiB; 0 if unknown.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
