//! Interning of an assignor's input into compact integer form.
//!
//! Every built-in assignor first turns the string-keyed input into indices:
//! topics become `u32` indices (sorted by name, byte order), each partition a
//! global `u32` index (`offset[topic] + partition`), members `u32` indices
//! (sorted by member id). The hot loops then work on flat vectors only; strings
//! come back at the output boundary ([`Prepared::to_group_assignment`]).

use std::collections::BTreeMap;

use super::{AssignError, ClusterMetadata, GroupAssignment, MemberAssignment, MemberSubscription};
use crate::TopicPartition;

/// Marker for "no member" in owner arrays.
pub(crate) const NONE: u32 = u32::MAX;

/// The interned view of one assignment problem.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    /// Subscribed topics that exist in the metadata, sorted by name (byte order).
    pub topic_names: Vec<&'a str>,
    /// `offset[t]..offset[t + 1]` are the global indices of topic `t`'s partitions.
    pub offset: Vec<u32>,
    /// Members sorted by member id.
    pub members: Vec<&'a MemberSubscription>,
    /// Per member: the topic indices it subscribes to, sorted, deduplicated.
    pub member_topics: Vec<Vec<u32>>,
    /// Per topic: subscribing members, ascending.
    pub topic_members: Vec<Vec<u32>>,
    /// Topic name to index.
    by_name: BTreeMap<&'a str, u32>,
    metadata: &'a ClusterMetadata,
}

impl<'a> Prepared<'a> {
    /// Interns `metadata` and `members`; rejects duplicate member ids, negative
    /// partition counts, rack lists of the wrong length and more than
    /// `u32::MAX - 1` partitions in total.
    pub fn new(
        metadata: &'a ClusterMetadata,
        members: &'a [MemberSubscription],
    ) -> Result<Self, AssignError> {
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_unstable_by(|a, b| a.member_id.cmp(&b.member_id));
        for w in sorted.windows(2) {
            if let [a, b] = w
                && a.member_id == b.member_id
            {
                return Err(AssignError::DuplicateMember(a.member_id.clone()));
            }
        }
        // Union of subscribed topics present in the metadata.
        let mut by_name: BTreeMap<&'a str, u32> = BTreeMap::new();
        for m in &sorted {
            for t in &m.topics {
                if let Some((name, _)) = metadata.get_key_value(t.as_str()) {
                    by_name.insert(name.as_str(), 0);
                }
            }
        }
        let mut topic_names = Vec::with_capacity(by_name.len());
        let mut offset = Vec::with_capacity(by_name.len() + 1);
        let mut total: u64 = 0;
        offset.push(0u32);
        for (i, (name, idx)) in by_name.iter_mut().enumerate() {
            let info = metadata
                .get(*name)
                .ok_or_else(|| AssignError::InvalidMetadata {
                    topic: (*name).to_owned(),
                    reason: "topic vanished".into(),
                })?;
            if info.partitions < 0 {
                return Err(AssignError::InvalidMetadata {
                    topic: (*name).to_owned(),
                    reason: format!("negative partition count {}", info.partitions),
                });
            }
            if !info.partition_racks.is_empty()
                && info.partition_racks.len() != info.partitions as usize
            {
                return Err(AssignError::InvalidMetadata {
                    topic: (*name).to_owned(),
                    reason: format!(
                        "{} rack lists for {} partitions",
                        info.partition_racks.len(),
                        info.partitions
                    ),
                });
            }
            total += info.partitions as u64;
            if total >= u64::from(NONE) {
                return Err(AssignError::InvalidMetadata {
                    topic: (*name).to_owned(),
                    reason: "more than 2^32 - 2 partitions in total".into(),
                });
            }
            *idx = i as u32;
            topic_names.push(*name);
            offset.push(total as u32);
        }
        let mut member_topics = Vec::with_capacity(sorted.len());
        let mut topic_members = vec![Vec::new(); topic_names.len()];
        for (mi, m) in sorted.iter().enumerate() {
            let mut ts: Vec<u32> = m
                .topics
                .iter()
                .filter_map(|t| by_name.get(t.as_str()).copied())
                .collect();
            ts.sort_unstable();
            ts.dedup();
            for &t in &ts {
                if let Some(v) = topic_members.get_mut(t as usize) {
                    v.push(mi as u32);
                }
            }
            member_topics.push(ts);
        }
        Ok(Self {
            topic_names,
            offset,
            members: sorted,
            member_topics,
            topic_members,
            by_name,
            metadata,
        })
    }

    /// Number of topics.
    pub fn num_topics(&self) -> usize {
        self.topic_names.len()
    }

    /// Total number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.offset.last().copied().unwrap_or(0) as usize
    }

    /// Global index range of topic `t`.
    pub fn range(&self, t: u32) -> std::ops::Range<u32> {
        let t = t as usize;
        let start = self.offset.get(t).copied().unwrap_or(0);
        let end = self.offset.get(t + 1).copied().unwrap_or(start);
        start..end
    }

    /// Topic index by name.
    pub fn topic_index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// Replica racks of partition `p` of topic `t`, if known.
    pub fn partition_racks(&self, t: u32, partition: u32) -> &'a [String] {
        self.topic_names
            .get(t as usize)
            .and_then(|n| self.metadata.get(*n))
            .and_then(|info| info.partition_racks.get(partition as usize))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether member `m` subscribes to topic `t`.
    pub fn subscribes(&self, m: u32, t: u32) -> bool {
        self.member_topics
            .get(m as usize)
            .is_some_and(|ts| ts.binary_search(&t).is_ok())
    }

    /// Resolves partitions to global indices; unknown topics and out-of-range
    /// partitions are skipped. Consecutive partitions of one topic (the usual
    /// layout) cost one name lookup.
    pub fn resolve<'b>(
        &'b self,
        partitions: impl IntoIterator<Item = (&'b str, i32)> + 'b,
    ) -> impl Iterator<Item = u32> + 'b {
        let mut last: Option<(&'b str, Option<u32>)> = None;
        partitions
            .into_iter()
            .filter_map(move |(topic, partition)| {
                let t = match last {
                    Some((name, t)) if name == topic => t,
                    _ => {
                        let t = self.topic_index(topic);
                        last = Some((topic, t));
                        t
                    }
                }?;
                let r = self.range(t);
                let p = u32::try_from(partition).ok()?;
                let g = r.start.checked_add(p)?;
                (g < r.end).then_some(g)
            })
    }

    /// Converts an owner-per-partition array into the output map: every member
    /// present, partitions sorted (global index order is name order).
    pub fn to_group_assignment(&self, owner: &[u32]) -> GroupAssignment {
        let m = self.members.len();
        let mut counts = vec![0usize; m];
        for &o in owner {
            if let Some(c) = counts.get_mut(o as usize) {
                *c += 1;
            }
        }
        let mut lists: Vec<Vec<TopicPartition>> =
            counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for t in 0..self.num_topics() as u32 {
            let r = self.range(t);
            let name = self.topic_names.get(t as usize).copied().unwrap_or("");
            for g in r.clone() {
                let o = owner.get(g as usize).copied().unwrap_or(NONE);
                if let Some(list) = lists.get_mut(o as usize) {
                    list.push(TopicPartition::new(name, (g - r.start) as i32));
                }
            }
        }
        self.members
            .iter()
            .zip(lists)
            .map(|(mem, partitions)| {
                (
                    mem.member_id.clone(),
                    MemberAssignment {
                        partitions,
                        user_data: None,
                    },
                )
            })
            .collect()
    }
}
