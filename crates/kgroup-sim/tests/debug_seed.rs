//! Print the trace of one schedule: `SIM_SEED=1 SIM_SCENARIO=double-bounce SIM_FAULTS=heavy cargo test -p kgroup-sim --test debug_seed -- --ignored --nocapture`.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use kgroup_sim::sim::{SimConfig, run};

#[test]
#[ignore = "debugging aid: prints a trace"]
fn print_trace() {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let c = SimConfig {
        seed: var("SIM_SEED", "1").parse().unwrap_or(1),
        scenario: var("SIM_SCENARIO", "random")
            .parse()
            .unwrap_or(kgroup_sim::sim::scenario::Scenario::Random),
        faults: var("SIM_FAULTS", "light")
            .parse()
            .unwrap_or(kgroup_sim::sim::scenario::FaultLevel::Light),
        keep_trace: true,
        ..SimConfig::default()
    };
    let r = run(c, Instant::now());
    for l in &r.trace {
        println!("{l}");
    }
    for v in &r.violations {
        println!("VIOLATION {v}");
    }
}
