//! The `sticky` (eager) and `cooperative-sticky` (KIP-429) assignors.
//!
//! Both share one balancing core working on interned indices (see `prep`):
//!
//! 1. **Keep**: every partition's validated previous owner keeps it if it is
//!    still a member and still subscribes to the topic. Validation follows
//!    Java's `AbstractStickyAssignor`: when several members claim a partition
//!    the claim with the highest generation wins; claims tied at the highest
//!    generation cancel out (the partition is treated as unowned).
//! 2. **Fill**: unowned partitions are placed topic by topic, topics with the
//!    fewest subscribers first (most constrained first, as Java sorts
//!    partitions by their number of potential consumers), each topic
//!    "water-filling" its subscribers: the least loaded are raised to a common
//!    level. With KIP-881 racks, partitions of a topic go to rack-matching
//!    receivers first without changing how many each receiver gets.
//! 3. **Balance**: Java's balance criterion (`AbstractStickyAssignorTest`'s
//!    `verifyValidityAndBalance`): no member may hold a partition of a topic
//!    that another member with at least two fewer partitions subscribes to.
//!    Violations are found per topic in `O(partitions + subscriptions)`, then
//!    fixed by moving partitions from the most loaded member to the least
//!    loaded eligible one. Each move strictly lowers the sum of squared
//!    counts, so the loop ends; it is also capped (never loops forever, unlike
//!    librdkafka issue #4783), leaving a valid assignment if the cap is hit.
//!
//! `cooperative-sticky` then applies Java's `CooperativeStickyAssignor`
//! adjustment: a partition assigned to a member while another member still
//! claims it is withheld this round; the claimant revokes it and the next
//! rebalance hands it over.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;

use super::prep::{FixedHasher, NONE, Prepared};
use super::userdata::{
    DEFAULT_GENERATION, decode_cooperative, decode_sticky, encode_cooperative,
    sticky_subscription_user_data,
};
use super::{
    AssignError, Assignor, ClusterMetadata, GroupAssignment, MemberSubscription,
    PreviousAssignment, RebalanceProtocol,
};

/// Marks a partition claimed by two members at the same (highest) generation.
const CONFLICT: u32 = u32::MAX - 1;

/// The eager `sticky` assignor (Java `StickyAssignor`): previous assignment
/// and generation travel in `StickyAssignorUserData`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StickyAssignor;

/// The `cooperative-sticky` assignor (Java `CooperativeStickyAssignor`):
/// owned partitions come from the subscription, the generation from
/// subscription v2+ or the 4-byte user data.
#[derive(Clone, Copy, Debug, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn subscription_user_data(&self, previous: &PreviousAssignment) -> Option<Bytes> {
        sticky_subscription_user_data(previous)
    }

    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        let kind = super::Builtin::Sticky;
        Ok(kind
            .assign_compact(metadata, members)?
            .to_group_assignment())
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    fn subscription_user_data(&self, previous: &PreviousAssignment) -> Option<Bytes> {
        Some(encode_cooperative(previous.generation))
    }

    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        let kind = super::Builtin::CooperativeSticky;
        Ok(kind
            .assign_compact(metadata, members)?
            .to_group_assignment())
    }
}

/// Eager sticky on interned input: previous assignments from the user data.
pub(crate) fn assign_sticky(prep: &Prepared<'_>) -> Vec<u32> {
    // As Java's StickyAssignor.memberData: previous assignment only from
    // the user data; undecodable data means no previous assignment.
    let decoded: Vec<(Vec<u32>, i32)> = prep
        .members
        .iter()
        .map(|m| {
            let data = m.user_data.as_deref().filter(|d| !d.is_empty());
            match data.map(decode_sticky) {
                Some(Ok(d)) => (
                    prep.resolve(
                        d.partitions
                            .iter()
                            .map(|tp| (tp.topic.as_str(), tp.partition)),
                    )
                    .collect(),
                    d.generation.unwrap_or(DEFAULT_GENERATION),
                ),
                _ => (Vec::new(), DEFAULT_GENERATION),
            }
        })
        .collect();
    let claims = Claims::new(prep, decoded.iter().map(|(p, g)| (p.as_slice(), *g)));
    balance(prep, &claims.prev)
}

/// The generation a cooperative member's claims carry: subscription v2+
/// field first, then the user data, then Java's default -1.
fn cooperative_generation(m: &MemberSubscription) -> i32 {
    m.generation
        .or_else(|| decode_cooperative(m.user_data.as_deref()))
        .unwrap_or(DEFAULT_GENERATION)
}

/// Cooperative-sticky on interned input: balance, then withhold partitions
/// still claimed by another member. Returns the owner of every partition
/// (`NONE` = not assigned this round).
pub(crate) fn assign_cooperative(prep: &Prepared<'_>) -> Vec<u32> {
    let owned: Vec<(Vec<u32>, i32)> = prep
        .members
        .iter()
        .map(|m| {
            (
                prep.resolve(m.owned.iter().map(|tp| (tp.topic.as_str(), tp.partition)))
                    .collect(),
                cooperative_generation(m),
            )
        })
        .collect();
    let claims = Claims::new(prep, owned.iter().map(|(p, g)| (p.as_slice(), *g)));
    let mut owner = balance(prep, &claims.prev);
    claims.withhold_transfers(&mut owner);
    owner
}

/// Previous ownership, validated, plus every raw claim (for the cooperative rule).
#[derive(Debug)]
pub(crate) struct Claims {
    /// Validated previous owner of each partition, or `NONE`.
    pub prev: Vec<u32>,
    /// First member claiming each partition, or `NONE`.
    first: Vec<u32>,
    /// Further claimants of partitions claimed more than once.
    extra: BTreeMap<u32, Vec<u32>>,
}

impl Claims {
    /// `per_member[m]` = (partitions member `m` claims, its generation).
    pub fn new<'c>(
        prep: &Prepared<'_>,
        per_member: impl Iterator<Item = (&'c [u32], i32)>,
    ) -> Self {
        let n = prep.num_partitions();
        let mut prev = vec![NONE; n];
        let mut gen_of = vec![0i32; n];
        let mut first = vec![NONE; n];
        let mut extra: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (m, (parts, generation)) in per_member.enumerate() {
            let m = m as u32;
            for &p in parts {
                let i = p as usize;
                let (Some(pr), Some(gn), Some(fc)) =
                    (prev.get_mut(i), gen_of.get_mut(i), first.get_mut(i))
                else {
                    continue;
                };
                if *fc == NONE {
                    *fc = m;
                } else if *fc != m {
                    let list = extra.entry(p).or_default();
                    if !list.contains(&m) {
                        list.push(m);
                    }
                }
                // highest generation wins; a tie between two members cancels
                if *pr == NONE || generation > *gn {
                    *pr = m;
                    *gn = generation;
                } else if generation == *gn && *pr != m {
                    *pr = CONFLICT;
                }
            }
        }
        for p in &mut prev {
            if *p == CONFLICT {
                *p = NONE;
            }
        }
        Self { prev, first, extra }
    }

    /// Java's `CooperativeStickyAssignor.adjustAssignment`: a partition
    /// assigned to a member other than its validated previous owner while
    /// some other member still claims it is not assigned this round (the
    /// claimant must revoke it first). Java exempts any member listing the
    /// partition as owned, even with a stale generation; here only the
    /// validated owner is exempt, so a stale claimant never gets a partition
    /// while its current owner has not revoked it.
    pub fn withhold_transfers(&self, owner: &mut [u32]) {
        for (p, o) in owner.iter_mut().enumerate() {
            // not a transfer: the validated previous owner keeps its partition
            if *o == NONE || self.prev.get(p) == Some(o) {
                continue;
            }
            let f = self.first.get(p).copied().unwrap_or(NONE);
            let other = (f != NONE && f != *o)
                || self
                    .extra
                    .get(&(p as u32))
                    .is_some_and(|l| l.iter().any(|&c| c != *o));
            if other {
                *o = NONE;
            }
        }
    }
}

/// Racks in play for this assignment (KIP-881), when they matter.
struct Racks<'a> {
    member: Vec<Option<&'a str>>,
}

impl<'a> Racks<'a> {
    /// As Java's `useRackAwareAssignment`: member racks known, intersecting the
    /// replica racks, and not every partition on every rack.
    fn new(prep: &Prepared<'a>) -> Option<Self> {
        let member: Vec<Option<&str>> = prep
            .members
            .iter()
            .map(|m| m.rack.as_deref().filter(|r| !r.is_empty()))
            .collect();
        let consumer: BTreeSet<&str> = member.iter().flatten().copied().collect();
        if consumer.is_empty() {
            return None;
        }
        let mut all: BTreeSet<&str> = BTreeSet::new();
        for t in 0..prep.num_topics() as u32 {
            let r = prep.range(t);
            for p in 0..(r.end - r.start) {
                all.extend(prep.partition_racks(t, p).iter().map(String::as_str));
            }
        }
        if consumer.is_disjoint(&all) {
            return None;
        }
        let mut uneven = false;
        'outer: for t in 0..prep.num_topics() as u32 {
            let r = prep.range(t);
            for p in 0..(r.end - r.start) {
                let set: BTreeSet<&str> = prep
                    .partition_racks(t, p)
                    .iter()
                    .map(String::as_str)
                    .collect();
                if set != all {
                    uneven = true;
                    break 'outer;
                }
            }
        }
        uneven.then_some(Self { member })
    }
}

/// Keep, fill and balance (see the module doc). `prev[p]` is the validated
/// previous owner. Returns the owner of every partition.
pub(crate) fn balance(prep: &Prepared<'_>, prev: &[u32]) -> Vec<u32> {
    let np = prep.num_partitions();
    let nm = prep.members.len();
    let mut owner = vec![NONE; np];
    let mut counts = vec![0u32; nm];

    // 1. keep
    for t in 0..prep.num_topics() as u32 {
        for g in prep.range(t) {
            let m = prev.get(g as usize).copied().unwrap_or(NONE);
            if (m as usize) < nm && prep.subscribes(m, t) {
                if let Some(o) = owner.get_mut(g as usize) {
                    *o = m;
                }
                if let Some(c) = counts.get_mut(m as usize) {
                    *c += 1;
                }
            }
        }
    }

    // 2. fill
    let racks = Racks::new(prep);
    let mut order: Vec<u32> = (0..prep.num_topics() as u32).collect();
    order.sort_by_key(|&t| (prep.topic_members.get(t as usize).map_or(0, Vec::len), t));
    let mut scratch: Vec<(u32, u32)> = Vec::new();
    let mut unassigned: Vec<u32> = Vec::new();
    for t in order {
        unassigned.clear();
        unassigned.extend(
            prep.range(t)
                .filter(|&g| owner.get(g as usize) == Some(&NONE)),
        );
        let subs = prep
            .topic_members
            .get(t as usize)
            .map_or(&[][..], Vec::as_slice);
        if unassigned.is_empty() || subs.is_empty() {
            continue;
        }
        let gives = water_fill(&counts, subs, unassigned.len(), &mut scratch);
        hand_out(
            prep,
            t,
            &unassigned,
            &gives,
            racks.as_ref(),
            &mut owner,
            &mut counts,
        );
    }

    // 3. balance
    let mut mover = Mover::new(prep);
    let budget = 4 * (np as u64) + 4 * (nm as u64) + 64;
    let mut moves = 0u64;
    for _pass in 0..64 {
        let donors = find_violations(prep, &owner, &counts);
        if donors.is_empty() {
            break;
        }
        mover.ensure_held(&owner, &counts);
        if !mover.run(
            prep,
            prev,
            donors,
            &mut owner,
            &mut counts,
            &mut moves,
            budget,
        ) {
            break; // budget exhausted: still valid, possibly not fully balanced
        }
    }
    owner
}

/// How many partitions each of the least loaded subscribers gets so that `n`
/// new partitions raise the lowest counts to a common level. Ties by member
/// index. Returns (member, gives) with gives > 0.
fn water_fill(
    counts: &[u32],
    subs: &[u32],
    n: usize,
    scratch: &mut Vec<(u32, u32)>,
) -> Vec<(u32, u32)> {
    scratch.clear();
    scratch.extend(
        subs.iter()
            .map(|&m| (counts.get(m as usize).copied().unwrap_or(0), m)),
    );
    // only the n least loaded can receive anything
    if n < scratch.len() && n > 0 {
        scratch.select_nth_unstable(n - 1);
        scratch.truncate(n);
    }
    scratch.sort_unstable();
    let n = n as u64;
    let mut prefix = 0u64;
    let mut k = 0u64;
    for (i, &(c, _)) in scratch.iter().enumerate() {
        let c = u64::from(c);
        if (i as u64) * c - prefix > n {
            break;
        }
        prefix += c;
        k = i as u64 + 1;
    }
    if k == 0 {
        return Vec::new();
    }
    let total = n + prefix;
    let level = total / k;
    let extra = total % k;
    scratch
        .iter()
        .take(k as usize)
        .enumerate()
        .filter_map(|(i, &(c, m))| {
            let g = level - u64::from(c) + u64::from((i as u64) < extra);
            (g > 0).then_some((m, g as u32))
        })
        .collect()
}

/// Places `unassigned` (global indices of topic `t`) on the receivers; with
/// racks, rack-matching receivers first, counts unchanged.
fn hand_out(
    prep: &Prepared<'_>,
    t: u32,
    unassigned: &[u32],
    gives: &[(u32, u32)],
    racks: Option<&Racks<'_>>,
    owner: &mut [u32],
    counts: &mut [u32],
) {
    let mut left: Vec<u32> = gives.iter().map(|&(_, g)| g).collect();
    let mut done = vec![false; unassigned.len()];
    let base = prep.range(t).start;
    let give = |owner: &mut [u32], counts: &mut [u32], g: u32, m: u32| {
        if let Some(o) = owner.get_mut(g as usize) {
            *o = m;
        }
        if let Some(c) = counts.get_mut(m as usize) {
            *c += 1;
        }
    };
    if let Some(r) = racks {
        let mut by_rack: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, &(m, _)) in gives.iter().enumerate().rev() {
            if let Some(rack) = r.member.get(m as usize).copied().flatten() {
                by_rack.entry(rack).or_default().push(i);
            }
        }
        if !by_rack.is_empty() {
            for (j, &g) in unassigned.iter().enumerate() {
                for rack in prep.partition_racks(t, g - base) {
                    let Some(stack) = by_rack.get_mut(rack.as_str()) else {
                        continue;
                    };
                    while let Some(&i) = stack.last() {
                        if left.get(i).copied().unwrap_or(0) == 0 {
                            stack.pop();
                        } else {
                            break;
                        }
                    }
                    if let Some(&i) = stack.last() {
                        if let (Some(l), Some(&(m, _))) = (left.get_mut(i), gives.get(i)) {
                            *l -= 1;
                            give(owner, counts, g, m);
                            if let Some(d) = done.get_mut(j) {
                                *d = true;
                            }
                        }
                        break;
                    }
                }
            }
        }
    }
    let mut i = 0usize;
    for (j, &g) in unassigned.iter().enumerate() {
        if done.get(j).copied().unwrap_or(true) {
            continue;
        }
        while i < left.len() && left.get(i) == Some(&0) {
            i += 1;
        }
        let (Some(l), Some(&(m, _))) = (left.get_mut(i), gives.get(i)) else {
            break;
        };
        *l -= 1;
        give(owner, counts, g, m);
    }
}

/// Members holding a partition of a topic that a subscriber with at least two
/// fewer partitions could take (Java's balance criterion), most loaded first.
fn find_violations(prep: &Prepared<'_>, owner: &[u32], counts: &[u32]) -> Vec<u32> {
    let mut is_donor = vec![false; counts.len()];
    for t in 0..prep.num_topics() as u32 {
        let subs = prep
            .topic_members
            .get(t as usize)
            .map_or(&[][..], Vec::as_slice);
        let min = subs
            .iter()
            .map(|&m| counts.get(m as usize).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let r = prep.range(t);
        for &o in owner.get(r.start as usize..r.end as usize).unwrap_or(&[]) {
            if counts.get(o as usize).is_some_and(|&c| c >= min + 2)
                && let Some(d) = is_donor.get_mut(o as usize)
            {
                *d = true;
            }
        }
    }
    (0..counts.len() as u32)
        .filter(|&m| is_donor.get(m as usize).copied().unwrap_or(false))
        .collect()
}

/// The move loop's state: held partitions per member and subscription classes.
struct Mover {
    /// Per member, its partitions sorted (built on first need).
    held: Vec<Vec<u32>>,
    built: bool,
    /// Per class (members with identical subscriptions): (count, member).
    classes: Vec<BTreeSet<(u32, u32)>>,
    member_class: Vec<u32>,
    topic_classes: Vec<Vec<u32>>,
    /// Every member with a subscription: (count, member), for a quick
    /// "nobody is two below this donor" rejection.
    all: BTreeSet<(u32, u32)>,
}

impl Mover {
    fn new(prep: &Prepared<'_>) -> Self {
        Self {
            held: Vec::new(),
            built: false,
            classes: Vec::new(),
            member_class: Vec::new(),
            topic_classes: vec![Vec::new(); prep.num_topics()],
            all: BTreeSet::new(),
        }
    }

    fn ensure_held(&mut self, owner: &[u32], counts: &[u32]) {
        if self.built {
            return;
        }
        self.built = true;
        self.held = counts
            .iter()
            .map(|&c| Vec::with_capacity(c as usize))
            .collect();
        for (g, &o) in owner.iter().enumerate() {
            if let Some(h) = self.held.get_mut(o as usize) {
                h.push(g as u32);
            }
        }
    }

    fn build_classes(&mut self, prep: &Prepared<'_>, counts: &[u32]) {
        if !self.member_class.is_empty() || prep.members.is_empty() {
            return;
        }
        // group identical subscriptions: hash the topic list, confirm equality
        let mut ids: HashMap<u64, Vec<u32>, BuildHasherDefault<FixedHasher>> = HashMap::default();
        let mut rep: Vec<u32> = Vec::new();
        for (m, ts) in prep.member_topics.iter().enumerate() {
            let mut h = FixedHasher::default();
            for &t in ts {
                h.write_u32(t);
            }
            h.write_usize(ts.len());
            let bucket = ids.entry(h.finish()).or_default();
            let found = bucket.iter().copied().find(|&c| {
                rep.get(c as usize)
                    .and_then(|&r| prep.member_topics.get(r as usize))
                    .is_some_and(|other| other == ts)
            });
            let c = match found {
                Some(c) => c,
                None => {
                    let c = self.classes.len() as u32;
                    bucket.push(c);
                    rep.push(m as u32);
                    self.classes.push(BTreeSet::new());
                    for &t in ts {
                        if let Some(v) = self.topic_classes.get_mut(t as usize) {
                            v.push(c);
                        }
                    }
                    c
                }
            };
            let count = counts.get(m).copied().unwrap_or(0);
            if let Some(set) = self.classes.get_mut(c as usize) {
                set.insert((count, m as u32));
            }
            if !ts.is_empty() {
                self.all.insert((count, m as u32));
            }
            self.member_class.push(c);
        }
    }

    /// Least loaded subscriber of topic `t`: (count, member).
    fn min_subscriber(&self, t: u32) -> Option<(u32, u32)> {
        self.topic_classes
            .get(t as usize)?
            .iter()
            .filter_map(|&c| {
                self.classes
                    .get(c as usize)
                    .and_then(|s| s.first().copied())
            })
            .min()
    }

    fn set_count(&mut self, m: u32, old: u32, new: u32) {
        if self.all.remove(&(old, m)) {
            self.all.insert((new, m));
        }
        if let Some(set) = self
            .member_class
            .get(m as usize)
            .and_then(|&c| self.classes.get_mut(c as usize))
        {
            set.remove(&(old, m));
            set.insert((new, m));
        }
    }

    /// Moves partitions from the most loaded donors until none can give or
    /// the budget is spent (returns false then).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        prep: &Prepared<'_>,
        prev: &[u32],
        donors: Vec<u32>,
        owner: &mut [u32],
        counts: &mut [u32],
        moves: &mut u64,
        budget: u64,
    ) -> bool {
        self.build_classes(prep, counts);
        let active = prep
            .member_topics
            .iter()
            .filter(|t| !t.is_empty())
            .count()
            .max(1) as u64;
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        let mean_lo = (total / active) as u32;
        let mean_hi = total.div_ceil(active) as u32;
        let mut heap: BinaryHeap<(u32, Reverse<u32>)> = donors
            .into_iter()
            .map(|m| (counts.get(m as usize).copied().unwrap_or(0), Reverse(m)))
            .collect();
        let mut moved: Vec<u32> = Vec::new();
        while let Some((c, Reverse(a))) = heap.pop() {
            let ca = counts.get(a as usize).copied().unwrap_or(0);
            if c != ca || ca < 2 {
                continue; // stale entry
            }
            if self.all.first().is_none_or(|&(min, _)| min + 2 > ca) {
                continue; // nobody anywhere is two below `a`
            }
            // first topic of `a` with a receiver two or more below it
            let mut target = None;
            let topics = prep
                .member_topics
                .get(a as usize)
                .map_or(&[][..], Vec::as_slice);
            let held_a = self.held.get(a as usize).map_or(&[][..], Vec::as_slice);
            for &t in topics {
                let r = prep.range(t);
                let lo = held_a.partition_point(|&g| g < r.start);
                let hi = held_a.partition_point(|&g| g < r.end);
                if lo == hi {
                    continue;
                }
                if let Some((cb, b)) = self.min_subscriber(t)
                    && cb + 2 <= ca
                {
                    target = Some((lo, hi, cb, b));
                    break;
                }
            }
            let Some((lo, hi, cb, b)) = target else {
                continue;
            };
            if *moves >= budget {
                return false;
            }
            *moves += 1;
            // Batch moves, capped so neither side crosses the mean load:
            // large skews converge in few steps without extra movement.
            let cap = ca
                .saturating_sub(mean_hi)
                .min(mean_lo.saturating_sub(cb))
                .max(1);
            let k = ((hi - lo) as u32).min((ca - cb) / 2).min(cap).max(1) as usize;
            // prefer partitions `a` did not own before (no revocation), then the highest
            moved.clear();
            let range = held_a.get(lo..hi).unwrap_or(&[]);
            moved.extend(
                range
                    .iter()
                    .rev()
                    .filter(|&&g| prev.get(g as usize) != Some(&a))
                    .take(k),
            );
            if moved.len() < k {
                let need = k - moved.len();
                let already: BTreeSet<u32> = moved.iter().copied().collect();
                moved.extend(
                    range
                        .iter()
                        .rev()
                        .filter(|g| !already.contains(g))
                        .take(need),
                );
            }
            moved.sort_unstable();
            if let Some(h) = self.held.get_mut(a as usize) {
                let mut i = 0;
                h.retain(|g| {
                    while moved.get(i).is_some_and(|m| m < g) {
                        i += 1;
                    }
                    moved.get(i) != Some(g)
                });
            }
            if let Some(h) = self.held.get_mut(b as usize) {
                h.extend_from_slice(&moved);
                h.sort_unstable();
            }
            for &g in &moved {
                if let Some(o) = owner.get_mut(g as usize) {
                    *o = b;
                }
            }
            let k = moved.len() as u32;
            let (na, nb) = (ca - k, cb + k);
            if let Some(x) = counts.get_mut(a as usize) {
                *x = na;
            }
            if let Some(x) = counts.get_mut(b as usize) {
                *x = nb;
            }
            self.set_count(a, ca, na);
            self.set_count(b, cb, nb);
            heap.push((na, Reverse(a)));
            heap.push((nb, Reverse(b)));
        }
        true
    }
}
