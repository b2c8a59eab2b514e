//! End-to-end codec behaviour: frames through the decoder, correlation,
//! strict and lenient decoding, and the errors bad input gives.

use bytes::{BufMut, Bytes, BytesMut};
use kgroup::ErrorClass;
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::{Encodable, StrBytes};
use kgroup::wire::{
    FrameDecoder, InFlight, WireError, decode_response, decode_response_lenient, encode_request,
    lenient_error_code,
};

/// Error codes (Kafka `Errors`).
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_MEMBER_ID: i16 = 25;

/// Builds a frame: correlation id, optional empty header tags, then `body`.
fn frame(correlation_id: i32, header_v1: bool, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    if header_v1 {
        out.put_u8(0);
    }
    out.put_slice(body);
    out.freeze()
}

#[test]
fn find_coordinator_with_a_null_host_still_yields_its_error_code() {
    // librdkafka's mock: FindCoordinator v1..=2 error reply with a null host
    // (-1), which the schema forbids.
    for version in [1i16, 2] {
        let mut body = BytesMut::new();
        body.put_i32(0); // throttle
        body.put_i16(COORDINATOR_NOT_AVAILABLE);
        body.put_i16(-1); // error message null (allowed)
        body.put_i32(-1); // node id
        body.put_i16(-1); // host null (forbidden)
        body.put_i32(-1); // port
        let f = frame(7, false, &body);
        let strict =
            decode_response::<FindCoordinatorResponse>(ApiKey::FindCoordinator, version, f.clone())
                .unwrap_err();
        assert!(matches!(strict, WireError::Decode { .. }), "{strict}");
        assert!(strict.to_string().contains("host"), "{strict}");
        let err =
            decode_response_lenient::<FindCoordinatorResponse>(ApiKey::FindCoordinator, version, f)
                .unwrap_err()
                .with_broker(2);
        assert_eq!(err.error_code(), Some(COORDINATOR_NOT_AVAILABLE));
        let text = err.to_string();
        assert!(
            text.contains("FindCoordinator")
                && text.contains(&format!("v{version}"))
                && text.contains("broker 2"),
            "{text}"
        );
    }
    // v3 is flexible: compact null host is 0.
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i16(NOT_COORDINATOR);
    body.put_u8(0); // message null
    body.put_i32(-1);
    body.put_u8(0); // host null (forbidden)
    body.put_i32(-1);
    body.put_u8(0); // tags
    let err = decode_response_lenient::<FindCoordinatorResponse>(
        ApiKey::FindCoordinator,
        3,
        frame(1, true, &body),
    )
    .unwrap_err();
    assert_eq!(err.error_code(), Some(NOT_COORDINATOR));
    // v0 has no throttle time.
    assert_eq!(
        lenient_error_code(ApiKey::FindCoordinator, 0, &[0, 15, 0xff]),
        Some(15)
    );
}

#[test]
fn join_group_with_null_member_id_yields_its_error_code() {
    // JoinGroup v5: throttle, error, generation, protocol name, leader null,
    // member id null, members.
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i16(UNKNOWN_MEMBER_ID);
    body.put_i32(-1);
    body.put_i16(-1);
    body.put_i16(-1);
    body.put_i16(-1);
    body.put_i32(0);
    let err =
        decode_response_lenient::<JoinGroupResponse>(ApiKey::JoinGroup, 5, frame(3, false, &body))
            .unwrap_err();
    assert_eq!(err.error_code(), Some(UNKNOWN_MEMBER_ID));
    assert_eq!(err.class(), ErrorClass::Retriable);
    // v1 has no throttle: the error code is first.
    assert_eq!(lenient_error_code(ApiKey::JoinGroup, 1, &[0, 25]), Some(25));
    assert_eq!(
        lenient_error_code(ApiKey::JoinGroup, 2, &[0, 0, 0, 0, 0, 25]),
        Some(25)
    );
}

#[test]
fn sync_group_with_null_assignment_yields_its_error_code() {
    for version in [1i16, 3] {
        let mut body = BytesMut::new();
        body.put_i32(0);
        body.put_i16(REBALANCE_IN_PROGRESS);
        body.put_i32(-1); // assignment null (forbidden)
        let err = decode_response_lenient::<SyncGroupResponse>(
            ApiKey::SyncGroup,
            version,
            frame(9, false, &body),
        )
        .unwrap_err();
        assert_eq!(err.error_code(), Some(REBALANCE_IN_PROGRESS), "v{version}");
    }
}

#[test]
fn a_malformed_success_stays_a_plain_decode_error() {
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i16(0); // no error
    body.put_i32(-1); // assignment null (forbidden)
    let err =
        decode_response_lenient::<SyncGroupResponse>(ApiKey::SyncGroup, 3, frame(9, false, &body))
            .unwrap_err();
    assert!(matches!(err, WireError::Decode { .. }), "{err}");
    assert_eq!(err.error_code(), None);
    // Too short to hold an error code: also the plain error.
    let err = decode_response_lenient::<HeartbeatResponse>(
        ApiKey::Heartbeat,
        1,
        frame(9, false, &[0, 0]),
    )
    .unwrap_err();
    assert_eq!(err.error_code(), None);
    // APIs whose error code has no fixed place are never guessed.
    assert_eq!(lenient_error_code(ApiKey::OffsetCommit, 8, &[0; 16]), None);
    assert_eq!(
        lenient_error_code(ApiKey::FindCoordinator, 4, &[0; 16]),
        None
    );
}

#[test]
fn a_well_formed_response_decodes_strictly_through_the_lenient_path() {
    let resp = SyncGroupResponse::default()
        .with_error_code(0)
        .with_assignment(Bytes::from_static(b"\x00\x03abc"));
    let mut body = BytesMut::new();
    resp.encode(&mut body, 4).unwrap();
    let (id, got) =
        decode_response_lenient::<SyncGroupResponse>(ApiKey::SyncGroup, 4, frame(11, true, &body))
            .unwrap();
    assert_eq!(id, 11);
    assert_eq!(got, resp);
}

#[test]
fn request_frames_round_trip_through_decoder_and_in_flight_table() {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"));
    let mut stream = Vec::new();
    let mut table = InFlight::for_broker(1);
    for (id, version) in [(10, 5i16), (11, 9)] {
        stream.extend_from_slice(
            &encode_request(ApiKey::JoinGroup, version, id, "kgroup", &req).unwrap(),
        );
        table.register(id, ApiKey::JoinGroup, version).unwrap();
    }
    let mut dec = FrameDecoder::default().with_broker(1);
    let mut seen = Vec::new();
    for chunk in stream.chunks(7) {
        dec.push(chunk).unwrap();
        while let Some(f) = dec.next_frame().unwrap() {
            // A broker reads the header: api key, version, correlation id.
            let id = i32::from_be_bytes(f[4..8].try_into().unwrap());
            seen.push(table.take(id).unwrap());
        }
    }
    assert_eq!(seen, vec![(ApiKey::JoinGroup, 5), (ApiKey::JoinGroup, 9)]);
    assert!(table.is_empty());
    dec.finish().unwrap();
}

#[test]
fn every_bad_input_names_api_version_and_broker() {
    let hb = frame(1, true, &[0, 0, 0, 0, 0, 0, 0]);
    let cases: Vec<WireError> = vec![
        decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 4, hb.slice(..6)).unwrap_err(),
        decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 4, {
            let mut v = hb.to_vec();
            v.push(9);
            Bytes::from(v)
        })
        .unwrap_err(),
        decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 7, hb.clone()).unwrap_err(),
        decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 5, {
            let mut b = BytesMut::new();
            b.put_i32(0);
            b.put_i16(0);
            b.put_i32(1);
            b.put_i16(1);
            b.put_u8(0xc3); // protocol name: invalid UTF-8
            frame(1, false, &b)
        })
        .unwrap_err(),
        InFlight::new().take(4).unwrap_err(),
    ];
    for (i, err) in cases.into_iter().enumerate() {
        let text = err.clone().with_broker(6).to_string();
        assert!(text.contains("broker 6"), "case {i}: {text}");
        if i < 4 {
            assert!(
                text.contains("Heartbeat") || text.contains("JoinGroup"),
                "case {i}: {text}"
            );
            assert!(text.contains('v'), "case {i}: {text}");
        }
        assert_eq!(
            err.class(),
            if i == 2 {
                ErrorClass::Fatal
            } else {
                ErrorClass::Retriable
            },
            "case {i}: {err}"
        );
    }
}
