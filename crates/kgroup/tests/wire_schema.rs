//! Cross-checks the bounded validator's schemas against `kafka-protocol`.
//!
//! For every API and version kgroup decodes: bodies generated from kgroup's
//! schema must be accepted by the validator, decode with `kafka-protocol`
//! consuming every byte, and re-encode with `kafka-protocol`'s own encoder to
//! the same bytes; the re-encoded frame must pass the validator again. Any
//! field kgroup's schema has wrong (missing, extra, wrong version range,
//! wrong width, wrong compactness) breaks one of these.

use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kgroup::wire::bounded::sample::{SampleRng, sample_body, sample_consumer_protocol};
use kgroup::wire::bounded::validated_apis;
use kgroup::wire::{Assignment, Subscription, decode_response, response_header_version};
use proptest::prelude::*;

mod prop_config;

fn frame_of(api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    if response_header_version(api, version) >= 1 {
        out.put_u8(0);
    }
    out.put_slice(body);
    out.freeze()
}

fn round_trip<R>(api: ApiKey, version: i16, body: &[u8])
where
    R: Decodable + Encodable + HeaderVersion + PartialEq + Debug,
{
    let frame = frame_of(api, version, 77, body);
    let (id, decoded) = decode_response::<R>(api, version, frame).unwrap_or_else(|e| {
        panic!("{api:?} v{version}: validator or decoder refused a schema body: {e}\n{body:02x?}")
    });
    assert_eq!(id, 77);
    let mut again = BytesMut::new();
    decoded.encode(&mut again, version).unwrap();
    assert_eq!(
        &again[..],
        body,
        "{api:?} v{version}: kafka-protocol re-encodes differently: kgroup's schema disagrees"
    );
    let (_, twice) = decode_response::<R>(api, version, frame_of(api, version, 78, &again))
        .unwrap_or_else(|e| {
            panic!("{api:?} v{version}: validator refused kafka-protocol's encoding: {e}")
        });
    assert_eq!(twice, decoded);
}

fn check(api: ApiKey, version: i16, body: &[u8]) {
    match api {
        ApiKey::ApiVersions => round_trip::<ApiVersionsResponse>(api, version, body),
        ApiKey::FindCoordinator => round_trip::<FindCoordinatorResponse>(api, version, body),
        ApiKey::JoinGroup => round_trip::<JoinGroupResponse>(api, version, body),
        ApiKey::SyncGroup => round_trip::<SyncGroupResponse>(api, version, body),
        ApiKey::Heartbeat => round_trip::<HeartbeatResponse>(api, version, body),
        ApiKey::LeaveGroup => round_trip::<LeaveGroupResponse>(api, version, body),
        ApiKey::OffsetCommit => round_trip::<OffsetCommitResponse>(api, version, body),
        ApiKey::OffsetFetch => round_trip::<OffsetFetchResponse>(api, version, body),
        ApiKey::Metadata => round_trip::<MetadataResponse>(api, version, body),
        ApiKey::ConsumerGroupHeartbeat => {
            round_trip::<ConsumerGroupHeartbeatResponse>(api, version, body)
        }
        other => panic!("no round trip for {other:?}"),
    }
}

#[test]
fn every_validated_api_and_version_round_trips_through_kafka_protocol() {
    let mut count = 0;
    for (api, span) in validated_apis() {
        for version in span.min..=span.max {
            let mut rng = SampleRng::new(0x6b67_726f_7570 ^ ((api as u64) << 16) ^ version as u64);
            for _ in 0..200 {
                let body = sample_body(api, version, &mut rng).unwrap();
                check(api, version, &body);
                count += 1;
            }
        }
    }
    assert!(count >= 200 * 60, "covered {count} bodies");
}

#[test]
fn the_engine_apis_are_all_validated() {
    let apis: Vec<ApiKey> = validated_apis().map(|(a, _)| a).collect();
    for (api, span) in kgroup::wire::IMPLEMENTED {
        assert!(apis.contains(api), "{api:?} is sent but not validated");
        let validated = validated_apis().find(|(a, _)| a == api).unwrap().1;
        assert!(
            validated.min <= span.min && span.max <= validated.max,
            "{api:?}"
        );
    }
}

fn consumer_protocol_round_trip(assignment: bool, version: i16, body: &[u8]) {
    let mut payload = version.to_be_bytes().to_vec();
    payload.extend_from_slice(body);
    // kafka-protocol reads the body the same way kgroup's schema walked it.
    let mut raw = Bytes::copy_from_slice(body);
    if assignment {
        ConsumerProtocolAssignment::decode(&mut raw, version).unwrap();
        let (v, a) = Assignment::decode(&payload).unwrap();
        assert_eq!(v, version);
        let (_, again) = Assignment::decode(&a.encode(version).unwrap()).unwrap();
        assert_eq!(again, a);
    } else {
        ConsumerProtocolSubscription::decode(&mut raw, version).unwrap();
        let (v, s) = Subscription::decode(&payload).unwrap();
        assert_eq!(v, version);
        let (_, again) = Subscription::decode(&s.encode(version).unwrap()).unwrap();
        assert_eq!(again, s);
    }
    assert!(
        raw.is_empty(),
        "kafka-protocol left bytes: schema disagrees"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..prop_config::config(256)
    })]

    #[test]
    fn random_bodies_round_trip(seed in any::<u64>(), pick in any::<u16>()) {
        let all: Vec<(ApiKey, i16)> = validated_apis()
            .flat_map(|(api, span)| (span.min..=span.max).map(move |v| (api, v)))
            .collect();
        let (api, version) = all[pick as usize % all.len()];
        let body = sample_body(api, version, &mut SampleRng::new(seed)).unwrap();
        check(api, version, &body);
    }

    #[test]
    fn consumer_protocol_bodies_round_trip(seed in any::<u64>(), version in 0i16..=3, assignment in any::<bool>()) {
        let body = sample_consumer_protocol(assignment, version, &mut SampleRng::new(seed));
        consumer_protocol_round_trip(assignment, version, &body);
    }

    #[test]
    fn subscriptions_round_trip_across_versions(
        topics in proptest::collection::btree_set("[a-z]{1,5}", 0..5),
        owned in proptest::collection::btree_set(("[a-z]{1,3}", 0i32..50), 0..6),
        generation in any::<i32>(),
        rack in proptest::option::of("[a-z0-9]{1,6}"),
        user_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        write in 0i16..=3,
        future_tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let s = Subscription {
            topics: topics.into_iter().collect(),
            user_data: user_data.map(Bytes::from),
            owned_partitions: owned.into_iter().map(|(t, p)| kgroup::TopicPartition::new(t, p)).collect(),
            generation_id: generation,
            rack_id: rack,
        };
        let (v, d) = Subscription::decode(&s.encode(write).unwrap()).unwrap();
        prop_assert_eq!(v, write);
        prop_assert_eq!(&d.topics, &s.topics);
        prop_assert_eq!(&d.user_data, &s.user_data);
        prop_assert_eq!(&d.owned_partitions, if write >= 1 { &s.owned_partitions } else { &Vec::new() });
        prop_assert_eq!(d.generation_id, if write >= 2 { s.generation_id } else { -1 });
        prop_assert_eq!(&d.rack_id, if write >= 3 { &s.rack_id } else { &None });
        // A newer writer (v4+) appending fields: read as v3.
        let mut newer = s.encode(3).unwrap().to_vec();
        newer[..2].copy_from_slice(&(4 + write).to_be_bytes());
        newer.extend_from_slice(&future_tail);
        let (v, d) = Subscription::decode(&newer).unwrap();
        prop_assert_eq!(v, 4 + write);
        prop_assert_eq!(d, s);
    }

    #[test]
    fn assignments_round_trip_across_versions(
        parts in proptest::collection::btree_set(("[a-z]{1,3}", 0i32..50), 0..8),
        user_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        write in 0i16..=3,
    ) {
        let a = Assignment {
            partitions: parts.into_iter().map(|(t, p)| kgroup::TopicPartition::new(t, p)).collect(),
            user_data: user_data.map(Bytes::from),
        };
        let (v, d) = Assignment::decode(&a.encode(write).unwrap()).unwrap();
        prop_assert_eq!(v, write);
        prop_assert_eq!(d, a);
    }
}
