//! The built-ins by name, with a compact result form.
//!
//! [`Builtin::assign_compact`] runs a built-in assignor and returns its result
//! without building one `String` per partition: topic names are borrowed from
//! the metadata once, each member's partitions are a slice of global indices.
//! The [`Assignor`](super::Assignor) impls produce exactly the same assignment
//! and convert it with [`CompactAssignment::to_group_assignment`]; the CLI and
//! benchmarks read the compact form directly (a million partitions cost a
//! million allocations in the `TopicPartition` form).

use super::prep::{NONE, Prepared};
use super::{AssignError, ClusterMetadata, GroupAssignment, MemberAssignment, MemberSubscription};
use crate::TopicPartition;

/// One of the built-in assignors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Builtin {
    /// `range`
    Range,
    /// `roundrobin`
    RoundRobin,
    /// `sticky`
    Sticky,
    /// `cooperative-sticky`
    CooperativeSticky,
}

impl Builtin {
    /// The built-in registered under a protocol name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Self::Range),
            "roundrobin" => Some(Self::RoundRobin),
            "sticky" => Some(Self::Sticky),
            "cooperative-sticky" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }

    /// Protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::Sticky => "sticky",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Runs the assignor; same result as its [`Assignor::assign`](super::Assignor::assign).
    pub fn assign_compact<'a>(
        self,
        metadata: &'a ClusterMetadata,
        members: &'a [MemberSubscription],
    ) -> Result<CompactAssignment<'a>, AssignError> {
        let prep = Prepared::new(metadata, members)?;
        let owner = self.owners(&prep);
        Ok(CompactAssignment::new(prep, owner))
    }

    pub(crate) fn owners(self, prep: &Prepared<'_>) -> Vec<u32> {
        match self {
            Self::Range => super::range::assign_range(prep),
            Self::RoundRobin => super::roundrobin::assign_roundrobin(prep),
            Self::Sticky => super::sticky::assign_sticky(prep),
            Self::CooperativeSticky => super::sticky::assign_cooperative(prep),
        }
    }
}

/// An assignment with interned topics: every member of the input, in member
/// id order, with its partitions in (topic name, partition) order.
#[derive(Debug)]
pub struct CompactAssignment<'a> {
    topics: Vec<&'a str>,
    offset: Vec<u32>,
    member_ids: Vec<&'a str>,
    owner: Vec<u32>,
    start: Vec<u32>,
    parts: Vec<u32>,
}

impl<'a> CompactAssignment<'a> {
    pub(crate) fn new(prep: Prepared<'a>, owner: Vec<u32>) -> Self {
        let m = prep.members.len();
        let mut start = vec![0u32; m + 1];
        for &o in &owner {
            if let Some(s) = start.get_mut(o as usize + 1) {
                *s += 1;
            }
        }
        for i in 0..m {
            let prev = start.get(i).copied().unwrap_or(0);
            if let Some(s) = start.get_mut(i + 1) {
                *s += prev;
            }
        }
        let assigned = start.last().copied().unwrap_or(0) as usize;
        let mut parts = vec![0u32; assigned];
        let mut fill: Vec<u32> = start.clone();
        for (g, &o) in owner.iter().enumerate() {
            if let Some(f) = fill.get_mut(o as usize) {
                if let Some(slot) = parts.get_mut(*f as usize) {
                    *slot = g as u32;
                }
                *f += 1;
            }
        }
        let member_ids = prep.members.iter().map(|m| m.member_id.as_str()).collect();
        Self {
            topics: prep.topic_names,
            offset: prep.offset,
            member_ids,
            owner,
            start,
            parts,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.member_ids.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.member_ids.is_empty()
    }

    /// Member id of member `i` (member id order).
    pub fn member_id(&self, i: usize) -> &'a str {
        self.member_ids.get(i).copied().unwrap_or("")
    }

    /// Partitions of member `i`, sorted by topic name then partition.
    pub fn partitions(&self, i: usize) -> impl Iterator<Item = (&'a str, i32)> + '_ {
        let s = self.start.get(i).copied().unwrap_or(0) as usize;
        let e = self.start.get(i + 1).copied().unwrap_or(0) as usize;
        let slice = self.parts.get(s..e).unwrap_or(&[]);
        // walk topics alongside the sorted indices instead of searching each
        let mut t = 0usize;
        slice.iter().map(move |&g| {
            while self.offset.get(t + 1).is_some_and(|&o| o <= g) {
                t += 1;
            }
            let base = self.offset.get(t).copied().unwrap_or(0);
            (self.topics.get(t).copied().unwrap_or(""), (g - base) as i32)
        })
    }

    /// Member id owning `topic`/`partition` in this assignment, if any.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<&'a str> {
        let t = self.topics.binary_search(&topic).ok()?;
        let base = *self.offset.get(t)?;
        let end = *self.offset.get(t + 1)?;
        let g = base.checked_add(u32::try_from(partition).ok()?)?;
        if g >= end {
            return None;
        }
        let o = *self.owner.get(g as usize)?;
        (o != NONE).then(|| self.member_id(o as usize))
    }

    /// Total number of assigned partitions.
    pub fn assigned(&self) -> usize {
        self.parts.len()
    }

    /// The `TopicPartition` form the [`Assignor`](super::Assignor) trait returns.
    pub fn to_group_assignment(&self) -> GroupAssignment {
        (0..self.len())
            .map(|i| {
                let partitions = self
                    .partitions(i)
                    .map(|(t, p)| TopicPartition::new(t, p))
                    .collect();
                (
                    self.member_id(i).to_owned(),
                    MemberAssignment {
                        partitions,
                        user_data: None,
                    },
                )
            })
            .collect()
    }
}
