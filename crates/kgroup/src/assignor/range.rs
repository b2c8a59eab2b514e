//! The `range` assignor, result-for-result identical to the Java client's
//! `RangeAssignor` (Kafka 3.5+, with the KIP-881 rack-aware pass).
//!
//! Per topic, subscribers are ordered as Java's `MemberInfo` orders them
//! (static members first by `group.instance.id`, then dynamic members by member
//! id, strings compared as UTF-16 like `String.compareTo`). Partitions are laid
//! out in order; the first `partitions % subscribers` consumers get one extra.
//!
//! When some topic "needs" rack-aware assignment (member racks known, not
//! disjoint from the replica racks, and not every partition on every rack),
//! Java first runs a rack-matching pass: topics with the same subscribers and
//! the same partition count are co-partitioned (partition `p` of all of them
//! to one consumer whose rack holds a replica of each), other topics get a
//! range pass restricted to rack-matching partitions; a plain range pass then
//! places what is left. Both passes respect the per-consumer quota, so the
//! counts are those of the plain range assignor.

use std::collections::BTreeMap;

use super::prep::{NONE, Prepared};
use super::{
    AssignError, Assignor, ClusterMetadata, GroupAssignment, MemberSubscription, RebalanceProtocol,
    java_member_order,
};

/// The `range` assignor (eager).
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        let kind = super::Builtin::Range;
        Ok(kind
            .assign_compact(metadata, members)?
            .to_group_assignment())
    }
}

/// Per-topic state, as Java's `RangeAssignor.TopicAssignmentState`.
struct TopicState<'p> {
    topic: u32,
    /// Subscribers in Java order.
    consumers: Vec<u32>,
    /// Consumer rack (empty racks count as none), parallel to `consumers`.
    racks: Vec<Option<&'p str>>,
    needs_rack: bool,
    /// Java's `partitionRacks.size()`: partition count when any subscriber has a rack.
    rack_map_len: u32,
    assigned: Vec<bool>,
    /// Every partition below this index is assigned.
    first_free: usize,
    num_assigned: Vec<u32>,
    per_consumer: u32,
    remaining_extra: u32,
    num_unassigned: u32,
}

impl TopicState<'_> {
    fn max_assignable(&self, ci: usize) -> u32 {
        let max = self.per_consumer + u32::from(self.remaining_extra > 0);
        max.saturating_sub(self.num_assigned.get(ci).copied().unwrap_or(0))
    }

    fn racks_match(&self, prep: &Prepared<'_>, ci: usize, partition: u32) -> bool {
        match self.racks.get(ci).copied().flatten() {
            None => true,
            Some(rack) => prep
                .partition_racks(self.topic, partition)
                .iter()
                .any(|r| r == rack),
        }
    }

    fn on_assigned(&mut self, ci: usize, partitions: &[u32]) {
        for &p in partitions {
            if let Some(a) = self.assigned.get_mut(p as usize) {
                *a = true;
            }
        }
        while self.assigned.get(self.first_free) == Some(&true) {
            self.first_free += 1;
        }
        if let Some(n) = self.num_assigned.get_mut(ci) {
            *n += partitions.len() as u32;
            if *n > self.per_consumer {
                self.remaining_extra = self.remaining_extra.saturating_sub(1);
            }
        }
        self.num_unassigned = self.num_unassigned.saturating_sub(partitions.len() as u32);
    }
}

/// Runs Java's range algorithm; returns the owner of every global partition.
pub(crate) fn assign_range(prep: &Prepared<'_>) -> Vec<u32> {
    let mut owner = vec![NONE; prep.num_partitions()];
    let rank = java_member_order(&prep.members);
    let member_rack: Vec<Option<&str>> = prep
        .members
        .iter()
        .map(|m| m.rack.as_deref().filter(|r| !r.is_empty()))
        .collect();

    let mut states: Vec<TopicState<'_>> = Vec::new();
    for t in 0..prep.num_topics() as u32 {
        let r = prep.range(t);
        let n = r.end - r.start;
        if n == 0 {
            continue; // Java drops topics without partitions
        }
        let mut consumers = prep
            .topic_members
            .get(t as usize)
            .cloned()
            .unwrap_or_default();
        consumers.sort_by_key(|&m| rank.get(m as usize).copied().unwrap_or(u32::MAX));
        let racks: Vec<Option<&str>> = consumers
            .iter()
            .map(|&m| member_rack.get(m as usize).copied().flatten())
            .collect();
        let consumer_racks: std::collections::BTreeSet<&str> =
            racks.iter().flatten().copied().collect();
        let (needs_rack, rack_map_len) = if consumer_racks.is_empty() {
            (false, 0)
        } else {
            let mut all: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
            let mut per: Vec<std::collections::BTreeSet<&str>> = Vec::with_capacity(n as usize);
            for p in 0..n {
                let set: std::collections::BTreeSet<&str> = prep
                    .partition_racks(t, p)
                    .iter()
                    .map(String::as_str)
                    .collect();
                all.extend(set.iter().copied());
                per.push(set);
            }
            // AbstractPartitionAssignor.useRackAwareAssignment
            let needs = !consumer_racks.is_disjoint(&all) && per.iter().any(|s| *s != all);
            (needs, n)
        };
        let c = consumers.len() as u32;
        states.push(TopicState {
            topic: t,
            racks,
            needs_rack,
            rack_map_len,
            assigned: vec![false; n as usize],
            first_free: 0,
            num_assigned: vec![0; consumers.len()],
            per_consumer: n.checked_div(c).unwrap_or(0),
            remaining_extra: n.checked_rem(c).unwrap_or(0),
            num_unassigned: n,
            consumers,
        });
    }

    if states.iter().any(|s| s.needs_rack) {
        // Group by (subscribers, rack map size), as Java's two groupingBy calls.
        let mut groups: BTreeMap<(&[u32], u32), Vec<usize>> = BTreeMap::new();
        for (i, s) in states.iter().enumerate() {
            groups
                .entry((s.consumers.as_slice(), s.rack_map_len))
                .or_default()
                .push(i);
        }
        let groups: Vec<((u32, usize), Vec<usize>)> = groups
            .into_iter()
            .map(|((c, n), v)| ((n, c.len()), v))
            .collect();
        for ((num_partitions, num_consumers), idx) in groups {
            if idx.len() > 1 {
                co_partitioned(
                    prep,
                    &mut states,
                    &idx,
                    num_partitions,
                    num_consumers,
                    &mut owner,
                );
            } else if let Some(&i) = idx.first()
                && let Some(s) = states.get_mut(i)
                && s.needs_rack
            {
                assign_ranges(prep, s, true, &mut owner);
            }
        }
    }
    for s in &mut states {
        assign_ranges(prep, s, false, &mut owner);
    }
    owner
}

/// Java's `assignRanges`: consumers in order take up to their quota of the
/// still unassigned partitions (only rack-matching ones when `rack_only`).
fn assign_ranges(prep: &Prepared<'_>, s: &mut TopicState<'_>, rack_only: bool, owner: &mut [u32]) {
    let base = prep.range(s.topic).start;
    let mut picked = Vec::new();
    for ci in 0..s.consumers.len() {
        if s.num_unassigned == 0 {
            break;
        }
        let limit = s.max_assignable(ci) as usize;
        picked.clear();
        if limit > 0 {
            // partitions before the first unassigned one are all taken
            let first = s.first_free;
            let tail = s.assigned.get(first..).unwrap_or(&[]);
            for (p, &done) in tail.iter().enumerate().map(|(i, d)| (i + first, d)) {
                if picked.len() >= limit {
                    break;
                }
                if !done && (!rack_only || s.racks_match(prep, ci, p as u32)) {
                    picked.push(p as u32);
                }
            }
        }
        if picked.is_empty() {
            continue;
        }
        let m = s.consumers.get(ci).copied().unwrap_or(NONE);
        for &p in &picked {
            if let Some(o) = owner.get_mut((base + p) as usize) {
                *o = m;
            }
        }
        s.on_assigned(ci, &picked);
    }
}

/// Java's `assignCoPartitionedWithRackMatching`.
fn co_partitioned(
    prep: &Prepared<'_>,
    states: &mut [TopicState<'_>],
    idx: &[usize],
    num_partitions: u32,
    num_consumers: usize,
    owner: &mut [u32],
) {
    let mut remaining: Vec<usize> = (0..num_consumers).collect();
    for p in 0..num_partitions {
        let found = remaining.iter().position(|&ci| {
            idx.iter().all(|&i| {
                states
                    .get(i)
                    .is_some_and(|s| s.racks_match(prep, ci, p) && s.max_assignable(ci) > 0)
            })
        });
        let Some(pos) = found else { continue };
        let ci = remaining.get(pos).copied().unwrap_or(0);
        for &i in idx {
            if let Some(s) = states.get_mut(i) {
                let g = prep.range(s.topic).start + p;
                if let Some(o) = owner.get_mut(g as usize) {
                    *o = s.consumers.get(ci).copied().unwrap_or(NONE);
                }
                s.on_assigned(ci, &[p]);
            }
        }
        if idx
            .iter()
            .all(|&i| states.get(i).is_none_or(|s| s.max_assignable(ci) == 0))
        {
            remaining.remove(pos);
            if remaining.is_empty() {
                break;
            }
        }
    }
}
