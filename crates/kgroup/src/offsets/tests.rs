//! Scripted tests of the offsets state machine: one per OffsetCommit and
//! OffsetFetch row of PROTOCOL.md §2.7/§2.8, plus the commit rules. Each
//! test drives [`Offsets`] with kafka-protocol response structs in virtual
//! time and asserts the next request and the events.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError as E;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitResponse, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::ErrorClass;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

use crate::test_origin as t0;

const V: OffsetVersions = OffsetVersions::MAX;

/// One engine, a virtual clock and the last request.
struct H {
    o: Offsets,
    now: Instant,
}

impl H {
    fn new(config: OffsetsConfig) -> Self {
        let now = t0();
        let o = Offsets::new(config, now).unwrap();
        Self { o, now }
    }

    fn stable(gen_id: i32, owned: &[i32]) -> Self {
        let mut h = Self::new(OffsetsConfig::new("g"));
        h.view(gen_id, owned, RebalancePhase::Stable);
        h.o.handle_coordinator_ready(h.now, V).unwrap();
        h
    }

    fn view(&mut self, gen_id: i32, owned: &[i32], phase: RebalancePhase) {
        let v = MembershipView::member(gen_id, "m-1", owned.iter().map(|p| tp(*p)), phase);
        self.o.handle_membership(self.now, v);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.o.handle_timeout(self.now);
    }

    fn send(&mut self) -> OffsetRequest {
        self.o.poll_request(self.now).expect("a request")
    }

    fn nothing_sent(&mut self) {
        assert_eq!(self.o.poll_request(self.now), None);
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> CommitId {
        self.o
            .commit(
                self.now,
                offsets
                    .iter()
                    .map(|(p, o)| (tp(*p), CommittedOffset::new(*o)))
                    .collect(),
            )
            .unwrap()
    }

    fn events(&mut self) -> Vec<OffsetEvent> {
        std::iter::from_fn(|| self.o.poll_event()).collect()
    }

    /// Answer `req` with `code` for every partition.
    fn answer_commit(&mut self, req: &OffsetRequest, code: impl Fn(i32) -> i16) {
        let resp = commit_response(req, code);
        self.o.handle_commit_response(self.now, req.tag, &resp);
    }

    fn done(&mut self) -> Vec<(CommitId, Result<(), CommitError>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                OffsetEvent::CommitDone { id, result, .. } => Some((id, result)),
                _ => None,
            })
            .collect()
    }
}

fn commit_body(req: &OffsetRequest) -> &kafka_protocol::messages::OffsetCommitRequest {
    match &req.body {
        OffsetRequestBody::Commit(c) => c,
        other => panic!("expected OffsetCommit, got {other:?}"),
    }
}

fn committed(req: &OffsetRequest) -> Vec<(i32, i64)> {
    commit_body(req)
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
        })
        .collect()
}

fn commit_response(req: &OffsetRequest, code: impl Fn(i32) -> i16) -> OffsetCommitResponse {
    commit_response_for(commit_body(req), |_, p| code(p.partition_index))
}

fn membership(events: &[OffsetEvent]) -> Vec<MembershipAction> {
    events
        .iter()
        .filter_map(|e| match e {
            OffsetEvent::Membership { action, .. } => Some(*action),
            _ => None,
        })
        .collect()
}

// ---------- commit rules ----------

#[test]
fn commit_carries_current_generation_member_and_instance_id() {
    let mut h = H::stable(4, &[0, 1]);
    h.o.handle_membership(
        h.now,
        MembershipView::member(4, "m-1", [tp(0), tp(1)], RebalancePhase::Stable)
            .with_instance_id("i-1"),
    );
    let id = h.commit(&[(0, 10), (1, 20)]);
    let req = h.send();
    assert_eq!(req.tag.generation, 4);
    assert_eq!(req.version, 9);
    let body = commit_body(&req);
    assert_eq!(body.generation_id_or_member_epoch, 4);
    assert_eq!(body.member_id.as_str(), "m-1");
    assert_eq!(body.group_instance_id.as_deref(), Some("i-1"));
    assert_eq!(committed(&req), vec![(0, 10), (1, 20)]);
    h.answer_commit(&req, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn commit_for_a_partition_not_owned_is_refused_and_never_sent() {
    let mut h = H::stable(4, &[0]);
    let err =
        h.o.commit(h.now, vec![(tp(0), 1.into()), (tp(5), 1.into())])
            .unwrap_err();
    assert!(matches!(err, CommitRefused::NotOwned { ref partition, .. } if *partition == tp(5)));
    assert!(err.to_string().contains("orders-5"), "{err}");
    h.nothing_sent();
}

#[test]
fn commit_when_not_a_member_is_refused() {
    let mut h = H::new(OffsetsConfig::new("g"));
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let err = h.o.commit(h.now, vec![(tp(0), 1.into())]).unwrap_err();
    assert!(matches!(err, CommitRefused::NotMember { .. }));
    h.nothing_sent();
}

#[test]
fn commit_with_negative_offset_or_duplicate_partition_is_refused() {
    let mut h = H::stable(1, &[0]);
    assert!(matches!(
        h.o.commit(h.now, vec![(tp(0), CommittedOffset::new(-1))]),
        Err(CommitRefused::InvalidOffset { offset: -1, .. })
    ));
    assert!(matches!(
        h.o.commit(h.now, vec![(tp(0), 1.into()), (tp(0), 2.into())]),
        Err(CommitRefused::DuplicatePartition { .. })
    ));
    assert!(matches!(
        h.o.commit(h.now, vec![]),
        Err(CommitRefused::Empty { .. })
    ));
}

#[test]
fn eager_rebalance_fails_commits_fast_with_rebalance_in_progress() {
    let mut h = H::stable(3, &[0]);
    h.view(3, &[], RebalancePhase::EagerJoining);
    let err = h.o.commit(h.now, vec![(tp(0), 7.into())]).unwrap_err();
    assert!(matches!(err, CommitRefused::RebalanceInProgress { .. }));
    assert_eq!(err.class(), ErrorClass::Rejoin);
    h.nothing_sent();
}

#[test]
fn cooperative_rebalance_holds_commit_then_sends_it_with_the_new_generation() {
    let mut h = H::stable(3, &[0, 1]);
    h.view(3, &[0, 1], RebalancePhase::CooperativeJoining);
    let id = h.commit(&[(0, 11)]);
    h.nothing_sent(); // no commit overlaps Join→Sync
    assert!(h.o.blocking_rebalance());
    h.view(4, &[0], RebalancePhase::Stable);
    let req = h.send();
    assert_eq!(commit_body(&req).generation_id_or_member_epoch, 4);
    h.answer_commit(&req, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn generation_is_read_when_sending_not_when_committing() {
    let mut h = H::stable(5, &[0]);
    h.o.handle_coordinator_lost(h.now);
    let _id = h.commit(&[(0, 3)]);
    h.nothing_sent();
    h.view(6, &[0], RebalancePhase::Stable); // cooperative: kept across the rebalance
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let req = h.send();
    assert_eq!(req.tag.generation, 6);
    assert_eq!(commit_body(&req).generation_id_or_member_epoch, 6);
}

#[test]
fn partitions_that_leave_are_removed_from_queued_commits_and_reported_stale() {
    let mut h = H::stable(5, &[0, 1]);
    h.o.handle_coordinator_lost(h.now);
    let a = h.commit(&[(0, 3)]);
    let b = h.commit(&[(0, 4), (1, 9)]);
    h.view(6, &[1], RebalancePhase::Stable);
    let done = h.done();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, a);
    assert!(matches!(
        done[0].1,
        Err(CommitError::Stale {
            cause: StaleCause::NoLongerOwned,
            generation: 5,
            ..
        })
    ));
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let req = h.send();
    assert_eq!(
        committed(&req),
        vec![(1, 9)],
        "orders-0 is never sent after it left"
    );
    h.answer_commit(&req, |_| 0);
    let done = h.done();
    assert_eq!(done[0].0, b);
    let Err(CommitError::Partitions {
        committed, failed, ..
    }) = &done[0].1
    else {
        panic!("{done:?}")
    };
    assert_eq!(committed, &vec![tp(1)]);
    assert_eq!(failed, &vec![(tp(0), PartitionCommitError::NoLongerOwned)]);
}

#[test]
fn one_commit_in_flight_and_fifo_order() {
    let mut h = H::stable(1, &[0]);
    let a = h.commit(&[(0, 1)]);
    let b = h.commit(&[(0, 2)]);
    let ra = h.send();
    h.nothing_sent();
    h.answer_commit(&ra, |_| 0);
    let rb = h.send();
    assert_eq!(committed(&rb), vec![(0, 2)]);
    h.answer_commit(&rb, |_| 0);
    assert_eq!(h.done(), vec![(a, Ok(())), (b, Ok(()))]);
}

#[test]
fn static_member_cannot_commit_below_v7() {
    let mut h = H::new(OffsetsConfig::new("g"));
    h.o.handle_membership(
        h.now,
        MembershipView::member(1, "m", [tp(0)], RebalancePhase::Stable).with_instance_id("i"),
    );
    h.o.handle_coordinator_ready(
        h.now,
        OffsetVersions {
            commit: 6,
            fetch: 6,
        },
    )
    .unwrap();
    let id = h.commit(&[(0, 1)]);
    h.nothing_sent();
    assert!(matches!(
        h.done().as_slice(),
        [(i, Err(CommitError::Fatal { error: E::UnsupportedVersion, .. }))] if *i == id
    ));
}

// ---------- OffsetCommit error matrix (PROTOCOL.md §2.7) ----------

#[test]
fn commit_group_authorization_failed_is_fatal() {
    let mut h = H::stable(1, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::GroupAuthorizationFailed.code());
    let ev = h.events();
    assert!(membership(&ev).is_empty());
    assert!(matches!(
        &ev[..],
        [OffsetEvent::CommitDone { id: i, result: Err(e @ CommitError::Fatal { error: E::GroupAuthorizationFailed, .. }), .. }]
            if *i == id && e.class() == ErrorClass::Fatal
    ));
}

#[test]
fn commit_non_retriable_partition_errors_are_reported_per_partition() {
    let mut h = H::stable(1, &[0, 1, 2, 3]);
    let id = h.commit(&[(0, 1), (1, 1), (2, 1), (3, 1)]);
    let req = h.send();
    h.answer_commit(&req, |p| match p {
        1 => E::TopicAuthorizationFailed.code(),
        2 => E::OffsetMetadataTooLarge.code(),
        3 => E::InvalidCommitOffsetSize.code(),
        _ => 0,
    });
    let done = h.done();
    assert_eq!(done[0].0, id);
    let Err(
        e @ CommitError::Partitions {
            committed, failed, ..
        },
    ) = &done[0].1
    else {
        panic!("{done:?}")
    };
    assert_eq!(committed, &vec![tp(0)]);
    assert_eq!(
        failed,
        &vec![
            (tp(1), PartitionCommitError::TopicAuthorizationFailed),
            (tp(2), PartitionCommitError::OffsetMetadataTooLarge),
            (tp(3), PartitionCommitError::InvalidCommitOffsetSize),
        ]
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
    h.nothing_sent();
}

#[test]
fn commit_unknown_topic_or_partition_retries_that_partition_only() {
    let mut h = H::stable(1, &[0, 1]);
    let id = h.commit(&[(0, 5), (1, 6)]);
    let req = h.send();
    h.answer_commit(&req, |p| {
        if p == 1 {
            E::UnknownTopicOrPartition.code()
        } else {
            0
        }
    });
    assert!(h.done().is_empty());
    h.nothing_sent(); // backoff
    h.advance(Duration::from_millis(200));
    let retry = h.send();
    assert_eq!(committed(&retry), vec![(1, 6)]);
    h.answer_commit(&retry, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn commit_coordinator_load_in_progress_retries_after_backoff_keeping_the_coordinator() {
    let mut h = H::stable(1, &[0]);
    let id = h.commit(&[(0, 5)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::CoordinatorLoadInProgress.code());
    assert!(membership(&h.events()).is_empty());
    h.nothing_sent();
    let wake = h.o.poll_timeout().unwrap();
    assert!(wake > h.now && wake <= h.now + Duration::from_millis(120));
    h.advance(wake - h.now);
    let retry = h.send();
    h.answer_commit(&retry, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn commit_coordinator_errors_mark_it_unknown_then_resend_to_the_new_one() {
    for code in [
        E::NotCoordinator,
        E::CoordinatorNotAvailable,
        E::RequestTimedOut,
    ] {
        let mut h = H::stable(1, &[0]);
        let id = h.commit(&[(0, 5)]);
        let req = h.send();
        h.answer_commit(&req, |_| code.code());
        let ev = h.events();
        assert_eq!(
            membership(&ev),
            vec![MembershipAction::MarkCoordinatorUnknown],
            "{code}"
        );
        h.advance(Duration::from_secs(2));
        h.nothing_sent(); // until the group engine finds the coordinator again
        h.o.handle_coordinator_ready(h.now, V).unwrap();
        let retry = h.send();
        assert_eq!(committed(&retry), vec![(0, 5)]);
        h.answer_commit(&retry, |_| 0);
        assert_eq!(h.done(), vec![(id, Ok(()))], "{code}");
    }
}

#[test]
fn commit_retriable_errors_are_reported_when_the_deadline_passes() {
    let mut h = H::new(OffsetsConfig::new("g").with_commit_timeout(Duration::from_secs(1)));
    h.view(1, &[0], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let id = h.commit(&[(0, 5)]);
    let mut sent = 0;
    for _ in 0..50 {
        if let Some(req) = h.o.poll_request(h.now) {
            sent += 1;
            h.answer_commit(&req, |_| E::CoordinatorLoadInProgress.code());
        }
        h.advance(Duration::from_millis(100));
    }
    assert!((3..=10).contains(&sent), "retried {sent} times within 1 s");
    let done = h.done();
    assert!(
        matches!(
            done.as_slice(),
            [(i, Err(CommitError::Retriable { cause: RetryCause::Broker(E::CoordinatorLoadInProgress), .. }))] if *i == id
        ),
        "{done:?}"
    );
    h.nothing_sent(); // never re-sent after being reported
}

#[test]
fn commit_rebalance_in_progress_requests_rejoin_and_keeps_marks() {
    let mut h = H::stable(2, &[0]);
    h.o.mark_processed(tp(0), 40).unwrap();
    let id = h.o.flush_marks(h.now).unwrap();
    let req = h.send();
    h.answer_commit(&req, |_| E::RebalanceInProgress.code());
    let ev = h.events();
    assert_eq!(membership(&ev), vec![MembershipAction::RequestRejoin]);
    assert!(ev.iter().any(|e| matches!(e,
        OffsetEvent::CommitDone { id: i, kind: CommitKind::Marked, result: Err(CommitError::RebalanceInProgress { .. }), .. } if *i == id)));
    // Cooperative rebalance keeps the partition: the mark is committed with the new generation.
    h.view(2, &[0], RebalancePhase::CooperativeJoining);
    h.view(3, &[0], RebalancePhase::Stable);
    h.o.flush_marks(h.now).unwrap();
    let req = h.send();
    assert_eq!(commit_body(&req).generation_id_or_member_epoch, 3);
    assert_eq!(committed(&req), vec![(0, 40)]);
}

#[test]
fn commit_illegal_generation_for_current_generation_resets_generation() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::IllegalGeneration.code());
    let ev = h.events();
    assert_eq!(membership(&ev), vec![MembershipAction::ResetGeneration]);
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone { id: i, result: Err(e @ CommitError::Stale { cause: StaleCause::IllegalGeneration, generation: 2, .. }), .. } if *i == id && e.class() == ErrorClass::Rejoin)));
}

#[test]
fn commit_illegal_generation_during_cooperative_rebalance_is_not_a_reset() {
    // librdkafka #4059: the commit raced a rebalance; the assignment must not be lost.
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.view(2, &[0], RebalancePhase::CooperativeJoining);
    h.answer_commit(&req, |_| E::IllegalGeneration.code());
    let ev = h.events();
    assert!(membership(&ev).is_empty(), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone { id: i, result: Err(CommitError::RebalanceInProgress { .. }), .. } if *i == id)));
}

#[test]
fn commit_generation_error_for_an_older_generation_is_stale_without_reset() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.view(3, &[0], RebalancePhase::Stable);
    h.answer_commit(&req, |_| E::IllegalGeneration.code());
    let ev = h.events();
    assert!(membership(&ev).is_empty(), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone { id: i, result: Err(CommitError::Stale { generation: 2, .. }), .. } if *i == id)));
}

#[test]
fn commit_unknown_member_id_for_current_generation_hard_resets() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::UnknownMemberId.code());
    let ev = h.events();
    assert_eq!(membership(&ev), vec![MembershipAction::HardReset]);
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone { id: i, result: Err(CommitError::Stale { cause: StaleCause::UnknownMemberId, .. }), .. } if *i == id)));
}

#[test]
fn commit_fenced_instance_id_for_current_generation_is_fenced() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::FencedInstanceId.code());
    let ev = h.events();
    assert_eq!(membership(&ev), vec![MembershipAction::Fenced]);
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone { id: i, result: Err(e @ CommitError::Stale { cause: StaleCause::FencedInstanceId, .. }), .. } if *i == id && e.class() == ErrorClass::Fenced)));
}

#[test]
fn commit_unexpected_error_code_is_reported_per_partition() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.answer_commit(&req, |_| 4242);
    let done = h.done();
    assert!(
        matches!(&done[..], [(i, Err(CommitError::Partitions { failed, .. }))]
        if *i == id && failed == &vec![(tp(0), PartitionCommitError::Unexpected(E::Unknown(4242)))])
    );
}

#[test]
fn transport_failure_is_retried_within_the_deadline() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    h.o.handle_request_failure(h.now, req.tag, RequestFailure::Disconnected);
    h.advance(Duration::from_millis(200));
    let retry = h.send();
    h.answer_commit(&retry, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn a_response_for_an_abandoned_request_is_ignored() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 1)]);
    let old = h.send();
    h.o.handle_coordinator_lost(h.now);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let new = h.send();
    assert_ne!(old.tag, new.tag);
    h.answer_commit(&old, |_| E::IllegalGeneration.code());
    assert!(h.events().is_empty(), "stale response ignored");
    h.answer_commit(&new, |_| 0);
    assert_eq!(h.done(), vec![(id, Ok(()))]);
}

#[test]
fn hostile_commit_response_is_an_invalid_response_error() {
    let mut h = H::stable(2, &[0]);
    h.o.mark_processed(tp(0), 9).unwrap();
    let id = h.commit(&[(0, 1)]);
    let req = h.send();
    let bogus = OffsetCommitResponse::default().with_topics(vec![
        OffsetCommitResponseTopic::default()
            .with_name(kafka_protocol::messages::TopicName(
                StrBytes::from_static_str("evil"),
            ))
            .with_partitions(vec![OffsetCommitResponsePartition::default()]),
    ]);
    h.o.handle_commit_response(h.now, req.tag, &bogus);
    let done = h.done();
    assert!(
        matches!(&done[..], [(i, Err(CommitError::InvalidResponse { violation: ResponseViolation::Unrequested(_), .. }))] if *i == id)
    );
    assert_eq!(
        h.o.marks().get(&tp(0)).map(|o| o.offset),
        Some(9),
        "marks survive"
    );
}

// ---------- commit on revoke, marks and auto-commit ----------

#[test]
fn commit_on_revoke_goes_out_with_the_generation_still_owned_and_blocks_the_rejoin() {
    let mut h = H::stable(7, &[0, 1]);
    h.view(7, &[0, 1], RebalancePhase::Revoking);
    let id = h.commit(&[(0, 100), (1, 200)]);
    assert!(h.o.blocking_rebalance());
    assert!(h.o.has_pending_for(&[tp(1)]));
    let req = h.send();
    assert_eq!(commit_body(&req).generation_id_or_member_epoch, 7);
    assert!(h.o.blocking_rebalance(), "in flight");
    h.answer_commit(&req, |_| 0);
    assert!(!h.o.blocking_rebalance());
    assert_eq!(h.done(), vec![(id, Ok(()))]);
    h.view(7, &[], RebalancePhase::EagerJoining);
    assert!(h.o.marks().is_empty());
}

#[test]
fn entering_revoking_commits_marks_when_auto_commit_is_on() {
    let mut h = H::new(OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(5))));
    h.view(7, &[0, 1], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    h.o.mark_processed(tp(0), 10).unwrap();
    h.o.mark_processed(tp(1), 20).unwrap();
    h.view(7, &[0, 1], RebalancePhase::Revoking);
    assert!(h.o.blocking_rebalance());
    let req = h.send();
    assert_eq!(committed(&req), vec![(0, 10), (1, 20)]);
    h.answer_commit(&req, |_| 0);
    assert!(!h.o.blocking_rebalance());
    assert!(matches!(
        h.events().as_slice(),
        [OffsetEvent::CommitDone {
            kind: CommitKind::Marked,
            result: Ok(()),
            ..
        }]
    ));
}

#[test]
fn auto_commit_sends_only_marks_ahead_of_the_last_commit() {
    let mut h = H::new(OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(5))));
    h.view(1, &[0, 1], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    assert_eq!(h.o.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    h.o.mark_processed(tp(0), 10).unwrap();
    h.o.mark_processed(tp(1), 20).unwrap();
    h.nothing_sent();
    h.advance(Duration::from_secs(5));
    let req = h.send();
    assert_eq!(committed(&req), vec![(0, 10), (1, 20)]);
    h.answer_commit(&req, |_| 0);
    h.o.mark_processed(tp(1), 25).unwrap();
    h.advance(Duration::from_secs(5));
    let req = h.send();
    assert_eq!(committed(&req), vec![(1, 25)]);
    h.answer_commit(&req, |_| 0);
    h.advance(Duration::from_secs(5));
    h.nothing_sent(); // nothing new marked
}

#[test]
fn marks_survive_a_failed_commit_and_a_coordinator_move() {
    let mut h = H::new(OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(1))));
    h.view(1, &[0], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    h.o.mark_processed(tp(0), 10).unwrap();
    h.advance(Duration::from_secs(1));
    let req = h.send();
    h.answer_commit(&req, |_| E::NotCoordinator.code());
    h.o.mark_processed(tp(0), 12).unwrap();
    h.advance(Duration::from_secs(3));
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    let req = h.send();
    assert_eq!(
        committed(&req),
        vec![(0, 12)],
        "the newest mark, nothing dropped"
    );
    h.answer_commit(&req, |_| 0);
    assert_eq!(h.o.marks().get(&tp(0)).map(|o| o.offset), Some(12));
}

#[test]
fn marks_for_partitions_not_owned_are_refused_and_lost_partitions_drop_them() {
    let mut h = H::stable(1, &[0]);
    assert!(matches!(
        h.o.mark_processed(tp(3), 1),
        Err(CommitRefused::NotOwned { .. })
    ));
    h.o.mark_processed(tp(0), 5).unwrap();
    h.o.handle_membership(h.now, MembershipView::unjoined()); // e.g. lost after a reset
    assert!(h.o.marks().is_empty());
    assert!(h.o.flush_marks(h.now).is_none());
}

#[test]
fn close_commits_marks_and_refuses_new_commands() {
    let mut h = H::new(OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(5))));
    h.view(1, &[0], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    h.o.mark_processed(tp(0), 3).unwrap();
    h.o.close(h.now);
    assert!(matches!(
        h.o.commit(h.now, vec![(tp(0), 4.into())]),
        Err(CommitRefused::Closed { .. })
    ));
    assert!(h.o.blocking_rebalance());
    let req = h.send();
    assert_eq!(committed(&req), vec![(0, 3)]);
    h.o.abandon(h.now);
    assert!(matches!(
        h.events().as_slice(),
        [OffsetEvent::CommitDone {
            result: Err(CommitError::Closed { .. }),
            ..
        }]
    ));
}

// ---------- OffsetFetch (PROTOCOL.md §2.8) ----------

fn fetch_partitions(req: &OffsetRequest) -> Vec<i32> {
    match &req.body {
        OffsetRequestBody::Fetch(f) => f
            .groups
            .iter()
            .flat_map(|g| {
                g.topics
                    .iter()
                    .flatten()
                    .flat_map(|t| t.partition_indexes.clone())
            })
            .collect(),
        other => panic!("expected OffsetFetch, got {other:?}"),
    }
}

/// A v8+ response: `(partition, offset, code)` per entry, group error `group_code`.
fn fetch_response(group_code: i16, entries: &[(i32, i64, i16)]) -> OffsetFetchResponse {
    OffsetFetchResponse::default().with_groups(vec![
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_error_code(group_code)
            .with_topics(vec![
                OffsetFetchResponseTopics::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        StrBytes::from_static_str("orders"),
                    ))
                    .with_partitions(
                        entries
                            .iter()
                            .map(|(p, o, c)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_leader_epoch(2)
                                    .with_metadata(Some(StrBytes::from_static_str("meta")))
                                    .with_error_code(*c)
                            })
                            .collect(),
                    ),
            ]),
    ])
}

fn fetch_done(events: Vec<OffsetEvent>) -> (FetchId, i32, Result<FetchedOffsets, FetchError>) {
    events
        .into_iter()
        .find_map(|e| match e {
            OffsetEvent::FetchDone {
                id,
                generation,
                result,
            } => Some((id, generation, result)),
            _ => None,
        })
        .expect("FetchDone")
}

#[test]
fn fetch_reads_committed_offsets_with_require_stable() {
    let mut h = H::stable(3, &[0, 1]);
    let id = h.o.fetch(h.now, [tp(0), tp(1)]).unwrap();
    let req = h.send();
    assert_eq!(req.api_key(), kafka_protocol::messages::ApiKey::OffsetFetch);
    let OffsetRequestBody::Fetch(body) = &req.body else {
        panic!()
    };
    assert!(body.require_stable);
    assert_eq!(fetch_partitions(&req), vec![0, 1]);
    h.o.handle_fetch_response(
        h.now,
        req.tag,
        &fetch_response(0, &[(0, 42, 0), (1, -1, 0)]),
    );
    let (fid, generation, result) = fetch_done(h.events());
    assert_eq!((fid, generation), (id, 3));
    let r = result.unwrap();
    assert_eq!(
        r[&tp(0)],
        Ok(Some(
            CommittedOffset::new(42)
                .with_leader_epoch(2)
                .with_metadata("meta")
        ))
    );
    assert_eq!(r[&tp(1)], Ok(None), "-1: nothing committed");
}

#[test]
fn fetch_unstable_offset_commit_is_retried_with_backoff() {
    let mut h = H::stable(3, &[0, 1]);
    let id = h.o.fetch(h.now, [tp(0), tp(1)]).unwrap();
    let req = h.send();
    h.o.handle_fetch_response(
        h.now,
        req.tag,
        &fetch_response(0, &[(0, 42, 0), (1, -1, E::UnstableOffsetCommit.code())]),
    );
    assert!(h.events().is_empty());
    h.nothing_sent();
    h.advance(Duration::from_millis(200));
    let retry = h.send();
    assert_eq!(
        fetch_partitions(&retry),
        vec![1],
        "only the unstable partition again"
    );
    h.o.handle_fetch_response(h.now, retry.tag, &fetch_response(0, &[(1, 7, 0)]));
    let (fid, _, result) = fetch_done(h.events());
    assert_eq!(fid, id);
    let r = result.unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[&tp(1)]
            .as_ref()
            .ok()
            .and_then(|o| o.as_ref())
            .map(|o| o.offset),
        Some(7)
    );
}

#[test]
fn fetch_unstable_until_the_deadline_is_a_per_partition_error() {
    let mut h = H::new(OffsetsConfig::new("g").with_fetch_timeout(Duration::from_millis(500)));
    h.view(3, &[0], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    h.o.fetch(h.now, [tp(0)]).unwrap();
    for _ in 0..20 {
        if let Some(req) = h.o.poll_request(h.now) {
            h.o.handle_fetch_response(
                h.now,
                req.tag,
                &fetch_response(0, &[(0, 1, E::UnstableOffsetCommit.code())]),
            );
        }
        h.advance(Duration::from_millis(100));
    }
    let (_, _, result) = fetch_done(h.events());
    assert_eq!(result.unwrap()[&tp(0)], Err(PartitionFetchError::Unstable));
}

#[test]
fn fetch_partition_errors_are_per_partition() {
    let mut h = H::stable(3, &[0, 1]);
    h.o.fetch(h.now, [tp(0), tp(1)]).unwrap();
    let req = h.send();
    h.o.handle_fetch_response(
        h.now,
        req.tag,
        &fetch_response(
            0,
            &[
                (0, -1, E::UnknownTopicOrPartition.code()),
                (1, -1, E::TopicAuthorizationFailed.code()),
            ],
        ),
    );
    let r = fetch_done(h.events()).2.unwrap();
    assert_eq!(r[&tp(0)], Err(PartitionFetchError::UnknownTopicOrPartition));
    assert_eq!(
        r[&tp(1)],
        Err(PartitionFetchError::TopicAuthorizationFailed)
    );
}

#[test]
fn fetch_group_authorization_failed_is_fatal() {
    let mut h = H::stable(3, &[0]);
    h.o.fetch(h.now, [tp(0)]).unwrap();
    let req = h.send();
    h.o.handle_fetch_response(
        h.now,
        req.tag,
        &fetch_response(E::GroupAuthorizationFailed.code(), &[]),
    );
    let ev = h.events();
    assert!(membership(&ev).is_empty());
    let r = fetch_done(ev).2;
    assert!(matches!(
        r,
        Err(FetchError::Fatal {
            error: E::GroupAuthorizationFailed,
            ..
        })
    ));
}

#[test]
fn fetch_coordinator_errors_mark_unknown_and_retry_on_the_new_coordinator() {
    for code in [E::NotCoordinator, E::CoordinatorNotAvailable] {
        let mut h = H::stable(3, &[0]);
        h.o.fetch(h.now, [tp(0)]).unwrap();
        let req = h.send();
        h.o.handle_fetch_response(h.now, req.tag, &fetch_response(code.code(), &[]));
        let ev = h.events();
        assert_eq!(
            membership(&ev),
            vec![MembershipAction::MarkCoordinatorUnknown]
        );
        h.advance(Duration::from_secs(1));
        h.nothing_sent();
        h.o.handle_coordinator_ready(h.now, V).unwrap();
        let retry = h.send();
        h.o.handle_fetch_response(h.now, retry.tag, &fetch_response(0, &[(0, 5, 0)]));
        assert!(fetch_done(h.events()).2.is_ok());
    }
}

#[test]
fn fetch_load_in_progress_retries_after_backoff() {
    let mut h = H::stable(3, &[0]);
    h.o.fetch(h.now, [tp(0)]).unwrap();
    let req = h.send();
    h.o.handle_fetch_response(
        h.now,
        req.tag,
        &fetch_response(E::CoordinatorLoadInProgress.code(), &[]),
    );
    assert!(h.events().is_empty());
    h.advance(Duration::from_millis(200));
    let retry = h.send();
    h.o.handle_fetch_response(h.now, retry.tag, &fetch_response(0, &[(0, 5, 0)]));
    assert!(fetch_done(h.events()).2.is_ok());
}

#[test]
fn fetch_for_a_superseded_generation_is_reported_and_its_response_ignored() {
    let mut h = H::stable(3, &[0]);
    let id = h.o.fetch(h.now, [tp(0)]).unwrap();
    let req = h.send();
    h.view(3, &[0], RebalancePhase::CooperativeJoining);
    h.view(4, &[0], RebalancePhase::Stable);
    let (fid, generation, result) = fetch_done(h.events());
    assert_eq!((fid, generation), (id, 3));
    assert!(matches!(
        result,
        Err(FetchError::Superseded { generation: 3, .. })
    ));
    h.o.handle_fetch_response(h.now, req.tag, &fetch_response(0, &[(0, 5, 0)]));
    assert!(h.events().is_empty(), "old generation's answer ignored");
}

#[test]
fn fetch_is_held_during_join_and_refused_for_unowned_partitions() {
    let mut h = H::stable(3, &[0]);
    assert!(matches!(
        h.o.fetch(h.now, [tp(9)]),
        Err(FetchRefused::NotOwned { .. })
    ));
    h.view(3, &[0], RebalancePhase::CooperativeJoining);
    h.o.fetch(h.now, [tp(0)]).unwrap();
    h.nothing_sent();
}

#[test]
fn fetch_v7_and_below_use_the_topic_list() {
    let mut h = H::new(OffsetsConfig::new("g"));
    h.view(3, &[0], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(
        h.now,
        OffsetVersions {
            commit: 7,
            fetch: 6,
        },
    )
    .unwrap();
    h.o.fetch(h.now, [tp(0)]).unwrap();
    let req = h.send();
    let OffsetRequestBody::Fetch(body) = &req.body else {
        panic!()
    };
    assert_eq!(req.version, 6);
    assert!(!body.require_stable);
    assert_eq!(body.topics.as_ref().map(|t| t.len()), Some(1));
    assert!(body.groups.is_empty());
}

// ---------- CommitDone.committed: what the broker accepted ----------

/// `(id, committed)` of every `CommitDone` in `events`.
fn written(events: &[OffsetEvent]) -> Vec<(CommitId, Vec<(TopicPartition, i64)>)> {
    events
        .iter()
        .filter_map(|e| match e {
            OffsetEvent::CommitDone { id, committed, .. } => Some((*id, committed.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn commit_done_of_the_marks_carries_the_offsets_it_wrote() {
    let mut h = H::new(OffsetsConfig::new("g").with_auto_commit(Some(Duration::from_secs(5))));
    h.view(1, &[0, 1], RebalancePhase::Stable);
    h.o.handle_coordinator_ready(h.now, V).unwrap();
    h.o.mark_processed(tp(1), 20).unwrap();
    h.o.mark_processed(tp(0), 10).unwrap();
    let id = h.o.flush_marks(h.now).unwrap();
    let req = h.send();
    // Marked after the request was built: not part of this commit.
    h.o.mark_processed(tp(0), 15).unwrap();
    h.answer_commit(&req, |_| 0);
    assert_eq!(
        written(&h.events()),
        vec![(id, vec![(tp(0), 10), (tp(1), 20)])],
        "sorted, with the offsets sent, not the marks of now"
    );
}

#[test]
fn commit_done_after_partial_failure_lists_only_the_accepted_partitions() {
    let mut h = H::stable(1, &[0, 1, 2]);
    let id = h.commit(&[(0, 7), (1, 8), (2, 9)]);
    let req = h.send();
    h.answer_commit(&req, |p| {
        if p == 1 {
            E::OffsetMetadataTooLarge.code()
        } else {
            0
        }
    });
    let ev = h.events();
    assert_eq!(written(&ev), vec![(id, vec![(tp(0), 7), (tp(2), 9)])]);
    assert!(ev.iter().any(|e| matches!(e, OffsetEvent::CommitDone {
        result: Err(CommitError::Partitions { committed, .. }), ..
    } if committed == &vec![tp(0), tp(2)])));
}

#[test]
fn commit_done_after_a_group_error_carries_nothing() {
    let mut h = H::stable(2, &[0]);
    let id = h.commit(&[(0, 4)]);
    let req = h.send();
    h.answer_commit(&req, |_| E::IllegalGeneration.code());
    assert_eq!(written(&h.events()), vec![(id, vec![])]);
}

#[test]
fn commit_done_reports_a_partition_released_in_flight_that_the_broker_accepted() {
    let mut h = H::stable(3, &[0, 1]);
    let id = h.commit(&[(0, 5), (1, 6)]);
    let req = h.send();
    // Cooperative: orders-0 is revoked while the request is in flight.
    h.view(3, &[1], RebalancePhase::Stable);
    h.answer_commit(&req, |_| 0);
    let ev = h.events();
    assert_eq!(written(&ev), vec![(id, vec![(tp(0), 5), (tp(1), 6)])]);
    assert!(
        ev.iter()
            .any(|e| matches!(e, OffsetEvent::CommitDone { result: Ok(()), .. }))
    );
}
