//! Hostile peers never crash a kgroup member (a librdkafka 2.16 leader was
//! seen to crash on exactly these inputs): a raw client speaking the group
//! protocol by hand joins the group on the test broker next to a kgroup
//! member driven by kgroup-blocking.
//!
//! - As a follower it sends hostile subscriptions: corrupt bytes, and a v0
//!   subscription (no owned partitions) in a cooperative group; the kgroup
//!   leader assigns without failing, never a partition twice.
//! - As the leader it hands the kgroup member a corrupt assignment, then one
//!   naming a topic it never subscribed to; the kgroup member
//!   reports a warning and rejoins, never a fatal error, and owns every
//!   partition once the hostile member has gone.
//!
//! The mock elects the member with the lowest `group.instance.id` as leader,
//! so instance ids pick the leader here.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use bytes::Bytes;
use kgroup::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kgroup::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kgroup::kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, GroupId, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kgroup::wire::{Assignment, Subscription};
use kgroup::{Config, Event, TopicPartition};
use kgroup_tests::requests::{heartbeat, s};
use kgroup_tests::{TestBroker, TestBrokerOptions, WireClient, deadline_after, remaining};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const TOPIC: &str = "orders";
const WAIT: Duration = Duration::from_secs(30);

/// A kgroup member in a thread; its events come back on the channel until
/// the returned sender is dropped (then it closes).
fn kgroup_member(
    bootstrap: &str,
    group: &str,
    instance: &str,
) -> (mpsc::Sender<()>, Receiver<Event>) {
    let config = Config::builder(group)
        .assignors(vec![
            kgroup::assignor::builtin("cooperative-sticky").expect("assignor"),
        ])
        .instance_id(instance)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(10))
        .build()
        .expect("config");
    let mut consumer = kgroup_blocking::Consumer::new(config, bootstrap).expect("consumer");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        consumer.subscribe([TOPIC]);
        while matches!(stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            if let Some(e) = consumer.poll(Duration::from_millis(20)) {
                let fatal = matches!(e, Event::Fatal(_));
                if tx.send(e).is_err() || fatal {
                    return;
                }
            }
        }
        consumer.leave("test over");
        let _ = consumer.close_within(Duration::from_secs(5));
    });
    (stop_tx, rx)
}

/// What the kgroup member has reported so far.
#[derive(Debug, Default)]
struct Seen {
    owned: BTreeSet<TopicPartition>,
    generation: i32,
    warnings: usize,
    fatal: Vec<String>,
}

impl Seen {
    fn absorb(&mut self, rx: &Receiver<Event>) {
        while let Ok(e) = rx.try_recv() {
            match e {
                Event::Assigned {
                    generation,
                    partitions,
                    ..
                } => {
                    self.generation = generation;
                    self.owned = partitions.into_iter().collect();
                }
                Event::Revoked { partitions } | Event::Lost { partitions, .. } => {
                    for tp in &partitions {
                        self.owned.remove(tp);
                    }
                }
                Event::Warning(_) => self.warnings += 1,
                Event::Fatal(e) => self.fatal.push(e.to_string()),
                _ => {}
            }
        }
    }
}

fn wait(rx: &Receiver<Event>, seen: &mut Seen, what: &str, cond: impl Fn(&Seen) -> bool) {
    let deadline = deadline_after(WAIT);
    loop {
        seen.absorb(rx);
        assert!(seen.fatal.is_empty(), "{what}: fatal: {:?}", seen.fatal);
        if cond(seen) {
            return;
        }
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: not within {WAIT:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hand-driven member: one connection to the group's coordinator.
struct Raw {
    client: WireClient,
    group: String,
    instance: String,
    member_id: String,
    generation: i32,
    versions: kgroup::wire::NegotiatedVersions,
}

impl Raw {
    fn connect(broker: &TestBroker, group: &str, instance: &str) -> Raw {
        let timeout = Duration::from_secs(20);
        let addr = broker.addr(1).expect("broker 1");
        let mut boot = WireClient::connect(addr, 1, timeout).expect("connect");
        let (_, v) = boot.negotiate().expect("negotiate");
        let fc_v = v.require(ApiKey::FindCoordinator).expect("FindCoordinator");
        let fc = boot
            .request(fc_v, &FindCoordinatorRequest::default().with_key(s(group)))
            .expect("FindCoordinator");
        let id = fc.node_id.0;
        let mut client = WireClient::connect(broker.addr(id).expect("coordinator"), id, timeout)
            .expect("connect coordinator");
        let (_, versions) = client.negotiate().expect("negotiate");
        Raw {
            client,
            group: group.to_owned(),
            instance: instance.to_owned(),
            member_id: String::new(),
            generation: -1,
            versions,
        }
    }

    fn v(&self, api: ApiKey) -> i16 {
        self.versions.require(api).expect("negotiated")
    }

    /// JoinGroup with `metadata` under cooperative-sticky; returns the member
    /// list when leading.
    fn join(&mut self, metadata: Bytes) -> Vec<(String, Bytes)> {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(10000)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(Some(s(&self.instance)))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("cooperative-sticky"))
                    .with_metadata(metadata),
            ]);
        let v = self.v(ApiKey::JoinGroup);
        let r = self.client.request(v, &req).expect("JoinGroup answered");
        assert_eq!(r.error_code, 0, "JoinGroup error {}", r.error_code);
        self.member_id = r.member_id.to_string();
        self.generation = r.generation_id;
        r.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.metadata.clone()))
            .collect()
    }

    /// SyncGroup with `assignments` (leader) or none (follower).
    fn sync(&mut self, assignments: Vec<(String, Bytes)>) -> (i16, Bytes) {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(Some(s(&self.instance)))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        let v = self.v(ApiKey::SyncGroup);
        let r = self
            .client
            .request_lenient(v, &req)
            .expect("SyncGroup answered");
        (r.error_code, r.assignment)
    }

    fn heartbeat(&mut self) -> i16 {
        let v = self.v(ApiKey::Heartbeat);
        let hb = heartbeat(&self.group, self.generation, &self.member_id)
            .with_group_instance_id(Some(s(&self.instance)));
        self.client
            .request_lenient(v, &hb)
            .map(|r| r.error_code)
            .unwrap_or(-1)
    }

    fn leave(&mut self) {
        let v = self.v(ApiKey::LeaveGroup).min(2);
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_member_id(s(&self.member_id));
        let _ = self.client.request_lenient(v, &req);
    }
}

fn all(n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(TOPIC, p)).collect()
}

/// A v0 subscription: topics only, no owned partitions, no user data.
fn v0_subscription() -> Bytes {
    Subscription::new([TOPIC]).encode(0).expect("v0 encodes")
}

#[test]
fn hostile_member_metadata_never_crashes_a_kgroup_leader() {
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic(TOPIC, 4))
        .expect("test broker starts");
    let group = "e2e-hostile-metadata";
    // The kgroup leader reads metadata from broker 1, 200 ms late, so the
    // hostile follower's SyncGroup comes first (the mock answers a late
    // follower with INVALID_REQUEST, a mock race not under test).
    broker
        .set_group_coordinator(group, 2)
        .expect("coordinator on broker 2");
    broker.set_rtt(1, Duration::from_millis(200)).expect("rtt");
    // "a-..." sorts first: the kgroup member leads.
    let (stop, rx) = kgroup_member(broker.bootstrap(), group, "a-kgroup");
    let mut seen = Seen::default();
    wait(&rx, &mut seen, "kgroup alone owns everything", |s| {
        s.owned == all(4)
    });

    let hostile: [(&str, Bytes); 3] = [
        (
            "corrupt bytes",
            Bytes::from_static(&[0x00, 0x01, 0xff, 0xff, 0xff, 0x7f, 0x00]),
        ),
        ("v0 subscription, no owned partitions", v0_subscription()),
        (
            "v1 subscription with corrupt user data",
            Subscription {
                user_data: Some(Bytes::from_static(&[0xde, 0xad, 0xbe])),
                ..Subscription::new([TOPIC])
            }
            .encode(1)
            .expect("v1 encodes"),
        ),
    ];
    for (what, metadata) in hostile {
        let mut raw = Raw::connect(&broker, group, "z-hostile");
        // Cooperative: partitions move in two rounds (revoke, then assign),
        // so the hostile member rejoins until the group has settled.
        let mut settled = false;
        for round in 0..4 {
            if round > 0 {
                let deadline = deadline_after(WAIT);
                while raw.heartbeat() == 0 {
                    assert!(!remaining(deadline).is_zero(), "{what}: no next round");
                    seen.absorb(&rx);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let members = raw.join(metadata.clone());
            assert!(
                members.is_empty(),
                "{what}: the hostile member does not lead"
            );
            let (code, assignment) = raw.sync(Vec::new());
            assert_eq!(code, 0, "{what}: SyncGroup error {code}");
            let mine: BTreeSet<TopicPartition> = Assignment::decode(&assignment)
                .map(|(_, a)| a.partitions.into_iter().collect())
                .unwrap_or_default();
            let generation = raw.generation;
            wait(
                &rx,
                &mut seen,
                &format!("{what}: kgroup assigned in generation {generation}"),
                |s| s.generation == generation,
            );
            assert!(
                seen.owned.is_disjoint(&mine),
                "{what}: a partition owned twice: {seen:?} / {mine:?}"
            );
            let union: BTreeSet<_> = seen.owned.union(&mine).cloned().collect();
            if union == all(4) {
                settled = true;
                break;
            }
        }
        assert!(settled, "{what}: every partition assigned once: {seen:?}");
        let generation = raw.generation;
        raw.leave();
        wait(
            &rx,
            &mut seen,
            &format!("{what}: kgroup owns everything again"),
            |s| s.owned == all(4) && s.generation > generation,
        );
    }
    drop(stop);
}

#[test]
fn a_hostile_leaders_assignments_never_crash_a_kgroup_follower() {
    let broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic(TOPIC, 4))
        .expect("test broker starts");
    let group = "e2e-hostile-leader";
    // The hostile client joins first and sorts first: it leads.
    let mut raw = Raw::connect(&broker, group, "a-hostile");
    let members = raw.join(Subscription::new([TOPIC]).encode(1).expect("encodes"));
    let me = raw.member_id.clone();
    let own = Assignment::new(all(4).into_iter().collect())
        .encode(1)
        .expect("encodes");
    let _ = raw.sync(members.into_iter().map(|(m, _)| (m, own.clone())).collect());

    let (stop, rx) = kgroup_member(broker.bootstrap(), group, "z-kgroup");
    let mut seen = Seen::default();
    let bad: [(&str, Bytes); 2] = [
        (
            "corrupt assignment bytes",
            Bytes::from_static(&[0x00, 0x00, 0x7f, 0xff, 0xff, 0xff]),
        ),
        (
            "an unknown topic",
            Assignment::new(vec![TopicPartition::new("no-such-topic", 0)])
                .encode(1)
                .expect("encodes"),
        ),
    ];
    for (what, assignment) in bad {
        // Rejoin (the kgroup member's join started a rebalance, or its
        // rejoin after the previous bad assignment did).
        let deadline = deadline_after(WAIT);
        while raw.heartbeat() == 0 {
            assert!(
                !remaining(deadline).is_zero(),
                "{what}: no rebalance started"
            );
            seen.absorb(&rx);
            std::thread::sleep(Duration::from_millis(100));
        }
        let members = raw.join(Subscription::new([TOPIC]).encode(1).expect("encodes"));
        assert!(!members.is_empty(), "{what}: the hostile member leads");
        let assignments = members
            .into_iter()
            .map(|(m, _)| {
                if m == me {
                    (m, own.clone())
                } else {
                    (m, assignment.clone())
                }
            })
            .collect();
        // A leader takes a moment to assign, as a real one does: the mock
        // answers a follower's SyncGroup that comes after the leader's with
        // INVALID_REQUEST (group already UP), a mock race, not under test.
        std::thread::sleep(Duration::from_millis(300));
        let (code, _) = raw.sync(assignments);
        assert_eq!(code, 0, "{what}: SyncGroup error {code}");
        let warnings = seen.warnings;
        wait(
            &rx,
            &mut seen,
            &format!("{what}: the kgroup member warns"),
            |s| s.warnings > warnings,
        );
        assert!(
            seen.owned.is_empty() || seen.owned.iter().all(|tp| tp.topic == TOPIC),
            "{what}: nothing invalid accepted: {seen:?}"
        );
    }
    // The hostile leader goes: the kgroup member takes everything.
    raw.leave();
    wait(
        &rx,
        &mut seen,
        "kgroup owns everything after the hostile leader left",
        |s| s.owned == all(4),
    );
    drop(stop);
}
