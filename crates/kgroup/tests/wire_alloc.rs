//! Allocation bounds of the wire layer, measured under a counting global
//! allocator.
//!
//! - The known killer input (a ~25-byte JoinGroup v9 response whose members
//!   count is u32::MAX) and thousands of random and mutated frames per
//!   response type and version (bit flips, count bumps, truncation,
//!   splicing) decode to a value or a typed error, never panic, and make no
//!   single allocation above 2 × the frame length + 64 KiB.
//! - A dense but well-formed frame is refused before it allocates more than
//!   the decoder's bound.
//! - A steady heartbeat round (encode into a reused buffer, register,
//!   match, decode) makes no heap allocation at all.
//!
//! The largest single allocation observed for hostile input is printed
//! (`cargo test --test wire_alloc -- --nocapture`).
// The counting allocator needs `unsafe impl GlobalAlloc`; the engine itself
// stays `forbid(unsafe_code)`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::wire::bounded::sample::{
    SampleRng, sample_consumer_protocol, sample_frame, sample_frame_with,
};
use kgroup::wire::bounded::{DEFAULT_DENSE_SLACK, Limits, validated_apis};
use kgroup::wire::{
    Assignment, FrameDecoder, InFlight, Subscription, WireError, decode_response,
    decode_response_lenient, encode_request_into,
};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; `note` only touches const-initialised thread-locals and never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with (largest single allocation,
/// number of allocations) made on this thread meanwhile.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, u64) {
    LARGEST.with(|l| l.set(0));
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, LARGEST.with(Cell::get), COUNT.with(Cell::get))
}

/// The criterion of issue 3: no single allocation above 2 × frame + 64 KiB.
fn criterion(frame_len: usize) -> usize {
    2 * frame_len + 64 * 1024
}

/// Decodes `frame` as `api` at `version` with the lenient decoder (which
/// runs the strict one first), dropping the value.
fn decode_any(api: ApiKey, version: i16, frame: Bytes) -> Result<(), WireError> {
    fn go<R>(api: ApiKey, version: i16, frame: Bytes) -> Result<(), WireError>
    where
        R: kgroup::kafka_protocol::protocol::Decodable
            + kgroup::kafka_protocol::protocol::HeaderVersion,
    {
        decode_response_lenient::<R>(api, version, frame).map(|_| ())
    }
    match api {
        ApiKey::ApiVersions => go::<ApiVersionsResponse>(api, version, frame),
        ApiKey::FindCoordinator => go::<FindCoordinatorResponse>(api, version, frame),
        ApiKey::JoinGroup => go::<JoinGroupResponse>(api, version, frame),
        ApiKey::SyncGroup => go::<SyncGroupResponse>(api, version, frame),
        ApiKey::Heartbeat => go::<HeartbeatResponse>(api, version, frame),
        ApiKey::LeaveGroup => go::<LeaveGroupResponse>(api, version, frame),
        ApiKey::OffsetCommit => go::<OffsetCommitResponse>(api, version, frame),
        ApiKey::OffsetFetch => go::<OffsetFetchResponse>(api, version, frame),
        ApiKey::Metadata => go::<MetadataResponse>(api, version, frame),
        ApiKey::ConsumerGroupHeartbeat => go::<ConsumerGroupHeartbeatResponse>(api, version, frame),
        other => panic!("no decoder for {other:?}"),
    }
}

/// Worst case seen: (largest allocation, frame length, what).
#[derive(Default)]
struct Worst {
    largest: usize,
    frame_len: usize,
    what: String,
    checked: u64,
    rejected: u64,
}

impl Worst {
    fn record(&mut self, largest: usize, frame_len: usize, what: impl FnOnce() -> String) {
        self.checked += 1;
        assert!(
            largest <= criterion(frame_len),
            "{}: single allocation of {largest} bytes for a {frame_len}-byte frame",
            what()
        );
        if largest > self.largest {
            self.largest = largest;
            self.frame_len = frame_len;
            self.what = what();
        }
    }
}

/// Mutates a valid frame the ways hostile peers and broken links do.
fn mutate(frame: &[u8], other: &[u8], rng: &mut SampleRng) -> Vec<u8> {
    let mut f = frame.to_vec();
    let len = f.len().max(1);
    match rng.below(6) {
        // Bit flips.
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(len as u64) as usize;
                if let Some(b) = f.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        // Count / length bumps: a huge int32, int16 or uvarint at a random place.
        1 => {
            let i = rng.below(len as u64) as usize;
            let bump: &[u8] = match rng.below(4) {
                0 => &[0x7f, 0xff, 0xff, 0xff],
                1 => &[0x7f, 0xff],
                2 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                _ => &[0x00, 0x10, 0x00, 0x00],
            };
            for (k, b) in bump.iter().enumerate() {
                if let Some(slot) = f.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        // Insert a huge uvarint (shifts everything after it).
        2 => {
            let i = rng.below(len as u64) as usize;
            let i = i.min(f.len());
            f.splice(i..i, [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        }
        // Truncation.
        3 => f.truncate(rng.below(len as u64) as usize),
        // Splice: a prefix of this frame and a suffix of another.
        4 => {
            let cut = rng.below(len as u64) as usize;
            let from = rng.below(other.len().max(1) as u64) as usize;
            f.truncate(cut);
            f.extend_from_slice(other.get(from..).unwrap_or_default());
        }
        // Random bytes appended or a random byte set.
        _ => {
            let i = rng.below(len as u64) as usize;
            if let Some(b) = f.get_mut(i) {
                *b = rng.below(256) as u8;
            }
            if rng.chance(1, 2) {
                f.push(rng.below(256) as u8);
            }
        }
    }
    f
}

#[test]
fn killer_join_group_v9_frame_is_refused_without_allocating() {
    let mut f = vec![0, 0, 0, 1, 0]; // correlation id, empty header tags
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // throttle, error, generation
    f.extend_from_slice(&[0, 0, 1, 0, 1]); // type, name, leader, skip, member id
    f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // members: u32::MAX (count u32::MAX - 1)
    let frame = Bytes::from(f);
    let frame_len = frame.len();
    let (result, largest, _) =
        measure(|| decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 9, frame));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            WireError::HostileCount {
                field: "members",
                ..
            }
        ),
        "{err}"
    );
    println!("killer JoinGroup v9 ({frame_len} bytes): largest single allocation {largest} bytes");
    assert!(largest <= criterion(frame_len), "{largest}");
}

#[test]
fn random_and_mutated_frames_stay_within_the_bound_and_never_panic() {
    let per_version: u64 = std::env::var("KGROUP_WIRE_ALLOC_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut worst = Worst::default();
    for (api, span) in validated_apis() {
        for version in span.min..=span.max {
            let mut rng = SampleRng::new(0xa110c ^ ((api as u64) << 20) ^ version as u64);
            let mut previous = sample_frame(api, version, 1, &mut rng).unwrap();
            for i in 0..per_version {
                // One frame in sixteen has long arrays, so mutated counts
                // land inside large, legitimately dense frames too.
                let items = if i % 16 == 7 { 24 } else { 4 };
                let valid = sample_frame_with(api, version, i as i32, &mut rng, items).unwrap();
                let frame = if i % 4 == 0 {
                    valid.clone()
                } else {
                    let mut m = mutate(&valid, &previous, &mut rng);
                    if rng.chance(1, 3) {
                        m = mutate(&m, &previous, &mut rng);
                    }
                    m
                };
                previous = valid;
                let frame_len = frame.len();
                let bytes = Bytes::from(frame);
                let (result, largest, _) = measure(|| decode_any(api, version, bytes.clone()));
                if let Err(err) = &result {
                    worst.rejected += 1;
                    // The validator is at least as strict as the decoder:
                    // kafka-protocol never sees a body it would refuse.
                    assert!(
                        !err.to_string()
                            .contains(kgroup::wire::codec::DECODER_DISAGREES),
                        "{api:?} v{version}: {err}\n{:02x?}",
                        &bytes[..]
                    );
                }
                worst.record(largest, frame_len, || {
                    format!("{api:?} v{version} frame {:02x?}", &bytes[..])
                });
            }
        }
    }
    println!(
        "wire alloc: {} frames ({} rejected); largest single allocation {} bytes, for a {}-byte frame ({})",
        worst.checked,
        worst.rejected,
        worst.largest,
        worst.frame_len,
        worst.what.chars().take(60).collect::<String>()
    );
    assert!(
        worst.rejected > worst.checked / 4,
        "mutations must mostly be refused"
    );
}

#[test]
fn mutated_consumer_protocol_payloads_stay_within_the_bound() {
    let mut worst = Worst::default();
    let mut rng = SampleRng::new(0xc0de);
    for i in 0..20_000u64 {
        let assignment = i % 2 == 0;
        let version = (i % 4) as i16;
        let mut payload = version.to_be_bytes().to_vec();
        payload.extend(sample_consumer_protocol(assignment, version, &mut rng));
        let other = payload.clone();
        let payload = if i % 5 == 0 {
            payload
        } else {
            mutate(&payload, &other, &mut rng)
        };
        let (_, largest, _) = measure(|| {
            if assignment {
                Assignment::decode(&payload).map(|_| ())
            } else {
                Subscription::decode(&payload).map(|_| ())
            }
        });
        worst.record(largest, payload.len(), || format!("payload {payload:02x?}"));
    }
    println!(
        "consumer protocol: {} payloads; largest single allocation {} bytes for {} bytes",
        worst.checked, worst.largest, worst.frame_len
    );
}

#[test]
fn dense_well_formed_frame_is_refused_before_allocating_past_the_bound() {
    // OffsetCommit v2: one topic with 300 000 partitions of 6 wire bytes,
    // each decoding into a much larger struct: 1.8 MB on the wire, over
    // 2 × 1.8 MB + 1 MiB in memory.
    let partitions: u32 = 300_000;
    let mut f = vec![0, 0, 0, 5]; // correlation id (header v0)
    f.extend_from_slice(&1i32.to_be_bytes()); // topics: 1
    f.extend_from_slice(&1i16.to_be_bytes());
    f.push(b't');
    f.extend_from_slice(&(partitions as i32).to_be_bytes());
    for p in 0..partitions {
        f.extend_from_slice(&(p as i32).to_be_bytes());
        f.extend_from_slice(&0i16.to_be_bytes());
    }
    let frame_len = f.len();
    let bytes = Bytes::from(f);
    let (result, largest, _) =
        measure(|| decode_response::<OffsetCommitResponse>(ApiKey::OffsetCommit, 2, bytes.clone()));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            WireError::DenseFrame {
                field: "partitions",
                ..
            }
        ),
        "{err}"
    );
    let bound = Limits::default().bound(frame_len) as usize;
    assert!(largest <= bound, "{largest} > {bound}");
    assert!(largest <= criterion(frame_len));

    // The same frame passes with a looser limit, and its array then needs
    // more than the default bound: the refusal above was the bound at work.
    let loose = Limits {
        dense_factor: 16,
        dense_slack: DEFAULT_DENSE_SLACK,
        ..Limits::default()
    };
    let (result, largest, _) = measure(|| {
        kgroup::wire::decode_response_with::<OffsetCommitResponse>(
            ApiKey::OffsetCommit,
            2,
            bytes,
            &loose,
        )
    });
    let (_, body) = result.unwrap();
    assert_eq!(body.topics[0].partitions.len(), partitions as usize);
    assert!(largest > bound, "{largest} <= {bound}");
}

#[test]
fn frame_decoder_does_not_trust_length_prefixes() {
    let (result, largest, _) = measure(|| {
        let mut dec = FrameDecoder::default();
        // Claims 100 MiB, sends 8 bytes.
        dec.push(&(100 * 1024 * 1024i32).to_be_bytes()).unwrap();
        dec.push(&[0; 8]).unwrap();
        let pending = dec.next_frame().unwrap();
        // Claims 2 GiB - 1: refused.
        let mut dec2 = FrameDecoder::default();
        let err = dec2.push(&i32::MAX.to_be_bytes()).unwrap_err();
        (pending, err)
    });
    let (pending, err) = result;
    assert!(pending.is_none());
    assert!(matches!(err, WireError::FrameTooLarge { .. }));
    assert!(largest <= criterion(12), "{largest}");
}

#[test]
fn steady_heartbeat_round_makes_no_heap_allocation() {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("orders")))
        .with_generation_id(12)
        .with_member_id(StrBytes::from_static_str("kgroup-0-7f3c"))
        .with_group_instance_id(Some(StrBytes::from_static_str("instance-1")));
    let mut out = BytesMut::with_capacity(256);
    let mut in_flight = InFlight::new();
    // Warm up: the in-flight queue reaches its working capacity.
    in_flight.register(0, ApiKey::Heartbeat, 4).unwrap();
    in_flight.take(0).unwrap();
    for version in [3i16, 4] {
        for round in 1..=3 {
            let ((encoded, error_code), _, allocations) = measure(|| {
                out.clear();
                encode_request_into(
                    &mut out,
                    ApiKey::Heartbeat,
                    version,
                    round,
                    "kgroup",
                    &request,
                )
                .unwrap();
                in_flight
                    .register(round, ApiKey::Heartbeat, version)
                    .unwrap();
                let frame = heartbeat_response(version, round);
                let (_, api, v) = in_flight.take_for_frame(&frame).unwrap();
                let (_, hb) = decode_response::<HeartbeatResponse>(api, v, frame).unwrap();
                (out.len(), hb.error_code)
            });
            assert!(encoded > 30);
            assert_eq!(error_code, 0);
            assert_eq!(
                allocations, 0,
                "heartbeat v{version} round {round} allocated"
            );
        }
    }
}

/// A static Heartbeat response (throttle 0, no error) with correlation id
/// `id` (1..=3): header v1 for v4, v0 before.
fn heartbeat_response(version: i16, id: i32) -> Bytes {
    static V4: [[u8; 12]; 3] = [
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    static V3: [[u8; 10]; 3] = [
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 2, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 3, 0, 0, 0, 0, 0, 0],
    ];
    let i = (id as usize - 1) % 3;
    if version >= 4 {
        Bytes::from_static(&V4[i])
    } else {
        Bytes::from_static(&V3[i])
    }
}

/// A JoinGroup v9 response with `members` minimal members (4 bytes each:
/// empty id, null instance id, empty metadata, no tags).
fn empty_members_frame(members: u32) -> Bytes {
    let mut f = vec![0, 0, 0, 1, 0];
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut n = members + 1;
    while n >= 0x80 {
        f.push((n as u8) | 0x80);
        n >>= 7;
    }
    f.push(n as u8);
    for _ in 0..members {
        f.extend_from_slice(&[1, 0, 1, 0]);
    }
    f.push(0); // top-level tags
    Bytes::from(f)
}

#[test]
fn worst_case_hostile_amplification_is_capped_by_the_dense_bound() {
    // Each 4-byte member decodes into a 120-byte struct: the most a
    // well-formed JoinGroup frame can amplify. Find the largest member count
    // the default limits accept, decode it, and measure.
    let limits = Limits::default();
    let mem = std::mem::size_of::<join_group_response::JoinGroupResponseMember>() as u64;
    let accepted = (1..200_000u32)
        .rev()
        .step_by(64)
        .find(|&n| {
            let len = empty_members_frame(0).len() as u64 + 4 * u64::from(n) + 2;
            u64::from(n) * mem <= limits.bound(len as usize)
        })
        .unwrap();
    let frame = empty_members_frame(accepted);
    let frame_len = frame.len();
    let (result, largest, _) = measure(|| {
        decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 9, frame)
            .map(|(_, r)| r.members.len())
    });
    assert_eq!(result.unwrap(), accepted as usize);
    let bound = limits.bound(frame_len) as usize;
    println!(
        "worst-case well-formed hostile frame: JoinGroup v9, {accepted} empty members, \
         {frame_len} bytes: largest single allocation {largest} bytes (bound 2 x frame + 1 MiB = {bound})"
    );
    assert!(largest <= bound, "{largest} > {bound}");

    // A few thousand more members cross the bound: refused before decoding.
    let frame = empty_members_frame(accepted + 4096);
    let frame_len = frame.len();
    let (result, largest, _) =
        measure(|| decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 9, frame));
    assert!(matches!(
        result,
        Err(WireError::DenseFrame {
            field: "members",
            ..
        })
    ));
    assert!(largest <= criterion(frame_len), "{largest}");
}

#[test]
fn a_flood_of_unknown_tagged_fields_is_refused() {
    // Heartbeat v4 whose top-level tag section holds 200 000 distinct empty
    // unknown tags (3 bytes each): each would become a BTreeMap entry.
    let tags: u32 = 200_000;
    let mut f = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    let put = |f: &mut Vec<u8>, mut v: u32| {
        while v >= 0x80 {
            f.push((v as u8) | 0x80);
            v >>= 7;
        }
        f.push(v as u8);
    };
    put(&mut f, tags);
    for t in 0..tags {
        put(&mut f, 1000 + t);
        put(&mut f, 0);
    }
    let frame_len = f.len();
    let bytes = Bytes::from(f);
    let (result, largest, _) =
        measure(|| decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 4, bytes));
    let err = result.unwrap_err();
    assert!(matches!(err, WireError::DenseFrame { .. }), "{err}");
    assert!(largest <= criterion(frame_len), "{largest}");
}
