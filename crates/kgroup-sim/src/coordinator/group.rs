//! One classic group as the coordinator holds it: members, generation, the
//! selected protocol and the group state with the data valid in each state.
//!
//! Mirrors Apache Kafka's `ClassicGroup` / `ClassicGroupMember`
//! (group-coordinator/src/main/java/org/apache/kafka/coordinator/group/classic/).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use super::ReplyTo;
use crate::clock::SimTime;

/// The classic group states (`ClassicGroupState`), each carrying the data
/// that only exists in that state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members; committed offsets may still exist.
    Empty,
    /// Waiting for members to (re)join; ends at `deadline` or when every
    /// known member has joined.
    PreparingRebalance {
        /// When the join phase ends regardless of absentees.
        deadline: SimTime,
        /// Set for the first rebalance of an empty group
        /// (`group.initial.rebalance.delay.ms`, Kafka's `InitialDelayedJoin`).
        initial_delay: Option<InitialDelay>,
    },
    /// Join done, waiting for the leader's SyncGroup.
    CompletingRebalance {
        /// Members that have not sent SyncGroup for this generation.
        pending_sync: BTreeSet<String>,
        /// When members still in `pending_sync` are removed (`expirePendingSync`).
        sync_deadline: SimTime,
    },
    /// Assignment distributed; heartbeats keep members alive.
    Stable {
        /// Members that still have not sent SyncGroup for this generation.
        pending_sync: BTreeSet<String>,
        /// When members still in `pending_sync` are removed.
        sync_deadline: SimTime,
    },
    /// The group was unloaded or deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, for traces and DescribeGroups-like output.
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance { .. } => "PreparingRebalance",
            GroupState::CompletingRebalance { .. } => "CompletingRebalance",
            GroupState::Stable { .. } => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The extension logic of Kafka's `InitialDelayedJoin`: while new members keep
/// arriving, the join phase is extended by the delay, up to the rebalance
/// timeout in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialDelay {
    /// The configured delay.
    pub delay: Duration,
    /// What is left of the rebalance timeout for further extensions.
    pub remaining: Duration,
    /// A member was added since the current delay started.
    pub new_member_added: bool,
}

/// One member of a classic group (`ClassicGroupMember`).
#[derive(Clone, Debug)]
pub struct Member {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Session timeout sent in JoinGroup.
    pub session_timeout: Duration,
    /// Rebalance timeout sent in JoinGroup.
    pub rebalance_timeout: Duration,
    /// Protocols (assignor names with subscription metadata), in the member's
    /// order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment from the last completed SyncGroup.
    pub assignment: Bytes,
    /// A parked JoinGroup waiting for the join phase to end.
    pub awaiting_join: Option<ReplyTo>,
    /// A parked SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<ReplyTo>,
    /// When the member is removed unless it is heard from.
    pub session_deadline: SimTime,
    /// Order in which members were added, for deterministic leader choice.
    pub join_seq: u64,
}

impl Member {
    /// The metadata this member sent for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// True when `protocols` are exactly the ones this member last sent
    /// (`ClassicGroupMember.matches`): a follower rejoining with identical
    /// metadata does not start a rebalance.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's vote among `candidates` (`ClassicGroupMember.vote`): its
    /// first protocol, in its own preference order, that every member supports.
    pub fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }
}

/// A classic consumer group.
#[derive(Clone, Debug)]
pub struct ClassicGroup {
    /// Group id.
    pub group_id: String,
    /// Current state.
    pub state: GroupState,
    /// Generation; bumped at the end of every join phase.
    pub generation: i32,
    /// Protocol type of the group (`"consumer"`), set by the first member.
    pub protocol_type: Option<String>,
    /// Protocol (assignor) selected for the current generation.
    pub protocol_name: Option<String>,
    /// Leader of the current generation.
    pub leader: Option<String>,
    /// Members by member id.
    pub members: BTreeMap<String, Member>,
    /// Static members: instance id to current member id.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED` (KIP-394) that have not
    /// joined yet, with the time they expire.
    pub pending_members: BTreeMap<String, SimTime>,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: String) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
        }
    }

    /// Whether the group may start a rebalance from its current state
    /// (`ClassicGroup.canRebalance`).
    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable { .. } | GroupState::CompletingRebalance { .. } | GroupState::Empty
        )
    }

    /// All known members have sent JoinGroup and no KIP-394 member id is
    /// outstanding (`ClassicGroup.hasAllMembersJoined`).
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Protocols every member supports.
    pub fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in iter {
            set.retain(|name| m.protocols.iter().any(|(n, _)| n == name));
        }
        set
    }

    /// Whether a member with `protocol_type` and `protocols` may join
    /// (`ClassicGroup.supportsProtocols`): an empty group takes any non-empty
    /// type and list; otherwise the type must match and at least one protocol
    /// must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if matches!(self.state, GroupState::Empty) || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols
            .iter()
            .any(|(n, _)| candidates.contains(n.as_str()))
    }

    /// Select the protocol for the next generation (`ClassicGroup.selectProtocol`):
    /// each member votes for its preferred candidate; most votes wins. Kafka
    /// breaks ties arbitrarily; here the smallest name wins, so runs replay.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(v) = m.vote(&candidates) {
                *votes.entry(v).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    /// The largest rebalance timeout among members (how long a join phase may last).
    pub fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Whether `member_id` leads the current generation.
    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Elect a new leader among members, preferring one that has joined
    /// (`maybeElectNewJoinedLeader`), in join order.
    pub fn elect_leader(&mut self) {
        let joined = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .min_by_key(|m| m.join_seq)
            .or_else(|| self.members.values().min_by_key(|m| m.join_seq))
            .map(|m| m.member_id.clone());
        self.leader = joined;
    }

    /// The instance id check shared by every group API
    /// (`ClassicGroup.validateMember`): `Some(error)` when the request must be
    /// refused with `FENCED_INSTANCE_ID` or `UNKNOWN_MEMBER_ID`.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Some(super::FENCED_INSTANCE_ID),
                Some(_) => {}
                None => return Some(super::UNKNOWN_MEMBER_ID),
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(super::UNKNOWN_MEMBER_ID);
        }
        None
    }
}
