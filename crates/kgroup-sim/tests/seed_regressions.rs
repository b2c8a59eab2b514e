//! Heavy-fault seeds found by the soak after the fixes of
//! `docs/simulation.md`, each a regression test.
//!
//! Seed 200134 (`commit-during-rebalance`, heavy faults): a member revoking
//! in an eager rebalance waits for its commits, which a latency spike delays;
//! it is closed meanwhile. `close` used to abandon whatever was in flight on
//! the coordinator connection and carry on over a new one, so the commit went
//! out a second time there; the first copy, still on the wire, landed after
//! the newer commits and moved four committed offsets back (the checker's
//! at-least-once invariant). Only a parked JoinGroup or SyncGroup is abandoned
//! now; a commit is waited for.
//!
//! Seed 1050242 (`gated-rebalance`, heavy faults): a member held a rebalance
//! (long batch) from its first REBALANCE_IN_PROGRESS, released it, then
//! revoked in gated mode and acknowledged late. The revocation's deadline was
//! counted from the end of the hold instead of from the notice, so it fell
//! after the coordinator's rebalance timeout: the member was removed
//! (NotRejoined), rejoined as a new member and started another round, over
//! and over until the run ended unstable. The revocation now keeps the
//! deadline of the notice.
//!
//! Seed 2001644 (`gated-rebalance`, heavy faults, found by the sweep after
//! the soak): the cooperative twin of 1050242. A rebalance noticed while a
//! cooperative revocation waited for its ack was ignored; the revocation gave
//! up at its deadline, the follow-up rejoin took that moment as its notice,
//! and a hold then outlasted the coordinator's timeout. The notice now counts.
#![allow(clippy::disallowed_methods)] // one anchor Instant per run; nothing depends on its value

use std::time::Instant;

use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{SimConfig, run};

fn assert_clean(seed: u64, scenario: Scenario) {
    let config = SimConfig {
        seed,
        scenario,
        faults: FaultLevel::Heavy,
        ..SimConfig::default()
    };
    let report = run(config, Instant::now());
    assert_eq!(
        report.violation_count,
        0,
        "reproduce: {}\n{:#?}",
        report.config.repro_command(),
        report.violations
    );
}

#[test]
fn close_waits_for_the_commit_in_flight_instead_of_sending_it_again() {
    assert_clean(200_134, Scenario::CommitDuringRebalance);
}

#[test]
fn a_revocation_after_a_hold_keeps_the_deadline_of_the_notice() {
    assert_clean(1_050_242, Scenario::GatedRebalance);
}

#[test]
fn a_rebalance_noticed_during_a_cooperative_revocation_counts() {
    assert_clean(2_001_644, Scenario::GatedRebalance);
}
