//! The leader's work (Java's `ConsumerCoordinator.onLeaderElected`,
//! PROTOCOL.md §4.5): decode every member's subscription (any version; a
//! corrupt one is reported and that member gets no partitions), fetch topic
//! metadata for the union of subscriptions, run the selected assignor,
//! validate its output, encode one assignment per member.
//!
//! Validation (PROTOCOL.md §4.3, §4.7): a partition that a member still owns
//! this round (highest-generation claim wins, KIP-792; equal claims are
//! contested) is never handed to another member; it is withheld and reported
//! as a leader error, and moves in the next round once its owner revoked it.
//! A partition handed to two members stays with the first. This makes any
//! assignor safe under the cooperative protocol and keeps a partition from
//! ever having two owners, whatever the assignor does.
//!
//! The leader keeps the metadata snapshot its assignment was computed on and
//! re-reads it every `metadata.max.age.ms`: a partition-count change triggers
//! a rejoin (also with KIP-814 SkipAssignment, KAFKA-13435).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, JoinGroupResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{GroupError, Phase, SyncState};
use crate::TopicPartition;
use crate::assignor::{ClusterMetadata, GroupAssignment, MemberSubscription, TopicInfo};
use crate::event::{Event, RejoinReason};
use crate::group::{Group, Pending, Role, Transmit};
use crate::timer::Timer;
use crate::wire::consumer_protocol::{Assignment, CONSUMER_PROTOCOL_MAX_VERSION, Subscription};

/// The leader's work between JoinGroup and SyncGroup.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// Every member, decoded (a corrupt one with no topics).
    pub members: Vec<MemberSubscription>,
    /// Union of the subscriptions.
    pub topics: BTreeSet<String>,
    /// Metadata asked for this generation.
    pub metadata_requested: bool,
    /// The encoded assignments, once computed.
    pub assignments: Option<Vec<SyncGroupRequestAssignment>>,
    /// Partitions a member claims that the assignment gives to nobody: held
    /// back until their claimant revoked them (cooperative), so a follow-up
    /// rebalance must move them ([`Group::maybe_follow_up`]).
    pub withheld: BTreeSet<TopicPartition>,
    /// KIP-814: the coordinator skipped our assignment (a static leader
    /// rejoining a Stable group); the stored one is in force, unseen.
    pub skipped: bool,
}

/// The leader's watch over the topics it assigned (Java's
/// `assignmentSnapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataWatch {
    /// Topics of the union of subscriptions.
    pub topics: BTreeSet<String>,
    /// Partition count per topic the assignment was computed on (None until
    /// first read, with SkipAssignment).
    pub counts: Option<BTreeMap<String, i32>>,
}

impl LeaderState {
    /// Decode the members of a JoinGroup response.
    pub(crate) fn from_join(group: &mut Group, response: &JoinGroupResponse) -> Self {
        let mut members = Vec::with_capacity(response.members.len());
        for m in &response.members {
            let member_id = m.member_id.as_str().to_owned();
            let instance_id = m.group_instance_id.as_ref().map(|s| s.as_str().to_owned());
            match Subscription::decode(&m.metadata) {
                Ok((_, sub)) => members.push(MemberSubscription {
                    member_id,
                    instance_id,
                    rack: sub.rack_id,
                    topics: sub.topics,
                    owned: sub.owned_partitions,
                    generation: (sub.generation_id >= 0).then_some(sub.generation_id),
                    user_data: sub.user_data,
                }),
                Err(source) => {
                    let (g, me) = group.names();
                    group
                        .events
                        .push_back(Event::Warning(GroupError::CorruptSubscription {
                            group: g,
                            member: me,
                            subject: member_id.clone(),
                            source,
                        }));
                    members.push(MemberSubscription {
                        member_id,
                        instance_id,
                        ..MemberSubscription::default()
                    });
                }
            }
        }
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        members.dedup_by(|a, b| a.member_id == b.member_id);
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let skip_assignment = response.skip_assignment;
        // KIP-814: keep watching metadata even when the coordinator skips
        // our assignment; the first read sets the snapshot.
        group.identity.watch = Some(MetadataWatch {
            topics: topics.clone(),
            counts: None,
        });
        if skip_assignment {
            group.metadata_due = true;
        }
        Self {
            members,
            topics,
            metadata_requested: false,
            assignments: skip_assignment.then(Vec::new),
            withheld: BTreeSet::new(),
            skipped: skip_assignment,
        }
    }
}

impl Group {
    /// Metadata on the bootstrap connection: the leader's fetch before
    /// assigning, or its periodic watch.
    pub(crate) fn poll_metadata(&mut self, now: Instant, version: i16) -> Option<Transmit> {
        let topics = match &mut self.phase {
            Phase::AwaitingSync(SyncState {
                leader: Some(l), ..
            }) if l.assignments.is_none() && !l.metadata_requested => {
                if l.topics.is_empty() {
                    // Nothing subscribed: assign from empty metadata at once.
                    l.metadata_requested = true;
                    self.assign_from_metadata(ClusterMetadata::new());
                    return None;
                }
                l.topics.clone()
            }
            _ => {
                let watch = self.identity.watch.as_ref()?;
                if !self.metadata_due || watch.topics.is_empty() {
                    return None;
                }
                watch.topics.clone()
            }
        };
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let timeout = self.config.request_timeout;
        match self.send(
            now,
            Role::Bootstrap,
            ApiKey::Metadata,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => {
                self.metadata_due = false;
                if let Phase::AwaitingSync(SyncState {
                    leader: Some(l), ..
                }) = &mut self.phase
                {
                    l.metadata_requested = true;
                }
                Some(t)
            }
            Err(source) => {
                self.fail_wire(ApiKey::Metadata, source);
                None
            }
        }
    }

    /// A Metadata response.
    pub(crate) fn on_metadata_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        let stale = pending.tag.generation != self.identity.generation
            || pending.tag.member_id != self.identity.member_id;
        let response = match crate::wire::decode_response::<MetadataResponse>(
            ApiKey::Metadata,
            pending.version,
            frame,
        ) {
            Ok((_, r)) => r,
            Err(e) => {
                self.warn_wire(ApiKey::Metadata, e);
                self.on_metadata_failure(now);
                return;
            }
        };
        if stale {
            self.unrequest_metadata();
            return;
        }
        let metadata = cluster_metadata(&response);
        let assigning = matches!(
            &self.phase,
            Phase::AwaitingSync(SyncState { leader: Some(l), .. }) if l.assignments.is_none()
        );
        if assigning {
            self.assign_from_metadata(metadata);
            return;
        }
        let counts = counts_of(&metadata);
        if let Some(watch) = &mut self.identity.watch {
            match &watch.counts {
                None => watch.counts = Some(counts),
                Some(old) if *old != counts => {
                    self.request_rejoin(now, RejoinReason::MetadataChanged);
                }
                Some(_) => {}
            }
            self.timers
                .set(Timer::MetadataRefresh, now + self.config.metadata_max_age);
        }
    }

    /// Metadata failed: ask again after a backoff.
    pub(crate) fn on_metadata_failure(&mut self, now: Instant) {
        self.unrequest_metadata();
        if self.identity.watch.is_some() {
            self.metadata_due = true;
        }
        self.bootstrap_backoff(now);
    }

    fn unrequest_metadata(&mut self) {
        if let Phase::AwaitingSync(SyncState {
            leader: Some(l), ..
        }) = &mut self.phase
        {
            l.metadata_requested = false;
        }
    }

    /// Run the assignor on `metadata`, validate, encode.
    fn assign_from_metadata(&mut self, metadata: ClusterMetadata) {
        let Phase::AwaitingSync(state) = &self.phase else {
            return;
        };
        let Some(leader) = &state.leader else {
            return;
        };
        let protocol = state.protocol.as_str().to_owned();
        let Some(assignor) = self
            .config
            .assignors
            .iter()
            .find(|a| a.name() == protocol)
            .cloned()
        else {
            return;
        };
        let members = leader.members.clone();
        let result = match assignor.assign(&metadata, &members) {
            Ok(r) => r,
            Err(source) => {
                let (group, member) = self.names();
                self.fail(GroupError::Assignor {
                    group,
                    member,
                    assignor: protocol,
                    source,
                });
                return;
            }
        };
        let (assignment, problems) = validate(&members, result);
        let withheld = withheld(&members, &assignment, &metadata);
        let (group, me) = self.names();
        for (partition, to, owner) in problems {
            self.events
                .push_back(Event::Warning(GroupError::InvalidLeaderAssignment {
                    group: group.clone(),
                    member: me.clone(),
                    assignor: protocol.clone(),
                    partition,
                    to,
                    owner,
                }));
        }
        let mut encoded = Vec::with_capacity(members.len());
        for m in &members {
            let a = assignment.get(&m.member_id).cloned().unwrap_or_default();
            let mut payload = Assignment::new(a.partitions);
            payload.user_data = a.user_data;
            match payload.encode(CONSUMER_PROTOCOL_MAX_VERSION) {
                Ok(bytes) => encoded.push(
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_assignment(bytes),
                ),
                Err(source) => {
                    self.fail_wire(ApiKey::SyncGroup, source);
                    return;
                }
            }
        }
        let counts = counts_of(&metadata);
        if let Some(watch) = &mut self.identity.watch {
            watch.counts = Some(counts);
        }
        if let Phase::AwaitingSync(SyncState {
            leader: Some(l), ..
        }) = &mut self.phase
        {
            l.assignments = Some(encoded);
            l.withheld = withheld;
        }
    }
}

/// Topic metadata the assignor needs: partition counts, and replica racks
/// when every broker reports one.
fn cluster_metadata(response: &MetadataResponse) -> ClusterMetadata {
    let racks: BTreeMap<i32, &str> = response
        .brokers
        .iter()
        .filter_map(|b| b.rack.as_ref().map(|r| (b.node_id.0, r.as_str())))
        .collect();
    let all_racked = !response.brokers.is_empty() && racks.len() == response.brokers.len();
    let mut metadata = ClusterMetadata::new();
    for topic in &response.topics {
        let Some(name) = &topic.name else { continue };
        if topic.error_code != 0 {
            continue;
        }
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let mut partition_racks = Vec::new();
        if all_racked {
            let mut parts: Vec<_> = topic.partitions.iter().collect();
            parts.sort_by_key(|p| p.partition_index);
            let dense = parts
                .iter()
                .enumerate()
                .all(|(i, p)| usize::try_from(p.partition_index).is_ok_and(|x| x == i));
            if dense {
                partition_racks = parts
                    .iter()
                    .map(|p| {
                        let mut r: Vec<String> = p
                            .replica_nodes
                            .iter()
                            .filter_map(|n| racks.get(&n.0).map(|s| (*s).to_owned()))
                            .collect();
                        r.sort();
                        r.dedup();
                        r
                    })
                    .collect();
            }
        }
        metadata.insert(
            name.0.as_str().to_owned(),
            TopicInfo {
                partitions: count,
                partition_racks,
            },
        );
    }
    metadata
}

fn counts_of(metadata: &ClusterMetadata) -> BTreeMap<String, i32> {
    metadata
        .iter()
        .map(|(t, info)| (t.clone(), info.partitions))
        .collect()
}

/// Partitions some member claims (subscription owned partitions) that still
/// exist and that the cleaned assignment gives to nobody: the cooperative
/// transfers held back this round (Java's `CooperativeStickyAssignor`
/// `adjustAssignment`, or [`validate`]).
fn withheld(
    members: &[MemberSubscription],
    assignment: &GroupAssignment,
    metadata: &ClusterMetadata,
) -> BTreeSet<TopicPartition> {
    let given: BTreeSet<&TopicPartition> = assignment
        .values()
        .flat_map(|a| a.partitions.iter())
        .collect();
    members
        .iter()
        .flat_map(|m| m.owned.iter())
        .filter(|tp| {
            metadata
                .get(&tp.topic)
                .is_some_and(|t| tp.partition >= 0 && tp.partition < t.partitions)
        })
        .filter(|tp| !given.contains(tp))
        .cloned()
        .collect()
}

/// Who owns what this round: the highest-generation claim wins; equal claims
/// at the top generation are contested (`None`).
fn current_owners(
    members: &[MemberSubscription],
) -> BTreeMap<&TopicPartition, (i32, Option<&str>)> {
    let mut owners: BTreeMap<&TopicPartition, (i32, Option<&str>)> = BTreeMap::new();
    for m in members {
        let generation = m.generation.unwrap_or(-1);
        for tp in &m.owned {
            match owners.get(tp) {
                Some((g, _)) if *g > generation => {}
                Some((g, _)) if *g == generation => {
                    owners.insert(tp, (generation, None));
                }
                _ => {
                    owners.insert(tp, (generation, Some(m.member_id.as_str())));
                }
            }
        }
    }
    owners
}

/// Withhold every partition that would have two owners this round. Returns
/// the cleaned assignment (an entry per member) and the problems found as
/// `(partition, given to, owner)`.
pub(crate) fn validate(
    members: &[MemberSubscription],
    mut result: GroupAssignment,
) -> (GroupAssignment, Vec<(TopicPartition, String, String)>) {
    let owners = current_owners(members);
    let mut given: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut cleaned = GroupAssignment::new();
    for m in members {
        let mut a = result.remove(&m.member_id).unwrap_or_default();
        a.partitions.sort();
        a.partitions.dedup();
        a.partitions.retain(|tp| {
            let owner_conflict = match owners.get(tp) {
                Some((_, Some(owner))) if *owner != m.member_id => Some((*owner).to_owned()),
                Some((_, None)) => Some("several members (equal generations)".to_owned()),
                _ => None,
            };
            if let Some(owner) = owner_conflict {
                problems.push((tp.clone(), m.member_id.clone(), owner));
                return false;
            }
            if let Some(first) = given.get(tp) {
                problems.push((tp.clone(), m.member_id.clone(), first.clone()));
                return false;
            }
            given.insert(tp.clone(), m.member_id.clone());
            true
        });
        cleaned.insert(m.member_id.clone(), a);
    }
    (cleaned, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignor::MemberAssignment;

    fn member(id: &str, generation: Option<i32>, owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            topics: vec!["t".into()],
            owned: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
            generation,
            ..MemberSubscription::default()
        }
    }

    fn assign(pairs: &[(&str, &[i32])]) -> GroupAssignment {
        pairs
            .iter()
            .map(|(m, ps)| {
                (
                    (*m).to_owned(),
                    MemberAssignment {
                        partitions: ps.iter().map(|p| TopicPartition::new("t", *p)).collect(),
                        user_data: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_partition_still_owned_by_another_member_is_withheld() {
        let members = [member("a", Some(3), &[("t", 0)]), member("b", Some(3), &[])];
        let (clean, problems) = validate(&members, assign(&[("a", &[]), ("b", &[0])]));
        assert!(clean["b"].partitions.is_empty());
        assert!(clean["a"].partitions.is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].1, "b");
        assert_eq!(problems[0].2, "a");
    }

    #[test]
    fn the_higher_generation_claim_wins() {
        let members = [
            member("a", Some(2), &[("t", 0)]),
            member("b", Some(5), &[("t", 0)]),
        ];
        let (clean, problems) = validate(&members, assign(&[("a", &[0]), ("b", &[])]));
        assert!(
            clean["a"].partitions.is_empty(),
            "stale claim of a is beaten by b"
        );
        assert_eq!(problems.len(), 1);
        let (clean, problems) = validate(&members, assign(&[("a", &[]), ("b", &[0])]));
        assert_eq!(clean["b"].partitions, vec![TopicPartition::new("t", 0)]);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_partition_given_twice_stays_with_the_first_and_every_member_has_an_entry() {
        let members = [
            member("a", None, &[]),
            member("b", None, &[]),
            member("c", None, &[]),
        ];
        let (clean, problems) = validate(&members, assign(&[("a", &[0]), ("b", &[0, 1])]));
        assert_eq!(clean["a"].partitions, vec![TopicPartition::new("t", 0)]);
        assert_eq!(clean["b"].partitions, vec![TopicPartition::new("t", 1)]);
        assert!(clean["c"].partitions.is_empty());
        assert_eq!(problems.len(), 1);
    }
}
