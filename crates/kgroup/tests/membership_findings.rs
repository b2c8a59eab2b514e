//! Regressions for the engine bugs `kgroup sim --faults heavy` found (see
//! docs/simulation.md, "Fixed findings"), each scripted against the engine
//! alone: the leader's follow-up rebalance for withheld partitions (seed
//! 777), a loss dropping an `Assigned` still waiting for its OffsetFetch
//! (seed 4 with a leader follow-up), and a static member fenced after a
//! coordinator failover on SyncGroup or Heartbeat (seed 537).

mod membership_harness;

use std::time::Duration;

use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::wire::{Assignment, Subscription};
use kgroup::{Event, GroupState, LostReason, RejoinReason};
use membership_harness::*;

const NOT_COORDINATOR: i16 = 16;
const REBALANCE_IN_PROGRESS: i16 = 27;
const FENCED_INSTANCE_ID: i16 = 82;

/// JoinGroup answered with us ("a") as the cooperative leader of `members`.
fn coop_leader_join(
    h: &mut Harness,
    generation: i32,
    members: Vec<join_group_response::JoinGroupResponseMember>,
) {
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(
        &j,
        join_response(generation, "coop-first", "a", "a").with_members(members),
    );
}

/// Leader "a" of generation 5 whose assignment withholds t-0 from itself:
/// "b" still claims it (owned at generation 4). Stable afterwards.
fn leader_that_withheld_t0(h: &mut Harness) {
    h.subscribe(&["t"]);
    h.find_coordinator();
    let mut sb = Subscription::new(["t"]);
    sb.owned_partitions = tps(&[("t", 0)]);
    sb.generation_id = 4;
    coop_leader_join(
        h,
        5,
        vec![member("a", &Subscription::new(["t"])), member("b", &sb)],
    );
    let m = h.expect(ApiKey::Metadata);
    h.respond(&m, metadata(&[("t", 3)]));
    let s = h.expect(ApiKey::SyncGroup);
    let ours = s
        .sync()
        .assignments
        .iter()
        .find(|a| a.member_id.as_str() == "a")
        .map(|a| a.assignment.clone())
        .unwrap();
    assert_eq!(
        Assignment::decode(&ours).unwrap().1.partitions,
        tps(&[("t", 1), ("t", 2)]),
        "t-0 withheld"
    );
    h.respond(&s, SyncGroupResponse::default().with_assignment(ours));
    assert_eq!(h.group.state(), GroupState::Stable);
    h.take_events();
}

/// Answer every heartbeat until `d` has passed; returns the JoinGroup if the
/// engine sent one meanwhile.
fn heartbeat_for(h: &mut Harness, d: Duration) -> Option<Sent> {
    let end = h.now + d;
    while h.now < end {
        for s in h.poll_all() {
            match s.api {
                ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                ApiKey::JoinGroup => return Some(s),
                other => panic!("unexpected {other:?}"),
            }
        }
        let at = h.group.poll_timeout().expect("a timer is armed");
        if at > end {
            h.advance(end - h.now);
        } else {
            h.fire_next_timer();
        }
    }
    None
}

fn rejoin_reason(events: &[Event]) -> Option<RejoinReason> {
    events.iter().find_map(|e| match e {
        Event::Rejoining { reason } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn leader_that_withheld_partitions_rejoins_after_the_rebalance_timeout_when_no_rebalance_came() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    leader_that_withheld_t0(&mut h);
    // The claimant "b" never revokes (a static member replaced without a
    // rebalance, seed 777): no rebalance reaches the leader. Before the
    // rebalance timeout (60 s) it waits; a claimant still revoking may hold
    // t-0 until its own deadline.
    assert!(
        heartbeat_for(&mut h, Duration::from_secs(59)).is_none(),
        "no follow-up before the rebalance timeout"
    );
    let j = heartbeat_for(&mut h, Duration::from_secs(3)).expect("the follow-up JoinGroup");
    assert_eq!(
        rejoin_reason(&h.take_events()),
        Some(RejoinReason::CooperativeRevoke)
    );
    // Same member, same claims: t-1 and t-2, owned in generation 5.
    assert_eq!(j.join().member_id.as_str(), "a");
    let sub = j.subscription();
    assert_eq!(sub.owned_partitions, tps(&[("t", 1), ("t", 2)]));
    assert_eq!(sub.generation_id, 5);
}

#[test]
fn leader_follow_up_is_dropped_when_a_rebalance_comes_first() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    leader_that_withheld_t0(&mut h);
    // The claimant revoked and rejoined: the coordinator says so.
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(&j, join_response(6, "coop-first", "b", "a"));
    h.sync_with(&[("t", 1), ("t", 2)]);
    assert_eq!(h.group.state(), GroupState::Stable);
    // Generation 6 withheld nothing: no follow-up, ever.
    assert!(heartbeat_for(&mut h, Duration::from_secs(180)).is_none());
}

#[test]
fn a_loss_while_assigned_waits_for_its_fetch_drops_it_instead_of_emitting_it() {
    // OffsetFetch before `Assigned` on (the default).
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .fetch_committed_on_assign(true)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    let _fetch = h.expect(ApiKey::OffsetFetch);
    let ev = h.take_events();
    assert!(assigned(&ev).is_empty(), "held for the fetch: {ev:?}");
    // The fetch never answers and blocks the coordinator connection: the
    // local session expires. Generation 1's assignment is over; t-0 may be
    // someone else's already. The application never had it.
    h.advance(Duration::from_secs(11));
    let ev = h.take_events();
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Rejoining {
                reason: RejoinReason::Reset(LostReason::SessionExpired)
            }
        )),
        "{ev:?}"
    );
    assert!(
        assigned(&ev).is_empty(),
        "a stale Assigned is never emitted: {ev:?}"
    );
    assert!(
        lost(&ev).is_empty(),
        "nothing the application was handed is lost: {ev:?}"
    );
    assert!(h.group.owned().is_empty());
}

#[test]
fn a_loss_still_reports_the_partitions_the_application_had() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .fetch_committed_on_assign(true)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    let f = h.expect(ApiKey::OffsetFetch);
    h.respond(
        &f,
        OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                .with_topics(vec![
                    offset_fetch_response::OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partitions(vec![
                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                .with_partition_index(0)
                                .with_committed_offset(-1),
                        ]),
                ]),
        ]),
    );
    assert_eq!(assigned(&h.take_events()).len(), 1);
    // Generation 2 adds t-1; its fetch is left unanswered when the member
    // is reset: t-0 (handed over) is lost, t-1 (never handed) is not.
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    h.join_as_follower("m1", 2);
    h.sync_with(&[("t", 0), ("t", 1)]);
    let _f2 = h.expect(ApiKey::OffsetFetch);
    h.advance(Duration::from_secs(11));
    let ev = h.take_events();
    assert!(assigned(&ev).is_empty(), "{ev:?}");
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0)]), LostReason::SessionExpired)]
    );
}

fn static_config() -> kgroup::Config {
    Harness::config(&[coop_first()])
        .instance_id("pod-1")
        .build()
        .unwrap()
}

fn sync_error(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

#[test]
fn sync_fenced_after_a_coordinator_failover_rejoins_once_as_a_new_incarnation() {
    let mut h = Harness::new(static_config());
    h.subscribe(&["t"]);
    h.find_coordinator();
    // Leader of generation 4 under the first coordinator, fetching metadata.
    coop_leader_join(&mut h, 4, vec![member("a", &Subscription::new(["t"]))]);
    let m = h.expect(ApiKey::Metadata);
    // The coordinator moves before SyncGroup goes out.
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(NOT_COORDINATOR));
    h.respond(&m, metadata(&[("t", 1)]));
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(2));
    h.answer_api_versions();
    // The successor loaded an older record: pod-1 maps to an earlier id.
    let s = h.expect(ApiKey::SyncGroup);
    assert_eq!(s.sync().member_id.as_str(), "a");
    h.respond(&s, sync_error(FENCED_INSTANCE_ID));
    let ev = h.take_events();
    assert!(fatal(&ev).is_none(), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, Event::Warning(_))), "{ev:?}");
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "", "a new incarnation");
    assert_eq!(
        j.join().group_instance_id.as_ref().map(|s| s.as_str()),
        Some("pod-1")
    );
    // A second fencing in this coordinator epoch: a real duplicate.
    h.respond(
        &j,
        JoinGroupResponse::default().with_error_code(FENCED_INSTANCE_ID),
    );
    assert!(fatal(&h.take_events()).is_some());
    assert_eq!(h.group.state(), GroupState::Failed);
}

#[test]
fn sync_fenced_under_the_coordinator_that_issued_the_member_id_is_fatal() {
    let mut h = Harness::new(static_config());
    h.subscribe(&["t"]);
    h.find_coordinator();
    h.join_as_follower("m1", 1);
    let s = h.expect(ApiKey::SyncGroup);
    h.respond(&s, sync_error(FENCED_INSTANCE_ID));
    assert!(fatal(&h.take_events()).is_some());
    assert_eq!(h.group.state(), GroupState::Failed);
}

#[test]
fn heartbeat_fenced_after_a_coordinator_failover_rejoins_once_as_a_new_incarnation() {
    let mut h = Harness::new(static_config());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(NOT_COORDINATOR));
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(2));
    h.answer_api_versions();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(FENCED_INSTANCE_ID));
    let ev = h.take_events();
    assert!(fatal(&ev).is_none(), "{ev:?}");
    assert_eq!(lost(&ev), vec![(tps(&[("t", 0)]), LostReason::Fenced)]);
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "");
    // Under the coordinator that issued it, a heartbeat fencing is fatal.
    h.respond(&j, join_response(2, "coop-first", "x", "m2"));
    h.sync_with(&[("t", 0)]);
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(FENCED_INSTANCE_ID));
    assert!(fatal(&h.take_events()).is_some());
}

#[test]
fn a_restarted_static_leader_that_skipped_the_assignment_follows_up_once() {
    // KIP-814: the coordinator skips the assignment of a static leader
    // rejoining a Stable group. What the stored assignment withheld is
    // unknown to it (seeds 631, 746: the claimants restarted too), so it
    // rejoins once after the rebalance timeout, in a cooperative generation.
    let mut h = Harness::new(static_config());
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(
        &j,
        join_response(4, "coop-first", "a", "a")
            .with_skip_assignment(true)
            .with_members(vec![member("a", &Subscription::new(["t"]))]),
    );
    for s in h.poll_all() {
        match s.api {
            ApiKey::SyncGroup => h.respond(
                &s,
                SyncGroupResponse::default()
                    .with_assignment(Assignment::new(tps(&[("t", 0)])).encode(3).unwrap()),
            ),
            ApiKey::Metadata => h.respond(&s, metadata(&[("t", 2)])),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(h.group.state(), GroupState::Stable);
    h.take_events();
    assert!(heartbeat_for(&mut h, Duration::from_secs(59)).is_none());
    let j = heartbeat_for(&mut h, Duration::from_secs(3)).expect("one follow-up");
    assert_eq!(j.join().member_id.as_str(), "a");
    // Generation 5 is an ordinary one that withholds nothing: no second.
    h.respond(&j, join_response(5, "coop-first", "x", "a"));
    h.sync_with(&[("t", 0)]);
    assert!(heartbeat_for(&mut h, Duration::from_secs(180)).is_none());
}
