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
use kgroup::fuzzing::engine_harness::{Answer, Mutation, OffsetAnswer, Op, Setup};
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

/// An all-zero input is the happy path: join, lead, sync, the OffsetFetch
/// of the new partitions answered (nothing committed yet), `Assigned`
/// carrying `Committed::None`, then the final close leaves cleanly.
#[test]
fn engine_all_zero_input_is_the_happy_path() {
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let events = fuzzing::engine_events(&[0u8; 256], base);
    let joined = events.iter().position(|e| e.starts_with("Joined"));
    let assigned = events.iter().position(|e| e.starts_with("Assigned"));
    assert!(joined.is_some() && joined < assigned, "{events:#?}");
    let Some(a) = assigned.and_then(|i| events.get(i)) else {
        panic!("no Assigned: {events:#?}");
    };
    assert!(a.contains("leader: true") || events.iter().any(|e| e.contains("leader: true")));
    assert!(a.contains("None"), "Assigned without fetched offsets: {a}");
    assert!(!a.contains("NotFetched"), "Assigned not fetched: {a}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("Left"),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.starts_with("Fatal") || e.starts_with("Warning") || e.starts_with("Lost")),
        "{events:#?}"
    );
}

/// A scenario built as values: a stable group (mostly happy answers) with
/// the application committing, marking and fetching, time passing (auto-
/// commit), and offsets answers with random errors, shapes and mutations.
fn offsets_scenario(rng: &mut SampleRng) -> (Setup, Vec<Op>) {
    let setup = Setup {
        assignors: rng.below(6) as u8,
        static_member: rng.chance(1, 3),
        gated: rng.chance(1, 3),
        timing: rng.below(3) as u8,
        seed: rng.next_u64(),
        topics: rng.below(16) as u8,
        partitions: [0, rng.below(9) as u8, 0, rng.below(9) as u8],
        offsets: rng.below(32) as u8,
    };
    let small = |rng: &mut SampleRng, n: u64| rng.below(n) as u8;
    let mut ops = Vec::new();
    for _ in 0..(20 + rng.below(100)) {
        let op = match rng.below(20) {
            0..=5 => Op::Respond(Answer {
                pick: small(rng, 3),
                // Mostly no error: 1 in 8 answers carries one.
                error: if rng.chance(1, 8) {
                    128 + small(rng, 128)
                } else {
                    0
                },
                who: 0,
                which: 0,
                mask: 0,
            }),
            6..=8 => Op::Commit {
                owned: !rng.chance(1, 6),
                mask: rng.next_u64() as u16,
                step: if rng.chance(1, 20) {
                    255
                } else {
                    small(rng, 50)
                },
                meta: if rng.chance(1, 4) { small(rng, 40) } else { 0 },
            },
            9 | 10 => Op::Mark {
                owned: !rng.chance(1, 6),
                pick: small(rng, 16),
                step: small(rng, 50),
            },
            11 => Op::FetchCommitted {
                owned: !rng.chance(1, 6),
                mask: rng.next_u64() as u16,
            },
            12..=14 => {
                let answer = OffsetAnswer {
                    pick: small(rng, 4),
                    top: if rng.chance(1, 6) {
                        96 + small(rng, 160)
                    } else {
                        0
                    },
                    codes: (0..rng.below(4))
                        .map(|_| {
                            if rng.chance(1, 2) {
                                96 + small(rng, 160)
                            } else {
                                0
                            }
                        })
                        .collect(),
                    offsets: (0..rng.below(3))
                        .map(|_| rng.below(200) as i16 - 3)
                        .collect(),
                    meta: if rng.chance(1, 4) { small(rng, 30) } else { 0 },
                    shape: if rng.chance(1, 6) { small(rng, 16) } else { 0 },
                };
                if rng.chance(1, 5) {
                    let mutations = vec![Mutation::Flip {
                        at: rng.below(200) as u16,
                        bit: small(rng, 8),
                    }];
                    Op::MutatedOffsets(answer, mutations)
                } else {
                    Op::RespondOffsets(answer)
                }
            }
            15 | 16 => Op::Advance {
                ms: rng.below(3000) as u16,
                long: rng.chance(1, 6),
            },
            17 => Op::Transport {
                pick: small(rng, 3),
                connect: rng.chance(1, 2),
            },
            18 => Op::AckRevoked,
            _ => match rng.below(6) {
                0 => Op::Subscribe(small(rng, 16)),
                1 => Op::Repartition {
                    topic: small(rng, 4),
                    partitions: small(rng, 9),
                },
                2 => Op::Close,
                _ => Op::Fire,
            },
        };
        ops.push(op);
    }
    (setup, ops)
}

/// The offsets path driven with values: every property of the engine
/// target holds, and the scenarios reach what they are meant to (commits
/// finished Ok and failed, commits of the marks, fetches answered).
#[test]
fn engine_offsets_scenarios_hold_and_reach_commits_and_fetches() {
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    // KGROUP_FUZZ_SCENARIOS / KGROUP_FUZZ_SEED run more (or other) scenarios
    // by hand; the default keeps `cargo test` well under a second.
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = SampleRng::new(var("KGROUP_FUZZ_SEED").unwrap_or(0x0FF5));
    let (mut ok, mut marked, mut fetched, mut failed) = (0, 0, 0, 0);
    let n = var("KGROUP_FUZZ_SCENARIOS").unwrap_or(600);
    for i in 0..n {
        let (setup, ops) = offsets_scenario(&mut rng);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fuzzing::engine_scenario(&setup, &ops, base)
        }));
        let events = match outcome {
            Ok(events) => events,
            Err(_) => panic!("generated offsets scenario {i} fails: {setup:?} {ops:?}"),
        };
        for e in events {
            if e.starts_with("Offsets(CommitDone") {
                if e.contains("result: Ok") {
                    ok += 1;
                } else {
                    failed += 1;
                }
                if e.contains("kind: Marked") {
                    marked += 1;
                }
            } else if e.starts_with("Offsets(FetchDone") {
                fetched += 1;
            }
        }
    }
    eprintln!(
        "{n} offsets scenarios: {ok} commits Ok, {failed} failed, {marked} of the marks, {fetched} fetches"
    );
    assert!(ok >= 100 && failed >= 50 && marked >= 20 && fetched >= 20);
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

/// Prints what an `engine` input does: `KGROUP_FUZZ_TRACE=path cargo test
/// -p kgroup --test fuzz_replay trace_engine_input -- --ignored --nocapture`.
#[test]
#[ignore = "a debugging aid: run by hand with KGROUP_FUZZ_TRACE set"]
fn trace_engine_input() {
    let Ok(path) = std::env::var("KGROUP_FUZZ_TRACE") else {
        return;
    };
    let Ok(data) = std::fs::read(&path) else {
        panic!("cannot read {path}");
    };
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    fuzzing::engine_trace(&data, base);
}

/// Finding (engine target, 2026-12-01): `close()` stops auto-commit, but the
/// next membership view handed while leaving (the group engine moves to
/// `Revoking` on close) re-armed the auto-commit timer, so a closing member
/// woke up every `auto_commit_interval` until the LeaveGroup deadline (every
/// 100 ms for 30 s in the fuzzer's input) with nothing it could commit.
#[test]
fn auto_commit_is_not_rearmed_after_close() {
    use kgroup::offsets::{MembershipView, Offsets, OffsetsConfig, RebalancePhase};
    use std::time::Duration;
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let config = OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_millis(100)));
    let Ok(mut o) = Offsets::new(config, now) else {
        panic!("valid offsets configuration refused");
    };
    let tp = TopicPartition::new("t0", 0);
    o.handle_membership(
        now,
        MembershipView::member(1, "m-1", [tp.clone()], RebalancePhase::Stable),
    );
    assert_eq!(o.poll_timeout(), Some(now + Duration::from_millis(100)));
    o.close(now);
    assert_eq!(o.poll_timeout(), None, "close keeps the auto-commit timer");
    // Leaving: the group engine hands the Revoking view, still a member.
    o.handle_membership(
        now,
        MembershipView::member(1, "m-1", [tp], RebalancePhase::Revoking),
    );
    assert_eq!(
        o.poll_timeout(),
        None,
        "a view handed after close re-armed auto-commit"
    );
}

/// Finding (sticky_user_data target, 2026-12-01): the 249-byte topic name
/// bound was checked on the wire bytes, but names are decoded leniently
/// (each invalid UTF-8 byte becomes a 3-byte U+FFFD, as Java does), so a
/// 100-byte name of invalid bytes decoded into a 300-byte name: accepted,
/// yet re-encoded into user data the decoder refuses. The bound now applies
/// to the decoded name.
#[test]
fn sticky_user_data_lossy_topic_name_round_trips() {
    let Some((_, data)) = corpus("sticky_user_data")
        .into_iter()
        .find(|(name, _)| name == "regression-lossy-topic-name-too-long")
    else {
        panic!("regression input missing from the corpus");
    };
    // 100 bytes of 0x95 (invalid UTF-8), one partition, generation 1.
    assert_eq!(data.len(), 4 + 2 + 100 + 4 + 4 + 4);
    match userdata::decode_sticky(&data) {
        Err(userdata::UserDataError::TopicNameTooLong(_)) => {}
        other => panic!("a name decoding to 300 bytes accepted: {other:?}"),
    }
    fuzzing::sticky_user_data(&data);
    // A valid 249-byte name still decodes and round-trips.
    let ok = userdata::encode_sticky(&[TopicPartition::new("x".repeat(249), 3)], Some(2));
    let Ok(d) = userdata::decode_sticky(&ok) else {
        panic!("249-byte topic name refused");
    };
    assert_eq!(d.partitions, vec![TopicPartition::new("x".repeat(249), 3)]);
    fuzzing::sticky_user_data(&ok);
}

/// Fuzz crash 464de6f9 (`engine`, 2026-12-01, third session): a run of
/// 9,000 virtual seconds left 278 bootstrap ApiVersions requests that had
/// timed out (each on a new connection, 31 s apart, as they should) ahead
/// of the LeaveGroup in the harness's answer queue; the end-of-run check
/// gave closing 256 steps and stopped before it reached the LeaveGroup. A
/// harness bound, not an engine bug: the budget now counts the requests
/// still queued. The input stays in the corpus.
#[test]
fn engine_close_completes_after_hundreds_of_abandoned_requests() {
    let bytes =
        std::fs::read(corpus_dir("engine").join("crash-464de6f9791e0e03d315e260b492aa83fc3b519e"))
            .expect("the crash input is in the corpus");
    #[allow(clippy::disallowed_methods)] // an arbitrary base for virtual time
    let base = Instant::now();
    fuzzing::engine(&bytes, base);
    let events = fuzzing::engine_harness::engine_events(&bytes, base);
    let timed_out = events
        .iter()
        .filter(|e| e.contains("ApiVersions") && e.contains("request timed out"))
        .count();
    assert!(
        timed_out > 256,
        "the input still times out {timed_out} ApiVersions"
    );
    assert!(
        events.last().is_some_and(|e| e == "Left"),
        "{:?}",
        events.last()
    );
}
