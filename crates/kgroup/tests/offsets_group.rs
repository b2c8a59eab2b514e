//! The offsets component inside the real [`kgroup::Group`], through the
//! scripted broker of the membership tests: each OffsetCommit error of
//! PROTOCOL.md §2.7 gives its documented commit result *and* the membership
//! reaction (reset, rejoin, rediscovery, fenced), and commit-on-revoke does
//! not stall a cooperative rebalance while the application keeps
//! committing the partitions it retains.

mod membership_harness;

use std::time::Duration;

use kgroup::kafka_protocol::messages::*;
use kgroup::offsets::{CommitError, CommittedOffset, OffsetEvent, StaleCause};
use kgroup::{Event, LostReason, RevokeMode, TopicPartition};
use membership_harness::*;

const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;

fn t(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

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

fn commit_results(events: &[Event]) -> Vec<Result<(), CommitError>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Offsets(OffsetEvent::CommitDone { result, .. }) => Some(result.clone()),
            _ => None,
        })
        .collect()
}

/// Commit offset 5 on t-0 and return the OffsetCommit the group sends.
fn commit_one(h: &mut Harness) -> Sent {
    h.group
        .commit(h.now, vec![(t(0), CommittedOffset::new(5))])
        .unwrap();
    let c = h.expect(ApiKey::OffsetCommit);
    assert_eq!(c.commit().generation_id_or_member_epoch, 1);
    c
}

#[test]
fn illegal_generation_on_commit_is_stale_and_resets_the_generation_keeping_the_member_id() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let c = commit_one(&mut h);
    h.respond(&c, commit_response(c.commit(), ILLEGAL_GENERATION));
    let ev = h.take_events();
    assert!(matches!(
        commit_results(&ev).as_slice(),
        [Err(CommitError::Stale {
            cause: StaleCause::IllegalGeneration,
            ..
        })]
    ));
    assert_eq!(
        lost(&ev),
        vec![(vec![t(0), t(1)], LostReason::IllegalGeneration)]
    );
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.join().member_id.as_str(),
        "m1",
        "generation reset keeps the member id"
    );
}

#[test]
fn unknown_member_on_commit_is_stale_and_hard_resets() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let c = commit_one(&mut h);
    h.respond(&c, commit_response(c.commit(), UNKNOWN_MEMBER_ID));
    let ev = h.take_events();
    assert!(matches!(
        commit_results(&ev).as_slice(),
        [Err(CommitError::Stale {
            cause: StaleCause::UnknownMemberId,
            ..
        })]
    ));
    assert_eq!(lost(&ev).len(), 1);
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(
        j.join().member_id.as_str(),
        "",
        "hard reset forgets the member id"
    );
}

#[test]
fn rebalance_in_progress_on_commit_rejoins_without_losing_anything() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let c = commit_one(&mut h);
    h.respond(&c, commit_response(c.commit(), REBALANCE_IN_PROGRESS));
    let ev = h.take_events();
    assert!(matches!(
        commit_results(&ev).as_slice(),
        [Err(CommitError::RebalanceInProgress { .. })]
    ));
    assert!(lost(&ev).is_empty());
    assert_eq!(
        revoked(&ev),
        vec![vec![t(0), t(1)]],
        "eager: revoked, not lost"
    );
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
}

#[test]
fn not_coordinator_on_commit_rediscovers_and_resends_the_commit() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let id = h
        .group
        .commit(h.now, vec![(t(0), CommittedOffset::new(5))])
        .unwrap();
    let c = h.expect(ApiKey::OffsetCommit);
    h.respond(&c, commit_response(c.commit(), NOT_COORDINATOR));
    let ev = h.take_events();
    assert!(commit_results(&ev).is_empty(), "retried, not reported");
    assert!(
        lost(&ev).is_empty() && revoked(&ev).is_empty(),
        "membership kept"
    );
    // Rediscovery: FindCoordinator on the bootstrap connection, then the
    // (new) coordinator connection, then the same commit again.
    let mut resent = None;
    for _ in 0..50 {
        let mut batch = h.poll_all();
        while !batch.is_empty() {
            for s in batch {
                match s.api {
                    ApiKey::ApiVersions => {
                        let r = api_versions(&Default::default());
                        h.respond(&s, r)
                    }
                    ApiKey::FindCoordinator => h.respond(&s, coordinator_found(COORD)),
                    ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                    ApiKey::OffsetCommit => resent = Some(s),
                    other => panic!("unexpected {other:?}"),
                }
            }
            batch = if resent.is_some() {
                vec![]
            } else {
                h.poll_all()
            };
        }
        if resent.is_some() {
            break;
        }
        h.fire_next_timer();
    }
    let c = resent.expect("the commit is re-sent to the rediscovered coordinator");
    assert_eq!(c.commit().generation_id_or_member_epoch, 1);
    assert_eq!(c.commit().topics[0].partitions[0].committed_offset, 5);
    h.respond(&c, commit_response(c.commit(), 0));
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e,
        Event::Offsets(OffsetEvent::CommitDone { id: got, result: Ok(()), .. }) if *got == id)));
}

#[test]
fn group_authorization_failed_on_commit_is_fatal_for_the_commit_only() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let c = commit_one(&mut h);
    h.respond(&c, commit_response(c.commit(), GROUP_AUTHORIZATION_FAILED));
    let ev = h.take_events();
    assert!(matches!(
        commit_results(&ev).as_slice(),
        [Err(CommitError::Fatal { .. })]
    ));
    assert!(lost(&ev).is_empty());
    assert_eq!(h.group.state(), kgroup::GroupState::Stable);
}

#[test]
fn eager_commit_is_refused_between_revoke_and_assignment() {
    let mut h = stable(RevokeMode::Immediate, eager_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    h.take_events();
    h.expect(ApiKey::JoinGroup);
    let r = h.group.commit(h.now, vec![(t(0), CommittedOffset::new(9))]);
    assert!(
        matches!(
            r,
            Err(kgroup::offsets::CommitRefused::RebalanceInProgress { .. })
        ),
        "{r:?}"
    );
}

/// Stable on t-0 and t-1 (gated, cooperative); a rebalance moves t-0 away
/// in generation 2; the application commits t-0 in its revoke handler and
/// acknowledges.
fn cooperative_revoke_of_t0_committed_and_acked() -> Harness {
    let mut h = stable(RevokeMode::Gated, coop_first());
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(&j, join_response(2, "coop-first", "x", "m1"));
    h.sync_with(&[("t", 1)]);
    assert_eq!(revoked(&h.take_events()), vec![vec![t(0)]]);
    // Commit-on-revoke for t-0, then the ack.
    h.group
        .commit(h.now, vec![(t(0), CommittedOffset::new(30))])
        .unwrap();
    h.group.ack_revoked(h.now);
    h
}

#[test]
fn cooperative_revoke_completes_while_the_application_keeps_committing_what_it_retains() {
    let mut h = cooperative_revoke_of_t0_committed_and_acked();
    let start = h.now;
    let mut offset = 100;
    let mut joined = false;
    // The application goes on with t-1 and commits it every 100 ms; the
    // coordinator answers everything at once.
    for _ in 0..100 {
        for s in h.poll_all() {
            match s.api {
                ApiKey::OffsetCommit => {
                    assert_eq!(s.commit().generation_id_or_member_epoch, 2);
                    let r = commit_response(s.commit(), 0);
                    h.respond(&s, r)
                }
                ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                ApiKey::JoinGroup => joined = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        if joined {
            break;
        }
        offset += 1;
        let _ = h
            .group
            .commit(h.now, vec![(t(1), CommittedOffset::new(offset))]);
        h.advance(Duration::from_millis(100));
    }
    assert!(joined, "the cooperative rejoin never happened");
    assert!(
        h.now - start < Duration::from_secs(2),
        "revocation waited {:?} for commits of partitions it keeps",
        h.now - start
    );
}

/// As above, but each OffsetCommit is answered 100 ms later, while the
/// application commits t-1 every 100 ms: there is always commit work for a
/// partition that is *kept*. The revocation waits for the commit of the
/// *revoked* partition only; waiting for every commit would stall it until
/// the rebalance deadline (the seed-003 pattern: commit every batch).
///
/// `Group::complete_revocation` (membership/mod.rs) waits on
/// `self.offsets.has_pending_for(&state.partitions)`, not on
/// `blocking_rebalance()`: the revocation completes 100 ms after the commit
/// of the revoked partition is answered; waiting on every commit would take
/// 53 s.
#[test]
fn cooperative_revoke_is_not_stalled_by_commits_in_flight_for_kept_partitions() {
    let mut h = cooperative_revoke_of_t0_committed_and_acked();
    let start = h.now;
    let mut offset = 100;
    let mut joined = false;
    // The application goes on with t-1 and commits it every 100 ms; the
    // coordinator answers each commit 100 ms later.
    let mut late: Option<Sent> = None;
    for _ in 0..1000 {
        if let Some(s) = late.take() {
            let r = commit_response(s.commit(), 0);
            h.respond(&s, r);
        }
        for s in h.poll_all() {
            match s.api {
                ApiKey::OffsetCommit => {
                    assert_eq!(s.commit().generation_id_or_member_epoch, 2);
                    late = Some(s);
                }
                ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                ApiKey::JoinGroup => joined = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        if joined {
            break;
        }
        offset += 1;
        let _ = h
            .group
            .commit(h.now, vec![(t(1), CommittedOffset::new(offset))]);
        h.advance(Duration::from_millis(100));
    }
    assert!(joined, "the cooperative rejoin never happened");
    assert!(
        h.now - start < Duration::from_secs(2),
        "revocation waited {:?} for commits of partitions it keeps",
        h.now - start
    );
}
