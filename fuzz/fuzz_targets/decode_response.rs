//! Fuzz target `decode_response`: byte 0 the API, byte 1 the version, the rest
//! a response frame without its size prefix; see
//! `kgroup::fuzzing::decode_response` (the replay test in
//! crates/kgroup/tests/fuzz_replay.rs runs the same function over the corpus).
#![no_main]

#[global_allocator]
static ALLOC: kgroup_fuzz::CappedAlloc = kgroup_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kgroup::fuzzing::decode_response(data);
});
