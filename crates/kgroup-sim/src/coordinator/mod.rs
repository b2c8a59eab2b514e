//! An in-memory classic group coordinator that follows Apache Kafka's rules.
//!
//! It owns the group state machine of the classic protocol: JoinGroup (with
//! KIP-394 member-id-required, KIP-345 static membership and KIP-814
//! `SkipAssignment`), SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and
//! OffsetFetch, with session, rebalance and pending-sync timers and the
//! initial rebalance delay. The rules are those of Kafka's
//! `GroupMetadataManager` classic paths (`classicGroupJoin*`,
//! `classicGroupSync`, `classicGroupHeartbeat`, `classicGroupLeave`) and
//! `ClassicGroup.validateOffsetCommit`; comments name the method each rule
//! comes from.
//!
//! It takes typed requests and produces typed responses; [`crate::cluster`]
//! does the wire work. Responses may be deferred (a JoinGroup waits for the
//! join phase, a follower's SyncGroup for the leader), so every request
//! carries a [`ReplyTo`] and answers come out of [`GroupCoordinator::drain_replies`].
//! Time is virtual ([`SimTime`]); the coordinator reads no clock.

pub mod group;
pub mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kgroup::offsets::commit_response_for;

use crate::clock::SimTime;
use crate::rng::SimRng;
use group::{ClassicGroup, GroupState, InitialDelay, Member};
use store::{CommittedOffset, GroupRecord, GroupStore, MemberRecord};

// Kafka error codes (clients/src/main/java/org/apache/kafka/common/protocol/Errors.java).
/// `NONE`.
pub const NONE: i16 = 0;
/// `UNKNOWN_TOPIC_OR_PARTITION`.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// `COORDINATOR_LOAD_IN_PROGRESS`.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// `COORDINATOR_NOT_AVAILABLE`.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// `NOT_COORDINATOR`.
pub const NOT_COORDINATOR: i16 = 16;
/// `ILLEGAL_GENERATION`.
pub const ILLEGAL_GENERATION: i16 = 22;
/// `INCONSISTENT_GROUP_PROTOCOL`.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// `INVALID_GROUP_ID`.
pub const INVALID_GROUP_ID: i16 = 24;
/// `UNKNOWN_MEMBER_ID`.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// `INVALID_SESSION_TIMEOUT`.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// `REBALANCE_IN_PROGRESS`.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// `INVALID_REQUEST`.
pub const INVALID_REQUEST: i16 = 42;
/// `MEMBER_ID_REQUIRED`.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// `GROUP_MAX_SIZE_REACHED`.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// `FENCED_INSTANCE_ID`.
pub const FENCED_INSTANCE_ID: i16 = 82;

/// Where a response goes: the connection and request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo {
    /// Connection id, chosen by the broker layer.
    pub conn: u64,
    /// Correlation id of the request.
    pub correlation_id: i32,
    /// API version of the request, which the response is encoded at.
    pub version: i16,
}

/// A typed response of one of the group APIs.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyBody {
    /// JoinGroup response.
    Join(JoinGroupResponse),
    /// SyncGroup response.
    Sync(SyncGroupResponse),
    /// Heartbeat response.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup response.
    Leave(LeaveGroupResponse),
    /// OffsetCommit response.
    Commit(OffsetCommitResponse),
    /// OffsetFetch response.
    Fetch(OffsetFetchResponse),
}

/// A response ready to be sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Destination.
    pub to: ReplyTo,
    /// Body.
    pub body: ReplyBody,
}

/// Why the coordinator removed a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    /// No heartbeat within the session timeout.
    SessionExpired,
    /// Did not rejoin within the rebalance timeout.
    NotRejoined,
    /// Did not send SyncGroup within the rebalance timeout.
    NotSynced,
    /// Sent LeaveGroup.
    Left,
    /// A static member's instance id was taken over by a new member id.
    Replaced,
    /// A KIP-394 pending member id expired before it joined.
    PendingExpired,
}

/// Something the coordinator did, for the trace and the invariant checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordEvent {
    /// A member entered the group.
    MemberAdded {
        /// Member id.
        member_id: String,
        /// Static instance id.
        instance_id: Option<String>,
    },
    /// A member left the group (its session ended at the coordinator).
    MemberRemoved {
        /// Member id.
        member_id: String,
        /// Why.
        reason: RemovalReason,
    },
    /// The group started a join phase.
    RebalanceStarted {
        /// Generation the rebalance will replace.
        generation: i32,
    },
    /// A join phase ended with a new generation.
    GenerationStarted {
        /// New generation.
        generation: i32,
        /// Selected protocol, `None` for an empty group.
        protocol: Option<String>,
        /// Leader.
        leader: Option<String>,
        /// Members of the generation with the subscription metadata they sent
        /// for the selected protocol.
        members: Vec<(String, Bytes)>,
    },
    /// The leader's assignment was stored and distributed.
    AssignmentStored {
        /// Generation.
        generation: i32,
        /// Assignment bytes per member id.
        assignments: Vec<(String, Bytes)>,
    },
    /// An OffsetCommit was accepted.
    CommitAccepted {
        /// Member id sent (empty for a manual commit).
        member_id: String,
        /// Generation sent.
        generation: i32,
        /// Generation of the group when the commit was accepted.
        group_generation: i32,
        /// Offsets per topic and partition.
        offsets: Vec<(String, i32, i64)>,
    },
    /// An OffsetCommit was refused.
    CommitRejected {
        /// Member id sent.
        member_id: String,
        /// Generation sent.
        generation: i32,
        /// Error code returned for every partition.
        error: i16,
    },
}

/// Broker-side settings of the coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000; small here so
    /// simulated groups form quickly).
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` (Kafka default 6000).
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout: Duration,
    /// `group.max.size` (Kafka default unbounded).
    pub max_group_size: usize,
    /// Test-only fault switch: accept offset commits whatever their
    /// generation (the coordinator-side half of the stale-commit mutation).
    pub mutation_accept_stale_commits: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout: Duration::from_millis(6000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_group_size: usize::MAX,
            mutation_accept_stale_commits: false,
        }
    }
}

/// The group coordinator of one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, ClassicGroup>,
    store: GroupStore,
    replies: Vec<Reply>,
    events: Vec<(String, CoordEvent)>,
    ids: SimRng,
    join_seq: u64,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ms(d: i32) -> Duration {
    Duration::from_millis(u64::try_from(d).unwrap_or(0))
}

fn join_error(member_id: &str, error: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error)
        .with_generation_id(-1)
        .with_member_id(sb(member_id))
}

fn sync_error(error: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error)
}

impl GroupCoordinator {
    /// A coordinator with no groups; `id_seed` makes generated member ids unique.
    pub fn new(config: CoordinatorConfig, id_seed: u64) -> Self {
        Self::load(config, GroupStore::default(), SimTime::ZERO, id_seed)
    }

    /// A coordinator that replays `store`, as a broker becoming leader of the
    /// offsets partition does (`GroupMetadataManager` replay): each stored
    /// group comes back Stable with its members (or Empty), every member with
    /// a fresh session timer and only its selected protocol.
    pub fn load(config: CoordinatorConfig, store: GroupStore, now: SimTime, id_seed: u64) -> Self {
        let mut groups = BTreeMap::new();
        let mut join_seq = 0;
        for (group_id, record) in &store.groups {
            let mut g = ClassicGroup::new(group_id.clone());
            g.generation = record.generation;
            g.protocol_type = record.protocol_type.clone();
            g.protocol_name = record.protocol_name.clone();
            g.leader = record.leader.clone();
            for m in &record.members {
                join_seq += 1;
                let protocols = match &record.protocol_name {
                    Some(p) => vec![(p.clone(), m.subscription.clone())],
                    None => Vec::new(),
                };
                if let Some(instance) = &m.instance_id {
                    g.static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        session_timeout: m.session_timeout,
                        rebalance_timeout: m.rebalance_timeout,
                        protocols,
                        assignment: m.assignment.clone(),
                        awaiting_join: None,
                        awaiting_sync: None,
                        session_deadline: now + m.session_timeout,
                        join_seq,
                    },
                );
            }
            g.state = if g.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable {
                    pending_sync: Default::default(),
                    sync_deadline: now,
                }
            };
            groups.insert(group_id.clone(), g);
        }
        Self {
            config,
            groups,
            store,
            replies: Vec::new(),
            events: Vec::new(),
            ids: SimRng::new(id_seed),
            join_seq,
        }
    }

    /// The persisted state, as a successor coordinator would load it.
    pub fn store(&self) -> &GroupStore {
        &self.store
    }

    /// Consume the coordinator, keeping only what was persisted.
    pub fn into_store(self) -> GroupStore {
        self.store
    }

    /// A group, for inspection.
    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    /// Mutable access to the configuration (fault switches).
    pub fn config_mut(&mut self) -> &mut CoordinatorConfig {
        &mut self.config
    }

    /// Responses ready to send, in the order they were produced.
    pub fn drain_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    /// What happened since the last call, per group id.
    pub fn drain_events(&mut self) -> Vec<(String, CoordEvent)> {
        std::mem::take(&mut self.events)
    }

    /// Unload every group (the partition moved away): parked requests are
    /// answered `NOT_COORDINATOR`, as Kafka does when it unloads a partition.
    pub fn unload(&mut self) {
        let groups = std::mem::take(&mut self.groups);
        for g in groups.into_values() {
            for m in g.members.into_values() {
                if let Some(to) = m.awaiting_join {
                    self.reply(
                        to,
                        ReplyBody::Join(join_error(&m.member_id, NOT_COORDINATOR)),
                    );
                }
                if let Some(to) = m.awaiting_sync {
                    self.reply(to, ReplyBody::Sync(sync_error(NOT_COORDINATOR)));
                }
            }
        }
    }

    fn reply(&mut self, to: ReplyTo, body: ReplyBody) {
        self.replies.push(Reply { to, body });
    }

    fn event(&mut self, group_id: &str, ev: CoordEvent) {
        self.events.push((group_id.to_string(), ev));
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        // Kafka: clientId (or instance id) + "-" + random UUID.
        format!("{prefix}-{:016x}", self.ids.next_u64())
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<SimTime> {
        let mut best: Option<SimTime> = None;
        let mut consider = |t: SimTime| {
            if best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        for g in self.groups.values() {
            for m in g.members.values() {
                consider(m.session_deadline);
            }
            for t in g.pending_members.values() {
                consider(*t);
            }
            match &g.state {
                GroupState::PreparingRebalance { deadline, .. } => consider(*deadline),
                GroupState::CompletingRebalance {
                    pending_sync,
                    sync_deadline,
                }
                | GroupState::Stable {
                    pending_sync,
                    sync_deadline,
                } if !pending_sync.is_empty() => consider(*sync_deadline),
                _ => {}
            }
        }
        best
    }

    /// Run every timer due at `now`: session expiry, pending member expiry,
    /// the end of a join phase, pending-sync expiry.
    pub fn handle_timeout(&mut self, now: SimTime) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for gid in ids {
            self.expire_sessions(&gid, now);
            self.expire_pending_members(&gid, now);
            self.expire_join_phase(&gid, now);
            self.expire_pending_sync(&gid, now);
        }
    }

    fn expire_sessions(&mut self, gid: &str, now: SimTime) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let mut expired = Vec::new();
        for m in g.members.values_mut() {
            if m.session_deadline <= now {
                // `ClassicGroupMember.hasSatisfiedHeartbeat`: a member with a
                // parked JoinGroup or SyncGroup counts as alive.
                if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
                    m.session_deadline = now + m.session_timeout;
                } else {
                    expired.push(m.member_id.clone());
                }
            }
        }
        for id in expired {
            self.remove_member(gid, &id, RemovalReason::SessionExpired, now);
        }
    }

    fn expire_pending_members(&mut self, gid: &str, now: SimTime) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let expired: Vec<String> = g
            .pending_members
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            g.pending_members.remove(id);
        }
        for id in expired {
            self.event(
                gid,
                CoordEvent::MemberRemoved {
                    member_id: id,
                    reason: RemovalReason::PendingExpired,
                },
            );
        }
        self.maybe_complete_join(gid, now);
    }

    fn expire_join_phase(&mut self, gid: &str, now: SimTime) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let GroupState::PreparingRebalance {
            deadline,
            initial_delay,
        } = &mut g.state
        else {
            return;
        };
        if *deadline > now {
            return;
        }
        // Kafka's `InitialDelayedJoin.onComplete`: extend while new members
        // keep arriving and rebalance time remains.
        if let Some(d) = initial_delay
            && d.new_member_added
            && !d.remaining.is_zero()
        {
            let step = d.delay.min(d.remaining);
            d.remaining = d.remaining.saturating_sub(d.delay);
            d.new_member_added = false;
            *deadline = now + step;
            return;
        }
        self.complete_join(gid, now);
    }

    fn expire_pending_sync(&mut self, gid: &str, now: SimTime) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let pending: Vec<String> = match &g.state {
            GroupState::CompletingRebalance {
                pending_sync,
                sync_deadline,
            }
            | GroupState::Stable {
                pending_sync,
                sync_deadline,
            } if *sync_deadline <= now && !pending_sync.is_empty() => {
                pending_sync.iter().cloned().collect()
            }
            _ => return,
        };
        // `expirePendingSync`: remove members that never synced, then rebalance.
        for id in pending {
            self.remove_member(gid, &id, RemovalReason::NotSynced, now);
        }
    }

    // ------------------------------------------------------------------
    // Rebalance machinery
    // ------------------------------------------------------------------

    /// `prepareRebalance`: enter PreparingRebalance; a CompletingRebalance
    /// group first fails its parked SyncGroups with `REBALANCE_IN_PROGRESS`.
    fn prepare_rebalance(&mut self, gid: &str, now: SimTime) {
        let initial_delay = self.config.initial_rebalance_delay;
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let mut fail_syncs = Vec::new();
        if matches!(g.state, GroupState::CompletingRebalance { .. }) {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(to) = m.awaiting_sync.take() {
                    fail_syncs.push(to);
                }
            }
        }
        let generation = g.generation;
        let rebalance_timeout = g.max_rebalance_timeout();
        if matches!(g.state, GroupState::Empty) {
            g.state = GroupState::PreparingRebalance {
                deadline: now + initial_delay,
                initial_delay: Some(InitialDelay {
                    delay: initial_delay,
                    remaining: rebalance_timeout.saturating_sub(initial_delay),
                    new_member_added: false,
                }),
            };
        } else {
            g.state = GroupState::PreparingRebalance {
                deadline: now + rebalance_timeout,
                initial_delay: None,
            };
        }
        for to in fail_syncs {
            self.reply(to, ReplyBody::Sync(sync_error(REBALANCE_IN_PROGRESS)));
        }
        self.event(gid, CoordEvent::RebalanceStarted { generation });
        self.maybe_complete_join(gid, now);
    }

    /// `maybeCompleteJoinPhase`: end the join phase early once everyone joined,
    /// except during the initial delay of a new group.
    fn maybe_complete_join(&mut self, gid: &str, now: SimTime) {
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        if let GroupState::PreparingRebalance { initial_delay, .. } = &g.state
            && initial_delay.is_none()
            && g.all_members_joined()
        {
            self.complete_join(gid, now);
        }
    }

    /// `maybePrepareRebalanceOrCompleteJoin`.
    fn rebalance_or_complete_join(&mut self, gid: &str, now: SimTime) {
        let can = self.groups.get(gid).is_some_and(|g| g.can_rebalance());
        if can {
            self.prepare_rebalance(gid, now);
        } else {
            self.maybe_complete_join(gid, now);
        }
    }

    /// `completeClassicGroupJoin`: drop the dynamic members that did not
    /// rejoin, bump the generation, pick protocol and leader, answer every
    /// parked JoinGroup.
    ///
    /// A static member that did not rejoin stays, with its last
    /// subscription, until its session times out (Kafka removes only
    /// `notYetRejoinedDynamicMembers`); it is in the new generation's member
    /// list and must send its SyncGroup like everyone else. If no member at
    /// all rejoined, Kafka postpones the completion until session timeouts
    /// clear the group; here the absent static members are dropped then.
    fn complete_join(&mut self, gid: &str, now: SimTime) {
        let absent: Vec<String> = match self.groups.get(gid) {
            Some(g) => {
                let any_joined = g.members.values().any(|m| m.awaiting_join.is_some());
                g.members
                    .values()
                    .filter(|m| m.awaiting_join.is_none())
                    .filter(|m| !any_joined || m.instance_id.is_none())
                    .map(|m| m.member_id.clone())
                    .collect()
            }
            None => return,
        };
        for id in absent {
            self.remove_member_quietly(gid, &id, RemovalReason::NotRejoined);
        }
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        if matches!(g.state, GroupState::Dead) {
            return;
        }
        let leader_joined = g
            .leader
            .as_ref()
            .and_then(|l| g.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            g.elect_leader();
        }
        g.generation = g.generation.saturating_add(1);
        if g.members.is_empty() {
            g.protocol_name = None;
            g.leader = None;
            g.state = GroupState::Empty;
            let generation = g.generation;
            self.persist_group(gid);
            self.event(
                gid,
                CoordEvent::GenerationStarted {
                    generation,
                    protocol: None,
                    leader: None,
                    members: Vec::new(),
                },
            );
            return;
        }
        g.protocol_name = g.select_protocol();
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let pending_sync = g.members.keys().cloned().collect();
        let sync_deadline = now + g.max_rebalance_timeout();
        g.state = GroupState::CompletingRebalance {
            pending_sync,
            sync_deadline,
        };
        let leader = g.leader.clone().unwrap_or_default();
        let member_list: Vec<(String, Option<String>, Bytes)> = g
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let mut out = Vec::new();
        for m in g.members.values_mut() {
            m.session_deadline = now + m.session_timeout;
            let Some(to) = m.awaiting_join.take() else {
                continue;
            };
            let members = if m.member_id == leader {
                member_list
                    .iter()
                    .map(|(id, inst, meta)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(sb(id))
                            .with_group_instance_id(inst.as_deref().map(sb))
                            .with_metadata(meta.clone())
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let resp = JoinGroupResponse::default()
                .with_generation_id(g.generation)
                .with_protocol_type(g.protocol_type.as_deref().map(sb))
                .with_protocol_name(Some(sb(&protocol)))
                .with_leader(sb(&leader))
                .with_member_id(sb(&m.member_id))
                .with_members(members);
            out.push((to, resp));
        }
        let generation = g.generation;
        let leader_opt = g.leader.clone();
        for (to, resp) in out {
            self.reply(to, ReplyBody::Join(resp));
        }
        self.event(
            gid,
            CoordEvent::GenerationStarted {
                generation,
                protocol: Some(protocol),
                leader: leader_opt,
                members: member_list.into_iter().map(|(id, _, m)| (id, m)).collect(),
            },
        );
    }

    /// Remove a member without triggering the state transition (used while a
    /// join phase is being completed).
    fn remove_member_quietly(&mut self, gid: &str, member_id: &str, reason: RemovalReason) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let Some(m) = g.members.remove(member_id) else {
            return;
        };
        if let Some(inst) = &m.instance_id
            && g.static_members.get(inst).map(String::as_str) == Some(member_id)
        {
            g.static_members.remove(inst);
        }
        if let GroupState::CompletingRebalance { pending_sync, .. }
        | GroupState::Stable { pending_sync, .. } = &mut g.state
        {
            pending_sync.remove(member_id);
        }
        let was_leader = g.is_leader(member_id);
        if was_leader {
            g.elect_leader();
        }
        let mut replies = Vec::new();
        if let Some(to) = m.awaiting_join {
            replies.push((
                to,
                ReplyBody::Join(join_error(member_id, UNKNOWN_MEMBER_ID)),
            ));
        }
        if let Some(to) = m.awaiting_sync {
            replies.push((to, ReplyBody::Sync(sync_error(UNKNOWN_MEMBER_ID))));
        }
        for (to, body) in replies {
            self.reply(to, body);
        }
        self.event(
            gid,
            CoordEvent::MemberRemoved {
                member_id: member_id.to_string(),
                reason,
            },
        );
    }

    /// `removeMemberAndUpdateClassicGroup`: remove, then rebalance a
    /// Stable/CompletingRebalance group or try to finish a join phase.
    fn remove_member(&mut self, gid: &str, member_id: &str, reason: RemovalReason, now: SimTime) {
        self.remove_member_quietly(gid, member_id, reason);
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        match g.state {
            GroupState::Stable { .. } | GroupState::CompletingRebalance { .. } => {
                self.prepare_rebalance(gid, now);
            }
            GroupState::PreparingRebalance { .. } => self.maybe_complete_join(gid, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn persist_group(&mut self, gid: &str) {
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        let protocol = g.protocol_name.clone();
        let record = GroupRecord {
            protocol_type: g.protocol_type.clone(),
            generation: g.generation,
            protocol_name: protocol.clone(),
            leader: g.leader.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    session_timeout: m.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata_for(p).cloned())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        self.store.groups.insert(gid.to_string(), record);
    }

    // ------------------------------------------------------------------
    // JoinGroup
    // ------------------------------------------------------------------

    /// JoinGroup (`GroupMetadataManager.classicGroupJoin`).
    pub fn handle_join(
        &mut self,
        now: SimTime,
        to: ReplyTo,
        client_id: &str,
        req: &JoinGroupRequest,
    ) {
        let gid = req.group_id.0.as_str().to_string();
        let member_id = req.member_id.as_str().to_string();
        let instance_id = req.group_instance_id.as_deref().map(str::to_string);
        let session = ms(req.session_timeout_ms);
        // v0 has no rebalance timeout: the session timeout doubles as one.
        let rebalance = if to.version >= 1 {
            ms(req.rebalance_timeout_ms)
        } else {
            session
        };
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect();
        let protocol_type = req.protocol_type.as_str().to_string();

        if gid.is_empty() {
            return self.reply(
                to,
                ReplyBody::Join(join_error(&member_id, INVALID_GROUP_ID)),
            );
        }
        if req.session_timeout_ms < 0
            || session < self.config.min_session_timeout
            || session > self.config.max_session_timeout
        {
            return self.reply(
                to,
                ReplyBody::Join(join_error(&member_id, INVALID_SESSION_TIMEOUT)),
            );
        }
        if !self.groups.contains_key(&gid) {
            if !member_id.is_empty() {
                return self.reply(
                    to,
                    ReplyBody::Join(join_error(&member_id, UNKNOWN_MEMBER_ID)),
                );
            }
            self.groups
                .insert(gid.clone(), ClassicGroup::new(gid.clone()));
        }
        let Some(g) = self.groups.get(&gid) else {
            return;
        };
        let known =
            g.members.contains_key(&member_id) || g.pending_members.contains_key(&member_id);
        if !known && g.members.len() >= self.config.max_group_size {
            return self.reply(
                to,
                ReplyBody::Join(join_error(&member_id, GROUP_MAX_SIZE_REACHED)),
            );
        }
        if matches!(g.state, GroupState::Dead) {
            return self.reply(
                to,
                ReplyBody::Join(join_error(&member_id, COORDINATOR_NOT_AVAILABLE)),
            );
        }
        if !g.supports_protocols(&protocol_type, &protocols) {
            return self.reply(
                to,
                ReplyBody::Join(join_error(&member_id, INCONSISTENT_GROUP_PROTOCOL)),
            );
        }
        let join = JoinArgs {
            to,
            client_id: client_id.to_string(),
            instance_id,
            session,
            rebalance,
            protocols,
            protocol_type,
        };
        if member_id.is_empty() {
            self.join_new_member(&gid, now, join);
        } else {
            self.join_existing_member(&gid, now, &member_id, join);
        }
    }

    /// `classicGroupJoinNewMember` / `classicGroupJoinNewStaticMember`.
    fn join_new_member(&mut self, gid: &str, now: SimTime, join: JoinArgs) {
        let prefix = join
            .instance_id
            .clone()
            .unwrap_or_else(|| join.client_id.clone());
        let new_id = self.new_member_id(&prefix);
        if let Some(instance) = join.instance_id.clone() {
            let existing = self
                .groups
                .get(gid)
                .and_then(|g| g.static_members.get(&instance).cloned());
            match existing {
                Some(old_id) => self.replace_static_member(gid, now, &old_id, &new_id, join),
                None => self.add_member(gid, now, new_id, join),
            }
            return;
        }
        // KIP-394 (`JoinGroupRequest.requiresKnownMemberId`): a dynamic member
        // with v4+ first gets its id back with MEMBER_ID_REQUIRED.
        if join.to.version >= 4 {
            if let Some(g) = self.groups.get_mut(gid) {
                g.pending_members.insert(new_id.clone(), now + join.session);
            }
            return self.reply(
                join.to,
                ReplyBody::Join(join_error(&new_id, MEMBER_ID_REQUIRED)),
            );
        }
        self.add_member(gid, now, new_id, join);
    }

    /// `classicGroupJoinExistingMember`.
    fn join_existing_member(&mut self, gid: &str, now: SimTime, member_id: &str, join: JoinArgs) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        if g.pending_members.remove(member_id).is_some() {
            return self.add_member(gid, now, member_id.to_string(), join);
        }
        if let Some(err) = g.validate_member(member_id, join.instance_id.as_deref()) {
            return self.reply(join.to, ReplyBody::Join(join_error(member_id, err)));
        }
        match g.state {
            GroupState::PreparingRebalance { .. } => {
                self.update_member(gid, now, member_id, join);
                self.maybe_complete_join(gid, now);
            }
            GroupState::CompletingRebalance { .. } => {
                let same = g
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.matches(&join.protocols));
                if same {
                    // It probably missed the JoinGroup response: send it again.
                    let resp = self.current_join_response(gid, member_id, member_id, true);
                    self.reply(join.to, ReplyBody::Join(resp));
                } else {
                    self.update_member(gid, now, member_id, join);
                    self.prepare_rebalance(gid, now);
                }
            }
            GroupState::Stable { .. } => {
                let same = g
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.matches(&join.protocols));
                if g.is_leader(member_id) || !same {
                    self.update_member(gid, now, member_id, join);
                    self.prepare_rebalance(gid, now);
                } else {
                    // A follower with identical metadata: current generation, no rebalance.
                    let resp = self.current_join_response(gid, member_id, member_id, false);
                    self.reply(join.to, ReplyBody::Join(resp));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                self.reply(
                    join.to,
                    ReplyBody::Join(join_error(member_id, UNKNOWN_MEMBER_ID)),
                );
            }
        }
    }

    fn current_join_response(
        &self,
        gid: &str,
        member_id: &str,
        leader_for_list: &str,
        with_members_if_leader: bool,
    ) -> JoinGroupResponse {
        let Some(g) = self.groups.get(gid) else {
            return join_error(member_id, UNKNOWN_MEMBER_ID);
        };
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = if with_members_if_leader && g.is_leader(leader_for_list) {
            g.members
                .values()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(m.instance_id.as_deref().map(sb))
                        .with_metadata(m.metadata_for(&protocol).cloned().unwrap_or_default())
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(g.generation)
            .with_protocol_type(g.protocol_type.as_deref().map(sb))
            .with_protocol_name(g.protocol_name.as_deref().map(sb))
            .with_leader(sb(g.leader.as_deref().unwrap_or_default()))
            .with_member_id(sb(member_id))
            .with_members(members)
    }

    /// `addMemberThenRebalanceOrCompleteJoin`.
    fn add_member(&mut self, gid: &str, now: SimTime, member_id: String, join: JoinArgs) {
        self.join_seq += 1;
        let seq = self.join_seq;
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        if g.members.is_empty() {
            g.protocol_type = Some(join.protocol_type.clone());
        }
        if let Some(inst) = &join.instance_id {
            g.static_members.insert(inst.clone(), member_id.clone());
        }
        g.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                instance_id: join.instance_id.clone(),
                client_id: join.client_id,
                session_timeout: join.session,
                rebalance_timeout: join.rebalance,
                protocols: join.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(join.to),
                awaiting_sync: None,
                session_deadline: now + join.session,
                join_seq: seq,
            },
        );
        if g.leader.is_none() {
            g.leader = Some(member_id.clone());
        }
        if let GroupState::PreparingRebalance {
            initial_delay: Some(d),
            ..
        } = &mut g.state
        {
            d.new_member_added = true;
        }
        self.event(
            gid,
            CoordEvent::MemberAdded {
                member_id,
                instance_id: join.instance_id,
            },
        );
        self.rebalance_or_complete_join(gid, now);
    }

    /// `ClassicGroup.updateMember`: new protocols and timeouts, park the JoinGroup.
    fn update_member(&mut self, gid: &str, now: SimTime, member_id: &str, join: JoinArgs) {
        let Some(m) = self
            .groups
            .get_mut(gid)
            .and_then(|g| g.members.get_mut(member_id))
        else {
            return;
        };
        m.protocols = join.protocols;
        m.session_timeout = join.session;
        m.rebalance_timeout = join.rebalance;
        m.awaiting_join = Some(join.to);
        m.session_deadline = now + join.session;
    }

    /// `updateStaticMemberThenRebalanceOrCompleteJoin`: a known instance id
    /// joins with an empty member id (a restart). The old member id is
    /// replaced (its parked requests get `FENCED_INSTANCE_ID`); a Stable group
    /// whose protocol choice stays the same hands back the current generation
    /// without a rebalance.
    fn replace_static_member(
        &mut self,
        gid: &str,
        now: SimTime,
        old_id: &str,
        new_id: &str,
        join: JoinArgs,
    ) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let Some(mut m) = g.members.remove(old_id) else {
            return;
        };
        let mut fenced = Vec::new();
        if let Some(to) = m.awaiting_join.take() {
            fenced.push((to, ReplyBody::Join(join_error(old_id, FENCED_INSTANCE_ID))));
        }
        if let Some(to) = m.awaiting_sync.take() {
            fenced.push((to, ReplyBody::Sync(sync_error(FENCED_INSTANCE_ID))));
        }
        let old_leader = g.leader.clone();
        let was_leader = g.is_leader(old_id);
        if was_leader {
            g.leader = Some(new_id.to_string());
        }
        if let GroupState::CompletingRebalance { pending_sync, .. }
        | GroupState::Stable { pending_sync, .. } = &mut g.state
            && pending_sync.remove(old_id)
        {
            pending_sync.insert(new_id.to_string());
        }
        let instance = join.instance_id.clone().unwrap_or_default();
        g.static_members.insert(instance, new_id.to_string());
        m.member_id = new_id.to_string();
        m.client_id = join.client_id.clone();
        m.protocols = join.protocols.clone();
        m.session_timeout = join.session;
        m.rebalance_timeout = join.rebalance;
        m.session_deadline = now + join.session;
        m.awaiting_join = Some(join.to);
        g.members.insert(new_id.to_string(), m);
        for (to, body) in fenced {
            self.reply(to, body);
        }
        self.event(
            gid,
            CoordEvent::MemberRemoved {
                member_id: old_id.to_string(),
                reason: RemovalReason::Replaced,
            },
        );
        self.event(
            gid,
            CoordEvent::MemberAdded {
                member_id: new_id.to_string(),
                instance_id: join.instance_id.clone(),
            },
        );
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        match g.state {
            GroupState::Stable { .. } => {
                if g.protocol_name == g.select_protocol() {
                    // Same protocol: persist the new member id and answer with
                    // the current generation (KIP-345). KIP-814: at v9 a
                    // replaced leader gets the member list and SkipAssignment;
                    // below v9 the response names the old leader id, so the
                    // restarted leader believes it is a follower (KAFKA-13435).
                    let to = g
                        .members
                        .get_mut(new_id)
                        .and_then(|m| m.awaiting_join.take());
                    self.persist_group(gid);
                    let Some(to) = to else { return };
                    let mut resp = self.current_join_response(gid, new_id, new_id, true);
                    if was_leader && to.version >= 9 {
                        resp.skip_assignment = true;
                    } else if was_leader {
                        resp.members.clear();
                        resp.leader = sb(old_leader.as_deref().unwrap_or_default());
                    }
                    self.reply(to, ReplyBody::Join(resp));
                } else {
                    self.prepare_rebalance(gid, now);
                }
            }
            // KAFKA-9801: the leader may already have assigned to the old id.
            GroupState::CompletingRebalance { .. } => self.prepare_rebalance(gid, now),
            GroupState::PreparingRebalance { .. } => self.maybe_complete_join(gid, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ------------------------------------------------------------------
    // SyncGroup
    // ------------------------------------------------------------------

    /// SyncGroup (`GroupMetadataManager.classicGroupSync`).
    pub fn handle_sync(&mut self, now: SimTime, to: ReplyTo, req: &SyncGroupRequest) {
        let gid = req.group_id.0.as_str();
        let member_id = req.member_id.as_str();
        let Some(g) = self.groups.get_mut(gid) else {
            return self.reply(to, ReplyBody::Sync(sync_error(UNKNOWN_MEMBER_ID)));
        };
        if matches!(g.state, GroupState::Dead) {
            return self.reply(to, ReplyBody::Sync(sync_error(COORDINATOR_NOT_AVAILABLE)));
        }
        if let Some(err) = g.validate_member(member_id, req.group_instance_id.as_deref()) {
            return self.reply(to, ReplyBody::Sync(sync_error(err)));
        }
        if req.generation_id != g.generation {
            return self.reply(to, ReplyBody::Sync(sync_error(ILLEGAL_GENERATION)));
        }
        // v5: protocol type and name must match the group's (KIP-559).
        let type_mismatch = req
            .protocol_type
            .as_deref()
            .is_some_and(|t| g.protocol_type.as_deref() != Some(t));
        let name_mismatch = req
            .protocol_name
            .as_deref()
            .is_some_and(|n| g.protocol_name.as_deref() != Some(n));
        if type_mismatch || name_mismatch {
            return self.reply(to, ReplyBody::Sync(sync_error(INCONSISTENT_GROUP_PROTOCOL)));
        }
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let ok = |assignment: Bytes| {
            SyncGroupResponse::default()
                .with_protocol_type(protocol_type.as_deref().map(sb))
                .with_protocol_name(protocol_name.as_deref().map(sb))
                .with_assignment(assignment)
        };
        match &mut g.state {
            GroupState::Empty => self.reply(to, ReplyBody::Sync(sync_error(UNKNOWN_MEMBER_ID))),
            GroupState::PreparingRebalance { .. } => {
                self.reply(to, ReplyBody::Sync(sync_error(REBALANCE_IN_PROGRESS)))
            }
            GroupState::CompletingRebalance { pending_sync, .. } => {
                pending_sync.remove(member_id);
                let pending_sync = std::mem::take(pending_sync);
                let is_leader = g.is_leader(member_id);
                if let Some(m) = g.members.get_mut(member_id) {
                    m.awaiting_sync = Some(to);
                    m.session_deadline = now + m.session_timeout;
                }
                if !is_leader {
                    if let GroupState::CompletingRebalance {
                        pending_sync: p, ..
                    } = &mut g.state
                    {
                        *p = pending_sync;
                    }
                    return;
                }
                // The leader's assignment: members it left out get an empty one.
                let mut given: BTreeMap<&str, &Bytes> = BTreeMap::new();
                for a in &req.assignments {
                    given.insert(a.member_id.as_str(), &a.assignment);
                }
                let mut replies = Vec::new();
                let mut stored = Vec::new();
                for m in g.members.values_mut() {
                    m.assignment = given
                        .get(m.member_id.as_str())
                        .map(|b| (*b).clone())
                        .unwrap_or_default();
                    stored.push((m.member_id.clone(), m.assignment.clone()));
                    if let Some(to) = m.awaiting_sync.take() {
                        replies.push((to, m.assignment.clone()));
                    }
                }
                let sync_deadline = match g.state {
                    GroupState::CompletingRebalance { sync_deadline, .. } => sync_deadline,
                    _ => now,
                };
                g.state = GroupState::Stable {
                    pending_sync,
                    sync_deadline,
                };
                let generation = g.generation;
                self.persist_group(gid);
                for (to, a) in replies {
                    self.reply(to, ReplyBody::Sync(ok(a)));
                }
                self.event(
                    gid,
                    CoordEvent::AssignmentStored {
                        generation,
                        assignments: stored,
                    },
                );
            }
            GroupState::Stable { pending_sync, .. } => {
                pending_sync.remove(member_id);
                let a = match g.members.get_mut(member_id) {
                    Some(m) => {
                        m.session_deadline = now + m.session_timeout;
                        m.assignment.clone()
                    }
                    None => Bytes::new(),
                };
                self.reply(to, ReplyBody::Sync(ok(a)));
            }
            GroupState::Dead => {
                self.reply(to, ReplyBody::Sync(sync_error(COORDINATOR_NOT_AVAILABLE)))
            }
        }
    }

    // ------------------------------------------------------------------
    // Heartbeat
    // ------------------------------------------------------------------

    /// Heartbeat (`GroupMetadataManager.classicGroupHeartbeat`): instance id,
    /// member and generation are checked first; then `REBALANCE_IN_PROGRESS`
    /// in PreparingRebalance, NONE in CompletingRebalance/Stable,
    /// `UNKNOWN_MEMBER_ID` in Empty.
    pub fn handle_heartbeat(&mut self, now: SimTime, to: ReplyTo, req: &HeartbeatRequest) {
        let error = self.heartbeat_error(now, req);
        self.reply(
            to,
            ReplyBody::Heartbeat(HeartbeatResponse::default().with_error_code(error)),
        );
    }

    fn heartbeat_error(&mut self, now: SimTime, req: &HeartbeatRequest) -> i16 {
        let Some(g) = self.groups.get_mut(req.group_id.0.as_str()) else {
            return UNKNOWN_MEMBER_ID;
        };
        if matches!(g.state, GroupState::Dead) {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if let Some(err) =
            g.validate_member(req.member_id.as_str(), req.group_instance_id.as_deref())
        {
            return err;
        }
        if req.generation_id != g.generation {
            return ILLEGAL_GENERATION;
        }
        let error = match g.state {
            GroupState::Empty => return UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance { .. } => REBALANCE_IN_PROGRESS,
            _ => NONE,
        };
        if let Some(m) = g.members.get_mut(req.member_id.as_str()) {
            m.session_deadline = now + m.session_timeout;
        }
        error
    }

    // ------------------------------------------------------------------
    // LeaveGroup
    // ------------------------------------------------------------------

    /// LeaveGroup (`GroupMetadataManager.classicGroupLeave`), v0–2 single
    /// member, v3+ batch with per-member errors.
    pub fn handle_leave(&mut self, now: SimTime, to: ReplyTo, req: &LeaveGroupRequest) {
        let gid = req.group_id.0.as_str().to_string();
        let identities: Vec<(String, Option<String>)> = if to.version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.as_str().to_string(),
                        m.group_instance_id.as_deref().map(str::to_string),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.as_str().to_string(), None)]
        };
        let mut results = Vec::new();
        let dead = self
            .groups
            .get(&gid)
            .is_some_and(|g| matches!(g.state, GroupState::Dead));
        if dead {
            let resp = LeaveGroupResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE);
            return self.reply(to, ReplyBody::Leave(resp));
        }
        for (member_id, instance_id) in identities {
            let error = self.leave_one(&gid, now, &member_id, instance_id.as_deref());
            results.push((member_id, instance_id, error));
        }
        let resp = if to.version >= 3 {
            LeaveGroupResponse::default().with_members(
                results
                    .into_iter()
                    .map(|(id, inst, err)| {
                        MemberResponse::default()
                            .with_member_id(sb(&id))
                            .with_group_instance_id(inst.as_deref().map(sb))
                            .with_error_code(err)
                    })
                    .collect(),
            )
        } else {
            let err = results.first().map(|r| r.2).unwrap_or(NONE);
            LeaveGroupResponse::default().with_error_code(err)
        };
        self.reply(to, ReplyBody::Leave(resp));
    }

    fn leave_one(
        &mut self,
        gid: &str,
        now: SimTime,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(gid) else {
            return UNKNOWN_MEMBER_ID;
        };
        let target = if let Some(inst) = instance_id {
            match g.static_members.get(inst) {
                None => return UNKNOWN_MEMBER_ID,
                // An empty member id lets an admin remove the instance
                // whatever its current member id (KIP-345).
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return FENCED_INSTANCE_ID;
                }
                Some(current) => current.clone(),
            }
        } else {
            if g.pending_members.remove(member_id).is_some() {
                self.event(
                    gid,
                    CoordEvent::MemberRemoved {
                        member_id: member_id.to_string(),
                        reason: RemovalReason::Left,
                    },
                );
                self.maybe_complete_join(gid, now);
                return NONE;
            }
            if !g.members.contains_key(member_id) {
                return UNKNOWN_MEMBER_ID;
            }
            member_id.to_string()
        };
        self.remove_member(gid, &target, RemovalReason::Left, now);
        NONE
    }

    // ------------------------------------------------------------------
    // Offsets
    // ------------------------------------------------------------------

    /// The error for an OffsetCommit from `member_id` at `generation`
    /// (`ClassicGroup.validateOffsetCommit`); `None` when it is accepted.
    fn commit_error(
        &mut self,
        gid: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<i16> {
        let accept_stale = self.config.mutation_accept_stale_commits;
        let Some(g) = self.groups.get(gid) else {
            // A manual commit (generation < 0) creates a simple group's
            // offsets; a group-managed commit to a missing group is stale.
            if generation < 0 && member_id.is_empty() {
                self.groups
                    .insert(gid.to_string(), ClassicGroup::new(gid.to_string()));
                return None;
            }
            return Some(ILLEGAL_GENERATION);
        };
        if matches!(g.state, GroupState::Dead) {
            return Some(COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && matches!(g.state, GroupState::Empty) {
            return None;
        }
        if let Some(err) = g.validate_member(member_id, instance_id) {
            return Some(err);
        }
        if generation != g.generation && !accept_stale {
            return Some(ILLEGAL_GENERATION);
        }
        if matches!(g.state, GroupState::CompletingRebalance { .. }) && !accept_stale {
            return Some(REBALANCE_IN_PROGRESS);
        }
        // The current generation is accepted during PreparingRebalance: that is
        // what lets an eager member commit while it revokes.
        None
    }

    /// OffsetCommit, classic group rules.
    pub fn handle_commit(&mut self, now: SimTime, to: ReplyTo, req: &OffsetCommitRequest) {
        let gid = req.group_id.0.as_str().to_string();
        let member_id = req.member_id.as_str().to_string();
        let generation = req.generation_id_or_member_epoch;
        let error = self.commit_error(
            &gid,
            &member_id,
            req.group_instance_id.as_deref(),
            generation,
        );
        let error = error.unwrap_or(NONE);
        let mut accepted = Vec::new();
        let response = commit_response_for(req, |topic, p| {
            let mut code = error;
            if code == NONE && p.committed_offset < 0 {
                code = kafka_protocol::ResponseError::InvalidCommitOffsetSize.code();
            }
            if code == NONE {
                accepted.push((
                    topic.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_deref().map(str::to_string),
                ));
            }
            code
        });
        if error == NONE {
            // Offsets are written to the log before the commit is acknowledged.
            let offsets = self.store.offsets.entry(gid.clone()).or_default();
            for (topic, partition, offset, epoch, metadata) in &accepted {
                offsets.insert(
                    (topic.clone(), *partition),
                    CommittedOffset {
                        offset: *offset,
                        leader_epoch: *epoch,
                        metadata: metadata.clone(),
                    },
                );
            }
            // A commit keeps a member alive like a heartbeat does (Kafka
            // reschedules the heartbeat on a valid group-managed commit).
            if let Some(m) = self
                .groups
                .get_mut(&gid)
                .and_then(|g| g.members.get_mut(&member_id))
            {
                m.session_deadline = now + m.session_timeout;
            }
            let group_generation = self.groups.get(&gid).map_or(-1, |g| g.generation);
            self.event(
                &gid,
                CoordEvent::CommitAccepted {
                    member_id,
                    generation,
                    group_generation,
                    offsets: accepted
                        .into_iter()
                        .map(|(t, p, o, _, _)| (t, p, o))
                        .collect(),
                },
            );
        } else {
            self.event(
                &gid,
                CoordEvent::CommitRejected {
                    member_id,
                    generation,
                    error,
                },
            );
        }
        self.reply(to, ReplyBody::Commit(response));
    }

    /// OffsetFetch: v1–7 one group, v8+ batched groups; a null topic list
    /// (v2+) means every committed partition of the group.
    pub fn handle_fetch(&mut self, to: ReplyTo, req: &OffsetFetchRequest) {
        if to.version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|rg| {
                    let wanted: Option<Vec<(String, Vec<i32>)>> = rg.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let topics = self
                        .fetch_offsets(rg.group_id.0.as_str(), wanted)
                        .into_iter()
                        .map(|(topic, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(&topic)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, c)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(c.offset)
                                                .with_committed_leader_epoch(c.leader_epoch)
                                                .with_metadata(c.metadata.as_deref().map(sb))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(rg.group_id.clone())
                        .with_topics(topics)
                })
                .collect();
            let resp = OffsetFetchResponse::default().with_groups(groups);
            return self.reply(to, ReplyBody::Fetch(resp));
        }
        let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let topics = self
            .fetch_offsets(req.group_id.0.as_str(), wanted)
            .into_iter()
            .map(|(topic, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(&topic)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, c)| {
                                let mut part = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(c.offset)
                                    .with_metadata(c.metadata.as_deref().map(sb));
                                if to.version >= 5 {
                                    part = part.with_committed_leader_epoch(c.leader_epoch);
                                }
                                part
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = OffsetFetchResponse::default().with_topics(topics);
        self.reply(to, ReplyBody::Fetch(resp));
    }

    /// Committed offsets per topic for `wanted` (or every committed one);
    /// partitions with no commit get offset -1, as Kafka answers.
    fn fetch_offsets(
        &self,
        gid: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, CommittedOffset)>)> {
        let none = CommittedOffset {
            offset: -1,
            leader_epoch: -1,
            metadata: None,
        };
        let committed = self.store.offsets.get(gid);
        match wanted {
            Some(list) => list
                .into_iter()
                .map(|(topic, parts)| {
                    let ps = parts
                        .into_iter()
                        .map(|p| {
                            let c = committed
                                .and_then(|m| m.get(&(topic.clone(), p)))
                                .cloned()
                                .unwrap_or_else(|| none.clone());
                            (p, c)
                        })
                        .collect();
                    (topic, ps)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, CommittedOffset)>> = BTreeMap::new();
                if let Some(m) = committed {
                    for ((t, p), c) in m {
                        by_topic.entry(t.clone()).or_default().push((*p, c.clone()));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// The group id a group API request names (for routing and errors).
    pub fn group_id_of(req: &GroupId) -> &str {
        req.0.as_str()
    }
}

/// What a JoinGroup carries, once decoded.
#[derive(Debug)]
struct JoinArgs {
    to: ReplyTo,
    client_id: String,
    instance_id: Option<String>,
    session: Duration,
    rebalance: Duration,
    protocols: Vec<(String, Bytes)>,
    protocol_type: String,
}
