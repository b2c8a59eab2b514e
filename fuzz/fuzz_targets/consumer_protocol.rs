//! Fuzz target `consumer_protocol`: see `kgroup::fuzzing::consumer_protocol` for the input format and
//! the properties checked (the replay test in crates/kgroup/tests/fuzz_replay.rs
//! runs the same function over the committed corpus).
#![no_main]

#[global_allocator]
static ALLOC: kgroup_fuzz::CappedAlloc = kgroup_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kgroup::fuzzing::consumer_protocol(data);
});
