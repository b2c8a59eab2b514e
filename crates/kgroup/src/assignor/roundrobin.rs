//! The `roundrobin` assignor, result-for-result identical to the Java client's
//! `RoundRobinAssignor`.
//!
//! All partitions of all subscribed topics are laid out sorted by topic name
//! (Java `String` order) then partition; members are ordered as Java's
//! `MemberInfo` orders them (static members first by instance id). A circular
//! cursor over the members hands each partition to the next member, skipping
//! members not subscribed to the partition's topic.
//!
//! Java advances the cursor one member at a time; here the next subscriber is
//! found by binary search in the topic's subscriber ranks, which gives the
//! same member in `O(log n)` instead of `O(members)` per partition.

use super::prep::{NONE, Prepared};
use super::{
    AssignError, Assignor, ClusterMetadata, GroupAssignment, MemberSubscription, RebalanceProtocol,
    java_member_order, java_str_cmp,
};

/// The `roundrobin` assignor (eager).
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        let kind = super::Builtin::RoundRobin;
        Ok(kind
            .assign_compact(metadata, members)?
            .to_group_assignment())
    }
}

/// Runs Java's round-robin; returns the owner of every global partition.
pub(crate) fn assign_roundrobin(prep: &Prepared<'_>) -> Vec<u32> {
    let mut owner = vec![NONE; prep.num_partitions()];
    let rank = java_member_order(&prep.members);
    let n = prep.members.len() as u32;
    // by_rank[r] = member index at circular position r
    let mut by_rank = vec![0u32; n as usize];
    for (m, &r) in rank.iter().enumerate() {
        if let Some(slot) = by_rank.get_mut(r as usize) {
            *slot = m as u32;
        }
    }
    let mut topics: Vec<u32> = (0..prep.num_topics() as u32).collect();
    topics.sort_by(|&a, &b| {
        let na = prep.topic_names.get(a as usize).copied().unwrap_or("");
        let nb = prep.topic_names.get(b as usize).copied().unwrap_or("");
        java_str_cmp(na, nb)
    });
    let mut cursor: u32 = 0; // circular position of the next member
    for t in topics {
        let mut ranks: Vec<u32> = prep
            .topic_members
            .get(t as usize)
            .map(|ms| {
                ms.iter()
                    .filter_map(|&m| rank.get(m as usize).copied())
                    .collect()
            })
            .unwrap_or_default();
        ranks.sort_unstable();
        let (Some(&first), false) = (ranks.first(), n == 0) else {
            continue;
        };
        for g in prep.range(t) {
            // first subscriber at or after the cursor, wrapping around
            let i = ranks.partition_point(|&r| r < cursor);
            let r = ranks.get(i).copied().unwrap_or(first);
            if let (Some(o), Some(&m)) = (owner.get_mut(g as usize), by_rank.get(r as usize)) {
                *o = m;
            }
            cursor = (r + 1) % n;
        }
    }
    owner
}
