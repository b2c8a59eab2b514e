//! Seeded schedules against the real engine, with the invariant checker.
#![allow(clippy::disallowed_methods)] // one anchor Instant per run; nothing depends on its value

use std::time::Instant;

use kgroup_sim::sim::scenario::{FaultLevel, Scenario};
use kgroup_sim::sim::{Mutation, SimConfig, run};

fn cfg(seed: u64, scenario: Scenario, faults: FaultLevel) -> SimConfig {
    SimConfig {
        seed,
        scenario,
        faults,
        ..SimConfig::default()
    }
}

#[test]
fn debug_one_seed() {
    let mut c = cfg(1, Scenario::Random, FaultLevel::None);
    c.keep_trace = true;
    let r = run(c, Instant::now());
    for l in r.trace.iter().take(400) {
        println!("{l}");
    }
    for v in &r.violations {
        println!("VIOLATION {v}");
    }
    println!(
        "gens={} checks={} steps={} commits={}/{}",
        r.generations, r.checks, r.steps, r.commits_accepted, r.commits_rejected
    );
    let _ = Mutation::None;
}
