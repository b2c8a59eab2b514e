//! The offsets component through the real wire layer: every OffsetCommit
//! (2–9) and OffsetFetch (1–9) version kgroup speaks is encoded with
//! `wire::encode_request`, read back as the broker would read it, answered
//! with an encoded response frame decoded by `wire::decode_response`, and
//! fed to [`Offsets`]; then thousands of mutated response frames go through
//! the same path: each gives a typed error or a valid transition, never a
//! panic, and every commit still completes exactly once.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kgroup::TopicPartition;
use kgroup::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kgroup::kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, TopicName,
};
use kgroup::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kgroup::offsets::{
    CommittedOffset, MembershipView, OffsetEvent, OffsetRequest, OffsetRequestBody, OffsetVersions,
    Offsets, OffsetsConfig, RebalancePhase, RequestFailure,
};
use kgroup::wire::{decode_response, encode_request, response_header_version};

#[allow(clippy::disallowed_methods)] // an arbitrary base for virtual time
fn t0() -> Instant {
    Instant::now()
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn engine(versions: OffsetVersions, instance: Option<&str>) -> (Offsets, Instant) {
    let now = t0();
    let mut o = Offsets::new(OffsetsConfig::new("g"), now).unwrap();
    let mut view = MembershipView::member(12, "member-1", [tp(0), tp(1)], RebalancePhase::Stable);
    if let Some(i) = instance {
        view = view.with_instance_id(i);
    }
    o.handle_membership(now, view);
    o.handle_coordinator_ready(now, versions).unwrap();
    (o, now)
}

/// Encode `req` as the group engine would, then read it back as a broker.
fn sent_commit(req: &OffsetRequest) -> OffsetCommitRequest {
    let OffsetRequestBody::Commit(body) = &req.body else {
        panic!("commit expected")
    };
    let mut frame = encode_request(ApiKey::OffsetCommit, req.version, 7, "kgroup", body).unwrap();
    frame.advance(4);
    RequestHeader::decode(&mut frame, OffsetCommitRequest::header_version(req.version)).unwrap();
    OffsetCommitRequest::decode(&mut frame, req.version).unwrap()
}

fn sent_fetch(req: &OffsetRequest) -> OffsetFetchRequest {
    let OffsetRequestBody::Fetch(body) = &req.body else {
        panic!("fetch expected")
    };
    let mut frame = encode_request(ApiKey::OffsetFetch, req.version, 7, "kgroup", body).unwrap();
    frame.advance(4);
    RequestHeader::decode(&mut frame, OffsetFetchRequest::header_version(req.version)).unwrap();
    OffsetFetchRequest::decode(&mut frame, req.version).unwrap()
}

/// A response frame as a broker writes it (without the size prefix).
fn response_frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(7);
    if response_header_version(api, version) >= 1 {
        out.put_u8(0);
    }
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

fn commit_ok(req: &OffsetCommitRequest) -> OffsetCommitResponse {
    kgroup::offsets::commit_response_for(req, |_, _| 0)
}

fn fetch_answer(version: i16, offset: i64) -> OffsetFetchResponse {
    if version >= 8 {
        OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_static_str("orders")))
                        .with_partitions(vec![
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset)
                                .with_metadata(Some(StrBytes::from_static_str("m"))),
                        ]),
                ]),
        ])
    } else {
        OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_metadata(Some(StrBytes::from_static_str("m"))),
                ]),
        ])
    }
}

#[test]
fn every_commit_version_round_trips_with_generation_member_and_instance() {
    for version in 2..=9i16 {
        let instance = (version >= 7).then_some("static-1");
        let (mut o, now) = engine(
            OffsetVersions {
                commit: version,
                fetch: 9,
            },
            instance,
        );
        let id = o
            .commit(
                now,
                vec![
                    (
                        tp(0),
                        CommittedOffset::new(100)
                            .with_leader_epoch(4)
                            .with_metadata("m"),
                    ),
                    (tp(1), CommittedOffset::new(200)),
                ],
            )
            .unwrap();
        let req = o.poll_request(now).unwrap();
        assert_eq!(req.version, version);
        let got = sent_commit(&req);
        assert_eq!(got.group_id.0.as_str(), "g", "v{version}");
        assert_eq!(got.generation_id_or_member_epoch, 12, "v{version}");
        assert_eq!(got.member_id.as_str(), "member-1", "v{version}");
        assert_eq!(got.group_instance_id.as_deref(), instance, "v{version}");
        let p0 = &got.topics[0].partitions[0];
        assert_eq!(p0.committed_offset, 100);
        assert_eq!(
            p0.committed_leader_epoch,
            if version >= 6 { 4 } else { -1 },
            "v{version}"
        );
        assert_eq!(p0.committed_metadata.as_deref(), Some("m"));
        let frame = response_frame(ApiKey::OffsetCommit, version, &commit_ok(&got));
        let (cid, resp) =
            decode_response::<OffsetCommitResponse>(ApiKey::OffsetCommit, version, frame).unwrap();
        assert_eq!(cid, 7);
        o.handle_commit_response(now, req.tag, &resp);
        assert!(
            matches!(o.poll_event(), Some(OffsetEvent::CommitDone { id: i, result: Ok(()), .. }) if i == id),
            "v{version}"
        );
    }
}

#[test]
fn every_fetch_version_round_trips() {
    for version in 1..=9i16 {
        let (mut o, now) = engine(
            OffsetVersions {
                commit: 9,
                fetch: version,
            },
            None,
        );
        let id = o.fetch(now, [tp(0)]).unwrap();
        let req = o.poll_request(now).unwrap();
        let got = sent_fetch(&req);
        assert_eq!(got.require_stable, version >= 7, "v{version}");
        if version >= 8 {
            assert_eq!(got.groups[0].group_id.0.as_str(), "g");
            assert_eq!(
                got.groups[0].member_id, None,
                "classic members send no member id"
            );
        } else {
            assert_eq!(got.group_id.0.as_str(), "g");
            assert_eq!(
                got.topics.as_ref().map(|t| t[0].partition_indexes.clone()),
                Some(vec![0])
            );
        }
        let frame = response_frame(ApiKey::OffsetFetch, version, &fetch_answer(version, 55));
        let (_, resp) =
            decode_response::<OffsetFetchResponse>(ApiKey::OffsetFetch, version, frame).unwrap();
        o.handle_fetch_response(now, req.tag, &resp);
        match o.poll_event() {
            Some(OffsetEvent::FetchDone {
                id: i,
                generation: 12,
                result: Ok(r),
            }) if i == id => {
                let got = r.get(&tp(0)).cloned().unwrap().unwrap().unwrap();
                assert_eq!(got.offset, 55, "v{version}");
                assert_eq!(got.metadata.as_deref(), Some("m"));
            }
            other => panic!("v{version}: {other:?}"),
        }
    }
}

/// SplitMix64, for reproducible mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn mutate(rng: &mut Rng, frame: &Bytes) -> Bytes {
    let mut bytes = frame.to_vec();
    match rng.next() % 4 {
        0 => {
            // Flip a few bytes (past the correlation id).
            for _ in 0..1 + rng.next() % 4 {
                if bytes.len() > 4 {
                    let i = 4 + (rng.next() as usize) % (bytes.len() - 4);
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= 1 << (rng.next() % 8);
                    }
                }
            }
        }
        1 => {
            let keep = 4 + (rng.next() as usize) % bytes.len().saturating_sub(3).max(1);
            bytes.truncate(keep);
        }
        2 => {
            // Overwrite a byte with an extreme value (counts, lengths, codes).
            if bytes.len() > 4 {
                let i = 4 + (rng.next() as usize) % (bytes.len() - 4);
                if let Some(b) = bytes.get_mut(i) {
                    *b = [0x00, 0x7f, 0x80, 0xff][(rng.next() % 4) as usize];
                }
            }
        }
        _ => {
            for _ in 0..rng.next() % 16 {
                bytes.push(rng.next() as u8);
            }
        }
    }
    Bytes::from(bytes)
}

#[test]
fn mutated_response_frames_give_typed_errors_or_valid_transitions() {
    let mut rng = Rng(2026);
    let mut decoded = 0u32;
    for round in 0..3000u32 {
        let commit_version = 2 + (round % 8) as i16;
        let fetch_version = 1 + (round % 9) as i16;
        let (mut o, mut now) = engine(
            OffsetVersions {
                commit: commit_version,
                fetch: fetch_version,
            },
            None,
        );
        let id = o
            .commit(now, vec![(tp(0), 10.into()), (tp(1), 20.into())])
            .unwrap();
        let fid = o.fetch(now, [tp(0), tp(1)]).unwrap();
        let mut commit_done = 0;
        let mut fetch_done = 0;
        // Answer every request with a mutated frame until both complete
        // (bounded: retries stop at the deadlines).
        for _ in 0..400 {
            while let Some(req) = o.poll_request(now) {
                let (api, frame) = match &req.body {
                    OffsetRequestBody::Commit(_) => (
                        ApiKey::OffsetCommit,
                        response_frame(
                            ApiKey::OffsetCommit,
                            req.version,
                            &commit_ok(&sent_commit(&req)),
                        ),
                    ),
                    OffsetRequestBody::Fetch(_) => (
                        ApiKey::OffsetFetch,
                        response_frame(
                            ApiKey::OffsetFetch,
                            req.version,
                            &fetch_answer(req.version, 5),
                        ),
                    ),
                };
                let bad = mutate(&mut rng, &frame);
                match api {
                    ApiKey::OffsetCommit => {
                        match decode_response::<OffsetCommitResponse>(api, req.version, bad) {
                            Ok((_, r)) => {
                                decoded += 1;
                                o.handle_commit_response(now, req.tag, &r)
                            }
                            Err(e) => o.handle_request_failure(
                                now,
                                req.tag,
                                RequestFailure::Malformed(e.to_string()),
                            ),
                        }
                    }
                    _ => match decode_response::<OffsetFetchResponse>(api, req.version, bad) {
                        Ok((_, r)) => {
                            decoded += 1;
                            o.handle_fetch_response(now, req.tag, &r)
                        }
                        Err(e) => o.handle_request_failure(
                            now,
                            req.tag,
                            RequestFailure::Malformed(e.to_string()),
                        ),
                    },
                }
            }
            while let Some(ev) = o.poll_event() {
                match ev {
                    OffsetEvent::CommitDone { id: i, .. } => {
                        assert_eq!(i, id);
                        commit_done += 1;
                    }
                    OffsetEvent::FetchDone { id: i, .. } => {
                        assert_eq!(i, fid);
                        fetch_done += 1;
                    }
                    // A mutated error code may ask to rediscover the coordinator.
                    OffsetEvent::Membership { .. } => o
                        .handle_coordinator_ready(now, OffsetVersions::MAX)
                        .unwrap(),
                }
            }
            if commit_done == 1 && fetch_done == 1 {
                break;
            }
            now += Duration::from_millis(500);
            o.handle_timeout(now);
        }
        assert_eq!(
            (commit_done, fetch_done),
            (1, 1),
            "round {round}: each completes exactly once"
        );
    }
    eprintln!("{decoded} of the mutated frames decoded and reached the state machine");
    assert!(
        decoded > 500,
        "only {decoded} mutated frames decoded: the test would prove little"
    );
}
