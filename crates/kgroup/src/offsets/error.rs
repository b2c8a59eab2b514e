//! Errors of the offsets component, each classified as an [`ErrorClass`].
//!
//! Three kinds: *refusals* (a command rejected locally, nothing sent),
//! *results* (a commit or fetch that was sent, or could not be, and what the
//! application should do), and *response violations* (a broker answered
//! something that cannot be a valid answer to what was asked).

use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::{ErrorClass, TopicPartition};

/// A `commit()` or `mark_processed()` rejected locally: nothing was sent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CommitRefused {
    /// The member is not in the group (never joined, reset, or left). Java:
    /// `CommitFailedException` while UNJOINED.
    #[error("group {group}: cannot commit {partition}: not a member of the group")]
    NotMember {
        /// Group id.
        group: String,
        /// First partition of the commit.
        partition: TopicPartition,
    },
    /// An eager rebalance is under way: everything was revoked. Retry after
    /// the next `Assigned` for partitions still owned (Java:
    /// `RebalanceInProgressException`, fail fast).
    #[error("group {group}: cannot commit {partition}: eager rebalance in progress")]
    RebalanceInProgress {
        /// Group id.
        group: String,
        /// First partition of the commit.
        partition: TopicPartition,
    },
    /// The partition is not owned by this member in the current generation.
    #[error("group {group}: member {member} generation {generation} does not own {partition}")]
    NotOwned {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// Current generation.
        generation: i32,
        /// The partition.
        partition: TopicPartition,
    },
    /// Offsets are never negative (Java `OffsetAndMetadata` rejects them too).
    #[error("group {group}: invalid offset {offset} for {partition}")]
    InvalidOffset {
        /// Group id.
        group: String,
        /// The partition.
        partition: TopicPartition,
        /// The offset given.
        offset: i64,
    },
    /// The same partition appears twice in one commit.
    #[error("group {group}: {partition} appears twice in one commit")]
    DuplicatePartition {
        /// Group id.
        group: String,
        /// The partition.
        partition: TopicPartition,
    },
    /// An empty commit.
    #[error("group {group}: nothing to commit")]
    Empty {
        /// Group id.
        group: String,
    },
    /// `close()` was called.
    #[error("group {group}: offsets component closed")]
    Closed {
        /// Group id.
        group: String,
    },
}

impl CommitRefused {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            CommitRefused::RebalanceInProgress { .. } => ErrorClass::Rejoin,
            CommitRefused::NotMember { .. } | CommitRefused::NotOwned { .. } => ErrorClass::Rejoin,
            _ => ErrorClass::Fatal,
        }
    }
}

/// A `fetch()` rejected locally.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FetchRefused {
    /// Not a member of the group.
    #[error("group {group}: cannot fetch offsets: not a member of the group")]
    NotMember {
        /// Group id.
        group: String,
    },
    /// Fetch only what is owned.
    #[error("group {group}: cannot fetch offsets of {partition}: not owned")]
    NotOwned {
        /// Group id.
        group: String,
        /// The partition.
        partition: TopicPartition,
    },
    /// An empty fetch.
    #[error("group {group}: nothing to fetch")]
    Empty {
        /// Group id.
        group: String,
    },
    /// `close()` was called.
    #[error("group {group}: offsets component closed")]
    Closed {
        /// Group id.
        group: String,
    },
}

/// Why a retriable failure happened (the last one, when retries ran out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryCause {
    /// The broker answered a retriable error (coordinator moved, not
    /// available, loading, request timed out on the broker).
    Broker(ResponseError),
    /// The request got no response (disconnect, timeout, undecodable frame).
    Transport(String),
    /// No coordinator was known before the deadline.
    NoCoordinator,
}

impl std::fmt::Display for RetryCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryCause::Broker(e) => write!(f, "broker error {e} ({})", e.code()),
            RetryCause::Transport(why) => write!(f, "transport: {why}"),
            RetryCause::NoCoordinator => f.write_str("no coordinator"),
        }
    }
}

/// Why a commit is stale: the partitions moved, do not retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleCause {
    /// `ILLEGAL_GENERATION`.
    IllegalGeneration,
    /// `UNKNOWN_MEMBER_ID`.
    UnknownMemberId,
    /// `FENCED_INSTANCE_ID`: another process uses this `group.instance.id`.
    FencedInstanceId,
    /// The partitions left this member's ownership (revoked or lost) before
    /// the commit could be sent.
    NoLongerOwned,
}

/// A commit's outcome when it is not `Ok`. The variants are the result
/// classes an application acts on (docs/offsets.md):
///
/// | variant | do |
/// |---|---|
/// | `Retriable` | retried internally until the deadline already: retry later or rely on the next commit |
/// | `RebalanceInProgress` | finish the rebalance, then commit what is still owned |
/// | `Stale` | the partitions moved: do not retry, the new owner re-processes |
/// | `Fatal` | fix permissions or configuration |
/// | `Partitions` | per partition as above |
/// | `InvalidResponse` | broker bug: treat as retriable, nothing is known to be committed |
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CommitError {
    /// Coordinator moved, unavailable, loading or timed out, and the commit
    /// deadline passed while retrying.
    #[error("group {group}: OffsetCommit failed after retries: {cause}")]
    Retriable {
        /// Group id.
        group: String,
        /// The last failure.
        cause: RetryCause,
    },
    /// The group is rebalancing: commit again, after the rebalance, what is
    /// still owned.
    #[error("group {group}: OffsetCommit: rebalance in progress")]
    RebalanceInProgress {
        /// Group id.
        group: String,
    },
    /// Ownership moved: do not retry.
    #[error(
        "group {group}: OffsetCommit by member {member} generation {generation} is stale ({cause:?})"
    )]
    Stale {
        /// Group id.
        group: String,
        /// Member id the commit was made (or sent) as.
        member: String,
        /// Generation the commit was made (or sent) in.
        generation: i32,
        /// Why.
        cause: StaleCause,
    },
    /// Not recoverable by retrying (authorization, unsupported version,
    /// unexpected error code).
    #[error("group {group}: OffsetCommit failed: {error} ({})", error.code())]
    Fatal {
        /// Group id.
        group: String,
        /// The broker's error (or `UnsupportedVersion` found locally).
        error: ResponseError,
    },
    /// Some partitions were committed, others not.
    #[error("group {group}: OffsetCommit failed for {} partition(s)", failed.len())]
    Partitions {
        /// Group id.
        group: String,
        /// Committed partitions, sorted.
        committed: Vec<TopicPartition>,
        /// Failed partitions with their error, sorted.
        failed: Vec<(TopicPartition, PartitionCommitError)>,
    },
    /// The response does not answer the request.
    #[error("group {group}: invalid OffsetCommit response: {violation}")]
    InvalidResponse {
        /// Group id.
        group: String,
        /// What was wrong.
        violation: ResponseViolation,
    },
    /// `close()` completed before the commit could be sent.
    #[error("group {group}: OffsetCommit abandoned: closed")]
    Closed {
        /// Group id.
        group: String,
    },
}

impl CommitError {
    /// What to do about it, in the crate-wide vocabulary.
    pub fn class(&self) -> ErrorClass {
        match self {
            CommitError::Retriable { .. } | CommitError::InvalidResponse { .. } => {
                ErrorClass::Retriable
            }
            CommitError::RebalanceInProgress { .. } => ErrorClass::Rejoin,
            CommitError::Stale {
                cause: StaleCause::FencedInstanceId,
                ..
            } => ErrorClass::Fenced,
            CommitError::Stale { .. } => ErrorClass::Rejoin,
            CommitError::Fatal { .. } | CommitError::Closed { .. } => ErrorClass::Fatal,
            CommitError::Partitions { failed, .. } => failed
                .iter()
                .map(|(_, e)| e.class())
                .max()
                .unwrap_or(ErrorClass::Retriable),
        }
    }
}

/// Why one partition of a commit failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PartitionCommitError {
    /// `OFFSET_METADATA_TOO_LARGE` (12): shorten the metadata.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// `INVALID_COMMIT_OFFSET_SIZE` (28).
    #[error("invalid commit offset size")]
    InvalidCommitOffsetSize,
    /// `TOPIC_AUTHORIZATION_FAILED` (29).
    #[error("topic authorization failed")]
    TopicAuthorizationFailed,
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3), still failing at the deadline.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The partition left this member before the commit was sent.
    #[error("no longer owned")]
    NoLongerOwned,
    /// The response had no entry for the partition: unknown whether it was
    /// committed.
    #[error("missing from the response")]
    MissingFromResponse,
    /// The deadline passed before the coordinator accepted it.
    #[error("not committed before the deadline")]
    NotCommitted,
    /// Any other error code.
    #[error("unexpected error {0}")]
    Unexpected(ResponseError),
}

impl PartitionCommitError {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            PartitionCommitError::UnknownTopicOrPartition
            | PartitionCommitError::MissingFromResponse
            | PartitionCommitError::NotCommitted => ErrorClass::Retriable,
            PartitionCommitError::NoLongerOwned => ErrorClass::Rejoin,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Why a whole fetch failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FetchError {
    /// Retried until the deadline.
    #[error("group {group}: OffsetFetch failed after retries: {cause}")]
    Retriable {
        /// Group id.
        group: String,
        /// The last failure.
        cause: RetryCause,
    },
    /// The generation the fetch was for is over (or the partitions left): ask
    /// again for the new assignment.
    #[error("group {group}: OffsetFetch for generation {generation} superseded")]
    Superseded {
        /// Group id.
        group: String,
        /// The generation the fetch was for.
        generation: i32,
    },
    /// Not recoverable by retrying (`GROUP_AUTHORIZATION_FAILED`, unexpected
    /// group-level error).
    #[error("group {group}: OffsetFetch failed: {error} ({})", error.code())]
    Fatal {
        /// Group id.
        group: String,
        /// The broker's error.
        error: ResponseError,
    },
    /// The response does not answer the request.
    #[error("group {group}: invalid OffsetFetch response: {violation}")]
    InvalidResponse {
        /// Group id.
        group: String,
        /// What was wrong.
        violation: ResponseViolation,
    },
    /// `close()` was called.
    #[error("group {group}: OffsetFetch abandoned: closed")]
    Closed {
        /// Group id.
        group: String,
    },
}

impl FetchError {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            FetchError::Retriable { .. } | FetchError::InvalidResponse { .. } => {
                ErrorClass::Retriable
            }
            FetchError::Superseded { .. } => ErrorClass::Rejoin,
            FetchError::Fatal { .. } | FetchError::Closed { .. } => ErrorClass::Fatal,
        }
    }
}

/// Why one partition's committed offset could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PartitionFetchError {
    /// `UNKNOWN_TOPIC_OR_PARTITION` (Java: "does not exist").
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// `TOPIC_AUTHORIZATION_FAILED`.
    #[error("topic authorization failed")]
    TopicAuthorizationFailed,
    /// `UNSTABLE_OFFSET_COMMIT` (88) still reported at the deadline: a
    /// transactional commit is pending.
    #[error("unstable offset commit (pending transaction)")]
    Unstable,
    /// The broker returned an offset below -1.
    #[error("invalid committed offset {0}")]
    InvalidOffset(i64),
    /// The metadata exceeds the configured bound.
    #[error("committed metadata of {len} bytes exceeds the bound of {max}")]
    MetadataTooLarge {
        /// Its length.
        len: usize,
        /// The bound ([`super::OffsetsConfig::max_metadata_bytes`]).
        max: usize,
    },
    /// The response had no entry for the partition.
    #[error("missing from the response")]
    MissingFromResponse,
    /// Any other error code.
    #[error("unexpected error {0}")]
    Unexpected(ResponseError),
}

/// A response that cannot be an answer to the request sent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ResponseViolation {
    /// A partition that was not in the request.
    #[error("{0} was never asked for")]
    Unrequested(TopicPartition),
    /// A partition listed twice.
    #[error("{0} appears twice")]
    Duplicate(TopicPartition),
    /// OffsetFetch v8+: no entry (or several) for our group.
    #[error("{count} group entries for group {group}")]
    GroupEntries {
        /// Our group id.
        group: String,
        /// How many entries named it.
        count: usize,
    },
}

/// An invalid [`super::OffsetsConfig`] or version.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum OffsetsConfigError {
    /// `group.id` is empty.
    #[error("group id must not be empty")]
    EmptyGroupId,
    /// A duration that must be positive is zero.
    #[error("{name} must be greater than zero")]
    ZeroDuration {
        /// The setting.
        name: &'static str,
    },
    /// `retry_backoff` above `retry_backoff_max`.
    #[error("retry_backoff ({backoff_ms} ms) must not exceed retry_backoff_max ({max_ms} ms)")]
    BackoffAboveMax {
        /// The initial backoff.
        backoff_ms: u128,
        /// The cap.
        max_ms: u128,
    },
    /// A negotiated version kgroup does not speak.
    #[error("{api} v{version} is not supported (kgroup speaks {min}..={max})")]
    UnsupportedVersion {
        /// Which API.
        api: &'static str,
        /// The version given.
        version: i16,
        /// Lowest spoken.
        min: i16,
        /// Highest spoken.
        max: i16,
    },
}
