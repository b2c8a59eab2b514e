//! Fuzz target `engine`: a whole `kgroup::Group` driven by an arbitrary
//! sequence of responses, transport errors, time and commands; see
//! `kgroup::fuzzing::engine` (the replay test in
//! crates/kgroup/tests/fuzz_replay.rs runs the same function over the corpus).
#![no_main]

#[global_allocator]
static ALLOC: kgroup_fuzz::CappedAlloc = kgroup_fuzz::CappedAlloc;

use std::sync::OnceLock;
use std::time::Instant;

/// One base instant for the whole run: the engine never reads the clock, so
/// the same input gives the same run whatever the base.
static BASE: OnceLock<Instant> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = *BASE.get_or_init(Instant::now);
    kgroup::fuzzing::engine(data, base);
});
