//! `kgroup sim`: seeded fault schedules against the real engine, with the
//! invariant checker; every violation comes with the one-line command that
//! reproduces it.

use std::time::Instant;

use clap::Args;
use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{Mutation, RunReport, SimConfig, run};

/// Arguments of `kgroup sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of schedules (seeds 1..=N, or S..S+N-1 with --seed).
    #[arg(long)]
    seeds: Option<u64>,
    /// Run this seed (alone, unless --seeds is given too).
    #[arg(long)]
    seed: Option<u64>,
    /// Members in the group.
    #[arg(long, default_value_t = 5)]
    members: usize,
    /// Topics the group subscribes to.
    #[arg(long, default_value_t = 2)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Random faults: none, light or heavy.
    #[arg(long, default_value = "light")]
    faults: FaultLevel,
    /// Scenario: random, double-bounce, gated-rebalance, static-restart,
    /// commit-during-rebalance, coordinator-restart. Without it, seeds rotate
    /// through all of them.
    #[arg(long)]
    scenario: Option<Scenario>,
    /// Machine output: one JSON object per schedule with violations (and per
    /// violation), then the summary line.
    #[arg(long)]
    json: bool,
    /// Print the full trace of each schedule (debugging a seed).
    #[arg(long)]
    trace: bool,
    /// Test-only: reintroduce a bug (stale-last-assigned, stale-commit-generation).
    #[arg(long, hide = true)]
    mutation: Option<String>,
}

fn parse_mutation(s: Option<&str>) -> Result<Mutation, String> {
    match s {
        None | Some("none") => Ok(Mutation::None),
        #[cfg(feature = "mutations")]
        Some("stale-last-assigned") => Ok(Mutation::StaleLastAssigned),
        #[cfg(feature = "mutations")]
        Some("stale-commit-generation") => Ok(Mutation::StaleCommitGeneration),
        #[cfg(not(feature = "mutations"))]
        Some(m @ ("stale-last-assigned" | "stale-commit-generation")) => Err(format!(
            "mutation {m:?} needs a build with the test-only engine switches: \
             cargo run -p kgroup-cli --features mutations -- sim ..."
        )),
        Some(other) => Err(format!(
            "unknown mutation {other:?}: use stale-last-assigned or stale-commit-generation"
        )),
    }
}

/// Run `kgroup sim`.
pub fn run_sim(args: SimArgs) -> i32 {
    let mutation = match parse_mutation(args.mutation.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kgroup sim: {e}");
            return 2;
        }
    };
    if args.members == 0 || args.topics == 0 || args.partitions <= 0 {
        eprintln!("kgroup sim: --members, --topics and --partitions must be at least 1");
        return 2;
    }
    let (first, count) = match (args.seed, args.seeds) {
        (Some(s), None) => (s, 1),
        (Some(s), Some(n)) => (s, n),
        (None, Some(n)) => (1, n),
        (None, None) => (1, 100),
    };
    #[allow(clippy::disallowed_methods)] // wall-clock time for the summary only
    let started = Instant::now();
    let mut violations = 0u64;
    let mut checks = 0u64;
    let rotation = [
        Scenario::Random,
        Scenario::DoubleBounce,
        Scenario::GatedRebalance,
        Scenario::StaticRestart,
        Scenario::CommitDuringRebalance,
        Scenario::CoordinatorRestart,
    ];
    for k in 0..count {
        let seed = first.wrapping_add(k);
        let scenario = args
            .scenario
            .unwrap_or(rotation[(seed % rotation.len() as u64) as usize]);
        let config = SimConfig {
            seed,
            members: args.members,
            topics: args.topics,
            partitions: args.partitions,
            faults: args.faults,
            scenario,
            mutation,
            keep_trace: args.trace,
            ..SimConfig::default()
        };
        let report = run(config, started);
        for line in &report.trace {
            out!("{line}");
        }
        checks += report.checks;
        violations += report.violation_count;
        if report.violation_count > 0 {
            print_violations(&report, args.json);
        } else if args.json && count == 1 {
            print_schedule_json(&report);
        }
    }
    let elapsed = started.elapsed().as_millis();
    out!(
        "schedules={count} violations={violations} invariant_checks={checks} elapsed_ms={elapsed}"
    );
    if violations > 0 { 1 } else { 0 }
}

fn print_violations(report: &RunReport, json: bool) {
    let repro = report.config.repro_command();
    for v in &report.violations {
        if json {
            let obj = serde_json::json!({
                "seed": report.config.seed,
                "scenario": report.config.scenario.as_str(),
                "invariant": v.invariant.name(),
                "at_ms": v.at.as_millis() as u64,
                "detail": v.detail,
                "reproduce": repro,
            });
            out!("{obj}");
        } else {
            out!("VIOLATION seed={} {v}", report.config.seed);
            out!("  reproduce: {repro}");
        }
    }
    let hidden = report.violation_count - report.violations.len() as u64;
    if hidden > 0 && !json {
        out!("  ... and {hidden} more in this schedule");
    }
}

fn print_schedule_json(report: &RunReport) {
    let obj = serde_json::json!({
        "seed": report.config.seed,
        "scenario": report.config.scenario.as_str(),
        "violations": report.violation_count,
        "invariant_checks": report.checks,
        "generations": report.generations,
        "trace_hash": format!("{:016x}", report.trace_hash),
        "virtual_ms": report.virtual_time.as_millis() as u64,
        "steps": report.steps,
        "commits_accepted": report.commits_accepted,
        "commits_rejected": report.commits_rejected,
    });
    out!("{obj}");
}
