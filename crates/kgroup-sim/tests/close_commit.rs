//! Regression: closing while an OffsetCommit is in flight on the coordinator
//! connection.
//!
//! Seed 200134 (`commit-during-rebalance`, heavy faults): a member revoking
//! in an eager rebalance waits for its commits, which a latency spike delays;
//! it is closed meanwhile. `close` used to abandon whatever was in flight on
//! the coordinator connection and carry on over a new one, so the commit went
//! out a second time there; the first copy, still on the wire, landed after
//! the newer commits and moved four committed offsets back (the checker's
//! at-least-once invariant). Only a parked JoinGroup or SyncGroup is abandoned
//! now; a commit is waited for.
#![allow(clippy::disallowed_methods)] // one anchor Instant per run; nothing depends on its value

use std::time::Instant;

use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{SimConfig, run};

#[test]
fn close_waits_for_the_commit_in_flight_instead_of_sending_it_again() {
    let config = SimConfig {
        seed: 200_134,
        scenario: Scenario::CommitDuringRebalance,
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
