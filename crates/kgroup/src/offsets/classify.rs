//! The OffsetCommit and OffsetFetch error matrices (PROTOCOL.md §2.7, §2.8)
//! as pure functions: error code (+ whether the generation changed and the
//! rebalance phase) → what happens to the request, the result class, and the
//! membership action for the group engine.
//!
//! Kept apart from the state machine so each row of the matrix is one small,
//! directly tested decision.

use kafka_protocol::ResponseError;

use super::error::{PartitionCommitError, PartitionFetchError, RetryCause, StaleCause};
use super::types::{MembershipAction, RebalancePhase};

/// A group-level error met in an OffsetCommit or OffsetFetch response.
///
/// OffsetCommit has no top-level error code: group-level errors are repeated
/// on every partition, so the state machine folds them with
/// [`GroupLevel::max_by_severity`] (deterministic, unlike Java's "first one
/// met").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupLevel {
    /// `COORDINATOR_LOAD_IN_PROGRESS` (OffsetFetch: any other retriable group
    /// error): retry after a backoff, the coordinator stays known.
    Retry(ResponseError),
    /// `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`
    /// (OffsetCommit): mark the coordinator unknown, retry once rediscovered.
    CoordinatorMoved(ResponseError),
    /// `REBALANCE_IN_PROGRESS`.
    RebalanceInProgress,
    /// `ILLEGAL_GENERATION`.
    IllegalGeneration,
    /// `UNKNOWN_MEMBER_ID`.
    UnknownMemberId,
    /// `FENCED_INSTANCE_ID`.
    FencedInstanceId,
    /// `GROUP_AUTHORIZATION_FAILED` and other errors no retry can fix.
    Fatal(ResponseError),
}

impl GroupLevel {
    fn severity(self) -> u8 {
        match self {
            GroupLevel::Retry(_) => 0,
            GroupLevel::CoordinatorMoved(_) => 1,
            GroupLevel::RebalanceInProgress => 2,
            GroupLevel::IllegalGeneration => 3,
            GroupLevel::UnknownMemberId => 4,
            GroupLevel::FencedInstanceId => 5,
            GroupLevel::Fatal(_) => 6,
        }
    }

    /// The more severe of two (the first on ties).
    pub(crate) fn max_by_severity(a: Option<Self>, b: Self) -> Self {
        match a {
            Some(a) if a.severity() >= b.severity() => a,
            _ => b,
        }
    }

    /// The broker error this level stands for.
    pub(crate) fn error(self) -> ResponseError {
        match self {
            GroupLevel::Retry(e) | GroupLevel::CoordinatorMoved(e) | GroupLevel::Fatal(e) => e,
            GroupLevel::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupLevel::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupLevel::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupLevel::FencedInstanceId => ResponseError::FencedInstanceId,
        }
    }
}

/// One partition entry of an OffsetCommit response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommitCode {
    /// Committed.
    Ok,
    /// About the group, not this partition.
    Group(GroupLevel),
    /// About this partition; `retriable` ones are re-sent until the deadline.
    Partition {
        error: PartitionCommitError,
        retriable: bool,
    },
}

/// Classify one OffsetCommit partition error code
/// (`ConsumerCoordinator.OffsetCommitResponseHandler`).
pub(crate) fn commit_code(code: i16) -> CommitCode {
    let Some(error) = ResponseError::try_from_code(code) else {
        return CommitCode::Ok;
    };
    use ResponseError as E;
    match error {
        E::CoordinatorLoadInProgress => CommitCode::Group(GroupLevel::Retry(error)),
        E::NotCoordinator | E::CoordinatorNotAvailable | E::RequestTimedOut => {
            CommitCode::Group(GroupLevel::CoordinatorMoved(error))
        }
        E::RebalanceInProgress => CommitCode::Group(GroupLevel::RebalanceInProgress),
        E::IllegalGeneration => CommitCode::Group(GroupLevel::IllegalGeneration),
        E::UnknownMemberId => CommitCode::Group(GroupLevel::UnknownMemberId),
        E::FencedInstanceId => CommitCode::Group(GroupLevel::FencedInstanceId),
        E::GroupAuthorizationFailed
        | E::InvalidGroupId
        | E::UnsupportedVersion
        | E::GroupIdNotFound => CommitCode::Group(GroupLevel::Fatal(error)),
        E::UnknownTopicOrPartition => CommitCode::Partition {
            error: PartitionCommitError::UnknownTopicOrPartition,
            retriable: true,
        },
        E::OffsetMetadataTooLarge => CommitCode::Partition {
            error: PartitionCommitError::OffsetMetadataTooLarge,
            retriable: false,
        },
        E::InvalidCommitOffsetSize => CommitCode::Partition {
            error: PartitionCommitError::InvalidCommitOffsetSize,
            retriable: false,
        },
        E::TopicAuthorizationFailed => CommitCode::Partition {
            error: PartitionCommitError::TopicAuthorizationFailed,
            retriable: false,
        },
        other => CommitCode::Partition {
            error: PartitionCommitError::Unexpected(other),
            retriable: false,
        },
    }
}

/// What becomes of a commit that met a group-level error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommitDisposition {
    /// Re-send after a backoff (until the commit's deadline).
    Retry(RetryCause),
    /// Report `RebalanceInProgress`.
    RebalanceInProgress,
    /// Report `Stale`.
    Stale(StaleCause),
    /// Report `Fatal`.
    Fatal(ResponseError),
}

/// The OffsetCommit row for a group-level error, as PROTOCOL.md §2.7 states
/// it, with kgroup's two refinements:
///
/// - a generation error for a generation that is no longer ours only fails
///   the commit (`Stale`) and never resets the new membership ("ignore
///   stale-generation errors as for heartbeats", §2.7; KAFKA-9823);
/// - `ILLEGAL_GENERATION`/`UNKNOWN_MEMBER_ID` while a Join→Sync exchange is
///   under way is `RebalanceInProgress` with no reset whether or not the
///   generation changed: the rebalance under way settles the identity
///   (Java's "changed and PREPARING_REBALANCE" row, extended to the unchanged
///   case as librdkafka's fix for #4059 does).
///
/// `unchanged`: the response is for the current generation and member id.
pub(crate) fn commit_group_error(
    level: GroupLevel,
    unchanged: bool,
    phase: RebalancePhase,
) -> (CommitDisposition, Option<MembershipAction>) {
    let joining = phase.is_joining();
    match level {
        GroupLevel::Retry(e) => (CommitDisposition::Retry(RetryCause::Broker(e)), None),
        GroupLevel::CoordinatorMoved(e) => (
            CommitDisposition::Retry(RetryCause::Broker(e)),
            Some(MembershipAction::MarkCoordinatorUnknown),
        ),
        // Java: requestRejoin(), RebalanceInProgressException, no reset. A
        // request from an older generation says nothing about the current one.
        GroupLevel::RebalanceInProgress => (
            CommitDisposition::RebalanceInProgress,
            (unchanged && !joining).then_some(MembershipAction::RequestRejoin),
        ),
        GroupLevel::IllegalGeneration | GroupLevel::UnknownMemberId if joining => {
            (CommitDisposition::RebalanceInProgress, None)
        }
        GroupLevel::IllegalGeneration => (
            CommitDisposition::Stale(StaleCause::IllegalGeneration),
            unchanged.then_some(MembershipAction::ResetGeneration),
        ),
        GroupLevel::UnknownMemberId => (
            CommitDisposition::Stale(StaleCause::UnknownMemberId),
            unchanged.then_some(MembershipAction::HardReset),
        ),
        // Java: unchanged → FencedInstanceIdException (fatal); changed →
        // RebalanceInProgressException in PREPARING_REBALANCE, else
        // CommitFailedException.
        GroupLevel::FencedInstanceId if unchanged => (
            CommitDisposition::Stale(StaleCause::FencedInstanceId),
            Some(MembershipAction::Fenced),
        ),
        GroupLevel::FencedInstanceId if joining => (CommitDisposition::RebalanceInProgress, None),
        GroupLevel::FencedInstanceId => {
            (CommitDisposition::Stale(StaleCause::FencedInstanceId), None)
        }
        GroupLevel::Fatal(e) => (CommitDisposition::Fatal(e), None),
    }
}

/// One partition entry (or the group/top-level code) of an OffsetFetch
/// response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FetchCode {
    /// Read.
    Ok,
    /// About the group (`ConsumerCoordinator.OffsetFetchResponseHandler`).
    Group(GroupLevel),
    /// `UNSTABLE_OFFSET_COMMIT`: re-fetch this partition after a backoff.
    Unstable,
    /// About this partition, final.
    Partition(PartitionFetchError),
}

/// Classify an OffsetFetch error code met at group level (top-level v2–7,
/// per-group v8+).
pub(crate) fn fetch_group_code(code: i16) -> FetchCode {
    let Some(error) = ResponseError::try_from_code(code) else {
        return FetchCode::Ok;
    };
    match fetch_group_level(error) {
        Some(level) => FetchCode::Group(level),
        // Java: anything else → KafkaException ("Unexpected error in fetch
        // offset response").
        None => FetchCode::Group(GroupLevel::Fatal(error)),
    }
}

/// Classify an OffsetFetch partition error code. v1 has no top-level error,
/// so group-level codes met on a partition count for the group, as Java's
/// `OffsetFetchResponse` derives its top-level error.
pub(crate) fn fetch_partition_code(code: i16) -> FetchCode {
    let Some(error) = ResponseError::try_from_code(code) else {
        return FetchCode::Ok;
    };
    use ResponseError as E;
    match error {
        E::UnstableOffsetCommit => FetchCode::Unstable,
        E::UnknownTopicOrPartition => {
            FetchCode::Partition(PartitionFetchError::UnknownTopicOrPartition)
        }
        E::TopicAuthorizationFailed => {
            FetchCode::Partition(PartitionFetchError::TopicAuthorizationFailed)
        }
        other => match fetch_group_level(other) {
            Some(level) => FetchCode::Group(level),
            None => FetchCode::Partition(PartitionFetchError::Unexpected(other)),
        },
    }
}

fn fetch_group_level(error: ResponseError) -> Option<GroupLevel> {
    use ResponseError as E;
    match error {
        E::NotCoordinator | E::CoordinatorNotAvailable => Some(GroupLevel::CoordinatorMoved(error)),
        E::CoordinatorLoadInProgress | E::RequestTimedOut => Some(GroupLevel::Retry(error)),
        E::GroupAuthorizationFailed => Some(GroupLevel::Fatal(error)),
        _ => None,
    }
}

/// What becomes of a fetch that met a group-level error, and the membership
/// action (PROTOCOL.md §2.8). OffsetFetch (classic, no member id sent) never
/// resets membership.
pub(crate) fn fetch_group_error(
    level: GroupLevel,
) -> (Result<RetryCause, ResponseError>, Option<MembershipAction>) {
    match level {
        GroupLevel::Retry(e) => (Ok(RetryCause::Broker(e)), None),
        GroupLevel::CoordinatorMoved(e) => (
            Ok(RetryCause::Broker(e)),
            Some(MembershipAction::MarkCoordinatorUnknown),
        ),
        other => (Err(other.error()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResponseError as E;

    fn c(e: E) -> i16 {
        e.code()
    }

    // --- OffsetCommit rows (PROTOCOL.md §2.7) ---

    #[test]
    fn commit_group_authorization_failed_is_fatal() {
        let CommitCode::Group(level) = commit_code(c(E::GroupAuthorizationFailed)) else {
            panic!("group-level expected")
        };
        let (d, a) = commit_group_error(level, true, RebalancePhase::Stable);
        assert_eq!(d, CommitDisposition::Fatal(E::GroupAuthorizationFailed));
        assert_eq!(a, None);
    }

    #[test]
    fn commit_partition_errors_are_per_partition() {
        for (e, want, retriable) in [
            (
                E::TopicAuthorizationFailed,
                PartitionCommitError::TopicAuthorizationFailed,
                false,
            ),
            (
                E::OffsetMetadataTooLarge,
                PartitionCommitError::OffsetMetadataTooLarge,
                false,
            ),
            (
                E::InvalidCommitOffsetSize,
                PartitionCommitError::InvalidCommitOffsetSize,
                false,
            ),
            (
                E::UnknownTopicOrPartition,
                PartitionCommitError::UnknownTopicOrPartition,
                true,
            ),
        ] {
            assert_eq!(
                commit_code(c(e)),
                CommitCode::Partition {
                    error: want,
                    retriable
                },
                "{e}"
            );
        }
    }

    #[test]
    fn commit_load_in_progress_retries_keeping_the_coordinator() {
        let CommitCode::Group(level) = commit_code(c(E::CoordinatorLoadInProgress)) else {
            panic!()
        };
        let (d, a) = commit_group_error(level, true, RebalancePhase::Stable);
        assert_eq!(
            d,
            CommitDisposition::Retry(RetryCause::Broker(E::CoordinatorLoadInProgress))
        );
        assert_eq!(a, None);
    }

    #[test]
    fn commit_coordinator_errors_mark_it_unknown_and_retry() {
        for e in [
            E::CoordinatorNotAvailable,
            E::NotCoordinator,
            E::RequestTimedOut,
        ] {
            let CommitCode::Group(level) = commit_code(c(e)) else {
                panic!()
            };
            let (d, a) = commit_group_error(level, true, RebalancePhase::Stable);
            assert_eq!(d, CommitDisposition::Retry(RetryCause::Broker(e)));
            assert_eq!(a, Some(MembershipAction::MarkCoordinatorUnknown));
        }
    }

    #[test]
    fn commit_rebalance_in_progress_requests_rejoin_without_reset() {
        let (d, a) = commit_group_error(
            GroupLevel::RebalanceInProgress,
            true,
            RebalancePhase::Stable,
        );
        assert_eq!(d, CommitDisposition::RebalanceInProgress);
        assert_eq!(a, Some(MembershipAction::RequestRejoin));
        // Already rejoining, or about an older generation: nothing more to ask.
        let (_, a) = commit_group_error(
            GroupLevel::RebalanceInProgress,
            true,
            RebalancePhase::CooperativeJoining,
        );
        assert_eq!(a, None);
        let (_, a) = commit_group_error(
            GroupLevel::RebalanceInProgress,
            false,
            RebalancePhase::Stable,
        );
        assert_eq!(a, None);
    }

    #[test]
    fn commit_illegal_generation_unchanged_resets_the_generation() {
        let (d, a) =
            commit_group_error(GroupLevel::IllegalGeneration, true, RebalancePhase::Stable);
        assert_eq!(d, CommitDisposition::Stale(StaleCause::IllegalGeneration));
        assert_eq!(a, Some(MembershipAction::ResetGeneration));
    }

    #[test]
    fn commit_unknown_member_unchanged_hard_resets() {
        let (d, a) =
            commit_group_error(GroupLevel::UnknownMemberId, true, RebalancePhase::Revoking);
        assert_eq!(d, CommitDisposition::Stale(StaleCause::UnknownMemberId));
        assert_eq!(a, Some(MembershipAction::HardReset));
    }

    #[test]
    fn commit_generation_errors_while_joining_are_rebalance_in_progress_without_reset() {
        for level in [GroupLevel::IllegalGeneration, GroupLevel::UnknownMemberId] {
            for unchanged in [true, false] {
                for phase in [
                    RebalancePhase::EagerJoining,
                    RebalancePhase::CooperativeJoining,
                ] {
                    let (d, a) = commit_group_error(level, unchanged, phase);
                    assert_eq!(
                        d,
                        CommitDisposition::RebalanceInProgress,
                        "{level:?} {unchanged} {phase:?}"
                    );
                    assert_eq!(a, None);
                }
            }
        }
    }

    #[test]
    fn commit_generation_errors_for_an_old_generation_do_not_reset() {
        for level in [
            GroupLevel::IllegalGeneration,
            GroupLevel::UnknownMemberId,
            GroupLevel::FencedInstanceId,
        ] {
            let (d, a) = commit_group_error(level, false, RebalancePhase::Stable);
            assert!(matches!(d, CommitDisposition::Stale(_)), "{level:?}");
            assert_eq!(a, None);
        }
    }

    #[test]
    fn commit_fenced_instance_unchanged_is_fenced_even_while_joining() {
        for phase in [RebalancePhase::Stable, RebalancePhase::CooperativeJoining] {
            let (d, a) = commit_group_error(GroupLevel::FencedInstanceId, true, phase);
            assert_eq!(d, CommitDisposition::Stale(StaleCause::FencedInstanceId));
            assert_eq!(a, Some(MembershipAction::Fenced));
        }
        let (d, a) = commit_group_error(
            GroupLevel::FencedInstanceId,
            false,
            RebalancePhase::EagerJoining,
        );
        assert_eq!(d, CommitDisposition::RebalanceInProgress);
        assert_eq!(a, None);
    }

    #[test]
    fn commit_other_codes_are_unexpected_per_partition() {
        assert_eq!(
            commit_code(c(E::InvalidRequest)),
            CommitCode::Partition {
                error: PartitionCommitError::Unexpected(E::InvalidRequest),
                retriable: false
            }
        );
        assert_eq!(
            commit_code(9999),
            CommitCode::Partition {
                error: PartitionCommitError::Unexpected(E::Unknown(9999)),
                retriable: false
            }
        );
        assert_eq!(commit_code(0), CommitCode::Ok);
    }

    #[test]
    fn severity_prefers_fatal_then_fencing_then_generation() {
        let mut acc = None;
        for l in [
            GroupLevel::CoordinatorMoved(E::NotCoordinator),
            GroupLevel::IllegalGeneration,
            GroupLevel::RebalanceInProgress,
        ] {
            acc = Some(GroupLevel::max_by_severity(acc, l));
        }
        assert_eq!(acc, Some(GroupLevel::IllegalGeneration));
        assert_eq!(
            GroupLevel::max_by_severity(acc, GroupLevel::Fatal(E::GroupAuthorizationFailed)),
            GroupLevel::Fatal(E::GroupAuthorizationFailed)
        );
    }

    // --- OffsetFetch rows (PROTOCOL.md §2.8) ---

    #[test]
    fn fetch_coordinator_errors_mark_unknown_and_retry() {
        for e in [E::CoordinatorNotAvailable, E::NotCoordinator] {
            let FetchCode::Group(level) = fetch_group_code(c(e)) else {
                panic!()
            };
            assert_eq!(
                fetch_group_error(level),
                (
                    Ok(RetryCause::Broker(e)),
                    Some(MembershipAction::MarkCoordinatorUnknown)
                )
            );
        }
    }

    #[test]
    fn fetch_load_in_progress_retries() {
        let FetchCode::Group(level) = fetch_group_code(c(E::CoordinatorLoadInProgress)) else {
            panic!()
        };
        assert_eq!(
            fetch_group_error(level),
            (Ok(RetryCause::Broker(E::CoordinatorLoadInProgress)), None)
        );
    }

    #[test]
    fn fetch_group_authorization_is_fatal_and_other_group_errors_too() {
        for e in [E::GroupAuthorizationFailed, E::InvalidRequest] {
            let FetchCode::Group(level) = fetch_group_code(c(e)) else {
                panic!()
            };
            assert_eq!(fetch_group_error(level), (Err(e), None));
        }
    }

    #[test]
    fn fetch_partition_rows() {
        assert_eq!(
            fetch_partition_code(c(E::UnstableOffsetCommit)),
            FetchCode::Unstable
        );
        assert_eq!(
            fetch_partition_code(c(E::UnknownTopicOrPartition)),
            FetchCode::Partition(PartitionFetchError::UnknownTopicOrPartition)
        );
        assert_eq!(
            fetch_partition_code(c(E::TopicAuthorizationFailed)),
            FetchCode::Partition(PartitionFetchError::TopicAuthorizationFailed)
        );
        // v1 has no top-level error: a coordinator error on a partition is group-level.
        assert_eq!(
            fetch_partition_code(c(E::NotCoordinator)),
            FetchCode::Group(GroupLevel::CoordinatorMoved(E::NotCoordinator))
        );
        assert_eq!(fetch_partition_code(0), FetchCode::Ok);
    }
}
