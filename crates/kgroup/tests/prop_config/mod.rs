//! One proptest configuration for every property test of the engine.
//!
//! CI runs each property with a fixed RNG seed, so a red run is reproducible
//! and a green one is not luck. To search further, set
//! `KGROUP_PROPTEST_SEED=random` (a fresh seed each run; proptest prints the
//! failing case and persists it) or a number, and `PROPTEST_CASES=N` for a
//! longer run, e.g.
//! `KGROUP_PROPTEST_SEED=random PROPTEST_CASES=20000 cargo test -p kgroup --test offsets_props`.

use proptest::test_runner::{Config, RngSeed};

/// The fixed seed CI uses ("kgroup").
const CI_SEED: u64 = 0x6b67_726f_7570;

/// `cases` cases (unless `PROPTEST_CASES` says otherwise) with the seed the
/// environment selects.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let rng_seed = match std::env::var("KGROUP_PROPTEST_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(n) => RngSeed::Fixed(n.parse().unwrap_or(CI_SEED)),
        Err(_) => RngSeed::Fixed(CI_SEED),
    };
    Config {
        cases,
        rng_seed,
        ..Config::default()
    }
}
