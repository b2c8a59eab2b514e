//! The application's part in a rebalance (seed 001, "long batch vs
//! rebalance"), in virtual time: `hold_rebalance` / `allow_rebalance`, gated
//! revocation with `ack_revoked`, and commit-on-revoke before the rejoin.

mod membership_harness;

use std::time::Duration;

use kgroup::kafka_protocol::messages::*;
use kgroup::offsets::{CommittedOffset, OffsetEvent, OffsetsConfig};
use kgroup::{Event, GroupState, LostReason, RejoinReason, RevokeMode, TopicPartition};
use membership_harness::*;

const REBALANCE_IN_PROGRESS: i16 = 27;

fn stable(mode: RevokeMode, assignor: std::sync::Arc<dyn kgroup::assignor::Assignor>) -> Harness {
    let mut h = Harness::new(
        Harness::config(&[assignor])
            .revoke_mode(mode)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    h
}

/// Answer heartbeats with `code` until `until`; fail on any other request.
fn heartbeat_until(h: &mut Harness, until: std::time::Instant, code: i16) -> usize {
    let mut n = 0;
    while h.group.poll_timeout().is_some_and(|at| at <= until) {
        h.fire_next_timer();
        for s in h.poll_all() {
            assert_eq!(
                s.api,
                ApiKey::Heartbeat,
                "only heartbeats while held: {:?}",
                s.body
            );
            assert_eq!(s.heartbeat().generation_id, 1);
            n += 1;
            h.respond(&s, heartbeat_error(code));
        }
    }
    n
}

#[test]
fn a_held_rebalance_keeps_heartbeating_and_rejoins_when_allowed() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    h.group.hold_rebalance();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let ev = h.take_events();
    assert!(revoked(&ev).is_empty(), "nothing revoked while held");
    h.expect_nothing();
    // Ten seconds of batch processing: heartbeats go on, no session loss.
    let until = h.now + Duration::from_secs(10);
    let beats = heartbeat_until(&mut h, until, REBALANCE_IN_PROGRESS);
    assert!(beats >= 9, "{beats} heartbeats");
    assert_eq!(h.group.state(), GroupState::Stable);
    assert!(lost(&h.take_events()).is_empty());
    h.group.allow_rebalance(h.now);
    let ev = h.take_events();
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0), ("t", 1)])]);
    h.expect(ApiKey::JoinGroup);
}

#[test]
fn a_hold_is_overridden_near_the_rebalance_timeout_and_says_why() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    h.group.hold_rebalance();
    let hb = h.next_heartbeat();
    let noticed = h.now;
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    // Rebalance timeout 60 s, heartbeat 1 s: the engine rejoins at 53 s (a
    // heartbeat interval and a tenth as margin).
    let until = noticed + Duration::from_secs(53) - Duration::from_millis(1);
    heartbeat_until(&mut h, until, REBALANCE_IN_PROGRESS);
    h.take_events();
    let j = h.heartbeat_until_join(REBALANCE_IN_PROGRESS);
    assert_eq!(h.now - noticed, Duration::from_secs(53));
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::HoldExpired {
            reason: RejoinReason::RebalanceInProgress(_)
        }
    )));
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0), ("t", 1)])]);
    assert_eq!(j.join().member_id.as_str(), "m1");
}

#[test]
fn gated_revoke_waits_for_the_ack_and_heartbeats_meanwhile() {
    let mut h = stable(RevokeMode::Gated, eager_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0), ("t", 1)])]);
    assert_eq!(h.group.state(), GroupState::Revoking);
    assert_eq!(h.group.owned().len(), 2, "still owned until acknowledged");
    let until = h.now + Duration::from_secs(5);
    heartbeat_until(&mut h, until, REBALANCE_IN_PROGRESS);
    h.group.ack_revoked(h.now);
    assert!(h.group.owned().is_empty());
    let j = h.expect(ApiKey::JoinGroup);
    assert!(j.subscription().owned_partitions.is_empty());
    assert!(lost(&h.take_events()).is_empty());
}

#[test]
fn an_ack_after_the_rebalance_timeout_turns_the_partitions_into_lost() {
    let mut h = stable(RevokeMode::Gated, eager_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let start = h.now;
    h.take_events();
    let j = h.heartbeat_until_join(REBALANCE_IN_PROGRESS);
    assert_eq!(h.now - start, Duration::from_secs(53));
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::RevokeTimeout)]
    );
    assert!(j.subscription().owned_partitions.is_empty());
    // The late ack changes nothing.
    h.group.ack_revoked(h.now);
    assert!(h.take_events().is_empty());
}

#[test]
fn cooperative_gated_revoke_holds_the_new_assignment_until_the_ack() {
    let mut h = stable(RevokeMode::Gated, coop_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(&j, join_response(2, "coop-first", "x", "m1"));
    h.sync_with(&[("t", 1)]);
    let ev = h.take_events();
    assert_eq!(revoked(&ev), vec![tps(&[("t", 0)])]);
    assert!(assigned(&ev).is_empty(), "assignment waits for the ack");
    // Heartbeats go on in the new generation.
    let hb = h.next_heartbeat();
    assert_eq!(hb.heartbeat().generation_id, 2);
    h.respond(&hb, HeartbeatResponse::default());
    h.group.ack_revoked(h.now);
    let ev = h.take_events();
    assert_eq!(assigned(&ev), vec![(2, tps(&[("t", 1)]), vec![])]);
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.subscription().owned_partitions, tps(&[("t", 1)]));
}

#[test]
fn commit_on_revoke_goes_out_with_the_owning_generation_before_the_rejoin() {
    let mut h = stable(RevokeMode::Gated, eager_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    h.take_events();
    // The application commits what it processed, then acknowledges.
    let id = h
        .group
        .commit(
            h.now,
            vec![(TopicPartition::new("t", 0), CommittedOffset::new(42))],
        )
        .expect("owned partitions can be committed while revoking");
    h.group.ack_revoked(h.now);
    let c = h.expect(ApiKey::OffsetCommit);
    assert_eq!(c.commit().generation_id_or_member_epoch, 1);
    assert_eq!(c.commit().member_id.as_str(), "m1");
    // No JoinGroup until the commit is answered.
    h.expect_nothing();
    let resp = commit_response(c.commit(), 0);
    h.respond(&c, resp);
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::Offsets(OffsetEvent::CommitDone { id: got, result: Ok(()), .. }) if *got == id)));
    h.expect(ApiKey::JoinGroup);
}

#[test]
fn auto_commit_flushes_marks_before_an_immediate_revoke_completes() {
    let offsets = OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(3600)));
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .offsets(offsets)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.group
        .mark_processed(h.now, TopicPartition::new("t", 0), 7)
        .unwrap();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let c = h.expect(ApiKey::OffsetCommit);
    assert_eq!(c.commit().generation_id_or_member_epoch, 1);
    assert_eq!(c.commit().topics[0].partitions[0].committed_offset, 7);
    h.expect_nothing();
    let resp = commit_response(c.commit(), 0);
    h.respond(&c, resp);
    h.expect(ApiKey::JoinGroup);
}

#[test]
fn a_commit_for_a_partition_not_owned_is_refused_locally() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let r = h.group.commit(
        h.now,
        vec![(TopicPartition::new("t", 9), CommittedOffset::new(1))],
    );
    assert!(r.is_err());
    let hb = h.next_heartbeat();
    assert_eq!(
        hb.api,
        ApiKey::Heartbeat,
        "nothing but the heartbeat was sent"
    );
}

#[test]
fn close_commits_the_marks_before_leave_group() {
    let offsets = OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(3600)));
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .offsets(offsets)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.group
        .mark_processed(h.now, TopicPartition::new("t", 0), 11)
        .unwrap();
    h.group.close(h.now);
    let c = h.expect(ApiKey::OffsetCommit);
    assert_eq!(c.commit().generation_id_or_member_epoch, 1);
    h.expect_nothing();
    let resp = commit_response(c.commit(), 0);
    h.respond(&c, resp);
    let l = h.expect(ApiKey::LeaveGroup);
    h.respond(&l, LeaveGroupResponse::default());
    assert_eq!(h.group.state(), GroupState::Left);
}

/// Closing while a gated revocation waits for its commit: the commit in
/// flight is waited for on its own connection (never sent a second time: a
/// second copy let the first land later and move the committed offset back,
/// sim seed 200134), and the application, told `Revoked` once, is not told
/// again.
#[test]
fn close_during_a_revocation_waits_for_its_commit_and_revokes_once() {
    let mut h = stable(RevokeMode::Gated, eager_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0), ("t", 1)])]);
    h.group
        .commit(
            h.now,
            vec![(TopicPartition::new("t", 0), CommittedOffset::new(30))],
        )
        .unwrap();
    let c = h.expect(ApiKey::OffsetCommit);
    h.group.ack_revoked(h.now);
    h.group.close(h.now);
    assert!(
        revoked(&h.take_events()).is_empty(),
        "the partitions were revoked already"
    );
    h.expect_nothing();
    let resp = commit_response(c.commit(), 0);
    h.respond(&c, resp);
    let l = h.expect(ApiKey::LeaveGroup);
    assert_eq!(l.connection, c.connection, "same connection as the commit");
    h.respond(&l, LeaveGroupResponse::default());
    assert_eq!(h.group.state(), GroupState::Left);
}

/// A hold and the revocation after it share one rebalance deadline (53 s of
/// 60 s with a 1 s heartbeat, from the notice): the coordinator's timeout does
/// not restart when the hold ends (sim seed 1050242).
#[test]
fn a_revocation_after_a_hold_is_due_by_the_deadline_of_the_notice() {
    let mut h = stable(RevokeMode::Gated, eager_first());
    h.group.hold_rebalance();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let notice = h.now;
    let until = notice + Duration::from_secs(40);
    heartbeat_until(&mut h, until, REBALANCE_IN_PROGRESS);
    h.group.allow_rebalance(h.now);
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0), ("t", 1)])]);
    let j = h.heartbeat_until_join(REBALANCE_IN_PROGRESS);
    assert_eq!(h.now - notice, Duration::from_secs(53));
    assert_eq!(
        lost(&h.take_events()),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::RevokeTimeout)]
    );
    assert!(j.subscription().owned_partitions.is_empty());
}

/// A rebalance noticed while a cooperative revocation waits for its ack
/// counts from the notice: the hold that delays the follow-up rejoin ends by
/// the notice's deadline, not a full rebalance timeout after the revocation
/// gave up (sim seed 2001644: the member was removed, again and again).
#[test]
fn a_rebalance_noticed_during_a_cooperative_revocation_counts_from_the_notice() {
    let mut h = stable(RevokeMode::Gated, coop_first());
    h.group.hold_rebalance();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    h.group.allow_rebalance(h.now);
    h.group.hold_rebalance();
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(&j, join_response(2, "coop-first", "x", "m1"));
    h.sync_with(&[("t", 1)]);
    assert_eq!(revoked(&h.take_events()), vec![tps(&[("t", 0)])]);
    // The next rebalance begins at once; the application never acknowledges.
    let hb = h.next_heartbeat();
    assert_eq!(hb.heartbeat().generation_id, 2);
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let notice = h.now;
    let j = h.heartbeat_until_join(REBALANCE_IN_PROGRESS);
    assert!(
        h.now - notice <= Duration::from_secs(53),
        "rejoined {:?} after the notice",
        h.now - notice
    );
    assert_eq!(j.subscription().owned_partitions, tps(&[("t", 1)]));
}
