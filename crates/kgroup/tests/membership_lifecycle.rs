//! Join, sync, heartbeat, leave: the happy paths and the protocol features
//! (KIP-394 two-step join, KIP-345 static membership, KIP-814, KIP-800
//! reasons, KIP-429 cooperative rebalancing, the leader's work).

mod membership_harness;

use std::time::Duration;

use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::wire::{Assignment, Subscription};
use kgroup::{Broker, Event, GroupState, Timer};
use membership_harness::*;

#[test]
fn a_follower_joins_syncs_and_heartbeats_on_the_coordinator_connection() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.subscribe(&["t"]);
    assert_eq!(h.group.state(), GroupState::FindingCoordinator);
    h.find_coordinator();
    let j = h.join_as_follower("m1", 1);
    assert!(matches!(j.broker, Broker::Node(ref n) if n.node_id == COORD && n.port == 9092));
    assert_eq!(j.version, 9);
    assert_eq!(j.join().rebalance_timeout_ms, 60_000);
    assert_eq!(j.join().session_timeout_ms, 10_000);
    assert_eq!(j.join().protocol_type.as_str(), "consumer");
    assert_eq!(
        j.join().reason.as_ref().map(|r| r.as_str()),
        Some("initial join")
    );
    assert_eq!(h.group.state(), GroupState::AwaitingSync);
    let s = h.sync_with(&[("t", 0), ("t", 1)]);
    assert_eq!(s.sync().generation_id, 1);
    assert_eq!(s.sync().member_id.as_str(), "m1");
    assert!(
        s.sync().assignments.is_empty(),
        "a follower sends no assignments"
    );
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::Joined { member_id, generation: 1, leader: false, .. } if member_id == "m1")));
    assert_eq!(
        assigned(&ev),
        vec![(1, tps(&[("t", 0), ("t", 1)]), tps(&[("t", 0), ("t", 1)]))]
    );
    assert_eq!(h.group.state(), GroupState::Stable);
    // Heartbeat after heartbeat.interval.ms.
    assert_eq!(
        h.group.poll_timeout_reason().map(|(_, t)| t),
        Some(Timer::Heartbeat)
    );
    let hb = h.next_heartbeat();
    assert_eq!(hb.heartbeat().generation_id, 1);
    assert_eq!(hb.heartbeat().member_id.as_str(), "m1");
    assert_eq!(hb.connection, s.connection, "same coordinator connection");
    h.respond(&hb, HeartbeatResponse::default());
    let hb2 = h.next_heartbeat();
    h.respond(&hb2, HeartbeatResponse::default());
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn member_id_required_rejoins_at_once_with_the_given_id() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "");
    h.respond(
        &j,
        JoinGroupResponse::default()
            .with_error_code(79)
            .with_member_id(StrBytes::from_static_str("m-given")),
    );
    // No backoff: the second JoinGroup goes out at the same instant.
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.join().member_id.as_str(), "m-given");
    assert_eq!(
        j2.join().reason.as_ref().map(|r| r.as_str()),
        Some("member id required")
    );
}

#[test]
fn no_heartbeat_while_join_group_is_in_flight_and_its_timeout_is_rebalance_plus_5s() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(27)); // REBALANCE_IN_PROGRESS
    let j = h.expect(ApiKey::JoinGroup);
    let sent_at = h.now;
    // The JoinGroup is parked: nothing else goes out, for 65 s.
    h.advance(Duration::from_secs(64));
    h.expect_nothing();
    assert_eq!(
        h.group
            .poll_timeout_reason()
            .map(|(at, t)| (at - sent_at, t)),
        Some((Duration::from_secs(65), Timer::CoordinatorRequest))
    );
    h.respond(&j, join_response(2, "first", "x", "m1"));
    h.expect(ApiKey::SyncGroup);
}

#[test]
fn eager_revokes_everything_before_rejoining_and_keeps_the_previous_assignment_for_sticky_data() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(27));
    let ev = h.take_events();
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0), ("t", 1)])]);
    assert!(
        h.group.owned().is_empty(),
        "owned is empty after an eager revoke"
    );
    let j = h.expect(ApiKey::JoinGroup);
    let sub = j.subscription();
    assert!(
        sub.owned_partitions.is_empty(),
        "eager rejoin claims nothing"
    );
    assert_eq!(sub.generation_id, 1);
    assert_eq!(j.join().member_id.as_str(), "m1");
}

#[test]
fn static_member_sends_its_instance_id_and_does_not_leave_on_close() {
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .instance_id("pod-1")
            .build()
            .unwrap(),
    );
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.join().group_instance_id.as_ref().map(|s| s.as_str()),
        Some("pod-1")
    );
    h.respond(&j, join_response(3, "first", "other", "m-static"));
    let s = h.expect(ApiKey::SyncGroup);
    assert_eq!(
        s.sync().group_instance_id.as_ref().map(|s| s.as_str()),
        Some("pod-1")
    );
    h.respond(
        &s,
        SyncGroupResponse::default()
            .with_assignment(Assignment::new(tps(&[("t", 0)])).encode(3).unwrap()),
    );
    let hb = h.next_heartbeat();
    assert_eq!(
        hb.heartbeat()
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str()),
        Some("pod-1")
    );
    h.respond(&hb, HeartbeatResponse::default());
    h.take_events();
    h.group.close(h.now);
    h.expect_nothing();
    let ev = h.take_events();
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0)])]);
    assert!(matches!(ev.last(), Some(Event::Left)));
    assert_eq!(h.group.state(), GroupState::Left);
}

#[test]
fn static_member_leaves_when_asked_with_its_instance_id() {
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .instance_id("pod-1")
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.group.leave(h.now, "scaling down");
    let l = h.expect(ApiKey::LeaveGroup);
    let m = &l.leave().members[0];
    assert_eq!(m.member_id.as_str(), "m1");
    assert_eq!(
        m.group_instance_id.as_ref().map(|s| s.as_str()),
        Some("pod-1")
    );
    assert_eq!(m.reason.as_ref().map(|s| s.as_str()), Some("scaling down"));
}

#[test]
fn dynamic_member_leaves_with_a_reason_on_close_and_is_left_after_the_response() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    h.group.close(h.now);
    let l = h.expect(ApiKey::LeaveGroup);
    assert_eq!(l.version, 5);
    assert_eq!(l.leave().members[0].member_id.as_str(), "m1");
    assert_eq!(
        l.leave().members[0].reason.as_ref().map(|s| s.as_str()),
        Some("the consumer is being closed")
    );
    assert_eq!(h.group.state(), GroupState::Leaving);
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0)])]);
    h.respond(&l, LeaveGroupResponse::default());
    assert!(matches!(h.take_events().last(), Some(Event::Left)));
    assert_eq!(h.group.state(), GroupState::Left);
    assert_eq!(h.group.poll_timeout(), None, "nothing left to wake up for");
}

#[test]
fn leave_group_v0_carries_the_member_id_alone() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.cap_version(ApiKey::LeaveGroup, 2);
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.group.close(h.now);
    let l = h.expect(ApiKey::LeaveGroup);
    assert_eq!(l.version, 2);
    assert_eq!(l.leave().member_id.as_str(), "m1");
    assert!(l.leave().members.is_empty());
}

fn coop_leader_join(
    h: &mut Harness,
    generation: i32,
    members: Vec<join_group_response::JoinGroupResponseMember>,
) -> Sent {
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(
        &j,
        join_response(generation, "coop-first", "a", "a").with_members(members),
    );
    j
}

#[test]
fn cooperative_revokes_only_what_moves_then_rejoins_at_once() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(27));
    let ev = h.take_events();
    assert!(
        revoked(&ev).is_empty(),
        "cooperative keeps its partitions on rejoin"
    );
    let j = h.expect(ApiKey::JoinGroup);
    let sub = j.subscription();
    assert_eq!(sub.owned_partitions, tps(&[("t", 0), ("t", 1)]));
    assert_eq!(sub.generation_id, 1);
    h.respond(&j, join_response(2, "coop-first", "x", "m1"));
    h.sync_with(&[("t", 1), ("t", 2)]);
    let ev = h.take_events();
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0)])]);
    assert_eq!(
        assigned(&ev),
        vec![(2, tps(&[("t", 1), ("t", 2)]), tps(&[("t", 2)]))]
    );
    // Revoked comes before Assigned.
    let ri = ev
        .iter()
        .position(|e| matches!(e, Event::Revoked { .. }))
        .unwrap();
    let ai = ev
        .iter()
        .position(|e| matches!(e, Event::Assigned { .. }))
        .unwrap();
    assert!(ri < ai);
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.subscription().owned_partitions,
        tps(&[("t", 1), ("t", 2)])
    );
    assert_eq!(j.subscription().generation_id, 2);
}

#[test]
fn protocol_is_cooperative_only_if_every_assignor_supports_it() {
    let c = Harness::config(&[coop_first(), eager_first()])
        .build()
        .unwrap();
    assert_eq!(c.protocol(), kgroup::assignor::RebalanceProtocol::Eager);
    let c = Harness::config(&[coop_first()]).build().unwrap();
    assert_eq!(
        c.protocol(),
        kgroup::assignor::RebalanceProtocol::Cooperative
    );
    // A mixed member running eager revokes everything even when the group
    // selected the cooperative-capable assignor.
    let mut h = Harness::new(
        Harness::config(&[coop_first(), eager_first()])
            .build()
            .unwrap(),
    );
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.join()
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["coop-first", "first"]
    );
    h.respond(&j, join_response(1, "coop-first", "x", "m1"));
    h.sync_with(&[("t", 0)]);
    h.take_events();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(27));
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0)])]);
}

#[test]
fn leader_fetches_metadata_assigns_and_withholds_a_partition_another_member_still_owns() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    // b owns t-0 at generation 4; our assignor gives everything to "a" (us).
    let mut sb = Subscription::new(["t"]);
    sb.owned_partitions = tps(&[("t", 0)]);
    sb.generation_id = 4;
    let sa = Subscription::new(["t"]);
    coop_leader_join(&mut h, 5, vec![member("a", &sa), member("b", &sb)]);
    let ev = h.take_events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Joined { leader: true, .. }))
    );
    let m = h.expect(ApiKey::Metadata);
    assert_eq!(m.broker, Broker::Any);
    let names: Vec<_> = m
        .metadata()
        .topics
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str().to_owned())
        .collect();
    assert_eq!(names, vec!["t"]);
    h.respond(&m, metadata(&[("t", 3)]));
    let s = h.expect(ApiKey::SyncGroup);
    let mut got = std::collections::BTreeMap::new();
    for a in &s.sync().assignments {
        got.insert(
            a.member_id.as_str().to_owned(),
            Assignment::decode(&a.assignment).unwrap().1.partitions,
        );
    }
    assert_eq!(
        got["a"],
        tps(&[("t", 1), ("t", 2)]),
        "t-0 is withheld: b still owns it"
    );
    assert_eq!(got["b"], vec![], "every member gets an entry");
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::Warning(kgroup::GroupError::InvalidLeaderAssignment { to, owner, .. }) if to == "a" && owner == "b")));
}

#[test]
fn leader_reports_a_corrupt_subscription_and_gives_that_member_nothing() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    let sa = Subscription::new(["t"]);
    let bad = join_group_response::JoinGroupResponseMember::default()
        .with_member_id(StrBytes::from_static_str("0-bad"))
        .with_metadata(bytes::Bytes::from_static(&[0, 1, 0xff, 0xff, 0xff, 0x7f]));
    coop_leader_join(&mut h, 1, vec![member("a", &sa), bad]);
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::Warning(kgroup::GroupError::CorruptSubscription { subject, .. }) if subject == "0-bad")));
    let m = h.expect(ApiKey::Metadata);
    h.respond(&m, metadata(&[("t", 2)]));
    let s = h.expect(ApiKey::SyncGroup);
    let mut got = std::collections::BTreeMap::new();
    for a in &s.sync().assignments {
        got.insert(
            a.member_id.as_str().to_owned(),
            Assignment::decode(&a.assignment).unwrap().1.partitions,
        );
    }
    // "0-bad" sorts first, but it subscribes to nothing readable.
    assert_eq!(got["0-bad"], vec![]);
    assert_eq!(got.len(), 2);
}

#[test]
fn leader_rejoins_when_a_partition_count_changes() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .metadata_max_age(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    h.subscribe(&["t"]);
    h.find_coordinator();
    coop_leader_join(&mut h, 1, vec![member("a", &Subscription::new(["t"]))]);
    let m = h.expect(ApiKey::Metadata);
    h.respond(&m, metadata(&[("t", 2)]));
    let s = h.expect(ApiKey::SyncGroup);
    let a = s.sync().assignments[0].assignment.clone();
    h.respond(&s, SyncGroupResponse::default().with_assignment(a));
    h.take_events();
    // Heartbeats and metadata refreshes go on; same counts: no rejoin.
    let mut refreshed = 0;
    while refreshed < 2 {
        let t = h.fire_next_timer();
        for s in h.poll_all() {
            match s.api {
                ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                ApiKey::Metadata => {
                    refreshed += 1;
                    let n = if refreshed == 1 { 2 } else { 3 };
                    h.respond(&s, metadata(&[("t", n)]));
                }
                other => panic!("unexpected {other:?} after {t}"),
            }
        }
    }
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Rejoining {
            reason: kgroup::RejoinReason::MetadataChanged
        }
    )));
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.join().reason.as_ref().unwrap().as_str(),
        "partition count changed"
    );
}

#[test]
fn skip_assignment_leader_sends_no_assignments_but_keeps_watching_metadata() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .instance_id("i1")
            .build()
            .unwrap(),
    );
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(
        &j,
        join_response(4, "coop-first", "a", "a")
            .with_skip_assignment(true)
            .with_members(vec![member("a", &Subscription::new(["t"]))]),
    );
    let mut saw_sync = false;
    let mut saw_metadata = false;
    for s in h.poll_all() {
        match s.api {
            ApiKey::SyncGroup => {
                assert!(s.sync().assignments.is_empty());
                saw_sync = true;
                h.respond(
                    &s,
                    SyncGroupResponse::default()
                        .with_assignment(Assignment::new(tps(&[("t", 0)])).encode(3).unwrap()),
                );
            }
            ApiKey::Metadata => {
                saw_metadata = true;
                h.respond(&s, metadata(&[("t", 1)]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_sync && saw_metadata);
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn subscription_change_triggers_a_rejoin_with_the_new_topics() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.join_stable(&["a", "b"], "m1", 1, &[("a", 0), ("b", 0)]);
    h.take_events();
    h.subscribe(&["a"]);
    let ev = h.take_events();
    assert_eq!(
        revoked(&ev),
        vec![tps(&[("b", 0)])],
        "cooperative revokes only unsubscribed topics"
    );
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.subscription().topics, vec!["a".to_owned()]);
    assert_eq!(j.subscription().owned_partitions, tps(&[("a", 0)]));
}

#[test]
fn an_assignment_outside_the_subscription_is_not_taken_and_the_member_rejoins() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    h.join_as_follower("m1", 1);
    h.sync_with(&[("other", 0)]);
    let ev = h.take_events();
    assert!(assigned(&ev).is_empty());
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Warning(kgroup::GroupError::InvalidAssignment { .. })
    )));
    h.expect(ApiKey::JoinGroup);
}

#[test]
fn an_empty_assignment_is_taken_as_empty_and_reported() {
    let mut h = Harness::new(Harness::config(&[eager_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    h.join_as_follower("m1", 1);
    let s = h.expect(ApiKey::SyncGroup);
    h.respond(&s, SyncGroupResponse::default());
    let ev = h.take_events();
    assert_eq!(assigned(&ev), vec![(1, vec![], vec![])]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Warning(kgroup::GroupError::InvalidAssignment { .. })
    )));
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn with_fetch_on_assign_assigned_follows_the_committed_offsets() {
    use kgroup::event::Committed;
    use kgroup::kafka_protocol::messages::offset_fetch_response::*;
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .fetch_committed_on_assign(true)
            .build()
            .unwrap(),
    );
    h.subscribe(&["t"]);
    h.find_coordinator();
    h.join_as_follower("m1", 1);
    h.sync_with(&[("t", 0)]);
    let ev = h.take_events();
    assert!(
        assigned(&ev).is_empty(),
        "Assigned waits for the committed offsets"
    );
    let f = h.expect(ApiKey::OffsetFetch);
    assert_eq!(f.version, 9);
    let response = OffsetFetchResponse::default().with_groups(vec![
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![
                OffsetFetchResponseTopics::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(0)
                            .with_committed_offset(41),
                    ]),
            ]),
    ]);
    h.respond(&f, response);
    let ev = h.take_events();
    let committed = ev
        .iter()
        .find_map(|e| match e {
            Event::Assigned {
                generation: 1,
                committed,
                ..
            } => Some(committed.clone()),
            _ => None,
        })
        .expect("Assigned once the fetch answered");
    let t0 = kgroup::TopicPartition::new("t", 0);
    assert_eq!(committed.get(&t0).and_then(Committed::offset), Some(41));
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Offsets(_))),
        "the engine's own fetch is not reported as FetchDone: {ev:?}"
    );
}
