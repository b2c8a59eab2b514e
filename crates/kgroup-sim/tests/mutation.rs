//! Mutation tests: two client bugs put back into the *engine* (kgroup's
//! test-only `mutations` feature, `kgroup::mutation`) must be reported by the
//! simulator's invariant checker within a bounded number of seeds, and the
//! same seeds with the switch off must report nothing. This is what says the
//! checker would notice these bugs if they came back for real.
//!
//! - stale last-assigned state after an eager revoke (seed 000, the
//!   double-bounce report; franz-go's `lastAssigned`);
//! - OffsetCommit with the generation the commit was made in instead of the
//!   current one (seed 003's `ILLEGAL_GENERATION` storms, seen from the
//!   client side).
#![allow(clippy::disallowed_methods)] // one anchor Instant per run; nothing depends on its value

use std::time::Instant;

use kgroup_sim::sim::checker::Invariant;
use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{Mutation, RunReport, SimConfig, run};

/// How many seeds the checker may need to catch a reintroduced bug.
const MUTATION_SEED_BOUND: u64 = 10;

fn config(seed: u64, scenario: Scenario, mutation: Mutation) -> SimConfig {
    SimConfig {
        seed,
        scenario,
        faults: FaultLevel::None,
        mutation,
        ..SimConfig::default()
    }
}

fn run_seed(c: SimConfig) -> RunReport {
    run(c, Instant::now())
}

/// The first seed in `1..=MUTATION_SEED_BOUND` whose run reports a
/// violation, with its report.
fn first_caught(scenario: Scenario, mutation: Mutation) -> Option<(u64, RunReport)> {
    (1..=MUTATION_SEED_BOUND).find_map(|seed| {
        let r = run_seed(config(seed, scenario, mutation));
        (r.violation_count > 0).then_some((seed, r))
    })
}

/// Seeds `1..=up_to` of `scenario` without a mutation: no violation.
fn assert_clean(scenario: Scenario, up_to: u64) {
    for seed in 1..=up_to {
        let r = run_seed(config(seed, scenario, Mutation::None));
        assert_eq!(
            r.violation_count,
            0,
            "seed {seed} without a mutation: {:#?}\n{}",
            r.violations,
            r.config.repro_command()
        );
    }
}

#[test]
fn engine_stale_last_assigned_after_eager_revoke_is_caught() {
    let (seed, r) = first_caught(Scenario::DoubleBounce, Mutation::StaleLastAssigned)
        .expect("the double-bounce bug must be caught within the seed bound");
    eprintln!(
        "stale-last-assigned caught at seed {seed}: {} violations, first: {}",
        r.violation_count, r.violations[0]
    );
    // The application was never handed partitions the engine says it owns,
    // so they sit unprocessed: the convergence invariant (views agree,
    // every partition owned exactly once) reports it.
    assert!(
        r.violations
            .iter()
            .any(|v| v.invariant == Invariant::Convergence),
        "seed {seed}: {:#?}",
        r.violations
    );
    assert!(
        r.config
            .repro_command()
            .contains("--mutation stale-last-assigned")
    );
    assert_clean(Scenario::DoubleBounce, seed);
}

#[test]
fn engine_commit_with_stale_generation_is_caught() {
    let (seed, r) = first_caught(
        Scenario::CommitDuringRebalance,
        Mutation::StaleCommitGeneration,
    )
    .expect("the stale-generation commit must be caught within the seed bound");
    eprintln!(
        "stale-commit-generation caught at seed {seed}: {} violations, first: {}",
        r.violation_count, r.violations[0]
    );
    assert!(
        r.violations
            .iter()
            .any(|v| v.invariant == Invariant::CommitFromOwner
                && v.detail.contains("sent a commit at generation")),
        "seed {seed}: {:#?}",
        r.violations
    );
    assert!(
        r.config
            .repro_command()
            .contains("--mutation stale-commit-generation")
    );
    assert_clean(Scenario::CommitDuringRebalance, seed);
}
