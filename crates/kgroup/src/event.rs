//! What the engine tells the application: [`Event`]s, drained with
//! `Group::poll_event`.
//!
//! The vocabulary is the one of DESIGN.md ("Events and the application's
//! part in a rebalance"): `Assigned`, `Revoked`, `Lost`, `Fatal`, plus the
//! lifecycle markers an application or a trace wants to print (`Joined`,
//! `Rejoining`, `Left`) and non-fatal `Warning`s. Events are emitted in the
//! order things happened; partition lists are sorted.

use std::collections::BTreeMap;
use std::fmt;

use crate::TopicPartition;
use crate::membership::GroupError;
use crate::offsets::{CommittedOffset, FetchError, PartitionFetchError};

/// Something the application must know or act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// JoinGroup succeeded: this member is in `generation` under `member_id`.
    Joined {
        /// Member id given by the coordinator.
        member_id: String,
        /// Generation joined.
        generation: i32,
        /// Whether this member leads the rebalance (runs the assignor).
        leader: bool,
        /// Selected assignor (protocol name).
        protocol: String,
    },
    /// The assignment of `generation` is in force: `partitions` is everything
    /// this member owns now, `added` the part it did not own before.
    Assigned {
        /// Generation of the assignment.
        generation: i32,
        /// Member id the assignment is for.
        member_id: String,
        /// All partitions owned now, sorted.
        partitions: Vec<TopicPartition>,
        /// Newly owned partitions, sorted (a subset of `partitions`).
        added: Vec<TopicPartition>,
        /// The committed offset of every partition in `added`, read by an
        /// OffsetFetch before this event was emitted (Java's consumer
        /// fetches committed offsets before it fetches records). Exactly the
        /// keys of `added`; partitions kept from the previous assignment
        /// (cooperative) keep the position the application already has and
        /// are not fetched. With `fetch_committed_on_assign(false)` every
        /// entry is [`Committed::NotFetched`]. See `docs/offsets.md`.
        committed: BTreeMap<TopicPartition, Committed>,
    },
    /// Give these partitions up cleanly (commit, then stop). In
    /// [`crate::config::RevokeMode::Gated`] the rebalance waits for
    /// `Group::ack_revoked`.
    Revoked {
        /// Partitions to give up, sorted.
        partitions: Vec<TopicPartition>,
    },
    /// Ownership ended without a clean revoke: do not commit these.
    Lost {
        /// Partitions lost, sorted.
        partitions: Vec<TopicPartition>,
        /// Why.
        reason: LostReason,
    },
    /// A rebalance starts on this member's side: it is about to rejoin.
    Rejoining {
        /// Why.
        reason: RejoinReason,
    },
    /// `hold_rebalance` was overridden: the rebalance timeout was near, so the
    /// engine rejoins now to stay in the group.
    HoldExpired {
        /// Why the rebalance was wanted.
        reason: RejoinReason,
    },
    /// Something went wrong that the engine handled (a corrupt member
    /// subscription, an invalid leader assignment, a stale response): worth
    /// logging, no action needed.
    Warning(GroupError),
    /// The group cannot go on: fenced static instance, authorization,
    /// unsupported broker. Owned partitions were reported `Lost` first.
    Fatal(GroupError),
    /// The member left the group (`close`/`leave` completed).
    Left,
    /// A commit or an offset fetch finished (`CommitDone`, `FetchDone`),
    /// from the offsets component: see `docs/offsets.md`.
    Offsets(crate::offsets::OffsetEvent),
}

/// The committed offset of one newly assigned partition, as carried by
/// [`Event::Assigned`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// The group has a committed offset: resume from `offset` (the next
    /// record to consume), with its leader epoch and metadata.
    Offset(CommittedOffset),
    /// Nothing committed (the broker answered -1): apply the reset policy.
    None,
    /// The broker reported an error for this partition
    /// (`UNKNOWN_TOPIC_OR_PARTITION`, `TOPIC_AUTHORIZATION_FAILED`,
    /// `UNSTABLE_OFFSET_COMMIT` still pending at the fetch deadline, an
    /// invalid offset or oversized metadata, missing from the response).
    Error(PartitionFetchError),
    /// The whole OffsetFetch failed (retries exhausted at the fetch deadline,
    /// group authorization, invalid response, closing): the same error is
    /// reported for every partition of the fetch.
    FetchFailed(FetchError),
    /// No fetch was made: `fetch_committed_on_assign(false)`, or the
    /// partitions had to be revoked or lost before the fetch answered (the
    /// `Assigned` is then emitted first so that ownership never changes
    /// behind the application's back).
    NotFetched,
}

impl Committed {
    /// The offset to resume from, when one was committed.
    pub fn offset(&self) -> Option<i64> {
        match self {
            Committed::Offset(o) => Some(o.offset),
            _ => None,
        }
    }
}

/// Why partitions were lost rather than revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The coordinator no longer knows our member id (`UNKNOWN_MEMBER_ID`).
    UnknownMember,
    /// Our generation is stale (`ILLEGAL_GENERATION`).
    IllegalGeneration,
    /// Another member took our `group.instance.id` (`FENCED_INSTANCE_ID`).
    Fenced,
    /// No successful heartbeat within the session timeout.
    SessionExpired,
    /// `ack_revoked` came after the rebalance timeout.
    RevokeTimeout,
    /// A fatal error stopped the member.
    Fatal,
    /// The member left while a rebalance was in progress (Java's
    /// `onLeavePrepare` reports lost in that case).
    LeftDuringRebalance,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LostReason::UnknownMember => "unknown member id",
            LostReason::IllegalGeneration => "illegal generation",
            LostReason::Fenced => "fenced instance id",
            LostReason::SessionExpired => "session expired",
            LostReason::RevokeTimeout => "revocation acknowledged after the rebalance timeout",
            LostReason::Fatal => "fatal error",
            LostReason::LeftDuringRebalance => "left during a rebalance",
        })
    }
}

/// Why the member (re)joins; sent as the JoinGroup reason (v8+, KIP-800).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejoinReason {
    /// First join after `subscribe`.
    Initial,
    /// The coordinator answered `REBALANCE_IN_PROGRESS` (to this API).
    RebalanceInProgress(&'static str),
    /// The subscription changed.
    SubscriptionChanged,
    /// Partition counts of subscribed topics changed (leader's metadata watch).
    MetadataChanged,
    /// Cooperative: partitions were revoked; rejoin so they can move.
    CooperativeRevoke,
    /// Our identity was reset by an error (`UNKNOWN_MEMBER_ID`,
    /// `ILLEGAL_GENERATION`, local session expiry).
    Reset(LostReason),
    /// The coordinator asked for a member id first (KIP-394).
    MemberIdRequired,
    /// A retriable JoinGroup/SyncGroup failure (coordinator moved, timeout).
    Retry(&'static str),
    /// The group's protocol went from cooperative to eager (franz-go #1365).
    ProtocolDowngrade,
    /// The assignment did not match the subscription or could not be read.
    InvalidAssignment,
}

impl fmt::Display for RejoinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejoinReason::Initial => f.write_str("initial join"),
            RejoinReason::RebalanceInProgress(api) => write!(f, "rebalance in progress ({api})"),
            RejoinReason::SubscriptionChanged => f.write_str("subscription changed"),
            RejoinReason::MetadataChanged => f.write_str("partition count changed"),
            RejoinReason::CooperativeRevoke => f.write_str("partitions revoked (cooperative)"),
            RejoinReason::Reset(why) => write!(f, "member reset: {why}"),
            RejoinReason::MemberIdRequired => f.write_str("member id required"),
            RejoinReason::Retry(what) => write!(f, "retry: {what}"),
            RejoinReason::ProtocolDowngrade => f.write_str("protocol downgraded to eager"),
            RejoinReason::InvalidAssignment => f.write_str("invalid assignment"),
        }
    }
}
