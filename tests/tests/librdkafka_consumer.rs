//! A real librdkafka consumer joins a group on the test broker.
//!
//! This proves the test broker is a working Kafka peer for the classic group
//! protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat) before kgroup's
//! own tests rely on it, and shows the mixed-group set-up later tests use.

use std::collections::BTreeSet;
use std::time::Duration;

use kgroup_tests::{TestBroker, TestBrokerOptions, deadline_after, remaining};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");

/// Short timeouts keep the mock's rebalances short: it waits about the
/// session timeout (minus one second) for members to rejoin.
fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range")
        .create()
        .expect("librdkafka accepts the consumer config")
}

fn assigned(c: &BaseConsumer) -> BTreeSet<(String, i32)> {
    c.assignment()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls every consumer until `done` holds for their assignments, or fails
/// the test at the deadline. Polling drives librdkafka's rebalance callbacks.
fn poll_until(
    consumers: &[&BaseConsumer],
    timeout: Duration,
    what: &str,
    done: impl Fn(&[BTreeSet<(String, i32)>]) -> bool,
) -> Vec<BTreeSet<(String, i32)>> {
    let deadline = deadline_after(timeout);
    loop {
        for c in consumers {
            // Message or error, both ignored: only the assignment matters here.
            let _ = c.poll(Duration::from_millis(50));
        }
        let now: Vec<_> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&now) {
            return now;
        }
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: not reached within {timeout:?}; assignments: {now:?}"
        );
    }
}

#[test]
fn librdkafka_consumer_joins_a_group_and_gets_every_partition() {
    let broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic("orders", 3))
        .expect("test broker starts");
    let c = consumer(broker.bootstrap(), "rdkafka-single");
    c.subscribe(&["orders"]).expect("subscribe");

    let got = poll_until(
        &[&c],
        Duration::from_secs(30),
        "single member assigned",
        |a| a[0].len() == 3,
    );
    let want: BTreeSet<_> = (0..3).map(|p| ("orders".to_owned(), p)).collect();
    assert_eq!(got[0], want, "the only member owns every partition");
}

#[test]
fn two_librdkafka_consumers_split_the_partitions() {
    let broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic("payments", 4))
        .expect("test broker starts");
    let a = consumer(broker.bootstrap(), "rdkafka-pair");
    let b = consumer(broker.bootstrap(), "rdkafka-pair");
    a.subscribe(&["payments"]).expect("subscribe a");
    b.subscribe(&["payments"]).expect("subscribe b");

    let got = poll_until(
        &[&a, &b],
        Duration::from_secs(45),
        "both members assigned",
        |s| !s[0].is_empty() && !s[1].is_empty() && s[0].len() + s[1].len() == 4,
    );
    assert!(
        got[0].is_disjoint(&got[1]),
        "no partition owned twice: {got:?}"
    );
    let all: BTreeSet<_> = got[0].union(&got[1]).cloned().collect();
    assert_eq!(all.len(), 4, "every partition owned: {got:?}");
}
