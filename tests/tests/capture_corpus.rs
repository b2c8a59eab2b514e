//! Writes the seed corpus of the `decode_response` fuzz target
//! (`fuzz/corpus/decode_response/`): real response frames captured from the
//! test broker (librdkafka's mock) for every API and version it serves,
//! including its malformed error answers, plus frames encoded by
//! `kafka-protocol` for every version kgroup decodes (the versions the mock
//! does not serve among them).
//!
//! Ignored by default (it writes into the source tree). Regenerate with
//! `cargo test -p kgroup-tests --test capture_corpus -- --ignored`.
//!
//! File format (see `kgroup::fuzzing::decode_response`): byte 0 the API
//! key, byte 1 the version, then the response frame without its size
//! prefix. Names say what each file is: `<api>-v<version>-mock[-what]` or
//! `<api>-v<version>-kp<n>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kgroup::TopicPartition;
use kgroup::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kgroup::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kgroup::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kgroup::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kgroup::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kgroup::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ConsumerGroupHeartbeatResponse,
    FindCoordinatorResponse, GroupId, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kgroup::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kgroup::wire::bounded::sample::{SampleRng, sample_body};
use kgroup::wire::bounded::validated_apis;
use kgroup::wire::{Assignment, Subscription, response_header_version};
use kgroup_tests::requests::{find_coordinator, heartbeat, leave_group, s};
use kgroup_tests::{TestBroker, TestBrokerOptions, WireClient};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_response")
}

fn save(api: ApiKey, version: i16, what: &str, frame: &[u8]) {
    let mut bytes = vec![api as i16 as u8, version as u8];
    bytes.extend_from_slice(frame);
    let name = format!("{api:?}-v{version}-{what}");
    std::fs::write(out_dir().join(name), bytes).expect("write corpus file");
}

/// Sends `body` and saves the raw answer; returns the frame.
fn capture<T: Encodable + HeaderVersion>(
    c: &mut WireClient,
    api: ApiKey,
    version: i16,
    what: &str,
    body: &T,
) -> Option<Bytes> {
    if let Err(e) = c.send(api, version, body) {
        eprintln!("{api:?} v{version} ({what}): not sent: {e}");
        return None;
    }
    match c.recv_frame() {
        Ok((_, _, frame)) => {
            save(api, version, what, &frame);
            Some(frame)
        }
        Err(e) => {
            eprintln!("{api:?} v{version} ({what}): no answer: {e}");
            None
        }
    }
}

fn body_of<R: Decodable>(api: ApiKey, version: i16, frame: &Bytes) -> Option<R> {
    let mut b = frame.clone();
    let header = if response_header_version(api, version) >= 1 {
        5
    } else {
        4
    };
    if b.len() < header {
        return None;
    }
    let _ = b.split_to(header);
    R::decode(&mut b, version).ok()
}

fn join_request(group: &str, member_id: &str) -> JoinGroupRequest {
    let metadata = Subscription::new(["orders"])
        .encode(1)
        .expect("subscription encodes");
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(6000)
        .with_rebalance_timeout_ms(6000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(metadata),
        ])
}

fn sync_request(group: &str, generation: i32, member_id: &str) -> SyncGroupRequest {
    let assignment = Assignment::new(vec![
        TopicPartition::new("orders", 0),
        TopicPartition::new("orders", 1),
    ])
    .encode(1)
    .expect("assignment encodes");
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(member_id))
                .with_assignment(assignment),
        ])
}

#[test]
#[ignore = "writes fuzz/corpus/decode_response; run with --ignored to regenerate"]
fn capture_decode_response_corpus() {
    std::fs::create_dir_all(out_dir()).expect("corpus dir");
    let mut broker = TestBroker::start(
        BROKER,
        &TestBrokerOptions::default().brokers(1).topic("orders", 3),
    )
    .expect("test broker starts");
    let addr = broker.addr(1).expect("broker 1");
    let mut c = WireClient::connect(addr, 1, Duration::from_secs(10)).expect("connect");

    // ApiVersions v0..=2, and the v3 refusal in the mock's own layout.
    for v in 0..=3 {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(s("kgroup-corpus"))
            .with_client_software_version(s("0.1.0"));
        capture(&mut c, ApiKey::ApiVersions, v, "mock", &req);
    }
    for v in 0..=8 {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("orders")))),
        ]));
        capture(&mut c, ApiKey::Metadata, v, "mock", &req);
    }
    for v in 0..=3 {
        capture(
            &mut c,
            ApiKey::FindCoordinator,
            v,
            "mock",
            &find_coordinator("g"),
        );
    }

    // One group per JoinGroup version: join, sync, then the other group APIs.
    for jv in 0..=5i16 {
        let group = format!("corpus-{jv}");
        let join = join_request(&group, "");
        let Some(frame) = capture(&mut c, ApiKey::JoinGroup, jv, "mock", &join) else {
            continue;
        };
        let Some(joined) = body_of::<JoinGroupResponse>(ApiKey::JoinGroup, jv, &frame) else {
            eprintln!("JoinGroup v{jv}: answer does not decode");
            continue;
        };
        let member = joined.member_id.as_str().to_owned();
        let generation = joined.generation_id;
        let sv = jv.min(3);
        capture(
            &mut c,
            ApiKey::SyncGroup,
            sv,
            "mock",
            &sync_request(&group, generation, &member),
        );
        if jv == 0 {
            for hv in 0..=4 {
                capture(
                    &mut c,
                    ApiKey::Heartbeat,
                    hv,
                    "mock",
                    &heartbeat(&group, generation, &member),
                );
            }
            for cv in 2..=9 {
                let req = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(s(&member))
                    .with_retention_time_ms(-1)
                    .with_topics(vec![
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s("orders")))
                            .with_partitions(vec![
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(42)
                                    .with_committed_metadata(Some(s("m"))),
                            ]),
                    ]);
                capture(&mut c, ApiKey::OffsetCommit, cv, "mock", &req);
            }
            for fv in 1..=6 {
                let req = OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s("orders")))
                            .with_partition_indexes(vec![0, 1]),
                    ]));
                capture(&mut c, ApiKey::OffsetFetch, fv, "mock", &req);
            }
            // An error answer: the mock's REBALANCE_IN_PROGRESS.
            broker.push_errors(12, &[27]).expect("push-errors");
            capture(
                &mut c,
                ApiKey::Heartbeat,
                4,
                "mock-rebalance-in-progress",
                &heartbeat(&group, generation, &member),
            );
        }
        let lv = jv.min(2);
        capture(
            &mut c,
            ApiKey::LeaveGroup,
            lv,
            "mock",
            &leave_group(&group, &member, lv),
        );
    }

    // The mock's malformed error answers (nulls the schema forbids): the
    // lenient path's seeds.
    broker.push_errors(10, &[16]).expect("push-errors");
    capture(
        &mut c,
        ApiKey::FindCoordinator,
        3,
        "mock-not-coordinator",
        &find_coordinator("g"),
    );
    broker.push_errors(11, &[27]).expect("push-errors");
    capture(
        &mut c,
        ApiKey::JoinGroup,
        5,
        "mock-rebalance-in-progress",
        &join_request("corpus-err", ""),
    );
    broker.push_errors(14, &[25]).expect("push-errors");
    capture(
        &mut c,
        ApiKey::SyncGroup,
        3,
        "mock-unknown-member",
        &sync_request("corpus-err", 1, "nobody"),
    );

    // Every version kgroup decodes, encoded by kafka-protocol from a
    // schema-generated body (covers the versions the mock does not serve).
    let mut rng = SampleRng::new(0xC0DE);
    let mut written: i32 = 0;
    for (api, span) in validated_apis() {
        for version in span.min..=span.max {
            for n in 0..2 {
                let Some(body) = sample_body(api, version, &mut rng) else {
                    continue;
                };
                let Some(encoded) = reencode(api, version, Bytes::from(body)) else {
                    continue;
                };
                let mut frame = (1000 + written).to_be_bytes().to_vec();
                if response_header_version(api, version) >= 1 {
                    frame.push(0);
                }
                frame.extend_from_slice(&encoded);
                save(api, version, &format!("kp{n}"), &frame);
                written += 1;
            }
        }
    }
    assert!(written > 100, "only {written} kafka-protocol frames");
    eprintln!(
        "wrote {written} kafka-protocol frames into {}",
        out_dir().display()
    );
}

/// Decodes `body` with kafka-protocol and encodes it again with it.
fn reencode(api: ApiKey, version: i16, body: Bytes) -> Option<Bytes> {
    fn go<R: Decodable + Encodable>(version: i16, mut body: Bytes) -> Option<Bytes> {
        let value = R::decode(&mut body, version).ok()?;
        let mut out = BytesMut::new();
        value.encode(&mut out, version).ok()?;
        Some(out.freeze())
    }
    match api {
        ApiKey::ApiVersions => go::<ApiVersionsResponse>(version, body),
        ApiKey::Metadata => go::<MetadataResponse>(version, body),
        ApiKey::FindCoordinator => go::<FindCoordinatorResponse>(version, body),
        ApiKey::JoinGroup => go::<JoinGroupResponse>(version, body),
        ApiKey::SyncGroup => go::<SyncGroupResponse>(version, body),
        ApiKey::Heartbeat => go::<HeartbeatResponse>(version, body),
        ApiKey::LeaveGroup => go::<LeaveGroupResponse>(version, body),
        ApiKey::OffsetCommit => go::<OffsetCommitResponse>(version, body),
        ApiKey::OffsetFetch => go::<OffsetFetchResponse>(version, body),
        ApiKey::ConsumerGroupHeartbeat => go::<ConsumerGroupHeartbeatResponse>(version, body),
        _ => None,
    }
}
