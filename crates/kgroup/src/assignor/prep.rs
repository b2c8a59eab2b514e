//! Interning of an assignor's input into compact integer form.
//!
//! Every built-in assignor first turns the string-keyed input into indices:
//! topics become `u32` indices (sorted by name, byte order), each partition a
//! global `u32` index (`offset[topic] + partition`), members `u32` indices
//! (sorted by member id). The hot loops then work on flat vectors only; strings
//! come back at the output boundary (`compact::CompactAssignment`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{AssignError, ClusterMetadata, MemberSubscription};

/// A fixed multiply-rotate hasher (FxHash's mixing) for topic-name lookups:
/// unseeded so results never depend on the process; tables using it are only
/// probed, never iterated.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FixedHasher(u64);

impl Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(dst) = w.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59))
                .wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type NameTable<'a> = HashMap<&'a str, u32, BuildHasherDefault<FixedHasher>>;

/// Topic name to metadata position, and metadata position to topic index.
#[derive(Debug)]
struct NameIndex<'a> {
    table: NameTable<'a>,
    remap: Vec<u32>,
}

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
    by_name: NameIndex<'a>,
    /// Subscription bitmap, topic-major (`words` u64 per topic), when small
    /// enough (at most 2^26 bits); else `subscribes` binary-searches.
    sub_bits: Vec<u64>,
    words: usize,
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
        // Metadata topics are already in name order (BTreeMap); intern them
        // through a hash table with a fixed (unseeded) hasher: lookups only,
        // never iterated, so the result cannot depend on hashing.
        let meta: Vec<(&'a str, &'a super::TopicInfo)> =
            metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut meta_idx: NameTable<'a> =
            NameTable::with_capacity_and_hasher(meta.len(), Default::default());
        for (i, (name, _)) in meta.iter().enumerate() {
            meta_idx.insert(name, i as u32);
        }
        let mut used = vec![false; meta.len()];
        let mut member_topics: Vec<Vec<u32>> = Vec::with_capacity(sorted.len());
        let mut last: Option<(&[String], usize)> = None;
        for (i, m) in sorted.iter().enumerate() {
            // members usually share subscription lists: reuse the previous
            // member's interned list when the names are the same
            if let Some((names, j)) = last
                && names == m.topics.as_slice()
                && let Some(prev) = member_topics.get(j)
            {
                let ts = prev.clone();
                member_topics.push(ts);
                continue;
            }
            let mut ts: Vec<u32> = m
                .topics
                .iter()
                .filter_map(|t| meta_idx.get(t.as_str()).copied())
                .collect();
            ts.sort_unstable();
            ts.dedup();
            for &t in &ts {
                if let Some(u) = used.get_mut(t as usize) {
                    *u = true;
                }
            }
            member_topics.push(ts);
            last = Some((m.topics.as_slice(), i));
        }
        // Compact to the subscribed topics, keeping name order.
        let mut remap = vec![NONE; meta.len()];
        let mut topic_names = Vec::new();
        let mut offset = vec![0u32];
        let mut total: u64 = 0;
        for (i, (name, info)) in meta.iter().enumerate() {
            if !used.get(i).copied().unwrap_or(false) {
                continue;
            }
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
            if let Some(r) = remap.get_mut(i) {
                *r = topic_names.len() as u32;
            }
            topic_names.push(*name);
            offset.push(total as u32);
        }
        let mut topic_members = vec![Vec::new(); topic_names.len()];
        for (mi, ts) in member_topics.iter_mut().enumerate() {
            for t in ts.iter_mut() {
                *t = remap.get(*t as usize).copied().unwrap_or(NONE);
                if let Some(v) = topic_members.get_mut(*t as usize) {
                    v.push(mi as u32);
                }
            }
        }
        let by_name = NameIndex {
            table: meta_idx,
            remap,
        };
        let words = sorted.len().div_ceil(64);
        let mut sub_bits = Vec::new();
        if words.saturating_mul(topic_names.len()) <= (1 << 20) {
            sub_bits = vec![0u64; words * topic_names.len()];
            for (t, ms) in topic_members.iter().enumerate() {
                for &m in ms {
                    if let Some(w) = sub_bits.get_mut(t * words + m as usize / 64) {
                        *w |= 1 << (m % 64);
                    }
                }
            }
        }
        Ok(Self {
            topic_names,
            offset,
            members: sorted,
            member_topics,
            topic_members,
            by_name,
            sub_bits,
            words,
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
        let i = self.by_name.table.get(name).copied()?;
        self.by_name
            .remap
            .get(i as usize)
            .copied()
            .filter(|&t| t != NONE)
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
        if !self.sub_bits.is_empty() {
            let i = t as usize * self.words + m as usize / 64;
            return self
                .sub_bits
                .get(i)
                .is_some_and(|w| w & (1 << (m % 64)) != 0);
        }
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
}
