//! Value types of the offsets component: what [`super::Offsets`] takes from
//! the group engine (a [`MembershipView`]), what the application commits
//! ([`CommittedOffset`]), and what it hands back ([`OffsetRequest`],
//! [`OffsetEvent`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetFetchRequest};

use crate::TopicPartition;

use super::error::{CommitError, FetchError, PartitionFetchError};

/// An offset to commit, or one read back by OffsetFetch.
///
/// `offset` is the position to resume from: the offset of the *next* record
/// to consume (last processed + 1), as in every Kafka client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Next offset to consume; never negative (`-1` on the wire means "none"
    /// and is reported as `None` by a fetch).
    pub offset: i64,
    /// Leader epoch of the last consumed record (OffsetCommit v6+,
    /// OffsetFetch v5+); `None` is sent as `-1`.
    pub leader_epoch: Option<i32>,
    /// Application metadata stored with the offset; `None` is sent as null.
    pub metadata: Option<String>,
}

impl CommittedOffset {
    /// `offset` with no leader epoch and no metadata.
    pub fn new(offset: i64) -> Self {
        Self {
            offset,
            leader_epoch: None,
            metadata: None,
        }
    }

    /// Set the leader epoch.
    pub fn with_leader_epoch(mut self, epoch: i32) -> Self {
        self.leader_epoch = Some(epoch);
        self
    }

    /// Set the metadata string.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }
}

impl From<i64> for CommittedOffset {
    fn from(offset: i64) -> Self {
        Self::new(offset)
    }
}

/// Identifies one [`super::Offsets::commit`] (or one automatic commit) until
/// its [`OffsetEvent::CommitDone`]. Every id gets exactly one `CommitDone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub(crate) u64);

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "commit#{}", self.0)
    }
}

/// Identifies one [`super::Offsets::fetch`] until its
/// [`OffsetEvent::FetchDone`]. Every id gets exactly one `FetchDone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FetchId(pub(crate) u64);

impl fmt::Display for FetchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fetch#{}", self.0)
    }
}

/// Where the member stands in the rebalance protocol, as far as commits care.
///
/// Maps onto Java's `MemberState` (UNJOINED, PREPARING_REBALANCE,
/// COMPLETING_REBALANCE, STABLE) with the revoke gate of kgroup added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebalancePhase {
    /// Not a member: before the first join, after a reset, after leaving.
    /// Nothing is owned; commits are refused.
    Unjoined,
    /// Member of the view's generation, no rebalance under way.
    Stable,
    /// A `Revoked` event awaits `ack_revoked()`. The revoked partitions are
    /// still owned in the view's generation (eager: the old one, before the
    /// JoinGroup; cooperative: the new one, after the SyncGroup), so commits
    /// for them are sent now, and the group waits for them
    /// ([`super::Offsets::blocking_rebalance`]).
    Revoking,
    /// Eager rebalance under way (JoinGroup/SyncGroup), everything revoked:
    /// commits fail fast with `RebalanceInProgress`, as Java does.
    EagerJoining,
    /// Cooperative rebalance under way (JoinGroup/SyncGroup) while partitions
    /// are still owned: commits for them are accepted and held until the
    /// rebalance completes, then sent with the generation current at that
    /// moment (never overlapping Join→Sync, PROTOCOL.md §9.5).
    CooperativeJoining,
}

impl RebalancePhase {
    /// True while a JoinGroup/SyncGroup exchange is under way (Java's
    /// PREPARING_REBALANCE / COMPLETING_REBALANCE).
    pub fn is_joining(self) -> bool {
        matches!(
            self,
            RebalancePhase::EagerJoining | RebalancePhase::CooperativeJoining
        )
    }
}

/// The group engine's membership, as the offsets component needs it.
///
/// The group engine hands a fresh snapshot to
/// [`super::Offsets::handle_membership`] on **every** change of generation,
/// member id, owned set or phase. Partitions that leave `owned` (revoked,
/// lost) lose their marks and their queued commits: that is how a commit made
/// in one ownership can never be sent in a later one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    /// Generation of the group this member is in (`-1` when not a member).
    pub generation_id: i32,
    /// Member id given by the coordinator (empty when not a member).
    pub member_id: String,
    /// `group.instance.id` of a static member (sent with OffsetCommit v7+).
    pub group_instance_id: Option<String>,
    /// Partitions owned now.
    pub owned: BTreeSet<TopicPartition>,
    /// Rebalance phase.
    pub phase: RebalancePhase,
}

impl MembershipView {
    /// Not a member, nothing owned.
    pub fn unjoined() -> Self {
        Self {
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            owned: BTreeSet::new(),
            phase: RebalancePhase::Unjoined,
        }
    }

    /// A member of `generation_id` as `member_id` owning `owned`, in `phase`.
    pub fn member(
        generation_id: i32,
        member_id: impl Into<String>,
        owned: impl IntoIterator<Item = TopicPartition>,
        phase: RebalancePhase,
    ) -> Self {
        Self {
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            owned: owned.into_iter().collect(),
            phase,
        }
    }

    /// Set the static instance id.
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Whether this view describes a member with a usable identity.
    pub fn is_member(&self) -> bool {
        self.phase != RebalancePhase::Unjoined
            && self.generation_id >= 0
            && !self.member_id.is_empty()
    }

    /// Whether an OffsetCommit/OffsetFetch may go out now: a member, with a
    /// settled generation (no Join→Sync exchange under way).
    pub fn can_send(&self) -> bool {
        self.is_member()
            && matches!(
                self.phase,
                RebalancePhase::Stable | RebalancePhase::Revoking
            )
    }

    /// Whether `tp` is owned now (never while unjoined).
    pub fn owns(&self, tp: &TopicPartition) -> bool {
        self.is_member() && self.owned.contains(tp)
    }

    /// Same identity (generation and member id) as `other`: Java's
    /// `generationUnchanged()`.
    pub(crate) fn same_generation(&self, generation_id: i32, member_id: &str) -> bool {
        self.generation_id == generation_id && self.member_id == member_id
    }
}

/// OffsetCommit/OffsetFetch versions negotiated with the current coordinator
/// (`min(ours, broker's)`, PROTOCOL.md §0.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetVersions {
    /// OffsetCommit version (2..=9 with kafka-protocol 0.18).
    pub commit: i16,
    /// OffsetFetch version (1..=9 with kafka-protocol 0.18).
    pub fetch: i16,
}

impl OffsetVersions {
    /// Highest versions kgroup speaks (kafka-protocol 0.18: OffsetCommit 2–9,
    /// OffsetFetch 1–9; v10 uses topic ids and is not spoken).
    pub const MAX: OffsetVersions = OffsetVersions {
        commit: 9,
        fetch: 9,
    };
    /// Lowest versions kgroup speaks (what Apache Kafka 4.x still serves).
    pub const MIN: OffsetVersions = OffsetVersions {
        commit: 2,
        fetch: 1,
    };
}

/// Which of the two APIs a request or an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetApi {
    /// OffsetCommit (key 8).
    Commit,
    /// OffsetFetch (key 9).
    Fetch,
}

impl OffsetApi {
    /// The Kafka API key.
    pub fn api_key(self) -> ApiKey {
        match self {
            OffsetApi::Commit => ApiKey::OffsetCommit,
            OffsetApi::Fetch => ApiKey::OffsetFetch,
        }
    }
}

impl fmt::Display for OffsetApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OffsetApi::Commit => "OffsetCommit",
            OffsetApi::Fetch => "OffsetFetch",
        })
    }
}

/// Returned with every request; hand it back with its response or failure.
///
/// Carries the generation the request was sent with (PROTOCOL.md §0.3), so
/// traces and the group engine can see which membership it belongs to. A tag
/// that no longer matches the request in flight (superseded, or abandoned
/// when the coordinator was lost) makes its response ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestTag {
    pub(crate) seq: u64,
    /// API of the request.
    pub api: OffsetApi,
    /// Generation the request was sent with.
    pub generation: i32,
}

/// The body of a request, built with kafka-protocol's message types.
#[derive(Clone, Debug, PartialEq)]
pub enum OffsetRequestBody {
    /// An OffsetCommit request.
    Commit(OffsetCommitRequest),
    /// An OffsetFetch request.
    Fetch(OffsetFetchRequest),
}

/// A request for the group engine to encode (at `version`) and send to the
/// coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetRequest {
    /// Give this back with the response.
    pub tag: RequestTag,
    /// Negotiated version to encode with.
    pub version: i16,
    /// The message.
    pub body: OffsetRequestBody,
}

impl OffsetRequest {
    /// The Kafka API key of the body.
    pub fn api_key(&self) -> ApiKey {
        self.tag.api.api_key()
    }
}

/// Why a request got no decodable response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestFailure {
    /// The connection to the coordinator broke.
    Disconnected,
    /// No response within the request timeout.
    TimedOut,
    /// The response frame could not be decoded.
    Malformed(String),
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestFailure::Disconnected => f.write_str("disconnected"),
            RequestFailure::TimedOut => f.write_str("request timed out"),
            RequestFailure::Malformed(why) => write!(f, "malformed response: {why}"),
        }
    }
}

/// Whether a commit came from [`super::Offsets::commit`] or from the marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitKind {
    /// An explicit `commit()`.
    Manual,
    /// Marked offsets (auto-commit interval, before a revoke, on close, or
    /// [`super::Offsets::flush_marks`]).
    Marked,
}

/// What an OffsetCommit/OffsetFetch error means for the membership, for the
/// group engine to act on (PROTOCOL.md §2.7, §2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipAction {
    /// `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`:
    /// forget the coordinator and rediscover it (Java `markCoordinatorUnknown`).
    MarkCoordinatorUnknown,
    /// `REBALANCE_IN_PROGRESS`: rejoin, keeping member id and generation
    /// (Java `requestRejoin`).
    RequestRejoin,
    /// `ILLEGAL_GENERATION` for the current generation: generation reset,
    /// member id kept, owned partitions lost (KAFKA-13419).
    ResetGeneration,
    /// `UNKNOWN_MEMBER_ID` for the current generation: hard reset, partitions lost.
    HardReset,
    /// `FENCED_INSTANCE_ID` for the current generation: another process holds
    /// this `group.instance.id`; fatal for this member (Java raises
    /// `FencedInstanceIdException` on the next call).
    Fenced,
}

/// Per-partition results of a fetch: the committed offset (`None` = nothing
/// committed: apply the reset policy) or why it could not be read.
pub type FetchedOffsets =
    BTreeMap<TopicPartition, Result<Option<CommittedOffset>, PartitionFetchError>>;

/// What the offsets component reports, drained with
/// [`super::Offsets::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum OffsetEvent {
    /// A commit finished: once per [`CommitId`].
    CommitDone {
        /// Which commit.
        id: CommitId,
        /// Manual or from the marks.
        kind: CommitKind,
        /// What the broker accepted: each committed partition with the offset
        /// written, sorted by partition. Every partition of the commit when
        /// `result` is `Ok`; after a failure, those accepted before it (a
        /// partly failed commit lists the same partitions in
        /// [`CommitError::Partitions`]). A commit of the marks reports here
        /// the marks it carried, read when it was sent.
        committed: Vec<(TopicPartition, i64)>,
        /// `Ok` when every partition was committed.
        result: Result<(), CommitError>,
    },
    /// A fetch finished: once per [`FetchId`].
    FetchDone {
        /// Which fetch.
        id: FetchId,
        /// Generation the fetch was made for; a fetch is never completed for
        /// another generation (it fails with [`FetchError::Superseded`]).
        generation: i32,
        /// Per-partition offsets, or why the whole fetch failed.
        result: Result<FetchedOffsets, FetchError>,
    },
    /// A response error that the membership must act on.
    Membership {
        /// What to do.
        action: MembershipAction,
        /// Which API reported it.
        api: OffsetApi,
        /// The broker's error.
        error: ResponseError,
    },
}
