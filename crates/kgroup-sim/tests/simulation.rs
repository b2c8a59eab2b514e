//! Seeded schedules against the real engine, with the invariant checker:
//! every named scenario at every fault level and determinism of the trace.
//! The mutation tests (reintroduced engine bugs the checker must catch) are in
//! `tests/mutation.rs`.
#![allow(clippy::disallowed_methods)] // one anchor Instant per run; nothing depends on its value

use std::time::Instant;

use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{RunReport, SimConfig, run};

fn config(seed: u64, scenario: Scenario, faults: FaultLevel) -> SimConfig {
    SimConfig {
        seed,
        scenario,
        faults,
        ..SimConfig::default()
    }
}

fn run_seed(c: SimConfig) -> RunReport {
    run(c, Instant::now())
}

/// Run `seeds` schedules of `scenario` at `faults`; fail with every
/// violation and its reproduction command.
fn sweep(scenario: Scenario, faults: FaultLevel, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    let mut checks = 0;
    for seed in seeds {
        let r = run_seed(config(seed, scenario, faults));
        checks += r.checks;
        if r.violation_count > 0 {
            for v in &r.violations {
                failures.push(format!("{v}\n    reproduce: {}", r.config.repro_command()));
            }
        }
    }
    assert!(checks > 0, "the checker ran");
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const SEEDS_PER_CELL: u64 = 12;

macro_rules! sweep_tests {
    ($($name:ident: $scenario:expr, $faults:expr;)*) => {
        $(
            #[test]
            fn $name() {
                sweep($scenario, $faults, 1..1 + SEEDS_PER_CELL);
            }
        )*
    };
}

sweep_tests! {
    random_without_faults: Scenario::Random, FaultLevel::None;
    random_light_faults: Scenario::Random, FaultLevel::Light;
    random_heavy_faults: Scenario::Random, FaultLevel::Heavy;
    double_bounce_without_faults: Scenario::DoubleBounce, FaultLevel::None;
    double_bounce_light_faults: Scenario::DoubleBounce, FaultLevel::Light;
    gated_rebalance_without_faults: Scenario::GatedRebalance, FaultLevel::None;
    gated_rebalance_light_faults: Scenario::GatedRebalance, FaultLevel::Light;
    gated_rebalance_heavy_faults: Scenario::GatedRebalance, FaultLevel::Heavy;
    static_restart_without_faults: Scenario::StaticRestart, FaultLevel::None;
    static_restart_light_faults: Scenario::StaticRestart, FaultLevel::Light;
    static_restart_heavy_faults: Scenario::StaticRestart, FaultLevel::Heavy;
    commit_during_rebalance_without_faults: Scenario::CommitDuringRebalance, FaultLevel::None;
    commit_during_rebalance_light_faults: Scenario::CommitDuringRebalance, FaultLevel::Light;
    commit_during_rebalance_heavy_faults: Scenario::CommitDuringRebalance, FaultLevel::Heavy;
    coordinator_restart_without_faults: Scenario::CoordinatorRestart, FaultLevel::None;
    coordinator_restart_light_faults: Scenario::CoordinatorRestart, FaultLevel::Light;
    coordinator_restart_heavy_faults: Scenario::CoordinatorRestart, FaultLevel::Heavy;
}

/// Was a finding (docs/simulation.md, "Findings"): after a coordinator
/// reload mid-upgrade, `INCONSISTENT_GROUP_PROTOCOL` stopped upgraded members;
/// the engine now retries it (commit ce287a0). Seed 1 reproduced it.
#[test]
fn double_bounce_heavy_faults() {
    sweep(
        Scenario::DoubleBounce,
        FaultLevel::Heavy,
        1..1 + SEEDS_PER_CELL,
    );
}

#[test]
fn static_member_fenced_after_a_coordinator_reload_recovers() {
    // Was finding 2: seed 27 of static-restart with heavy faults ended with a
    // fatal FENCED_INSTANCE_ID for the only process of a static member.
    let r = run_seed(config(27, Scenario::StaticRestart, FaultLevel::Heavy));
    assert_eq!(r.violation_count, 0, "{:#?}", r.violations);
}

#[test]
fn the_demo_schedule_passes_every_invariant() {
    let r = run_seed(config(7, Scenario::Demo, FaultLevel::None));
    assert_eq!(r.violation_count, 0, "{:#?}", r.violations);
    assert!(
        r.generations >= 10,
        "the story rebalances: {}",
        r.generations
    );
    assert_eq!(r.final_owners.len(), 5);
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    for (seed, scenario) in [
        (3, Scenario::Random),
        (4, Scenario::CoordinatorRestart),
        (5, Scenario::DoubleBounce),
    ] {
        let a = run_seed(config(seed, scenario, FaultLevel::Heavy));
        let b = run_seed(config(seed, scenario, FaultLevel::Heavy));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} {scenario}");
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.checks, b.checks);
    }
    let a = run_seed(config(3, Scenario::Random, FaultLevel::Heavy));
    let c = run_seed(config(4, Scenario::Random, FaultLevel::Heavy));
    assert_ne!(
        a.trace_hash, c.trace_hash,
        "different seeds, different runs"
    );
}

#[test]
fn larger_groups_converge() {
    for (members, partitions) in [(12, 6), (30, 36)] {
        let c = SimConfig {
            seed: 11,
            members,
            topics: 2,
            partitions,
            faults: FaultLevel::Light,
            scenario: Scenario::CommitDuringRebalance,
            ..SimConfig::default()
        };
        let r = run_seed(c);
        assert_eq!(
            r.violation_count, 0,
            "{members} members: {:#?}",
            r.violations
        );
    }
}

/// Fixed findings of the heavy-fault sweep of 2026-12-01 (docs/simulation.md,
/// "Fixed findings"), one test per fix, each with the seeds that showed it.
fn assert_clean(cases: &[(u64, Scenario)]) {
    for (seed, scenario) in cases {
        let r = run_seed(config(*seed, *scenario, FaultLevel::Heavy));
        assert_eq!(
            r.violation_count,
            0,
            "reproduce: {}\n{:#?}",
            r.config.repro_command(),
            r.violations
        );
    }
}

#[test]
fn withheld_partitions_are_moved_by_the_leader_follow_up() {
    // 777: the claimant of a withheld partition is replaced by a new static
    // incarnation without a rebalance. 631, 746, 757: the leader restarted
    // too (KIP-814 SkipAssignment) or a coordinator reload brought back a
    // generation whose second round never completed.
    assert_clean(&[
        (777, Scenario::StaticRestart),
        (631, Scenario::StaticRestart),
        (746, Scenario::StaticRestart),
        (757, Scenario::Random),
    ]);
}

#[test]
fn static_member_fenced_on_sync_after_a_coordinator_reload_recovers() {
    // 537: joined under the old coordinator, SyncGroup fenced by the new one.
    assert_clean(&[(537, Scenario::StaticRestart)]);
}

#[test]
fn a_loss_drops_an_assigned_still_waiting_for_its_fetch() {
    // 4: with a leader follow-up right after SyncGroup, a stale `Assigned`
    // was emitted at a late reset while another member owned its partition.
    assert_clean(&[(4, Scenario::Random)]);
}

#[test]
fn an_idle_connection_that_died_fails_the_next_request() {
    // 3369: the coordinator's broker restarted while a static leader's
    // coordinator connection was idle; the simulator reconnected it silently,
    // so the engine never saw the coordinator change and took the reloaded
    // record's fencing as fatal. A dead connection now fails the next
    // request sent on it.
    assert_clean(&[(3369, Scenario::StaticRestart)]);
}

#[test]
fn a_late_noticed_late_acknowledged_revocation_is_lost_before_the_coordinator_removes_the_member() {
    // 634, 678: the local deadline (90 % of the rebalance timeout from when
    // the member noticed the rebalance) fell after the coordinator's (the
    // full timeout from when the rebalance began, up to a heartbeat interval
    // earlier): removed, rejoined as new, another round, over and over.
    assert_clean(&[
        (634, Scenario::GatedRebalance),
        (678, Scenario::GatedRebalance),
    ]);
}
