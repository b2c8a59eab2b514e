//! The test broker's own command protocol (docs/testing.md): one reply line
//! per command, refusals as typed errors, topics created on demand, and a
//! clean exit on `quit`.

use std::time::Duration;

use kgroup::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kgroup::kafka_protocol::messages::{MetadataRequest, TopicName};
use kgroup_tests::requests::s;
use kgroup_tests::{TestBroker, TestBrokerError, TestBrokerOptions, WireClient};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");

#[test]
fn address_line_lists_every_broker_and_bootstrap_repeats_it() {
    let mut broker =
        TestBroker::start(BROKER, &TestBrokerOptions::default().brokers(4)).expect("starts");
    assert_eq!(broker.addrs().len(), 4, "one address per broker");
    assert!(
        broker.addrs().iter().all(|a| a.ip().is_loopback()),
        "loopback only"
    );
    assert_eq!(broker.addr(0), None, "broker ids start at 1");
    assert_eq!(broker.addr(5), None, "no broker 5");
    let first_line = broker.bootstrap().to_owned();
    assert_eq!(broker.command("bootstrap").expect("bootstrap"), first_line);
    assert_eq!(broker.command("ping").expect("ping"), "");
}

#[test]
fn bad_commands_are_refused_with_a_reason_and_the_broker_keeps_going() {
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default()).expect("starts");
    for (line, reason_part) in [
        ("frobnicate", "unknown command"),
        ("broker down 9", "BROKER_NOT_AVAILABLE"),
        ("push-errors Heartbeat NOT_AN_ERROR", "unknown error name"),
        ("push-errors NoSuchApi 16", "unknown API"),
        ("cap-version 500 0 1", "INVALID_ARG"),
        ("rtt 1 soon", "not a valid number"),
    ] {
        match broker.command(line) {
            Err(TestBrokerError::Refused { command, reason }) => {
                assert_eq!(command, line);
                assert!(
                    reason.contains(reason_part),
                    "{line:?} refused for {reason:?}, expected {reason_part:?}"
                );
            }
            other => panic!("{line:?} should be refused, got {other:?}"),
        }
    }
    assert_eq!(
        broker.command("ping").expect("still alive"),
        "",
        "refusals do not stop it"
    );
}

#[test]
fn create_topic_makes_a_topic_metadata_lists() {
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default()).expect("starts");
    broker.create_topic("late", 6).expect("create-topic");
    let mut client = WireClient::connect(
        broker.addr(2).expect("broker 2"),
        2,
        Duration::from_secs(10),
    )
    .expect("connect");
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(s("late")))),
    ]));
    let answer = client.request(8, &request).expect("Metadata v8");
    let topic = answer.topics.first().expect("one topic");
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 6, "the partitions asked for");
}

#[test]
fn quit_answers_ok_then_the_process_exits() {
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default()).expect("starts");
    assert_eq!(broker.command("quit").expect("quit"), "");
    match broker.command("ping") {
        Err(TestBrokerError::Exited { .. } | TestBrokerError::Send { .. }) => {}
        other => panic!("a quit test broker answers nothing, got {other:?}"),
    }
}
