//! What librdkafka 2.12.1's mock cluster does differently from Kafka, pinned
//! by tests so `docs/testing.md` stays true and the test broker's version
//! caps stay justified. If one of these starts failing after a librdkafka
//! upgrade, the mock changed: update the caps in `kgroup-testbroker` and the
//! limitations listed in `docs/testing.md`.

use std::time::Duration;

use kgroup::kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kgroup::wire::WireError;
use kgroup_tests::requests::{find_coordinator, heartbeat, join_group, leave_group, sync_group};
use kgroup_tests::{
    TestBroker, TestBrokerError, TestBrokerOptions, WireClient, WireClientError, deadline_after,
    remaining,
};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const UNKNOWN_MEMBER_ID: i16 = 25;

fn start(opts: TestBrokerOptions) -> TestBroker {
    TestBroker::start(BROKER, &opts).expect("test broker starts")
}

/// A connection to the coordinator of `group` (found through broker 1).
fn coordinator(broker: &TestBroker, group: &str) -> WireClient {
    let mut boot = WireClient::connect(broker.addr(1).expect("broker 1"), 1, IO_TIMEOUT)
        .expect("connect broker 1");
    let found = boot
        .request(3, &find_coordinator(group))
        .expect("FindCoordinator v3");
    assert_eq!(found.error_code, 0, "FindCoordinator for {group}");
    let id = found.node_id.0;
    WireClient::connect(broker.addr(id).expect("coordinator id"), id, IO_TIMEOUT)
        .expect("connect coordinator")
}

/// A one-member group, joined at JoinGroup v5 and synced at v3 (versions the
/// mock serves): returns (generation, member id).
fn stable_member(c: &mut WireClient, group: &str) -> (i32, String) {
    let joined = c
        .request(5, &join_group(group, "", 6000, &["range"]))
        .expect("JoinGroup v5");
    assert_eq!(joined.error_code, 0, "JoinGroup v5");
    let member = joined.member_id.to_string();
    let synced = c
        .request(
            3,
            &sync_group(group, joined.generation_id, &member, &[member.as_str()]),
        )
        .expect("SyncGroup v3");
    assert_eq!(synced.error_code, 0, "SyncGroup v3");
    (joined.generation_id, member)
}

/// The ranges the test broker advertises, from a raw ApiVersions v2 answer.
fn advertised(broker: &TestBroker, api: ApiKey) -> (i16, i16) {
    let mut c =
        WireClient::connect(broker.addr(1).expect("broker 1"), 1, IO_TIMEOUT).expect("connect");
    let answer = c
        .request(2, &ApiVersionsRequest::default())
        .expect("ApiVersions v2");
    answer
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| (k.min_version, k.max_version))
        .unwrap_or((-1, -1))
}

#[test]
fn the_test_broker_caps_the_versions_the_mock_cannot_parse() {
    let raw = start(TestBrokerOptions::default().raw_versions());
    let capped = start(TestBrokerOptions::default());
    for (api, honest_max) in [
        (ApiKey::JoinGroup, 5),
        (ApiKey::SyncGroup, 3),
        (ApiKey::LeaveGroup, 2),
        (ApiKey::Heartbeat, 4),
        (ApiKey::Metadata, 8),
    ] {
        let (_, raw_max) = advertised(&raw, api);
        let (_, capped_max) = advertised(&capped, api);
        println!("{api:?}: mock advertises v{raw_max}, test broker v{capped_max}");
        assert!(
            raw_max > honest_max,
            "{api:?}: the mock advertises v{raw_max}"
        );
        assert_eq!(capped_max, honest_max, "{api:?} capped");
    }
}

#[test]
fn joingroup_v6_and_syncgroup_v4_close_the_connection() {
    let broker = start(TestBrokerOptions::default().raw_versions());
    let mut c = coordinator(&broker, "flex-join");
    let join = c.request(6, &join_group("flex-join", "", 6000, &["range"]));
    assert!(
        matches!(join, Err(WireClientError::Closed { .. })),
        "JoinGroup v6: {join:?}"
    );

    let mut c = coordinator(&broker, "flex-sync");
    let (generation, member) = {
        let joined = c
            .request(5, &join_group("flex-sync", "", 6000, &["range"]))
            .expect("JoinGroup v5");
        (joined.generation_id, joined.member_id.to_string())
    };
    let sync = c.request(
        4,
        &sync_group("flex-sync", generation, &member, &[member.as_str()]),
    );
    assert!(
        matches!(sync, Err(WireClientError::Closed { .. })),
        "SyncGroup v4: {sync:?}"
    );
}

#[test]
fn leavegroup_v3_does_not_remove_the_member_but_v2_does() {
    let broker = start(TestBrokerOptions::default().raw_versions());
    for (version, removed) in [(2i16, true), (3, false)] {
        let group = format!("leave-v{version}");
        let mut c = coordinator(&broker, &group);
        let (generation, member) = stable_member(&mut c, &group);
        // v3 answers are malformed (null members array): lenient decoding.
        let left = c.request_lenient(version, &leave_group(&group, &member, version));
        if removed {
            assert_eq!(left.expect("LeaveGroup v2").error_code, 0);
        } else {
            assert!(
                matches!(
                    left,
                    Err(WireClientError::Wire(
                        WireError::MalformedErrorResponse { .. }
                    ))
                ),
                "LeaveGroup v3 answer: {left:?}"
            );
        }
        let after = c
            .request(4, &heartbeat(&group, generation, &member))
            .expect("Heartbeat v4");
        assert_eq!(
            after.error_code == UNKNOWN_MEMBER_ID,
            removed,
            "LeaveGroup v{version}: heartbeat afterwards answers {}",
            after.error_code
        );
    }
}

#[test]
fn first_generation_is_2_and_member_id_required_is_never_sent() {
    let broker = start(TestBrokerOptions::default());
    let mut c = coordinator(&broker, "gen");
    // JoinGroup v4+ with an empty member id: Kafka 2.2+ answers
    // MEMBER_ID_REQUIRED (79) first (KIP-394); the mock admits directly.
    let joined = c
        .request(5, &join_group("gen", "", 6000, &["range"]))
        .expect("JoinGroup v5");
    assert_eq!(joined.error_code, 0, "no MEMBER_ID_REQUIRED");
    assert!(!joined.member_id.is_empty(), "a member id is assigned");
    assert_eq!(joined.generation_id, 2, "the mock's first generation");
}

#[test]
fn a_mock_assertion_kills_the_test_broker_not_the_test() {
    let mut broker = start(TestBrokerOptions::default());
    let group = "mixed-protocols";
    let session = 3000;
    // Member A joins alone and leads with first protocol "range".
    let mut a = coordinator(&broker, group);
    let first = a
        .request(5, &join_group(group, "", session, &["range"]))
        .expect("A joins");
    let a_id = first.member_id.to_string();
    // Member B asks for "roundrobin" first; its join waits for a rebalance.
    let mut b = coordinator(&broker, group);
    b.send(
        ApiKey::JoinGroup,
        5,
        &join_group(group, "", session, &["roundrobin", "range"]),
    )
    .expect("B sends JoinGroup");
    // A rejoins; with every member in, the mock elects A and asserts that
    // each member's first protocol is the leader's: B's is not, so it aborts.
    a.send(
        ApiKey::JoinGroup,
        5,
        &join_group(group, &a_id, session, &["range"]),
    )
    .expect("A rejoins");

    let deadline = deadline_after(Duration::from_secs(20));
    loop {
        match broker.command("ping") {
            Ok(_) => {}
            Err(TestBrokerError::Exited { .. } | TestBrokerError::Send { .. }) => break,
            Err(e) => panic!("unexpected test broker error: {e}"),
        }
        assert!(
            !remaining(deadline).is_zero(),
            "the mock did not abort on differing first protocols"
        );
        // Wait for A's answer (or the connection's end) rather than sleep.
        let _ = a.recv_frame();
    }
    // This process is alive and the connections report the loss as errors.
    assert!(a.recv_frame().is_err(), "A's connection is gone");
}

#[test]
fn flexible_metadata_answers_end_with_a_stray_byte() {
    use kgroup::kafka_protocol::messages::MetadataRequest;
    let broker = start(
        TestBrokerOptions::default()
            .raw_versions()
            .topic("orders", 2),
    );
    let mut c =
        WireClient::connect(broker.addr(1).expect("broker 1"), 1, IO_TIMEOUT).expect("connect");
    // v8 (the last non-flexible version) decodes strictly; v9 has one extra
    // byte (a second empty tagged-field section) after the last field.
    let v8 = c.request(8, &MetadataRequest::default());
    assert!(v8.is_ok(), "Metadata v8: {v8:?}");
    let v9 = c.request(9, &MetadataRequest::default());
    assert!(
        matches!(
            v9,
            Err(WireClientError::Wire(WireError::TrailingBytes {
                extra: 1,
                ..
            }))
        ),
        "Metadata v9: {v9:?}"
    );
}

#[test]
fn the_apiversions_v3_refusal_is_in_neither_the_v3_nor_the_v0_layout() {
    use kgroup::kafka_protocol::messages::ApiVersionsResponse;
    use kgroup::wire::{decode_response, lenient_error_code};
    let broker = start(TestBrokerOptions::default());
    let mut c =
        WireClient::connect(broker.addr(1).expect("broker 1"), 1, IO_TIMEOUT).expect("connect");
    c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .expect("send ApiVersions v3");
    let (_, _, frame) = c.recv_frame().expect("an answer");
    // Response header v0 (correlation id only), then the body the mock
    // writes for a refused flexible ApiVersions (rd_kafka_mock_handle_ApiVersion):
    // ErrorCode 35, the entry count as ONE byte holding the plain count (not
    // count + 1 as a compact array would), the ApiVersions entry as int16s
    // without tagged fields, ThrottleTimeMs, and no tagged-field section.
    let body = frame.get(4..).unwrap_or_default();
    assert_eq!(
        body,
        [0, 35, 1, 0, 18, 0, 0, 0, 2, 0, 0, 0, 0],
        "mock's refusal bytes"
    );
    assert_eq!(
        lenient_error_code(ApiKey::ApiVersions, 3, body),
        Some(35),
        "the error code is still readable"
    );
    for version in [3, 0] {
        let decoded =
            decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, version, frame.clone());
        assert!(
            decoded.is_err(),
            "the refusal does not parse as v{version}: {decoded:?}"
        );
    }
}
