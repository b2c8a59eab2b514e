//! Fuzz-input interpretation, shared by the cargo-fuzz targets in `fuzz/`
//! and the plain `#[test]` replays in `tests/fuzz_replay.rs`, so both run
//! exactly the same code on the same bytes.
//!
//! Only built with the `fuzzing` feature; not part of the engine. Each
//! function takes the raw fuzz input, drives one layer with it and panics
//! (an `assert!`) when a property of that layer is broken. The properties
//! are the engine's promise for hostile input (docs/wire.md, DESIGN.md):
//! any bytes give a typed error or a valid transition, never a panic, a
//! hang or an allocation out of proportion to the input.
//!
//! - [`framing`]: `FrameDecoder` over an arbitrarily chunked stream;
//! - [`decode_response`]: every response decoder per API and version
//!   (strict, lenient, lenient error code, ApiVersions negotiation);
//! - [`consumer_protocol`]: ConsumerProtocol Subscription/Assignment decode;
//! - [`sticky_user_data`]: the sticky assignors' user data decode;
//! - [`assignors`]: the built-in assignors on arbitrary groups;
//! - [`engine`]: a whole [`crate::Group`] driven by arbitrary sequences of
//!   responses, transport errors, time and commands ([`engine_harness`]).

pub mod engine_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerGroupHeartbeatResponse, FindCoordinatorResponse,
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, MetadataResponse,
    OffsetCommitResponse, OffsetFetchResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::TopicPartition;
use crate::assignor::{
    self, ClusterMetadata, GroupAssignment, MemberSubscription, RebalanceProtocol, TopicInfo,
    userdata,
};
use crate::wire::{self, FrameDecoder, WireError};

pub use engine_harness::{engine, engine_events, engine_scenario, engine_trace};

// ----- framing -----------------------------------------------------------------

/// Maximum frame sizes the framing target picks from (first input byte).
const MAX_FRAMES: [usize; 8] = [0, 1, 4, 7, 16, 64, 1024, 1 << 20];

/// Pushes the input into a [`FrameDecoder`] in chunks whose sizes the input
/// chooses, draining frames after every push.
///
/// Properties: frames never exceed the maximum; the decoder never holds more
/// than one maximum frame plus its prefix; every accepted byte comes out
/// exactly once, in order (frames re-prefixed + what is still buffered ==
/// the accepted stream); a framing error is sticky; `finish` is `Ok` exactly
/// when nothing is buffered.
pub fn framing(data: &[u8]) {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let max = MAX_FRAMES[usize::from(first) % MAX_FRAMES.len()];
    let mut decoder = FrameDecoder::new(max).with_broker(i32::from(first));
    let mut accepted: Vec<u8> = Vec::new();
    let mut produced: Vec<u8> = Vec::new();
    let mut failed = false;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        let before = decoder.buffered();
        match decoder.push(chunk) {
            Ok(()) => accepted.extend_from_slice(chunk),
            Err(WireError::BufferFull { .. }) => {
                assert_eq!(decoder.buffered(), before, "a refused push kept bytes");
            }
            Err(e) => {
                // A bad prefix: the bytes were taken, the stream is dead.
                accepted.extend_from_slice(chunk);
                assert!(decoder.is_failed(), "prefix error without failing: {e}");
                failed = true;
            }
        }
        assert!(
            decoder.buffered() <= max + 4,
            "decoder holds more than a frame"
        );
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(!failed, "frame after a framing error");
                    assert!(frame.len() <= max, "frame longer than the maximum");
                    produced.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                    produced.extend_from_slice(&frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(decoder.is_failed(), "next_frame error without failing: {e}");
                    failed = true;
                    break;
                }
            }
        }
    }
    if failed {
        assert!(decoder.next_frame().is_err(), "framing error is not sticky");
        return;
    }
    assert_eq!(decoder.finish().is_ok(), decoder.buffered() == 0);
    assert_eq!(produced.len() + decoder.buffered(), accepted.len());
    assert_eq!(
        produced.as_slice(),
        accepted.get(..produced.len()).unwrap_or_default(),
        "frames differ from the stream"
    );
}

// ----- response decoders ---------------------------------------------------------

/// The (API, version) a decode input is for: byte 0 names the API (its key
/// when kgroup decodes it, else an index into the decodable APIs), byte 1 the
/// version (itself when in range, else folded into the range).
pub fn decode_target(api_byte: u8, version_byte: u8) -> Option<(ApiKey, i16)> {
    let apis: Vec<_> = wire::bounded::validated_apis().collect();
    let (api, span) = apis
        .iter()
        .find(|(api, _)| *api as i16 == i16::from(api_byte))
        .or_else(|| apis.get(usize::from(api_byte) % apis.len().max(1)))
        .copied()?;
    let (lo, hi) = (span.min, span.max);
    let v = i16::from(version_byte);
    let version = if (lo..=hi).contains(&v) {
        v
    } else {
        lo + v % (hi - lo + 1).max(1)
    };
    Some((api, version))
}

/// Decodes `data[2..]` as a response frame (no size prefix) of the API and
/// version named by `data[0..2]` (see [`decode_target`]).
///
/// Properties: no panic; the strict decoder's correlation id is the frame's;
/// lenient decoding agrees with strict decoding when that succeeds, and
/// otherwise only recovers a non-zero error code; a decoded body can be
/// re-encoded without a panic; ApiVersions frames go through
/// a [`wire::Negotiation`] as well.
pub fn decode_response(data: &[u8]) -> Option<()> {
    let (&[api_byte, version_byte], frame) = data.split_first_chunk::<2>()?;
    let (api, version) = decode_target(api_byte, version_byte)?;
    let frame = Bytes::copy_from_slice(frame);
    match api {
        ApiKey::ApiVersions => {
            decode_one::<ApiVersionsResponse>(api, version, &frame);
            negotiate(version, frame);
        }
        ApiKey::Metadata => decode_one::<MetadataResponse>(api, version, &frame),
        ApiKey::FindCoordinator => decode_one::<FindCoordinatorResponse>(api, version, &frame),
        ApiKey::JoinGroup => decode_one::<JoinGroupResponse>(api, version, &frame),
        ApiKey::SyncGroup => decode_one::<SyncGroupResponse>(api, version, &frame),
        ApiKey::Heartbeat => decode_one::<HeartbeatResponse>(api, version, &frame),
        ApiKey::LeaveGroup => decode_one::<LeaveGroupResponse>(api, version, &frame),
        ApiKey::OffsetCommit => decode_one::<OffsetCommitResponse>(api, version, &frame),
        ApiKey::OffsetFetch => decode_one::<OffsetFetchResponse>(api, version, &frame),
        ApiKey::ConsumerGroupHeartbeat => {
            decode_one::<ConsumerGroupHeartbeatResponse>(api, version, &frame)
        }
        _ => {}
    }
    Some(())
}

fn decode_one<R>(api: ApiKey, version: i16, frame: &Bytes)
where
    R: Decodable + Encodable + HeaderVersion + PartialEq + Debug,
{
    let strict = wire::decode_response::<R>(api, version, frame.clone());
    let lenient = wire::decode_response_lenient::<R>(api, version, frame.clone());
    match (&strict, &lenient) {
        (Ok((id, body)), Ok((lid, lbody))) => {
            assert_eq!(Some(*id), wire::peek_correlation_id(frame));
            assert_eq!((id, body), (lid, lbody), "lenient differs from strict");
            round_trip(version, body);
        }
        (Ok(_), Err(e)) => panic!("strict decoded, lenient refused: {e}"),
        (Err(_), Ok(_)) => panic!("lenient decoded what strict refused"),
        (Err(_), Err(e)) => {
            if let WireError::MalformedErrorResponse { error_code, .. } = e {
                assert_ne!(*error_code, 0, "lenient reported error code 0");
                assert!(
                    wire::lenient_error_code(api, version, &[]).is_none(),
                    "an empty body has no error code"
                );
            }
            // Error messages must render (they name API, version, broker).
            let _ = e.to_string();
            let _ = e.class();
        }
    }
}

/// A decoded body can be handed to `kafka-protocol`'s encoder without a
/// panic (the test broker and the simulator re-encode responses).
///
/// Not a round trip: `kafka-protocol` 0.18 decodes an unknown tag number of
/// 2^31 or more into a negative key and its encoder then counts that field
/// but skips writing it (`write_unknown_tagged_fields(buf, 0.., ..)`), so the
/// re-encoded bytes do not decode (found by this target; corpus file
/// `ConsumerGroupHeartbeat-v1-kp-negative-tag`). kgroup never re-encodes a
/// response, so that is reported, not asserted.
fn round_trip<R>(version: i16, body: &R)
where
    R: Encodable,
{
    let mut buf = BytesMut::new();
    let _ = body.encode(&mut buf, version);
}

fn negotiate(version: i16, frame: Bytes) {
    let Ok(negotiation) = wire::Negotiation::new("kgroup-fuzz", "0.1.0") else {
        panic!("constant client software name refused");
    };
    let mut negotiation = negotiation.starting_at(version).with_broker(1);
    // Each refusal lowers the version, so this ends; feed the same frame to
    // every step, as a broker that always answers the same way.
    for _ in 0..8 {
        if negotiation.versions().is_some() || negotiation.poll_request().is_none() {
            break;
        }
        if negotiation.handle_response_frame(frame.clone()).is_err() {
            break;
        }
    }
    if let Some(v) = negotiation.versions() {
        for &(api, chosen) in v.chosen() {
            let ours = wire::implemented(api);
            assert!(
                ours.is_some_and(|s| s.contains(chosen)),
                "negotiated {api:?} v{chosen} outside what kgroup implements"
            );
        }
    }
}

// ----- ConsumerProtocol and sticky user data ----------------------------------------

/// Decodes the input as a ConsumerProtocol Subscription and as an Assignment.
///
/// Properties: no panic; decoded lists are sorted and deduplicated; what
/// decodes re-encodes (at the decoded version, capped at 3) and decodes to
/// the same value.
pub fn consumer_protocol(data: &[u8]) {
    if let Ok((version, sub)) = wire::Subscription::decode(data) {
        assert!(version >= 0);
        assert!(is_sorted_unique(&sub.topics), "topics not sorted/unique");
        assert!(
            is_sorted_unique(&sub.owned_partitions),
            "owned not sorted/unique"
        );
        let v = version.min(wire::consumer_protocol::CONSUMER_PROTOCOL_MAX_VERSION);
        match sub.encode(v) {
            Ok(bytes) => match wire::Subscription::decode(&bytes) {
                Ok((v2, again)) => {
                    assert_eq!(v2, v);
                    assert_eq!(again, sub, "subscription v{v} does not round-trip");
                }
                Err(e) => panic!("re-encoded subscription does not decode: {e}"),
            },
            Err(e) => panic!("decoded subscription does not encode: {e}"),
        }
    }
    if let Ok((version, asg)) = wire::Assignment::decode(data) {
        assert!(version >= 0);
        assert!(
            is_sorted_unique(&asg.partitions),
            "partitions not sorted/unique"
        );
        let v = version.min(wire::consumer_protocol::CONSUMER_PROTOCOL_MAX_VERSION);
        match asg.encode(v) {
            Ok(bytes) => match wire::Assignment::decode(&bytes) {
                Ok((_, again)) => assert_eq!(again, asg, "assignment does not round-trip"),
                Err(e) => panic!("re-encoded assignment does not decode: {e}"),
            },
            Err(e) => panic!("decoded assignment does not encode: {e}"),
        }
    }
}

fn is_sorted_unique<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| matches!(w, [a, b] if a < b))
}

/// Decodes the input as `sticky` and `cooperative-sticky` user data.
///
/// Properties: no panic; sticky data that decodes re-encodes to data that
/// decodes to the same partitions (as a multiset: the encoder groups by
/// topic) and generation, when every topic name fits a Kafka string.
pub fn sticky_user_data(data: &[u8]) {
    let _ = userdata::decode_cooperative(Some(data));
    let Ok(decoded) = userdata::decode_sticky(data) else {
        return;
    };
    if decoded
        .partitions
        .iter()
        .any(|tp| tp.topic.len() > i16::MAX as usize)
    {
        return;
    }
    let bytes = userdata::encode_sticky(&decoded.partitions, decoded.generation);
    let again = match userdata::decode_sticky(&bytes) {
        Ok(d) => d,
        Err(e) => panic!("re-encoded sticky user data does not decode: {e}"),
    };
    let sorted = |v: &[TopicPartition]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&again.partitions), sorted(&decoded.partitions));
    // v0 data (no generation) re-encodes as v1 with the default generation.
    assert_eq!(
        again.generation,
        Some(decoded.generation.unwrap_or(userdata::DEFAULT_GENERATION))
    );
}

// ----- assignors -----------------------------------------------------------------------

/// An arbitrary group for the assignors: small names so that collisions
/// (shared topics, duplicate claims) are common.
#[derive(Debug, Arbitrary)]
pub struct AssignInput {
    /// Topics.
    pub topics: Vec<AssignTopic>,
    /// Members.
    pub members: Vec<AssignMember>,
}

/// One topic of an [`AssignInput`].
#[derive(Debug, Arbitrary)]
pub struct AssignTopic {
    /// Name index.
    pub name: u8,
    /// Partition count (negative counts are hostile input too).
    pub partitions: i8,
    /// Replica racks per partition, or none (unknown).
    pub racks: Option<Vec<Vec<u8>>>,
}

/// One member of an [`AssignInput`].
#[derive(Debug, Arbitrary)]
pub struct AssignMember {
    /// Member id index.
    pub id: u8,
    /// Instance id index, for static members.
    pub instance: Option<u8>,
    /// Rack index.
    pub rack: Option<u8>,
    /// Subscribed topic indices.
    pub topics: Vec<u8>,
    /// Claimed owned partitions (topic index, partition).
    pub owned: Vec<(u8, i8)>,
    /// Claimed generation.
    pub generation: Option<i32>,
    /// User data: none, the real encoding of the claims, or raw bytes.
    pub user_data: UserDataChoice,
}

/// What user data an [`AssignMember`] sends.
#[derive(Debug, Arbitrary)]
pub enum UserDataChoice {
    /// None.
    None,
    /// `sticky` user data of the owned claims at this generation.
    Sticky(Option<i32>),
    /// `cooperative-sticky` user data with this generation.
    Cooperative(Option<i32>),
    /// Raw bytes.
    Raw(Vec<u8>),
}

const MAX_TOPICS: usize = 6;
const MAX_MEMBERS: usize = 12;
const MAX_LIST: usize = 16;

fn topic_name(i: u8) -> String {
    format!("t{}", i % 8)
}

impl AssignInput {
    /// The assignor input this describes, kept small.
    pub fn build(&self) -> (ClusterMetadata, Vec<MemberSubscription>) {
        let mut metadata = ClusterMetadata::new();
        for topic in self.topics.iter().take(MAX_TOPICS) {
            let partitions = i32::from(topic.partitions).clamp(-2, 48);
            let partition_racks = topic
                .racks
                .as_ref()
                .map(|r| {
                    r.iter()
                        .take(64)
                        .map(|rs| rs.iter().take(3).map(|x| format!("r{}", x % 4)).collect())
                        .collect()
                })
                .unwrap_or_default();
            metadata.insert(
                topic_name(topic.name),
                TopicInfo {
                    partitions,
                    partition_racks,
                },
            );
        }
        // Distinct member ids (a duplicate is a typed error, tested elsewhere).
        let mut ids = BTreeSet::new();
        let members = self
            .members
            .iter()
            .take(MAX_MEMBERS)
            .filter(|m| ids.insert(m.id % 16))
            .map(|m| {
                let owned: Vec<TopicPartition> = m
                    .owned
                    .iter()
                    .take(MAX_LIST)
                    .map(|(t, p)| TopicPartition::new(topic_name(*t), i32::from(*p)))
                    .collect();
                let user_data = match &m.user_data {
                    UserDataChoice::None => None,
                    UserDataChoice::Sticky(g) => Some(userdata::encode_sticky(&owned, *g)),
                    UserDataChoice::Cooperative(g) => Some(userdata::encode_cooperative(*g)),
                    UserDataChoice::Raw(b) => {
                        Some(Bytes::copy_from_slice(b.get(..64).unwrap_or(b)))
                    }
                };
                MemberSubscription {
                    member_id: format!("m{}", m.id % 16),
                    instance_id: m.instance.map(|i| format!("i{}", i % 16)),
                    rack: m.rack.map(|r| format!("r{}", r % 4)),
                    topics: m
                        .topics
                        .iter()
                        .take(MAX_LIST)
                        .map(|t| topic_name(*t))
                        .collect(),
                    owned,
                    generation: m.generation,
                    user_data,
                }
            })
            .collect();
        (metadata, members)
    }
}

/// Runs every built-in assignor on an arbitrary group.
///
/// Properties: no panic; the result is the same on a second run
/// (deterministic); when it succeeds: exactly one entry per member, every
/// assigned partition exists and is subscribed by its member, no partition
/// is assigned twice, lists are sorted; eager assignors assign every
/// partition some member subscribes to; the cooperative assignor never
/// gives a member a partition another member claims to own (it must be
/// revoked first, KIP-429).
pub fn assignors(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = AssignInput::arbitrary(&mut u) else {
        return;
    };
    let (metadata, members) = input.build();
    check_assignors(&metadata, &members);
}

/// The checks of [`assignors`] on a given input.
pub fn check_assignors(metadata: &ClusterMetadata, members: &[MemberSubscription]) {
    for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        let Some(a) = assignor::builtin(name) else {
            panic!("builtin assignor {name} missing");
        };
        let first = a.assign(metadata, members);
        let second = a.assign(metadata, members);
        assert_eq!(first, second, "{name} is not deterministic");
        let Ok(result) = first else {
            continue;
        };
        let cooperative = a.supported_protocols().first() == Some(&RebalanceProtocol::Cooperative);
        check_assignment(name, cooperative, metadata, members, &result);
    }
}

fn check_assignment(
    name: &str,
    cooperative: bool,
    metadata: &ClusterMetadata,
    members: &[MemberSubscription],
    result: &GroupAssignment,
) {
    let ids: BTreeSet<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
    let got: BTreeSet<&str> = result.keys().map(String::as_str).collect();
    assert_eq!(ids, got, "{name}: not one entry per member");
    let mut seen: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
    for (member, assignment) in result {
        assert!(
            is_sorted_unique(&assignment.partitions),
            "{name}: {member}'s partitions not sorted"
        );
        let subscribed: BTreeSet<&str> = members
            .iter()
            .filter(|m| &m.member_id == member)
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect();
        for tp in &assignment.partitions {
            let exists = metadata
                .get(&tp.topic)
                .is_some_and(|t| (0..t.partitions).contains(&tp.partition));
            assert!(exists, "{name}: {member} got {tp}, which does not exist");
            assert!(
                subscribed.contains(tp.topic.as_str()),
                "{name}: {member} got {tp} without subscribing to it"
            );
            if let Some(other) = seen.insert(tp, member) {
                panic!("{name}: {tp} assigned to both {other} and {member}");
            }
            if cooperative {
                let claimed_elsewhere = members
                    .iter()
                    .filter(|m| &m.member_id != member)
                    .any(|m| m.owned.contains(tp));
                let claimed_here = members
                    .iter()
                    .filter(|m| &m.member_id == member)
                    .any(|m| m.owned.contains(tp));
                assert!(
                    claimed_here || !claimed_elsewhere,
                    "{name}: {tp} given to {member} while another member still owns it"
                );
            }
        }
    }
    if !cooperative {
        let wanted: BTreeSet<&str> = members
            .iter()
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect();
        for (topic, info) in metadata {
            if !wanted.contains(topic.as_str()) {
                continue;
            }
            for p in 0..info.partitions.max(0) {
                let tp = TopicPartition::new(topic.clone(), p);
                assert!(seen.contains_key(&tp), "{name}: {tp} left unassigned");
            }
        }
    }
}
