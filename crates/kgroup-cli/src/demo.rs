//! `kgroup demo`: a whole consumer group on the embedded simulator. Five
//! members on three topics go through a rolling upgrade from eager to
//! cooperative rebalancing (two bounces), a static member restart and a
//! coordinator crash; the command prints the rebalances with each member's
//! partitions and what the invariant checker verified. Virtual time, no
//! network, about a second of CPU.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use kgroup::TopicPartition;
use kgroup_sim::clock::fmt_time;
use kgroup_sim::sim::checker::Invariant;
use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{Mutation, RunReport, SimConfig, TimelineKind, run};

/// Arguments of `kgroup demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Machine output: one JSON document.
    #[arg(long)]
    json: bool,
    /// Seed of the demo schedule.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const INVARIANTS: [(Invariant, &str); 5] = [
    (
        Invariant::SingleOwner,
        "no partition was owned at once by two members with a live session",
    ),
    (
        Invariant::RevokeBeforeReassign,
        "cooperative rebalances never moved a partition before its owner revoked it",
    ),
    (
        Invariant::CommitFromOwner,
        "every commit came from the partition's owner at the current generation",
    ),
    (
        Invariant::AtLeastOnce,
        "committed offsets never went backwards or past what was processed",
    ),
    (
        Invariant::Convergence,
        "after the faults every partition had exactly one owner and the group was stable",
    ),
];

/// Run `kgroup demo`.
pub fn run_demo(args: DemoArgs) -> i32 {
    let config = SimConfig {
        seed: args.seed,
        members: 5,
        topics: 3,
        partitions: 4,
        faults: FaultLevel::None,
        scenario: Scenario::Demo,
        mutation: Mutation::None,
        keep_trace: false,
        brokers: 3,
    };
    #[allow(clippy::disallowed_methods)] // anchor for virtual time and CPU time shown
    let started = Instant::now();
    let report = run(config.clone(), started);
    let cpu_ms = started.elapsed().as_millis();
    if args.json {
        print_json(&report, cpu_ms);
    } else {
        print_text(&report, cpu_ms);
    }
    if report.violation_count == 0 { 0 } else { 1 }
}

fn compact(parts: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in parts {
        by_topic.entry(&p.topic).or_default().push(p.partition);
    }
    if by_topic.is_empty() {
        return "-".to_string();
    }
    by_topic
        .into_iter()
        .map(|(t, ps)| {
            let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
            format!("{t}[{}]", list.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_text(report: &RunReport, cpu_ms: u128) {
    let c = &report.config;
    out!(
        "kgroup demo: {} members, {} topics x {} partitions, {} brokers, seed {} (virtual time, no network)",
        c.members,
        c.topics,
        c.partitions,
        c.brokers,
        c.seed
    );
    out!(
        "story: start eager [range] -> rolling bounce to [cooperative-sticky, range] -> bounce to [cooperative-sticky]"
    );
    out!(
        "       -> static member m4 restarts within its session timeout -> the coordinator's broker crashes"
    );
    out!();
    let mut last_table: Option<BTreeMap<String, Vec<TopicPartition>>> = None;
    for e in &report.timeline {
        match &e.kind {
            TimelineKind::Action(a) => out!("{:>9}  {a}", fmt_time(e.at)),
            TimelineKind::Cluster(s) => out!("{:>9}  cluster: {s}", fmt_time(e.at)),
            TimelineKind::Assignment {
                generation,
                protocol,
                leader,
                members,
            } => {
                out!(
                    "{:>9}  == generation {generation}  protocol={protocol}  leader={leader}",
                    fmt_time(e.at)
                );
                for (m, parts) in members {
                    let moved = match last_table.as_ref().and_then(|t| t.get(m)) {
                        Some(prev) if prev == parts => "",
                        Some(_) => "  (changed)",
                        None => "  (new)",
                    };
                    out!("{:>9}       {m:<3} {}{moved}", "", compact(parts));
                }
                last_table = Some(members.clone());
            }
        }
    }
    out!();
    out!("final ownership:");
    for (m, parts) in &report.final_owners {
        out!("  {m:<3} {}", compact(parts));
    }
    out!();
    out!(
        "invariant checker: {} checks over {} simulation steps, {} generations, {} commits accepted ({} refused), {} violations",
        report.checks,
        report.steps,
        report.generations,
        report.commits_accepted,
        report.commits_rejected,
        report.violation_count
    );
    for (inv, text) in INVARIANTS {
        let broken = report.violations.iter().any(|v| v.invariant == inv);
        let mark = if broken { "VIOLATED" } else { "ok" };
        out!("  [{mark:>8}] {}: {text}", inv.name());
    }
    for v in &report.violations {
        out!("  {v}");
    }
    out!(
        "trace hash {:016x} over {} virtual; {} ms of CPU. Same seed, same trace: {}",
        report.trace_hash,
        fmt_time(report.virtual_time),
        cpu_ms,
        c.repro_command()
    );
}

fn print_json(report: &RunReport, cpu_ms: u128) {
    let timeline: Vec<serde_json::Value> = report
        .timeline
        .iter()
        .map(|e| match &e.kind {
            TimelineKind::Action(a) => {
                serde_json::json!({"at_ms": e.at.as_millis() as u64, "action": a})
            }
            TimelineKind::Cluster(s) => {
                serde_json::json!({"at_ms": e.at.as_millis() as u64, "cluster": s})
            }
            TimelineKind::Assignment {
                generation,
                protocol,
                leader,
                members,
            } => {
                let m: BTreeMap<&String, Vec<String>> = members
                    .iter()
                    .map(|(k, v)| (k, v.iter().map(ToString::to_string).collect()))
                    .collect();
                serde_json::json!({
                    "at_ms": e.at.as_millis() as u64,
                    "generation": generation,
                    "protocol": protocol,
                    "leader": leader,
                    "members": m,
                })
            }
        })
        .collect();
    let violations: Vec<serde_json::Value> = report
        .violations
        .iter()
        .map(|v| {
            serde_json::json!({"invariant": v.invariant.name(), "at_ms": v.at.as_millis() as u64, "detail": v.detail})
        })
        .collect();
    let doc = serde_json::json!({
        "seed": report.config.seed,
        "members": report.config.members,
        "topics": report.config.topics,
        "partitions": report.config.partitions,
        "timeline": timeline,
        "final_owners": report.final_owners.iter().map(|(k, v)| (k.clone(), v.iter().map(ToString::to_string).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
        "invariant_checks": report.checks,
        "violations": violations,
        "generations": report.generations,
        "trace_hash": format!("{:016x}", report.trace_hash),
        "virtual_ms": report.virtual_time.as_millis() as u64,
        "cpu_ms": cpu_ms as u64,
        "reproduce": report.config.repro_command(),
    });
    out!("{doc}");
}
