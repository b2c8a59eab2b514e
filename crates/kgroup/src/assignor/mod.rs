//! Partition assignment: the [`Assignor`] trait and the built-in assignors.
//!
//! The group leader decodes every member's subscription, gathers topic
//! metadata for the union of subscribed topics and hands both to the assignor
//! the group selected. Assignors are pure functions of their input: the same
//! input gives the same output on every platform (no hash-map iteration order,
//! no randomness), which the simulator and the conformance corpus rely on.

//!
//! Built-in assignors ([`builtin`] looks them up by protocol name):
//! - [`range::RangeAssignor`] and [`roundrobin::RoundRobinAssignor`]: exactly
//!   the Java client's results (including KIP-345 static-member ordering and
//!   the KIP-881 rack-aware range pass);
//! - [`sticky::StickyAssignor`] (eager) and
//!   [`sticky::CooperativeStickyAssignor`] (KIP-429): valid, balanced in
//!   Java's sense, sticky, built for a million partitions.
//!
//! All of them intern the input first (`prep`): topics and partitions become
//! `u32` indices, so the hot loops touch flat vectors, never strings or maps.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

mod compact;
mod prep;
pub mod range;
pub mod roundrobin;
pub mod sticky;
pub mod userdata;

use crate::TopicPartition;

pub use compact::{Builtin, CompactAssignment};

/// The rebalance protocol an assignor supports (KIP-429).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Stop-the-world: every member revokes everything before each rebalance.
    Eager,
    /// Incremental: members keep what they still own and revoke only what moves.
    Cooperative,
}

/// What the cluster says about one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicInfo {
    /// Number of partitions (0 is allowed and means nothing to assign).
    pub partitions: i32,
    /// For each partition, the racks of its replicas, when known (KIP-881).
    /// Either empty (unknown) or exactly `partitions` entries long.
    pub partition_racks: Vec<Vec<String>>,
}

/// Topic metadata for the union of the members' subscriptions, by topic name.
pub type ClusterMetadata = BTreeMap<String, TopicInfo>;

/// One member of the group, as the leader sees it in JoinGroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub instance_id: Option<String>,
    /// `client.rack` of the member (ConsumerProtocol subscription v3+).
    pub rack: Option<String>,
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
    /// Partitions the member says it owns (subscription v1+).
    pub owned: Vec<TopicPartition>,
    /// Generation in which it owned them (subscription v2+), if known.
    pub generation: Option<i32>,
    /// The assignor-specific user data the member sent.
    pub user_data: Option<Bytes>,
}

/// The partitions (and optional user data) the leader gives one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAssignment {
    /// Assigned partitions, sorted.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific user data for the member.
    pub user_data: Option<Bytes>,
}

/// The assignor's result: one entry for every member of the input.
pub type GroupAssignment = BTreeMap<String, MemberAssignment>;

/// What a member remembers of its last assignment, for the user data of its
/// next subscription. Kept apart from what it owns *now*: after an eager
/// revoke a member owns nothing, yet the sticky assignor still wants the
/// previous assignment and its generation (as the Java `StickyAssignor` does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviousAssignment {
    /// Partitions of the last completed assignment.
    pub partitions: Vec<TopicPartition>,
    /// Generation of that assignment, if any.
    pub generation: Option<i32>,
}

/// Why an assignment could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// Two members of the input share a member id.
    #[error("duplicate member id {0:?} in the assignor input")]
    DuplicateMember(String),
    /// The topic metadata is inconsistent (e.g. racks for a different partition count).
    #[error("invalid topic metadata for {topic:?}: {reason}")]
    InvalidMetadata {
        /// Topic concerned.
        topic: String,
        /// What is wrong.
        reason: String,
    },
}

/// A partition assignment strategy, as named in JoinGroup's protocol list.
pub trait Assignor: Send + Sync + std::fmt::Debug {
    /// Protocol name sent in JoinGroup (`"range"`, `"cooperative-sticky"`, ...).
    fn name(&self) -> &str;

    /// Rebalance protocols this assignor supports; the first is preferred.
    fn supported_protocols(&self) -> &[RebalanceProtocol];

    /// User data for this member's subscription, from its previous assignment.
    fn subscription_user_data(&self, previous: &PreviousAssignment) -> Option<Bytes> {
        let _ = previous;
        None
    }

    /// Assign the partitions of `metadata` to `members`.
    ///
    /// Topics a member subscribes to that are missing from `metadata` are
    /// ignored. The result has an entry for every member.
    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError>;
}

/// The built-in assignor registered under `name` (`"range"`, `"roundrobin"`,
/// `"sticky"`, `"cooperative-sticky"`), or `None`.
pub fn builtin(name: &str) -> Option<Arc<dyn Assignor>> {
    match name {
        "range" => Some(Arc::new(range::RangeAssignor)),
        "roundrobin" => Some(Arc::new(roundrobin::RoundRobinAssignor)),
        "sticky" => Some(Arc::new(sticky::StickyAssignor)),
        "cooperative-sticky" => Some(Arc::new(sticky::CooperativeStickyAssignor)),
        _ => None,
    }
}

/// Topics some member subscribes to that `metadata` does not know. Assignors
/// ignore them (as the Java client does); the leader reports them with this.
pub fn missing_topics(
    metadata: &ClusterMetadata,
    members: &[MemberSubscription],
) -> BTreeSet<String> {
    members
        .iter()
        .flat_map(|m| m.topics.iter())
        .filter(|t| !metadata.contains_key(t.as_str()))
        .cloned()
        .collect()
}

/// Java's `String.compareTo`: lexicographic over UTF-16 code units (differs
/// from Rust's byte order only between supplementary and U+E000..U+FFFF chars).
pub(crate) fn java_str_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `AbstractPartitionAssignor.MemberInfo` order (KIP-345): members with
/// a `group.instance.id` first, by instance id; then the others by member id.
/// Returns each member's rank (ties, impossible for distinct member ids with
/// distinct instance ids, fall back to member id).
pub(crate) fn java_member_order(members: &[&MemberSubscription]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..members.len() as u32).collect();
    let key = |i: u32| members.get(i as usize).copied();
    order.sort_by(|&a, &b| match (key(a), key(b)) {
        (Some(ma), Some(mb)) => {
            let by_instance = match (&ma.instance_id, &mb.instance_id) {
                (Some(x), Some(y)) => java_str_cmp(x, y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            by_instance.then_with(|| java_str_cmp(&ma.member_id, &mb.member_id))
        }
        _ => Ordering::Equal,
    });
    let mut rank = vec![0u32; members.len()];
    for (r, &m) in order.iter().enumerate() {
        if let Some(slot) = rank.get_mut(m as usize) {
            *slot = r as u32;
        }
    }
    rank
}
