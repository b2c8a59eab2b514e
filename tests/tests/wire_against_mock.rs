//! kgroup's wire layer against a broker no one here wrote: librdkafka's mock
//! cluster (the test broker), over plain `TcpStream`s.
//!
//! Each test starts its own test broker, so tests run in parallel and a
//! fault injected by one never reaches another.

use std::time::Duration;

use kgroup::kafka_protocol::messages::{ApiKey, FindCoordinatorResponse};
use kgroup::wire::{IMPLEMENTED, NegotiatedVersions, VersionSpan, WireError, implemented};
use kgroup_tests::requests::{find_coordinator, heartbeat, join_group, sync_group};
use kgroup_tests::{TestBroker, TestBrokerOptions, WireClient, WireClientError};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// Kafka error codes (Errors.java).
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const REBALANCE_IN_PROGRESS: i16 = 27;

fn start(opts: TestBrokerOptions) -> TestBroker {
    TestBroker::start(BROKER, &opts).expect("test broker starts and prints its address")
}

fn connect(broker: &TestBroker, id: i32) -> WireClient {
    let addr = broker.addr(id).expect("broker id inside the cluster");
    WireClient::connect(addr, id, IO_TIMEOUT).expect("connect to the mock broker")
}

/// Connects to broker `id` and negotiates as the engine does (from
/// ApiVersions v3); panics with the typed error.
fn negotiated(broker: &TestBroker, id: i32) -> (WireClient, NegotiatedVersions) {
    let mut client = connect(broker, id);
    let (_, versions) = client
        .negotiate()
        .unwrap_or_else(|e| panic!("negotiation with broker {id} fails: {e}"));
    (client, versions)
}

/// FindCoordinator at the negotiated version, decoded leniently: the mock
/// writes a null host in its error answers, which the schema forbids, and
/// the engine must still learn the error code. Returns (error code, node).
fn coordinator_of(
    client: &mut WireClient,
    versions: &NegotiatedVersions,
    group: &str,
) -> (i16, i32, Option<FindCoordinatorResponse>) {
    let version = versions
        .require(ApiKey::FindCoordinator)
        .expect("FindCoordinator negotiated");
    match client.request_lenient(version, &find_coordinator(group)) {
        Ok(r) => (r.error_code, r.node_id.0, Some(r)),
        Err(WireClientError::Wire(WireError::MalformedErrorResponse { error_code, .. })) => {
            (error_code, -1, None)
        }
        Err(e) => panic!("FindCoordinator v{version} for {group}: {e}"),
    }
}

#[test]
fn apiversions_v3_is_refused_and_the_negotiation_retries_lower() {
    let broker = start(TestBrokerOptions::default());
    for id in 1..=3 {
        let mut client = connect(&broker, id);
        let (sent, versions) = client
            .negotiate()
            .unwrap_or_else(|e| panic!("negotiation from v3 with broker {id} fails: {e}"));
        println!("broker {id}: ApiVersions requests sent: {sent:?}");
        // The mock serves ApiVersions 0..=2 and answers v3 with
        // UNSUPPORTED_VERSION (35): the first request is v3 and a retry at a
        // lower version must follow (KIP-511).
        assert_eq!(
            sent.first(),
            Some(&3),
            "negotiation starts at ApiVersions v3"
        );
        assert!(
            sent.len() >= 2,
            "the v3 refusal triggers a retry: sent {sent:?}"
        );
        let retry = sent.last().copied().unwrap_or(-1);
        let offered = versions
            .offered(ApiKey::ApiVersions)
            .expect("ApiVersions listed");
        assert!(
            (0..3).contains(&retry) && offered.contains(retry),
            "retried below v3 inside the broker's ApiVersions range {offered}: sent {sent:?}"
        );
        // The result does not depend on the path taken to it.
        let (_, direct) = connect(&broker, id)
            .negotiate_from(retry)
            .expect("direct negotiation");
        assert_eq!(
            versions.chosen(),
            direct.chosen(),
            "same versions as negotiating at v{retry} directly"
        );
    }
}

#[test]
fn negotiated_versions_are_the_highest_both_sides_support() {
    let broker = start(TestBrokerOptions::default());
    for id in 1..=3 {
        let (_, versions) = negotiated(&broker, id);
        assert_eq!(versions.broker(), Some(id), "negotiated per broker");
        assert_eq!(
            versions.chosen().len(),
            IMPLEMENTED.len(),
            "a version for every API kgroup implements"
        );
        for &(api, v) in versions.chosen() {
            let ours = implemented(api).expect("chosen APIs are implemented ones");
            let theirs = versions
                .offered(api)
                .expect("chosen APIs are offered by the broker");
            assert!(
                ours.contains(v) && theirs.contains(v),
                "{api:?} v{v} outside ours {ours} or the broker's {theirs}"
            );
            assert_eq!(
                v,
                ours.max.min(theirs.max),
                "{api:?}: the highest common version"
            );
            if id == 1 {
                println!("negotiated {api:?} v{v} (kgroup {ours}, test broker {theirs})");
            }
        }
    }
}

#[test]
fn find_coordinator_names_a_broker_and_follows_a_moved_coordinator() {
    let mut broker = start(TestBrokerOptions::default());
    let (mut client, versions) = negotiated(&broker, 1);
    let group = "fc-group";

    let (code, node, response) = coordinator_of(&mut client, &versions, group);
    assert_eq!(code, 0, "FindCoordinator succeeds");
    let response = response.expect("a successful answer decodes strictly");
    let addr = broker
        .addr(node)
        .unwrap_or_else(|| panic!("coordinator {node} is one of the brokers"));
    assert_eq!(
        response.host.as_str(),
        addr.ip().to_string(),
        "advertised host of broker {node}"
    );
    assert_eq!(
        response.port,
        i32::from(addr.port()),
        "advertised port of broker {node}"
    );

    // Move it to another broker: the next answer follows.
    let target = if node == 3 { 1 } else { node + 1 };
    broker
        .set_group_coordinator(group, target)
        .expect("coordinator group command");
    let (code, moved, _) = coordinator_of(&mut client, &versions, group);
    assert_eq!(
        (code, moved),
        (0, target),
        "coordinator moved from {node} to {target}"
    );

    // The new coordinator serves the group: a JoinGroup there is accepted, and
    // the old one now answers NOT_COORDINATOR.
    let join_v = versions
        .require(ApiKey::JoinGroup)
        .expect("JoinGroup negotiated");
    let (mut old, _) = negotiated(&broker, node);
    let refused = old.request_lenient(join_v, &join_group(group, "", 6000, &["range"]));
    let refused_code = match refused {
        Ok(r) => r.error_code,
        Err(WireClientError::Wire(WireError::MalformedErrorResponse { error_code, .. })) => {
            error_code
        }
        Err(e) => panic!("JoinGroup on the old coordinator: {e}"),
    };
    assert_eq!(
        refused_code, NOT_COORDINATOR,
        "the old coordinator refuses the group"
    );
    let (mut new, _) = negotiated(&broker, target);
    let joined = new
        .request(join_v, &join_group(group, "", 6000, &["range"]))
        .expect("JoinGroup on the new coordinator");
    assert_eq!(
        joined.error_code, 0,
        "the new coordinator accepts the group"
    );
}

#[test]
fn a_version_cap_that_leaves_no_common_version_is_a_typed_error_naming_api_and_ranges() {
    let mut broker = start(TestBrokerOptions::default());
    let ours = implemented(ApiKey::OffsetCommit).expect("kgroup implements OffsetCommit");
    assert!(
        ours.min >= 2,
        "kgroup does not implement OffsetCommit v0-1 (removed in Kafka 4.0)"
    );
    // The mock implements OffsetCommit 0..=9: cap it below what kgroup speaks.
    broker
        .cap_version(ApiKey::OffsetCommit as i16, 0, ours.min - 1)
        .expect("cap-version");
    let err = connect(&broker, 1)
        .negotiate()
        .expect_err("no common OffsetCommit version");
    match &err {
        WireClientError::Wire(WireError::NoCommonVersion {
            api,
            broker_range,
            ours: ours_in_err,
            ..
        }) => {
            assert_eq!(*api, ApiKey::OffsetCommit);
            assert_eq!(*broker_range, VersionSpan::new(0, ours.min - 1));
            assert_eq!(*ours_in_err, ours);
        }
        other => panic!("expected NoCommonVersion, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("OffsetCommit") && text.contains("broker 1"),
        "message names API and broker: {text}"
    );
    println!("capped OffsetCommit: {text}");
}

#[test]
fn a_disabled_api_is_a_typed_missing_api_error() {
    let mut broker = start(TestBrokerOptions::default());
    // -1 -1 removes JoinGroup from the mock's ApiVersions answer.
    broker
        .cap_version(ApiKey::JoinGroup as i16, -1, -1)
        .expect("cap-version");
    let err = connect(&broker, 2)
        .negotiate()
        .expect_err("JoinGroup missing");
    match &err {
        WireClientError::Wire(WireError::MissingApi { api, .. }) => {
            assert_eq!(*api, ApiKey::JoinGroup)
        }
        other => panic!("expected MissingApi, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("JoinGroup") && text.contains('2'),
        "message names API and broker: {text}"
    );
    println!("disabled JoinGroup: {text}");
}

#[test]
fn pushed_find_coordinator_errors_come_back_in_order_then_stop() {
    let mut broker = start(TestBrokerOptions::default());
    let (mut client, versions) = negotiated(&broker, 1);
    broker
        .push_errors(
            ApiKey::FindCoordinator as i16,
            &[COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR],
        )
        .expect("push-errors");
    // The mock's error answers carry a null host (forbidden by the schema):
    // lenient decoding still yields the codes, in the order pushed.
    assert_eq!(
        coordinator_of(&mut client, &versions, "pushed").0,
        COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        coordinator_of(&mut client, &versions, "pushed").0,
        NOT_COORDINATOR
    );
    let (code, node, _) = coordinator_of(&mut client, &versions, "pushed");
    assert_eq!(code, 0, "the error stack is used up");
    assert!(broker.addr(node).is_some(), "a real coordinator again");
}

#[test]
fn pushed_heartbeat_errors_reach_a_member_of_a_group() {
    let mut broker = start(TestBrokerOptions::default());
    let group = "hb-group";
    let (mut bootstrap, versions) = negotiated(&broker, 1);
    let (code, coordinator, _) = coordinator_of(&mut bootstrap, &versions, group);
    assert_eq!(code, 0);
    let (mut client, versions) = negotiated(&broker, coordinator);
    let join_v = versions
        .require(ApiKey::JoinGroup)
        .expect("JoinGroup negotiated");
    let sync_v = versions
        .require(ApiKey::SyncGroup)
        .expect("SyncGroup negotiated");
    let hb_v = versions
        .require(ApiKey::Heartbeat)
        .expect("Heartbeat negotiated");

    // A one-member group: join (leader), sync, then heartbeats succeed.
    let joined = client
        .request(join_v, &join_group(group, "", 6000, &["range"]))
        .expect("JoinGroup");
    assert_eq!(joined.error_code, 0, "JoinGroup v{join_v} accepted");
    let (generation, member) = (joined.generation_id, joined.member_id.to_string());
    assert_eq!(joined.leader.as_str(), member, "the only member leads");
    let synced = client
        .request(
            sync_v,
            &sync_group(group, generation, &member, &[member.as_str()]),
        )
        .expect("SyncGroup");
    assert_eq!(synced.error_code, 0, "SyncGroup v{sync_v} accepted");
    let beat = |c: &mut WireClient| {
        c.request(hb_v, &heartbeat(group, generation, &member))
            .expect("Heartbeat")
            .error_code
    };
    assert_eq!(beat(&mut client), 0, "stable member heartbeats");

    // Cluster-wide push: the next two heartbeats fail in order, then it stops.
    broker
        .push_errors(
            ApiKey::Heartbeat as i16,
            &[NOT_COORDINATOR, REBALANCE_IN_PROGRESS],
        )
        .expect("push-errors");
    assert_eq!(beat(&mut client), NOT_COORDINATOR);
    assert_eq!(beat(&mut client), REBALANCE_IN_PROGRESS);
    assert_eq!(beat(&mut client), 0);

    // Broker-specific push, counted by error-count.
    broker
        .push_broker_errors(
            coordinator,
            ApiKey::Heartbeat as i16,
            &[(NOT_COORDINATOR, 0)],
        )
        .expect("push-errors broker");
    let left = |b: &mut TestBroker| {
        b.command(&format!("error-count {coordinator} Heartbeat"))
            .expect("error-count")
    };
    assert_eq!(left(&mut broker), "1");
    assert_eq!(beat(&mut client), NOT_COORDINATOR);
    assert_eq!(left(&mut broker), "0");
    assert_eq!(beat(&mut client), 0);
}

#[test]
fn a_broker_set_down_drops_its_connections_and_comes_back_up() {
    let mut broker = start(TestBrokerOptions::default());
    let (mut client, versions) = negotiated(&broker, 2);
    broker.broker_down(2).expect("broker down");
    // The existing connection is closed; the exact error depends on timing
    // (EOF or reset), but no request is answered.
    let result = client.request_lenient(
        versions
            .require(ApiKey::FindCoordinator)
            .expect("negotiated"),
        &find_coordinator("down"),
    );
    assert!(
        matches!(
            result,
            Err(WireClientError::Closed { .. } | WireClientError::Io { .. })
        ),
        "a down broker answers nothing: {result:?}"
    );
    broker.broker_up(2).expect("broker up");
    let (mut again, versions) = negotiated(&broker, 2);
    assert_eq!(
        coordinator_of(&mut again, &versions, "up").0,
        0,
        "served again once up"
    );
}

#[test]
fn rtt_delays_every_response_of_one_broker() {
    let mut broker = start(TestBrokerOptions::default());
    let (mut client, versions) = negotiated(&broker, 3);
    let rtt = Duration::from_millis(300);
    broker.set_rtt(3, rtt).expect("rtt");
    let started = kgroup_tests::deadline_after(Duration::ZERO);
    assert_eq!(coordinator_of(&mut client, &versions, "slow").0, 0);
    let took = started.elapsed();
    // A lower bound only: never flaky on a slow machine.
    assert!(
        took >= rtt,
        "the answer took {took:?}, under the {rtt:?} round trip"
    );
}

#[test]
fn metadata_at_the_negotiated_version_lists_a_topics_partitions() {
    use kgroup::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kgroup::kafka_protocol::messages::{MetadataRequest, TopicName};
    let broker = start(TestBrokerOptions::default().topic("orders", 5));
    let (mut client, versions) = negotiated(&broker, 1);
    let version = versions
        .require(ApiKey::Metadata)
        .expect("Metadata negotiated");
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(Some(TopicName(kgroup_tests::requests::s("orders")))),
    ]));
    let answer = client
        .request(version, &request)
        .expect("Metadata decodes strictly");
    assert_eq!(answer.brokers.len(), 3, "every broker listed");
    let topic = answer
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("orders"))
        .expect("the topic created on the command line");
    assert_eq!(topic.error_code, 0);
    let mut partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    assert_eq!(
        partitions,
        [0, 1, 2, 3, 4],
        "Metadata v{version}: the topic's partitions"
    );
}
