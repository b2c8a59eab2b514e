//! The fuzz targets as plain tests: every target of `fuzz/` runs here over
//! its committed corpus (`fuzz/corpus/<target>/`: seeds captured from the
//! test broker, frames encoded by kafka-protocol, inputs the fuzzer kept,
//! minimized crashers) plus a few thousand inputs generated from a fixed
//! seed, through the same `kgroup::fuzzing` functions the fuzz targets call.
//! So `cargo test` replays the fuzzing everywhere, on stable, without
//! cargo-fuzz; a failure names the corpus file or the generated input.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kgroup::TopicPartition;
use kgroup::assignor::userdata;
use kgroup::fuzzing;
use kgroup::wire::bounded::sample::{SampleRng, sample_consumer_protocol, sample_frame_with};
use kgroup::wire::bounded::validated_apis;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of a target's committed corpus, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("no corpus directory {}", dir.display());
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            std::fs::read(e.path()).ok().map(|b| (name, b))
        })
        .collect();
    files.sort();
    files
}

/// Runs `f` on every corpus file, naming the file when it panics.
fn replay(target: &str, f: impl Fn(&[u8])) -> usize {
    let files = corpus(target);
    assert!(!files.is_empty(), "empty corpus for {target}");
    for (name, bytes) in &files {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(bytes)));
        if let Err(e) = outcome {
            panic!(
                "{target}: corpus file {name} fails: {}",
                e.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("panic")
            );
        }
    }
    files.len()
}

fn random_bytes(rng: &mut SampleRng, max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len + 1) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// A byte-level mutation of `input`: bit flips, truncation, inserted bytes,
/// an overwritten 4-byte count.
fn mutate(input: &[u8], rng: &mut SampleRng) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(3) {
        let len = v.len().max(1) as u64;
        match rng.below(4) {
            0 => {
                if let Some(b) = v.get_mut(rng.below(len) as usize) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => v.truncate(rng.below(len) as usize),
            2 => {
                let at = (rng.below(len) as usize).min(v.len());
                let extra = random_bytes(rng, 8);
                v.splice(at..at, extra);
            }
            _ => {
                let at = rng.below(len) as usize;
                let value = match rng.below(3) {
                    0 => u32::MAX,
                    1 => i32::MAX as u32,
                    _ => rng.next_u64() as u32,
                };
                for (k, b) in value.to_be_bytes().into_iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + k) {
                        *slot = b;
                    }
                }
            }
        }
    }
    v
}

#[test]
fn framing_replays_corpus_and_generated_streams() {
    let n = replay("framing", fuzzing::framing);
    let mut rng = SampleRng::new(0xF4A3);
    for _ in 0..3000 {
        fuzzing::framing(&random_bytes(&mut rng, 600));
    }
    eprintln!("framing: {n} corpus files + 3000 generated");
}

#[test]
fn decode_response_replays_corpus_and_mutated_frames_of_every_api_version() {
    let n = replay("decode_response", |b| {
        let _ = fuzzing::decode_response(b);
    });
    let mut rng = SampleRng::new(0xDEC0);
    let mut count = 0;
    for (api, span) in validated_apis() {
        for version in span.min..=span.max {
            for _ in 0..40 {
                let Some(frame) = sample_frame_with(api, version, 7, &mut rng, 3) else {
                    continue;
                };
                let mut input = vec![api as i16 as u8, version as u8];
                if rng.chance(1, 4) {
                    input.extend_from_slice(&frame);
                } else {
                    input.extend_from_slice(&mutate(&frame, &mut rng));
                }
                let _ = fuzzing::decode_response(&input);
                count += 1;
            }
        }
    }
    assert!(count > 2000, "only {count} generated frames");
    eprintln!("decode_response: {n} corpus files + {count} generated");
}

#[test]
fn consumer_protocol_replays_corpus_and_mutated_payloads() {
    let n = replay("consumer_protocol", fuzzing::consumer_protocol);
    let mut rng = SampleRng::new(0xC0C0);
    for i in 0..3000u32 {
        let version = (i % 5) as i16;
        let mut payload = version.to_be_bytes().to_vec();
        payload.extend(sample_consumer_protocol(
            i % 2 == 0,
            version.min(3),
            &mut rng,
        ));
        fuzzing::consumer_protocol(&payload);
        fuzzing::consumer_protocol(&mutate(&payload, &mut rng));
    }
    eprintln!("consumer_protocol: {n} corpus files + 6000 generated");
}

#[test]
fn sticky_user_data_replays_corpus_and_mutated_data() {
    let n = replay("sticky_user_data", fuzzing::sticky_user_data);
    let mut rng = SampleRng::new(0x571C);
    for _ in 0..3000 {
        let partitions: Vec<TopicPartition> = (0..rng.below(8))
            .map(|_| TopicPartition::new(format!("t{}", rng.below(3)), rng.below(6) as i32))
            .collect();
        let generation = rng.chance(1, 2).then(|| rng.next_u64() as i32);
        let data = userdata::encode_sticky(&partitions, generation);
        fuzzing::sticky_user_data(&data);
        fuzzing::sticky_user_data(&mutate(&data, &mut rng));
    }
    eprintln!("sticky_user_data: {n} corpus files + 6000 generated");
}

#[test]
fn assignors_replay_corpus_and_generated_groups() {
    let n = replay("assignors", fuzzing::assignors);
    let mut rng = SampleRng::new(0xA551);
    for _ in 0..2000 {
        fuzzing::assignors(&random_bytes(&mut rng, 400));
    }
    eprintln!("assignors: {n} corpus files + 2000 generated");
}

#[test]
fn engine_replays_corpus_and_generated_scenarios() {
    // Any base instant works: the engine never reads the clock itself.
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let n = replay("engine", |b| fuzzing::engine(b, base));
    let mut rng = SampleRng::new(0xE961);
    for i in 0..1000 {
        // Mostly zeros (the happy path) with sparse random knobs, so the
        // scenarios reach a stable group before things go wrong.
        let len = 64 + rng.below(700) as usize;
        let density = 1 + (i % 8);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(16) < density {
                    rng.next_u64() as u8
                } else {
                    0
                }
            })
            .collect();
        fuzzing::engine(&input, base);
    }
    eprintln!("engine: {n} corpus files + 1000 generated");
}

// ----- regression tests for findings --------------------------------------------------

/// A ConsumerProtocol Assignment v0 with one topic whose name is
/// `name_len` bytes long and `partitions` partitions.
fn assignment_with_long_topic(name_len: usize, partitions: i32) -> Vec<u8> {
    let mut p = vec![0, 0]; // version 0
    p.extend_from_slice(&1i32.to_be_bytes()); // one topic
    p.extend_from_slice(&(name_len as i16).to_be_bytes());
    p.extend(std::iter::repeat_n(b'x', name_len));
    p.extend_from_slice(&partitions.to_be_bytes());
    for i in 0..partitions {
        p.extend_from_slice(&i.to_be_bytes());
    }
    p.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
    p
}

/// Heap bytes a decoded partition list holds: each `TopicPartition` owns a
/// copy of its topic name.
fn held(partitions: &[TopicPartition]) -> usize {
    partitions
        .iter()
        .map(|tp| std::mem::size_of::<TopicPartition>() + tp.topic.capacity())
        .sum()
}

/// Finding: decoding copied the topic name into every partition, so a
/// 98 KB assignment (one 32 KB topic name, 16,384 partitions) decoded into
/// 537 MB; a 1 MB SyncGroup answer would need ~8 GB (OOM). Kafka topic
/// names are at most 249 bytes (`Topic.MAX_NAME_LENGTH`); a longer one that
/// carries partitions is refused, which bounds the decoded size linearly.
#[test]
fn consumer_protocol_long_topic_name_amplification_is_bounded() {
    let payload = assignment_with_long_topic(32_767, 16_384);
    match kgroup::wire::Assignment::decode(&payload) {
        Err(_) => {}
        Ok((_, a)) => {
            let bytes = held(&a.partitions);
            assert!(
                bytes <= 128 * payload.len() + (1 << 20),
                "{} byte payload decoded into {bytes} bytes",
                payload.len()
            );
        }
    }
    // A legitimate payload: 249-byte names (the longest Kafka allows) decode.
    let ok = assignment_with_long_topic(249, 4_000);
    let (_, a) = kgroup::wire::Assignment::decode(&ok).expect("249-byte topic name decodes");
    assert_eq!(a.partitions.len(), 4_000);
}

/// The same amplification in `sticky` user data (a member's subscription
/// user data, decoded by the leader for every member).
#[test]
fn sticky_user_data_long_topic_name_amplification_is_bounded() {
    let mut data = 1i32.to_be_bytes().to_vec();
    data.extend_from_slice(&i16::MAX.to_be_bytes());
    data.extend(std::iter::repeat_n(b'x', i16::MAX as usize));
    let n = 16_384i32;
    data.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        data.extend_from_slice(&i.to_be_bytes());
    }
    data.extend_from_slice(&3i32.to_be_bytes());
    match userdata::decode_sticky(&data) {
        Err(_) => {}
        Ok(d) => {
            let bytes = held(&d.partitions);
            assert!(
                bytes <= 128 * data.len() + (1 << 20),
                "{} bytes of user data decoded into {bytes} bytes",
                data.len()
            );
        }
    }
}
