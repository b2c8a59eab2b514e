//! ApiVersions negotiation against scripted broker answers, including the
//! UNSUPPORTED_VERSION retry of KIP-511 and the librdkafka mock's ranges.

use bytes::{BufMut, Bytes, BytesMut};
use kgroup::ErrorClass;
use kgroup::kafka_protocol::messages::api_versions_response::ApiVersion;
use kgroup::kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kgroup::kafka_protocol::protocol::Encodable;
use kgroup::wire::negotiate::{UNSUPPORTED_VERSION, is_valid_client_software};
use kgroup::wire::{Negotiation, NegotiationState, VersionSpan, WireError};

/// Ranges of librdkafka 2.12's mock cluster (PROTOCOL.md, issue 3).
const MOCK: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 2),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 6),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 2),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 6),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
];

fn response(error_code: i16, ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            ranges
                .iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// A response frame (header v0 + body at `version`), without size prefix.
fn frame(correlation_id: i32, version: i16, body: &ApiVersionsResponse) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

#[test]
fn unsupported_v3_retries_at_the_listed_version_then_negotiates_mock_ranges() {
    let mut n = Negotiation::new("kgroup", "0.1.0").unwrap().with_broker(1);
    let (v, req) = n.poll_request().unwrap();
    assert_eq!(v, 3);
    assert_eq!(req.client_software_name.as_str(), "kgroup");
    assert!(n.poll_request().is_none(), "one request at a time");

    // The mock answers a v3 request with error 35 in the v0 layout.
    let refusal = response(UNSUPPORTED_VERSION, &[(ApiKey::ApiVersions, 0, 2)]);
    n.handle_response_frame(frame(1, 0, &refusal)).unwrap();
    assert_eq!(n.state(), &NegotiationState::Send { version: 2 });
    let (v, _) = n.poll_request().unwrap();
    assert_eq!(v, 2);

    n.handle_response_frame(frame(2, 2, &response(0, MOCK)))
        .unwrap();
    let got = n.versions().unwrap();
    let expect = [
        (ApiKey::ApiVersions, 2),
        (ApiKey::Metadata, 12),
        (ApiKey::FindCoordinator, 3),
        (ApiKey::JoinGroup, 6),
        (ApiKey::SyncGroup, 3),
        (ApiKey::Heartbeat, 4),
        (ApiKey::LeaveGroup, 2),
        (ApiKey::OffsetCommit, 9),
        (ApiKey::OffsetFetch, 6),
    ];
    for (api, version) in expect {
        assert_eq!(got.version(api), Some(version), "{api:?}");
        assert_eq!(got.require(api).unwrap(), version);
    }
    assert_eq!(
        got.offered(ApiKey::ConsumerGroupHeartbeat),
        Some(VersionSpan::new(0, 1))
    );
    assert_eq!(got.version(ApiKey::ConsumerGroupHeartbeat), None);
    assert_eq!(got.broker(), Some(1));
}

#[test]
fn unsupported_without_an_api_versions_entry_falls_back_to_v0() {
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    n.poll_request().unwrap();
    n.handle_response(&response(UNSUPPORTED_VERSION, &[]))
        .unwrap();
    let (v, req) = n.poll_request().unwrap();
    assert_eq!(v, 0);
    assert!(
        req.client_software_name.is_empty(),
        "v0 carries no software name"
    );
    // A v0 refusal again cannot go lower: typed failure.
    let err = n
        .handle_response(&response(UNSUPPORTED_VERSION, &[]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::ApiVersionsFailed {
                version: 0,
                error_code: 35,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(n.state(), NegotiationState::Failed(_)));
}

#[test]
fn a_newer_broker_is_capped_at_our_maxima() {
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    n.poll_request().unwrap();
    let all_new: Vec<_> = kgroup::wire::IMPLEMENTED
        .iter()
        .map(|&(api, _)| (api, 0, 20))
        .collect();
    n.handle_response_frame(frame(0, 3, &response(0, &all_new)))
        .unwrap();
    for &(api, ours) in kgroup::wire::IMPLEMENTED {
        assert_eq!(
            n.versions().unwrap().version(api),
            Some(ours.max),
            "{api:?}"
        );
    }
}

#[test]
fn missing_api_names_the_api_and_our_range() {
    let without_join: Vec<_> = MOCK
        .iter()
        .copied()
        .filter(|(k, _, _)| *k != ApiKey::JoinGroup)
        .collect();
    let mut n = Negotiation::new("kgroup", "1").unwrap().with_broker(4);
    n.poll_request().unwrap();
    let err = n.handle_response(&response(0, &without_join)).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::MissingApi {
                api: ApiKey::JoinGroup,
                ours: VersionSpan { min: 0, max: 9 },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal);
    let text = err.to_string();
    assert!(
        text.contains("JoinGroup") && text.contains("broker 4") && text.contains("v0..=v9"),
        "{text}"
    );
}

#[test]
fn disjoint_ranges_name_both() {
    let mut capped: Vec<_> = MOCK.to_vec();
    for r in &mut capped {
        if r.0 == ApiKey::OffsetCommit {
            *r = (ApiKey::OffsetCommit, 0, 1);
        }
    }
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    n.poll_request().unwrap();
    let err = n.handle_response(&response(0, &capped)).unwrap_err();
    match &err {
        WireError::NoCommonVersion {
            api,
            broker_range,
            ours,
            ..
        } => {
            assert_eq!(*api, ApiKey::OffsetCommit);
            assert_eq!(*broker_range, VersionSpan::new(0, 1));
            assert_eq!(*ours, VersionSpan::new(2, 9));
        }
        other => panic!("unexpected {other}"),
    }
    // A broker whose minimum is above our maximum is refused too.
    let mut raised: Vec<_> = MOCK.to_vec();
    for r in &mut raised {
        if r.0 == ApiKey::Heartbeat {
            *r = (ApiKey::Heartbeat, 5, 7);
        }
    }
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    n.poll_request().unwrap();
    assert!(matches!(
        n.handle_response(&response(0, &raised)),
        Err(WireError::NoCommonVersion {
            api: ApiKey::Heartbeat,
            ..
        })
    ));
}

#[test]
fn other_errors_and_unexpected_responses_are_typed() {
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    let err = n.handle_response(&response(0, MOCK)).unwrap_err();
    assert!(matches!(err, WireError::NegotiationState { .. }), "{err}");
    n.poll_request().unwrap();
    let err = n.handle_response(&response(42, &[])).unwrap_err();
    assert!(matches!(
        err,
        WireError::ApiVersionsFailed {
            version: 3,
            error_code: 42,
            ..
        }
    ));
    // Garbage bytes: a decode error, not a panic.
    let mut n = Negotiation::new("kgroup", "1").unwrap();
    n.poll_request().unwrap();
    assert!(
        n.handle_response_frame(Bytes::from_static(&[0, 0, 0, 1, 0xff]))
            .is_err()
    );
}

#[test]
fn client_software_names_follow_the_broker_rule() {
    for ok in ["kgroup", "k", "kgroup-rs", "0.1.0", "a.b-c9"] {
        assert!(is_valid_client_software(ok), "{ok}");
    }
    for bad in ["", "-x", "x-", "x.", "a b", "kgroup_rs", "é"] {
        assert!(!is_valid_client_software(bad), "{bad}");
    }
    assert!(matches!(
        Negotiation::new("kgroup rs", "1"),
        Err(WireError::InvalidClientSoftware { field: "name", .. })
    ));
    assert!(matches!(
        Negotiation::new("kgroup", "1.0-"),
        Err(WireError::InvalidClientSoftware {
            field: "version",
            ..
        })
    ));
}

#[test]
fn starting_at_a_remembered_version() {
    let mut n = Negotiation::new("kgroup", "1").unwrap().starting_at(2);
    assert_eq!(n.poll_request().unwrap().0, 2);
    let mut n = Negotiation::new("kgroup", "1").unwrap().starting_at(9);
    assert_eq!(n.poll_request().unwrap().0, 3);
}

#[test]
fn the_mock_refusal_in_neither_layout_steps_down_one_version() {
    // Exactly what librdkafka 2.12's mock answers to ApiVersions v3
    // (header v0, then error 35, a one-byte plain count, one non-flexible
    // entry, throttle): it parses as neither v3 nor v0.
    let mut n = Negotiation::new("kgroup", "0.1.0").unwrap().with_broker(1);
    assert_eq!(n.poll_request().unwrap().0, 3);
    let refusal = Bytes::from_static(&[0, 0, 0, 1, 0, 35, 1, 0, 18, 0, 0, 0, 2, 0, 0, 0, 0]);
    n.handle_response_frame(refusal).unwrap();
    assert_eq!(n.state(), &NegotiationState::Send { version: 2 });
    assert_eq!(n.poll_request().unwrap().0, 2);
    n.handle_response_frame(frame(2, 2, &response(0, MOCK)))
        .unwrap();
    assert_eq!(n.versions().unwrap().version(ApiKey::JoinGroup), Some(6));
    // Garbage with another error code is not a downgrade.
    let mut n = Negotiation::new("kgroup", "0.1.0").unwrap();
    n.poll_request().unwrap();
    let err = n
        .handle_response_frame(Bytes::from_static(&[0, 0, 0, 1, 0, 42, 1, 2, 3]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Decode { .. } | WireError::TrailingBytes { .. }
        ),
        "{err}"
    );
}
