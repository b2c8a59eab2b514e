//! Building OffsetCommit/OffsetFetch request bodies and reading their
//! responses against what was asked, as pure functions.
//!
//! Reading checks the response against the request: a partition never asked
//! for, or listed twice, makes the whole response invalid
//! ([`ResponseViolation`]); a partition asked for but missing, an offset below
//! −1 or oversized metadata is an error of that partition only. Nothing here
//! panics or allocates more than the (already bounded) response holds.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::TopicPartition;

use super::classify::{
    CommitCode, FetchCode, GroupLevel, commit_code, fetch_group_code, fetch_partition_code,
};
use super::error::{PartitionCommitError, PartitionFetchError, ResponseViolation};
use super::types::{CommittedOffset, FetchedOffsets};

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Who the commit is sent as.
pub(crate) struct Sender<'a> {
    pub group_id: &'a str,
    pub generation: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
}

/// An OffsetCommit body at `version`, carrying generation, member id and
/// (v7+) instance id as Java's `ConsumerCoordinator.sendOffsetCommitRequest`
/// does. `Err(UnsupportedVersion)` when a static member would have to drop
/// its instance id (v < 7), as Java's builder refuses to.
pub(crate) fn commit_request(
    sender: &Sender<'_>,
    version: i16,
    offsets: &BTreeMap<TopicPartition, CommittedOffset>,
) -> Result<OffsetCommitRequest, ResponseError> {
    if sender.instance_id.is_some() && version < 7 {
        return Err(ResponseError::UnsupportedVersion);
    }
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (tp, o) in offsets {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(if version >= 6 {
                o.leader_epoch.unwrap_or(-1)
            } else {
                -1
            })
            .with_committed_metadata(o.metadata.as_deref().map(str_bytes));
        // BTreeMap order: partitions of one topic are adjacent.
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(partition),
            _ => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(&tp.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    Ok(OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(sender.group_id)))
        .with_generation_id_or_member_epoch(sender.generation)
        .with_member_id(str_bytes(sender.member_id))
        .with_group_instance_id(if version >= 7 {
            sender.instance_id.map(str_bytes)
        } else {
            None
        })
        .with_retention_time_ms(-1)
        .with_topics(topics))
}

/// An OffsetFetch body at `version` for `partitions`. Classic members send
/// no member id/epoch (v9 fields are for KIP-848 members).
pub(crate) fn fetch_request(
    group_id: &str,
    version: i16,
    partitions: &BTreeSet<TopicPartition>,
    require_stable: bool,
) -> OffsetFetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    let req = OffsetFetchRequest::default().with_require_stable(version >= 7 && require_stable);
    if version >= 8 {
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps)
            })
            .collect();
        req.with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(Some(topics)),
        ])
    } else {
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps)
            })
            .collect();
        req.with_group_id(GroupId(str_bytes(group_id)))
            .with_topics(Some(topics))
    }
}

/// An OffsetCommit response read against the offsets sent.
#[derive(Debug, Default)]
pub(crate) struct CommitReply {
    /// The most severe group-level error, if any partition carried one.
    pub group: Option<GroupLevel>,
    /// Committed partitions.
    pub ok: Vec<TopicPartition>,
    /// Partitions to re-send (retriable partition errors), with their error.
    pub retry: Vec<(TopicPartition, PartitionCommitError)>,
    /// Final partition failures (including those missing from the response).
    pub failed: Vec<(TopicPartition, PartitionCommitError)>,
}

/// Read an OffsetCommit response against `sent`.
/// The OffsetCommit response a coordinator gives when it answers each
/// partition of `request` with `code(topic, partition)` (0 for success), in
/// the request's order; `code` may record what it accepts. For simulators,
/// mock brokers and tests that play the coordinator; the engine itself only
/// reads responses.
pub fn commit_response_for(
    request: &OffsetCommitRequest,
    mut code: impl FnMut(&str, &OffsetCommitRequestPartition) -> i16,
) -> OffsetCommitResponse {
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(t.name.as_str(), p))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub(crate) fn read_commit(
    sent: &BTreeMap<TopicPartition, CommittedOffset>,
    resp: &OffsetCommitResponse,
) -> Result<CommitReply, ResponseViolation> {
    let mut reply = CommitReply::default();
    let mut seen: BTreeSet<TopicPartition> = BTreeSet::new();
    for topic in &resp.topics {
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            if !sent.contains_key(&tp) {
                return Err(ResponseViolation::Unrequested(tp));
            }
            if seen.contains(&tp) {
                return Err(ResponseViolation::Duplicate(tp));
            }
            match commit_code(p.error_code) {
                CommitCode::Ok => reply.ok.push(tp.clone()),
                CommitCode::Group(level) => {
                    reply.group = Some(GroupLevel::max_by_severity(reply.group, level))
                }
                CommitCode::Partition {
                    error,
                    retriable: true,
                } => reply.retry.push((tp.clone(), error)),
                CommitCode::Partition {
                    error,
                    retriable: false,
                } => reply.failed.push((tp.clone(), error)),
            }
            seen.insert(tp);
        }
    }
    for tp in sent.keys() {
        if !seen.contains(tp) {
            reply
                .failed
                .push((tp.clone(), PartitionCommitError::MissingFromResponse));
        }
    }
    reply.failed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reply)
}

/// An OffsetFetch response read against the partitions asked for.
#[derive(Debug, Default)]
pub(crate) struct FetchReply {
    /// Group-level error (top-level, per-group, or a group code on a partition).
    pub group: Option<GroupLevel>,
    /// Final per-partition results.
    pub results: FetchedOffsets,
    /// Partitions answered `UNSTABLE_OFFSET_COMMIT`: fetch again.
    pub unstable: BTreeSet<TopicPartition>,
}

/// One partition entry, whatever the response version.
struct Entry<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&'a StrBytes>,
    error_code: i16,
}

/// Read an OffsetFetch response (`version` = the request's) against `asked`.
pub(crate) fn read_fetch(
    group_id: &str,
    version: i16,
    asked: &BTreeSet<TopicPartition>,
    resp: &OffsetFetchResponse,
    max_metadata: usize,
) -> Result<FetchReply, ResponseViolation> {
    let mut reply = FetchReply::default();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    if version >= 8 {
        let mut ours = resp
            .groups
            .iter()
            .filter(|g| g.group_id.0.as_str() == group_id);
        let (Some(group), None) = (ours.next(), ours.next()) else {
            let count = resp
                .groups
                .iter()
                .filter(|g| g.group_id.0.as_str() == group_id)
                .count();
            return Err(ResponseViolation::GroupEntries {
                group: group_id.to_owned(),
                count,
            });
        };
        if let FetchCode::Group(level) = fetch_group_code(group.error_code) {
            reply.group = Some(level);
        }
        for t in &group.topics {
            for p in &t.partitions {
                entries.push(Entry {
                    topic: t.name.0.as_str(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.metadata.as_ref(),
                    error_code: p.error_code,
                });
            }
        }
    } else {
        if version >= 2
            && let FetchCode::Group(level) = fetch_group_code(resp.error_code)
        {
            reply.group = Some(level);
        }
        for t in &resp.topics {
            for p in &t.partitions {
                entries.push(Entry {
                    topic: t.name.0.as_str(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.metadata.as_ref(),
                    error_code: p.error_code,
                });
            }
        }
    }
    for e in entries {
        let tp = TopicPartition::new(e.topic, e.partition);
        if !asked.contains(&tp) {
            return Err(ResponseViolation::Unrequested(tp));
        }
        if reply.results.contains_key(&tp) || reply.unstable.contains(&tp) {
            return Err(ResponseViolation::Duplicate(tp));
        }
        match fetch_partition_code(e.error_code) {
            FetchCode::Ok => {
                let r = read_offset(&e, max_metadata);
                reply.results.insert(tp, r);
            }
            FetchCode::Unstable => {
                reply.unstable.insert(tp);
            }
            FetchCode::Partition(err) => {
                reply.results.insert(tp, Err(err));
            }
            FetchCode::Group(level) => {
                reply.group = Some(GroupLevel::max_by_severity(reply.group, level));
                // Keep the partition accounted for so a duplicate is still caught.
                reply
                    .results
                    .insert(tp, Err(PartitionFetchError::Unexpected(level.error())));
            }
        }
    }
    for tp in asked {
        if !reply.results.contains_key(tp) && !reply.unstable.contains(tp) {
            reply
                .results
                .insert(tp.clone(), Err(PartitionFetchError::MissingFromResponse));
        }
    }
    Ok(reply)
}

fn read_offset(
    e: &Entry<'_>,
    max_metadata: usize,
) -> Result<Option<CommittedOffset>, PartitionFetchError> {
    // −1 = nothing committed (apply the reset policy), PROTOCOL.md §2.8.
    if e.offset == -1 {
        return Ok(None);
    }
    if e.offset < 0 {
        return Err(PartitionFetchError::InvalidOffset(e.offset));
    }
    let metadata = match e.metadata {
        Some(m) if m.len() > max_metadata => {
            return Err(PartitionFetchError::MetadataTooLarge {
                len: m.len(),
                max: max_metadata,
            });
        }
        Some(m) => Some(m.as_str().to_owned()),
        None => None,
    };
    Ok(Some(CommittedOffset {
        offset: e.offset,
        leader_epoch: (e.leader_epoch >= 0).then_some(e.leader_epoch),
        metadata,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn sender() -> Sender<'static> {
        Sender {
            group_id: "g",
            generation: 7,
            member_id: "m-1",
            instance_id: Some("i-1"),
        }
    }

    #[test]
    fn commit_request_carries_identity_and_groups_partitions_by_topic() {
        let offsets: BTreeMap<_, _> = [
            (tp("a", 1), CommittedOffset::new(10).with_leader_epoch(3)),
            (tp("a", 0), CommittedOffset::new(5).with_metadata("m")),
            (tp("b", 0), CommittedOffset::new(1)),
        ]
        .into_iter()
        .collect();
        let r = commit_request(&sender(), 9, &offsets).unwrap();
        assert_eq!(r.generation_id_or_member_epoch, 7);
        assert_eq!(r.member_id.as_str(), "m-1");
        assert_eq!(r.group_instance_id.as_deref(), Some("i-1"));
        assert_eq!(r.topics.len(), 2);
        assert_eq!(r.topics[0].partitions.len(), 2);
        assert_eq!(r.topics[0].partitions[1].committed_leader_epoch, 3);
        assert_eq!(
            r.topics[0].partitions[0].committed_metadata.as_deref(),
            Some("m")
        );
        // v5 has no leader epoch; a static member cannot commit below v7.
        let mut dynamic = sender();
        dynamic.instance_id = None;
        let r5 = commit_request(&dynamic, 5, &offsets).unwrap();
        assert_eq!(r5.topics[0].partitions[1].committed_leader_epoch, -1);
        assert_eq!(
            commit_request(&sender(), 6, &offsets),
            Err(ResponseError::UnsupportedVersion)
        );
    }

    #[test]
    fn fetch_request_shape_follows_the_version() {
        let asked: BTreeSet<_> = [tp("a", 0), tp("a", 2)].into_iter().collect();
        let v9 = fetch_request("g", 9, &asked, true);
        assert!(v9.require_stable);
        assert_eq!(v9.groups.len(), 1);
        assert_eq!(
            v9.groups[0]
                .topics
                .as_ref()
                .map(|t| t[0].partition_indexes.clone()),
            Some(vec![0, 2])
        );
        let v6 = fetch_request("g", 6, &asked, true);
        assert!(!v6.require_stable, "RequireStable exists from v7");
        assert!(v6.groups.is_empty());
        assert_eq!(v6.group_id.0.as_str(), "g");
    }

    fn commit_resp(entries: &[(&str, i32, i16)]) -> OffsetCommitResponse {
        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (t, p, code) in entries {
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                    .with_partitions(vec![
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(*p)
                            .with_error_code(*code),
                    ]),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    #[test]
    fn commit_response_with_unrequested_or_duplicate_partitions_is_invalid() {
        let sent: BTreeMap<_, _> = [(tp("a", 0), CommittedOffset::new(1))]
            .into_iter()
            .collect();
        assert_eq!(
            read_commit(&sent, &commit_resp(&[("a", 0, 0), ("a", 9, 0)])).unwrap_err(),
            ResponseViolation::Unrequested(tp("a", 9))
        );
        assert_eq!(
            read_commit(&sent, &commit_resp(&[("a", 0, 0), ("a", 0, 0)])).unwrap_err(),
            ResponseViolation::Duplicate(tp("a", 0))
        );
        let r = read_commit(&sent, &commit_resp(&[])).unwrap();
        assert_eq!(
            r.failed,
            vec![(tp("a", 0), PartitionCommitError::MissingFromResponse)]
        );
    }

    fn fetch_v8(
        group: &str,
        entries: &[(&str, i32, i64, Option<String>, i16)],
    ) -> OffsetFetchResponse {
        let topics = entries
            .iter()
            .map(|(t, p, off, meta, code)| {
                OffsetFetchResponseTopics::default()
                    .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                    .with_partitions(vec![
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*off)
                            .with_metadata(meta.clone().map(StrBytes::from_string))
                            .with_error_code(*code),
                    ])
            })
            .collect();
        OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_topics(topics),
        ])
    }

    #[test]
    fn fetch_response_hostile_values_are_typed_errors() {
        let asked: BTreeSet<_> = [tp("a", 0), tp("a", 1), tp("a", 2), tp("a", 3)]
            .into_iter()
            .collect();
        let resp = fetch_v8(
            "g",
            &[
                ("a", 0, -1, None, 0),
                ("a", 1, -5, None, 0),
                ("a", 2, 42, Some("x".repeat(10)), 0),
            ],
        );
        let r = read_fetch("g", 8, &asked, &resp, 4).unwrap();
        assert_eq!(r.results[&tp("a", 0)], Ok(None));
        assert_eq!(
            r.results[&tp("a", 1)],
            Err(PartitionFetchError::InvalidOffset(-5))
        );
        assert_eq!(
            r.results[&tp("a", 2)],
            Err(PartitionFetchError::MetadataTooLarge { len: 10, max: 4 })
        );
        assert_eq!(
            r.results[&tp("a", 3)],
            Err(PartitionFetchError::MissingFromResponse)
        );
        assert!(matches!(
            read_fetch("g", 8, &asked, &fetch_v8("g", &[("z", 0, 1, None, 0)]), 4),
            Err(ResponseViolation::Unrequested(_))
        ));
        assert!(matches!(
            read_fetch("g", 8, &asked, &fetch_v8("other", &[]), 4),
            Err(ResponseViolation::GroupEntries { count: 0, .. })
        ));
        let dup = fetch_v8("g", &[("a", 0, 1, None, 0), ("a", 0, 2, None, 0)]);
        assert_eq!(
            read_fetch("g", 8, &asked, &dup, 4).unwrap_err(),
            ResponseViolation::Duplicate(tp("a", 0))
        );
    }

    #[test]
    fn fetch_v1_to_v7_reads_topics_and_top_level_error() {
        let asked: BTreeSet<_> = [tp("a", 0)].into_iter().collect();
        let resp = OffsetFetchResponse::default()
            .with_error_code(ResponseError::CoordinatorLoadInProgress.code())
            .with_topics(vec![
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("a")))
                    .with_partitions(vec![
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(17)
                            .with_committed_leader_epoch(4),
                    ]),
            ]);
        let r = read_fetch("g", 7, &asked, &resp, 100).unwrap();
        assert_eq!(
            r.group,
            Some(GroupLevel::Retry(ResponseError::CoordinatorLoadInProgress))
        );
        let r1 = read_fetch("g", 1, &asked, &resp, 100).unwrap();
        assert_eq!(r1.group, None, "v1 has no top-level error field");
        assert_eq!(
            r1.results[&tp("a", 0)],
            Ok(Some(
                CommittedOffset::new(17)
                    .with_leader_epoch(4)
                    .with_metadata("")
            ))
        );
    }
}
